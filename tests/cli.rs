//! The `vae` binary as a user runs it: what it writes, and one clear error line for bad input.

mod common;

use common::*;
use std::io::Read;
use std::path::Path;
use vae::data::{FILE_NAMES, embedded_files};

#[test]
fn train_writes_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let stdout = train(&run, &["--epochs", "2"]);
    assert!(stdout.contains("epoch   1/2") && stdout.contains("epoch   2/2"), "{stdout}");
    assert!(stdout.contains("img/s"), "{stdout}");
    // Started by `cargo test`, the binary names itself as `cargo run` would start it.
    let vae = cargo_run();
    assert!(stdout.contains(&format!("next: `{vae} sample {}` draws new images", run.display())), "{stdout}");
    assert!(stdout.contains(&format!("`{vae} eval {}` measures it", run.display())), "{stdout}");
    assert!(run.join("sampler-gmm.json").is_file(), "the end of training fits the sampler");
    for f in ["config.json", "model.safetensors", "train-state.safetensors", "reconstructions.png"] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    assert_eq!(png_size(&run.join("samples/epoch-001.png")), (302, 302));
    assert_eq!(png_size(&run.join("samples/epoch-002.png")), (302, 302));
    // The 302x302 grid with a title strip above and an in/out strip below (23 pixels each).
    assert_eq!(png_size(&run.join("reconstructions.png")), (302, 348));
    let m = metrics(&run);
    assert_eq!(m.len(), 2);
    assert_eq!(m[1]["epoch"], 2);
    assert_eq!(m[1]["step"], 16); // 512 / 64 = 8 steps per epoch
    let test_loss = m[1]["test_loss"].as_f64().unwrap();
    assert!(test_loss > 100.0 && test_loss < 543.0, "{test_loss}");

    // The weights carry PyTorch's names and [out, in] shapes.
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        [
            "fc1.bias",
            "fc1.weight",
            "fc2.bias",
            "fc2.weight",
            "fc3.bias",
            "fc3.weight",
            "fc_logvar.bias",
            "fc_logvar.weight",
            "fc_mu.bias",
            "fc_mu.weight"
        ]
    );
    assert_eq!(st.tensor("fc1.weight").unwrap().shape(), [400, 784]);
    assert_eq!(st.tensor("fc3.weight").unwrap().shape(), [784, 400]);
    assert_eq!(st.tensor("fc2.weight").unwrap().shape(), [400, 20]);

    // A new run cannot overwrite this one.
    fails(&["train", "--out", run.to_str().unwrap()], &["already holds a run", "--resume"]);
}

#[test]
fn resuming_gives_exactly_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    train(&whole, &["--epochs", "3", "--model", "cvae"]);
    train(&split, &["--epochs", "1", "--model", "cvae"]);
    let out = vae().args(["train", "--resume"]).arg(&split).args(["--epochs", "3"]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("resuming after epoch 1"));
    let strip = |mut v: Vec<serde_json::Value>| {
        for r in &mut v {
            let o = r.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("images_per_sec");
        }
        v
    };
    assert_eq!(strip(metrics(&whole)), strip(metrics(&split)));
    // Two identical runs log identical figures, to the last digit (all but the timings).
    let again = tmp.path().join("again");
    train(&again, &["--epochs", "3", "--model", "cvae"]);
    assert_eq!(strip(metrics(&whole)), strip(metrics(&again)));
    let (a, b) = (
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(split.join("model.safetensors")).unwrap(),
    );
    let (a, b) =
        (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    for name in a.names() {
        assert!(a.tensor(name).unwrap().data() == b.tensor(name).unwrap().data(), "{name} differs after resume");
    }
    // Resuming a finished run trains nothing; changing the recipe is refused.
    vae().args(["train", "--resume"]).arg(&split).assert().success();
    fails(&["train", "--resume", split.to_str().unwrap(), "--beta", "2"], &["--beta cannot be changed"]);
}

