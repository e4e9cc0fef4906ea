//! FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising", eqs. 2–3 and Algorithm 2): a
//! discriminator D, trained beside the VAE, tells the batch's draws z ~ q(z) from the same
//! draws with each dimension permuted across the batch (samples of q̄(z) = Π_j q(z_j)). Its
//! logit difference estimates the total correlation, TC(z) ≈ E_q(z)[log D(z)/(1 − D(z))], which
//! the VAE's loss adds with weight γ; D minimises its cross-entropy. As disentanglement_lib's
//! `FactorVAE` computes both from one batch:
//!
//! ```text
//! codes  [L, B] z (reparameterised draws)   and   [L, B] z̃ (each row permuted over the batch)
//! D      x → LeakyReLU₀.₂(W_j·x + b_j), j < layers → logits = W·x + b  [2, B] per half
//! VAE    + γ · Σ_b (l₀(z_b) − l₁(z_b))                       (gradient into z only; D fixed)
//! D      Σ_b −½ log softmax(l(z_b))₀ − ½ log softmax(l(z̃_b))₁   (gradient into D only)
//! ```
//!
//! Sums over the batch, as the VAE's loss is (disentanglement_lib takes means; Adam does not
//! see the difference). With several workers or micro-batches each part permutes its own draws,
//! as β-TCVAE estimates its TC per part.

use super::network::{Network, Workspace};
use crate::core::{Pool, Purpose, Rng, matmul};
use crate::nn::{Layer, linear};

/// LeakyReLU's slope below 0 (disentanglement_lib's `tf.nn.leaky_relu`; Kim & Mnih's 0.2).
pub const LEAKY_SLOPE: f32 = 0.2;

/// The discriminator's Adam settings (disentanglement_lib's FactorVAE: lr 1e-4, β₁ 0.5, β₂ 0.9).
pub const DISCRIMINATOR_ADAM: crate::core::AdamConfig =
    crate::core::AdamConfig { lr: 1e-4, beta1: 0.5, beta2: 0.9, eps: 1e-8 };

/// One step's discriminator figures, summed over the batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiscLoss {
    /// Σ_b l₀(z_b) − l₁(z_b): the TC estimate the VAE's loss weights by γ.
    pub tc: f64,
    /// The discriminator's own loss, Σ −½ log softmax₀(z) − ½ log softmax₁(z̃).
    pub loss: f64,
}

/// The discriminator's buffers for a batch of B codes, each half (z, z̃) \[rows, B\].
#[derive(Default)]
pub struct DiscWork {
    /// Each layer's input per half: \[0\] the codes \[L, B\], then the hidden activations.
    h: [Vec<Vec<f32>>; 2],
    /// Gradient ping-pong per half, and the logits' gradient per half \[2, B\].
    d: [[Vec<f32>; 2]; 2],
    perm: Vec<u32>,
}

fn leaky(v: &mut [f32], bias: &[f32], batch: usize, act: bool) {
    for (row, &b) in v.chunks_exact_mut(batch).zip(bias) {
        for x in row {
            let y = *x + b;
            *x = if act && y < 0.0 { LEAKY_SLOPE * y } else { y };
        }
    }
}

/// `d *= LeakyReLU'(h)` (the sign of the output is the input's).
fn leaky_backward(d: &mut [f32], h: &[f32]) {
    for (g, &y) in d.iter_mut().zip(h) {
        if y < 0.0 {
            *g *= LEAKY_SLOPE;
        }
    }
}

