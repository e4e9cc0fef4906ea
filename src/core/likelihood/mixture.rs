//! The discretized mixture of logistics (Salimans, Karpathy, Chen & Kingma 2017, PixelCNN++,
//! §2.1–2.2): a probability over the 256 values of each 8-bit channel.
//!
//! Per pixel, K components with weights π = softmax(logits). Component k gives channel c a
//! logistic with mean μ_ck and scale s_ck = e^(log s_ck), and for RGB the channels depend
//! linearly on the ones before them within the pixel (the paper's §2.2):
//!
//! ```text
//! μ_R = m_R,   μ_G = m_G + tanh(α)·x_R,   μ_B = m_B + tanh(β)·x_R + tanh(γ)·x_G
//! p(x) = Σ_k π_k Π_c P(x_c | μ_ck, s_ck)
//! P(v | μ, s) = σ(b) − σ(a),   a = (v/255 − h − μ)/s,  b = (v/255 + h − μ)/s,  h = 1/510
//! ```
//!
//! with bin 0 reaching down to −∞ (P = σ(b)) and bin 255 up to +∞ (P = 1 − σ(a)), as the
//! paper's code handles the edges, so the 256 probabilities sum to 1. Values sit at v/255 in
//! [0, 1] (the paper's code maps them to [−1, 1]; the means and the channel coefficients
//! absorb the difference). Log-scales are clamped below at −7, as there.
//!
//! Where the paper's code switches to the density at the bin's centre when σ(b) − σ(a) falls
//! below 1e-5, this computes the difference exactly in the log domain for every bin:
//! `log(σ(b) − σ(a)) = log(e^d − 1) − softplus(−a) − softplus(b)` with d = b − a = 2h/s.
//!
//! The decoder's output has `components · (1 + 2C)` channels per position (channels other
//! than RGB's three are independent) and `10 · components` for RGB, in the paper's order: the K logits, then per channel c the K
//! means, the K log-scales and (RGB only) K coefficients — channel 0's are α (G on R),
//! channel 1's β (B on R), channel 2's γ (B on G).

use super::*;
use crate::core::Rng;

/// The lowest log-scale: PixelCNN++'s clamp (s ≥ e⁻⁷ ≈ 9e-4, a quarter of a bin).
pub const MIN_LOG_SCALE: f32 = -7.0;

/// The shape of a mixture's parameters: channels per pixel (3 for RGB's dependence, any
/// other count independent), positions per channel plane, and components K.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mixture {
    pub channels: usize,
    pub plane: usize,
    pub components: usize,
}

impl Mixture {
    /// Parameters per channel and component: mean and log-scale, and a coefficient for RGB.
    fn per_channel(&self) -> usize {
        if self.channels == 3 { 3 } else { 2 }
    }

    /// Parameters per position (the decoder's output channels): `components · (1 + 2C)`,
    /// or `10 · components` for RGB (C = 3).
    pub fn params(&self) -> usize {
        self.components * (1 + self.channels * self.per_channel())
    }

    /// The parameter channel of component k's mean of channel c.
    pub fn mean(&self, c: usize, k: usize) -> usize {
        self.components * (1 + c * self.per_channel()) + k
    }

    /// The parameter channel of component k's log-scale of channel c.
    pub fn log_scale(&self, c: usize, k: usize) -> usize {
        self.mean(c, k) + self.components
    }

    /// The parameter channel of component k's coefficient i (RGB only): 0 is α (G on R),
    /// 1 is β (B on R), 2 is γ (B on G).
    pub fn coef(&self, i: usize, k: usize) -> usize {
        self.mean(i, k) + 2 * self.components
    }

    /// Checks the buffers' lengths: `out` and `bias` hold `params · plane` rows (`cols`
    /// values each for `out`), `x` `channels · plane` rows.
    fn check(&self, out: usize, bias: usize, x: usize, cols: usize) {
        let rows = self.params() * self.plane;
        assert!(self.channels >= 1, "at least one channel");
        assert!(self.components >= 1, "at least one component");
        assert!(bias >= rows && crate::core::shape::holds(out, &[rows, cols]), "out and bias need the mixture's rows");
        assert!(crate::core::shape::holds(x, &[self.channels * self.plane, cols]), "x needs [channels·plane, cols]");
    }
}

