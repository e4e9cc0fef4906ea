//! The discretized Gaussian: a Normal(μ, σ²)'s mass on each 8-bit value's bin (the
//! discretization of Salimans et al. 2017, PixelCNN++, §2.1, with one Gaussian in place of
//! their logistic mixture). Values v ∈ {0, …, 255} sit at x = v/255; bin v is
//! [x − h, x + h] with h = 1/510, except that bin 0 reaches down to −∞ and bin 255 up to +∞,
//! so the 256 probabilities sum to 1:
//!
//! ```text
//! P(v | μ, σ) = Φ(b) − Φ(a),   a = (x − h − μ)/σ,  b = (x + h − μ)/σ
//! ∂(−log P)/∂μ = (φ(b) − φ(a)) / (σ P),   ∂(−log P)/∂(log σ²) = ½ (b φ(b) − a φ(a)) / P
//! ```
//!
//! Φ(b) − Φ(a) is computed from upper tails Q(t) = ½ erfc(t/√2) on the side where they are
//! small (f64 throughout), so it keeps its relative precision far into the tails; below
//! [`TINY`] (where even that runs out) the density at the bin's centre times its width
//! stands in, as PixelCNN++'s code does below 1e-5.

use super::*;

/// Half a bin: the grid spacing is 1/255.
pub const HALF_BIN: f64 = 1.0 / 510.0;

/// Below this mass the midpoint density × bin width stands in for Φ(b) − Φ(a).
pub const TINY: f64 = 1e-12;

/// ½ ln 2π in f64.
const HALF_LN_2PI_64: f64 = 0.918_938_533_204_672_8;

/// Q(t) = P(N(0, 1) > t).
fn upper(t: f64) -> f64 {
    0.5 * libm::erfc(t * std::f64::consts::FRAC_1_SQRT_2)
}

/// Φ(b) − Φ(a) for a < b (either may be infinite), from the small tails.
pub fn mass(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        upper(a) - upper(b)
    } else if b <= 0.0 {
        upper(-b) - upper(-a)
    } else {
        1.0 - upper(b) - upper(-a)
    }
}

/// The standard normal density, 0 at ±∞.
fn phi(t: f64) -> f64 {
    if t.is_finite() { (-0.5 * t * t - HALF_LN_2PI_64).exp() } else { 0.0 }
}

/// t·φ(t), 0 at ±∞.
fn t_phi(t: f64) -> f64 {
    if t.is_finite() { t * phi(t) } else { 0.0 }
}

/// The bin edges of the value at x ≈ v/255, standardised by μ and σ. The edges are computed
/// from v itself, (v ∓ ½)/255 in f64, so neighbouring bins share an edge exactly (an f32 x
/// is off by up to 3e-8, which at σ = 2e-4 would leave 1e-4 of the mass between them).
fn edges(x: f64, mu: f64, sigma: f64) -> (f64, f64) {
    let v = (x * 255.0).round().clamp(0.0, 255.0);
    let a = if v > 0.0 { ((v - 0.5) / 255.0 - mu) / sigma } else { f64::NEG_INFINITY };
    let b = if v < 255.0 { ((v + 0.5) / 255.0 - mu) / sigma } else { f64::INFINITY };
    (a, b)
}

/// One pixel: (−log P(v), ∂/∂μ, ∂/∂ log σ²) for mean μ, the value at x = v/255 and log-variance
/// `logvar`.
pub fn pixel(mu: f32, x: f32, logvar: f32) -> (f32, f32, f32) {
    let (mu, x, lv) = (mu as f64, x as f64, logvar as f64);
    let sigma = (0.5 * lv).exp();
    let (a, b) = edges(x, mu, sigma);
    let p = mass(a, b);
    if p > TINY {
        let nll = -p.ln();
        let dmu = (phi(b) - phi(a)) / (sigma * p);
        let dlv = 0.5 * (t_phi(b) - t_phi(a)) / p;
        (nll as f32, dmu as f32, dlv as f32)
    } else {
        // Far in a tail: the density at the value times the bin's width 2h.
        let m = ((x * 255.0).round() / 255.0 - mu) / sigma;
        let nll = 0.5 * m * m + 0.5 * lv + HALF_LN_2PI_64 - (2.0 * HALF_BIN).ln();
        (nll as f32, (-m / sigma) as f32, (0.5 - 0.5 * m * m) as f32)
    }
}

