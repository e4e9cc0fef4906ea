//! Matrix products in bf16 with f32 accumulation, the first kernel of issue 25's
//! `--precision bf16`: `vdpbf16ps` (AVX512_BF16: AMD Zen 4/5, Intel Cooper Lake and later)
//! where the CPU has it, a portable loop with the same rounding elsewhere.
//!
//! bf16 keeps f32's exponent and 8 of its 24 significand bits, so a product of two bf16
//! values is exact in f32; `vdpbf16ps` adds two such products per 32-bit lane into an f32
//! accumulator:
//!
//! ```text
//! c[i, j] (+)= Σ_p  bf16(a[i, 2p])·bf16(b[2p, j]) + bf16(a[i, 2p+1])·bf16(b[2p+1, j])
//! ```
//!
//! Layouts (packed once per call here; a weight's packing is what a training step would
//! keep between products): `a` [M, K] as pairs along K in blocks of [`MR`] rows,
//! `pa[(block·P + p)·MR + i] = (a[block·MR + i, 2p], a[…, 2p + 1])`; `b` [K, N] as pairs
//! along K in panels of [`NR`] columns, `pb[(panel·P + p)·NR + j] = (b[2p, panel·NR + j],
//! b[2p + 1, …])`, each pair one u32 with the even-k value in its low half (the instruction's
//! element order); P = ⌈K/2⌉, an odd K's last pair padded with 0.

use super::matmul::Mat;
use super::pool::{Pool, SyncMut, split_range};

/// Rows and columns of the kernel's output block (24 accumulators of 16 lanes).
pub const MR: usize = 6;
pub const NR: usize = 64;

