//! Every parameter tensor's gradient, for every model, against central finite differences
//! of an independent f64 evaluation of the loss (plain loops over PyTorch's `[out, in]`
//! weights, no code shared with the compute core).

use vae::core::{Pool, Rng};
use vae::model::config::Activation;
use vae::model::{Model, ModelConfig, ModelKind, Workspace};

/// A small architecture with every dimension distinct so a transposed index shows up.
fn small(kind: ModelKind) -> ModelConfig {
    ModelConfig {
        kind,
        image_rows: 3,
        image_cols: 4,
        hidden_dim: 7,
        latent_dim: 3,
        hidden_layers: 1,
        activation: Activation::Relu,
    }
}

const BATCH: usize = 5;
const BETA: f64 = 0.7;

struct Case {
    x: Vec<f64>,     // [BATCH, pixels]
    labels: Vec<u8>, // [BATCH]
    eps: Vec<f64>,   // [BATCH, latent]
}

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
    let labels = (0..BATCH).map(|b| (b * 3 % 10) as u8).collect();
    let mut e = vec![0.0f32; BATCH * config.latent_dim];
    rng.fill_normal(&mut e);
    Case { x, labels, eps: e.iter().map(|&v| v as f64).collect() }
}

fn linear(w: &[f64], b: &[f64], input: &[f64], out: usize) -> Vec<f64> {
    let inp = input.len();
    (0..out).map(|o| b[o] + (0..inp).map(|i| w[o * inp + i] * input[i]).sum::<f64>()).collect()
}

/// The encoder's and decoder's f64 forward passes over `params`, plain loops.
struct Reference<'a> {
    config: &'a ModelConfig,
    params: &'a [f64],
}

impl Reference<'_> {
    fn get(&self, name: &str) -> &[f64] {
        let t = self.config.layout().tensors.into_iter().find(|t| t.name == name).unwrap();
        &self.params[t.range.clone()]
    }

    fn act(&self, v: Vec<f64>) -> Vec<f64> {
        match self.config.activation {
            Activation::Relu => v.into_iter().map(|v| v.max(0.0)).collect(),
            Activation::Tanh => v.into_iter().map(f64::tanh).collect(),
        }
    }

    fn onehot(&self, label: u8) -> Vec<f64> {
        let mut onehot = vec![0.0; self.config.cond_dim()];
        if self.config.kind.conditional() {
            onehot[label as usize] = 1.0;
        }
        onehot
    }

    /// (μ, log σ²) of example `x` (log σ² empty for `ae`).
    fn encode(&self, x: &[f64], label: u8) -> (Vec<f64>, Vec<f64>) {
        let (h, l) = (self.config.hidden_dim, self.config.latent_dim);
        let mut input = x.to_vec();
        input.extend(self.onehot(label));
        let mut h1 = self.act(linear(self.get("fc1.weight"), self.get("fc1.bias"), &input, h));
        for j in 2..=self.config.hidden_layers {
            h1 = self.act(linear(self.get(&format!("fc1_{j}.weight")), self.get(&format!("fc1_{j}.bias")), &h1, h));
        }
        let mu = linear(self.get("fc_mu.weight"), self.get("fc_mu.bias"), &h1, l);
        if !self.config.kind.variational() {
            return (mu, Vec::new());
        }
        (mu, linear(self.get("fc_logvar.weight"), self.get("fc_logvar.bias"), &h1, l))
    }

    /// log p(x | z) = −BCE(σ(decoder(z)), x).
    fn log_likelihood(&self, z: &[f64], label: u8, x: &[f64]) -> f64 {
        let (p, h) = (self.config.pixels(), self.config.hidden_dim);
        let mut input = z.to_vec();
        input.extend(self.onehot(label));
        let mut h2 = self.act(linear(self.get("fc2.weight"), self.get("fc2.bias"), &input, h));
        for j in 2..=self.config.hidden_layers {
            h2 = self.act(linear(self.get(&format!("fc2_{j}.weight")), self.get(&format!("fc2_{j}.bias")), &h2, h));
        }
        let logits = linear(self.get("fc3.weight"), self.get("fc3.bias"), &h2, p);
        logits
            .iter()
            .zip(x)
            .map(|(&lg, &xi)| {
                let prob = 1.0 / (1.0 + (-lg).exp());
                xi * prob.ln() + (1.0 - xi) * (1.0 - prob).ln()
            })
            .sum()
    }
}