/// Rows of [`discretized_gaussian_nll`], in [`gaussian_rows`]' form.
#[allow(clippy::too_many_arguments)]
fn nll_rows(
    out: &mut [f32],
    bias: &[f32],
    logvar: &[f32],
    x: &[f32],
    db: &mut [f32],
    dlogvar: &mut [f32],
    col: &mut [f32],
    cols: usize,
) {
    let rows = out.chunks_exact_mut(cols).zip(x.chunks_exact(cols));
    for (r, (orow, xrow)) in rows.enumerate() {
        let (b, lv) = (bias[r], logvar[r]);
        (db[r], dlogvar[r]) = fused_row(orow, xrow, col, |o, x| pixel(o + b, x, lv));
    }
}

/// Rows of [`discretized_gaussian_log_likelihood`].
fn ll_rows(out: &[f32], bias: &[f32], logvar: &[f32], x: &[f32], col: &mut [f32], cols: usize) {
    for (r, (orow, xrow)) in out.chunks_exact(cols).zip(x.chunks_exact(cols)).enumerate() {
        for ((&o, &xv), acc) in orow.iter().zip(xrow).zip(col.iter_mut()) {
            *acc -= pixel(o + bias[r], xv, logvar[r]).0;
        }
    }
}

/// The discretized Gaussian likelihood forward and backward, as [`gaussian_nll`]: means
/// μ = `out` + `bias`, log-variances `logvar` per row, targets `x` on the grid v/255; each
/// column's −log P(x|z) into `col_loss[..cols]`, ∂/∂μ into `out`, row sums into `db` and
/// `dlogvar`. Shapes as there.
#[allow(clippy::too_many_arguments)]
pub fn discretized_gaussian_nll(
    pool: &Pool,
    out: &mut [f32],
    bias: &[f32],
    logvar: &[f32],
    x: &[f32],
    db: &mut [f32],
    dlogvar: &mut [f32],
    col_loss: &mut [f32],
    cols: usize,
) {
    with_logvar_nll(pool, (out, bias, logvar, x), (db, dlogvar), col_loss, cols, &nll_rows);
}

/// Forward only: each column's log P(x|z) into `col_ll[..cols]`. Shapes as
/// [`discretized_gaussian_nll`].
pub fn discretized_gaussian_log_likelihood(
    pool: &Pool,
    out: &[f32],
    bias: &[f32],
    logvar: &[f32],
    x: &[f32],
    col_ll: &mut [f32],
    cols: usize,
) {
    with_logvar_ll(pool, (out, bias, logvar, x), col_ll, cols, &ll_rows);
}