/// f32 → bf16 bits, rounding to nearest, ties to even (as `vcvtne2ps2bf16`); a NaN stays a
/// (quiet) NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// bf16 bits → f32 (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to the nearest bf16 value, as f32.
pub fn round(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

thread_local! {
    /// Whether the linear layers' products that this thread starts run in bf16 ([`set_linear`]).
    static LINEAR: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs the linear layers' products that this thread starts in bf16 (`true`) or f32 (the
/// default): `vae bench --precision bf16`'s switch, per thread as `conv::force_portable` is,
/// since the path is chosen on the calling thread. The convolutions stay f32.
pub fn set_linear(on: bool) {
    LINEAR.set(on);
}

/// Whether [`set_linear`] switched this thread's linear products to bf16.
pub fn linear() -> bool {
    LINEAR.get()
}

/// Whether this CPU runs the `vdpbf16ps` path (AVX512_BF16 with AVX-512 enabled, and the
/// portable products not forced by `VAE_SIMD`).
pub fn hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::simd::level() == super::simd::Level::V4 && super::cpu::cpu().avx512_bf16
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The pair of column `j` from rows `2q` and `2q + 1` of a row-major `[k, n]` matrix (0 past
/// k), in a loop the compiler vectorises across columns.
#[inline(always)]
fn pairs_of_rows(m: &[f32], k: usize, n: usize, q: usize, cols: std::ops::Range<usize>, out: &mut [u32]) {
    let r0 = &m[2 * q * n..2 * q * n + n];
    if 2 * q + 1 < k {
        let r1 = &m[(2 * q + 1) * n..(2 * q + 2) * n];
        for ((o, &x), &y) in out.iter_mut().zip(&r0[cols.clone()]).zip(&r1[cols]) {
            *o = pair(x, y);
        }
    } else {
        for (o, &x) in out.iter_mut().zip(&r0[cols]) {
            *o = pair(x, 0.0);
        }
    }
}

/// `a` packed in row blocks of [`MR`] (see the module's layout), the blocks split across
/// the pool. A row-major `a` is read a row at a time, a transposed one (`a` = sᵀ with s
/// row-major `[k, m]`) a pair of s's rows at a time; other views element by element.
fn pack_a(pool: &Pool, a: Mat) -> Vec<u32> {
    let (m, k) = (a.rows(), a.cols());
    let (blocks, p) = (m.div_ceil(MR), k.div_ceil(2));
    let mut out = vec![0u32; blocks * p * MR];
    let op = SyncMut::new(&mut out);
    let (row_major, col_major) = (a.is_row_major(), a.t().is_row_major());
    pool.for_ranges(blocks, 1, 8, &|_, r| {
        // SAFETY: each range of blocks owns its slice of the output.
        let dst = unsafe { op.slice(r.start * p * MR..r.end * p * MR) };
        let mut tmp = [0u32; MR];
        for block in r.clone() {
            let base = (block - r.start) * p * MR;
            let rows = block * MR..m.min((block + 1) * MR);
            if col_major && !row_major {
                for q in 0..p {
                    pairs_of_rows(a.data(), k, m, q, rows.clone(), &mut tmp[..rows.len()]);
                    dst[base + q * MR..base + q * MR + rows.len()].copy_from_slice(&tmp[..rows.len()]);
                }
                continue;
            }
            for i in rows {
                let row = i % MR;
                if row_major {
                    let src = &a.data()[i * k..(i + 1) * k];
                    for (q, c) in src.chunks(2).enumerate() {
                        dst[base + q * MR + row] = pair(c[0], c.get(1).copied().unwrap_or(0.0));
                    }
                    continue;
                }
                for q in 0..p {
                    let hi = if 2 * q + 1 < k { a.at(i, 2 * q + 1) } else { 0.0 };
                    dst[base + q * MR + row] = pair(a.at(i, 2 * q), hi);
                }
            }
        }
    });
    out
}

/// `b` packed in column panels of [`NR`] (see the module's layout), the panels split across
/// the pool. A row-major `b` is read two rows at a time; other views element by element.
fn pack_b(pool: &Pool, b: Mat) -> Vec<u32> {
    let (k, n) = (b.rows(), b.cols());
    let (panels, p) = (n.div_ceil(NR), k.div_ceil(2));
    let mut out = vec![0u32; panels * p * NR];
    let op = SyncMut::new(&mut out);
    let row_major = b.is_row_major();
    pool.for_ranges(panels, 1, 2, &|_, r| {
        // SAFETY: each range of panels owns its slice of the output.
        let dst = unsafe { op.slice(r.start * p * NR..r.end * p * NR) };
        for panel in r.clone() {
            let base = (panel - r.start) * p * NR;
            let cols = panel * NR..n.min((panel + 1) * NR);
            for q in 0..p {
                let out = &mut dst[base + q * NR..base + q * NR + cols.len()];
                if row_major {
                    pairs_of_rows(b.data(), k, n, q, cols.clone(), out);
                    continue;
                }
                for (o, j) in out.iter_mut().zip(cols.clone()) {
                    let hi = if 2 * q + 1 < k { b.at(2 * q + 1, j) } else { 0.0 };
                    *o = pair(b.at(2 * q, j), hi);
                }
            }
        }
    });
    out
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
        PackedA { rows: a.rows(), depth: a.cols(), pairs: pack_a(pool, a) }
    }

    /// (M, K).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.depth)
    }
}

/// `dst = a·b` (or `dst += a·b` when `accumulate`) with the operands rounded to bf16 and the
/// sums in f32; `dst` row-major `[m, n]`. Shapes: `a` [m, k], `b` [k, n]. The work is split
/// across the pool in whole row blocks or column panels, whichever gives more.
pub fn matmul_bf16(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    assert_eq!(
        b.rows(),
        a.cols(),
        "inner dimensions differ: [{}, {}] x [{}, {}]",
        a.rows(),
        a.cols(),
        b.rows(),
        b.cols()
    );
    matmul_packed(pool, dst, &PackedA::new(pool, a), b, accumulate);
}

/// [`matmul_bf16`] with `a` already packed.
pub fn matmul_packed(pool: &Pool, dst: &mut [f32], a: &PackedA, b: Mat, accumulate: bool) {
    let ((m, k), n) = (a.shape(), b.cols());
    assert_eq!(b.rows(), k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows());
    assert!(m.checked_mul(n).is_some_and(|mn| dst.len() >= mn), "destination too small for [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    let (pa, pb, p) = (&a.pairs, pack_b(pool, b), k.div_ceil(2));
    let (blocks, panels) = (m.div_ceil(MR), n.div_ceil(NR));
    let hw = hardware();
    let out = SyncMut::new(&mut dst[..m * n]);
    let by_rows = blocks >= panels;
    pool.run(&|part| {
        let (rb, pn) = if by_rows {
            (split_range(blocks, pool.threads(), part, 1), 0..panels)
        } else {
            (0..blocks, split_range(panels, pool.threads(), part, 1))
        };
        for block in rb {
            let mr = MR.min(m - block * MR);
            for panel in pn.clone() {
                let nc = NR.min(n - panel * NR);
                let a = &pa[block * p * MR..(block + 1) * p * MR];
                let b = &pb[panel * p * NR..(panel + 1) * p * NR];
                let c = out.ptr().wrapping_add(block * MR * n + panel * NR);
                #[cfg(target_arch = "x86_64")]
                if hw {
                    // SAFETY: AVX512_BF16 checked by `hardware`; `c` is this part's own block of
                    // `dst` (mr rows of nc columns at stride n), inside it by construction.
                    unsafe { kernel(p, a, b, c, n, mr, nc, accumulate) };
                    continue;
                }
                let _ = hw;
                // SAFETY: as above: this part's own block.
                unsafe { portable(p, a, b, c, n, mr, nc, accumulate) };
            }
        }
    });
}

/// The portable block: per output, f32 sums of the pairs' exact products, pair by pair.
///
/// # Safety
/// `c` valid for `mr` rows of `nc` floats at stride `ldc`, owned by the caller.
#[allow(clippy::too_many_arguments)]
unsafe fn portable(p: usize, a: &[u32], b: &[u32], c: *mut f32, ldc: usize, mr: usize, nc: usize, acc: bool) {
    let half = |v: u32, hi: bool| from_bf16(if hi { (v >> 16) as u16 } else { v as u16 });
    for i in 0..mr {
        for j in 0..nc {
            let mut s = 0.0f32;
            for q in 0..p {
                let (x, y) = (a[q * MR + i], b[q * NR + j]);
                s += half(x, false) * half(y, false) + half(x, true) * half(y, true);
            }
            // SAFETY: per the contract.
            unsafe {
                let d = c.add(i * ldc + j);
                *d = if acc { *d + s } else { s };
            }
        }
    }
}

/// The `vdpbf16ps` block: [`MR`] × [`NR`] accumulators over the P pairs, then stored (masked
/// past `nc` columns, only `mr` rows).
///
/// # Safety
/// AVX-512F and AVX512_BF16 available; `a` holds `p·MR` pairs, `b` `p·NR`; `c` as
/// [`portable`]'s.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(p: usize, a: &[u32], b: &[u32], c: *mut f32, ldc: usize, mr: usize, nc: usize, accumulate: bool) {
    use std::arch::x86_64::*;
    assert!(a.len() >= p * MR && b.len() >= p * NR, "bf16 kernel: packed operands");
    let mut acc = [[_mm512_setzero_ps(); NR / 16]; MR];
    for q in 0..p {
        // SAFETY: q·NR + 64 ≤ p·NR, checked above.
        let bv: [__m512bh; NR / 16] = std::array::from_fn(|v| unsafe {
            std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.as_ptr().add(q * NR + 16 * v).cast()))
        });
        for (i, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_epi32(a[q * MR + i] as i32);
            // SAFETY: same size, a bit pattern of 32 bf16 values.
            let av = unsafe { std::mem::transmute::<__m512i, __m512bh>(av) };
            for (s, &bvv) in row.iter_mut().zip(&bv) {
                *s = _mm512_dpbf16_ps(*s, av, bvv);
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(mr) {
        for (v, &s) in row.iter().enumerate() {
            let start = 16 * v;
            if start >= nc {
                break;
            }
            let lanes = (nc - start).min(16);
            let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
            // SAFETY: per the contract, the masked lanes stay inside the block's row.
            unsafe {
                let d = c.add(i * ldc + start);
                let s = if accumulate { _mm512_add_ps(s, _mm512_maskz_loadu_ps(mask, d)) } else { s };
                _mm512_mask_storeu_ps(d, mask, s);
            }
        }
    }
}

#[cfg(test)]
mod tests;
