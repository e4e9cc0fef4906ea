//! The VampPrior's part of the passes (Tomczak & Welling 2018): the pseudo-inputs through
//! the encoder, the mixture they define (kernels in `core::vamp`), and the prior term's
//! gradients back to the encoder and the pseudo-inputs.

use super::config::ModelConfig;
use super::network::{Network, Workspace};
use crate::core::{Pool, kernels, vamp};

/// What a VampPrior needs per batch: the encoder on the K pseudo-inputs (a workspace of K
/// columns), the mixture built from their encodings, and its per-column tables.
pub(super) struct PriorWork {
    pub(super) ws: Workspace,
    pub(super) mixture: Option<vamp::Mixture>,
    /// Responsibilities r \[K, cols\]; z² \[L, cols\]; log p_λ(z) \[cols\]; −∂log p_λ/∂z and
    /// scratch \[L, cols\]; \[L, K\] scratch twice; every parameter's gradient of the prior
    /// pass; the pseudo-inputs' gradient \[P, K\].
    pub(super) resp: Vec<f32>,
    pub(super) z2: Vec<f32>,
    pub(super) log_p: Vec<f32>,
    pub(super) neg_grad: Vec<f32>,
    pub(super) scratch: Vec<f32>,
    pub(super) zs: Vec<f32>,
    pub(super) z2s: Vec<f32>,
    pub(super) grads: Vec<f32>,
    pub(super) dx: Vec<f32>,
}

impl PriorWork {
    pub(super) fn new(config: &ModelConfig, cols: usize, threads: usize) -> Option<Box<PriorWork>> {
        let k = config.prior.pseudo_inputs();
        if k == 0 {
            return None;
        }
        let (l, p) = (config.latent_dim, config.pixels());
        let plain = ModelConfig { prior: super::config::Prior::Standard, ..config.clone() };
        Some(Box::new(PriorWork {
            ws: Workspace::with_samples(&plain, k, 1, threads),
            mixture: None,
            resp: vec![0.0; k * cols],
            z2: vec![0.0; l * cols],
            log_p: vec![0.0; cols],
            neg_grad: vec![0.0; l * cols],
            scratch: vec![0.0; l * cols],
            zs: vec![0.0; l * k],
            z2s: vec![0.0; l * k],
            grads: vec![0.0; config.layout().len],
            dx: vec![0.0; p * k],
        }))
    }
}

impl Network {
    /// A VampPrior's components from the current pseudo-inputs: u = clip(P, 0, 1) through
    /// the encoder (`pw.ws.enc` \[2L, K\]), and the mixture built from them.
    pub(super) fn prior_forward(&self, pool: &Pool, params: &[f32], pw: &mut PriorWork) {
        let range = self.layout.pseudo_inputs.clone().expect("a VampPrior has pseudo-inputs");
        let (k, p) = (self.config.prior.pseudo_inputs(), self.config.pixels());
        let u = &params[range];
        for i in 0..p {
            for c in 0..k {
                pw.ws.x[i * k + c] = u[c * p + i].clamp(0.0, 1.0);
            }
        }
        self.encode(pool, params, &mut pw.ws);
        pw.mixture = Some(vamp::Mixture::new(&pw.ws.enc, self.config.latent_dim, k));
    }

    /// The VampPrior's gradients after [`Network::backward_iwae`]'s data pass: the prior
    /// term −Σ_c w̃_c log p_λ(z_c) back through the components' encodings and the encoder to
    /// the pseudo-inputs (zero where the clip is flat), added to `grads`.
    pub(super) fn prior_backward(
        &self,
        pool: &Pool,
        params: &[f32],
        grads: &mut [f32],
        pw: &mut PriorWork,
        z: &[f32],
        weights: &[f32],
    ) {
        let (k, p, lay) = (self.config.prior.pseudo_inputs(), self.config.pixels(), &self.layout);
        let m = pw.mixture.as_ref().expect("built by the forward pass");
        m.encoding_grad(pool, z, &pw.z2, &mut pw.resp, weights, &mut pw.zs, &mut pw.z2s, &mut pw.ws.denc);
        kernels::row_sums(&pw.ws.denc, k, &mut pw.grads[lay.head.b.clone()]);
        self.backward_encoder(pool, params, &mut pw.grads, &mut pw.ws, Some((&mut pw.dx[..], p)));
        for layer in lay.encoder.iter().chain([&lay.head]) {
            for r in [layer.w.clone(), layer.b.clone()] {
                for (g, v) in grads[r.clone()].iter_mut().zip(&pw.grads[r]) {
                    *g += v;
                }
            }
        }
        let range = lay.pseudo_inputs.clone().expect("a VampPrior has pseudo-inputs");
        let (u, du) = (&params[range.clone()], &mut grads[range]);
        for c in 0..k {
            for i in 0..p {
                let v = u[c * p + i];
                du[c * p + i] = if v > 0.0 && v < 1.0 { pw.dx[i * k + c] } else { 0.0 };
            }
        }
    }

    /// The VampPrior's mixture for `params` (`None` for the standard prior), for sampling
    /// and evaluation.
    pub fn prior_mixture(&self, pool: &Pool, params: &[f32]) -> Option<vamp::Mixture> {
        let mut pw = PriorWork::new(&self.config, 1, pool.threads())?;
        self.prior_forward(pool, params, &mut pw);
        pw.mixture
    }
}
