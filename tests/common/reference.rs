//! An independent f64 evaluation of every model's loss, written from PyTorch's definitions
//! with plain loops over single examples (channel-major images), sharing no code with the
//! compute core: `nn.Linear`, `nn.Conv2d` (kernel 4, stride 2, padding 1, and a residual
//! block's kernel 3, stride 1, padding 1) and `nn.ConvTranspose2d` (kernel 4, stride 2,
//! padding 1), the reparameterisation, and each likelihood's density.

use vae::model::config::Activation;
use vae::model::{Arch, Likelihood, ModelConfig, TensorInfo};

/// A model's forward passes over `params` in f64.
pub struct Reference<'a> {
    pub config: &'a ModelConfig,
    pub params: &'a [f64],
    tensors: Vec<TensorInfo>,
}

const K: usize = 4; // kernel
const S: usize = 2; // stride
const P: i64 = 1; // padding

impl<'a> Reference<'a> {
    pub fn new(config: &'a ModelConfig, params: &'a [f64]) -> Reference<'a> {
        Reference { config, params, tensors: config.layout().tensors }
    }

    fn get(&self, name: &str) -> (&[f64], &[usize]) {
        let t = self.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"));
        (&self.params[t.range.clone()], &t.shape)
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

    /// `nn.Linear`: weight [out, in].
    fn linear(&self, name: &str, input: &[f64]) -> Vec<f64> {
        let (w, shape) = self.get(&format!("{name}.weight"));
        let (b, _) = self.get(&format!("{name}.bias"));
        let (out, inp) = (shape[0], shape[1]);
        assert_eq!(input.len(), inp, "{name}");
        (0..out).map(|o| b[o] + (0..inp).map(|i| w[o * inp + i] * input[i]).sum::<f64>()).collect()
    }

    /// `nn.Conv2d(k=4, s=2, p=1)` on one image `[C_in, h, w]`: weight [C_out, C_in, 4, 4].
    fn conv2d(&self, name: &str, x: &[f64], h: usize, w: usize) -> Vec<f64> {
        self.conv2d_with(name, x, h, w, (K, S, P))
    }

    /// `nn.Conv2d(k, s, p)` on one image `[C_in, h, w]`: weight [C_out, C_in, k, k].
    fn conv2d_with(&self, name: &str, x: &[f64], h: usize, w: usize, (k, s, p): (usize, usize, i64)) -> Vec<f64> {
        let (wt, shape) = self.get(&format!("{name}.weight"));
        let (b, _) = self.get(&format!("{name}.bias"));
        let (cout, cin) = (shape[0], shape[1]);
        let (ho, wo) = ((h as i64 + 2 * p - k as i64) as usize / s + 1, (w as i64 + 2 * p - k as i64) as usize / s + 1);
        let mut y = vec![0.0; cout * ho * wo];
        for co in 0..cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b[co];
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let (iy, ix) = ((oy * s + ky) as i64 - p, (ox * s + kx) as i64 - p);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += wt[((co * cin + ci) * k + ky) * k + kx]
                                        * x[(ci * h + iy as usize) * w + ix as usize];
                                }
                            }
                        }
                    }
                    y[(co * ho + oy) * wo + ox] = acc;
                }
            }
        }
        y
    }

    /// `nn.ConvTranspose2d(k=4, s=2, p=1)` on one map `[C_in, h, w]`: weight [C_in, C_out, 4, 4];
    /// input pixel (iy, ix) adds `x · w` to output pixel (iy·2 − 1 + ky, ix·2 − 1 + kx).
    fn conv_transpose2d(&self, name: &str, x: &[f64], h: usize, w: usize) -> Vec<f64> {
        let (wt, shape) = self.get(&format!("{name}.weight"));
        let (b, _) = self.get(&format!("{name}.bias"));
        let (cin, cout) = (shape[0], shape[1]);
        let (ho, wo) = (2 * h, 2 * w);
        let mut y: Vec<f64> = (0..cout * ho * wo).map(|i| b[i / (ho * wo)]).collect();
        for ci in 0..cin {
            for iy in 0..h {
                for ix in 0..w {
                    for co in 0..cout {
                        for ky in 0..K {
                            for kx in 0..K {
                                let (ty, tx) = ((iy * S + ky) as i64 - P, (ix * S + kx) as i64 - P);
                                if ty >= 0 && tx >= 0 && (ty as usize) < ho && (tx as usize) < wo {
                                    y[(co * ho + ty as usize) * wo + tx as usize] +=
                                        x[(ci * h + iy) * w + ix] * wt[((ci * cout + co) * K + ky) * K + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    /// A resnet's residual blocks `{prefix}.{r}` on one map `[C, h, w]`:
    /// `x ← act(x + conv2(act(conv1(x))))` with 3×3 convolutions, stride 1, padding 1.
    fn residual_blocks(&self, prefix: &str, mut x: Vec<f64>, h: usize, w: usize) -> Vec<f64> {
        for r in 0..self.config.blocks {
            let inner = self.act(self.conv2d_with(&format!("{prefix}.{r}.conv1"), &x, h, w, (3, 1, 1)));
            let outer = self.conv2d_with(&format!("{prefix}.{r}.conv2"), &inner, h, w, (3, 1, 1));
            x = self.act(x.iter().zip(&outer).map(|(a, b)| a + b).collect());
        }
        x
    }

    fn hidden_names(&self, base: &str) -> Vec<String> {
        (0..self.config.hidden_layers)
            .map(|j| if j == 0 { base.to_string() } else { format!("{base}_{}", j + 1) })
            .collect()
    }

    /// (μ, log σ²) of one example (log σ² empty for `ae`).
    pub fn encode(&self, x: &[f64], label: u8) -> (Vec<f64>, Vec<f64>) {
        let c = self.config;
        let features = match c.arch {
            Arch::Mlp => {
                let mut h: Vec<f64> = x.iter().copied().chain(self.onehot(label)).collect();
                for name in self.hidden_names("fc1") {
                    h = self.act(self.linear(&name, &h));
                }
                h
            }
            Arch::Conv | Arch::Resnet => {
                let (mut h, mut rows, mut cols) = (x.to_vec(), c.image_rows, c.image_cols);
                for i in 0..c.widths.len() {
                    h = self.act(self.conv2d(&format!("encoder.{i}"), &h, rows, cols));
                    (rows, cols) = (rows / 2, cols / 2);
                    h = self.residual_blocks(&format!("encoder_res.{i}"), h, rows, cols);
                }
                if c.hidden_dim > 0 {
                    h = self.act(self.linear("encoder_fc", &h)); // flatten, then the hidden layer
                }
                h.extend(self.onehot(label)); // then torch.cat((h, y), 1)
                h
            }
        };
        let mu = self.linear("fc_mu", &features);
        if !c.kind.variational() {
            return (mu, Vec::new());
        }
        (mu, self.linear("fc_logvar", &features))
    }

    /// The decoder's output (the likelihood's parameters) for one z.
    pub fn decode(&self, z: &[f64], label: u8) -> Vec<f64> {
        let c = self.config;
        let input: Vec<f64> = z.iter().copied().chain(self.onehot(label)).collect();
        match c.arch {
            Arch::Mlp => {
                let mut h = input;
                for name in self.hidden_names("fc2") {
                    h = self.act(self.linear(&name, &h));
                }
                self.linear("fc3", &h)
            }
            Arch::Conv | Arch::Resnet => {
                let n = c.widths.len();
                let mut h = self.act(self.linear("decoder_input", &input));
                if c.hidden_dim > 0 {
                    h = self.act(self.linear("decoder_fc", &h));
                }
                // then .view(-1, C, s, s)
                let (mut rows, mut cols) = (c.image_rows >> n, c.image_cols >> n);
                for j in 0..n {
                    h = self.residual_blocks(&format!("decoder_res.{j}"), h, rows, cols);
                    h = self.conv_transpose2d(&format!("decoder.{j}"), &h, rows, cols);
                    if j < n - 1 {
                        h = self.act(h);
                    }
                    (rows, cols) = (rows * 2, cols * 2);
                }
                h
            }
        }
    }

    /// log p(x | z) of the model's likelihood, from each density's definition.
    pub fn log_likelihood(&self, z: &[f64], label: u8, x: &[f64]) -> f64 {
        let out = self.decode(z, label);
        let plane = self.config.image_rows * self.config.image_cols;
        let sigmoid = |l: f64| 1.0 / (1.0 + (-l).exp());
        if let Likelihood::LogisticMixture { mixtures } = self.config.likelihood {
            return (0..plane).map(|pos| mixture_log_p(&out, x, plane, self.config.channels, mixtures, pos)).sum();
        }
        out.iter()
            .zip(x)
            .enumerate()
            .map(|(i, (&o, &xi))| match self.config.likelihood {
                Likelihood::Bernoulli => {
                    let p = sigmoid(o);
                    xi * p.ln() + (1.0 - xi) * (1.0 - p).ln()
                }
                Likelihood::ContinuousBernoulli => {
                    // C(λ) = 2 artanh(1 − 2λ) / (1 − 2λ), λ = σ(o).
                    let lam = sigmoid(o);
                    let c = 2.0 * (1.0 - 2.0 * lam).atanh() / (1.0 - 2.0 * lam);
                    c.ln() + xi * lam.ln() + (1.0 - xi) * (1.0 - lam).ln()
                }
                Likelihood::Gaussian { sigma } => {
                    let lv = match sigma {
                        Some(s) => 2.0 * (s as f64).ln(),
                        None => self.get("likelihood.logvar").0[i / plane],
                    };
                    -0.5 * ((2.0 * std::f64::consts::PI).ln() + lv + (xi - o) * (xi - o) / lv.exp())
                }
                Likelihood::DiscretizedGaussian => {
                    // log (Φ(b) − Φ(a)) over the bin of the nearest value v, the edge bins open.
                    let lv = self.get("likelihood.logvar").0[i / plane];
                    let sigma = (0.5 * lv).exp();
                    let v = (xi * 255.0).round();
                    let cdf = |t: f64| 0.5 * libm::erfc(-t / std::f64::consts::SQRT_2);
                    let hi = if v < 255.0 { cdf(((v + 0.5) / 255.0 - o) / sigma) } else { 1.0 };
                    let lo = if v > 0.0 { cdf(((v - 0.5) / 255.0 - o) / sigma) } else { 0.0 };
                    (hi - lo).ln()
                }
                Likelihood::LogisticMixture { .. } => unreachable!("handled above"),
            })
            .sum()
    }
}

/// log p(x) at one position of PixelCNN++'s discretized logistic mixture, from the paper's
/// definition: parameter channel i of the position is `out[i·plane + pos]`, in the order
/// logits (K), then per channel means, log-scales (clamped at −7) and, for RGB, coefficients
/// (K each); G's mean adds tanh(α)·x_R, B's tanh(β)·x_R + tanh(γ)·x_G; each value's mass is
/// σ(b) − σ(a) over its bin of half-width 1/510, the edge bins open.
fn mixture_log_p(out: &[f64], x: &[f64], plane: usize, channels: usize, k: usize, pos: usize) -> f64 {
    let p = |i: usize| out[i * plane + pos];
    let per = if channels == 3 { 3 } else { 2 };
    let mean = |c: usize, j: usize| k * (1 + c * per) + j;
    let sigmoid = |t: f64| 1.0 / (1.0 + (-t).exp());
    let logits: Vec<f64> = (0..k).map(p).collect();
    let lse = logits.iter().map(|l| l.exp()).sum::<f64>().ln();
    // The values v/255 of the bins the data fall in (the data sit on that grid).
    let xs: Vec<f64> = (0..channels).map(|c| (x[c * plane + pos] * 255.0).round() / 255.0).collect();
    let mut total = 0.0;
    for (j, logit) in logits.iter().enumerate() {
        let mut prob = (logit - lse).exp();
        for c in 0..channels {
            let coef = |i: usize| p(mean(i, j) + 2 * k).tanh();
            let mu = p(mean(c, j))
                + match (channels, c) {
                    (3, 1) => coef(0) * xs[0],
                    (3, 2) => coef(1) * xs[0] + coef(2) * xs[1],
                    _ => 0.0,
                };
            let s = p(mean(c, j) + k).max(-7.0).exp();
            let v = (xs[c] * 255.0).round();
            let a = if v > 0.0 { ((v - 0.5) / 255.0 - mu) / s } else { f64::NEG_INFINITY };
            let b = if v < 255.0 { ((v + 0.5) / 255.0 - mu) / s } else { f64::INFINITY };
            // Right of the mean, from the upper tails: σ(b) − σ(a) of two numbers near 1
            // would keep too few digits for the finite differences.
            prob *= if a > 0.0 { sigmoid(-a) - sigmoid(-b) } else { sigmoid(b) - sigmoid(a) };
        }
        total += prob;
    }
    total.ln()
}

/// An example batch: images `[B, pixels]` channel-major, labels, and noise `[B, k, latent]`.
pub struct Case {
    pub x: Vec<f64>,
    pub labels: Vec<u8>,
    pub eps: Vec<f64>,
}

/// Σ_b −log p(x_b|z_b) + β·KL_b in f64 with one draw per example: the tutorial's loss.
pub fn elbo_loss(config: &ModelConfig, params: &[f64], c: &Case, beta: f64) -> f64 {
    let r = Reference::new(config, params);
    let (p, l) = (config.pixels(), config.latent_dim);
    let mut total = 0.0;
    for (b, &label) in c.labels.iter().enumerate() {
        let x = &c.x[b * p..(b + 1) * p];
        let (mu, lv) = r.encode(x, label);
        let mut z = mu.clone();
        if config.kind.variational() {
            for j in 0..l {
                z[j] = mu[j] + c.eps[b * l + j] * (lv[j] / 2.0).exp();
                total += beta * -0.5 * (1.0 + lv[j] - lv[j].exp() - mu[j] * mu[j]);
            }
        }
        total -= r.log_likelihood(&z, label, x);
    }
    total
}

/// Σ_b −log (1/k) Σ_s p(x|z_s) p(z_s) / q(z_s|x) in f64 (Burda et al. 2015, eq. 8), from the
/// densities themselves: z_s = μ + σ·ε_s with `eps` \[B, k, latent\].
pub fn iwae_loss(config: &ModelConfig, params: &[f64], c: &Case, eps: &[f64], k: usize) -> f64 {
    sampled_loss(config, params, c, eps, k, true, 1.0)
}

/// The k-draw ELBO, Σ_b −(1/k) Σ_s log w_s, on the same draws as [`iwae_loss`], with each
/// draw's KL estimate weighted by `beta`: log w_s = log p(x|z_s) + β·(log p(z_s) − log q(z_s|x)).
#[allow(dead_code)]
pub fn elbo_k_loss(config: &ModelConfig, params: &[f64], c: &Case, eps: &[f64], k: usize, beta: f64) -> f64 {
    sampled_loss(config, params, c, eps, k, false, beta)
}

fn sampled_loss(
    config: &ModelConfig,
    params: &[f64],
    c: &Case,
    eps: &[f64],
    k: usize,
    importance: bool,
    beta: f64,
) -> f64 {
    let r = Reference::new(config, params);
    let (p, l) = (config.pixels(), config.latent_dim);
    let log_normal = |v: f64, mean: f64, logvar: f64| {
        -0.5 * ((2.0 * std::f64::consts::PI).ln() + logvar + (v - mean) * (v - mean) / logvar.exp())
    };
    // A VampPrior (Tomczak & Welling 2018, eq. 9): the encodings of the pseudo-inputs,
    // clipped to [0, 1], as the mixture's components, each weighted 1/K.
    // A Gaussian mixture prior: its means and log-variances, [K, L] each, as the components.
    let layout = config.layout();
    let components: Vec<(Vec<f64>, Vec<f64>)> = match (layout.pseudo_inputs, layout.prior_means, layout.prior_logvars) {
        (Some(range), _, _) => params[range]
            .chunks_exact(p)
            .map(|u| r.encode(&u.iter().map(|v| v.clamp(0.0, 1.0)).collect::<Vec<_>>(), 0))
            .collect(),
        (None, Some(means), Some(logvars)) => params[means]
            .chunks_exact(l)
            .zip(params[logvars].chunks_exact(l))
            .map(|(m, v)| (m.to_vec(), v.to_vec()))
            .collect(),
        _ => Vec::new(),
    };
    let log_prior = |z: &[f64]| -> f64 {
        if components.is_empty() {
            return z.iter().map(|&v| log_normal(v, 0.0, 0.0)).sum();
        }
        let logs: Vec<f64> =
            components.iter().map(|(m, v)| (0..l).map(|j| log_normal(z[j], m[j], v[j])).sum::<f64>()).collect();
        let max = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        max + logs.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - (components.len() as f64).ln()
    };
    let mut total = 0.0;
    for (b, &label) in c.labels.iter().enumerate() {
        let x = &c.x[b * p..(b + 1) * p];
        let (mu, lv) = r.encode(x, label);
        let log_w: Vec<f64> = (0..k)
            .map(|s| {
                let z: Vec<f64> = (0..l).map(|j| mu[j] + eps[(b * k + s) * l + j] * (lv[j] / 2.0).exp()).collect();
                let prior = log_prior(&z);
                let posterior: f64 = (0..l).map(|j| log_normal(z[j], mu[j], lv[j])).sum();
                r.log_likelihood(&z, label, x) + beta * (prior - posterior)
            })
            .collect();
        if !importance {
            total -= log_w.iter().sum::<f64>() / k as f64;
            continue;
        }
        let max = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + log_w.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        total += (k as f64).ln() - lse;
    }
    total
}
