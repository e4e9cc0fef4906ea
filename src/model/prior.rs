//! The prior p(z), one abstraction for every part of the crate: N(0, I), or a mixture of K
//! diagonal Gaussians with equal weights, p(z) = (1/K) Σ_k N(z; μ_k, diag σ²_k), whose
//! components are either the encoder's posteriors of K learned pseudo-inputs (the VampPrior,
//! Tomczak & Welling 2018, eq. 9) or K free learned means and log-variances (`--prior mog`).
//! The mixture's density and gradients are `core::vamp`'s kernels.
//!
//! - training: [`PriorWork`] builds the mixture once per batch (`prior_forward`) and sends
//!   the prior term's gradient to the components' parameters (`prior_backward`): through
//!   the encoder to the pseudo-inputs, or straight to `prior.means` and `prior.logvars`;
//! - evaluation, sampling, the run's grids and the page: [`PriorDensity`], from
//!   [`Network::prior_density`].

use super::config::{ModelConfig, Prior};
use super::network::{Network, Workspace};
use crate::core::{Pool, Rng, kernels, vamp};

/// The prior's density for one set of parameters: what evaluation, sampling and the page use.
#[derive(Clone, Debug)]
pub enum PriorDensity {
    /// N(0, I) on `latent` dimensions.
    Standard { latent: usize },
    /// A VampPrior's or a Gaussian mixture prior's components.
    Mixture(vamp::Mixture),
}

impl PriorDensity {
    /// log p(z) of each column of `z` \[L, C\] into `log_p` \[C\], without the (2π)^{−L/2}
    /// factor (`core::importance`'s convention: it cancels against the posterior's).
    pub fn log_density(&self, pool: &Pool, z: &[f32], log_p: &mut [f32]) {
        let cols = log_p.len();
        match self {
            PriorDensity::Standard { latent } => {
                log_p.fill(0.0);
                for row in z[..latent * cols].chunks_exact(cols) {
                    for (lp, &v) in log_p.iter_mut().zip(row) {
                        *lp -= 0.5 * v * v;
                    }
                }
            }
            PriorDensity::Mixture(m) => {
                let (mut z2, mut resp) = (vec![0.0; m.latent * cols], vec![0.0; m.components * cols]);
                m.log_density(pool, z, &mut z2, &mut resp, log_p);
            }
        }
    }

    /// `n` codes `[n, L]` drawn from the prior at temperature T (its spread scaled by T).
    pub fn sample(&self, n: usize, temperature: f32, rng: &mut Rng) -> Vec<f32> {
        match self {
            PriorDensity::Standard { latent } => super::prior_codes(n, *latent, temperature, rng),
            PriorDensity::Mixture(m) => m.sample(n, temperature, rng),
        }
    }

    /// Fixed noise `eps` \[n, L\] as codes of the prior without drawing anything: itself for
    /// N(0, I), spread evenly over a mixture's components ([`vamp::Mixture::place`]), so a
    /// training run's grid cell follows one component from epoch to epoch.
    pub fn place(&self, eps: &[f32]) -> Vec<f32> {
        match self {
            PriorDensity::Standard { .. } => eps.to_vec(),
            PriorDensity::Mixture(m) => m.place(eps),
        }
    }
}

/// What a mixture prior needs per batch: the components' parameters, the mixture built from
/// them, its per-column tables, and for a VampPrior the encoder on the K pseudo-inputs (a
/// workspace of K columns).
pub(super) struct PriorWork {
    /// The encoder's pass over the pseudo-inputs (VampPrior only).
    pub(super) ws: Option<Workspace>,
    /// The components μ_k, log σ²_k as \[2L, K\] (μ rows, then log σ² rows), and the prior
    /// term's gradient with respect to them.
    pub(super) enc: Vec<f32>,
    pub(super) denc: Vec<f32>,
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
    /// The buffers for `cols` columns of codes; without `gradients`, for the forward pass only
    /// (a VampPrior's encoder workspace then has no backward buffers either).
    pub(super) fn new(config: &ModelConfig, cols: usize, threads: usize, gradients: bool) -> Option<Box<PriorWork>> {
        let k = config.prior.components();
        if k == 0 {
            return None;
        }
        let (l, p) = (config.latent_dim, config.pixels());
        let vamp = matches!(config.prior, Prior::Vamp { .. });
        let plain = ModelConfig { prior: Prior::Standard, ..config.clone() };
        let encoder = |cols| {
            if gradients {
                Workspace::with_samples(&plain, cols, 1, threads)
            } else {
                Workspace::inference(&plain, cols, 1, threads)
            }
        };
        let trains = vamp && gradients;
        Some(Box::new(PriorWork {
            ws: vamp.then(|| encoder(k)),
            enc: vec![0.0; 2 * l * k],
            denc: vec![0.0; 2 * l * k],
            mixture: None,
            resp: vec![0.0; k * cols],
            z2: vec![0.0; l * cols],
            log_p: vec![0.0; cols],
            neg_grad: vec![0.0; l * cols],
            scratch: vec![0.0; l * cols],
            zs: vec![0.0; l * k],
            z2s: vec![0.0; l * k],
            grads: if trains { vec![0.0; config.layout().len] } else { Vec::new() },
            dx: if trains { vec![0.0; p * k] } else { Vec::new() },
        }))
    }
}