/// log(e^d − 1) for d > 0, given `em` = e^−d: a series below ½ (log d + d/2 + d²/24 −
/// d⁴/2880 + d⁶/181440, the next term < 1e-10 there), else d + log(1 − e^−d).
#[inline(always)]
fn log_expm1(d: f32, em: f32) -> f32 {
    let d = d.max(1e-30);
    let u = d * d;
    let series = simd::ln(d) + 0.5 * d + u * (1.0 / 24.0 + u * (-1.0 / 2880.0 + u * (1.0 / 181_440.0)));
    let closed = d + simd::ln(1.0 - em);
    if d < 0.5 { series } else { closed }
}

/// sinh y for |y| < 1, by its series to y⁹ (the next term is below 3e-8 of it there).
#[inline(always)]
fn sinh_small(y: f32) -> f32 {
    let u = y * y;
    y * (1.0 + u * (1.0 / 6.0 + u * (1.0 / 120.0 + u * (1.0 / 5040.0 + u * (1.0 / 362_880.0)))))
}

/// tanh r as `whole + part` with `whole` ∈ {−1, 0, 1}, and 1 − tanh² r, each to a few ulps
/// of its own size: below |r| = 1 the [7/6] Padé approximant of Lambert's continued fraction
/// (whole 0; within 5e-10 relative there), above it ±(1 − t) with t = 2/(e^(2|r|) + 1) kept
/// apart, so that tanh(r)·x near ±x loses nothing to rounding tanh r itself (RGB's
/// coefficients learn values near ±1: green's mean is red's value and a little more).
#[inline(always)]
pub fn tanh_parts(r: f32) -> (f32, f32, f32) {
    let u = r * r;
    let pade = r * (10395.0 + u * (1260.0 + 21.0 * u)) / (10395.0 + u * (4725.0 + u * (210.0 + u)));
    let t = 2.0 / (simd::exp(2.0 * r.abs()) + 1.0);
    let sign = if r < 0.0 { -1.0 } else { 1.0 };
    if r.abs() < 1.0 { (0.0, pade, 1.0 - pade * pade) } else { (sign, -sign * t, t * (2.0 - t)) }
}

/// Where one channel value v lies against the mean of one logistic, in grey levels: for
/// μ = m + Σᵢ tanh(coefᵢ)·xᵢ/255 (RGB's later channels add earlier ones' values xᵢ), the
/// bin's lower edge, centre and upper edge less 255·Σᵢ tanh(coefᵢ)·xᵢ, from v − ½, v and
/// v + ½: first the whole parts of the tanhs times the values (exact: integers and halves),
/// then a fused multiply-add per fractional part (`deps` holds (whole, part, xᵢ) from
/// [`tanh_parts`]). With [`bin`]'s one more fused multiply-add by m, an edge less 255μ
/// carries a rounding or two of its own size, where rounding μ first would cost an ulp of
/// 255μ (up to 1.5e-5 grey levels: 5e-3 of a gradient near a narrow component's centre).
/// Bin v's upper edge is bin v+1's lower edge bit for bit (the same operations on the same
/// v + ½), so the 256 masses telescope to 1.
#[inline(always)]
pub fn offsets(v: f32, deps: &[(f32, f32, f32)]) -> (f32, f32, f32) {
    let (mut lo, mut mid, mut hi) = (v - 0.5, v, v + 0.5);
    for &(whole, _, x) in deps {
        (lo, mid, hi) = (lo - whole * x, mid - whole * x, hi - whole * x);
    }
    for &(_, part, x) in deps {
        lo = (-part).mul_add(x, lo);
        mid = (-part).mul_add(x, mid);
        hi = (-part).mul_add(x, hi);
    }
    (lo, mid, hi)
}

