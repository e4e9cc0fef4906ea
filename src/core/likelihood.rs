//! The decoder's likelihoods p(x|z), each loss fused with its gradient and the output bias
//! in one pass over the decoder's output `[pixels, columns]` (*features × batch*).
//!
//! - **Bernoulli** with logits l: `−log p(x|l) = softplus(l) − x·l` (the tutorial's BCE;
//!   Kingma & Welling 2014, appendix C.1), gradient `σ(l) − x`.
//! - **Gaussian** with mean μ and a log-variance v per row: `−log p = ½ ln 2π + ½ v +
//!   (x − μ)² / (2 eᵛ)`, gradients `(μ − x)/eᵛ` and `½ − (x − μ)²/(2 eᵛ)` (appendix C.2).
//! - **Continuous Bernoulli** (Loaiza-Ganem & Cunningham 2019, eq. 7): the Bernoulli's terms
//!   plus its normalising constant, `−log p = softplus(l) − x·l − log C(l)` with
//!   `C = 2 artanh(1 − 2λ)/(1 − 2λ)`, λ = σ(l), which in the logit is `C(l) = l / tanh(l/2)`
//!   (1 − 2λ = −tanh(l/2) and artanh(−tanh(l/2)) = −l/2), so `d log C/dl = 1/l − 1/sinh l`.
//!
//! Per-column losses are summed over rows into per-part scratch rows and added in part
//! order, so results are reproducible for a given thread count.

use super::kernels::{LANES, PARALLEL_MIN_ROWS};
use super::pool::{Pool, SyncMut};
use super::simd::{self, simd_fn};

// ---------------------------------------------------------------------------------------
// Bernoulli: sigmoid + binary cross-entropy + gradient in one pass
// ---------------------------------------------------------------------------------------

/// One pixel of [`bernoulli_bce`]: turns the logit (bias `b` not yet added) into its
/// gradient σ(l) − x, adds the pixel's BCE to `loss`, and returns the gradient.
#[inline(always)]
fn bernoulli_pixel(l: &mut f32, x: f32, loss: &mut f32, b: f32) -> f32 {
    let logit = *l + b;
    let (softplus, sigmoid) = simd::softplus_sigmoid(logit);
    *loss += softplus - x * logit;
    *l = sigmoid - x;
    *l
}

simd_fn! {
    /// Rows of [`bernoulli_bce`]. The bias gradient (a sum along the row) is accumulated in
    /// `LANES` independent lanes: a single running sum would serialise the loop, and the
    /// compiler may not reorder float additions to vectorise it.
    fn bernoulli_rows(
        logits: &mut [f32],
        bias: &[f32],
        x: &[f32],
        db: &mut [f32],
        col_loss: &mut [f32],
        batch: usize,
    ) {
        let rows = logits.chunks_exact_mut(batch).zip(x.chunks_exact(batch));
        for ((lrow, xrow), (&b, db)) in rows.zip(bias.iter().zip(db)) {
            let mut lanes = [0.0f32; LANES];
            let mut lb = lrow.chunks_exact_mut(LANES);
            let mut xb = xrow.chunks_exact(LANES);
            let mut cb = col_loss[..batch].chunks_exact_mut(LANES);
            for ((l, x), c) in (&mut lb).zip(&mut xb).zip(&mut cb) {
                let (l, x, c): (&mut [f32; LANES], &[f32; LANES], &mut [f32; LANES]) =
                    (l.try_into().expect("LANES"), x.try_into().expect("LANES"), c.try_into().expect("LANES"));
                for j in 0..LANES {
                    lanes[j] += bernoulli_pixel(&mut l[j], x[j], &mut c[j], b);
                }
            }
            let mut tail = 0.0f32;
            for ((l, &x), c) in lb.into_remainder().iter_mut().zip(xb.remainder()).zip(cb.into_remainder()) {
                tail += bernoulli_pixel(l, x, c, b);
            }
            *db = lanes.iter().sum::<f32>() + tail;
        }
    }
}

