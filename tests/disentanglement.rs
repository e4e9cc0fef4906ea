//! The disentanglement scores (issue 28): MIG against a second, brute-force estimate, and
//! `vae disentanglement` on a dSprites run as a user calls it.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::Path;
use vae::core::Rng;
use vae::eval::truth::{Dsprites, GroundTruth};

/// MIG by another route: bins by floor((v − min) / (max − min) · 20), clamped (the maximum in
/// the last bin), and I(a; b) = H(a) + H(b) − H(a, b) from counts in hash maps, in f64.
fn brute_force_mig(codes: &[f32], latent: usize, factors: &[usize], f: usize) -> f64 {
    let n = codes.len() / latent;
    let entropy = |counts: &HashMap<Vec<usize>, usize>| -> f64 {
        counts.values().map(|&c| c as f64 / n as f64).map(|p| -p * p.ln()).sum()
    };
    let count = |key: &dyn Fn(usize) -> Vec<usize>| {
        let mut m = HashMap::new();
        for i in 0..n {
            *m.entry(key(i)).or_insert(0) += 1;
        }
        m
    };
    let bins: Vec<Vec<usize>> = (0..latent)
        .map(|d| {
            let col: Vec<f64> = (0..n).map(|i| codes[i * latent + d] as f64).collect();
            let (lo, hi) = col.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            col.iter().map(|&v| (((v - lo) / (hi - lo) * 20.0).floor() as usize).min(19)).collect()
        })
        .collect();
    let mut total = 0.0;
    for k in 0..f {
        let hv = entropy(&count(&|i| vec![factors[i * f + k]]));
        let mut mi: Vec<f64> = (0..latent)
            .map(|d| {
                let hz = entropy(&count(&|i| vec![bins[d][i]]));
                let joint = entropy(&count(&|i| vec![bins[d][i], factors[i * f + k]]));
                hz + hv - joint
            })
            .collect();
        mi.sort_by(|a, b| b.total_cmp(a));
        total += (mi[0] - mi[1]) / hv;
    }
    total / f as f64
}

#[test]
fn mig_agrees_with_a_brute_force_histogram_estimate() {
    let truth = Dsprites;
    let mut rng = Rng::new(5);
    let factors = truth.sample(5000, &mut rng);
    // Codes: scale and x copied with noise, y mixed with orientation, a dead dimension.
    let codes: Vec<f32> = factors
        .chunks(5)
        .flat_map(|v| {
            let noise = 0.3 * (rng.uniform() - 0.5);
            [v[1] as f64 + noise, v[3] as f64, v[4] as f64 + 0.37 * v[2] as f64, (v[0] as f64).sin(), 0.0]
        })
        .map(|x| x as f32)
        .collect();
    let m = vae::eval::mig::mig(&codes, 5, &factors, 5, vae::eval::mig::BINS);
    let brute = brute_force_mig(&codes, 5, &factors, 5);
    assert!((m.score - brute).abs() < 1e-9, "{} vs {brute}", m.score);
    assert!(m.score > 0.2 && m.score < 1.0, "{m:?}");
    assert_eq!(m.best[1], 0, "scale is dimension 0");
    assert_eq!(m.best[3], 1, "x is dimension 1");
}