/// Σ_b −log (1/k) Σ_s p(x|z_s) p(z_s) / q(z_s|x) in f64 (Burda et al. 2015, eq. 8), from the
/// densities themselves: z_s = μ + σ·ε_s with `eps` \[B, k, latent\].
fn reference_iwae_loss(config: &ModelConfig, params: &[f64], c: &Case, eps: &[f64], k: usize) -> f64 {
    let r = Reference { config, params };
    let (p, l) = (config.pixels(), config.latent_dim);
    let log_normal = |v: f64, mean: f64, logvar: f64| {
        -0.5 * ((2.0 * std::f64::consts::PI).ln() + logvar + (v - mean) * (v - mean) / logvar.exp())
    };
    let mut total = 0.0;
    for b in 0..BATCH {
        let x = &c.x[b * p..(b + 1) * p];
        let (mu, lv) = r.encode(x, c.labels[b]);
        let log_w: Vec<f64> = (0..k)
            .map(|s| {
                let z: Vec<f64> = (0..l).map(|j| mu[j] + eps[(b * k + s) * l + j] * (lv[j] / 2.0).exp()).collect();
                let prior: f64 = z.iter().map(|&v| log_normal(v, 0.0, 0.0)).sum();
                let posterior: f64 = (0..l).map(|j| log_normal(z[j], mu[j], lv[j])).sum();
                r.log_likelihood(&z, c.labels[b], x) + prior - posterior
            })
            .collect();
        let max = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + log_w.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += (k as f64).ln() - lse;
    }
    total
}

/// Σ_b BCE_b + β·KL_b in f64, straight from the tutorial's definition.
fn reference_loss(config: &ModelConfig, params: &[f64], c: &Case) -> f64 {
    let r = Reference { config, params };
    let (p, l) = (config.pixels(), config.latent_dim);
    let mut total = 0.0;
    for b in 0..BATCH {
        let x = &c.x[b * p..(b + 1) * p];
        let (mu, lv) = r.encode(x, c.labels[b]);
        let mut z = mu.clone();
        if config.kind.variational() {
            for j in 0..l {
                z[j] = mu[j] + c.eps[b * l + j] * (lv[j] / 2.0).exp();
                total += BETA * -0.5 * (1.0 + lv[j] - lv[j].exp() - mu[j] * mu[j]);
            }
        }
        total -= r.log_likelihood(&z, c.labels[b], x);
    }
    total
}

/// Loss and gradients from the compute core.
fn core_gradients(model: &Model, c: &Case, threads: usize) -> (f64, Vec<f32>) {
    let config = model.config();
    let pool = Pool::new(threads);
    let mut ws = Workspace::new(config, BATCH, pool.threads());
    let (p, l) = (config.pixels(), config.latent_dim);
    for b in 0..BATCH {
        for i in 0..p {
            ws.x[i * BATCH + b] = c.x[b * p + i] as f32;
        }
        for j in 0..l {
            ws.eps[j * BATCH + b] = c.eps[b * l + j] as f32;
        }
        if config.kind.conditional() {
            for k in 0..10 {
                ws.x[(p + k) * BATCH + b] = f32::from(c.labels[b] as usize == k);
            }
        }
    }
    let mut grads = vec![f32::NAN; model.params.len()];
    let fc3_b = model.network.layout.output.b.clone();
    let loss = model.network.forward(&pool, &model.params, &mut ws, Some(&mut grads[fc3_b]));
    model.network.backward(&pool, &model.params, &mut grads, &mut ws, BETA as f32);
    (loss.bce + BETA * loss.kl, grads)
}

/// Loss and gradients of the importance-weighted objective from the compute core, with
/// `eps` \[B, k, latent\] as the reference takes it.
fn core_iwae_gradients(model: &Model, c: &Case, eps: &[f64], k: usize, threads: usize) -> (f64, Vec<f32>) {
    let config = model.config();
    let pool = Pool::new(threads);
    let mut ws = Workspace::with_samples(config, BATCH, k, pool.threads());
    let (p, l) = (config.pixels(), config.latent_dim);
    for b in 0..BATCH {
        for i in 0..p {
            ws.x[i * BATCH + b] = c.x[b * p + i] as f32;
        }
        if config.kind.conditional() {
            for class in 0..10 {
                ws.x[(p + class) * BATCH + b] = f32::from(c.labels[b] as usize == class);
            }
        }
        for s in 0..k {
            for j in 0..l {
                ws.eps[j * BATCH * k + s * BATCH + b] = eps[(b * k + s) * l + j] as f32;
            }
        }
    }
    let mut grads = vec![f32::NAN; model.params.len()];
    let fc3_b = model.network.layout.output.b.clone();
    let loss = model.network.forward_iwae(&pool, &model.params, &mut ws, Some(&mut grads[fc3_b]));
    model.network.backward_iwae(&pool, &model.params, &mut grads, &mut ws);
    (loss.bce + loss.kl, grads)
}