/// The decoder's Bernoulli likelihood, forward and backward in one pass (Kingma & Welling
/// 2014, appendix C.1): with logits `l = W·h + b` (bias added here),
/// `BCE(σ(l), x) = softplus(l) − x·l` per pixel (the logit form, stable for any l), and
/// `∂BCE/∂l = σ(l) − x`.
///
/// Shapes: `logits` \[pixels, batch\] holds W·h on entry and the gradient ∂BCE/∂l on exit;
/// `bias`, `db` \[pixels\]; `x` \[pixels, batch\] targets in \[0, 1\]; `col_loss` \[parts, batch\]
/// scratch (parts = pool threads). Returns the per-example BCE, summed over pixels, in
/// `col_loss[..batch]`.
pub fn bernoulli_bce(
    pool: &Pool,
    logits: &mut [f32],
    bias: &[f32],
    x: &[f32],
    db: &mut [f32],
    col_loss: &mut [f32],
    batch: usize,
) {
    let rows = bias.len();
    let parts = pool.threads();
    assert!(col_loss.len() >= parts * batch, "col_loss needs [threads, batch]");
    col_loss[..parts * batch].fill(0.0);
    let lp = SyncMut::new(&mut logits[..rows * batch]);
    let dbp = SyncMut::new(db);
    let cp = SyncMut::new(col_loss);
    pool.for_ranges(rows, 1, PARALLEL_MIN_ROWS, &|part, r| {
        // SAFETY: row ranges and per-part loss rows are disjoint between parts.
        let (l, d, c) = unsafe {
            (lp.slice(r.start * batch..r.end * batch), dbp.slice(r.clone()), cp.slice(part * batch..(part + 1) * batch))
        };
        bernoulli_rows(l, &bias[r.clone()], &x[r.start * batch..r.end * batch], d, c, batch);
    });
    sum_parts(col_loss, parts, batch);
}

simd_fn! {
    fn bernoulli_ll_rows(logits: &[f32], bias: &[f32], x: &[f32], col: &mut [f32], batch: usize) {
        let rows = logits.chunks_exact(batch).zip(x.chunks_exact(batch));
        for ((lrow, xrow), &b) in rows.zip(bias) {
            for ((&l, &xv), acc) in lrow.iter().zip(xrow).zip(col.iter_mut()) {
                let logit = l + b;
                *acc += xv * logit - simd::softplus_sigmoid(logit).0;
            }
        }
    }
}

/// Forward only: the Bernoulli log-likelihood `log p(x|z) = Σ_pixels x·l − softplus(l)`
/// (= −BCE) of each column, with logits `l = W·h + b` (bias added here).
///
/// Shapes: `logits`, `x` \[pixels, batch\]; `bias` \[pixels\]; `col_ll` \[parts, batch\] scratch
/// whose first `batch` values receive the result.
pub fn bernoulli_log_likelihood(
    pool: &Pool,
    logits: &[f32],
    bias: &[f32],
    x: &[f32],
    col_ll: &mut [f32],
    batch: usize,
) {
    let rows = bias.len();
    let parts = pool.threads();
    assert!(col_ll.len() >= parts * batch, "col_ll needs [threads, batch]");
    col_ll[..parts * batch].fill(0.0);
    let cp = SyncMut::new(col_ll);
    pool.for_ranges(rows, 1, PARALLEL_MIN_ROWS, &|part, r| {
        // SAFETY: each part writes its own row of partial sums.
        let c = unsafe { cp.slice(part * batch..(part + 1) * batch) };
        let span = r.start * batch..r.end * batch;
        bernoulli_ll_rows(&logits[span.clone()], &bias[r], &x[span], c, batch);
    });
    sum_parts(col_ll, parts, batch);
}

/// Adds rows `1..parts` of a `[parts, batch]` buffer into row 0, in order.
fn sum_parts(buf: &mut [f32], parts: usize, batch: usize) {
    let (first, rest) = buf.split_at_mut(batch);
    for p in 1..parts {
        for (a, b) in first.iter_mut().zip(&rest[(p - 1) * batch..p * batch]) {
            *a += b;
        }
    }
}