#[test]
fn disentanglement_scores_a_dsprites_run_and_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("sprites");
    let shape = ["--dataset", "dsprites", "--arch", "conv", "--widths", "8,8", "--latent-dim", "4", "--epochs", "1"];
    let quick = ["--train-limit", "256", "--test-limit", "64", "--batch-size", "64", "--fit-sampler", "0"];
    vae().args(["train", "--out"]).arg(&run).args(shape).args(quick).assert().success();
    let out = vae()
        .args(["disentanglement"])
        .arg(&run)
        .args(["--points", "40", "--batch", "8", "--repeats", "2", "--dci-points", "60"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    for needle in
        ["2 repeats of 40 points (8 images each)", "MIG ", "β-VAE score ", "FactorVAE score ", "DCI ", "position x"]
    {
        assert!(stdout.contains(needle), "{needle:?} missing: {stdout}");
    }
    let evals = vae::eval::history::load(&run);
    let d = vae::eval::history::latest(&evals, "disentanglement").expect("a record in evals.jsonl");
    let mig = d["mig"]["mean"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&mig), "{d}");
    assert!(d["beta_vae"]["se"].as_f64().unwrap() >= 0.0);
    assert_eq!(d["factors"].as_array().unwrap().len(), 5);
    assert_eq!(d["settings"]["repeats"], 2);
    for part in ["disentanglement", "completeness", "informativeness"] {
        let v = d["dci"][part]["mean"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "DCI {part} {v}: {d}");
    }
    let importance = d["dci"]["importance"].as_array().unwrap();
    assert_eq!(
        (importance.len(), importance[0].as_array().unwrap().len()),
        (4, 5),
        "[latent][factors] of the 4-latent run"
    );
    // Not an evaluation of the likelihood: `vae eval`'s readers pass it by.
    assert!(vae::eval::history::fullest(&evals).is_none());
    // A FactorVAE beside it: `vae runs` names its objective and γ.
    let factor = tmp.path().join("factor");
    let objective = ["--objective", "factorvae", "--gamma", "7"];
    vae().args(["train", "--out"]).arg(&factor).args(shape).args(quick).args(objective).assert().success();
    let listing = vae().args(["runs"]).arg(tmp.path()).assert().success();
    let listing = String::from_utf8_lossy(&listing.get_output().stdout).into_owned();
    assert!(listing.contains(&format!("MIG {mig:.3}")), "{listing}");
    assert!(listing.contains("z4, factorvae, γ 7"), "{listing}");

    // The traversal names each row's factor (drawn into the picture; here: that it is made).
    vae().args(["traverse"]).arg(&run).assert().success();
    assert!(png_size(&run.join("traverse.png")).1 > 4 * 64, "four rows of 64-pixel images at least");
    // Animated: 5 steps forth and 3 back, every frame the same size, looping.
    let out = vae().args(["traverse", "--gif", "--steps", "5"]).arg(&run).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("(8 frames of"));
    {
        use image::AnimationDecoder;
        let file = std::io::BufReader::new(std::fs::File::open(run.join("traverse.gif")).unwrap());
        let frames = image::codecs::gif::GifDecoder::new(file).unwrap().into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 8);
        assert!(frames.iter().all(|f| f.buffer().dimensions() == frames[0].buffer().dimensions()));
        assert!(frames[0].buffer().height() > 4 * 64);
    }

    // The page's sliders carry the same labels as the traversal's rows.
    let state = vae::serve::AppState::load(&run).unwrap();
    assert_eq!(state.slider_labels.len(), 4, "{:?}", state.slider_labels);
    for (d, label) in state.slider_labels.iter().enumerate() {
        let factor = label.strip_prefix(&format!("z{d} ")).unwrap_or_else(|| panic!("{label}"));
        assert!(factor == "–" || d_names().contains(&factor), "{label}");
    }

    // A run on data without known factors is refused, saying which data would do.
    let mnist = tmp.path().join("digits");
    train(&mnist, &["--epochs", "1"]);
    fails(&["disentanglement", mnist.to_str().unwrap()], &["no known factors", "--dataset dsprites"]);
}

/// `--dataset dsprites` alone trains disentanglement_lib's model (Locatello et al. 2019):
/// 4x4 stride-2 convolutions of 32, 32, 64, 64 channels, a 256-unit layer each way, 10
/// latents, under PyTorch-style names.
#[test]
fn dsprites_defaults_to_disentanglement_libs_model() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("lib");
    let quick = ["--train-limit", "128", "--test-limit", "64", "--epochs", "1", "--fit-sampler", "0"];
    let out = vae().args(["train", "--dataset", "dsprites", "--out"]).arg(&run).args(quick).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("764,245 parameters") && stdout.contains("dSprites (generated)"), "{stdout}");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let m = &config["model"];
    assert_eq!(
        (m["arch"].as_str(), m["hidden_dim"].as_u64(), m["latent_dim"].as_u64()),
        (Some("conv"), Some(256), Some(10))
    );
    assert_eq!(m["widths"], serde_json::json!([32, 32, 64, 64]));
    let bytes = std::fs::read(run.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("encoder_fc.weight").unwrap().shape(), [256, 1024]);
    assert_eq!(st.tensor("decoder_input.weight").unwrap().shape(), [256, 10]);
    assert_eq!(st.tensor("decoder_fc.weight").unwrap().shape(), [1024, 256]);
    assert_eq!(st.tensor("decoder.3.weight").unwrap().shape(), [32, 1, 4, 4]);
}

/// dSprites' factor names, as labels show them.
fn d_names() -> Vec<&'static str> {
    vae::data::dsprites::FACTORS.to_vec()
}

/// A folder of 16×16 grey squares whose position (4 values) and brightness (2) are the
/// factors, three pictures of each combination, and `factors.csv` naming them.
fn factor_folder(dir: &Path) -> std::path::PathBuf {
    let mut csv = String::from("file,position,brightness\n");
    for (x, left) in [1u32, 4, 7, 10].iter().enumerate() {
        for (b, level) in [120u8, 255].iter().enumerate() {
            for copy in 0..3 {
                let name = format!("p{x}b{b}c{copy}.png");
                let img = image::GrayImage::from_fn(16, 16, |c, r| {
                    image::Luma([if (*left..left + 5).contains(&c) && (5..10).contains(&r) { *level } else { 0 }])
                });
                img.save(dir.join(&name)).unwrap();
                csv += &format!("{name},{},{}\n", [1, 4, 7, 10][x], [120, 255][b]);
            }
        }
    }
    let file = dir.parent().unwrap().join("factors.csv");
    std::fs::write(&file, csv).unwrap();
    file
}

