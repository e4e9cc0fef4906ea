//! Every parameter tensor's gradient, for every architecture, model kind, likelihood and
//! objective, against central finite differences of the independent f64 evaluation in
//! `common/reference.rs` (plain loops from PyTorch's definitions, no code shared with the
//! compute core).

mod common;

use common::reference::{Case, elbo_k_loss, elbo_loss, iwae_loss};
use vae::core::{Pool, Rng, Shape};
use vae::model::config::{Activation, Prior};
use vae::model::{Likelihood, Model, ModelConfig, ModelKind, Workspace};

/// A small MLP with every dimension distinct so a transposed index shows up.
fn small(kind: ModelKind) -> ModelConfig {
    ModelConfig { image_rows: 3, image_cols: 4, hidden_dim: 7, latent_dim: 3, ..ModelConfig::tutorial(kind) }
}

/// A small conv model: two channels, a non-square 8×4 image, widths 3,2 (last map 2×2×1),
/// four classes.
fn small_conv(kind: ModelKind) -> ModelConfig {
    ModelConfig { widths: vec![3, 2], classes: 4, ..ModelConfig::conv(kind, Shape::new(2, 8, 4), 3) }
}

/// [`small_conv`] with two residual blocks per resolution: consecutive blocks, and the
/// output layer and the head reading a block's output.
fn small_resnet(kind: ModelKind) -> ModelConfig {
    ModelConfig { arch: vae::model::Arch::Resnet, blocks: 2, ..small_conv(kind) }
}

const BATCH: usize = 5;
const BETA: f64 = 0.7;

fn case(config: &ModelConfig) -> Case {
    let mut rng = Rng::new(42);
    let p = config.pixels();
    // Pixels in [0, 1], some exactly 0 and 1 as in MNIST.
    let x = (0..BATCH * p)
        .map(|i| match i % 5 {
            0 => 0.0,
            1 => 1.0,
            _ => rng.uniform(),
        })
        .collect();
    let labels = (0..BATCH).map(|b| (b * 3 % config.classes) as u8).collect();
    let mut e = vec![0.0f32; BATCH * config.latent_dim];
    rng.fill_normal(&mut e);
    Case { x, labels, eps: e.iter().map(|&v| v as f64).collect() }
}

/// Writes the case's images, labels and noise `[B, k, latent]` into a workspace.
fn fill(ws: &mut Workspace, config: &ModelConfig, c: &Case, eps: &[f64], k: usize) {
    let (p, l, classes) = (config.pixels(), config.latent_dim, config.cond_dim());
    for b in 0..BATCH {
        for i in 0..p {
            ws.x[i * BATCH + b] = c.x[b * p + i] as f32;
        }
        for class in 0..classes {
            ws.y[class * BATCH + b] = f32::from(c.labels[b] as usize == class);
        }
        for s in 0..k {
            for j in 0..l {
                ws.eps[j * BATCH * k + s * BATCH + b] = eps[(b * k + s) * l + j] as f32;
            }
        }
    }
}

/// Loss and gradients from the compute core.
fn core_gradients(model: &Model, c: &Case, threads: usize) -> (f64, Vec<f32>) {
    let pool = Pool::new(threads);
    let mut ws = Workspace::new(model.config(), BATCH, pool.threads());
    fill(&mut ws, model.config(), c, &c.eps, 1);
    let mut grads = vec![f32::NAN; model.params.len()];
    let loss = model.network.forward(&pool, &model.params, &mut ws);
    model.network.backward(&pool, &model.params, &mut grads, &mut ws, BETA as f32);
    (loss.bce + BETA * loss.kl, grads)
}

/// Loss and gradients of the importance-weighted objective from the compute core, with
/// `eps` \[B, k, latent\] as the reference takes it.
fn core_iwae_gradients(model: &Model, c: &Case, eps: &[f64], k: usize, threads: usize) -> (f64, Vec<f32>) {
    core_sampled_gradients(model, c, eps, k, threads, true, 1.0)
}

