//! Hidden-layer activations fused with the bias add, each beside its backward.
//!
//! Shapes: `h`, `dh` \[rows, batch\] (*features × batch*), `bias`, `db` \[rows\]. Backward
//! passes use the activation's *output* h: ReLU′ = \[h > 0\], tanh′ = 1 − h².

use super::kernels::{map_row_sum, min_parallel_rows};
use super::pool::{Pool, SyncMut};
use super::simd::{self, simd_fn};
use serde::{Deserialize, Serialize};

/// The hidden layers' non-linearity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// max(0, x), the tutorial's.
    #[default]
    Relu,
    /// tanh(x), as in Burda et al. (2015) and Kingma & Welling (2014).
    Tanh,
}

/// tanh for f32, Cephes `tanhf`: an odd polynomial for |x| < 0.625, else
/// 1 − 2/(e^{2|x|} + 1) with the sign of x. Both branches are computed and one selected, so
/// the loop vectorises.
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients, kept as published
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let poly = ((((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z
        - 3.333_328_2e-1)
        * z
        * x
        + x;
    let e = simd::exp(2.0 * a.min(44.0));
    let big = 1.0 - 2.0 / (e + 1.0);
    if a < 0.625 { poly } else { big.copysign(x) }
}

simd_fn! {
    fn bias_relu_rows(h: &mut [f32], bias: &[f32], batch: usize) {
        for (row, &b) in h.chunks_exact_mut(batch).zip(bias) {
            for v in row {
                *v = (*v + b).max(0.0);
            }
        }
    }
}

simd_fn! {
    fn bias_tanh_rows(h: &mut [f32], bias: &[f32], batch: usize) {
        for (row, &b) in h.chunks_exact_mut(batch).zip(bias) {
            for v in row {
                *v = tanh(*v + b);
            }
        }
    }
}

/// Forward of `act(W·x + b)` after the product: `h[r, b] = act(h[r, b] + bias[r])` in place.
pub fn bias_activation(pool: &Pool, act: Activation, h: &mut [f32], bias: &[f32], batch: usize) {
    let rows = bias.len();
    let hp = SyncMut::new(&mut h[..rows * batch]);
    pool.for_ranges(rows, 1, min_parallel_rows(batch), &|_, r| {
        // SAFETY: row ranges of different parts are disjoint.
        let block = unsafe { hp.slice(r.start * batch..r.end * batch) };
        match act {
            Activation::Relu => bias_relu_rows(block, &bias[r], batch),
            Activation::Tanh => bias_tanh_rows(block, &bias[r], batch),
        }
    });
}

simd_fn! {
    fn bias_relu_skip_rows(h: &mut [f32], bias: &[f32], skip: &[f32], batch: usize) {
        for ((row, srow), &b) in h.chunks_exact_mut(batch).zip(skip.chunks_exact(batch)).zip(bias) {
            for (v, &s) in row.iter_mut().zip(srow) {
                *v = (*v + b + s).max(0.0);
            }
        }
    }
}

simd_fn! {
    fn bias_tanh_skip_rows(h: &mut [f32], bias: &[f32], skip: &[f32], batch: usize) {
        for ((row, srow), &b) in h.chunks_exact_mut(batch).zip(skip.chunks_exact(batch)).zip(bias) {
            for (v, &s) in row.iter_mut().zip(srow) {
                *v = tanh(*v + b + s);
            }
        }
    }
}

/// Forward of a residual block's `act(W·x + b + s)` after the product (He et al. 2016,
/// eq. 1): `h[r, b] = act(h[r, b] + bias[r] + skip[r, b])` in place, `skip` \[rows, batch\]
/// the block's input. The backward is [`activation_backward`]'s: ∂/∂(h + b + s) is the
/// gradient of the product, of the bias (row sums) and of the skip alike.
pub fn bias_residual_activation(pool: &Pool, act: Activation, h: &mut [f32], bias: &[f32], skip: &[f32], batch: usize) {
    let rows = bias.len();
    assert!(h.len() >= rows * batch && skip.len() >= rows * batch, "bias_residual_activation: buffers too small");
    let hp = SyncMut::new(&mut h[..rows * batch]);
    pool.for_ranges(rows, 1, min_parallel_rows(batch), &|_, r| {
        // SAFETY: row ranges of different parts are disjoint.
        let block = unsafe { hp.slice(r.start * batch..r.end * batch) };
        let s = &skip[r.start * batch..r.end * batch];
        match act {
            Activation::Relu => bias_relu_skip_rows(block, &bias[r], s, batch),
            Activation::Tanh => bias_tanh_skip_rows(block, &bias[r], s, batch),
        }
    });
}

simd_fn! {
    fn add_rows(dst: &mut [f32], src: &[f32]) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d += s;
        }
    }
}

/// `dst += src` elementwise on the pool: a residual block's two gradient paths into its input
/// meeting (the skip's and the first convolution's).
pub fn add_assign(pool: &Pool, dst: &mut [f32], src: &[f32]) {
    let n = dst.len();
    assert!(src.len() >= n, "add_assign: src shorter than dst");
    let dp = SyncMut::new(dst);
    pool.for_ranges(n, 16, 1 << 14, &|_, r| {
        // SAFETY: ranges of different parts are disjoint.
        add_rows(unsafe { dp.slice(r.clone()) }, &src[r]);
    });
}

