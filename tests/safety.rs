//! No command loses work: directory kinds, crash windows, divergence, one writer per run,
//! and SIGKILL at random moments.

mod common;

use common::{SMALL, fails, train, vae};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn bytes(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A classifier trained for one short epoch in `dir`.
fn classifier(dir: &Path) {
    vae()
        .args(["classifier", "train", "--epochs", "1", "--train-limit", "256", "-q", "--out", s(dir)])
        .assert()
        .success();
}

#[test]
fn no_command_replaces_another_kind_of_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, clf) = (tmp.path().join("run"), tmp.path().join("clf"));
    train(&run, &["--epochs", "1"]);
    classifier(&clf);
    let (run_config, run_model) = (bytes(run.join("config.json")), bytes(run.join("model.safetensors")));
    let clf_model = bytes(clf.join("model.safetensors"));

    // Writers: a classifier never goes into a VAE run, --force included; a run never into a
    // classifier's directory.
    for force in [&[][..], &["--force"][..]] {
        let mut args = vec!["classifier", "train", "--epochs", "1", "--train-limit", "256", "--out", s(&run)];
        args.extend(force);
        fails(&args, &[s(&run), "is a VAE run directory", "never replaces", "--out"]);
    }
    fails(&["train", "--out", s(&clf), "--epochs", "1"], &[s(&clf), "is a classifier directory", "--out"]);
    assert_eq!(bytes(run.join("config.json")), run_config);
    assert_eq!(bytes(run.join("model.safetensors")), run_model);
    assert_eq!(bytes(clf.join("model.safetensors")), clf_model);

    // Readers name what the directory is instead of calling it corrupt.
    let not_a_run = [s(&clf), "is a classifier directory, not a VAE run", "vae train"];
    fails(&["train", "--resume", s(&clf)], &not_a_run);
    fails(&["sample", s(&clf)], &not_a_run);
    fails(&["eval", s(&clf)], &not_a_run);
    fails(&["serve", s(&clf), "--port", "0"], &not_a_run);
    fails(&["plot", s(&clf)], &not_a_run);
    let not_a_classifier = [s(&run), "is a VAE run directory, not a classifier", "vae classifier train"];
    fails(
        &[
            "eval",
            s(&run),
            "--classifier",
            s(&run),
            "--k",
            "1",
            "--limit",
            "20",
            "--elbo-samples",
            "1",
            "--generated",
            "100",
        ],
        &not_a_classifier,
    );

    // The same classifier may be replaced with --force, and only with it.
    fails(&["classifier", "train", "--epochs", "1", "--out", s(&clf)], &["already holds a classifier", "--force"]);
    let args = ["classifier", "train", "--epochs", "1", "--train-limit", "128", "-q", "--force", "--out", s(&clf)];
    vae().args(args).assert().success();
    assert_ne!(bytes(clf.join("model.safetensors")), clf_model);
}

#[test]
fn directories_of_other_programs_are_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = tmp.path().join("bert");
    std::fs::create_dir(&hf).unwrap();
    let theirs = r#"{"architectures": ["BertModel"]}"#;
    std::fs::write(hf.join("config.json"), theirs).unwrap();
    let needles = [s(&hf), "holds a config.json that vae did not write"];
    fails(&["train", "--out", s(&hf), "--epochs", "1"], &needles);
    fails(&["classifier", "train", "--epochs", "1", "--force", "--out", s(&hf)], &needles);
    fails(&["sample", s(&hf)], &needles);
    assert_eq!(std::fs::read_to_string(hf.join("config.json")).unwrap(), theirs);
}

/// `(model.safetensors, train-state.safetensors)` of a run.
fn weights(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (bytes(dir.join("model.safetensors")), bytes(dir.join("train-state.safetensors")))
}

#[test]
fn a_run_killed_before_its_first_commit_resumes_to_the_same_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, cut) = (tmp.path().join("whole"), tmp.path().join("cut"));
    train(&whole, &["--epochs", "2"]);
    // Epoch 1's metrics line and weights written, its train state not: the window the
    // process can die in between `save_metrics` and `save_state`.
    train(&cut, &["--epochs", "1"]);
    std::fs::remove_file(cut.join("train-state.safetensors")).unwrap();
    std::fs::write(cut.join(format!(".model.safetensors.tmp-{}", 9_999_999)), b"half").unwrap();
    let out = vae().args(["train", "-q", "--resume", s(&cut), "--epochs", "2"]).assert().success();
    assert!(out.get_output().stderr.is_empty());
    assert_eq!(weights(&cut), weights(&whole));
    assert!(!cut.join(".model.safetensors.tmp-9999999").exists(), "stale temporary removed");

    // A state removed after later epochs is not silently started over.
    std::fs::remove_file(cut.join("train-state.safetensors")).unwrap();
    fails(&["train", "--resume", s(&cut), "--epochs", "3"], &["has no train-state.safetensors"]);
}

#[test]
fn a_finished_run_killed_before_its_last_pictures_gets_them_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    std::fs::remove_file(run.join("reconstructions.png")).unwrap();
    vae().args(["train", "--resume", s(&run)]).assert().success();
    assert!(run.join("reconstructions.png").is_file());
}