/// [`core_iwae_gradients`], or with `importance` false the k-draw ELBO's, each draw's KL
/// estimate weighted by `beta`.
fn core_sampled_gradients(
    model: &Model,
    c: &Case,
    eps: &[f64],
    k: usize,
    threads: usize,
    importance: bool,
    beta: f64,
) -> (f64, Vec<f32>) {
    let pool = Pool::new(threads);
    let mut ws = Workspace::with_samples(model.config(), BATCH, k, pool.threads());
    fill(&mut ws, model.config(), c, eps, k);
    let mut grads = vec![f32::NAN; model.params.len()];
    let loss = model.network.forward_samples(&pool, &model.params, &mut ws, importance);
    model.network.backward_iwae(&pool, &model.params, &mut grads, &mut ws, beta as f32);
    (loss.bce + beta * loss.kl, grads)
}

/// A model with larger biases than PyTorch's initialisation, so most ReLUs are active and z
/// is spread out, and a learned log-variance away from its initial value.
fn test_model(config: &ModelConfig) -> Model {
    let mut model = Model::init(config.clone(), 7);
    for t in &config.layout().tensors {
        if t.name.ends_with("bias") {
            for (i, v) in model.params[t.range.clone()].iter_mut().enumerate() {
                *v += if i % 3 == 0 { -0.05 } else { 0.3 };
            }
        }
        if t.name == "likelihood.logvar" {
            for (i, v) in model.params[t.range.clone()].iter_mut().enumerate() {
                *v = [-0.5, 0.3][i % 2];
            }
        }
    }
    model
}

/// The core's loss and every gradient, on 1 and 2 threads, against the f64 `reference` and
/// its central differences (h = 1e-5: a larger step can straddle a ReLU kink).
fn compare(what: &str, model: &Model, core: impl Fn(usize) -> (f64, Vec<f32>), reference: impl Fn(&[f64]) -> f64) {
    let config = model.config();
    let p64: Vec<f64> = model.params.iter().map(|&v| v as f64).collect();
    let want_loss = reference(&p64);
    for threads in [1, 2] {
        let (loss, grads) = core(threads);
        assert!((loss - want_loss).abs() < 1e-5 * want_loss.abs().max(1.0), "{what}: loss {loss} vs f64 {want_loss}");
        for t in &config.layout().tensors {
            for i in t.range.clone() {
                let h = 1e-5;
                let mut plus = p64.clone();
                plus[i] += h;
                let mut minus = p64.clone();
                minus[i] -= h;
                let fd = (reference(&plus) - reference(&minus)) / (2.0 * h);
                let err = (grads[i] as f64 - fd).abs() / (1e-2 + fd.abs());
                assert!(
                    err < 2e-3,
                    "{what} {}[{}] ({threads} threads): core {} vs finite difference {fd}",
                    t.name,
                    i - t.range.start,
                    grads[i]
                );
            }
        }
    }
}

fn check(config: ModelConfig) {
    let model = test_model(&config);
    let c = case(&config);
    let what = format!("{:?} {} {}", config.arch, config.kind, config.likelihood);
    compare(&what, &model, |threads| core_gradients(&model, &c, threads), |p| elbo_loss(&config, p, &c, BETA));
}

fn check_iwae(config: ModelConfig, k: usize) {
    check_sampled(config, k, true, 1.0);
}

fn check_elbo_k(config: ModelConfig, k: usize) {
    check_sampled(config, k, false, 1.0);
}

/// The importance-weighted bound (`importance`) or the k-draw ELBO with its KL estimates
/// weighted by `beta` against the f64 reference.
fn check_sampled(config: ModelConfig, k: usize, importance: bool, beta: f64) {
    let model = test_model(&config);
    let c = case(&config);
    let mut e = vec![0.0f32; BATCH * k * config.latent_dim];
    Rng::new(if importance { 11 } else { 13 }).fill_normal(&mut e);
    let eps: Vec<f64> = e.iter().map(|&v| v as f64).collect();
    let name = if importance { "iwae" } else { "elbo" };
    let what = format!("{:?} {} {} {name} k={k} beta={beta}", config.arch, config.kind, config.likelihood);
    compare(
        &what,
        &model,
        |threads| core_sampled_gradients(&model, &c, &eps, k, threads, importance, beta),
        |p| if importance { iwae_loss(&config, p, &c, &eps, k) } else { elbo_k_loss(&config, p, &c, &eps, k, beta) },
    );
}

