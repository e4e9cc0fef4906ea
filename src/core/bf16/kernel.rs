//! The bf16 blocks: the `vdpbf16ps` kernel and a portable loop with the same rounding, and
//! the driver that splits a product's blocks across the pool.

use super::{MR, NR, from_bf16, hardware};
use crate::core::matmul::Mat;
use crate::core::pool::{Pool, SyncMut, split_range};
use std::ops::Range;

/// Products smaller than this many multiply-adds run on one thread: a hand-off costs more.
const PARALLEL_MIN_MACS: usize = 64 * 1024;

/// `dst [m, n] (+)= a·b` from packed operands: `pa` [m, k] in row blocks, `pb` [k, n] in
/// column panels (the parent module's layouts). Split across the pool in whole row blocks
/// or whole column panels, whichever gives more, so the result does not depend on the
/// number of threads.
pub(super) fn product(
    pool: &Pool,
    dst: &mut [f32],
    pa: &[u32],
    (m, k): (usize, usize),
    pb: &[u32],
    n: usize,
    accumulate: bool,
) {
    let p = k.div_ceil(2);
    let (blocks, panels) = (m.div_ceil(MR), n.div_ceil(NR));
    assert!(pa.len() >= blocks * p * MR && pb.len() >= panels * p * NR, "bf16 product: packed operands");
    let out = SyncMut::new(&mut dst[..m * n]);
    let by_rows = blocks >= panels;
    let parts = if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS { 1 } else { pool.threads() };
    let job = |part: usize| {
        let (rb, pn) = if by_rows {
            (split_range(blocks, parts, part, 1), 0..panels)
        } else {
            (0..blocks, split_range(panels, parts, part, 1))
        };
        // SAFETY: the part's blocks and panels are its own block of `dst`.
        unsafe { blocks_of((pa, p * MR, 0), pb, (m, k, n), rb, pn, out.ptr(), n, accumulate) };
    };
    pool.run_parts(parts, &job);
}

/// `dst [m, n] (+)= a·b` with each part of the pool packing what it multiplies, in one
/// hand-off: split by row blocks, a part packs its own blocks of `a` and all of `b`; split
/// by panels, its own panels of `b` and all of `a` (whichever operand is smaller is the one
/// packed twice). For products small enough that a second hand-off would cost more than
/// that repeated packing.
pub(super) fn product_fused(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let p = k.div_ceil(2);
    let (blocks, panels) = (m.div_ceil(MR), n.div_ceil(NR));
    let out = SyncMut::new(&mut dst[..m * n]);
    let parts = if m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS { 1 } else { pool.threads() };
    // Split where each part repeats the smaller packing (b's when n ≤ m), if both splits
    // give every part work.
    let by_rows = if blocks >= parts && panels >= parts { n <= m } else { blocks >= panels };
    let job = |part: usize| {
        let (rb, pn) = if by_rows {
            (split_range(blocks, parts, part, 1), 0..panels)
        } else {
            (0..blocks, split_range(panels, parts, part, 1))
        };
        if rb.is_empty() || pn.is_empty() {
            return;
        }
        let (mut pa, mut pb) = (super::pack::take(rb.len() * p * MR), super::pack::take(pn.len() * p * NR));
        super::pack::pack_a_blocks(a, rb.clone(), &mut pa);
        super::pack::pack_b_panels(b, pn.clone(), &mut pb);
        // The part's corner of dst, its blocks and panels counted from 0.
        let (m0, n0) = (rb.start * MR, pn.start * NR);
        let c = out.ptr().wrapping_add(m0 * n + n0);
        let shape = (m - m0, k, n - n0);
        // SAFETY: the part's blocks and panels are its own block of `dst`.
        unsafe { blocks_of((&pa, p * MR, 0), &pb, shape, 0..rb.len(), 0..pn.len(), c, n, accumulate) };
        super::pack::give_back(pa);
        super::pack::give_back(pb);
    };
    pool.run_parts(parts, &job);
}