#[test]
fn sample_draws_grids_and_checks_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let (v, c) = (tmp.path().join("v"), tmp.path().join("c"));
    train(&v, &["--epochs", "1"]);
    train(&c, &["--epochs", "1", "--model", "cvae"]);
    let out = tmp.path().join("s.png");
    vae().args(["sample"]).arg(&v).args(["-o"]).arg(&out).assert().success();
    assert_eq!(png_size(&out), (302, 302));
    vae().args(["sample"]).arg(&c).args(["-n", "7", "--nrow", "3", "--label", "4", "-o"]).arg(&out).assert().success();
    assert_eq!(png_size(&out), (3 * 30 + 2, 3 * 30 + 2));
    vae().args(["sample"]).arg(&c).assert().success();
    vae().args(["sample"]).arg(&c).args(["--label", "2", "--temperature", "0.5"]).assert().success();
    assert_eq!(png_size(&c.join("samples").join("sample-seed0-label2-t0.5.png")), (302, 302));
    fails(&["sample", c.to_str().unwrap(), "--temperature", "-1"], &["--temperature", "a number ≥ 0"]);
    fails(&["sample", c.to_str().unwrap(), "--temperature", "inf"], &["--temperature", "a number ≥ 0"]);
    assert!(c.join("samples/sample-seed0.png").is_file());
    fails(&["sample", v.to_str().unwrap(), "--label", "3"], &["--label needs a conditional model", "--model cvae"]);
    fails(&["sample", c.to_str().unwrap(), "--label", "12"], &["12"]);
    // Same seed, same picture.
    let (a, b) = (tmp.path().join("a.png"), tmp.path().join("b.png"));
    vae().args(["sample"]).arg(&v).args(["--seed", "9", "-o"]).arg(&a).assert().success();
    vae().args(["sample"]).arg(&v).args(["--seed", "9", "-o"]).arg(&b).assert().success();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn broken_run_directories_get_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(&["sample", empty.to_str().unwrap()], &["not a run directory"]);
    fails(&["train", "--resume", empty.to_str().unwrap()], &["not a run directory"]);

    let run = tmp.path().join("run");
    // Two epochs: a run whose state is missing after its first epoch starts again instead.
    train(&run, &["--epochs", "2"]);
    let good = std::fs::read(run.join("model.safetensors")).unwrap();
    std::fs::write(run.join("model.safetensors"), &good[..good.len() / 2]).unwrap();
    fails(&["sample", run.to_str().unwrap()], &["model.safetensors is corrupt"]);
    std::fs::write(run.join("model.safetensors"), b"garbage").unwrap();
    fails(&["sample", run.to_str().unwrap()], &["model.safetensors is corrupt"]);
    std::fs::remove_file(run.join("model.safetensors")).unwrap();
    fails(&["sample", run.to_str().unwrap()], &["has no model.safetensors"]);
    std::fs::remove_file(run.join("train-state.safetensors")).unwrap();
    fails(&["train", "--resume", run.to_str().unwrap()], &["train-state.safetensors"]);
    std::fs::write(run.join("config.json"), b"{ not json").unwrap();
    fails(&["sample", run.to_str().unwrap()], &["config.json is corrupt"]);
}

/// Started by `mpirun -n 2` (as its environment says), a build without MPI refuses to train
/// instead of two copies training the same run into one directory (issue 27).
#[test]
#[cfg(not(feature = "mpi"))]
fn a_build_without_mpi_refuses_to_train_as_one_of_several_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let assert = vae().args(["train", "--out"]).arg(&out).env("OMPI_COMM_WORLD_SIZE", "2").assert().failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("one of 2 processes") && stderr.contains("--features mpi"), "{stderr}");
    assert!(!out.exists(), "nothing may be written");
}