const KINDS: [ModelKind; 3] = [ModelKind::Vae, ModelKind::Cvae, ModelKind::Ae];
const LIKELIHOODS: [Likelihood; 7] = [
    Likelihood::Bernoulli,
    Likelihood::Gaussian { sigma: Some(0.3) },
    Likelihood::Gaussian { sigma: None },
    Likelihood::ContinuousBernoulli,
    Likelihood::DiscretizedGaussian,
    Likelihood::LogisticMixture { mixtures: 1 },
    Likelihood::LogisticMixture { mixtures: 3 },
];

#[test]
fn mlp_gradients_match_finite_differences() {
    for kind in KINDS {
        check(small(kind));
    }
}

#[test]
fn conv_gradients_match_finite_differences() {
    for kind in KINDS {
        check(small_conv(kind));
    }
}

/// disentanglement_lib's shape of conv model: a fully connected layer between the feature
/// maps and the heads, and between z and the first map (`encoder_fc`, `decoder_fc`), for
/// every kind (a cvae's label joins after `encoder_fc`), and with residual blocks.
#[test]
fn conv_gradients_with_a_hidden_layer_match_finite_differences() {
    for kind in KINDS {
        check(ModelConfig { hidden_dim: 5, ..small_conv(kind) });
    }
    check(ModelConfig { arch: vae::model::Arch::Resnet, blocks: 1, hidden_dim: 3, ..small_conv(ModelKind::Cvae) });
}

/// Residual blocks: the skip's gradient meeting the first convolution's, for every kind, both
/// activations, the importance-weighted bound, the VampPrior (through the blocks to the
/// pseudo-inputs) and the RGB mixture.
#[test]
fn resnet_gradients_match_finite_differences() {
    for kind in KINDS {
        check(small_resnet(kind));
    }
    check(ModelConfig { activation: Activation::Tanh, ..small_resnet(ModelKind::Vae) });
    check_iwae(ModelConfig { blocks: 1, ..small_resnet(ModelKind::Cvae) }, 3);
    check_iwae(ModelConfig { prior: Prior::Vamp { pseudo_inputs: 2 }, blocks: 1, ..small_resnet(ModelKind::Vae) }, 2);
    let rgb = ModelConfig { widths: vec![3], ..ModelConfig::resnet(ModelKind::Vae, Shape::new(3, 4, 4), 2, 1) };
    check(ModelConfig { likelihood: Likelihood::LogisticMixture { mixtures: 2 }, ..rgb });
}

#[test]
fn every_likelihoods_gradients_match_finite_differences() {
    for likelihood in LIKELIHOODS {
        check(ModelConfig { likelihood, ..small(ModelKind::Vae) });
        check(ModelConfig { likelihood, ..small_conv(ModelKind::Cvae) });
    }
    // RGB: the mixture's green and blue means depend on the red (and green) values.
    let rgb = ModelConfig { widths: vec![3], ..ModelConfig::conv(ModelKind::Vae, Shape::new(3, 4, 4), 2) };
    check(ModelConfig { likelihood: Likelihood::LogisticMixture { mixtures: 3 }, ..rgb });
}

#[test]
fn iwae_gradients_match_finite_differences() {
    for k in [1, 3] {
        check_iwae(small(ModelKind::Vae), k);
        check_iwae(small(ModelKind::Cvae), k);
        check_iwae(small_conv(ModelKind::Cvae), k);
    }
    check_iwae(ModelConfig { hidden_layers: 2, activation: Activation::Tanh, ..small(ModelKind::Vae) }, 4);
    for likelihood in LIKELIHOODS {
        check_iwae(ModelConfig { likelihood, ..small_conv(ModelKind::Vae) }, 3);
    }
}