/// A model with larger biases than nn.Linear's, so most ReLUs are active and z is spread out.
fn test_model(config: &ModelConfig) -> Model {
    let mut model = Model::init(config.clone(), 7);
    for t in &config.layout().tensors {
        if t.name.ends_with("bias") {
            for (i, v) in model.params[t.range.clone()].iter_mut().enumerate() {
                *v += if i % 3 == 0 { -0.05 } else { 0.3 };
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
        assert!(((loss - want_loss) / want_loss).abs() < 1e-5, "{what}: loss {loss} vs f64 {want_loss}");
        for t in &config.layout().tensors {
            let mut worst = 0.0f64;
            for i in t.range.clone() {
                let h = 1e-5;
                let mut plus = p64.clone();
                plus[i] += h;
                let mut minus = p64.clone();
                minus[i] -= h;
                let fd = (reference(&plus) - reference(&minus)) / (2.0 * h);
                let err = (grads[i] as f64 - fd).abs() / (1e-2 + fd.abs());
                worst = worst.max(err);
                assert!(
                    err < 2e-3,
                    "{what} {}[{}] ({threads} threads): core {} vs finite difference {fd}",
                    t.name,
                    i - t.range.start,
                    grads[i]
                );
            }
            assert!(worst.is_finite(), "{what} {} checked", t.name);
        }
    }
}

fn check(kind: ModelKind) {
    check_config(small(kind));
}

fn check_config(config: ModelConfig) {
    let model = test_model(&config);
    let c = case(&config);
    let what = format!("{}", config.kind);
    compare(&what, &model, |threads| core_gradients(&model, &c, threads), |p| reference_loss(&config, p, &c));
}

fn check_iwae(config: ModelConfig, k: usize) {
    let model = test_model(&config);
    let c = case(&config);
    let mut e = vec![0.0f32; BATCH * k * config.latent_dim];
    Rng::new(11).fill_normal(&mut e);
    let eps: Vec<f64> = e.iter().map(|&v| v as f64).collect();
    let what = format!("{} iwae k={k}", config.kind);
    compare(
        &what,
        &model,
        |threads| core_iwae_gradients(&model, &c, &eps, k, threads),
        |p| reference_iwae_loss(&config, p, &c, &eps, k),
    );
}

#[test]
fn iwae_gradients_match_finite_differences() {
    for k in [1, 3] {
        check_iwae(small(ModelKind::Vae), k);
        check_iwae(small(ModelKind::Cvae), k);
    }
    check_iwae(ModelConfig { hidden_layers: 2, activation: Activation::Tanh, ..small(ModelKind::Vae) }, 4);
}

/// Jensen's inequality on any draw: −log (1/k) Σ_s w_s ≤ (1/k) Σ_s −log w_s, the mean of the
/// one-sample losses on the same k draws; equality only if all w_s agree.
#[test]
fn the_k_sample_loss_is_below_the_mean_of_its_one_sample_losses() {
    let (config, k) = (small(ModelKind::Cvae), 6);
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
    let p = config.pixels();
    for b in 0..BATCH {
        for i in 0..p {
            ws.x[i * BATCH + b] = c.x[b * p + i] as f32;
            elbo_ws.x[i * BATCH + b] = c.x[b * p + i] as f32;
        }
    }
    let (mut iwae_kl, mut rng) = (0.0, Rng::new(3));
    for _ in 0..draws {
        rng.fill_normal(&mut ws.eps);
        let loss = model.network.forward_iwae(&pool, &model.params, &mut ws, None);
        // Same draw through the ELBO path: same reconstruction term.
        elbo_ws.eps.copy_from_slice(&ws.eps);
        let elbo = model.network.forward(&pool, &model.params, &mut elbo_ws, None);
        assert!((loss.bce - elbo.bce).abs() < 1e-3 * elbo.bce.abs(), "{} vs {}", loss.bce, elbo.bce);
        iwae_kl += loss.kl / draws as f64;
    }
    let analytic = model.network.forward(&pool, &model.params, &mut elbo_ws, None).kl;
    assert!((iwae_kl - analytic).abs() < 0.05 * analytic, "sampled KL {iwae_kl} vs analytic {analytic}");
}

#[test]
fn vae_gradients_match_finite_differences() {
    check(ModelKind::Vae);
}

#[test]
fn cvae_gradients_match_finite_differences() {
    check(ModelKind::Cvae);
}

#[test]
fn ae_gradients_match_finite_differences() {
    check(ModelKind::Ae);
}

#[test]
fn deep_tanh_gradients_match_finite_differences() {
    for kind in [ModelKind::Vae, ModelKind::Cvae, ModelKind::Ae] {
        check_config(ModelConfig { hidden_layers: 3, activation: Activation::Tanh, ..small(kind) });
    }
}

#[test]
fn deep_relu_gradients_match_finite_differences() {
    check_config(ModelConfig { hidden_layers: 2, ..small(ModelKind::Vae) });
}
