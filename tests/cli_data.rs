//! Runs and their data folders through the real binary: a run outlives its folder (moved,
//! changed or gone), and `--test-fraction 0` trains on every image.

mod common;

use common::{colour_folder, fails, metrics, vae};
use std::path::Path;

/// Runs `args`, expecting success; returns stdout and stderr together.
fn run(args: &[&str]) -> String {
    let out = vae().args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed: {text}");
    text
}

/// A conv vae on `data` in `out`, with `flags` (`--epochs` among them).
fn train(data: &Path, out: &Path, flags: &[&str]) -> String {
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let base = ["train", "--data-dir", d, "--arch", "conv", "--batch-size", "16", "--out", o];
    run(&[&base[..], flags].concat())
}

/// Train, move the folder: the commands that only decode still work, the ones that need
/// images name `--data-dir`, which takes the moved folder as long as it holds the same
/// images (an added, a removed and a changed file are each named). Changed in place, the
/// folder is used with a warning, and a resume warns once and then records the new files.
#[test]
fn a_run_outlives_its_data_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, moved, r) = (tmp.path().join("squares"), tmp.path().join("elsewhere"), tmp.path().join("run"));
    colour_folder(&data);
    train(&data, &r, &["--epochs", "1"]);
    let record = std::fs::read_to_string(r.join("data-files.tsv")).unwrap();
    assert_eq!(record.lines().count(), 1 + 72, "a header and one line per image");
    assert!(record.lines().nth(1).unwrap().ends_with("\ttrain/blue/00.png"), "{record}");
    std::fs::rename(&data, &moved).unwrap();
    let (rs, m) = (r.to_str().unwrap(), moved.to_str().unwrap());

    // No data needed: sampling, decoding walks, the page.
    run(&["sample", rs, "-n", "4"]);
    run(&["traverse", rs]);
    assert!(run(&["manifold", rs]).contains("decoding over z0 and z1 instead"));
    assert!(!run(&["manifold", rs, "--data-dir", m]).contains("note:"));
    run(&["interpolate", rs, "--from", &format!("{m}/test/red/20.png"), "--to", &format!("{m}/test/blue/21.png")]);
    let gone = "which is no longer there; if the folder moved, say where with --data-dir DIR";
    for cmd in ["reconstruct", "scatter", "encode", "eval", "fit-sampler"] {
        fails(&[cmd, rs], &[gone]);
        run(&[cmd, rs, "--data-dir", m]);
    }
    fails(&["interpolate", rs, "--from", "0", "--to", "1"], &[gone]);
    run(&["interpolate", rs, "--from", "0", "--to", "1", "--data-dir", m]);

    // Not the same images: one error naming what differs.
    std::fs::copy(moved.join("train/red/00.png"), moved.join("train/red/99.png")).unwrap();
    std::fs::remove_file(moved.join("train/blue/03.png")).unwrap();
    std::fs::copy(moved.join("train/green/00.png"), moved.join("train/green/01.png")).unwrap();
    fails(
        &["reconstruct", rs, "--data-dir", m],
        &["does not hold the images", "1 file added, 1 file removed, 1 file changed", "train/red/99.png added"],
    );
    fails(&["train", "--resume", rs, "--epochs", "2", "--data-dir", m], &["does not hold the images"]);

    // Put back where it was, but changed: used with a warning; a resume warns, trains on the
    // folder as it is and records it, so the next command is quiet.
    std::fs::rename(&moved, &data).unwrap();
    let out = run(&["scatter", rs]);
    assert!(out.contains("changed since") && out.contains("using it as it is now"), "{out}");
    let out = run(&["train", "--resume", rs, "--epochs", "2"]);
    assert!(out.contains("warning:") && out.contains("1 file added, 1 file removed, 1 file changed"), "{out}");
    assert!(out.contains("60 train / 12 test images"), "{out}");
    assert!(!run(&["scatter", rs]).contains("warning"));

    // A resume from a moved folder with the same images continues there and remembers it.
    std::fs::rename(&data, &moved).unwrap();
    run(&["train", "--resume", rs, "--epochs", "3", "--data-dir", m]);
    run(&["reconstruct", rs]);
    let config = std::fs::read_to_string(r.join("config.json")).unwrap();
    assert!(config.contains("elsewhere"), "{config}");
    // MNIST has no folder to move.
    let mnist = tmp.path().join("mnist");
    run(&["train", "--train-limit", "256", "--test-limit", "64", "--epochs", "1", "--out", mnist.to_str().unwrap()]);
    fails(&["scatter", mnist.to_str().unwrap(), "--data-dir", m], &["has no folder; drop --data-dir"]);
}