#[test]
fn k_draw_elbo_gradients_match_finite_differences() {
    check_elbo_k(small(ModelKind::Vae), 3);
    check_elbo_k(ModelConfig { hidden_layers: 2, activation: Activation::Tanh, ..small(ModelKind::Cvae) }, 2);
    check_elbo_k(ModelConfig { likelihood: Likelihood::Gaussian { sigma: None }, ..small_conv(ModelKind::Vae) }, 2);
}

/// The k-draw ELBO is the mean of the one-draw losses on the same draws, exactly (its
/// weights are 1/k whatever the draws), and it is above the importance-weighted loss.
#[test]
fn the_k_draw_elbo_is_the_mean_of_its_one_draw_losses() {
    let (config, k) = (small(ModelKind::Vae), 5);
    let model = test_model(&config);
    let c = case(&config);
    let l = config.latent_dim;
    let mut e = vec![0.0f32; BATCH * k * l];
    Rng::new(5).fill_normal(&mut e);
    let eps: Vec<f64> = e.iter().map(|&v| v as f64).collect();
    let (elbo_k, _) = core_sampled_gradients(&model, &c, &eps, k, 1, false, 1.0);
    let mean: f64 = (0..k)
        .map(|s| {
            let one: Vec<f64> = (0..BATCH).flat_map(|b| eps[(b * k + s) * l..(b * k + s + 1) * l].to_vec()).collect();
            core_iwae_gradients(&model, &c, &one, 1, 1).0 / k as f64
        })
        .sum();
    assert!((elbo_k - mean).abs() < 1e-4 * mean.abs(), "{elbo_k} vs the mean one-draw loss {mean}");
    let (iwae, _) = core_iwae_gradients(&model, &c, &eps, k, 1);
    assert!(iwae < elbo_k - 1e-3, "IWAE {iwae} is not below the k-draw ELBO {elbo_k}");
}

/// The VampPrior: every gradient, the pseudo-inputs' included, for the k-draw ELBO and the
/// importance-weighted bound, against the f64 mixture density.
#[test]
fn vamp_prior_gradients_match_finite_differences() {
    let prior = Prior::Vamp { pseudo_inputs: 3 };
    let tanh = ModelConfig { prior, hidden_layers: 2, activation: Activation::Tanh, ..small(ModelKind::Vae) };
    check_elbo_k(tanh.clone(), 1);
    check_elbo_k(ModelConfig { prior, ..small(ModelKind::Vae) }, 2);
    check_iwae(tanh, 3);
    check_iwae(ModelConfig { prior, ..small_conv(ModelKind::Vae) }, 2);
}

/// The learned Gaussian mixture prior (`--prior mog`): every gradient, the components' means
/// and log-variances included, for the one-draw ELBO (the training default), the k-draw ELBO
/// with β, and the importance-weighted bound, on the MLP and the resnet.
#[test]
fn mixture_of_gaussians_prior_gradients_match_finite_differences() {
    let prior = Prior::Mog { components: 3 };
    check_elbo_k(ModelConfig { prior, ..small(ModelKind::Vae) }, 1);
    check_sampled(ModelConfig { prior, hidden_layers: 2, ..small(ModelKind::Vae) }, 2, false, 0.5);
    check_iwae(ModelConfig { prior, activation: Activation::Tanh, ..small(ModelKind::Vae) }, 3);
    check_iwae(ModelConfig { prior: Prior::Mog { components: 1 }, blocks: 1, ..small_resnet(ModelKind::Vae) }, 2);
}

/// β ≠ 1 in the sampled ELBO (a KL warm-up's β < 1): the k-draw ELBO with each draw's KL
/// estimate weighted, with N(0, I) and with a VampPrior (whose pseudo-inputs' gradients then
/// carry β too).
#[test]
fn weighted_kl_of_the_sampled_elbo_matches_finite_differences() {
    check_sampled(small(ModelKind::Vae), 3, false, BETA);
    let prior = Prior::Vamp { pseudo_inputs: 3 };
    let tanh = ModelConfig { prior, hidden_layers: 2, activation: Activation::Tanh, ..small(ModelKind::Vae) };
    check_sampled(tanh, 1, false, 0.25);
}

