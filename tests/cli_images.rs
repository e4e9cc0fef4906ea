//! Your own images through the real binary: a colour image folder with class sub-folders
//! trained as a conv cvae, every picture command and eval on it, conv MNIST runs, and the
//! mistakes a user makes with the new flags.

mod common;

use common::{colour_folder, fails, png_size, vae};
use image::{Rgb, RgbImage};
use std::path::Path;

/// The tests' folder cache, under the target directory.
const CACHE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/vae-cache");

fn run(args: &[&str]) -> String {
    let out = vae().env("VAE_CACHE_DIR", CACHE).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?} failed: {text}");
    text
}

fn colour_png(path: &Path) -> bool {
    image::open(path).unwrap().color().has_color()
}

#[test]
fn a_colour_folder_trains_as_a_conv_cvae_and_every_command_works_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, r) = (tmp.path().join("squares"), tmp.path().join("run"));
    colour_folder(&data);
    let (d, rs) = (data.to_str().unwrap(), r.to_str().unwrap());
    let out = run(&[
        "train",
        "--data-dir",
        d,
        "--arch",
        "conv",
        "--model",
        "cvae",
        "--likelihood",
        "gaussian",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--latent-dim",
        "4",
        "--out",
        rs,
    ]);
    assert!(out.contains("decoded 72 images (16x16 RGB)"), "{out}");
    assert!(out.contains("60 train / 12 test images"), "{out}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(r.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["class_names"], serde_json::json!(["blue", "green", "red"]));
    assert_eq!(config["model"]["widths"], serde_json::json!([32, 64]));
    assert_eq!(config["train"]["dataset"]["folder"]["color"], "rgb");
    assert!(colour_png(&r.join("samples/epoch-002.png")) && colour_png(&r.join("reconstructions.png")));

    // Pictures: samples of a class by name, a JPEG reconstructed, walks and sweeps.
    let sample = r.join("red.png");
    run(&["sample", rs, "--label", "red", "-n", "8", "-o", sample.to_str().unwrap()]);
    assert!(colour_png(&sample));
    assert_eq!(png_size(&sample), (8 * 18 + 2, 20));
    // Without --label, row r shows class r, named in a strip on the left ("green": 5 letters).
    let rows = r.join("rows.png");
    run(&["sample", rs, "-n", "6", "--nrow", "3", "-o", rows.to_str().unwrap()]);
    let (w, h) = png_size(&rows);
    assert!(h == 2 * 18 + 2 && (3 * 18 + 2 + 12 + 25..3 * 18 + 2 + 12 + 50).contains(&w), "{w}x{h}");
    let jpeg = tmp.path().join("photo.jpg");
    RgbImage::from_pixel(40, 30, Rgb([200, 30, 30])).save(&jpeg).unwrap();
    let rec = r.join("rec.png");
    run(&["reconstruct", rs, "--input", jpeg.to_str().unwrap(), "--label", "2", "-o", rec.to_str().unwrap()]);
    // One row: the picture and its reconstruction, under a title, above "input"/"output"
    // (staggered on two lines: they are wider than the 16-pixel cells).
    let (w, h) = png_size(&rec);
    assert!(h == 20 + 2 * 23 + 16 && w > 2 * 18 + 2, "{w}x{h}");
    for cmd in [
        &["interpolate", rs, "--from", "0", "--to", "5"][..],
        &["interpolate", rs, "--labels"],
        &["traverse", rs],
        &["manifold", rs, "-n", "4"],
    ] {
        run(cmd);
    }
    run(&["scatter", rs]);
    // --labels: one per class, every class named below (on two staggered lines: the names
    // are wider than the 16-pixel cells), a title above.
    assert_eq!(png_size(&r.join("interpolate-labels-seed0.png")).1, 20 + 2 * 23 + 16);

    // Eval: a proper density, so bits per dimension; no classifier yet, so the hint.
    let out = run(&["eval", rs, "--k", "20", "--elbo-samples", "2", "--generated", "50"]);
    assert!(out.contains("bits per dimension") && out.contains("16x16 RGB, gaussian"), "{out}");
    // Trained and evaluated on dequantized values, so the figure is a code length.
    assert!(out.contains("on dequantized x = (v + u)/256"), "{out}");
    assert_eq!(config["model"]["dequantize"], true);
    assert!(out.contains(&format!("vae classifier train --data-dir {d}")), "{out}");
    let judge = tmp.path().join("judge");
    run(&["classifier", "train", "--data-dir", d, "--epochs", "3", "--out", judge.to_str().unwrap(), "-q"]);
    let out = run(&[
        "eval",
        rs,
        "--k",
        "5",
        "--elbo-samples",
        "1",
        "--generated",
        "60",
        "--classifier",
        judge.to_str().unwrap(),
    ]);
    assert!(out.contains("label accuracy of samples") && out.contains("ln 3 = 1.099 is uniform"), "{out}");

    // Resume continues the conv run exactly.
    let resumed = tmp.path().join("resumed");
    run(&[
        "train",
        "--data-dir",
        d,
        "--arch",
        "conv",
        "--model",
        "cvae",
        "--likelihood",
        "gaussian",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--latent-dim",
        "4",
        "--out",
        resumed.to_str().unwrap(),
    ]);
    run(&["train", "--resume", resumed.to_str().unwrap(), "--epochs", "2"]);
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(weights(&resumed) == weights(&r), "resumed conv weights differ from the uninterrupted run's");
}

