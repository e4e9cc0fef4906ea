//! The evaluation metrics against independent computations and their defining properties.

use vae::core::{AdamConfig, AdamState, Pool};
use vae::data::{Dataset, Source, Split};
use vae::eval::iwae::{iwae, sample_rng};
use vae::eval::{active_units, latent_activity};
use vae::model::{Model, ModelConfig, ModelKind};
use vae::train::{TrainConfig, Trainer};

/// A VAE trained for 80 steps on 2,560 images: far from converged, but with a real
/// posterior so bounds differ measurably.
fn trained(kind: ModelKind) -> (Model, Split) {
    trained_with(ModelConfig { latent_dim: 8, hidden_dim: 200, ..ModelConfig::tutorial(kind) })
}

fn trained_with(config: ModelConfig) -> (Model, Split) {
    let data = Dataset::load(&Source::Mnist).unwrap();
    let train = TrainConfig {
        epochs: 2,
        batch_size: 64,
        adam: AdamConfig::default(),
        beta: 1.0,
        seed: 3,
        threads: 2,
        dataset: Source::Mnist,
        train_limit: Some(2560),
        test_limit: Some(200),
        binarize: Default::default(),
        objective: Default::default(),
        lr_schedule: Default::default(),
        init: Default::default(),
        output_bias: Default::default(),
        kl_warmup: 0,
        augment: Default::default(),
        precision: Default::default(),
        world_size: 1,
        micro_batches: 1,
        gamma: None,
    };
    let model = Model::init(config, 3);
    let adam = AdamState::new(model.params.len());
    let mut t = Trainer::new(train, model, adam, 0, data);
    for _ in 0..2 {
        t.train_epoch(&mut |_, _, _| {}).unwrap();
    }
    (t.model, t.data.test)
}

/// The single-sample SGVB estimator log p(x|z) + log p(z) − log q(z|x) (Kingma & Welling
/// 2014, eq. 6), computed in f64 from the library's encode/decode on IWAE's draw.
fn sgvb_estimate(model: &Model, split: &Split, image: usize, seed: u64, pool: &Pool) -> f64 {
    let c = model.config();
    let (l, p) = (c.latent_dim, c.pixels());
    let x: Vec<f32> = split.image(image).iter().map(|&v| v as f32 / 255.0).collect();
    let label = [split.labels[image]];
    let labels = c.kind.conditional().then_some(&label[..]);
    let enc = model.encode(pool, &x, labels).unwrap();
    let mut eps = vec![0.0f32; l];
    sample_rng(seed, image, 0).fill_normal(&mut eps);
    let mut z = vec![0.0f32; l];
    let mut log_ratio = 0.0f64;
    let vamp = pseudo_input_encodings(model, pool);
    let two_pi = std::f64::consts::TAU;
    for j in 0..l {
        let (m, lv, e) = (enc.mu[j] as f64, enc.logvar[j] as f64, eps[j] as f64);
        let zj = m + (lv / 2.0).exp() * e;
        z[j] = zj as f32;
        let log_prior = if vamp.is_empty() { -0.5 * (zj * zj + two_pi.ln()) } else { 0.0 };
        let log_q = -0.5 * (e * e + lv + two_pi.ln());
        log_ratio += log_prior - log_q;
    }
    if !vamp.is_empty() {
        log_ratio += vamp_log_prior(&vamp, &z, l);
    }
    let probs = model.decode(pool, &z, labels).unwrap();
    let log_lik: f64 = (0..p)
        .map(|i| {
            let (xi, pi) = (x[i] as f64, probs[i] as f64);
            xi * pi.ln() + (1.0 - xi) * (1.0 - pi).ln()
        })
        .sum();
    log_lik + log_ratio
}

/// IWAE_1 of images 0, 1, 57 and 199 equals [`sgvb_estimate`] on the same draw (seed 11);
/// returns every image's IWAE_1.
fn assert_iwae_1_is_sgvb(model: &Model, split: &Split, pool: &Pool, what: &str) -> Vec<f64> {
    let bounds = iwae(model, split, 1, 11, pool, &mut |_| {});
    for image in [0, 1, 57, 199] {
        let want = sgvb_estimate(model, split, image, 11, pool);
        let got = bounds[image];
        assert!((got - want).abs() < 2e-4 * want.abs(), "{what} image {image}: IWAE_1 {got} vs SGVB {want}");
    }
    bounds
}

/// A mixture prior's components (μ_k, log σ²_k), each `[latent]`: a VampPrior's from the
/// library's encoder on the clipped pseudo-inputs, a Gaussian mixture's its parameters;
/// empty for the standard prior.
fn pseudo_input_encodings(model: &Model, pool: &Pool) -> Vec<(Vec<f32>, Vec<f32>)> {
    let layout = &model.network.layout;
    if let (Some(means), Some(logvars)) = (layout.prior_means.clone(), layout.prior_logvars.clone()) {
        let l = model.config().latent_dim;
        let (m, v) = (&model.params[means], &model.params[logvars]);
        return m.chunks_exact(l).zip(v.chunks_exact(l)).map(|(m, v)| (m.to_vec(), v.to_vec())).collect();
    }
    let Some(range) = model.network.layout.pseudo_inputs.clone() else { return Vec::new() };
    let p = model.config().pixels();
    let u: Vec<f32> = model.params[range].iter().map(|v| v.clamp(0.0, 1.0)).collect();
    let enc = model.encode(pool, &u, None).unwrap();
    let l = model.config().latent_dim;
    (0..u.len() / p).map(|k| (enc.mu[k * l..(k + 1) * l].to_vec(), enc.logvar[k * l..(k + 1) * l].to_vec())).collect()
}