/// Row blocks `rb` × column panels `pn` of `c [m, n] (+)= a·b` (packed operands, K = k), on
/// the calling thread, into `c` at row stride `ldc`. Row block `i` of `a` starts at
/// `pa[i·stride + offset]` (`stride` = ⌈k/2⌉·MR and `offset` 0 for `a` packed alone; a
/// range of pairs of a wider packing otherwise).
///
/// # Safety
/// `c` valid for writes of the blocks' rows (`m` rows of `n` floats at stride `ldc`, `n ≤
/// ldc`), and no other thread touches those blocks during the call.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn blocks_of(
    (pa, stride, offset): (&[u32], usize, usize),
    pb: &[u32],
    (m, k, n): (usize, usize, usize),
    rb: Range<usize>,
    pn: Range<usize>,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let p = k.div_ceil(2);
    assert!(rb.end <= m.div_ceil(MR) && pn.end <= n.div_ceil(NR), "bf16 blocks outside the product");
    let fits = rb.is_empty() || (rb.end - 1) * stride + offset + p * MR <= pa.len();
    assert!(fits && pb.len() >= pn.end * p * NR, "bf16 blocks: packed operands");
    let hw = hardware();
    for block in rb {
        let mr = MR.min(m - block * MR);
        for panel in pn.clone() {
            let nc = NR.min(n - panel * NR);
            let a = &pa[block * stride + offset..][..p * MR];
            let b = &pb[panel * p * NR..(panel + 1) * p * NR];
            let c = c.wrapping_add(block * MR * ldc + panel * NR);
            #[cfg(target_arch = "x86_64")]
            if hw {
                // SAFETY: AVX512_BF16 checked by `hardware`; `c` is the caller's block (mr rows
                // of nc columns at stride ldc), per the contract.
                unsafe { kernel(p, a, b, c, ldc, mr, nc, accumulate) };
                continue;
            }
            let _ = hw;
            // SAFETY: as above.
            unsafe { portable(p, a, b, c, ldc, mr, nc, accumulate) };
        }
    }
}

/// The portable block: per output, f32 sums of the pairs' exact products, pair by pair.
///
/// # Safety
/// `c` valid for `mr` rows of `nc` floats at stride `ldc`, owned by the caller.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn portable(
    p: usize,
    a: &[u32],
    b: &[u32],
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nc: usize,
    acc: bool,
) {
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
pub(super) unsafe fn kernel(
    p: usize,
    a: &[u32],
    b: &[u32],
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nc: usize,
    accumulate: bool,
) {
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

/// `iters` rounds of 16 independent `vdpbf16ps` (each 16 lanes × 2 multiply-adds = 64 FLOP)
/// on registers alone: the instruction's throughput, the kernel's ceiling. Returns a sum so
/// the work is kept.
///
/// # Safety
/// AVX-512F and AVX512_BF16 available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn peak_loop(iters: usize) -> f32 {
    use std::arch::x86_64::*;
    // SAFETY: plain bit patterns of 32 bf16 values each.
    let (a, b) = unsafe {
        (
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3f80_3f80)),
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(0x3c00_3c00)),
        )
    };
    let mut acc = [_mm512_setzero_ps(); 16];
    for _ in 0..iters {
        for s in acc.iter_mut() {
            *s = _mm512_dpbf16_ps(*s, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// Chunks of 16 lanes in a [`kernel_taps`] block: its [`NR`] columns.
pub(crate) const CHUNKS: usize = NR / 16;

/// 16 zero pairs: the right operand's row chunk where a tap falls in the padding.
#[repr(align(64))]
pub(crate) struct Zeros(pub [u32; 16]);
pub(crate) static ZEROS: Zeros = Zeros([0; 16]);

/// The [`kernel`] for `R` rows (6 = [`MR`], or 4 for the last rows of an output whose
/// count leaves 2 or 4 over) with its right operand read in place, a tap at a time, and its
/// output stored by chunk: for tap `t < taps` and chunk `v`, `bases[t·CHUNKS + v]` = `(p,
/// step)` says where pair row `t·pairs + j` finds its lanes `16·v .. 16·v + 16`: the 16 pairs
/// at `p + j·step` (a convolution's channel pairs at one pixel, `step` a channel plane apart;
/// [`ZEROS`] with step 0 where the tap falls in the padding; a tap in the padding for all
/// chunks is skipped, sparing the border positions' zero products: 14% of MNIST's 14 → 7
/// convolutions). `a` holds pair row `q`'s `R` values at `a[q·R..]`. The block's row `i`,
/// chunk `v` goes to `c + i·ldc + cols[v]` for `i < mr`, `v < chunks` (the others are
/// computed and dropped).
///
/// # Safety
/// AVX-512F and AVX512_BF16 available; `a` holds `taps·pairs·R` pairs; each `(p, step)`
/// valid for 16 reads at `p + j·step`, `j < pairs`; `c + i·ldc + cols[v]` valid for 16
/// writes for `i < mr`, `v < chunks`, owned by the caller.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bf16"))]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn kernel_taps<const R: usize>(
    (taps, pairs): (usize, usize),
    a: &[u32],
    bases: &[(*const u32, usize)],
    c: *mut f32,
    ldc: usize,
    cols: [usize; CHUNKS],
    chunks: usize,
    mr: usize,
) {
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the bf16 kernels run on x86-64 only");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        assert!(a.len() >= taps * pairs * R && bases.len() >= taps * CHUNKS, "bf16 kernel_taps: operands");
        let mut a = a.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); CHUNKS]; R];
        for t in 0..taps {
            let tap = &bases[t * CHUNKS..(t + 1) * CHUNKS];
            // Tested on the bases in memory: an array of the steps built in registers and
            // compared as one vector stalls on store forwarding (5% of the kernel).
            if tap.iter().all(|b| b.1 == 0) {
                // The tap falls in the padding for every chunk: its products are all zero.
                a = a.wrapping_add(pairs * R);
                continue;
            }
            let mut ptr: [*const u32; CHUNKS] = std::array::from_fn(|v| tap[v].0);
            let step: [usize; CHUNKS] = std::array::from_fn(|v| tap[v].1);
            for _ in 0..pairs {
                // SAFETY: each pointer valid for 16 reads per the contract.
                let bv: [__m512bh; CHUNKS] = std::array::from_fn(|v| unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(ptr[v].cast()))
                });
                for (p, s) in ptr.iter_mut().zip(&step) {
                    *p = p.wrapping_add(*s);
                }
                for (i, row) in acc.iter_mut().enumerate() {
                    // SAFETY: `a` holds taps·pairs·R pairs (checked); a bit pattern of 32 bf16.
                    let av = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(i) as i32)) };
                    for (s, &bvv) in row.iter_mut().zip(&bv) {
                        *s = _mm512_dpbf16_ps(*s, av, bvv);
                    }
                }
                a = a.wrapping_add(R);
            }
        }
        for (i, row) in acc.iter().enumerate().take(mr) {
            for (&s, &col) in row.iter().zip(&cols).take(chunks) {
                // SAFETY: per the contract.
                unsafe { _mm512_storeu_ps(c.add(i * ldc + col), s) };
            }
        }
    }
}