#[test]
fn conv_mnist_runs_and_the_mistakes_users_make_get_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("conv");
    common::train(&r, &["--arch", "conv", "--epochs", "1", "--likelihood", "continuous-bernoulli"]);
    let out = run(&["eval", r.to_str().unwrap(), "--k", "10", "--limit", "50", "--generated", "0"]);
    assert!(out.contains("continuous-bernoulli likelihood") && out.contains("bits per dimension"), "{out}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(r.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["likelihood"], "continuous-bernoulli");

    let out = tmp.path().join("x");
    let o = out.to_str().unwrap();
    fails(
        &["train", "--out", o, "--likelihood", "gaussian", "--binarize", "dynamic"],
        &["--likelihood gaussian", "--binarize"],
    );
    fails(
        &["train", "--out", o, "--arch", "conv", "--widths", "32,64,128"],
        &["divisible by 2^3 = 8", "--image-size 24"],
    );
    fails(
        &["train", "--out", o, "--arch", "conv", "--hidden-layers", "2"],
        &["--hidden-layers sizes an mlp", "--widths"],
    );
    fails(&["train", "--out", o, "--widths", "8"], &["--widths sets the channels of --arch conv"]);
    fails(&["train", "--out", o, "--blocks", "2"], &["--blocks sets the residual blocks of --arch resnet"]);
    fails(&["train", "--out", o, "--arch", "conv", "--blocks", "2"], &["--blocks", "--arch resnet"]);
    fails(&["train", "--out", o, "--arch", "resnet", "--blocks", "0"], &["--blocks <N>"]);
    fails(&["bench", "--blocks", "2"], &["--blocks", "add --arch resnet"]);
    fails(&["train", "--out", o, "--sigma", "0.1"], &["--sigma", "add --likelihood gaussian"]);
    fails(
        &["train", "--out", o, "--likelihood", "gaussian", "--sigma", "-1"],
        &["--sigma <SIGMA>", "expected a number greater than 0"],
    );
    fails(&["train", "--out", o, "--mixtures", "5"], &["--mixtures", "add --likelihood logistic-mixture"]);
    fails(&["train", "--out", o, "--likelihood", "logistic-mixture", "--mixtures", "65"], &["--mixtures <K>", "65"]);
    fails(&["train", "--out", o, "--image-size", "32"], &["--data-dir"]);
    fails(
        &["train", "--out", o, "--model", "cvae", "--data-dir", tmp.path().join("none").to_str().unwrap()],
        &["does not exist"],
    );
    fails(&["train", "--resume", r.to_str().unwrap(), "--arch", "mlp"], &["--arch cannot be changed when resuming"]);
    let flat = tmp.path().join("flat");
    std::fs::create_dir(&flat).unwrap();
    for i in 0..4 {
        RgbImage::from_pixel(8, 8, Rgb([i * 50, 0, 0])).save(flat.join(format!("{i}.png"))).unwrap();
    }
    let f = flat.to_str().unwrap();
    fails(&["train", "--out", o, "--data-dir", f, "--model", "cvae"], &["--model cvae needs labelled data"]);
    fails(&["classifier", "train", "--data-dir", f, "--out", o], &["is unlabelled"]);
    fails(
        &["train", "--out", o, "--data-dir", f, "--test-fraction", "1.5"],
        &["--test-fraction <F>", "expected a fraction from 0 up to 1"],
    );
}

