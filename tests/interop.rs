//! The conv model against PyTorch: fixtures written once by `bench/conv_fixture.py` from the
//! reference module of `reference/torch_conv_reference.py` (its weights under their
//! state_dict names, an input batch, labels, noise, and the module's loss) load into vae's
//! conv model and give the same loss (also with the discretized logistic mixture, against the
//! script's float64 port of it, and with `--arch resnet`'s residual blocks); vae's own weights carry exactly the module's names and
//! shapes (the script's `check` loads them with `load_state_dict(strict=True)`).

mod common;

use safetensors::SafeTensors;
use std::collections::BTreeMap;
use vae::checkpoint::{model_bytes, model_from_bytes};
use vae::core::{Pool, Shape};
use vae::model::{Model, ModelConfig, ModelKind, Workspace};

struct Fixture {
    bytes: Vec<u8>,
    config: ModelConfig,
}

fn fixture(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/{name}.safetensors", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    let num = |k: &str| meta[k].parse::<usize>().unwrap();
    let classes = num("classes");
    let kind = if classes > 0 { ModelKind::Cvae } else { ModelKind::Vae };
    let mut config = ModelConfig::conv(kind, Shape::new(num("channels"), num("side"), num("side")), num("latent"));
    config.widths = meta["widths"].split(',').map(|w| w.parse().unwrap()).collect();
    config.classes = if classes > 0 { classes } else { 10 };
    if let Some(blocks) = meta.get("blocks") {
        config.arch = vae::model::Arch::Resnet;
        config.blocks = blocks.parse().unwrap();
    }
    if let Some(k) = meta.get("mixtures") {
        config.likelihood = vae::model::Likelihood::LogisticMixture { mixtures: k.parse().unwrap() };
    }
    Fixture { bytes, config }
}

fn tensor(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    (t.shape().to_vec(), t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// vae's loss on the fixture's batch with the fixture's noise.
fn loss(f: &Fixture, model: &Model, threads: usize) -> (f64, f64) {
    let st = SafeTensors::deserialize(&f.bytes).unwrap();
    let (xs, x) = tensor(&st, "x"); // [B, C, S, S]
    let (_, y) = tensor(&st, "y"); // [B, K]
    let (_, eps) = tensor(&st, "eps"); // [B, L]
    let want = tensor(&st, "loss").1[0] as f64;
    let (b, p, l, k) = (xs[0], f.config.pixels(), f.config.latent_dim, f.config.cond_dim());
    let pool = Pool::new(threads);
    let mut ws = Workspace::new(&f.config, b, pool.threads());
    // NCHW rows of one image are exactly a features × batch column.
    for i in 0..b {
        (0..p).for_each(|j| ws.x[j * b + i] = x[i * p + j]);
        (0..l).for_each(|j| ws.eps[j * b + i] = eps[i * l + j]);
        (0..k).for_each(|j| ws.y[j * b + i] = y[i * k + j]);
    }
    let got = model.network.forward(&pool, &model.params, &mut ws);
    (got.bce + got.kl, want)
}

#[test]
fn pytorch_weights_load_and_give_the_reference_loss() {
    // conv-vae-mixture: RGB with the logistic mixture, its loss from the script's own
    // float64 port of the likelihood (`mixture_nll`); conv-resnet: `--arch resnet --blocks 2`.
    for name in ["conv-vae", "conv-cvae", "conv-vae-mixture", "conv-resnet"] {
        let f = fixture(name);
        let model = model_from_bytes(&f.bytes, &f.config, std::path::Path::new(name)).unwrap();
        for threads in [1, 2] {
            let (got, want) = loss(&f, &model, threads);
            assert!((got - want).abs() < 2e-5 * want.abs(), "{name}, {threads} threads: {got} vs PyTorch's {want}");
        }
    }
}

#[test]
fn our_weights_have_the_modules_names_and_shapes() {
    for name in ["conv-vae", "conv-cvae", "conv-vae-mixture", "conv-resnet"] {
        let f = fixture(name);
        let st = SafeTensors::deserialize(&f.bytes).unwrap();
        let theirs: BTreeMap<String, Vec<usize>> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| !["x", "y", "eps", "loss"].contains(&n.as_str()))
            .map(|(n, t)| (n, t.shape().to_vec()))
            .collect();
        let ours_bytes = model_bytes(&Model::init(f.config.clone(), 1), 0);
        let ours = SafeTensors::deserialize(&ours_bytes).unwrap();
        let ours: BTreeMap<String, Vec<usize>> =
            ours.tensors().into_iter().map(|(n, t)| (n, t.shape().to_vec())).collect();
        assert_eq!(ours, theirs, "{name}: a strict load_state_dict needs the same names and shapes");
    }
}

/// vae's training against PyTorch's, step by step. `bench/training_fixture.py` trained
/// bench/torch_colour.py's resnet (the module vae's weights load into) on 32 icons, one
/// batch a step, from vae's initial weights for seed 1, drawing vae's own shuffle, noise and
/// dequantization (bench/vae_rng.py), and kept its loss per image at each of 8 steps, for the
/// dequantized Gaussian and the logistic mixture. vae, trained on the same pictures with the
/// same seed, must reach the same losses: its forward, backward and Adam equal PyTorch's to
/// float rounding (the fixture prints 2 decimals; 5e-6 relative is ~10× the differences seen),
/// so an error in any gradient or update shows within a step or two. A change to vae's
/// initialisation or random streams needs the fixture rewritten (the script's header says how).
#[test]
fn training_matches_pytorch_step_by_step() {
    let path = format!("{}/tests/fixtures/train-steps.safetensors", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let pictures = st.tensor("pictures").unwrap();
    let &[n, c, h, w] = pictures.shape() else { panic!("pictures must be [N, C, H, W]") };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("pictures");
    let save = |split: &str, i: usize| {
        let d = folder.join(split).join("all");
        std::fs::create_dir_all(&d).unwrap();
        let img = &pictures.data()[i * c * h * w..(i + 1) * c * h * w];
        let rgb = image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |ch: usize| img[(ch * h + y as usize) * w + x as usize];
            image::Rgb([at(0), at(1), at(2)])
        });
        rgb.save(d.join(format!("{i:02}.png"))).unwrap();
    };
    (0..n).for_each(|i| save("train", i));
    save("test", 0);
    for lik in ["gaussian", "logistic-mixture"] {
        let (_, want) = {
            let t = st.tensor(&format!("loss.{lik}")).unwrap();
            (
                t.shape().to_vec(),
                t.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect::<Vec<_>>(),
            )
        };
        let run = dir.path().join(lik);
        let (steps, batch) = (want.len().to_string(), n.to_string());
        common::vae()
            .args(["train", "--data-dir"])
            .arg(&folder)
            // PyTorch's fixture trains without a KL warm-up (the mixture's default is 5 epochs).
            .args(["--image-size", "32", "--arch", "resnet", "--likelihood", lik, "--seed", "1", "--kl-warmup", "0"])
            .args(["--batch-size", &batch, "--epochs", &steps, "--out"])
            .arg(&run)
            .assert()
            .success();
        let got: Vec<f64> = common::metrics(&run).iter().map(|m| m["train_objective"].as_f64().unwrap()).collect();
        assert_eq!(got.len(), want.len());
        for (step, (g, t)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - t).abs() <= 5e-6 * t.abs() + 0.005,
                "{lik}, step {}: vae {g} vs PyTorch {t}\n{got:?}\n{want:?}",
                step + 1
            );
        }
    }
}