/// The [`kernel`] for a weight gradient, `R` rows × `V`·16 lanes (24 accumulators), with its
/// left operand read in place a segment at a time: over segments `s < segs` and pairs `q <
/// half`, `c[i, lanes] (+)= Σ a[s·R + i][q] · b[(s·half + q)·NR + lanes]`, where `a[s·R + i]`
/// points at row `i`'s `half` pairs in segment `s` (a convolution's input at one output
/// position, rows its (channel, tap)s; or zeros) and `b` at a panel of packed pairs (the
/// output gradient, transposed). A segment whose rows all point at `zero` (zeros: taps in
/// the padding) is skipped. Only `mr` rows and `nc` lanes are stored, rows `ldc` apart.
///
/// # Safety
/// AVX-512F and AVX512_BF16 available; `a` holds `segs·R` pointers each valid for `half`
/// reads, `b` `segs·half·NR` values from the pointer; `c` as [`kernel`]'s.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx512f,avx512bf16"))]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn kernel_segments<const R: usize, const V: usize>(
    segs: usize,
    half: usize,
    a: &[*const u32],
    zero: *const u32,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nc: usize,
    accumulate: bool,
) {
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the bf16 kernels run on x86-64 only");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        assert!(a.len() >= segs * R && V * 16 <= NR, "bf16 kernel_segments: operands");
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        for s in 0..segs {
            let rows: [*const u32; R] = std::array::from_fn(|i| a[s * R + i]);
            if rows == [zero; R] {
                // Every row zero (a tap in the padding): nothing to add.
                continue;
            }
            let b = b.wrapping_add(s * half * NR);
            for q in 0..half {
                // SAFETY: per the contract, b holds `half` rows of NR pairs for this segment.
                let bv: [__m512bh; V] = std::array::from_fn(|v| unsafe {
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(b.add(q * NR + 16 * v).cast()))
                });
                for (row, &r) in acc.iter_mut().zip(&rows) {
                    // SAFETY: each row pointer holds `half` pairs; a bit pattern of 32 bf16 values.
                    let av = unsafe { std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*r.add(q) as i32)) };
                    for (s, &bvv) in row.iter_mut().zip(&bv) {
                        *s = _mm512_dpbf16_ps(*s, av, bvv);
                    }
                }
            }
        }
        for (i, row) in acc.iter().enumerate().take(mr) {
            for (v, &s) in row.iter().enumerate() {
                let lanes = nc.saturating_sub(16 * v).min(16);
                if lanes == 0 {
                    break;
                }
                let mask = ((1u32 << lanes) - 1) as __mmask16;
                // SAFETY: per the contract, the masked lanes stay inside the block's row.
                unsafe {
                    let d = c.add(i * ldc + 16 * v);
                    let s = if accumulate { _mm512_add_ps(s, _mm512_maskz_loadu_ps(mask, d)) } else { s };
                    _mm512_mask_storeu_ps(d, mask, s);
                }
            }
        }
    }
}