/// `--train-limit` on a folder listed class by class takes every class in proportion (issue
/// 22: the first 300 files were two classes of ten), and the end-of-training mixture, fitted
/// to the images the run trained on, gets a share of each.
#[test]
fn a_train_limit_samples_every_class_of_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colour");
    colour_folder(&data);
    let run = tmp.path().join("run");
    train_conv(
        &data,
        &run,
        &[
            "--model",
            "cvae",
            "--batch-size",
            "8",
            "--latent-dim",
            "2",
            "--train-limit",
            "30",
            "--test-limit",
            "6",
            "-q",
        ],
    );
    let f: vae::sampler::FittedGmm =
        serde_json::from_str(&std::fs::read_to_string(run.join(vae::sampler::GMM_FILE)).unwrap()).unwrap();
    // 30 of 3 × 20 training images: 10 of each class (the first 30 files were 20 blue, 10 green).
    assert_eq!(f.mixtures.iter().map(|m| m.codes).collect::<Vec<_>>(), vec![10, 10, 10]);
    // Each mixture gets one component per 2 · 2 codes at most: 10 codes, 2 components.
    assert!(f.mixtures.iter().all(|m| m.gmm.components() == 2));
}

/// A run trained with `--background black` prepares a user's pictures on black, as its
/// training images were (issue 22: they were composited on white), in `reconstruct --input`,
/// `interpolate --from`, the page's upload and the library; MNIST runs keep the digit
/// preparation.
#[test]
fn your_pictures_get_the_runs_background() {
    use vae::data::Background;
    use vae::images::Preparation;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colour");
    colour_folder(&data);
    let prep = |run: &std::path::Path| vae::checkpoint::RunDir::new(run).load_config().unwrap().picture_preparation();
    for (flag, want) in [("black", Background::Black), ("white", Background::White)] {
        let run = tmp.path().join(flag);
        train_conv(&data, &run, &["-q", "--background", flag, "--fit-sampler", "0", "--batch-size", "20"]);
        assert_eq!(prep(&run), Preparation::Photo { background: want });
        // A transparent picture goes in as the background: all 0 on black, all 1 on white.
        let clear = tmp.path().join("clear.png");
        image::RgbaImage::from_pixel(20, 20, image::Rgba([0, 0, 0, 0])).save(&clear).unwrap();
        let x = vae::images::load_picture(&clear, vae::core::Shape::new(3, 16, 16), prep(&run)).unwrap();
        let v = if want == Background::Black { 0.0 } else { 1.0 };
        assert!(x.iter().all(|&p| p == v), "{flag}");
        vae().args(["reconstruct"]).arg(&run).arg("--input").arg(&clear).assert().success();
    }
    // The page's API takes a class by name, as `vae sample --label` does.
    let cvae = tmp.path().join("cvae");
    train_conv(&data, &cvae, &["--model", "cvae", "-q", "--fit-sampler", "0", "--batch-size", "20"]);
    let addr = common::start_server(&cvae);
    let by_name = common::http::get(addr, "/api/sample?label=Green&n=4&seed=3&format=values");
    let by_number = common::http::get(addr, "/api/sample?label=1&n=4&seed=3&format=values");
    assert_eq!(by_name.status, 200, "{}", String::from_utf8_lossy(&by_name.body));
    assert_eq!(by_name.body, by_number.body);
    let red = common::http::get(addr, "/api/sample?label=red&n=4&seed=3&format=values");
    assert_ne!(red.body, by_number.body);
    let mnist = tmp.path().join("mnist");
    common::train(&mnist, &["--epochs", "1", "--fit-sampler", "0"]);
    assert_eq!(prep(&mnist), Preparation::Digits);
}