/// The log-variance gradient of the sampled objectives, each column weighted:
/// `dlogvar[r] = Σ_c w_c ∂(−log P(x_rc|z_c))/∂log σ²_r`, from the output product `out`
/// \[P, cols\] as it was before [`discretized_gaussian_nll`] overwrote it, `bias` and
/// `logvar` \[P\], the targets `x` \[P, cols\] and the weights \[cols\]. (The Gaussian's
/// version recovers the same from ∂/∂μ; here it is not a function of ∂/∂μ alone, so each
/// pixel's is evaluated again.)
pub fn discretized_gaussian_weighted_logvar_grad(
    pool: &Pool,
    out: &[f32],
    bias: &[f32],
    logvar: &[f32],
    x: &[f32],
    weights: &[f32],
    dlogvar: &mut [f32],
) {
    let (rows, cols) = (bias.len(), weights.len());
    assert!(out.len() >= rows * cols && x.len() >= rows * cols && dlogvar.len() >= rows, "buffers too small");
    let dp = SyncMut::new(&mut dlogvar[..rows]);
    pool.for_ranges(rows, 1, 1, &|_, r| {
        // SAFETY: row ranges of different parts are disjoint.
        let d = unsafe { dp.slice(r.clone()) };
        for (slot, row) in d.iter_mut().zip(r) {
            let (o, xr) = (&out[row * cols..(row + 1) * cols], &x[row * cols..(row + 1) * cols]);
            let (b, lv) = (bias[row], logvar[row]);
            *slot = o
                .iter()
                .zip(xr)
                .zip(weights)
                .map(|((&o, &x), &w)| w as f64 * pixel(o + b, x, lv).2 as f64)
                .sum::<f64>() as f32;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 256 probabilities of one pixel sum to 1 within 1e-5 for means inside and outside
    /// [0, 1] and widths from a tenth of a bin to the whole range.
    #[test]
    fn the_256_probabilities_sum_to_one() {
        for mu in [-0.3f32, 0.0, 0.2, 0.5, 0.77, 1.0, 1.4] {
            for sigma in [2e-4f32, 1e-3, 0.01, 0.1, 1.0, 5.0] {
                let lv = 2.0 * sigma.ln();
                let total: f64 = (0..256).map(|v| (-(pixel(mu, v as f32 / 255.0, lv).0 as f64)).exp()).sum();
                assert!((total - 1.0).abs() < 1e-5, "μ {mu}, σ {sigma}: {total}");
            }
        }
    }

    /// Loss and gradients against central differences of the f64 definition, across the
    /// edge bins, the middle and the tails.
    #[test]
    fn gradients_match_the_definition() {
        let nll = |mu: f64, x: f64, lv: f64| {
            let (a, b) = edges(x, mu, (0.5 * lv).exp());
            -mass(a, b).ln()
        };
        for (mu, v, sigma) in
            [(0.5f64, 128u32, 0.05f64), (0.1, 0, 0.02), (0.9, 255, 0.03), (0.3, 77, 0.004), (0.6, 10, 0.3)]
        {
            let (x, lv) = (v as f64 / 255.0, 2.0 * sigma.ln());
            let (loss, dmu, dlv) = pixel(mu as f32, x as f32, lv as f32);
            let want = nll(mu, x, lv);
            assert!((loss as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "{mu} {v} {sigma}: {loss} vs {want}");
            let h = 1e-6;
            let fd_mu = (nll(mu + h, x, lv) - nll(mu - h, x, lv)) / (2.0 * h);
            let fd_lv = (nll(mu, x, lv + h) - nll(mu, x, lv - h)) / (2.0 * h);
            assert!((dmu as f64 - fd_mu).abs() < 1e-3 * (1.0 + fd_mu.abs()), "{mu} {v} {sigma}: {dmu} vs {fd_mu}");
            assert!((dlv as f64 - fd_lv).abs() < 1e-3 * (1.0 + fd_lv.abs()), "{mu} {v} {sigma}: {dlv} vs {fd_lv}");
        }
        // Far in the tail the midpoint stand-in keeps the gradient pointing back to the value.
        let (loss, dmu, _) = pixel(0.0, 1.0, 2.0 * 0.01f32.ln());
        assert!(loss.is_finite() && loss > 100.0 && dmu < 0.0, "{loss} {dmu}");
    }

    /// The kernels agree with the pixel function, row by row, on two threads.
    #[test]
    fn kernels_sum_the_pixels() {
        let (rows, cols) = (5, 7);
        let pool = Pool::new(2);
        let out: Vec<f32> = (0..rows * cols).map(|i| (i as f32 * 0.37).sin() * 0.5 + 0.5).collect();
        let x: Vec<f32> = (0..rows * cols).map(|i| ((i * 53) % 256) as f32 / 255.0).collect();
        let (bias, logvar) = (vec![0.01f32; rows], (0..rows).map(|r| -6.0 + r as f32).collect::<Vec<_>>());
        let mut ll = vec![0.0f32; 2 * cols];
        discretized_gaussian_log_likelihood(&pool, &out, &bias, &logvar, &x, &mut ll, cols);
        let (mut o, mut db, mut dlv, mut loss) = (out.clone(), vec![0.0; rows], vec![0.0; rows], vec![0.0; 2 * cols]);
        discretized_gaussian_nll(&pool, &mut o, &bias, &logvar, &x, &mut db, &mut dlv, &mut loss, cols);
        for c in 0..cols {
            let want: f32 = (0..rows).map(|r| pixel(out[r * cols + c] + 0.01, x[r * cols + c], logvar[r]).0).sum();
            assert!(
                (loss[c] - want).abs() < 1e-4 * want.abs().max(1.0)
                    && (ll[c] + want).abs() < 1e-4 * want.abs().max(1.0)
            );
        }
        for r in 0..rows {
            let g: f32 = (0..cols).map(|c| pixel(out[r * cols + c] + 0.01, x[r * cols + c], logvar[r]).1).sum();
            assert!((db[r] - g).abs() < 1e-4 * g.abs().max(1.0), "{} vs {g}", db[r]);
        }
    }
}