/// log (1/K) Σ_k N(z; μ_k, σ²_k) in f64 (Tomczak & Welling 2018, eq. 9).
fn vamp_log_prior(components: &[(Vec<f32>, Vec<f32>)], z: &[f32], l: usize) -> f64 {
    let logs: Vec<f64> = components
        .iter()
        .map(|(mu, lv)| {
            (0..l)
                .map(|j| {
                    let (d, lv) = (z[j] as f64 - mu[j] as f64, lv[j] as f64);
                    -0.5 * (std::f64::consts::TAU.ln() + lv + d * d / lv.exp())
                })
                .sum()
        })
        .collect();
    let max = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    max + logs.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - (components.len() as f64).ln()
}

/// With a VampPrior, IWAE_1 is the SGVB estimator with the mixture's log-density.
#[test]
fn vamp_iwae_with_one_sample_is_the_sgvb_estimator_with_the_mixture_prior() {
    let prior = vae::model::config::Prior::Vamp { pseudo_inputs: 20 };
    let (model, split) =
        trained_with(ModelConfig { latent_dim: 8, hidden_dim: 200, prior, ..ModelConfig::tutorial(ModelKind::Vae) });
    let pool = Pool::new(2);
    let bounds = assert_iwae_1_is_sgvb(&model, &split, &pool, "vamp");
    let more = iwae(&model, &split, 50, 11, &pool, &mut |_| {});
    let mean = |b: &[f64]| b.iter().sum::<f64>() / b.len() as f64;
    assert!(mean(&more) > mean(&bounds), "IWAE-50 {} is not above IWAE-1 {}", mean(&more), mean(&bounds));
}

/// With a learned Gaussian mixture prior (`--prior mog`), likewise.
#[test]
fn mog_iwae_with_one_sample_is_the_sgvb_estimator_with_the_mixture_prior() {
    let prior = vae::model::config::Prior::Mog { components: 5 };
    let (model, split) =
        trained_with(ModelConfig { latent_dim: 8, hidden_dim: 200, prior, ..ModelConfig::tutorial(ModelKind::Vae) });
    let pool = Pool::new(2);
    let bounds = assert_iwae_1_is_sgvb(&model, &split, &pool, "mog");
    let more = iwae(&model, &split, 50, 11, &pool, &mut |_| {});
    let mean = |b: &[f64]| b.iter().sum::<f64>() / b.len() as f64;
    assert!(mean(&more) > mean(&bounds), "IWAE-50 {} is not above IWAE-1 {}", mean(&more), mean(&bounds));
}

#[test]
fn iwae_with_one_sample_is_the_sgvb_estimator_on_the_same_draw() {
    for kind in [ModelKind::Vae, ModelKind::Cvae] {
        let (model, split) = trained(kind);
        assert_iwae_1_is_sgvb(&model, &split, &Pool::new(2), &kind.to_string());
    }
}

#[test]
fn the_bound_rises_with_k_and_does_not_depend_on_chunking() {
    let (model, split) = trained(ModelKind::Vae);
    let pool = Pool::new(2);
    let mean = |k: usize| {
        let b = iwae(&model, &split, k, 5, &pool, &mut |_| {});
        b.iter().sum::<f64>() / b.len() as f64
    };
    let (m1, m10, m100) = (mean(1), mean(10), mean(100));
    // Burda et al., Theorem 1: E[IWAE_k] is non-decreasing in k. With 200 images the
    // gaps (nats) are far above the Monte-Carlo noise.
    assert!(m1 < m10 - 0.5 && m10 < m100 - 0.2, "IWAE_1 {m1}, IWAE_10 {m10}, IWAE_100 {m100}");
    assert!(m100 < 0.0);
    // k = 3000 spans several chunks per image: the same images give the same values
    // whatever the thread count.
    let a = iwae(
        &model,
        &Split { images: split.images[..784].to_vec(), labels: vec![split.labels[0]], ..split.clone() },
        3000,
        5,
        &pool,
        &mut |_| {},
    );
    let b = iwae(
        &model,
        &Split { images: split.images[..784].to_vec(), labels: vec![split.labels[0]], ..split.clone() },
        3000,
        5,
        &Pool::new(1),
        &mut |_| {},
    );
    assert!((a[0] - b[0]).abs() < 1e-3, "{} vs {}", a[0], b[0]);
}

#[test]
fn active_units_exclude_a_dimension_the_encoder_ignores() {
    let (mut model, split) = trained(ModelKind::Vae);
    let pool = Pool::new(2);
    // Make μ_3 constant: zero its row of fc_mu.weight (its bias stays).
    let h = model.config().hidden_dim;
    let head = model.network.layout.head.w.start;
    model.params[head + 3 * h..head + 4 * h].fill(0.0);
    let (mu, _) = vae::eval::iwae::encode_split(&model, &split, &pool, None);
    let activity = latent_activity(&mu, model.config().latent_dim);
    assert_eq!(activity[3], 0.0);
    let active = active_units(&activity);
    assert!(!active.contains(&3), "{active:?}");
    assert!(active.len() >= 4, "a trained encoder uses several dimensions: {activity:?}");
}