#[test]
fn impossible_flags_get_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let o = out.to_str().unwrap();
    fails(&["train", "--out", o, "--batch-size", "0"], &["--batch-size <B>", "0 is not in 1..=65536"]);
    fails(&["train", "--out", o, "--latent-dim", "0"], &["--latent-dim <D>", "0 is not in 1..=16384"]);
    fails(&["train", "--out", o, "--hidden-dim", "0"], &["--hidden-dim <H>", "0 is not in 1..=65536"]);
    fails(&["train", "--out", o, "--epochs", "0"], &["--epochs <N>", "0 is not in 1..=100000"]);
    fails(&["train", "--out", o, "--threads", "100000"], &["--threads", "more than the", "cores here"]);
    let iwae_kl = "the importance-weighted bound has none to weight";
    fails(&["train", "--out", o, "--objective", "iwae", "--kl-warmup", "10"], &["--kl-warmup", iwae_kl]);
    fails(&["train", "--out", o, "--kl-warmup", "100001"], &["--kl-warmup <N>", "100001 is not in 0..=100000"]);
    fails(&["train", "--out", o, "--k", "3", "--model", "ae"], &["--objective elbo k=3 needs a variational model"]);
    fails(&["train", "--out", o, "--lr-schedule", "cosine"], &["--lr-schedule", "'cosine' is not a schedule", "burda"]);
    fails(&["train", "--out", o, "--lr-schedule", "stages:30:3:0.5"], &["spans more than 100000 epochs"]);
    fails(&["train", "--out", o, "--adam-eps", "0"], &["--adam-eps <EPS>", "greater than 0"]);
    fails(&["train", "--out", o, "--init", "he"], &["he", "possible values: pytorch, glorot"]);
    fails(&["train", "--out", o, "--output-bias", "zero"], &["zero", "possible values: init, data-mean"]);
    fails(&["train", "--out", o, "--objective", "iwae", "--k", "0"], &["--k <K>", "0 is not in 1..=100"]);
    fails(&["train", "--out", o, "--objective", "iwae", "--k", "101"], &["--k <K>", "101 is not in 1..=100"]);
    fails(&["train", "--out", o, "--objective", "iwae", "--beta", "2"], &["--beta", iwae_kl]);
    fails(&["train", "--out", o, "--objective", "iwae", "--model", "ae"], &["needs a variational model", "ae"]);
    fails(&["train", "--out", o, "--threads", "-1"], &["--threads", "whole number"]);
    fails(&["train", "--out", o, "--lr", "-1"], &["--lr"]);
    fails(&["train", "--out", o, "--lr", "nan"], &["--lr <LR>", "expected a number greater than 0"]);
    fails(&["train", "--out", o, "--beta", "-0.5"], &["--beta"]);
    fails(&["train", "--out", o, "--batch-size", "100000"], &["--batch-size <B>", "100000 is not in 1..=65536"]);
    let small = ["train", "--out", o, "--train-limit", "100", "--batch-size", "200"];
    fails(&small, &["--batch-size 200 is larger than the 100 training examples"]);
    fails(&["train", "--out", o, "--model", "gan"], &["gan", "possible values: vae, cvae, ae"]);
    fails(&["sample"], &["required arguments were not provided: <RUN_DIR>"]);
    fails(&["sample", o, "-n", "0"], &["0"]);
}

#[test]
fn divergence_stops_without_saving() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--out", r, "--lr", "1e30", "--epochs", "1"];
    args.extend(SMALL);
    fails(&args, &["diverged", "--lr"]);
    assert!(!run.join("model.safetensors").exists());
}

fn write_idx_dir(dir: &Path, edit: &dyn Fn(usize, &mut Vec<u8>)) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, (gz, name)) in embedded_files().iter().zip(FILE_NAMES).enumerate() {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(*gz).read_to_end(&mut raw).unwrap();
        edit(i, &mut raw);
        std::fs::write(dir.join(name), raw).unwrap();
    }
}