/// A cvae on a folder whose classes are smaller than a batch warns, naming them; one on a
/// one-class folder is refused, saying it has one class (it said "none").
#[test]
fn a_cvae_on_small_or_single_classes_is_warned_or_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colour");
    colour_folder(&data);
    let cvae = |batch| ["--model", "cvae", "--fit-sampler", "0", "--batch-size", batch];
    let stderr = train_conv(&data, &tmp.path().join("ok"), &cvae("16"));
    assert!(!stderr.contains("warning"), "20 images a class, batches of 16: {stderr}");
    let stderr = train_conv(&data, &tmp.path().join("small"), &cvae("32"));
    assert!(
        stderr.contains(
            "warning: 3 classes have fewer training images than a batch of 32: blue (20), green (20), red (20)"
        ),
        "{stderr}"
    );
    let one = tmp.path().join("one");
    std::fs::create_dir_all(one.join("only")).unwrap();
    for i in 0..4 {
        image::RgbImage::from_pixel(8, 8, image::Rgb([i * 60, 0, 0])).save(one.join(format!("only/{i}.png"))).unwrap();
    }
    fails(
        &["train", "--data-dir", one.to_str().unwrap(), "--model", "cvae", "--batch-size", "2"],
        &["--model cvae needs labelled data with at least 2 classes", "this data has one class", "--model vae"],
    );
}

/// Flag mistakes are reported before a folder is decoded (issue 22: after the whole folder),
/// wherever the flags fix the images' shape.
#[test]
fn option_errors_come_before_the_folder_is_decoded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colour");
    colour_folder(&data);
    let d = data.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--arch", "conv", "--widths", "0,64"], "every width must be between 1 and 4096"),
        (&["--arch", "conv", "--widths", "8,8,8,8,8"], "has 5 stride-2 layers"),
        (&["--likelihood", "gaussian", "--binarize", "dynamic"], "--binarize makes every pixel 0 or 1"),
    ];
    for (flags, needle) in cases {
        let out = vae()
            .args(["train", "--data-dir", d, "--image-size", "16", "--out"])
            .arg(tmp.path().join("x"))
            .args(flags)
            .output()
            .unwrap();
        let all = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && all.contains(needle), "{flags:?}: {all}");
        assert!(!all.contains("decoded"), "{flags:?}: the folder was decoded first: {all}");
    }
}

/// `vae cache` lists the decoded-folder cache and clears it, and the cache keeps to
/// `VAE_CACHE_LIMIT_MB` (issue 22: 170 MB after an afternoon, growing).
#[test]
fn the_folder_cache_is_listed_cleared_and_kept_to_its_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, cache) = (tmp.path().join("colour"), tmp.path().join("cache"));
    colour_folder(&data);
    let d = data.to_str().unwrap();
    let vae_in = |limit: &str, args: &[&str]| {
        let out = vae().env("VAE_CACHE_DIR", &cache).env("VAE_CACHE_LIMIT_MB", limit).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let files = || std::fs::read_dir(&cache).map_or(0, |r| r.count());
    // Two decodes of the folder (two sizes) under the default limit: both kept.
    for size in ["8", "16"] {
        vae_in("2048", &["train", "--data-dir", d, "--image-size", size, "--epochs", "1", "--batch-size", "20", "-q"]);
    }
    assert_eq!(files(), 2);
    let list = vae_in("2048", &["cache"]);
    assert!(
        list.contains("2 cached folders") && list.contains("limit 2048.0 MB") && list.contains("folder-"),
        "{list}"
    );
    // A limit of 0: each write keeps only itself.
    vae_in("0", &["train", "--data-dir", d, "--image-size", "12", "--epochs", "1", "--batch-size", "20", "-q"]);
    assert_eq!(files(), 1);
    let cleared = vae_in("2048", &["cache", "--clear"]);
    assert!(cleared.contains("removed 1 cached folder"), "{cleared}");
    assert_eq!(files(), 0);
}