/// `--test-fraction 0`: every image trains, the epochs say there is no test loss (and
/// metrics.jsonl has none), the end-of-training pictures show training images, and each
/// command that needs test images says what to do instead.
#[test]
fn test_fraction_zero_trains_on_every_image() {
    let tmp = tempfile::tempdir().unwrap();
    let (folder, r) = (tmp.path().join("squares"), tmp.path().join("run"));
    colour_folder(&folder);
    let data = folder.join("train"); // 60 images in class folders, no train/ and test/
    let out = train(&data, &r, &["--test-fraction", "0", "--epochs", "2", "--lr-schedule", "plateau:1"]);
    assert!(out.contains("60 train / 0 test images"), "{out}");
    assert!(out.contains("no test images"), "{out}");
    let m = metrics(&r);
    assert_eq!(m.len(), 2);
    assert!(m[0].get("test_loss").is_none() && m[0]["train_objective"].as_f64().unwrap() > 0.0, "{}", m[0]);
    assert!(r.join("reconstructions.png").is_file() && r.join("curves.png").is_file());
    let rs = r.to_str().unwrap();
    fails(&["reconstruct", rs], &["has no test images", "--input FILE|DIR"]);
    fails(&["eval", rs], &["has no test images", "--split train"]);
    fails(&["scatter", rs], &["has no test images", "--split train"]);
    fails(&["interpolate", rs, "--from", "0", "--to", "1"], &["has no test images", "picture file"]);
    run(&["scatter", rs, "--split", "train"]);
    run(&["manifold", rs]);
    run(&["eval", rs, "--split", "train", "--k", "2"]);
    run(&["plot", rs]);
    // Out of range, named with the range.
    let d = data.to_str().unwrap();
    fails(&["train", "--data-dir", d, "--test-fraction", "1"], &["--test-fraction", "from 0 up to 1"]);
}

/// An image folder's judge is a small convolutional classifier at the run's image size,
/// trained for about 3,000 steps by default (here 1 step per epoch: 1,000 epochs, printed
/// as 20 lines); the colour squares are told apart perfectly, and `eval` uses it.
#[test]
fn an_image_folders_judge_is_a_conv_classifier() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, judge, r) = (tmp.path().join("squares"), tmp.path().join("judge"), tmp.path().join("run"));
    colour_folder(&data);
    let (d, j) = (data.to_str().unwrap(), judge.to_str().unwrap());
    let out = run(&["classifier", "train", "--data-dir", d, "--out", j]);
    assert!(out.contains("training a conv 32,64 + 256 classifier"), "{out}");
    assert!(out.contains("epoch 1000/1000") && out.lines().filter(|l| l.starts_with("epoch")).count() == 20, "{out}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(judge.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["classifier"]["conv"], serde_json::json!([32, 64]));
    assert_eq!(config["epochs"], 1000);
    assert_eq!(config["test_accuracy"], 1.0, "{out}");
    let st = std::fs::read(judge.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert_eq!(st.tensor("conv.0.weight").unwrap().shape(), [32, 3, 4, 4]);
    assert_eq!(st.tensor("fc2.weight").unwrap().shape(), [256, 64 * 4 * 4]);
    // --arch mlp keeps the MLP on pixels.
    let mlp = tmp.path().join("mlp");
    let out = run(&[
        "classifier",
        "train",
        "--data-dir",
        d,
        "--arch",
        "mlp",
        "--epochs",
        "2",
        "--out",
        mlp.to_str().unwrap(),
    ]);
    assert!(out.contains("training a mlp 1024,256 classifier"), "{out}");
    // The run's evaluation is judged by it.
    train(&data, &r, &["--epochs", "1", "--model", "cvae"]);
    let out = run(&["eval", r.to_str().unwrap(), "--k", "2", "--generated", "60", "--classifier", j]);
    assert!(out.contains("classifier test accuracy") && out.contains("100.00%"), "{out}");
}

/// `--likelihood discretized-gaussian`: a probability of the 256 values, so it trains on the
/// grid values themselves (no dequantization) and `eval` reports NLL / (D ln 2) as a code
/// length; it trains on the importance-weighted bound too, and so does the logistic mixture.
#[test]
fn a_discretized_gaussian_run_reports_bits_as_a_probability() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, r) = (tmp.path().join("squares"), tmp.path().join("run"));
    colour_folder(&data);
    train(&data, &r, &["--epochs", "2", "--likelihood", "discretized-gaussian"]);
    let config = std::fs::read_to_string(r.join("config.json")).unwrap();
    assert!(config.contains("\"likelihood\": \"discretized-gaussian\"") && !config.contains("dequantize"), "{config}");
    let out = run(&["eval", r.to_str().unwrap(), "--k", "4", "--generated", "0"]);
    let bits = out.lines().find(|l| l.starts_with("bits per dimension")).unwrap();
    assert!(bits.contains("a probability of the 256 values"), "{bits}");
    let value: f64 = bits.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(value > 0.0 && value.is_finite(), "{bits}");
    run(&["sample", r.to_str().unwrap(), "-n", "4"]);
    let warmup = |run: &std::path::Path| {
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
        config["train"]["kl_warmup"].as_u64().unwrap_or(0) // written only when not 0
    };
    assert_eq!(warmup(&r), 0, "no warm-up by default but for the mixture");
    for likelihood in ["discretized-gaussian", "logistic-mixture"] {
        let iwae = tmp.path().join(format!("iwae-{likelihood}"));
        train(&data, &iwae, &["--epochs", "1", "--likelihood", likelihood, "--objective", "iwae", "--k", "3"]);
        let config = std::fs::read_to_string(iwae.join("config.json")).unwrap();
        assert!(config.contains("\"iwae\""), "{config}");
        assert_eq!(warmup(&iwae), 0, "the importance-weighted bound has no KL term to warm up");
    }
    // The mixture on the ELBO warms its KL up over 5 epochs unless told otherwise.
    let (mixture, off) = (tmp.path().join("mixture"), tmp.path().join("mixture-off"));
    train(&data, &mixture, &["--epochs", "1", "--likelihood", "logistic-mixture"]);
    train(&data, &off, &["--epochs", "1", "--likelihood", "logistic-mixture", "--kl-warmup", "0"]);
    assert_eq!((warmup(&mixture), warmup(&off)), (5, 0));
}