#[test]
fn bad_data_files_get_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let case = |name: &str, edit: &dyn Fn(usize, &mut Vec<u8>), needles: &[&str]| {
        let dir = tmp.path().join(name);
        write_idx_dir(&dir, edit);
        let out = tmp.path().join(format!("{name}-run"));
        fails(&["train", "--data-dir", dir.to_str().unwrap(), "--out", out.to_str().unwrap()], needles);
        assert!(!out.join("model.safetensors").exists());
    };
    case(
        "truncated",
        &|i, f| {
            if i == 0 {
                f.truncate(f.len() - 100)
            }
        },
        &["train-images-idx3-ubyte", "truncated"],
    );
    case(
        "magic",
        &|i, f| {
            if i == 2 {
                f[3] = 1
            }
        },
        &["t10k-images-idx3-ubyte", "magic"],
    );
    case(
        "count",
        &|i, f| {
            if i == 1 {
                f[7] = 0x5f;
                f.truncate(f.len() - 1)
            }
        },
        &["holds 60000 images", "59999 labels"],
    );
    case(
        "label",
        &|i, f| {
            if i == 3 {
                f[8] = 42
            }
        },
        &["t10k-labels-idx1-ubyte", "label 42", "0-9"],
    );
    case(
        "header",
        &|i, f| {
            if i == 0 {
                f.truncate(10)
            }
        },
        &["too short"],
    );
    let missing = tmp.path().join("missing");
    write_idx_dir(&missing, &|_: usize, _: &mut Vec<u8>| {});
    std::fs::remove_file(missing.join("t10k-labels-idx1-ubyte")).unwrap();
    fails(&["train", "--data-dir", missing.to_str().unwrap()], &["missing t10k-labels-idx1-ubyte"]);
    fails(&["train", "--data-dir", "/no/such/dir"], &["/no/such/dir does not exist"]);
    let gz = tmp.path().join("badgz");
    write_idx_dir(&gz, &|_: usize, _: &mut Vec<u8>| {});
    std::fs::write(gz.join("train-labels-idx1-ubyte.gz"), [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    fails(&["train", "--data-dir", gz.to_str().unwrap()], &["train-labels-idx1-ubyte.gz is not a valid gzip file"]);
}

#[test]
fn bench_prints_json_with_the_documented_keys() {
    let out = vae().args(["bench", "--epochs", "1", "--json"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in ["secs_per_epoch", "steps_per_sec", "gflops", "peak_rss_mb"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key} in {stdout}");
    }
}

/// `vae bench --precision bf16` runs where the CPU has AVX512_BF16, and without it (here
/// forced by `VAE_SIMD=v3`) is one line naming what is missing and the fix: a benchmark of
/// the f32 fallback would mislead.
#[test]
fn bench_in_bf16_needs_the_instruction_and_says_so() {
    let out = vae().args(["bench", "--precision", "bf16", "--epochs", "1"]).env("VAE_SIMD", "v3").assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("bf16 needs AVX512_BF16") && stderr.contains("drop --precision"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    if vae::core::bf16::hardware() {
        let out = vae().args(["bench", "--precision", "bf16", "--epochs", "1", "--json"]).assert().success();
        let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(v["precision"], "bf16");
    }
}

/// `vae train --precision bf16`: recorded in config.json, resumed exactly (bf16 products are
/// as deterministic as f32 ones), not changeable on resume; evaluated in bf16 on request,
/// which the report records. Where the CPU lacks AVX512_BF16 (forced here with
/// `VAE_SIMD=v3`), it says so once and trains exactly the f32 run.
#[test]
fn a_bf16_run_records_its_precision_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split, f32_run) = (tmp.path().join("whole"), tmp.path().join("split"), tmp.path().join("f32"));
    let bf16 = ["--precision", "bf16"];
    train(&whole, &[&["--epochs", "2"][..], &bf16].concat());
    train(&split, &[&["--epochs", "1"][..], &bf16].concat());
    train(&f32_run, &["--epochs", "2"]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["precision"], "bf16");
    assert!(!std::fs::read_to_string(f32_run.join("config.json")).unwrap().contains("precision"));
    vae().args(["train", "--resume"]).arg(&split).args(["--epochs", "2"]).assert().success();
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(weights(&whole), weights(&split), "resumed bf16 run differs");
    let loss = |d: &Path| metrics(d)[1]["test_loss"].as_f64().unwrap();
    if vae::core::bf16::hardware() {
        assert_ne!(loss(&whole), loss(&f32_run), "the bf16 run trained in f32");
        assert!((loss(&whole) - loss(&f32_run)).abs() < 2.0, "{} vs f32 {}", loss(&whole), loss(&f32_run));
    }
    fails(&["train", "--resume", split.to_str().unwrap(), "--precision", "f32"], &["--precision cannot be changed"]);
    // Evaluated in bf16, the report says so.
    let args = ["--k", "2", "--limit", "20", "--generated", "0", "--precision", "bf16"];
    let out = vae().arg("eval").arg(&whole).args(args).assert().success();
    let table = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert_eq!(table.contains("products in bf16"), vae::core::bf16::hardware(), "{table}");
    let evals = std::fs::read_to_string(whole.join("evals.jsonl")).unwrap();
    let want = if vae::core::bf16::hardware() { "\"precision\":\"bf16\"" } else { "\"threads\"" };
    assert!(evals.contains(want), "{evals}");
    // Without the instruction: one note, then the f32 run to the last digit.
    let fallback = tmp.path().join("fallback");
    let out = vae()
        .args(["train", "--out"])
        .arg(&fallback)
        .args(common::SMALL)
        .args(["--epochs", "2", "--precision", "bf16"])
        .env("VAE_SIMD", "v3")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("bf16 needs AVX512_BF16") && stderr.contains("training in f32"), "{stderr}");
    assert_eq!(stderr.matches("training in f32").count(), 1, "{stderr}");
    // It records what it trained in, and `vae runs` shows only the bf16 runs as such.
    assert!(!std::fs::read_to_string(fallback.join("config.json")).unwrap().contains("precision"));
    let out = vae().arg("runs").arg(tmp.path()).assert().success();
    let listing = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let line = |name: &str| listing.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
    assert!(line("whole").contains(", bf16") && !line("fallback").contains("bf16"), "{listing}");
    assert!(!line("f32 ").contains("bf16"), "{listing}");
    let f32_v3 = tmp.path().join("f32-v3");
    vae()
        .args(["train", "--out"])
        .arg(&f32_v3)
        .args(common::SMALL)
        .args(["--epochs", "2"])
        .env("VAE_SIMD", "v3")
        .assert()
        .success();
    assert_eq!(loss(&fallback), loss(&f32_v3));
}