/// −log σ(x) = softplus(−x), stable for large |x|.
fn neg_log_sigmoid(x: f32) -> f64 {
    let x = x as f64;
    if x > 0.0 { (-x).exp().ln_1p() } else { -x + x.exp().ln_1p() }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Network {
    /// Forward through the discriminator for both halves; leaves each layer's input in `work`
    /// and returns the logits of each half \[2, B\].
    fn discriminate(&self, pool: &Pool, params: &[f32], work: &mut DiscWork, batch: usize) -> [Vec<f32>; 2] {
        let layers = &self.layout.discriminator;
        let mut logits = [Vec::new(), Vec::new()];
        for (half, out) in logits.iter_mut().enumerate() {
            let h = &mut work.h[half];
            for (j, layer) in layers.iter().enumerate() {
                let (i, o, last) = (layer.inputs(), layer.outputs(), j + 1 == layers.len());
                let mut y = if last { Vec::new() } else { std::mem::take(&mut h[j + 1]) };
                y.resize(o * batch, 0.0);
                linear::forward(pool, &params[layer.w.clone()], (o, i), &h[j][..i * batch], &mut y, batch);
                leaky(&mut y, &params[layer.b.clone()], batch, !last);
                if last {
                    *out = y;
                } else {
                    h[j + 1] = y;
                }
            }
        }
        logits
    }

    /// After [`Network::forward`] of a model with a discriminator: runs it on the batch's
    /// draws and their permutation (drawn from `rng`), writes the discriminator's gradient
    /// into its part of `grads`, and leaves γ times the TC estimate's gradient with respect
    /// to z for [`Network::backward_tc`]. Shapes: z \[L, B\] in `ws.z`.
    #[allow(clippy::too_many_arguments)]
    pub fn factorvae(
        &self,
        pool: &Pool,
        params: &[f32],
        grads: &mut [f32],
        ws: &mut Workspace,
        work: &mut DiscWork,
        gamma: f32,
        rng: &mut Rng,
    ) -> DiscLoss {
        let (l, b) = (self.config.latent_dim, ws.batch);
        let layers = &self.layout.discriminator;
        assert!(!layers.is_empty(), "FactorVAE needs a model with a discriminator");
        // The codes, and each dimension permuted over the batch (disentanglement_lib's
        // shuffle_codes).
        for h in &mut work.h {
            h.resize_with(layers.len(), Vec::new);
            h[0].resize(l * b, 0.0);
        }
        work.h[0][0].copy_from_slice(&ws.z[..l * b]);
        work.perm.resize(b, 0);
        for r in 0..l {
            work.perm.iter_mut().enumerate().for_each(|(i, p)| *p = i as u32);
            rng.shuffle(&mut work.perm);
            let row = &ws.z[r * b..(r + 1) * b];
            for (dst, &p) in work.h[1][0][r * b..(r + 1) * b].iter_mut().zip(&work.perm) {
                *dst = row[p as usize];
            }
        }
        let logits = self.discriminate(pool, params, work, b);
        // The losses and the logits' gradients: the discriminator's (both halves), and the
        // VAE's γ·(l₀ − l₁) on z's half.
        let mut out = DiscLoss::default();
        for (half, lg) in logits.iter().enumerate() {
            let d = &mut work.d[half][0];
            d.resize(2 * b, 0.0);
            for c in 0..b {
                let (l0, l1) = (lg[c], lg[b + c]);
                // Target class: 0 for q(z), 1 for the permuted codes.
                let margin = if half == 0 { l0 - l1 } else { l1 - l0 };
                out.loss += 0.5 * neg_log_sigmoid(margin);
                // ∂/∂margin of −½ log σ(margin) = −½ (1 − σ(margin)).
                let g = -0.5 * (1.0 - sigmoid(margin));
                let (g0, g1) = if half == 0 { (g, -g) } else { (-g, g) };
                (d[c], d[b + c]) = (g0, g1);
                if half == 0 {
                    out.tc += (l0 - l1) as f64;
                }
            }
        }
        // The discriminator's gradient: both halves through every layer.
        for layer in layers.iter() {
            grads[layer.w.clone()].fill(0.0);
            grads[layer.b.clone()].fill(0.0);
        }
        for half in 0..2 {
            self.discriminator_backward(pool, params, Some(&mut *grads), work, half, b);
        }
        // The VAE's: γ·(+1, −1) on z's logits, back to z with D's weights fixed.
        let d = &mut work.d[0][0];
        d.resize(2 * b, 0.0);
        d[..b].fill(gamma);
        d[b..2 * b].fill(-gamma);
        self.discriminator_backward(pool, params, None, work, 0, b);
        ws.tc_dz.clear();
        ws.tc_dz.extend_from_slice(&work.d[0][0][..l * b]);
        ws.tc_denc.clear();
        ws.tc_denc.resize(2 * l * b, 0.0);
        out
    }

    /// Backward through the discriminator for `half`, from the logits' gradient in
    /// `work.d[half][0]`: weight and bias gradients added into `grads` when given, and the
    /// input gradient propagated down to the codes, left in `work.d[half][0]` \[L, B\].
    fn discriminator_backward(
        &self,
        pool: &Pool,
        params: &[f32],
        mut grads: Option<&mut [f32]>,
        work: &mut DiscWork,
        half: usize,
        b: usize,
    ) {
        let layers: &[Layer] = &self.layout.discriminator;
        let [dy, dx] = &mut work.d[half];
        for (j, layer) in layers.iter().enumerate().rev() {
            let (i, o) = (layer.inputs(), layer.outputs());
            let x = &work.h[half][j][..i * b];
            if let Some(g) = grads.as_deref_mut() {
                // dW += dy · xᵀ, db += Σ_b dy.
                let dw = &mut g[layer.w.clone()];
                matmul(pool, dw, crate::core::Mat::new(&dy[..o * b], o, b), crate::core::Mat::new(x, i, b).t(), true);
                for (db, row) in g[layer.b.clone()].iter_mut().zip(dy.chunks_exact(b)) {
                    *db += row.iter().sum::<f32>();
                }
            }
            dx.resize(i * b, 0.0);
            linear::input_grad(pool, &params[layer.w.clone()], (o, i), i, &dy[..o * b], dx, b);
            if j > 0 {
                leaky_backward(&mut dx[..i * b], x);
            }
            std::mem::swap(dy, dx);
        }
    }
}

/// The random stream that permutes part `part` of step `step` in epoch `epoch`: the same on
/// any worker or micro-batch computing that part.
pub fn permutation_rng(seed: u64, epoch: u64, step: usize, part: usize) -> Rng {
    let key = Rng::example_key(seed, Purpose::Permute, epoch);
    Rng::example(key, ((step as u64) << 24) | part as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Discriminator;
    use crate::model::{ModelConfig, ModelKind};

    /// The discriminator in f64: logits \[2\] of one code, from f64 copies of the parameters.
    fn logits_f64(net: &Network, p: &[f64], code: &[f64]) -> [f64; 2] {
        let layers = &net.layout.discriminator;
        let mut x = code.to_vec();
        for (j, layer) in layers.iter().enumerate() {
            let (i, o) = (layer.inputs(), layer.outputs());
            let (w, b) = (&p[layer.w.clone()], &p[layer.b.clone()]);
            x = (0..o)
                .map(|r| {
                    let y = b[r] + (0..i).map(|c| w[r * i + c] * x[c]).sum::<f64>();
                    if j + 1 < layers.len() && y < 0.0 { LEAKY_SLOPE as f64 * y } else { y }
                })
                .collect();
        }
        [x[0], x[1]]
    }

    /// −log softmax(l)_t in f64.
    fn nll(l: [f64; 2], t: usize) -> f64 {
        let m = l[0].max(l[1]);
        m + ((l[0] - m).exp() + (l[1] - m).exp()).ln() - l[t]
    }

    /// Every gradient the step leaves — the discriminator's parameters' (of its loss) and z's
    /// (of γ·Σ(l₀ − l₁)) — against central differences of an f64 evaluation, and both sums
    /// against their f64 values.
    #[test]
    fn gradients_match_f64_central_differences() {
        let (l, b, gamma) = (3, 5, 1.7f32);
        let config = ModelConfig {
            latent_dim: l,
            hidden_dim: 6,
            discriminator: Some(Discriminator { hidden: 4, layers: 2 }),
            ..ModelConfig::tutorial(ModelKind::Vae)
        };
        let model = crate::model::Model::init(config.clone(), 3);
        let net = &model.network;
        let pool = Pool::new(1);
        let mut ws = Workspace::new(&config, b, 1);
        let mut z = vec![0.0f32; l * b];
        Rng::new(9).fill_normal(&mut z);
        ws.z[..l * b].copy_from_slice(&z);
        let mut grads = vec![0.0f32; model.params.len()];
        let rng = Rng::new(4);
        let mut work = DiscWork::default();
        let got = net.factorvae(&pool, &model.params, &mut grads, &mut ws, &mut work, gamma, &mut rng.clone());

        // The same permutation, drawn again: row r of z̃ is row r of z permuted.
        let mut rng = rng;
        let mut zt = vec![0.0f64; l * b];
        for r in 0..l {
            let mut perm: Vec<u32> = (0..b as u32).collect();
            rng.shuffle(&mut perm);
            for (c, &p) in perm.iter().enumerate() {
                zt[r * b + c] = z[r * b + p as usize] as f64;
            }
        }
        let col = |m: &[f64], c: usize| (0..l).map(|r| m[r * b + c]).collect::<Vec<f64>>();
        let disc_loss = |p: &[f64], z: &[f64]| -> f64 {
            (0..b)
                .map(|c| 0.5 * nll(logits_f64(net, p, &col(z, c)), 0) + 0.5 * nll(logits_f64(net, p, &col(&zt, c)), 1))
                .sum()
        };
        let tc = |p: &[f64], z: &[f64]| -> f64 {
            (0..b).map(|c| logits_f64(net, p, &col(z, c))).map(|[l0, l1]| l0 - l1).sum()
        };
        let p64: Vec<f64> = model.params.iter().map(|&v| v as f64).collect();
        let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
        assert!((got.loss - disc_loss(&p64, &z64)).abs() < 1e-5, "{} vs {}", got.loss, disc_loss(&p64, &z64));
        assert!((got.tc - tc(&p64, &z64)).abs() < 1e-5, "{} vs {}", got.tc, tc(&p64, &z64));

        let h = 1e-6;
        let close = |a: f64, want: f64, what: &str| {
            assert!((a - want).abs() < 1e-4 * (1.0 + want.abs()), "{what}: {a} against {want} in f64");
        };
        let disc = net.layout.model_len..net.layout.len;
        assert_eq!(disc.len(), (3 * 4 + 4) + (4 * 4 + 4) + (4 * 2 + 2));
        for i in disc {
            let (mut up, mut down) = (p64.clone(), p64.clone());
            up[i] += h;
            down[i] -= h;
            let want = (disc_loss(&up, &z64) - disc_loss(&down, &z64)) / (2.0 * h);
            close(grads[i] as f64, want, &format!("∂loss/∂θ[{i}]"));
        }
        assert!(grads[..net.layout.model_len].iter().all(|&g| g == 0.0), "the model's gradients are not the step's");
        for i in 0..l * b {
            let (mut up, mut down) = (z64.clone(), z64.clone());
            up[i] += h;
            down[i] -= h;
            let want = gamma as f64 * (tc(&p64, &up) - tc(&p64, &down)) / (2.0 * h);
            close(ws.tc_dz[i] as f64, want, &format!("γ·∂TC/∂z[{i}]"));
        }
        assert!(ws.tc_denc.iter().all(|&g| g == 0.0));
    }

    /// The permutations belong to the step and the part, not to who computes them.
    #[test]
    fn permutations_depend_on_step_and_part_only() {
        let draw = |step, part| permutation_rng(1, 2, step, part).next_u64();
        assert_eq!(draw(3, 1), draw(3, 1));
        assert_ne!(draw(3, 1), draw(3, 0));
        assert_ne!(draw(3, 1), draw(4, 1));
        assert_ne!(permutation_rng(1, 3, 3, 1).next_u64(), draw(3, 1));
    }
}