/// One channel value's bin under one logistic: (log P(v), ∂log P/∂μ, ∂log P/∂log s) for
/// raw mean `m`, the bin's [`offsets`] `(lo, mid, hi)` against the rest of the mean, raw
/// log-scale `log_scale` (clamped at [`MIN_LOG_SCALE`], with no gradient below it) and the
/// value v ∈ {0, …, 255} as a float. For a channel without dependencies `offsets(v, &[])`.
///
/// With g_a = ∂log P/∂a and g_b = ∂log P/∂b: ∂/∂μ = −(g_a + g_b)/s and ∂/∂log s =
/// −(a·g_a + b·g_b). In the middle g_a = −σ′(a)/P and g_b = σ′(b)/P, which nearly cancel for
/// a wide logistic, so the sums are taken in closed form: σ′(b) − σ′(a) = (σ(b) − σ(a))(1 −
/// σ(a) − σ(b)) gives g_a + g_b = 1 − σ(a) − σ(b), and a·g_a + b·g_b = a(g_a + g_b) + d·g_b
/// with d = b − a, g_b = e^(b − 2 softplus(b) − log P) (log σ′(t) = t − 2 softplus(t)). Near
/// the centre (|y| < 1 with y = (a + b)/2, the centre's offset over s) 1 − σ(a) − σ(b) is
/// itself a difference of near-equal terms, so it is taken as σ(−a) − σ(b) = (e^−b −
/// e^a)·σ(−a)·σ(b) = −2·e^(−d/2)·sinh(y)·σ(−a)·σ(b), exact to a few ulps. At v = 0, log P =
/// log σ(b) and g_b = σ(−b) = e^(−softplus(b)); at v = 255, log P = −softplus(a) and g_a =
/// −σ(a).
#[inline(always)]
pub fn bin(m: f32, (edge_lo, centre, edge_hi): (f32, f32, f32), log_scale: f32, v: f32) -> (f32, f32, f32) {
    let ls = log_scale.max(MIN_LOG_SCALE);
    let inv = simd::exp(-ls);
    // a = (v − ½ − 255μ)·s⁻¹/255 with one rounding in the bracket (a fused multiply-add).
    let d = inv * (1.0 / 255.0);
    let a = (-255.0f32).mul_add(m, edge_lo) * d;
    let b = (-255.0f32).mul_add(m, edge_hi) * d;
    let y = (-255.0f32).mul_add(m, centre) * d;
    let (spa, siga) = simd::softplus_sigmoid(a);
    let (spb, sigb) = simd::softplus_sigmoid(b);
    // e^−d, for log(e^d − 1) and (its square root) the sum near the centre.
    let em = simd::exp(-d);
    let mid = log_expm1(d, em) - (spa - a) - spb;
    // (log P, g_a + g_b, a·g_a + b·g_b), every case computed and one selected, so the
    // lanes' loop stays branch-free.
    let gb_mid = simd::exp(b - 2.0 * spb - mid);
    let gb_lo = simd::exp(-spb);
    let near = -2.0 * em.sqrt() * sinh_small(y.clamp(-1.0, 1.0)) * (1.0 - siga) * sigb;
    let sum_mid = if y.abs() < 1.0 { near } else { 1.0 - siga - sigb };
    let (lo, hi) = (v < 0.5, v > 254.5);
    let logp = if lo {
        b - spb
    } else if hi {
        -spa
    } else {
        mid
    };
    let sum = if lo {
        gb_lo
    } else if hi {
        -siga
    } else {
        sum_mid
    };
    let moment = if lo {
        b * gb_lo
    } else if hi {
        -a * siga
    } else {
        a * sum_mid + d * gb_mid
    };
    let dls = if log_scale < MIN_LOG_SCALE { 0.0 } else { -moment };
    (logp, -inv * sum, dls)
}