#[test]
fn a_folder_with_a_factors_file_is_scored_like_dsprites() {
    let tmp = tempfile::tempdir().unwrap();
    let pictures = tmp.path().join("pictures");
    std::fs::create_dir(&pictures).unwrap();
    let csv = factor_folder(&pictures);
    let run = tmp.path().join("run");
    let data = ["--data-dir", pictures.to_str().unwrap(), "--test-fraction", "0.25"];
    let quick = ["--arch", "conv", "--widths", "8,8", "--latent-dim", "3", "--epochs", "1", "--batch-size", "6"];
    vae()
        .args(["train", "--quiet", "--fit-sampler", "0", "--out"])
        .arg(&run)
        .args(data)
        .args(quick)
        .arg("--factors")
        .arg(&csv)
        .assert()
        .success();
    assert_eq!(std::fs::read(run.join("factors.csv")).unwrap(), std::fs::read(&csv).unwrap(), "kept in the run");
    let out = vae()
        .args(["disentanglement"])
        .arg(&run)
        .args(["--points", "20", "--batch", "4", "--repeats", "1", "--dci-points", "40"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("position ") && stdout.contains("brightness "), "{stdout}");
    vae().args(["traverse", "--gif", "--steps", "3"]).arg(&run).assert().success();

    // Mistakes: no folder, a combination without a picture, a picture not in the folder; each
    // refused before a run directory is made.
    let r = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let c = csv.to_str().unwrap();
    fails(
        &["train", "--out", &r("a"), "--factors", c, "--epochs", "1"],
        &["--factors gives the factors of an image folder", "--data-dir"],
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    let partial: String = text.lines().filter(|l| !l.starts_with("p3b1")).map(|l| format!("{l}\n")).collect();
    std::fs::write(tmp.path().join("partial.csv"), partial).unwrap();
    let p = r("partial.csv");
    let d = pictures.to_str().unwrap();
    fails(
        &["train", "--out", &r("b"), "--data-dir", d, "--factors", &p],
        &["gives 7 of the 8 combinations", "position=10 brightness=255"],
    );
    std::fs::write(tmp.path().join("extra.csv"), format!("{text}ghost.png,1,120\n")).unwrap();
    let e = r("extra.csv");
    fails(
        &["train", "--out", &r("c"), "--data-dir", d, "--factors", &e],
        &["names 1 pictures the folder does not hold (e.g. ghost.png)"],
    );
    assert!(!tmp.path().join("a").exists() && !tmp.path().join("b").exists() && !tmp.path().join("c").exists());
}

/// DCI's trees against scikit-learn's: `bench/dci_sklearn.py` builds the same closed-form
/// data (600 points, four f32 codes from splitmix64, factors of 3, 4 and 2 levels — the binary
/// one takes scikit-learn's one-tree binomial route; the first 400 points fit, the rest score)
/// and prints what `GradientBoostingClassifier(random_state=0)` (scikit-learn 1.9.1) and
/// disentanglement_lib's dci.py formulas give; those figures are copied here. scikit-learn
/// visits features in a random order and splits at the first best one, so on a tie its
/// trees depend on `random_state`: over seeds 0–9 its importances move by up to 0.0033, and
/// ours (ties to the lowest feature) are held to within 0.01. Summing each tree's importances
/// normalised, or fitting two classes as two softmax trees, is off by more than 0.02.
#[test]
fn dci_agrees_with_scikit_learn() {
    const N: usize = 600;
    const TRAIN: usize = 400;
    const CODES: usize = 4;
    let noise = |i: usize, k: usize| {
        let mut z = (16 * i as u64 + k as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / 2f64.powi(53) - 0.5
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..N {
        let f = [i % 3, (i * 7 / 5) % 4, (i / 2) % 2];
        let c = [
            f[0] as f64 + 1.5 * noise(i, 0),
            f[1] as f64 + noise(i, 1) + 0.3 * f[0] as f64,
            noise(i, 2),
            f[2] as f64 + 3.0 * noise(i, 3),
        ];
        x.extend(c.iter().map(|&v| v as f32));
        y.extend(f);
    }
    let dci = vae::eval::dci::dci(
        &x[..TRAIN * CODES],
        &y[..TRAIN * 3],
        &x[TRAIN * CODES..],
        &y[TRAIN * 3..],
        CODES,
        &[3, 4, 2],
    );
    let sklearn = [
        [0.8610072313813586, 0.08978879608486295, 0.1692357357144158],
        [0.05087176060431843, 0.899578411987723, 0.08979392458094694],
        [0.03500596861423827, 0.0032506955626231226, 0.10739043066646468],
        [0.05311503940008475, 0.007382096364791031, 0.6335799090381726],
    ];
    for (ours, theirs) in dci.importance.iter().zip(&sklearn) {
        for (a, b) in ours.iter().zip(theirs) {
            assert!((a - b).abs() < 0.01, "importance {a} against scikit-learn's {b}: {:?}", dci.importance);
        }
    }
    // Accuracies: fitting 0.98, 0.99, 1.0 (mean 0.99); held out 0.775, 0.91, 0.70.
    assert!((dci.informativeness_train - 0.99).abs() < 1e-12, "{}", dci.informativeness_train);
    assert!((dci.informativeness - 0.795).abs() < 1e-12, "{}", dci.informativeness);
    assert!((dci.disentanglement - 0.5145736446163859).abs() < 0.005, "{}", dci.disentanglement);
    assert!((dci.completeness - 0.527292264813816).abs() < 0.005, "{}", dci.completeness);
}
