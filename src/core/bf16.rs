//! Matrix products in bf16 with f32 accumulation, for `--precision bf16` ([`Precision`]):
//! `vdpbf16ps` (AVX512_BF16: AMD Zen 4/5, Intel Cooper Lake and later) where the CPU has it,
//! a portable loop with the same rounding elsewhere (tests, and `VAE_SIMD=fp32`).
//!
//! bf16 keeps f32's exponent and 8 of its 24 significand bits, so a product of two bf16
//! values is exact in f32; `vdpbf16ps` adds two such products per 32-bit lane into an f32
//! accumulator:
//!
//! ```text
//! c[i, j] (+)= Σ_p  bf16(a[i, 2p])·bf16(b[2p, j]) + bf16(a[i, 2p+1])·bf16(b[2p+1, j])
//! ```
//!
//! Layouts (operands are rounded as they are packed, per product; [`PackedA`] keeps a left
//! operand's packing for many): `a` [M, K] as pairs along K in blocks of [`MR`] rows,
//! `pa[(block·P + p)·MR + i] = (a[block·MR + i, 2p], a[…, 2p + 1])`; `b` [K, N] as pairs
//! along K in panels of [`NR`] columns, `pb[(panel·P + p)·NR + j] = (b[2p, panel·NR + j],
//! b[2p + 1, …])`, each pair one u32 with the even-k value in its low half (the instruction's
//! element order); P = ⌈K/2⌉, an odd K's last pair padded with 0. Packing is in `pack`, the
//! 6 × 64 block and the drivers that split a product across the pool in `kernel`; a
//! convolution gathers its column matrix straight into the right operand's layout
//! (`core::conv`).

pub mod amx;
mod kernel;
mod pack;

pub(crate) use kernel::{CHUNKS, ZEROS};
pub(crate) use kernel::{kernel_segments, kernel_taps};
pub(crate) use pack::{give_back, run_pairs, take, transpose, zip_hi, zip_one, zip_two};

use super::matmul::Mat;
use super::pool::Pool;

/// Rows and columns of the kernel's output block (24 accumulators of 16 lanes).
pub const MR: usize = 6;
pub const NR: usize = 64;

/// f32 → bf16 bits, rounding to nearest, ties to even (as `vcvtne2ps2bf16`); a NaN stays a
/// (quiet) NaN.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    // Branch-free, so that the packers' loops vectorise; a NaN's sum is discarded.
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let quiet = (bits >> 16) | 0x40;
    (if x.is_nan() { quiet } else { rounded }) as u16
}

/// bf16 bits → f32 (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to the nearest bf16 value, as f32.
pub fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

#[inline(always)]
pub(crate) fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

/// The number format of the layers' products: `--precision`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// Matrix products and convolutions in bf16 with f32 sums; master weights, Adam, losses
    /// and element-wise kernels in f32.
    Bf16,
}

impl Precision {
    /// `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this is the default (f32), for `skip_serializing_if`.
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// What runs for this precision on this CPU: `Ok(the path's name)` where it runs as asked
    /// (bf16 on `vdpbf16ps`), or `Err(why not)` for bf16 without the hardware, in which case
    /// the products run in f32 ([`Precision::scope`]), which the caller says once.
    ///
    /// # Errors
    /// bf16 on a CPU without AVX512_BF16 (or with it turned off by `VAE_SIMD`).
    pub fn path(self) -> Result<&'static str, String> {
        match self {
            Precision::F32 => Ok("f32"),
            Precision::Bf16 if amx_engaged() => Ok(
                "bf16 (AMX tiles for the linear layers and the convolutions over 32·i channels, vdpbf16ps for the rest; f32 sums)",
            ),
            Precision::Bf16 if hardware() && amx_asked() => Ok(
                "bf16 (vdpbf16ps, f32 sums): VAE_SIMD=amx asked for AMX tiles, which Linux did not grant this process (arch_prctl ARCH_REQ_XCOMP_PERM needs Linux 5.16 or later)",
            ),
            Precision::Bf16 if hardware() => Ok("bf16 (vdpbf16ps, f32 sums)"),
            Precision::Bf16 => Err(format!(
                "bf16 needs AVX512_BF16 (vdpbf16ps: AMD Zen 4/5, Intel Xeon from Cooper Lake on), which this CPU {}",
                if super::cpu::cpu().avx512_bf16 { "has but VAE_SIMD turns off" } else { "lacks" }
            )),
        }
    }

    /// Whether bf16 products run for this precision on this CPU ([`Precision::path`]).
    pub fn runs_bf16(self) -> bool {
        self == Precision::Bf16 && hardware()
    }

    /// Switches this thread's products to this precision where the CPU runs it, else to f32,
    /// until the returned guard drops (which restores the previous setting).
    pub fn scope(self) -> Scope {
        let previous = enabled();
        set_enabled(self.runs_bf16());
        Scope { previous }
    }
}

