//! The MPI build under a real launcher (issue 27; README, "More than one machine"):
//! `mpirun -n 2` ranks against one process, against two workers on threads of one process,
//! against themselves; resume with the same and another count; a rank killed mid-run; a batch
//! that does not split; and two "hosts" in network namespaces. Run by
//! `cargo test --release --features mpi --test mpi` (CI does); each test skips, saying why,
//! where `mpirun` is missing.

#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use vae::checkpoint::RunDir;
use vae::core::AdamState;
use vae::core::collective::LocalGroup;
use vae::data::Dataset;
use vae::model::Model;
use vae::train::Trainer;

const VAE: &str = env!("CARGO_BIN_EXE_vae");

/// A small run: 2,000 training and 1,000 test images, one thread per rank, no extras.
const SMALL: &[&str] =
    &["--train-limit", "2000", "--test-limit", "1000", "--threads", "1", "--quiet", "--fit-sampler", "0"];

/// `mpirun` with the flags a test needs (root in CI, two ranks on two cores), or `None`
/// (said on stderr) where Open MPI is not installed.
fn mpirun(n: usize) -> Option<Command> {
    if Command::new("mpirun").arg("--version").output().is_err() {
        eprintln!("skipped: mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)");
        return None;
    }
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "-n", &n.to_string()]);
    Some(c)
}

/// `vae train --out out SMALL extra` on `n` ranks; `None` if skipped.
fn train_ranks(n: usize, out: &Path, extra: &[&str]) -> Option<Output> {
    let mut c = mpirun(n)?;
    c.arg(VAE).arg("train").arg("--out").arg(out).args(SMALL).args(extra);
    Some(c.output().unwrap())
}

/// The same in one process, without a launcher.
fn train_alone(out: &Path, extra: &[&str]) -> Output {
    Command::new(VAE).arg("train").arg("--out").arg(out).args(SMALL).args(extra).output().unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// The test loss of each epoch in `dir`'s metrics.
fn test_losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["test_loss"].as_f64().unwrap())
        .collect()
}

/// `vae train --resume dir` in one process to `epochs` in `micro` micro-batches; its stderr.
fn resume_alone(dir: &Path, epochs: &str, micro: &str) -> String {
    let args = ["train", "--epochs", epochs, "--fit-sampler", "0", "--micro-batches", micro, "--resume"];
    let o = ok(Command::new(VAE).args(args).arg(dir).output().unwrap());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn two_ranks_train_what_one_process_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    let Some(o) = train_ranks(2, &two, &["--epochs", "10"]) else { return };
    ok(o);
    ok(train_alone(&one, &["--epochs", "10"]));
    let (a, b) = (test_losses(&one), test_losses(&two));
    assert_eq!((a.len(), b.len()), (10, 10));
    // The same global batch of 128, split 64 + 64: the gradient sums add up in another order,
    // and nothing else differs. Measured: 0.0017 nats apart after epoch 1 (150 steps later
    // the two trajectories have drifted apart chaotically, as any change of summation order
    // makes them: 0.12 nats on this slice at epoch 10, 0.035 on all of MNIST).
    assert!((a[0] - b[0]).abs() < 0.02, "epoch 1: {} alone, {} on two ranks", a[0], b[0]);
    assert!((a[9] - b[9]).abs() < 0.5, "epoch 10: {} alone, {} on two ranks", a[9], b[9]);
    // One process computing each batch in two micro-batches sums as the two ranks do: the
    // same weights to the byte, the same test losses at every epoch (the test pass, split
    // across ranks, adds its f64 sums in another order: 1e-12 at most).
    let micro = tmp.path().join("micro");
    ok(train_alone(&micro, &["--epochs", "10", "--micro-batches", "2"]));
    assert!(weights(&micro) == weights(&two), "one process in two micro-batches must equal two ranks");
    for (e, (m, r)) in test_losses(&micro).iter().zip(&b).enumerate() {
        assert!((m - r).abs() < 1e-9, "epoch {}: {m} in micro-batches, {r} on two ranks", e + 1);
    }
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(two.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["world_size"], 2, "config.json records the world size");
}

