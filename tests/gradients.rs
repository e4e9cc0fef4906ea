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

/// Σ_b BCE_b + β·KL_b in f64, straight from the tutorial's definition.
fn reference_loss(config: &ModelConfig, params: &[f64], c: &Case) -> f64 {
    let layout = config.layout();
    let get = |name: &str| -> &[f64] {
        let t = layout.tensors.iter().find(|t| t.name == name).unwrap();
        &params[t.range.clone()]
    };
    let (p, h, l) = (config.pixels(), config.hidden_dim, config.latent_dim);
    let mut total = 0.0;
    for b in 0..BATCH {
        let mut input = c.x[b * p..(b + 1) * p].to_vec();
        let mut onehot = vec![0.0; config.cond_dim()];
        if config.kind.conditional() {
            onehot[c.labels[b] as usize] = 1.0;
        }
        input.extend_from_slice(&onehot);
        let act = |v: Vec<f64>| -> Vec<f64> {
            match config.activation {
                Activation::Relu => v.into_iter().map(|v| v.max(0.0)).collect(),
                Activation::Tanh => v.into_iter().map(f64::tanh).collect(),
            }
        };
        let mut h1 = act(linear(get("fc1.weight"), get("fc1.bias"), &input, h));
        for j in 2..=config.hidden_layers {
            h1 = act(linear(get(&format!("fc1_{j}.weight")), get(&format!("fc1_{j}.bias")), &h1, h));
        }
        let mu = linear(get("fc_mu.weight"), get("fc_mu.bias"), &h1, l);
        let mut z = mu.clone();
        if config.kind.variational() {
            let lv = linear(get("fc_logvar.weight"), get("fc_logvar.bias"), &h1, l);
            for j in 0..l {
                z[j] = mu[j] + c.eps[b * l + j] * (lv[j] / 2.0).exp();
                total += BETA * -0.5 * (1.0 + lv[j] - lv[j].exp() - mu[j] * mu[j]);
            }
        }
        z.extend_from_slice(&onehot);
        let mut h2 = act(linear(get("fc2.weight"), get("fc2.bias"), &z, h));
        for j in 2..=config.hidden_layers {
            h2 = act(linear(get(&format!("fc2_{j}.weight")), get(&format!("fc2_{j}.bias")), &h2, h));
        }
        let logits = linear(get("fc3.weight"), get("fc3.bias"), &h2, p);
        for (i, &lg) in logits.iter().enumerate() {
            let prob = 1.0 / (1.0 + (-lg).exp());
            let xi = c.x[b * p + i];
            total -= xi * prob.ln() + (1.0 - xi) * (1.0 - prob).ln();
        }
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

fn check(kind: ModelKind) {
    check_config(small(kind));
}

fn check_config(config: ModelConfig) {
    let kind = config.kind;
    let mut model = Model::init(config.clone(), 7);
    // Larger biases than nn.Linear's so most ReLUs are active and z is spread out.
    for t in &config.layout().tensors {
        if t.name.ends_with("bias") {
            for (i, v) in model.params[t.range.clone()].iter_mut().enumerate() {
                *v += if i % 3 == 0 { -0.05 } else { 0.3 };
            }
        }
    }
    let c = case(&config);
    let p64: Vec<f64> = model.params.iter().map(|&v| v as f64).collect();
    let want_loss = reference_loss(&config, &p64, &c);
    for threads in [1, 2] {
        let (loss, grads) = core_gradients(&model, &c, threads);
        assert!(((loss - want_loss) / want_loss).abs() < 1e-5, "{kind}: loss {loss} vs f64 {want_loss}");
        for t in &config.layout().tensors {
            let mut worst = 0.0f64;
            for i in t.range.clone() {
                let h = 1e-5;
                let mut plus = p64.clone();
                plus[i] += h;
                let mut minus = p64.clone();
                minus[i] -= h;
                let fd = (reference_loss(&config, &plus, &c) - reference_loss(&config, &minus, &c)) / (2.0 * h);
                let err = (grads[i] as f64 - fd).abs() / (1e-2 + fd.abs());
                worst = worst.max(err);
                assert!(
                    err < 2e-3,
                    "{kind} {}[{}] ({threads} threads): core {} vs finite difference {fd}",
                    t.name,
                    i - t.range.start,
                    grads[i]
                );
            }
            assert!(worst.is_finite(), "{kind} {} checked", t.name);
        }
    }
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