/// Restores this thread's product precision when dropped ([`Precision::scope`]).
#[must_use = "the precision reverts when the guard drops"]
pub struct Scope {
    previous: bool,
}

impl Drop for Scope {
    fn drop(&mut self) {
        set_enabled(self.previous);
    }
}

thread_local! {
    /// Whether the layers' products that this thread starts run in bf16 ([`set_enabled`]).
    static ENABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the layers' products (linear and convolution) that this thread starts in bf16
/// (`true`) or f32 (the default): `--precision bf16`'s switch, per thread like PyTorch's
/// `autocast`, since a product's path is chosen on the thread that calls it. Element-wise
/// kernels, losses and Adam stay f32. Without AVX512_BF16 ([`hardware`]) the portable loop
/// computes the same values, slowly: the CLI falls back to f32 there instead.
pub fn set_enabled(on: bool) {
    ENABLED.set(on);
}

/// Whether [`set_enabled`] switched this thread's products to bf16.
pub fn enabled() -> bool {
    ENABLED.get()
}

/// Whether this CPU runs the `vdpbf16ps` path: AVX512_BF16 with AVX-512 enabled, and
/// neither a lower level nor `fp32` forced by `VAE_SIMD`. Decided once per process.
pub fn hardware() -> bool {
    static HARDWARE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HARDWARE.get_or_init(|| {
        cfg!(target_arch = "x86_64")
            && super::simd::level() == super::simd::Level::V4
            && super::cpu::cpu().avx512_bf16
            && super::simd::bf16_requested().ok().flatten() != Some(super::simd::Bf16Path::Fp32)
    })
}

/// Whether the bf16 products run on AMX tiles where their shapes fill them ([`amx`], and
/// `core::conv`'s paired products): the CPU has them,
/// Linux granted this process the tile state, and `VAE_SIMD=amx` asks for them (opt-in
/// until a session on an AMX machine has run the tile path's tests there).
pub fn amx_engaged() -> bool {
    static ENGAGED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENGAGED.get_or_init(|| hardware() && amx_asked() && amx::hardware())
}

/// Whether `VAE_SIMD=amx` asks for the tiles (on a CPU that has them: it is refused elsewhere).
fn amx_asked() -> bool {
    super::simd::bf16_requested() == Ok(Some(super::simd::Bf16Path::Amx))
}

/// A left operand `a` [M, K] packed once (a layer's weight after each update), for any
/// number of products [`matmul_packed`].
pub struct PackedA {
    rows: usize,
    depth: usize,
    pairs: Vec<u32>,
}

impl PackedA {
    /// `a` rounded to bf16 and packed on the pool.
    pub fn new(pool: &Pool, a: Mat) -> PackedA {
        let mut pairs = vec![0; pack::a_len(&a)];
        pack::pack(pool, Some((a, &mut pairs)), None);
        PackedA { rows: a.rows(), depth: a.cols(), pairs }
    }

    /// `a` rounded to bf16 and packed on the calling thread (for a part of a product that a
    /// pool job computes on its own).
    pub fn serial(a: Mat) -> PackedA {
        let mut pairs = vec![0; pack::a_len(&a)];
        pack::pack_a_serial(a, &mut pairs);
        PackedA { rows: a.rows(), depth: a.cols(), pairs }
    }

    /// (M, K).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.depth)
    }
}

/// `b` [K, N] rounded to bf16 and packed in column panels of [`NR`] on the pool (pairs along
/// K): `out[(panel·⌈K/2⌉ + q)·NR + j] = (b[2q, panel·NR + j], b[2q + 1, …])`, 0 past N.
/// A spare buffer of this thread's ([`give_back`] it), longer than that perhaps: the packing
/// writes every value it needs, so it is not zeroed first.
pub(crate) fn pack_b(pool: &Pool, b: Mat) -> Vec<u32> {
    let len = pack::b_len(&b);
    let mut out = take(len);
    pack::pack_b_by_pairs(pool, b, &mut out[..len]);
    out
}