#[test]
fn two_ranks_sum_exactly_as_two_workers_in_one_process_and_repeat_to_the_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let Some(o) = train_ranks(2, &a, &["--epochs", "2"]) else { return };
    ok(o);
    ok(train_ranks(2, &b, &["--epochs", "2"]).unwrap());
    assert!(weights(&a) == weights(&b), "two runs on two ranks must write the same bytes");

    // The same run on two threads of this process, joined by a LocalGroup: the same bits.
    let (config, trained) = RunDir::new(&a).load_model().unwrap();
    let data = Dataset::load(&config.train.dataset).unwrap();
    let params: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = LocalGroup::new(2)
            .into_iter()
            .map(|g| {
                let (config, data) = (config.clone(), data.clone());
                s.spawn(move || {
                    let model = Model::init_with(config.model.clone(), config.train.seed, config.train.init);
                    let adam = AdamState::new(model.params.len());
                    let mut t = Trainer::new(config.train.clone(), model, adam, 0, data);
                    t.init_output_bias();
                    t.join(Box::new(g)).unwrap();
                    for _ in 0..2 {
                        t.train_epoch(&mut |_, _, _| {}).unwrap();
                        t.test_loss().unwrap();
                    }
                    t.model.params
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(params[0] == trained.params, "MPI's sums must equal the in-process group's bit for bit");
}

#[test]
fn resume_under_mpirun_with_the_same_count_or_another() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    let Some(o) = train_ranks(2, &whole, &["--epochs", "4"]) else { return };
    ok(o);
    ok(train_ranks(2, &split, &["--epochs", "2"]).unwrap());
    let mut c = mpirun(2).unwrap();
    c.arg(VAE).args(["train", "--quiet", "--fit-sampler", "0", "--epochs", "4", "--resume"]).arg(&split);
    ok(c.output().unwrap());
    assert!(weights(&whole) == weights(&split), "2 + 2 epochs on two ranks must equal 4 uninterrupted");
    assert_eq!(test_losses(&whole), test_losses(&split));

    // One process from here in two micro-batches: the same bits as two ranks.
    let mut c = mpirun(2).unwrap();
    c.arg(VAE).args(["train", "--quiet", "--fit-sampler", "0", "--epochs", "5", "--resume"]).arg(&whole);
    ok(c.output().unwrap());
    let stderr = resume_alone(&split, "5", "2");
    assert!(!stderr.contains("note: resuming"), "processes × micro-batches kept: nothing to say: {stderr}");
    assert!(weights(&whole) == weights(&split), "epoch 5 in two micro-batches must equal epoch 5 on two ranks");

    // One process, whole batches: said, recorded, and trained on.
    let stderr = resume_alone(&split, "6", "1");
    assert!(
        stderr.contains("resuming with each batch in 1 part (processes × micro-batches) where the run used 2"),
        "{stderr}"
    );
    assert!(stderr.contains("--micro-batches 2 keeps them"), "{stderr}");
    assert_eq!(test_losses(&split).len(), 6);
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(split.join("config.json")).unwrap()).unwrap();
    assert!(config["train"].get("world_size").is_none(), "one process is the default: {config}");
    assert!(config["train"].get("micro_batches").is_none(), "whole batches are the default: {config}");
}

#[test]
fn a_batch_that_does_not_split_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let Some(o) = train_ranks(2, &out, &["--batch-size", "127"]) else { return };
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--batch-size 127 does not split evenly across 2 workers") && stderr.contains("e.g. 128"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing may be written");
}

/// The pid of the process whose environment says it is rank `rank` and whose command line
/// names `marker`.
fn rank_pid(rank: usize, marker: &str) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let environ = std::fs::read(e.path().join("environ")).ok()?;
        let has = |bytes: &[u8], s: &str| bytes.split(|&b| b == 0).any(|w| w == s.as_bytes());
        (has(&cmdline, VAE) && String::from_utf8_lossy(&cmdline).contains(marker) && has(&environ, &want))
            .then_some(pid)
    })
}

#[test]
fn a_killed_rank_stops_every_rank_and_the_run_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("killed");
    let Some(mut c) = mpirun(2) else { return };
    c.arg(VAE).arg("train").arg("--out").arg(&out).args(SMALL).args(["--epochs", "1000"]);
    let mut child = c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !out.join("train-state.safetensors").exists() {
        assert!(Instant::now() < deadline, "no epoch saved within a minute");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = rank_pid(1, out.to_str().unwrap()).expect("rank 1's process");
    let killed = Instant::now();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the other rank still runs 30 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let seconds = killed.elapsed().as_secs_f64();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("rank 1"), "the launcher names the rank that died: {stderr}");
    eprintln!("every rank stopped {seconds:.2} s after rank 1 was killed");

    // Resumed from its last completed epoch, the run goes on.
    let done = test_losses(&out).len();
    assert!(done >= 1);
    let mut c = mpirun(2).unwrap();
    c.arg(VAE)
        .args(["train", "--quiet", "--fit-sampler", "0", "--epochs", &(done + 1).to_string(), "--resume"])
        .arg(&out);
    ok(c.output().unwrap());
    assert_eq!(test_losses(&out).len(), done + 1);
}