simd_fn! {
    /// One position of `LANES` columns: `g` \[params, LANES\] holds the parameters on entry
    /// and ∂(−log p)/∂parameter on exit (when `grad`); `xs` \[channels, LANES\] the values
    /// 0…255; `t` \[3K, LANES\] scratch; `loss` receives −log p(x) per lane.
    fn chunk(m: &Mixture, g: &mut [f32], xs: &[f32], t: &mut [f32], loss: &mut [f32], grad: bool) {
        let (kk, channels) = (m.components, m.channels);
        let g = &mut g[..m.params() * LANES];
        let (xs, loss) = (&xs[..channels * LANES], &mut loss[..LANES]);
        // log π_k in `lp`, log π_k + Σ_c log P_ck in `t`, log r_k in `lr`.
        let (lp, rest) = t[..3 * kk * LANES].split_at_mut(kk * LANES);
        let (t, lr) = rest.split_at_mut(kk * LANES);
        log_softmax_lanes(&g[..kk * LANES], lp, &mut [0.0; LANES]);
        t.copy_from_slice(lp);
        for k in 0..kk {
            for c in 0..channels {
                let (mi, si) = (m.mean(c, k) * LANES, m.log_scale(c, k) * LANES);
                // The coefficients that add earlier channels to this one's mean (RGB).
                let deps: &[(usize, usize)] = match (channels, c) {
                    (3, 1) => &[(0, 0)],
                    (3, 2) => &[(1, 0), (2, 1)],
                    _ => &[],
                };
                // Lane arrays throughout, one simple loop per step, so that each loop
                // vectorises across the columns.
                let (mu, ls, v) = (lanes(&g[mi..]), lanes(&g[si..]), lanes(&xs[c * LANES..]));
                // tanh of each dependency's coefficient in parts (`tanh_parts`), for the mean,
                // and 1 − tanh², for its gradient.
                let (mut whole, mut part, mut slope) = ([[0.0f32; LANES]; 2], [[0.0f32; LANES]; 2], [[0.0f32; LANES]; 2]);
                for (n, &(i, _)) in deps.iter().enumerate() {
                    let coef = lanes(&g[m.coef(i, k) * LANES..]);
                    for j in 0..LANES {
                        (whole[n][j], part[n][j], slope[n][j]) = tanh_parts(coef[j]);
                    }
                }
                let xd = [0, 1].map(|n| deps.get(n).map_or([0.0; LANES], |&(_, from)| lanes(&xs[from * LANES..])));
                let (mut logp, mut dmu, mut dls) = ([0.0f32; LANES], [0.0f32; LANES], [0.0f32; LANES]);
                for j in 0..LANES {
                    // Absent dependencies are (0, 0, 0): e − 0·0 and −0·0 + e are e, bit for bit.
                    let dep = |n: usize| (whole[n][j], part[n][j], xd[n][j]);
                    let edges = offsets(v[j], &[dep(0), dep(1)]);
                    (logp[j], dmu[j], dls[j]) = bin(mu[j], edges, ls[j], v[j]);
                }
                for j in 0..LANES {
                    t[k * LANES + j] += logp[j];
                }
                g[mi..mi + LANES].copy_from_slice(&dmu);
                g[si..si + LANES].copy_from_slice(&dls);
                for ((&(i, _), slope), x) in deps.iter().zip(&slope).zip(&xd) {
                    let slot = m.coef(i, k) * LANES;
                    let mut d = [0.0f32; LANES];
                    for j in 0..LANES {
                        d[j] = dmu[j] * (x[j] * (1.0 / 255.0)) * slope[j];
                    }
                    g[slot..slot + LANES].copy_from_slice(&d);
                }
            }
        }
        // log p = logsumexp_k t_k; log r_k = t_k − log p.
        let mut log_p = [0.0f32; LANES];
        log_softmax_lanes(&t[..], lr, &mut log_p);
        for j in 0..LANES {
            loss[j] = -log_p[j];
        }
        if !grad {
            return;
        }
        // r_k into `t`.
        for (r, l) in t.iter_mut().zip(lr.iter()) {
            *r = simd::exp(*l);
        }
        for k in 0..kk {
            for j in 0..LANES {
                let r = t[k * LANES + j];
                g[k * LANES + j] = simd::exp(lp[k * LANES + j]) - r;
            }
            for c in 0..channels {
                for slot in [m.mean(c, k), m.log_scale(c, k)].into_iter().chain((channels == 3).then(|| m.coef(c, k))) {
                    for j in 0..LANES {
                        g[slot * LANES + j] *= -t[k * LANES + j];
                    }
                }
            }
        }
    }
}

