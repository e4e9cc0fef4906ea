//! β-TCVAE's extra term (Chen et al. 2018): the ELBO plus (β − 1) times the total correlation
//! of the batch's draws ([`crate::core::tc`]), so that the KL is split into index-code mutual
//! information, total correlation and dimension-wise KL with the TC weighted by β, the others
//! by 1, as disentanglement_lib's `BetaTCVAE` computes it (the KL in closed form).

use super::network::{Network, Workspace};
use crate::core::{Pool, kernels, tc};

impl Network {
    /// After [`Network::forward`] (the standard prior): Σ_b TC_b of the batch's draws, with
    /// `dataset` examples in the estimator's constant, and `weight` times its gradient kept
    /// for [`Network::backward_tc`].
    pub fn total_correlation(&self, ws: &mut Workspace, dataset: usize, weight: f32) -> f64 {
        let (l, b) = (self.config.latent_dim, ws.batch);
        ws.tc_dz.resize(l * b, 0.0);
        ws.tc_denc.resize(2 * l * b, 0.0);
        tc::total_correlation(&ws.enc[..2 * l * b], &ws.z[..l * b], b, dataset, weight, &mut ws.tc_dz, &mut ws.tc_denc)
    }

    /// Gradients of Σ_b −log p(x_b|z_b) + KL_b + weight·TC_b, after [`Network::forward`] and
    /// [`Network::total_correlation`]: the TC's gradient joins ∂loss/∂z before the
    /// reparameterisation's backward, and ∂loss/∂(μ, log σ²) after it.
    pub fn backward_tc(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace) {
        assert!(ws.trains(), "backward needs a workspace with gradients (Workspace::new, not ::inference)");
        let (l, b) = (self.config.latent_dim, ws.batch);
        self.backward_decoder(pool, params, grads, ws);
        ws.dz[..l * b].iter_mut().zip(&ws.tc_dz).for_each(|(d, t)| *d += t);
        let db_head = &mut grads[self.layout.head.b.clone()];
        kernels::reparameterize_backward(&ws.enc, &ws.eps, &ws.dz, 1.0, &mut ws.denc, db_head, b);
        for (r, row) in ws.tc_denc.chunks_exact(b).enumerate() {
            ws.denc[r * b..(r + 1) * b].iter_mut().zip(row).for_each(|(d, t)| *d += t);
            db_head[r] += row.iter().sum::<f32>();
        }
        self.backward_encoder(pool, params, grads, ws, None);
    }
}
