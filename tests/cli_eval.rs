//! `vae eval`, `vae classifier train` and `--binarize` as a user runs them.

mod common;

use common::*;

fn eval_json(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("eval.json")).unwrap()).unwrap()
}

#[test]
fn eval_reports_likelihoods_and_says_how_to_get_sample_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    let out = vae()
        .args(["eval"])
        .arg(&run)
        .args(["--k", "20", "--limit", "50", "--elbo-samples", "3", "--classifier"])
        .arg(tmp.path().join("nowhere"))
        .output()
        .unwrap();
    // An explicit --classifier that does not exist is an error…
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
    // …while a missing default classifier is a note, and the likelihoods are still reported.
    let out =
        vae().args(["eval"]).arg(&run).args(["--k", "20", "--limit", "50", "--elbo-samples", "3"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("IWAE-20") && stdout.contains("vae classifier train"), "{stdout}");
    let r = eval_json(&run);
    assert_eq!(r["images"], 50);
    assert_eq!(r["objective"], "elbo");
    let (elbo, iwae) = (r["elbo"]["elbo"]["mean"].as_f64().unwrap(), r["iwae"]["bound"]["mean"].as_f64().unwrap());
    assert!(elbo < 0.0 && elbo < iwae, "ELBO {elbo} must be below IWAE-20 {iwae}");
    assert_eq!(r["iwae"]["nll"].as_f64().unwrap(), -iwae);
    assert!(r["elbo"]["elbo"]["se"].as_f64().unwrap() > 0.0);
    assert_eq!(r["activity"].as_array().unwrap().len(), 20);
    assert!(r["samples"].is_null());
}

#[test]
fn eval_rejects_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(&["eval", empty.to_str().unwrap()], &["not a run directory"]);
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    let r = run.to_str().unwrap();
    fails(&["eval", r, "--k", "0"], &["--k must be at least 1"]);
    fails(&["eval", r, "--elbo-samples", "0"], &["--elbo-samples must be at least 1"]);
    fails(&["eval", r, "--limit", "0"], &["--limit must be at least 1"]);
    fails(&["eval", r, "--threads", "100000"], &["--threads", "more than the", "cores here"]);
    // A classifier whose weights do not have the configured shapes.
    let clf = tmp.path().join("clf");
    vae()
        .args(["classifier", "train", "--epochs", "1", "--train-limit", "256", "--quiet", "--out"])
        .arg(&clf)
        .assert()
        .success();
    std::fs::copy(run.join("model.safetensors"), clf.join("model.safetensors")).unwrap();
    fails(
        &["eval", r, "--k", "2", "--limit", "10", "--classifier", clf.to_str().unwrap()],
        &["model.safetensors is corrupt", "fc1.weight"],
    );
    std::fs::remove_file(run.join("model.safetensors")).unwrap();
    fails(&["eval", r], &["has no model.safetensors"]);
}

#[test]
fn classifier_scores_cvae_samples_per_label() {
    let tmp = tempfile::tempdir().unwrap();
    let clf = tmp.path().join("classifier-mnist");
    let out = vae()
        .args(["classifier", "train", "--epochs", "2", "--train-limit", "3000", "--out"])
        .arg(&clf)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("test accuracy") && stdout.contains("saved the classifier"), "{stdout}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clf.join("config.json")).unwrap()).unwrap();
    // 2 epochs on 3,000 images reach ~81%; chance is 10%.
    assert!(config["test_accuracy"].as_f64().unwrap() > 0.7, "{config}");
    // A saved classifier is not replaced by accident.
    let again =
        ["classifier", "train", "--epochs", "1", "--train-limit", "256", "--quiet", "--out", clf.to_str().unwrap()];
    fails(&again, &["already holds a classifier (", "% test accuracy); pass --force"]);
    let kept: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clf.join("config.json")).unwrap()).unwrap();
    assert_eq!(kept, config, "the refused run left the classifier as it was");

    // Found beside the run without --classifier.
    let run = tmp.path().join("cvae");
    train(&run, &["--epochs", "1", "--model", "cvae"]);
    let out =
        vae().args(["eval"]).arg(&run).args(["--k", "2", "--limit", "20", "--generated", "500"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("label accuracy") && stdout.contains("Fréchet"), "{stdout}");
    // The ~81% judge is flagged as too weak to trust.
    assert!(stdout.contains("below 98%, so these scores are rough"), "{stdout}");
    let s = &eval_json(&run)["samples"];
    assert_eq!(s["generated"], 500);
    assert_eq!(s["temperature"], 1.0);
    assert_eq!(s["label_accuracy"].as_array().unwrap().len(), 10);
    let entropy = s["label_entropy"].as_f64().unwrap();
    assert!(entropy > 0.0 && entropy <= 10f64.ln() + 1e-9);
    assert!(s["frechet_distance"].as_f64().unwrap() > s["frechet_distance_train_vs_test"].as_f64().unwrap());
    // Colder samples: the temperature is recorded and named in the table.
    let out = vae()
        .args(["eval"])
        .arg(&run)
        .args(["--k", "2", "--limit", "20", "--generated", "500", "--temperature", "0.5"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("500 samples at temperature 0.5 vs test"), "{stdout}");
    assert_eq!(eval_json(&run)["samples"]["temperature"], 0.5);
    // --force replaces the classifier.
    vae().args(again).arg("--force").assert().success();
    let replaced: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clf.join("config.json")).unwrap()).unwrap();
    assert_eq!(replaced["epochs"], 1);
}

#[test]
fn binarized_runs_train_and_evaluate_on_binary_data() {
    let tmp = tempfile::tempdir().unwrap();
    for mode in ["dynamic", "static"] {
        let run = tmp.path().join(mode);
        train(&run, &["--epochs", "1", "--binarize", mode]);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["train"]["binarize"], mode);
        vae().args(["eval"]).arg(&run).args(["--k", "5", "--limit", "30", "--generated", "0"]).assert().success();
        assert_eq!(eval_json(&run)["binarized"], true);
        fails(&["train", "--resume", run.to_str().unwrap(), "--binarize", "none"], &["--binarize cannot be changed"]);
    }
}