/// The `LANES` values at the start of `v`, as an array.
#[inline(always)]
fn lanes(v: &[f32]) -> [f32; LANES] {
    v[..LANES].try_into().expect("LANES values")
}

/// `out[k] = v[k] − logsumexp_k v[k]` per lane over the K rows of `v` \[K, LANES\], and the
/// logsumexp itself into `lse`.
#[inline(always)]
fn log_softmax_lanes(v: &[f32], out: &mut [f32], lse: &mut [f32; LANES]) {
    let (mut top, mut sum) = ([f32::MIN; LANES], [0.0f32; LANES]);
    for row in v.chunks_exact(LANES) {
        for j in 0..LANES {
            top[j] = top[j].max(row[j]);
        }
    }
    for row in v.chunks_exact(LANES) {
        for j in 0..LANES {
            sum[j] += simd::exp(row[j] - top[j]);
        }
    }
    for j in 0..LANES {
        lse[j] = top[j] + simd::ln(sum[j]);
    }
    for (row, o) in v.chunks_exact(LANES).zip(out.chunks_exact_mut(LANES)) {
        for j in 0..LANES {
            o[j] = row[j] - lse[j];
        }
    }
}

/// The parameters and values of one position's `LANES` columns starting at `col`, gathered
/// into `g` \[params, LANES\] (output plus bias) and `xs` \[channels, LANES\] (values 0…255);
/// columns past `cols` are padded with parameters 0 and value 128. Returns the columns used.
fn gather(
    m: &Mixture,
    (out, bias, x): (Src, &[f32], &[f32]),
    pos: usize,
    col: usize,
    cols: usize,
    g: &mut [f32],
    xs: &mut [f32],
) -> usize {
    let w = LANES.min(cols - col);
    for i in 0..m.params() {
        let row = i * m.plane + pos;
        let dst = &mut g[i * LANES..(i + 1) * LANES];
        for (d, &o) in dst.iter_mut().zip(out.get(row * cols + col..row * cols + col + w)) {
            *d = o + bias[row];
        }
        dst[w..].fill(0.0);
    }
    for c in 0..m.channels {
        let row = c * m.plane + pos;
        let dst = &mut xs[c * LANES..(c + 1) * LANES];
        for (d, &v) in dst.iter_mut().zip(&x[row * cols + col..row * cols + col + w]) {
            *d = (v * 255.0).round().clamp(0.0, 255.0);
        }
        dst[w..].fill(128.0);
    }
    w
}

/// Where [`gather`] reads the parameters: a shared buffer, or the rows of the calling part
/// in a buffer the parts write.
#[derive(Clone, Copy)]
enum Src<'a> {
    Shared(&'a [f32]),
    Part(&'a SyncMut<'a, f32>),
}

impl Src<'_> {
    fn get(&self, span: std::ops::Range<usize>) -> &[f32] {
        match self {
            Src::Shared(s) => &s[span],
            // SAFETY: a part reads only the rows of its own positions, which no other part
            // touches, and holds the view only until its own writes.
            Src::Part(p) => unsafe { p.slice(span) },
        }
    }
}

/// Scratch of one part: gathered parameters, values, the kernel's \[3K, LANES\] and losses.
struct Scratch {
    g: Vec<f32>,
    xs: Vec<f32>,
    t: Vec<f32>,
    loss: [f32; LANES],
}

impl Scratch {
    fn new(m: &Mixture) -> Scratch {
        Scratch {
            g: vec![0.0; m.params() * LANES],
            xs: vec![0.0; m.channels * LANES],
            t: vec![0.0; 3 * m.components * LANES],
            loss: [0.0; LANES],
        }
    }
}