/// Two network namespaces joined by a veth pair, removed when dropped.
struct Hosts {
    ns: String,
    agent: PathBuf,
    addrs: [String; 2],
}

impl Hosts {
    /// Makes them, or says why not (no root, no `ip`, no namespaces here).
    fn make(dir: &Path) -> Result<Hosts, String> {
        let id = std::process::id() % 100_000;
        let (ns, v0, v1) = (format!("vae-h2-{id}"), format!("vae{id}a"), format!("vae{id}b"));
        let net = format!("10.77.{}", id % 250);
        let addrs = [format!("{net}.1"), format!("{net}.2")];
        let hosts = Hosts { ns: ns.clone(), agent: dir.join("netns-agent"), addrs: addrs.clone() };
        let ip = |args: &[&str]| -> Result<(), String> {
            let o = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
            o.status
                .success()
                .then_some(())
                .ok_or_else(|| format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim()))
        };
        ip(&["netns", "add", &ns])?;
        let set_up = || -> Result<(), String> {
            ip(&["link", "add", &v0, "type", "veth", "peer", "name", &v1])?;
            ip(&["link", "set", &v1, "netns", &ns])?;
            ip(&["addr", "add", &format!("{}/24", addrs[0]), "dev", &v0])?;
            ip(&["link", "set", &v0, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "addr", "add", &format!("{}/24", addrs[1]), "dev", &v1])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &v1, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])
        };
        set_up()?; // on failure, `hosts` drops here and removes the namespace
        // Open MPI's remote launch agent: "agent HOST CMD…" runs CMD inside HOST's namespace.
        let script = format!(
            "#!/bin/sh\nhost=$1; shift\ncase \"$host\" in {}) ns={ns};; *) echo \"unknown host $host\" >&2; exit 1;; esac\nexec ip netns exec \"$ns\" sh -c \"$*\"\n",
            addrs[1]
        );
        std::fs::write(&hosts.agent, script).map_err(|e| e.to_string())?;
        Command::new("chmod").arg("+x").arg(&hosts.agent).status().map_err(|e| e.to_string())?;
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        // Removing the namespace removes its end of the veth pair, and with it the other.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
    }
}

#[test]
fn two_hosts_in_network_namespaces_train_what_one_host_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let (here, across) = (tmp.path().join("here"), tmp.path().join("across"));
    let Some(o) = train_ranks(2, &here, &["--epochs", "2"]) else { return };
    ok(o);
    let hosts = match Hosts::make(tmp.path()) {
        Ok(h) => h,
        Err(why) => {
            eprintln!("skipped: cannot make network namespaces here ({why})");
            return;
        }
    };
    let subnet = format!("{}.0/24", hosts.addrs[0].rsplit_once('.').unwrap().0);
    // Each rank notes its network namespace, then trains.
    let ns = tmp.path().join("ns");
    let train = format!(
        "readlink /proc/self/ns/net > {ns}-$OMPI_COMM_WORLD_RANK && exec {VAE} train --out {} {} --epochs 2",
        across.display(),
        SMALL.join(" "),
        ns = ns.display()
    );
    let o = Command::new("mpirun")
        .args(["--allow-run-as-root", "--oversubscribe", "--mca", "plm_rsh_agent"])
        .arg(&hosts.agent)
        .args([
            "--mca",
            "btl",
            "tcp,self",
            "--mca",
            "btl_tcp_if_include",
            &subnet,
            "--mca",
            "oob_tcp_if_include",
            &subnet,
        ])
        .args(["--host", &format!("{}:1,{}:1", hosts.addrs[0], hosts.addrs[1]), "-n", "2", "sh", "-c", &train])
        .output()
        .unwrap();
    ok(o);
    let read = |r: usize| std::fs::read_to_string(format!("{}-{r}", ns.display())).unwrap();
    assert_ne!(read(0), read(1), "the ranks ran in different network namespaces");
    assert!(weights(&here) == weights(&across), "sums over TCP between namespaces must equal those on one host");
}
