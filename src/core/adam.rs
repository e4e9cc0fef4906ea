//! Adam (Kingma & Ba 2015, Algorithm 1) as one fused pass over the flat parameter buffer,
//! with PyTorch's exact update order (`torch.optim.Adam`, no weight decay, no amsgrad):
//!
//! ```text
//! m ← m + (1 − β₁)(g − m)          v ← β₂·v + (1 − β₂)·g²
//! p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
//! ```
//!
//! The buffer is split in halves (one per thread): the pass is memory-bound (~10 MB of
//! state for the default VAE), so both cores' bandwidth is used.

use super::pool::{Pool, SyncMut};
use super::simd::simd_fn;
use serde::{Deserialize, Serialize};

/// Adam's hyper-parameters; defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// First and second moment estimates plus the step count `t`.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u64,
}

impl AdamState {
    pub fn new(len: usize) -> AdamState {
        AdamState { m: vec![0.0; len], v: vec![0.0; len], step: 0 }
    }
}

simd_fn! {
    fn adam_block(
        p: &mut [f32],
        g: &[f32],
        m: &mut [f32],
        v: &mut [f32],
        c: AdamConfig,
        step_size: f32,
        bc2_sqrt: f32,
    ) {
        let n = p.len().min(g.len()).min(m.len()).min(v.len());
        let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let gi = g[i];
            let mi = m[i] + (1.0 - c.beta1) * (gi - m[i]);
            let vi = c.beta2 * v[i] + (1.0 - c.beta2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= step_size * mi / (vi.sqrt() / bc2_sqrt + c.eps);
        }
    }
}

/// One Adam step on all parameters. Shapes: `params`, `grads`, `state.m`, `state.v` all \[n\].
pub fn adam_step(pool: &Pool, config: &AdamConfig, params: &mut [f32], grads: &[f32], state: &mut AdamState) {
    let n = params.len();
    adam_step_parts(pool, &[(0..n, *config)], params, grads, state);
}

/// One Adam step with its own settings for each part of the buffer (FactorVAE's model and
/// discriminator): one step count, `parts` disjoint ranges covering what is to move.
pub fn adam_step_parts(
    pool: &Pool,
    parts: &[(std::ops::Range<usize>, AdamConfig)],
    params: &mut [f32],
    grads: &[f32],
    state: &mut AdamState,
) {
    let n = params.len();
    assert!(grads.len() == n && state.m.len() == n && state.v.len() == n, "Adam buffers differ in length");
    state.step += 1;
    let t = state.step as i32;
    for (range, config) in parts {
        let bc1 = 1.0 - (config.beta1 as f64).powi(t);
        let bc2 = 1.0 - (config.beta2 as f64).powi(t);
        let step_size = (config.lr as f64 / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let (p, g) = (&mut params[range.clone()], &grads[range.clone()]);
        let (m, v) = (&mut state.m[range.clone()], &mut state.v[range.clone()]);
        let (pp, mp, vp) = (SyncMut::new(p), SyncMut::new(m), SyncMut::new(v));
        let c = *config;
        pool.for_ranges(range.len(), 16, 4096, &|_, r| {
            // SAFETY: ranges of different parts are disjoint.
            let (p, m, v) = unsafe { (pp.slice(r.clone()), mp.slice(r.clone()), vp.slice(r.clone())) };
            adam_block(p, &g[r], m, v, c, step_size, bc2_sqrt);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_moves_each_parameter_by_lr_against_the_gradient_sign() {
        // At t = 1: m = (1-β₁)g, v = (1-β₂)g², so m/(1-β₁) / (√v/√(1-β₂)) = sign(g)
        // and p moves by lr·g/(|g| + ε) ≈ lr·sign(g).
        let pool = Pool::new(2);
        let c = AdamConfig::default();
        let mut p = vec![1.0f32; 10_000];
        let g: Vec<f32> = (0..10_000).map(|i| if i % 2 == 0 { 3.0 } else { -0.5 }).collect();
        let mut s = AdamState::new(p.len());
        adam_step(&pool, &c, &mut p, &g, &mut s);
        for (i, &pi) in p.iter().enumerate() {
            let want = if i % 2 == 0 { 1.0 - 1e-3 } else { 1.0 + 1e-3 };
            assert!((pi - want).abs() < 1e-6, "p[{i}] = {pi}");
        }
        assert_eq!(s.step, 1);
    }

    #[test]
    fn matches_a_scalar_f64_reference_over_several_steps() {
        let pool = Pool::new(2);
        let c = AdamConfig { lr: 0.01, ..AdamConfig::default() };
        let n = 5000;
        let mut p: Vec<f32> = (0..n).map(|i| (i as f32 * 0.01).sin()).collect();
        let mut s = AdamState::new(n);
        let (mut pr, mut mr, mut vr): (Vec<f64>, Vec<f64>, Vec<f64>) =
            (p.iter().map(|&x| x as f64).collect(), vec![0.0; n], vec![0.0; n]);
        for t in 1..=5 {
            let g: Vec<f32> = (0..n).map(|i| ((i * t) as f32 * 0.37).cos()).collect();
            adam_step(&pool, &c, &mut p, &g, &mut s);
            let (b1, b2) = (c.beta1 as f64, c.beta2 as f64);
            for i in 0..n {
                let gi = g[i] as f64;
                mr[i] = b1 * mr[i] + (1.0 - b1) * gi;
                vr[i] = b2 * vr[i] + (1.0 - b2) * gi * gi;
                let mhat = mr[i] / (1.0 - b1.powi(t as i32));
                let vhat = vr[i] / (1.0 - b2.powi(t as i32));
                pr[i] -= c.lr as f64 * mhat / (vhat.sqrt() + c.eps as f64);
            }
        }
        for i in 0..n {
            assert!((p[i] as f64 - pr[i]).abs() < 1e-5, "p[{i}] {} vs {}", p[i], pr[i]);
        }
    }

    #[test]
    fn moments_that_decay_reach_zero_without_passing_through_subnormals() {
        // One gradient of 1e-20, then zeros: m decays by β₁ = 0.9 a step and v (1e-43 after
        // the first step: already below f32's normal range) by β₂. With subnormals flushed
        // (the pool's jobs do it) no moment ever holds a subnormal, on 1 or 2 threads. v is
        // flushed to 0 at once. m, updated in PyTorch's order m + (1 − β₁)(g − m), stops
        // decaying where its step (1 − β₁)·m would be subnormal, i.e. below 2^-126 / 0.1 ≈
        // 1.2e-37, reached after ln(1e-21 / 1.2e-37) / ln(1/0.9) ≈ 353 steps: a tiny normal
        // number, harmless.
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let n = 8192;
            let mut p = vec![0.5f32; n];
            let mut s = AdamState::new(n);
            let mut g = vec![1e-20f32; n];
            adam_step(&pool, &AdamConfig::default(), &mut p, &g, &mut s);
            g.fill(0.0);
            for _ in 0..400 {
                adam_step(&pool, &AdamConfig::default(), &mut p, &g, &mut s);
                let sub = s.m.iter().chain(&s.v).chain(&p).find(|x| x.is_subnormal());
                assert!(sub.is_none(), "{threads} threads, step {}: a subnormal {sub:?}", s.step);
            }
            assert!(s.v.iter().all(|&x| x == 0.0), "{threads} threads");
            assert!(s.m.iter().all(|&x| x > 0.0 && x < 1.2e-37), "{threads} threads: m {}", s.m[0]);
        }
    }
}