/// With a VampPrior, `forward`/`backward` (the ELBO path) are the one-draw sampled ELBO.
#[test]
fn vamp_prior_elbo_is_the_one_draw_estimate() {
    let config = ModelConfig { prior: Prior::Vamp { pseudo_inputs: 4 }, ..small(ModelKind::Vae) };
    let model = test_model(&config);
    let c = case(&config);
    let pool = Pool::new(1);
    let mut ws = Workspace::new(model.config(), BATCH, 1);
    fill(&mut ws, model.config(), &c, &c.eps, 1);
    let mut plain_grads = vec![f32::NAN; model.params.len()];
    let loss = model.network.forward(&pool, &model.params, &mut ws);
    model.network.backward(&pool, &model.params, &mut plain_grads, &mut ws, 1.0);
    let (sampled, sampled_grads) = core_sampled_gradients(&model, &c, &c.eps, 1, 1, false, 1.0);
    assert_eq!(loss.bce + loss.kl, sampled);
    assert_eq!(plain_grads, sampled_grads);
}

#[test]
fn deep_tanh_gradients_match_finite_differences() {
    for kind in KINDS {
        check(ModelConfig { hidden_layers: 3, activation: Activation::Tanh, ..small(kind) });
    }
    check(ModelConfig { activation: Activation::Tanh, ..small_conv(ModelKind::Vae) });
}

#[test]
fn deep_relu_gradients_match_finite_differences() {
    check(ModelConfig { hidden_layers: 2, ..small(ModelKind::Vae) });
}

/// Jensen's inequality on any draw: −log (1/k) Σ_s w_s ≤ (1/k) Σ_s −log w_s, the mean of the
/// one-sample losses on the same k draws; equality only if all w_s agree.
#[test]
fn the_k_sample_loss_is_below_the_mean_of_its_one_sample_losses() {
    for (config, k) in [(small(ModelKind::Cvae), 6), (small_conv(ModelKind::Vae), 4)] {
        let model = test_model(&config);
        let c = case(&config);
        let mut e = vec![0.0f32; BATCH * k * config.latent_dim];
        Rng::new(5).fill_normal(&mut e);
        let eps: Vec<f64> = e.iter().map(|&v| v as f64).collect();
        let (joint, _) = core_iwae_gradients(&model, &c, &eps, k, 1);
        let l = config.latent_dim;
        let mut mean = 0.0;
        for s in 0..k {
            // Sample s of every example, as a one-sample draw.
            let one: Vec<f64> = (0..BATCH).flat_map(|b| eps[(b * k + s) * l..(b * k + s + 1) * l].to_vec()).collect();
            mean += core_iwae_gradients(&model, &c, &one, 1, 1).0 / k as f64;
        }
        assert!(joint < mean - 1e-3, "k = {k}: {joint} is not below the mean one-sample loss {mean}");
    }
}

/// With one draw the importance-weighted loss is the single-sample ELBO estimator with the
/// KL estimated by log q(z|x) − log p(z) at that draw; its expectation is the analytic KL
/// the ELBO path uses, so over many draws the two agree.
#[test]
fn one_sample_iwae_is_the_elbo_with_a_sampled_kl() {
    let config = small(ModelKind::Vae);
    let model = test_model(&config);
    let c = case(&config);
    let pool = Pool::new(1);
    let draws = 4000;
    let mut ws = Workspace::with_samples(&config, BATCH, 1, 1);
    let mut elbo_ws = Workspace::new(&config, BATCH, 1);
    fill(&mut ws, &config, &c, &c.eps, 1);
    fill(&mut elbo_ws, &config, &c, &c.eps, 1);
    let (mut iwae_kl, mut rng) = (0.0, Rng::new(3));
    for _ in 0..draws {
        rng.fill_normal(&mut ws.eps);
        let loss = model.network.forward_iwae(&pool, &model.params, &mut ws);
        // Same draw through the ELBO path: same reconstruction term.
        elbo_ws.eps.copy_from_slice(&ws.eps);
        let elbo = model.network.forward(&pool, &model.params, &mut elbo_ws);
        assert!((loss.bce - elbo.bce).abs() < 1e-3 * elbo.bce.abs(), "{} vs {}", loss.bce, elbo.bce);
        iwae_kl += loss.kl / draws as f64;
    }
    let analytic = model.network.forward(&pool, &model.params, &mut elbo_ws).kl;
    assert!((iwae_kl - analytic).abs() < 0.05 * analytic, "sampled KL {iwae_kl} vs analytic {analytic}");
}