/// A judge of another shape found in the default place skips the sample scores with a
/// warning, and the rest of the evaluation stands (it refused the whole evaluation); a
/// folder's judges at different sizes have their own default folders.
#[test]
fn a_judge_of_the_wrong_shape_skips_only_the_sample_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colour");
    colour_folder(&data);
    let d = data.to_str().unwrap();
    let runs = tmp.path().join("runs");
    // A grey judge of the folder, where the run (below) is in colour: same default folder.
    vae()
        .args(["classifier", "train", "--data-dir", d, "--color", "grey", "--epochs", "1", "-q", "--out"])
        .arg(runs.join("classifier-colour"))
        .assert()
        .success();
    let run = runs.join("run");
    train_conv(&data, &run, &["--batch-size", "20", "-q"]);
    let out = vae().args(["eval"]).arg(&run).args(["--k", "2", "--generated", "10"]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("warning: sample scores skipped: the classifier in"), "{stderr}");
    assert!(stderr.contains("images in 3 classes but the model makes"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("IWAE"), "the evaluation still ran: {stdout}");
    // Named explicitly, the same judge is an error.
    let classifier = runs.join("classifier-colour");
    fails(
        &["eval", run.to_str().unwrap(), "--k", "2", "--generated", "10", "--classifier", classifier.to_str().unwrap()],
        &["takes", "pass --classifier DIR with a classifier trained on this run's data"],
    );
    // Sized folders get sized default judges.
    let src = |size: Option<usize>| {
        vae::data::Source::Folder(vae::data::FolderSource {
            dir: data.clone(),
            image_size: size,
            color: None,
            background: Default::default(),
            test_fraction: 0.1,
            split_seed: 1,
        })
    };
    assert_eq!(vae::classifier::default_dir(&src(Some(32))), std::path::Path::new("runs/classifier-colour-32px"));
    assert_eq!(vae::classifier::default_dir(&src(None)), std::path::Path::new("runs/classifier-colour"));
}

/// `vae encode --input` takes your own pictures, names each file in the CSV, and writes an
/// `.npz` of `mu`, `logvar`, `labels` and `paths` (a stored ZIP of .npy files).
#[test]
fn encode_takes_your_pictures_and_writes_npz() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("colour");
    colour_folder(&data);
    let run = tmp.path().join("run");
    train_conv(
        &data,
        &run,
        &["--model", "cvae", "--latent-dim", "3", "--batch-size", "20", "--fit-sampler", "0", "-q"],
    );
    let green = data.join("test/green");
    let csv_out = tmp.path().join("codes.csv");
    vae().args(["encode"]).arg(&run).arg("--input").arg(&green).arg("-o").arg(&csv_out).assert().success();
    let csv = std::fs::read_to_string(&csv_out).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "index,path,label,mu_0,mu_1,mu_2,logvar_0,logvar_1,logvar_2");
    assert_eq!(rows.len(), 5, "the four test pictures of green/");
    assert!(rows[1].starts_with(&format!("0,{},green,", green.join("20.png").display())), "{}", rows[1]);
    let npz_out = tmp.path().join("codes.npz");
    vae().args(["encode"]).arg(&run).arg("--input").arg(&green).arg("-o").arg(&npz_out).assert().success();
    let z = std::fs::read(&npz_out).unwrap();
    assert_eq!(&z[..4], b"PK\x03\x04");
    let text = String::from_utf8_lossy(&z);
    for name in ["mu.npy", "logvar.npy", "labels.npy", "paths.npy", "'shape': (4, 3)", "'descr': '<U"] {
        assert!(text.contains(name), "{name} missing from the archive");
    }
    fails(
        &[
            "encode",
            run.to_str().unwrap(),
            "--input",
            data.join("train/red/00.png").to_str().unwrap(),
            "--label",
            "purple",
        ],
        &["purple"],
    );
    fails(&["encode", run.to_str().unwrap(), "-o", "x.txt"], &[".csv, .npy or .npz"]);
}

/// Trains a one-epoch conv model on the folder `data` into `out` with `flags`; fails the test
/// unless it succeeds, and returns its stderr.
fn train_conv(data: &Path, out: &Path, flags: &[&str]) -> String {
    let d = data.to_str().unwrap();
    let done = vae()
        .args(["train", "--data-dir", d, "--arch", "conv", "--epochs", "1", "--out"])
        .arg(out)
        .args(flags)
        .assert()
        .success();
    String::from_utf8_lossy(&done.get_output().stderr).into_owned()
}