#[test]
fn killing_training_at_any_moment_leaves_the_last_epoch_loadable() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let bin = assert_cmd::cargo::cargo_bin("vae");
    // Epochs of 4 steps: kill at several moments, including mid-save.
    for (round, delay_ms) in [150u64, 410, 730].into_iter().enumerate() {
        let mut cmd = std::process::Command::new(&bin);
        if round == 0 {
            cmd.args(["train", "--out"]).arg(&run).args([
                "--train-limit",
                "256",
                "--test-limit",
                "64",
                "--batch-size",
                "64",
            ]);
        } else {
            cmd.args(["train", "--resume"]).arg(&run);
        }
        let mut child = cmd.args(["--epochs", "100000", "--quiet"]).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        child.kill().unwrap();
        child.wait().unwrap();
        if !run.join("train-state.safetensors").exists() {
            continue; // killed before the first epoch ended
        }
        // Both the weights and the train state load, and the metrics agree with the state.
        vae().args(["sample"]).arg(&run).args(["-n", "4", "-o"]).arg(tmp.path().join("s.png")).assert().success();
        let m = metrics(&run);
        let last = m.last().unwrap()["epoch"].as_u64().unwrap();
        let out = vae()
            .args(["train", "--resume"])
            .arg(&run)
            .args(["--epochs"])
            .arg((last + 1).to_string())
            .assert()
            .success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(text.contains("resuming after epoch"), "{text}");
    }
}

#[test]
fn ctrl_c_keeps_every_completed_epoch_and_names_the_resume_command() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let bin = assert_cmd::cargo::cargo_bin("vae");
    let child = std::process::Command::new(&bin)
        .args(["train", "--out"])
        .arg(&run)
        .args(SMALL)
        .args(["--epochs", "100000", "--quiet"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !run.join("metrics.jsonl").exists() {
        assert!(std::time::Instant::now() < deadline, "no epoch finished within a minute");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("Error:"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("interrupted during epoch") && stderr.contains(&format!("`{} train --resume", cargo_run())),
        "{stderr}"
    );
    // The epochs it names are the ones on disk, and the run carries on from them.
    let saved = metrics(&run).len();
    assert!(stderr.contains(&format!("keeps epochs 1–{saved}")), "{stderr}");
    let next = (saved + 1).to_string();
    vae().args(["train", "--resume"]).arg(&run).args(["--epochs", &next]).assert().success();
    assert_eq!(metrics(&run).len(), saved + 1);
    fails(&["train", "--resume", run.to_str().unwrap(), "--epochs", "1"], &["--epochs 1 is fewer than the"]);
}

#[test]
fn a_run_interrupted_before_its_first_epoch_resumes_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, cut) = (tmp.path().join("whole"), tmp.path().join("cut"));
    // The data-mean output bias is set from the data again, as the uninterrupted run set it.
    train(&whole, &["--epochs", "1", "--output-bias", "data-mean"]);
    // What Ctrl-C during epoch 1 leaves: the config and nothing trained.
    std::fs::create_dir(&cut).unwrap();
    std::fs::copy(whole.join("config.json"), cut.join("config.json")).unwrap();
    vae().args(["train", "--resume"]).arg(&cut).assert().success();
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(cut.join("model.safetensors")).unwrap(),
        "restarting from the seed gives the uninterrupted run's weights, byte for byte (two processes: \
         the safetensors header must not depend on hash order)"
    );
}