/// A forward-only workspace (`Workspace::inference`, for evaluation and sampling) gives the
/// training workspace's loss exactly, and refuses a backward pass instead of reading buffers
/// it does not have.
#[test]
fn an_inference_workspace_computes_the_same_loss_and_refuses_backward() {
    let config = small_resnet(ModelKind::Vae);
    let model = test_model(&config);
    let c = case(&config);
    let pool = Pool::new(2);
    let mut train = Workspace::new(&config, BATCH, 2);
    let mut infer = Workspace::inference(&config, BATCH, 1, 2);
    fill(&mut train, &config, &c, &c.eps, 1);
    fill(&mut infer, &config, &c, &c.eps, 1);
    let want = model.network.forward(&pool, &model.params, &mut train);
    assert_eq!(model.network.forward(&pool, &model.params, &mut infer), want);
    assert!(train.trains() && !infer.trains());
    let mut grads = vec![0.0; model.params.len()];
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        model.network.backward(&pool, &model.params, &mut grads, &mut infer, 1.0)
    }));
    assert!(refused.is_err());
}

/// `--precision bf16`'s products (linear and convolution, on `vdpbf16ps` where the CPU has
/// it, the portable loop elsewhere): the loss and every gradient of each kind of model stay
/// within bf16's rounding (2^-8 relative per operand) of the f32 ones, and switching back
/// restores the f32 figures exactly.
#[test]
fn bf16_products_stay_within_bf16_rounding_of_f32() {
    let configs = [
        ModelConfig { hidden_layers: 2, ..small(ModelKind::Vae) },
        small_conv(ModelKind::Cvae),
        small_resnet(ModelKind::Vae),
    ];
    for config in configs {
        let model = test_model(&config);
        let c = case(&config);
        let (l32, g32) = core_gradients(&model, &c, 2);
        vae::core::bf16::set_enabled(true);
        let (l16, g16) = core_gradients(&model, &c, 2);
        vae::core::bf16::set_enabled(false);
        let what = format!("{:?} {:?}", config.arch, config.kind);
        assert!((l16 - l32).abs() < 1e-2 * l32.abs(), "{what}: loss {l16} vs f32 {l32}");
        let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let diff: Vec<f32> = g16.iter().zip(&g32).map(|(a, b)| a - b).collect();
        assert!(norm(&diff) < 2e-2 * norm(&g32), "{what}: gradient differs by {} of {}", norm(&diff), norm(&g32));
        assert!(l16 != l32, "{what}: the bf16 path did not run");
        assert_eq!(core_gradients(&model, &c, 2), (l32, g32), "{what}: f32 after bf16");
    }
}

/// TC of the batch by its definition (Chen et al. 2018, minibatch-weighted sampling), in
/// f64 from the reference's posteriors and draws.
fn reference_tc(config: &ModelConfig, params: &[f64], c: &Case, dataset: usize) -> f64 {
    let r = common::reference::Reference::new(config, params);
    let (p, l) = (config.pixels(), config.latent_dim);
    let posteriors: Vec<(Vec<f64>, Vec<f64>)> =
        (0..BATCH).map(|b| r.encode(&c.x[b * p..(b + 1) * p], c.labels[b])).collect();
    let z: Vec<Vec<f64>> = (0..BATCH)
        .map(|b| (0..l).map(|d| posteriors[b].0[d] + (0.5 * posteriors[b].1[d]).exp() * c.eps[b * l + d]).collect())
        .collect();
    let density = |i: usize, j: usize, d: usize| {
        let var = posteriors[j].1[d].exp();
        let x = z[i][d] - posteriors[j].0[d];
        (-(x * x) / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).sqrt()
    };
    let nb = (dataset * BATCH) as f64;
    (0..BATCH)
        .map(|i| {
            let joint: f64 = (0..BATCH).map(|j| (0..l).map(|d| density(i, j, d)).product::<f64>()).sum::<f64>() / nb;
            let marginals: f64 = (0..l).map(|d| ((0..BATCH).map(|j| density(i, j, d)).sum::<f64>() / nb).ln()).sum();
            joint.ln() - marginals
        })
        .sum()
}