simd_fn! {
    /// Forward only: `out = σ(l + b)` for showing images. Shapes: l \[pixels, batch\].
    pub fn bias_sigmoid(l: &mut [f32], bias: &[f32], batch: usize) {
        for (row, &b) in l.chunks_exact_mut(batch).zip(bias) {
            for v in row {
                *v = simd::softplus_sigmoid(*v + b).1;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shared row machinery of the other likelihoods
// ---------------------------------------------------------------------------------------

/// One row of a fused likelihood pass: for every column, `f(value, target)` returns
/// (loss, gradient, extra); the loss is added to the column's sum, the value is replaced by
/// the gradient, and the row sums of the gradients and of the extras are returned. Both sums
/// use `LANES` independent accumulators so the loop vectorises.
#[inline(always)]
fn fused_row(row: &mut [f32], x: &[f32], col: &mut [f32], f: impl Fn(f32, f32) -> (f32, f32, f32)) -> (f32, f32) {
    let (mut sg, mut se) = ([0.0f32; LANES], [0.0f32; LANES]);
    let mut rb = row.chunks_exact_mut(LANES);
    let mut xb = x.chunks_exact(LANES);
    let mut cb = col.chunks_exact_mut(LANES);
    for ((r, x), c) in (&mut rb).zip(&mut xb).zip(&mut cb) {
        for j in 0..LANES {
            let (loss, g, e) = f(r[j], x[j]);
            c[j] += loss;
            r[j] = g;
            sg[j] += g;
            se[j] += e;
        }
    }
    let (mut tg, mut te) = (0.0f32, 0.0f32);
    for ((r, &x), c) in rb.into_remainder().iter_mut().zip(xb.remainder()).zip(cb.into_remainder()) {
        let (loss, g, e) = f(*r, x);
        *c += loss;
        *r = g;
        tg += g;
        te += e;
    }
    (sg.iter().sum::<f32>() + tg, se.iter().sum::<f32>() + te)
}

/// Runs `rows_fn(row range, column-loss row)` over the rows split across the pool, each part
/// summing its columns' losses into its own scratch row; returns with the total in
/// `col_loss[..cols]`.
fn per_part_rows(
    pool: &Pool,
    rows: usize,
    col_loss: &mut [f32],
    cols: usize,
    rows_fn: &(dyn Fn(std::ops::Range<usize>, &mut [f32]) + Sync),
) {
    let parts = pool.threads();
    assert!(col_loss.len() >= parts * cols, "col_loss needs [threads, columns]");
    col_loss[..parts * cols].fill(0.0);
    let cp = SyncMut::new(col_loss);
    pool.for_ranges(rows, 1, PARALLEL_MIN_ROWS, &|part, r| {
        // SAFETY: each part writes its own row of partial sums.
        let c = unsafe { cp.slice(part * cols..(part + 1) * cols) };
        rows_fn(r, c);
    });
    sum_parts(col_loss, parts, cols);
}

// ---------------------------------------------------------------------------------------
// Gaussian
// ---------------------------------------------------------------------------------------

/// ½ ln 2π.
pub const HALF_LN_2PI: f32 = 0.918_938_5;

/// One pixel of the Gaussian: (−log p, ∂/∂μ, ∂/∂v) for mean μ, target x, half log-variance
/// ½v and inverse variance e⁻ᵛ.
#[inline(always)]
fn gaussian_pixel(mu: f32, x: f32, half_lv: f32, inv_var: f32) -> (f32, f32, f32) {
    let d = mu - x;
    let q = 0.5 * d * d * inv_var;
    (HALF_LN_2PI + half_lv + q, d * inv_var, 0.5 - q)
}

simd_fn! {
    fn gaussian_rows(
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
            let (b, half, inv) = (bias[r], 0.5 * logvar[r], simd::exp(-logvar[r]));
            let (g, e) = fused_row(orow, xrow, col, |o, x| gaussian_pixel(o + b, x, half, inv));
            db[r] = g;
            dlogvar[r] = e;
        }
    }
}

/// The Gaussian likelihood forward and backward: with means μ = `out` + `bias` (bias added
/// here) and log-variances `logvar` per row, writes each column's −log p(x|z) into
/// `col_loss[..cols]`, replaces `out` by ∂/∂μ, and writes the row sums `db` = Σ ∂/∂μ and
/// `dlogvar` = Σ ∂/∂v.
///
/// Shapes: `out`, `x` \[rows, cols\]; `bias`, `logvar`, `db`, `dlogvar` \[rows\]; `col_loss`
/// \[threads, cols\] scratch.
#[allow(clippy::too_many_arguments)]
pub fn gaussian_nll(
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
    with_logvar_nll(pool, (out, bias, logvar, x), (db, dlogvar), col_loss, cols, &gaussian_rows);
}

/// The rows of a likelihood with a log-variance per row: (`out`, `bias`, `logvar`, `x`,
/// `db`, `dlogvar`, column-loss row, `cols`), as [`gaussian_rows`] takes them.
type LogvarRows = dyn Fn(&mut [f32], &[f32], &[f32], &[f32], &mut [f32], &mut [f32], &mut [f32], usize) + Sync;

/// Runs the `rows` of a likelihood with a per-row log-variance (the Gaussian's, the
/// discretized Gaussian's) over the pool, as [`gaussian_nll`] describes: each part takes its
/// row range of every buffer and sums its columns' losses into its own scratch row.
fn with_logvar_nll(
    pool: &Pool,
    (out, bias, logvar, x): (&mut [f32], &[f32], &[f32], &[f32]),
    (db, dlogvar): (&mut [f32], &mut [f32]),
    col_loss: &mut [f32],
    cols: usize,
    rows: &LogvarRows,
) {
    let n = bias.len();
    let (op, dbp, dvp) = (SyncMut::new(&mut out[..n * cols]), SyncMut::new(db), SyncMut::new(dlogvar));
    per_part_rows(pool, n, col_loss, cols, &|r, c| {
        // SAFETY: row ranges of different parts are disjoint.
        let (o, d, v) = unsafe { (op.slice(r.start * cols..r.end * cols), dbp.slice(r.clone()), dvp.slice(r.clone())) };
        let span = r.start * cols..r.end * cols;
        rows(o, &bias[r.clone()], &logvar[r], &x[span], d, v, c, cols);
    });
}

/// Forward-only rows: (`out`, `bias`, `logvar`, `x`, column-log-likelihood row, `cols`).
type LogvarLlRows = dyn Fn(&[f32], &[f32], &[f32], &[f32], &mut [f32], usize) + Sync;

/// Forward only, for a likelihood with a per-row log-variance: `rows(out, bias, logvar, x,
/// column-log-likelihood row, cols)` over the pool's row ranges, as [`with_logvar_nll`].
fn with_logvar_ll(
    pool: &Pool,
    (out, bias, logvar, x): (&[f32], &[f32], &[f32], &[f32]),
    col_ll: &mut [f32],
    cols: usize,
    rows: &LogvarLlRows,
) {
    per_part_rows(pool, bias.len(), col_ll, cols, &|r, c| {
        let span = r.start * cols..r.end * cols;
        rows(&out[span.clone()], &bias[r.clone()], &logvar[r], &x[span], c, cols);
    });
}

simd_fn! {
    fn gaussian_ll_rows(out: &[f32], bias: &[f32], logvar: &[f32], x: &[f32], col: &mut [f32], cols: usize) {
        let rows = out.chunks_exact(cols).zip(x.chunks_exact(cols));
        for (r, (orow, xrow)) in rows.enumerate() {
            let (b, half, inv) = (bias[r], 0.5 * logvar[r], simd::exp(-logvar[r]));
            for ((&o, &xv), acc) in orow.iter().zip(xrow).zip(col.iter_mut()) {
                *acc -= gaussian_pixel(o + b, xv, half, inv).0;
            }
        }
    }
}

/// Forward only: each column's Gaussian log p(x|z) into `col_ll[..cols]`. Shapes as
/// [`gaussian_nll`].
pub fn gaussian_log_likelihood(
    pool: &Pool,
    out: &[f32],
    bias: &[f32],
    logvar: &[f32],
    x: &[f32],
    col_ll: &mut [f32],
    cols: usize,
) {
    with_logvar_ll(pool, (out, bias, logvar, x), col_ll, cols, &gaussian_ll_rows);
}

simd_fn! {
    /// The log-variance gradient of the importance-weighted loss, from the *unweighted* mean
    /// gradient `dmu` = (μ − x)/σ² that [`gaussian_nll`] left: per row,
    /// `dlogvar[r] = Σ_c w̃_c (½ − ½ σ²_r dmu²)` (as (x − μ)²/σ² = σ² dmu²).
    /// Shapes: `dmu` \[rows, cols\]; `weights` \[cols\]; `logvar`, `dlogvar` \[rows\].
    pub fn gaussian_weighted_logvar_grad(dmu: &[f32], weights: &[f32], logvar: &[f32], dlogvar: &mut [f32]) {
        let cols = weights.len();
        for ((row, &lv), out) in dmu.chunks_exact(cols).zip(logvar).zip(dlogvar.iter_mut()) {
            let var = simd::exp(lv);
            let mut lanes = [0.0f32; LANES];
            let mut rb = row.chunks_exact(LANES);
            let mut wb = weights.chunks_exact(LANES);
            for (r, w) in (&mut rb).zip(&mut wb) {
                for j in 0..LANES {
                    lanes[j] += w[j] * (0.5 - 0.5 * var * r[j] * r[j]);
                }
            }
            let tail: f32 = rb.remainder().iter().zip(wb.remainder()).map(|(r, w)| w * (0.5 - 0.5 * var * r * r)).sum();
            *out = lanes.iter().sum::<f32>() + tail;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Continuous Bernoulli
// ---------------------------------------------------------------------------------------

/// Below this |l| the continuous Bernoulli's functions use their Taylor series (the closed
/// forms cancel catastrophically at l = 0); at the switch the next omitted term is < 1e-7.
const CB_SERIES: f32 = 0.7;

/// log C(l) = log(l / tanh(l/2)), the continuous Bernoulli's log normalising constant as a
/// function of its logit (ln 2 at l = 0). Series: ln 2 + l²/12 − 7l⁴/1440 + 31l⁶/90720 −
/// 127l⁸/4838400.
#[inline(always)]
pub fn cb_log_norm(l: f32) -> f32 {
    let a = l.abs();
    let e = simd::exp(-a);
    // ln(a / tanh(a/2)) with tanh(a/2) = (1 − e)/(1 + e).
    let closed = simd::ln(a) - simd::ln(1.0 - e) + simd::ln_1p(e);
    let u = l * l;
    let series = std::f32::consts::LN_2
        + u * (1.0 / 12.0 + u * (-7.0 / 1440.0 + u * (31.0 / 90720.0 + u * (-127.0 / 4_838_400.0))));
    if a < CB_SERIES { series } else { closed }
}

/// d log C/dl = 1/l − 1/sinh l. Series: l/6 − 7l³/360 + 31l⁵/15120 − 127l⁷/604800 +
/// 73l⁹/3421440.
#[inline(always)]
pub fn cb_log_norm_grad(l: f32) -> f32 {
    let a = l.abs();
    let e = simd::exp(-a);
    // 1/sinh a = 2e / (1 − e²).
    let closed = (1.0 / a - 2.0 * e / (1.0 - e * e)).copysign(l);
    let u = l * l;
    let series = l
        * (1.0 / 6.0 + u * (-7.0 / 360.0 + u * (31.0 / 15120.0 + u * (-127.0 / 604_800.0 + u * (73.0 / 3_421_440.0)))));
    if a < CB_SERIES { series } else { closed }
}

/// The continuous Bernoulli's mean E\[x\] = 1/(1 − e⁻ˡ) − 1/l (½ at l = 0; the paper's §4 notes
/// that λ itself is not the mean and makes for poor pictures). Series: ½ + l/12 − l³/720 +
/// l⁵/30240 − l⁷/1209600.
#[inline(always)]
pub fn cb_mean(l: f32) -> f32 {
    let closed = 1.0 / (1.0 - simd::exp(-l)) - 1.0 / l;
    let u = l * l;
    let series = 0.5 + l * (1.0 / 12.0 + u * (-1.0 / 720.0 + u * (1.0 / 30240.0 + u * (-1.0 / 1_209_600.0))));
    if l.abs() < CB_SERIES { series } else { closed.clamp(0.0, 1.0) }
}

/// The logit l whose continuous Bernoulli has mean `mean` ∈ (0, 1): the inverse of
/// [`cb_mean`] (increasing in l), found by bisection in f64 on l ∈ [−10⁴, 10⁴] (a mean of
/// 10⁻⁴ needs l ≈ −10⁴, as E\[x\] → −1/l).
pub fn cb_logit_of_mean(mean: f64) -> f64 {
    let f = |l: f64| if l.abs() < 1e-4 { 0.5 + l / 12.0 } else { 1.0 / (1.0 - (-l).exp()) - 1.0 / l };
    let (mut lo, mut hi) = (-1e4f64, 1e4f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < mean {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// One pixel: (−log p, ∂/∂l, 0).
#[inline(always)]
fn cb_pixel(l: f32, x: f32) -> (f32, f32, f32) {
    let (softplus, sigmoid) = simd::softplus_sigmoid(l);
    (softplus - x * l - cb_log_norm(l), sigmoid - x - cb_log_norm_grad(l), 0.0)
}

simd_fn! {
    fn cb_rows(out: &mut [f32], bias: &[f32], x: &[f32], db: &mut [f32], col: &mut [f32], cols: usize) {
        let rows = out.chunks_exact_mut(cols).zip(x.chunks_exact(cols));
        for (r, (orow, xrow)) in rows.enumerate() {
            let b = bias[r];
            db[r] = fused_row(orow, xrow, col, |o, x| cb_pixel(o + b, x)).0;
        }
    }
}

/// The continuous Bernoulli likelihood forward and backward: logits `out` + `bias`, each
/// column's −log p(x|z) into `col_loss[..cols]`, ∂/∂l into `out`, row sums into `db`.
/// Shapes as [`bernoulli_bce`].
pub fn continuous_bernoulli_nll(
    pool: &Pool,
    out: &mut [f32],
    bias: &[f32],
    x: &[f32],
    db: &mut [f32],
    col_loss: &mut [f32],
    cols: usize,
) {
    let rows = bias.len();
    let (op, dbp) = (SyncMut::new(&mut out[..rows * cols]), SyncMut::new(db));
    per_part_rows(pool, rows, col_loss, cols, &|r, c| {
        // SAFETY: row ranges of different parts are disjoint.
        let (o, d) = unsafe { (op.slice(r.start * cols..r.end * cols), dbp.slice(r.clone())) };
        cb_rows(o, &bias[r.clone()], &x[r.start * cols..r.end * cols], d, c, cols);
    });
}

simd_fn! {
    fn cb_ll_rows(out: &[f32], bias: &[f32], x: &[f32], col: &mut [f32], cols: usize) {
        let rows = out.chunks_exact(cols).zip(x.chunks_exact(cols));
        for ((orow, xrow), &b) in rows.zip(bias) {
            for ((&o, &xv), acc) in orow.iter().zip(xrow).zip(col.iter_mut()) {
                *acc -= cb_pixel(o + b, xv).0;
            }
        }
    }
}

/// Forward only: each column's continuous Bernoulli log p(x|z) into `col_ll[..cols]`.
pub fn continuous_bernoulli_log_likelihood(
    pool: &Pool,
    out: &[f32],
    bias: &[f32],
    x: &[f32],
    col_ll: &mut [f32],
    cols: usize,
) {
    per_part_rows(pool, bias.len(), col_ll, cols, &|r, c| {
        let span = r.start * cols..r.end * cols;
        cb_ll_rows(&out[span.clone()], &bias[r], &x[span], c, cols);
    });
}

simd_fn! {
    /// Forward only: `out = E[x] = cb_mean(l + b)` for showing images. Shapes: \[rows, cols\].
    pub fn bias_cb_mean(out: &mut [f32], bias: &[f32], cols: usize) {
        for (row, &b) in out.chunks_exact_mut(cols).zip(bias) {
            for v in row {
                *v = cb_mean(*v + b);
            }
        }
    }
}

simd_fn! {
    /// Forward only: a Gaussian's mean `out = l + b`, clamped to [0, 1] for showing images.
    pub fn bias_clamp(out: &mut [f32], bias: &[f32], cols: usize) {
        for (row, &b) in out.chunks_exact_mut(cols).zip(bias) {
            for v in row {
                *v = (*v + b).clamp(0.0, 1.0);
            }
        }
    }
}

pub mod discretized;
pub mod mixture;
pub use discretized::{
    discretized_gaussian_log_likelihood, discretized_gaussian_nll, discretized_gaussian_weighted_logvar_grad,
};
pub use mixture::{Mixture, logistic_mixture_log_likelihood, logistic_mixture_nll};

#[cfg(test)]
mod tests;