#[test]
fn completion_scripts_know_every_command_and_flag() {
    let out = vae().args(["completions", "bash"]).assert().success();
    let bash = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for word in ["_vae()", "train", "interpolate", "--temperature", "--resume", "--binarize"] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    let out = vae().args(["completions", "fish"]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("complete -c vae"));
    fails(&["completions", "tcsh"], &["tcsh", "possible values"]);
}

#[test]
fn an_importance_weighted_run_saves_its_objective_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    train(&whole, &["--epochs", "2", "--objective", "iwae", "--k", "3"]);
    train(&split, &["--epochs", "1", "--objective", "iwae", "--k", "3"]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(split.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["train"]["objective"], serde_json::json!({ "iwae": { "k": 3 } }));
    vae().args(["train", "--resume"]).arg(&split).args(["--epochs", "2"]).assert().success();
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(split.join("model.safetensors")).unwrap()
    );
    let out =
        vae().args(["eval"]).arg(&split).args(["--k", "2", "--limit", "20", "--generated", "0"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("vae (trained on the iwae k=3 bound) after epoch 2"), "{stdout}");
    // The tutorial's config.json does not mention the objective at all.
    let plain = tmp.path().join("plain");
    train(&plain, &["--epochs", "1"]);
    assert!(!std::fs::read_to_string(plain.join("config.json")).unwrap().contains("objective"));
}

/// Burda et al.'s procedure in small: a stages schedule (its length the default --epochs),
/// Adam's ε, Glorot's initialisation and the k-draw ELBO, with a β and a KL warm-up, all
/// saved and resumed exactly.
#[test]
fn a_scheduled_run_records_each_epochs_rate_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    let flags = [
        "--lr-schedule",
        "stages:3:2:0.5",
        "--adam-eps",
        "1e-4",
        "--init",
        "glorot",
        "--output-bias",
        "data-mean",
        "--k",
        "2",
        "--beta",
        "0.5",
        "--kl-warmup",
        "4",
    ];
    train(&whole, &flags);
    // β 0.5 reached linearly over 4 epochs, and each epoch's train objective weighted by it.
    for (i, m) in metrics(&whole).iter().enumerate() {
        let beta = 0.5 * ((i + 1) as f64 / 4.0).min(1.0);
        assert!((m["beta"].as_f64().unwrap() - beta).abs() < 1e-7, "epoch {}: {m}", i + 1);
        let weighted = m["train_reconstruction"].as_f64().unwrap() + beta * m["train_kl"].as_f64().unwrap();
        assert!((m["train_objective"].as_f64().unwrap() - weighted).abs() < 1e-6 * weighted, "{m}");
    }
    let rates: Vec<f64> = metrics(&whole).iter().map(|m| m["lr"].as_f64().unwrap()).collect();
    // Stages of 1, 2 and 4 epochs at 1e-3, 5e-4 and 2.5e-4: 7 epochs without --epochs.
    let want = [1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 2.5e-4, 2.5e-4];
    assert_eq!(rates.len(), want.len(), "{rates:?}");
    for (r, w) in rates.iter().zip(want) {
        assert!((r - w).abs() < 1e-9, "{rates:?}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("config.json")).unwrap()).unwrap();
    let t = &config["train"];
    assert_eq!(t["lr_schedule"], serde_json::json!({ "kind": "stages", "stages": 3, "growth": 2, "factor": 0.5 }));
    assert_eq!(
        (t["init"].as_str(), t["objective"].clone()),
        (Some("glorot"), serde_json::json!({ "elbo_k": { "k": 2 } }))
    );
    assert_eq!(t["output_bias"].as_str(), Some("data-mean"));
    assert!((t["adam"]["eps"].as_f64().unwrap() - 1e-4).abs() < 1e-10);
    assert_eq!((t["beta"].as_f64(), t["kl_warmup"].as_u64()), (Some(0.5), Some(4)));
    train(&split, &[&flags[..], &["--epochs", "3"]].concat());
    fails(
        &["train", "--resume", split.to_str().unwrap(), "--init", "pytorch"],
        &["--init cannot be changed when resuming"],
    );
    fails(
        &["train", "--resume", split.to_str().unwrap(), "--output-bias", "init"],
        &["--output-bias cannot be changed when resuming"],
    );
    fails(
        &["train", "--resume", split.to_str().unwrap(), "--kl-warmup", "2"],
        &["--kl-warmup cannot be changed when resuming"],
    );
    // An image-folder flag alone: the resume rule speaks first (it asked for --data-dir).
    fails(
        &["train", "--resume", split.to_str().unwrap(), "--image-size", "32"],
        &["--image-size cannot be changed when resuming"],
    );
    fails(&["train", "--image-size", "32"], &["--image-size applies to image folders", "--data-dir DIR"]);
    vae().args(["train", "--resume"]).arg(&split).args(["--epochs", "7"]).assert().success();
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(split.join("model.safetensors")).unwrap()
    );
}