/// A folder of NumPy arrays (what `vae.train` in Python writes): colour images with named
/// classes train a cvae, whose config carries the names; a float array is refused naming the
/// file and the fix.
#[test]
fn a_folder_of_numpy_arrays_trains() {
    use vae::export::{npy, npy_i64, npy_u8_shaped};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("arrays");
    std::fs::create_dir(&data).unwrap();
    // 40 training and 8 test pictures 3×8×8: class 0 reddish, class 1 bluish.
    let picture = |i: usize| -> Vec<u8> {
        let c = i % 2;
        (0..3 * 64).map(|v| if v / 64 == 2 * c { 200 + (i % 7) as u8 } else { (v % 50) as u8 }).collect()
    };
    let split = |n: usize| (0..n).flat_map(picture).collect::<Vec<u8>>();
    let labels = |n: usize| (0..n).map(|i| (i % 2) as i64).collect::<Vec<i64>>();
    std::fs::write(data.join("train-images.npy"), npy_u8_shaped(&[40, 3, 8, 8], &split(40))).unwrap();
    std::fs::write(data.join("train-labels.npy"), npy_i64(&labels(40))).unwrap();
    std::fs::write(data.join("test-images.npy"), npy_u8_shaped(&[8, 3, 8, 8], &split(8))).unwrap();
    std::fs::write(data.join("test-labels.npy"), npy_i64(&labels(8))).unwrap();
    std::fs::write(data.join("classes.json"), r#"["red", "blue"]"#).unwrap();
    let out = tmp.path().join("run");
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let text = run(&["train", "--data-dir", d, "--model", "cvae", "--batch-size", "8", "--epochs", "1", "--out", o]);
    assert!(text.contains("arrays in") && text.contains("40 train / 8 test images"), "{text}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["class_names"], serde_json::json!(["red", "blue"]), "{config}");
    assert_eq!(metrics(&out).len(), 1);
    run(&["train", "--resume", o, "--epochs", "2"]);
    assert_eq!(metrics(&out).len(), 2);
    // --image-size is for picture folders.
    fails(&["train", "--data-dir", d, "--image-size", "8"], &["--image-size", "NumPy arrays", "drop --image-size"]);
    std::fs::write(data.join("train-images.npy"), npy(&[40, 3, 8, 8], &vec![0.5; 40 * 192])).unwrap();
    let o2 = tmp.path().join("run2");
    fails(&["train", "--data-dir", d, "--out", o2.to_str().unwrap()], &["train-images.npy", "dtype <f4", "uint8"]);
}
