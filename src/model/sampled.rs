//! The sampled objectives: k draws of z per example, weighted by importance (the IWAE bound,
//! Burda, Grosse & Salakhutdinov 2015, eq. 8) or uniformly (the k-draw ELBO), with N(0, I)
//! or a mixture prior (`model::prior`). Kernels in `core::importance`.

use super::network::{BatchLoss, Network, Targets, Workspace};
use crate::core::likelihood::{discretized_gaussian_weighted_logvar_grad, gaussian_weighted_logvar_grad};
use crate::core::{Pool, importance};
use crate::model::Likelihood;

impl Network {
    /// The importance-weighted objective with k = `ws.samples` draws of z per example
    /// (Burda, Grosse & Salakhutdinov 2015, eq. 8): Σ_b −log (1/k) Σ_s w_s. Needs `ws.x`
    /// (`ws.y`) and `ws.eps` \[L, k·B\] filled. Leaves the w̃-weighted ∂loss/∂out in `ws.out`,
    /// w̃ in `ws.weights`, and each example's loss in `ws.kl`. The returned `bce` is Σ_b of
    /// the mean reconstruction loss over the samples and `kl` the rest, so `bce + kl` is the
    /// loss; for k = 1 `kl` is the single-draw estimate log q(z|x) − log p(z).
    pub fn forward_iwae(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) -> BatchLoss {
        self.forward_samples(pool, params, ws, true)
    }

    /// [`Network::forward_iwae`] with importance weights (`importance`), or with uniform
    /// weights 1/k: the k-sample ELBO −(1/k) Σ_s log w_s, Burda et al.'s "VAE with k samples"
    /// (the KL then estimated by the same draws). [`Network::backward_iwae`] serves both.
    pub fn forward_samples(&self, pool: &Pool, params: &[f32], ws: &mut Workspace, importance: bool) -> BatchLoss {
        assert!(self.config.kind.variational(), "the sampled objectives need a variational model");
        let (l, p, b, cols) = (self.config.latent_dim, self.config.pixels(), ws.batch, ws.columns());
        self.encode(pool, params, ws);
        importance::reparameterize_samples(&ws.enc, &ws.eps, &mut ws.z[..l * cols], b);
        ws.copy_labels(&self.config);
        self.decode_logits(pool, params, ws);
        ws.fill_targets(p);
        let targets = if ws.samples == 1 { Targets::Batch } else { Targets::Repeated };
        // Kept only where a discretized Gaussian trains (see `Workspace::out_kept`).
        if !ws.out_kept.is_empty() {
            ws.out_kept.copy_from_slice(&ws.out[..p * cols]);
        }
        self.reconstruction(pool, params, ws, targets);
        let log_prior = match ws.prior.as_deref_mut() {
            Some(pw) => {
                self.prior_forward(pool, params, pw);
                let m = pw.mixture.as_ref().expect("just built");
                m.log_density(pool, &ws.z[..l * cols], &mut pw.z2, &mut pw.resp, &mut pw.log_p);
                Some(&pw.log_p[..cols])
            }
            None => None,
        };
        let (loss, bce) = importance::importance_weights(
            &ws.enc,
            &ws.eps,
            &ws.z[..l * cols],
            &ws.bce[..cols],
            &mut ws.weights,
            &mut ws.kl[..b],
            b,
            !importance,
            log_prior,
        );
        // A learned log-variance's gradient, each column weighted.
        match self.config.likelihood {
            Likelihood::DiscretizedGaussian if !ws.out_kept.is_empty() => {
                let bias = self.output_bias(params, &mut ws.bias_rows);
                let x = if ws.samples == 1 { &ws.x[..p * b] } else { &ws.x_rep[..] };
                let (w, lv) = (&ws.weights[..cols], &ws.logvar_rows);
                discretized_gaussian_weighted_logvar_grad(pool, &ws.out_kept, bias, lv, x, w, &mut ws.dlogvar_rows);
            }
            Likelihood::Gaussian { sigma: None } => {
                // From the unweighted mean gradient, before weight_columns scales it.
                gaussian_weighted_logvar_grad(&ws.out, &ws.weights[..cols], &ws.logvar_rows, &mut ws.dlogvar_rows);
            }
            _ => {}
        }
        importance::weight_columns(&mut ws.out, &ws.weights, &mut ws.db_rows);
        BatchLoss { bce, kl: loss - bce }
    }

    /// Gradients of the importance-weighted loss after [`Network::forward_iwae`], or of the
    /// k-draw ELBO after [`Network::forward_samples`] with uniform weights; there `beta`
    /// weights each draw's KL estimate log q(z|x) − log p(z) (β-VAE, Higgins et al. 2017; a
    /// KL warm-up, Sønderby et al. 2016), so the draw's loss is −log p(x|z) + β·(log q − log p).
    /// `beta` must be 1 with importance weights (the bound has no separate KL term to weight).
    /// Overwrites every entry of `grads`; leaves β·w̃ in `ws.weights`.
    pub fn backward_iwae(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace, beta: f32) {
        assert!(ws.trains(), "backward needs a workspace with gradients (Workspace::new, not ::inference)");
        self.backward_decoder(pool, params, grads, ws);
        let (cols, l) = (ws.columns(), self.config.latent_dim * ws.columns());
        // The decoder's gradient already carries w̃ (forward's weight_columns); the prior and
        // posterior shares below take β·w̃.
        if beta != 1.0 {
            ws.weights[..cols].iter_mut().for_each(|w| *w *= beta);
        }
        // The prior's share of ∂loss/∂z per unit weight, −∂log p(z)/∂z: z for N(0, I).
        let prior_grad = match ws.prior.as_deref_mut() {
            Some(pw) => {
                let m = pw.mixture.as_ref().expect("built by the forward pass");
                m.neg_grad_z(pool, &ws.z[..l], &pw.resp, &mut pw.scratch, &mut pw.neg_grad);
                &pw.neg_grad[..l]
            }
            None => &ws.z[..l],
        };
        let db_head = &mut grads[self.layout.head.b.clone()];
        importance::importance_backward(
            &ws.enc,
            &ws.eps,
            prior_grad,
            &ws.dz,
            &ws.weights,
            &mut ws.denc,
            db_head,
            ws.batch,
        );
        self.backward_encoder(pool, params, grads, ws, None);
        if let Some(mut pw) = ws.prior.take() {
            self.prior_backward(pool, params, grads, &mut pw, &ws.z[..l], &ws.weights[..cols]);
            ws.prior = Some(pw);
        }
    }
}