/// Runs [`chunk`] over every position and `LANES` columns of the pool's position ranges,
/// adding `sign` × each column's −log p into the part's row of `col_sums`; with `grads`
/// (`out` itself and `db`), writes the gradients back into `out` and their row sums into
/// `db`. The one loop of [`logistic_mixture_nll`] and [`logistic_mixture_log_likelihood`].
#[allow(clippy::too_many_arguments)]
fn over_positions(
    pool: &Pool,
    m: Mixture,
    out: Src,
    (bias, x): (&[f32], &[f32]),
    col_sums: &mut [f32],
    cols: usize,
    sign: f32,
    grads: Option<(&SyncMut<f32>, &SyncMut<f32>)>,
) {
    per_part_rows(pool, m.plane, col_sums, cols, &|positions, c| {
        let mut s = Scratch::new(&m);
        for pos in positions {
            for col in (0..cols).step_by(LANES) {
                let w = gather(&m, (out, bias, x), pos, col, cols, &mut s.g, &mut s.xs);
                chunk(&m, &mut s.g, &s.xs, &mut s.t, &mut s.loss, grads.is_some());
                for (acc, &l) in c[col..col + w].iter_mut().zip(&s.loss) {
                    *acc += sign * l;
                }
                let Some((op, dbp)) = grads else { continue };
                for i in 0..m.params() {
                    let row = i * m.plane + pos;
                    // SAFETY: a row of this part's own position, which no other part touches.
                    let (dst, d) =
                        unsafe { (op.slice(row * cols + col..row * cols + col + w), dbp.slice(row..row + 1)) };
                    let src = &s.g[i * LANES..i * LANES + w];
                    dst.copy_from_slice(src);
                    let sum: f32 = src.iter().sum();
                    d[0] = if col == 0 { sum } else { d[0] + sum };
                }
            }
        }
    });
}

/// The mixture's likelihood forward and backward: parameters `out` + `bias` \[params·plane,
/// cols\] (the bias per row, added here; row i·plane + p is parameter channel i at position
/// p), targets `x` \[channels·plane, cols\] on the grid v/255. Writes each column's −log p(x|z)
/// into `col_loss[..cols]`, replaces `out` by ∂/∂out, and writes the row sums into `db`
/// \[params·plane\]. `col_loss` is \[threads, cols\] scratch.
#[allow(clippy::too_many_arguments)]
pub fn logistic_mixture_nll(
    pool: &Pool,
    m: Mixture,
    out: &mut [f32],
    bias: &[f32],
    x: &[f32],
    db: &mut [f32],
    col_loss: &mut [f32],
    cols: usize,
) {
    m.check(out.len(), bias.len(), x.len(), cols);
    assert!(db.len() >= m.params() * m.plane, "db needs one value per row");
    let (op, dbp) = (SyncMut::new(out), SyncMut::new(db));
    over_positions(pool, m, Src::Part(&op), (bias, x), col_loss, cols, 1.0, Some((&op, &dbp)));
}

/// Forward only: each column's log p(x|z) into `col_ll[..cols]`. Shapes as
/// [`logistic_mixture_nll`].
pub fn logistic_mixture_log_likelihood(
    pool: &Pool,
    m: Mixture,
    out: &[f32],
    bias: &[f32],
    x: &[f32],
    col_ll: &mut [f32],
    cols: usize,
) {
    m.check(out.len(), bias.len(), x.len(), cols);
    over_positions(pool, m, Src::Shared(out), (bias, x), col_ll, cols, -1.0, None);
}

/// The component weights π = softmax(logits) of one position and column, where `param(i)`
/// is parameter channel i (bias included).
fn softmax_weights(m: &Mixture, param: &impl Fn(usize) -> f32) -> Vec<f64> {
    let logits: Vec<f64> = (0..m.components).map(|k| param(k) as f64).collect();
    let top = logits.iter().cloned().fold(f64::MIN, f64::max);
    let sum: f64 = logits.iter().map(|l| (l - top).exp()).sum();
    logits.iter().map(|l| (l - top).exp() / sum).collect()
}

