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
    fails(&["eval", r, "--k", "0"], &["--k <K>", "0 is not in 1..=1000000"]);
    fails(&["eval", r, "--elbo-samples", "0"], &["--elbo-samples <N>", "0 is not in 1..=10000"]);
    fails(&["eval", r, "--limit", "0"], &["--limit <N>", "0 is not in 1..=1000000000"]);
    fails(&["eval", r, "--threads", "100000"], &["--threads", "more than the", "cores here"]);
    // One generated image cannot have a covariance (this panicked once).
    fails(&["eval", r, "--generated", "1", "--k", "2", "--limit", "5"], &["--generated must be 0", "at least 2"]);
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
    // Samples from the prior: a one-epoch model's are far from the data, which the
    // distances below check.
    train(&run, &["--epochs", "1", "--model", "cvae", "--fit-sampler", "0"]);
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
    // Few samples: a warning, and the table says the distance means little.
    let out = vae().args(["eval"]).arg(&run).args(["--k", "2", "--limit", "5", "--generated", "5"]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stderr.contains("warning: --generated 5 is too few"), "{stderr}");
    assert!(stdout.contains("too few samples to mean much"), "{stdout}");
    // A classifier of another dataset is refused, not trusted.
    let fashion = tmp.path().join("fashion");
    train(&fashion, &["--epochs", "1", "--dataset", "fashion-mnist"]);
    fails(
        &["eval", fashion.to_str().unwrap(), "--k", "2", "--limit", "5", "--classifier", clf.to_str().unwrap()],
        &["was trained on MNIST (embedded) but the run on Fashion-MNIST", "--dataset fashion-mnist"],
    );
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
        // Its training images are evaluated (and encoded) binary as well, dynamic or static.
        let cfg: vae::checkpoint::RunConfig = serde_json::from_value(config).unwrap();
        let data = vae::data::Dataset::load(&vae::data::Source::Mnist).unwrap();
        let train = vae::eval::report::SplitName::Train;
        let split = vae::eval::report::eval_split(&cfg, &data, train, Some(50)).unwrap();
        assert!(split.images.iter().all(|&v| v == 0 || v == 255), "{mode}: grey training images");
        assert!(split.images.contains(&255));
        fails(&["train", "--resume", run.to_str().unwrap(), "--binarize", "none"], &["--binarize cannot be changed"]);
    }
}

#[test]
fn every_evaluation_is_kept_and_a_report_goes_where_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    let quick = ["--k", "2", "--elbo-samples", "1", "--generated", "0"];
    vae().args(["eval"]).arg(&run).args(quick).args(["--limit", "40"]).assert().success();
    vae().args(["eval"]).arg(&run).args(quick).args(["--limit", "3", "--seed", "9"]).assert().success();
    // evals.jsonl keeps both, with their settings; eval.json is the latest.
    let history = std::fs::read_to_string(run.join("evals.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = history.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    assert_eq!((records[0]["images"].as_u64(), records[1]["images"].as_u64()), (Some(40), Some(3)));
    assert_eq!(records[1]["settings"]["seed"], 9);
    assert_eq!(records[1]["settings"]["limit"], 3);
    assert!(records[1]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(eval_json(&run)["images"], 3);

    // -o FILE: the report there, the run directory untouched.
    let out = tmp.path().join("report.json");
    vae().args(["eval"]).arg(&run).args(quick).args(["--limit", "4", "-o"]).arg(&out).assert().success();
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(report["images"], 4);
    assert_eq!(std::fs::read_to_string(run.join("evals.jsonl")).unwrap(), history);
}

#[test]
fn an_unwritable_report_is_refused_before_the_work_and_o_offers_a_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    // A directory where the history goes: unwritable even for root (permissions are not).
    std::fs::create_dir(run.join("evals.jsonl")).unwrap();
    let r = run.to_str().unwrap();
    let start = std::time::Instant::now();
    // IWAE-5000 on 10,000 images takes minutes: refused at once means checked first.
    fails(&["eval", r, "--k", "5000"], &["cannot write", "evals.jsonl", "pass -o FILE"]);
    assert!(start.elapsed().as_secs() < 20, "refused only after the work");
    let out = tmp.path().join("r.json");
    vae().args(["eval", r, "--k", "2", "--limit", "5", "--generated", "0", "-o"]).arg(&out).assert().success();
    assert!(out.is_file());
    fails(&["eval", r, "--k", "2", "-o", tmp.path().to_str().unwrap()], &["cannot write", "it is a directory"]);
}