/// A clone has no `../shared/`: the README and every command's help point into the
/// repository (`reference/` holds the PyTorch reference models and their description).
#[test]
fn docs_and_help_point_at_files_a_clone_has() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(!readme.contains("shared/reference"), "README points outside the repository");
    for name in ["seed-model.md", "conv-model.md", "torch_reference.py", "torch_conv_reference.py"] {
        assert!(root.join("reference").join(name).is_file(), "reference/{name} missing");
    }
    for cmd in ["train", "sample", "eval", "serve", "bench", "reconstruct", "encode", "fit-sampler"] {
        let out = vae().args([cmd, "--help"]).assert().success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(!help.contains("shared/"), "vae {cmd} --help points outside the repository");
    }
}

/// How the binary names itself when cargo started it from its target directory: the test
/// binary and `vae` are built with one profile (`cargo test`: target/debug; `--release`:
/// target/release).
fn cargo_run() -> &'static str {
    if cfg!(debug_assertions) { "cargo run --" } else { "cargo run --release --" }
}

/// `--augment` and `--lr-schedule plateau` are saved, and a run resumed halfway equals the
/// uninterrupted one byte for byte: the augmentation's draws come from each example's own
/// stream, and the plateau's history from metrics.jsonl. Each epoch's rate follows the rule,
/// re-derived here from the recorded test losses: halve after 1 epoch without a new best
/// (by a relative 1e-4).
#[test]
fn augmented_plateau_runs_record_their_rates_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    let flags =
        ["--augment", "hflip,crop:2", "--lr-schedule", "plateau:1", "--threads", "2", "--epochs", "6", "--lr", "5e-2"];
    let out = train(&whole, &flags);
    assert!(out.contains("train (hflip,crop:2)"), "{out}");
    let m = metrics(&whole);
    let (mut best, mut rate) = (f64::INFINITY, 5e-2);
    for e in &m {
        assert!((e["lr"].as_f64().unwrap() - rate).abs() < 1e-9 * rate, "epoch {}: {e}", e["epoch"]);
        let loss = e["test_loss"].as_f64().unwrap();
        if best == f64::INFINITY || loss < best - 1e-4 * best.abs() {
            best = loss;
        } else {
            rate /= 2.0;
            assert!(out.contains(&format!("learning rate {rate:e} from epoch")) || e["epoch"] == 6, "{out}");
        }
    }
    // The rule must have acted, or it went untested: on 2 threads the test loss misses its
    // best in epoch 5, so epoch 6 runs at half the rate.
    let last = m.last().unwrap()["lr"].as_f64().unwrap();
    assert!(last < 5e-2 * 0.75, "the rate was never lowered: {out}");
    let config = std::fs::read_to_string(whole.join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["train"]["augment"], serde_json::json!({ "hflip": true, "crop": 2 }));
    assert_eq!(config["train"]["lr_schedule"], serde_json::json!({ "kind": "plateau", "patience": 1, "factor": 0.5 }));
    train(&split, &[&flags[..6], &["--epochs", "3", "--lr", "5e-2"]].concat());
    fails(&["train", "--resume", split.to_str().unwrap(), "--augment", "hflip"], &["--augment cannot be changed"]);
    vae().args(["train", "--resume"]).arg(&split).args(["--epochs", "6"]).assert().success();
    assert_eq!(
        std::fs::read(whole.join("model.safetensors")).unwrap(),
        std::fs::read(split.join("model.safetensors")).unwrap()
    );
    // Bad values name the flag and the forms.
    fails(&["train", "--augment", "rotate"], &["'rotate' is not an augmentation", "hflip"]);
    fails(&["train", "--augment", "crop:20"], &["--augment crop:20", "at most crop:14"]);
    fails(&["train", "--lr-schedule", "plateau:0"], &["not a schedule", "plateau[:N[:F]]"]);
}