/// ReLU shorthand of [`bias_activation`].
pub fn bias_relu(pool: &Pool, h: &mut [f32], bias: &[f32], batch: usize) {
    bias_activation(pool, Activation::Relu, h, bias, batch);
}

/// `dh ← dh ⊙ act′(h)` along each row, with the row sums (the bias gradient) in `db`.
#[inline(always)]
fn backward_rows(dh: &mut [f32], h: &[f32], db: &mut [f32], batch: usize, grad: impl Fn(f32, f32) -> f32) {
    for ((drow, hrow), db) in dh.chunks_exact_mut(batch).zip(h.chunks_exact(batch)).zip(db) {
        *db = map_row_sum(drow, hrow, &grad);
    }
}

simd_fn! {
    fn relu_backward_rows(dh: &mut [f32], h: &[f32], db: &mut [f32], batch: usize) {
        backward_rows(dh, h, db, batch, |d, hv| if hv > 0.0 { d } else { 0.0 });
    }
}

simd_fn! {
    fn tanh_backward_rows(dh: &mut [f32], h: &[f32], db: &mut [f32], batch: usize) {
        backward_rows(dh, h, db, batch, |d, hv| d * (1.0 - hv * hv));
    }
}

/// Backward of `act(W·x + b)` up to the product: `dh ← dh ⊙ act′` (from the output h) and
/// the bias gradient `db[r] = Σ_b dh[r, b]`.
pub fn activation_backward(pool: &Pool, act: Activation, dh: &mut [f32], h: &[f32], db: &mut [f32], batch: usize) {
    let rows = db.len();
    let dhp = SyncMut::new(&mut dh[..rows * batch]);
    let dbp = SyncMut::new(db);
    pool.for_ranges(rows, 1, min_parallel_rows(batch), &|_, r| {
        // SAFETY: row ranges of different parts are disjoint.
        let (d, b) = unsafe { (dhp.slice(r.start * batch..r.end * batch), dbp.slice(r.clone())) };
        let hr = &h[r.start * batch..r.end * batch];
        match act {
            Activation::Relu => relu_backward_rows(d, hr, b, batch),
            Activation::Tanh => tanh_backward_rows(d, hr, b, batch),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_is_accurate_across_the_range() {
        let mut x = -20.0f32;
        while x < 20.0 {
            let want = (x as f64).tanh();
            let got = tanh(x) as f64;
            assert!((got - want).abs() <= 2e-7 * want.abs().max(1e-30) + 1e-30, "tanh({x}) = {got}, want {want}");
            x += 0.00731;
        }
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e-20), 1e-20);
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
    }

    /// `act(h + b + s)` against its definition in f64, on rows split across two threads
    /// (rows of 4,100 columns are past the parallel threshold) and on a short tail.
    #[test]
    fn residual_activation_matches_its_definition() {
        let pool = Pool::new(2);
        for (rows, batch) in [(5, 4100), (3, 7)] {
            let mut rng = crate::core::Rng::new(rows as u64);
            let mut normal = |n: usize| {
                let mut v = vec![0.0f32; n];
                rng.fill_normal(&mut v);
                v
            };
            let (h0, bias, skip) = (normal(rows * batch), normal(rows), normal(rows * batch));
            for act in [Activation::Relu, Activation::Tanh] {
                let mut h = h0.clone();
                bias_residual_activation(&pool, act, &mut h, &bias, &skip, batch);
                for (i, &got) in h.iter().enumerate() {
                    let pre = h0[i] as f64 + bias[i / batch] as f64 + skip[i] as f64;
                    let want = if act == Activation::Relu { pre.max(0.0) } else { pre.tanh() };
                    assert!((got as f64 - want).abs() < 1e-6 * (1.0 + want.abs()), "{act:?}[{i}]: {got} vs {want}");
                }
            }
            let mut sum = h0.clone();
            add_assign(&pool, &mut sum, &skip);
            assert!(sum.iter().zip(&h0).zip(&skip).all(|((&s, &a), &b)| s == a + b));
        }
    }

    #[test]
    fn backward_masks_and_sums_rows() {
        let pool = Pool::new(2);
        let h = [0.0, 2.0, 0.5, 0.0];
        let mut dh = [1.0, 1.0, 3.0, 4.0];
        let mut db = [0.0; 2];
        activation_backward(&pool, Activation::Relu, &mut dh, &h, &mut db, 2);
        assert_eq!((dh, db), ([0.0, 1.0, 3.0, 0.0], [1.0, 3.0]));
        let mut dh = [1.0, 1.0, 3.0, 4.0];
        activation_backward(&pool, Activation::Tanh, &mut dh, &h, &mut db, 2);
        assert_eq!((dh, db), ([1.0, -3.0, 2.25, 4.0], [-2.0, 6.25]));
    }
}
