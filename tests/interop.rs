//! The conv model against PyTorch: fixtures written once by `bench/conv_fixture.py` from the
//! reference module of `reference/torch_conv_reference.py` (its weights under their
//! state_dict names, an input batch, labels, noise, and the module's loss) load into vae's
//! conv model and give the same loss (also with the discretized logistic mixture, against the
//! script's float64 port of it, and with `--arch resnet`'s residual blocks); vae's own weights carry exactly the module's names and
//! shapes (the script's `check` loads them with `load_state_dict(strict=True)`).

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