impl Network {
    /// The mixture's components from the current parameters, into `pw.enc` \[2L, K\], and the
    /// mixture built from them: a VampPrior's u = clip(P, 0, 1) through the encoder, or a
    /// Gaussian mixture's `prior.means` and `prior.logvars` transposed.
    pub(super) fn prior_forward(&self, pool: &Pool, params: &[f32], pw: &mut PriorWork) {
        let (k, l, p) = (self.config.prior.components(), self.config.latent_dim, self.config.pixels());
        if let Some(ws) = pw.ws.as_mut() {
            let range = self.layout.pseudo_inputs.clone().expect("a VampPrior has pseudo-inputs");
            let u = &params[range];
            for i in 0..p {
                for c in 0..k {
                    ws.x[i * k + c] = u[c * p + i].clamp(0.0, 1.0);
                }
            }
            self.encode(pool, params, ws);
            pw.enc.copy_from_slice(&ws.enc[..2 * l * k]);
        } else {
            let means = &params[self.layout.prior_means.clone().expect("a mixture prior has means")];
            let logvars = &params[self.layout.prior_logvars.clone().expect("a mixture prior has log-variances")];
            for c in 0..k {
                for j in 0..l {
                    pw.enc[j * k + c] = means[c * l + j];
                    pw.enc[(l + j) * k + c] = logvars[c * l + j];
                }
            }
        }
        pw.mixture = Some(vamp::Mixture::new(&pw.enc, l, k));
    }

    /// The prior's gradients after [`Network::backward_iwae`]'s data pass: the prior term
    /// −Σ_c w̃_c log p(z_c) back to the components, and from there through the encoder to a
    /// VampPrior's pseudo-inputs (zero where the clip is flat; the encoder's share added to
    /// `grads`), or into a Gaussian mixture's `prior.means` and `prior.logvars`.
    pub(super) fn prior_backward(
        &self,
        pool: &Pool,
        params: &[f32],
        grads: &mut [f32],
        pw: &mut PriorWork,
        z: &[f32],
        weights: &[f32],
    ) {
        let (k, l, p, lay) =
            (self.config.prior.components(), self.config.latent_dim, self.config.pixels(), &self.layout);
        let m = pw.mixture.as_ref().expect("built by the forward pass");
        m.encoding_grad(pool, z, &pw.z2, &mut pw.resp, weights, &mut pw.zs, &mut pw.z2s, &mut pw.denc);
        let Some(ws) = pw.ws.as_mut() else {
            let means = lay.prior_means.clone().expect("a mixture prior has means");
            let logvars = lay.prior_logvars.clone().expect("a mixture prior has log-variances");
            for c in 0..k {
                for j in 0..l {
                    grads[means.start + c * l + j] = pw.denc[j * k + c];
                    grads[logvars.start + c * l + j] = pw.denc[(l + j) * k + c];
                }
            }
            return;
        };
        ws.denc.copy_from_slice(&pw.denc);
        kernels::row_sums(&ws.denc, k, &mut pw.grads[lay.head.b.clone()]);
        self.backward_encoder(pool, params, &mut pw.grads, ws, Some((&mut pw.dx[..], p)));
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

    /// The prior's density for `params`, for sampling, evaluation and the page.
    pub fn prior_density(&self, pool: &Pool, params: &[f32]) -> PriorDensity {
        match PriorWork::new(&self.config, 1, pool.threads(), false) {
            Some(mut pw) => {
                self.prior_forward(pool, params, &mut pw);
                PriorDensity::Mixture(pw.mixture.expect("just built"))
            }
            None => PriorDensity::Standard { latent: self.config.latent_dim },
        }
    }
}