#[test]
fn divergence_before_any_epoch_leaves_nothing_and_the_retry_works() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let mut args = vec!["train", "--out", s(&run), "--lr", "1e30", "--epochs", "1"];
    args.extend(SMALL);
    fails(&args, &["diverged", "no epoch was saved", "was removed", "lower learning rate", "--lr 1e29"]);
    assert!(!run.exists(), "nothing of the failed run is left");
    // The same command with a sane learning rate.
    train(&run, &["--epochs", "1"]);

    // A directory that existed before keeps whatever else it held.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep").unwrap();
    let mut args = vec!["train", "--out", s(&mine), "--lr", "1e30", "--epochs", "1"];
    args.extend(SMALL);
    fails(&args, &["diverged", "no epoch was saved"]);
    let left: Vec<_> = std::fs::read_dir(&mine).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["notes.txt"]);
}

#[test]
fn divergence_after_saved_epochs_continues_with_a_lower_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    let saved = weights(&run);
    let err = fails(
        &["train", "--resume", s(&run), "--epochs", "3", "--lr", "1e30"],
        &["diverged", "keeps epochs 1–1", "--resume", "--lr 1e29"],
    );
    assert!(err.contains(s(&run)), "{err}");
    assert_eq!(weights(&run), saved, "the saved epoch is untouched");
    vae().args(["train", "-q", "--resume", s(&run), "--lr", "0.0005"]).assert().success();
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lrs: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"].as_f64().unwrap())
        .collect();
    assert_eq!(lrs.len(), 3);
    assert!((lrs[0] - 1e-3).abs() < 1e-9 && (lrs[1] - 5e-4).abs() < 1e-9 && (lrs[2] - 5e-4).abs() < 1e-9, "{lrs:?}");
}

fn spawn_train(args: &[&str]) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("vae"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(path: &Path, child: &mut Child) {
    let start = Instant::now();
    while !path.exists() {
        assert!(child.try_wait().unwrap().is_none(), "the first process ended early");
        assert!(start.elapsed() < Duration::from_secs(60), "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn one_writer_per_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    // A run long enough to be caught in the middle.
    let mut first =
        spawn_train(&["train", "--out", s(&run), "--epochs", "100", "--train-limit", "2000", "--batch-size", "16"]);
    wait_for(&run.join("config.json"), &mut first);
    let pid = first.id().to_string();
    fails(&["train", "--resume", s(&run)], &[s(&run), "in use by another vae process", &pid]);
    fails(&["train", "--out", s(&run), "--epochs", "1"], &["already holds a run"]);
    // The first one, killed, leaves its lock file behind; the kernel dropped the lock itself.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(run.join(".vae.lock").exists());
    vae().args(["train", "-q", "--resume", s(&run), "--epochs", "1"]).assert().success();

    // Two classifiers into one directory at once.
    let clf = tmp.path().join("clf");
    let mut first = spawn_train(&["classifier", "train", "--epochs", "50", "--out", s(&clf)]);
    wait_for(&clf.join(".vae.lock"), &mut first);
    // The lock file exists just before the lock is taken: give it a moment.
    std::thread::sleep(Duration::from_millis(200));
    fails(&["classifier", "train", "--epochs", "1", "--force", "--out", s(&clf)], &["in use by another vae process"]);
    first.kill().unwrap();
    first.wait().unwrap();
}

/// A small xorshift generator: the kill moments, reproducible from the seed.
fn next(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

#[test]
fn sigkill_at_random_moments_then_resume_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let flags = ["--epochs", "3", "--train-limit", "384", "--test-limit", "100", "--batch-size", "32", "-q"];
    let whole = tmp.path().join("whole");
    let start = Instant::now();
    vae().args(["train", "--out", s(&whole)]).args(flags).assert().success();
    // The window kills are drawn from: the uninterrupted run's time, shrunk whenever a
    // child finished before its kill (a machine busier at the start than later).
    let mut duration = start.elapsed().as_secs_f64();
    let expected = weights(&whole);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let trials = 30;
    let mut killed = 0;
    for t in 0..trials {
        let dir = tmp.path().join(format!("t{t}"));
        let mut args = vec!["train", "--out", s(&dir)];
        args.extend(flags);
        let mut child = spawn_train(&args);
        std::thread::sleep(Duration::from_secs_f64(next(&mut rng) * duration));
        let landed = child.try_wait().unwrap().is_none();
        killed += usize::from(landed);
        if !landed {
            duration *= 0.8;
        }
        // SIGKILL: no handler runs.
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever the moment, one of the two commands a user would type finishes the run.
        let resumed = vae().args(["train", "--resume", s(&dir), "-q"]).output().unwrap();
        if !resumed.status.success() {
            let err = String::from_utf8_lossy(&resumed.stderr);
            assert!(err.contains("is not a run directory"), "trial {t}: {err}");
            vae().args(["train", "--out", s(&dir)]).args(flags).assert().success();
        }
        assert!(weights(&dir) == expected, "trial {t}: weights differ from the uninterrupted run");
    }
    assert!(killed >= trials / 2, "only {killed} of {trials} kills landed while training ran");
}