/// Component k's logistic mean for channel c given the earlier channels' values `prev`
/// (in [0, 1]).
fn component_mean(m: &Mixture, param: &impl Fn(usize) -> f32, c: usize, k: usize, prev: &[f32]) -> f32 {
    let coef = |i: usize| {
        let (whole, part, _) = tanh_parts(param(m.coef(i, k)));
        whole + part
    };
    let base = param(m.mean(c, k));
    match (m.channels, c) {
        (3, 1) => base + coef(0) * prev[0],
        (3, 2) => base + coef(1) * prev[0] + coef(2) * prev[1],
        _ => base,
    }
}

/// E\[clamp(X, 0, 1)\] for X ~ Logistic(μ, s): ∫₀¹ P(X > t) dt = s·(softplus(μ/s) −
/// softplus((μ − 1)/s)). The discretized value's mean up to the rounding to v/255
/// (whose ±½-bin errors cancel to first order); a component placed far beyond 1 to put its
/// mass on 255 counts as 1, not as its μ.
#[inline(always)]
fn clamped_mean(mu: f32, s: f32) -> f32 {
    let softplus = |t: f32| simd::softplus_sigmoid(t).0;
    (s * (softplus(mu / s) - softplus((mu - 1.0) / s))).clamp(0.0, 1.0)
}

/// The image the mixture stands for, in place: `out` \[params·plane, cols\] (bias `bias` per
/// row added here) becomes, in its first `channels·plane` rows, each value's mean
/// Σ_k π_k E_k\[x_c\], each component's value clamped to [0, 1] as the edge bins do
/// (`clamped_mean`), RGB's later channels' means taken at the earlier channels' component
/// means.
pub fn logistic_mixture_mean(m: Mixture, out: &mut [f32], bias: &[f32], cols: usize) {
    m.check(out.len(), bias.len(), m.channels * m.plane * cols, cols);
    let mut values = vec![0.0f64; m.channels];
    for pos in 0..m.plane {
        for col in 0..cols {
            let param = |i: usize| out[(i * m.plane + pos) * cols + col] + bias[i * m.plane + pos];
            let pi = softmax_weights(&m, &param);
            values.fill(0.0);
            for (k, &w) in pi.iter().enumerate() {
                let mut prev = [0.0f32; 3];
                for c in 0..m.channels {
                    let s = simd::exp(param(m.log_scale(c, k)).max(MIN_LOG_SCALE));
                    prev[c] = clamped_mean(component_mean(&m, &param, c, k, &prev), s);
                    values[c] += w * prev[c] as f64;
                }
            }
            for (c, &v) in values.iter().enumerate() {
                out[(c * m.plane + pos) * cols + col] = v as f32;
            }
        }
    }
}

/// Draws one image per column from the mixture, in place as [`logistic_mixture_mean`]: a
/// component k ~ π, then channel by channel a logistic draw μ + s·log(u/(1 − u)) rounded to
/// its bin v/255 (clamped to 0…255, which is exactly the edge bins' mass), each later RGB
/// channel's mean taking the values drawn before it.
pub fn logistic_mixture_sample(m: Mixture, out: &mut [f32], bias: &[f32], cols: usize, rng: &mut Rng) {
    m.check(out.len(), bias.len(), m.channels * m.plane * cols, cols);
    let mut values = [0.0f32; 3];
    for pos in 0..m.plane {
        for col in 0..cols {
            let param = |i: usize| out[(i * m.plane + pos) * cols + col] + bias[i * m.plane + pos];
            let pi = softmax_weights(&m, &param);
            let mut u = rng.uniform();
            let k = pi.iter().position(|&p| {
                u -= p;
                u < 0.0
            });
            let k = k.unwrap_or(m.components - 1);
            for c in 0..m.channels {
                let mu = component_mean(&m, &param, c, k, &values);
                let s = simd::exp(param(m.log_scale(c, k)).max(MIN_LOG_SCALE));
                let u = rng.uniform().clamp(1e-7, 1.0 - 1e-7);
                let draw = mu as f64 + s as f64 * (u / (1.0 - u)).ln();
                values[c] = ((draw * 255.0).round().clamp(0.0, 255.0) / 255.0) as f32;
            }
            for (c, &v) in values[..m.channels].iter().enumerate() {
                out[(c * m.plane + pos) * cols + col] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests;