/// Pairs `pairs` of [`pack_b`]'s packing of `b` [K, N] (K rows `2·pairs.start ..
/// 2·pairs.end`), on the calling thread, into `dst` (resized): panel `j` at
/// `dst[j·len·NR..]`, `len = pairs.len()`. For a part of a product that packs the slice of
/// the right operand it is about to read, so that the packing stays in cache.
pub(crate) fn pack_b_pairs(b: Mat, pairs: std::ops::Range<usize>, dst: &mut Vec<u32>) {
    let panels = b.cols().div_ceil(NR);
    let len = pairs.len();
    dst.resize(panels * len * NR, 0);
    let rows = b.rows_range(2 * pairs.start..(2 * pairs.end).min(b.rows()));
    pack::pack_b_panels(rows, 0..panels, &mut dst[..panels * len * NR]);
}

/// The bf16 peak of this CPU on `pool`'s threads, in GFLOP/s (2 per multiply-add), measured
/// by a probe of independent `vdpbf16ps` on registers (`tdpbf16ps` on tiles where
/// [`amx_engaged`]) for about `seconds`: what the kernel could reach at best (`None` without
/// the instruction).
pub fn peak_gflops(pool: &Pool, seconds: f64) -> Option<f64> {
    if !hardware() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let tiles = amx_engaged();
        // FLOP per round: 16 instructions × 16 lanes × 2 multiply-adds × 2, or on tiles four
        // instructions × 16 × 16 outputs × 32 multiply-adds × 2.
        let round = if tiles { 4.0 * 16.0 * 16.0 * 64.0 } else { 16.0 * 16.0 * 4.0 };
        // SAFETY: `hardware` checked the features, `amx_engaged` the tiles.
        let probe = |iters: usize| unsafe { if tiles { amx::peak_loop(iters) } else { kernel::peak_loop(iters) } };
        // Size the run from a short one, then time it on every thread at once.
        let t = std::time::Instant::now();
        std::hint::black_box(probe(10_000));
        let per_round = t.elapsed().as_secs_f64() / 10_000.0;
        let iters = ((seconds / per_round.max(1e-12)) as usize).clamp(1000, 1 << 30);
        let t = std::time::Instant::now();
        pool.run(&|_| {
            std::hint::black_box(probe(iters));
        });
        let elapsed = t.elapsed().as_secs_f64();
        Some(iters as f64 * round * pool.threads() as f64 / elapsed / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (pool, seconds);
        None
    }
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`) with the operands rounded to bf16 and the
/// sums in f32; `dst` row-major `[m, n]`. Shapes: `a` [m, k], `b` [k, n]. Both operands are
/// packed in one pass on the pool, then the blocks are split across it in whole row blocks
/// or column panels, whichever gives more.
pub fn matmul_bf16(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows());
    assert!(m.checked_mul(n).is_some_and(|mn| dst.len() >= mn), "destination too small for [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    if amx_engaged() {
        return amx::product(pool, dst, a, b, accumulate, amx::Engine::Tiles);
    }
    matmul_vector(pool, dst, a, b, accumulate);
}

/// [`matmul_bf16`] on `vdpbf16ps` (or its portable loop) whatever `VAE_SIMD` says of AMX: the
/// path the convolutions' products share, which their tests compare against bit for bit.
pub(crate) fn matmul_vector(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, n) = (a.rows(), b.cols());
    if m == 0 || n == 0 {
        return;
    }
    if block_use(n, m) > 1.25 * block_use(m, n) {
        // A narrow product (a small batch: 20 columns fill a third of a 64-wide panel) runs
        // transposed, dstᵀ = bᵀ·aᵀ, into scratch that is then transposed into dst: the same
        // pair products summed in the same order, so the same bits.
        let mut t = vec![0.0f32; n * m];
        product(pool, &mut t, b.t(), a.t(), false);
        for (i, row) in dst[..m * n].chunks_exact_mut(n).enumerate() {
            for (j, d) in row.iter_mut().enumerate() {
                *d = if accumulate { *d + t[j * m + i] } else { t[j * m + i] };
            }
        }
        return;
    }
    product(pool, dst, a, b, accumulate);
}

/// The share of the kernel's [`MR`] × [`NR`] blocks that an `[m, n]` product fills.
fn block_use(m: usize, n: usize) -> f64 {
    (m * n) as f64 / (m.div_ceil(MR) * MR * n.div_ceil(NR) * NR) as f64
}

/// Products with fewer multiply-adds than this pack and multiply in one hand-off, each
/// thread packing what it needs ([`kernel::product_fused`]); larger ones pack both operands
/// on the pool first.
const FUSED_MAX_MACS: usize = 16 << 20;

/// [`matmul_bf16`] in the given orientation.
fn product(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    if m.saturating_mul(n).saturating_mul(k) < FUSED_MAX_MACS {
        return kernel::product_fused(pool, dst, a, b, accumulate);
    }
    let (mut pa, mut pb) = (pack::take(pack::a_len(&a)), pack::take(pack::b_len(&b)));
    pack::pack(pool, Some((a, &mut pa)), Some((b, &mut pb)));
    kernel::product(pool, dst, &pa, (m, k), &pb, n, accumulate);
    pack::give_back(pa);
    pack::give_back(pb);
}

/// [`matmul_bf16`] with `a` already packed.
pub fn matmul_packed(pool: &Pool, dst: &mut [f32], a: &PackedA, b: Mat, accumulate: bool) {
    let ((m, k), n) = (a.shape(), b.cols());
    assert_eq!(b.rows(), k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows());
    assert!(m.checked_mul(n).is_some_and(|mn| dst.len() >= mn), "destination too small for [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    let mut pb = pack::take(pack::b_len(&b));
    pack::pack(pool, None, Some((b, &mut pb)));
    kernel::product(pool, dst, &a.pairs, (m, k), &pb, n, accumulate);
    pack::give_back(pb);
}

/// `dst = a·b` (or `+=`) on the calling thread, `a` already packed, into the row-major
/// block at `dst` whose rows are `ldc` apart: the bf16 counterpart of
/// [`crate::core::matmul::matmul_serial`], for kernels that split a product across the pool
/// themselves. `b` is packed into this thread's scratch.
///
/// # Safety
/// `dst` valid for writes of `a`'s rows of `b.cols()` values at stride `ldc`, and no other
/// thread may access them during the call.
pub unsafe fn matmul_packed_serial(dst: *mut f32, ldc: usize, a: &PackedA, b: Mat, accumulate: bool) {
    let ((m, k), n) = (a.shape(), b.cols());
    assert_eq!(b.rows(), k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows());
    assert!(n <= ldc || m <= 1, "destination rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    let mut pb = pack::take(pack::b_len(&b));
    pack::pack_b_serial(b, &mut pb);
    let a = (&a.pairs[..], k.div_ceil(2) * MR, 0);
    // SAFETY: per the contract.
    unsafe { kernel::blocks_of(a, &pb, (m, k, n), 0..m.div_ceil(MR), 0..n.div_ceil(NR), dst, ldc, accumulate) };
    pack::give_back(pb);
}

/// `dst = a[:, cols]·b` (or `+=`) on the calling thread from a right operand `b`
/// [cols.len(), n] that the caller packed itself into `pb` (column panels of [`NR`], pairs
/// along K: the module's layout), e.g. straight from an image by a convolution's gather.
/// `cols` (starting at an even column: a pair boundary) picks the product's K range of `a`
/// [m, K], packed whole: all of it (`0..K`), or a chunk of a product whose K is cut into
/// chunks that several threads each multiply in full (a convolution's weight gradient, K =
/// the output positions), so `a` is packed once instead of once per thread and chunk.
/// `dst` as [`matmul_packed_serial`]'s.
///
/// # Safety
/// As [`matmul_packed_serial`].
pub unsafe fn matmul_panels_serial(
    dst: *mut f32,
    ldc: usize,
    a: &PackedA,
    cols: std::ops::Range<usize>,
    pb: &[u32],
    n: usize,
    accumulate: bool,
) {
    let ((m, depth), k) = (a.shape(), cols.len());
    assert!(cols.start.is_multiple_of(2) && cols.end <= depth, "columns {cols:?} of a [{m}, {depth}] operand");
    assert!(n <= ldc || m <= 1, "destination rows overlap");
    assert!(pb.len() >= n.div_ceil(NR) * k.div_ceil(2) * NR, "panels of [{k}, {n}] too short");
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let a = (&a.pairs[..], depth.div_ceil(2) * MR, cols.start / 2 * MR);
    // SAFETY: per the contract.
    unsafe { kernel::blocks_of(a, pb, (m, k, n), 0..m.div_ceil(MR), 0..n.div_ceil(NR), dst, ldc, accumulate) };
}

/// [`matmul_panels_serial`] with `b` [cols.len(), n] packed into this thread's scratch.
///
/// # Safety
/// As [`matmul_packed_serial`].
pub unsafe fn matmul_packed_cols_serial(
    dst: *mut f32,
    ldc: usize,
    a: &PackedA,
    cols: std::ops::Range<usize>,
    b: Mat,
    accumulate: bool,
) {
    assert_eq!(b.rows(), cols.len(), "inner dimensions differ: {cols:?} x [{}, {}]", b.rows(), b.cols());
    let mut pb = pack::take(pack::b_len(&b));
    pack::pack_b_serial(b, &mut pb);
    // SAFETY: per the contract.
    unsafe { matmul_panels_serial(dst, ldc, a, cols, &pb, b.cols(), accumulate) };
    pack::give_back(pb);
}

#[cfg(test)]
mod tests;