/// β-TCVAE's objective, −ELBO + w·TC: the TC's gradient through the draws and through every
/// posterior of the batch, against finite differences of the f64 reference.
#[test]
fn tcvae_gradients_match_finite_differences() {
    let (weight, dataset) = (5.0, 1000);
    for config in [small(ModelKind::Vae), small_conv(ModelKind::Cvae)] {
        let model = test_model(&config);
        let c = case(&config);
        let core = |threads: usize| {
            let pool = Pool::new(threads);
            let mut ws = Workspace::new(model.config(), BATCH, pool.threads());
            fill(&mut ws, model.config(), &c, &c.eps, 1);
            let mut grads = vec![f32::NAN; model.params.len()];
            let loss = model.network.forward(&pool, &model.params, &mut ws);
            let tc = model.network.total_correlation(&mut ws, dataset, weight as f32);
            model.network.backward_tc(&pool, &model.params, &mut grads, &mut ws);
            (loss.bce + loss.kl + weight * tc, grads)
        };
        let reference = |p: &[f64]| elbo_loss(&config, p, &c, 1.0) + weight * reference_tc(&config, p, &c, dataset);
        compare(&format!("tcvae {:?} {}", config.arch, config.kind), &model, core, reference);
    }
}

/// Loss and gradients of one step at `batch` images on `pool`, the inputs drawn from `seed`.
fn step_on(pool: &Pool, model: &Model, batch: usize, seed: u64) -> (f64, Vec<f32>) {
    let config = model.config();
    let mut ws = Workspace::new(config, batch, pool.threads());
    let mut rng = Rng::new(seed);
    ws.x.iter_mut().for_each(|v| *v = rng.uniform() as f32);
    rng.fill_normal(&mut ws.eps);
    let mut grads = vec![f32::NAN; model.params.len()];
    let loss = model.network.forward(pool, &model.params, &mut ws);
    model.network.backward(pool, &model.params, &mut grads, &mut ws, 1.0);
    (loss.bce + loss.kl, grads)
}

/// A pool's parts go to whichever thread claims them first (the caller takes those no worker
/// has started), so a step must not depend on which thread runs a part: with the workers
/// held back, the caller running every part, the loss and gradients are the same bits, for
/// the MLP, conv and resnet products at batches large enough to be split, in f32 and bf16.
#[test]
fn a_step_does_not_depend_on_which_thread_runs_a_part() {
    let configs = [
        ModelConfig::tutorial(ModelKind::Vae),
        ModelConfig::conv(ModelKind::Cvae, Shape::new(3, 16, 16), 8),
        ModelConfig {
            arch: vae::model::Arch::Resnet,
            blocks: 1,
            ..ModelConfig::conv(ModelKind::Vae, Shape::new(1, 16, 16), 8)
        },
    ];
    let pool = Pool::new(3);
    for config in configs {
        let model = test_model(&config);
        for bf16 in [false, true] {
            vae::core::bf16::set_enabled(bf16);
            let what = format!("{:?} {:?}, bf16 {bf16}", config.arch, config.kind);
            let free = step_on(&pool, &model, 96, 3);
            pool.hold_workers(true);
            let held = step_on(&pool, &model, 96, 3);
            pool.hold_workers(false);
            vae::core::bf16::set_enabled(false);
            assert!(free.0.is_finite() && free.1.iter().all(|g| g.is_finite()), "{what}: not finite");
            assert!(free.0.to_bits() == held.0.to_bits(), "{what}: loss {} vs {} with held workers", free.0, held.0);
            let differ = free.1.iter().zip(&held.1).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{what}: {differ} gradients differ with held workers");
        }
    }
}
