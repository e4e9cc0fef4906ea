//! The broadcast kernel of the implicit products and what it stores through: the masked
//! `R × 16V` accumulator block, and the tiles applied to a block it just stored (a layer's
//! bias and ReLU, a ReLU's backward, streaming a finished block to memory).

use super::{MR, NR};
use std::arch::x86_64::*;

/// Lanes `16·v ..` of an `nc`-wide row as a mask.
#[inline(always)]
pub(super) fn lane_mask(nc: usize, v: usize) -> __mmask16 {
    let lanes = nc.saturating_sub(16 * v).min(16);
    ((1u32 << lanes) - 1) as __mmask16
}

/// Where the kernel finds `A[i, j]` (row i of its block, reduction index j).
pub(super) trait Coefficients: Copy {
    /// # Safety
    /// `(j, i)` within the block the value was made for.
    unsafe fn at(self, j: usize, i: usize) -> f32;
}

/// Packed by [`super::pack`]: `a[j·MR + i]`.
#[derive(Clone, Copy)]
pub(super) struct Packed(pub(super) *const f32);

impl Coefficients for Packed {
    #[inline(always)]
    unsafe fn at(self, j: usize, i: usize) -> f32 {
        // SAFETY: per the trait.
        unsafe { *self.0.add(j * MR + i) }
    }
}

/// Rows in place: `rows[i][j]` (a weight gradient's `e`, whose rows are contiguous along the
/// reduction, so no packing is needed).
#[derive(Clone, Copy)]
pub(super) struct InPlace<const R: usize>(pub(super) [*const f32; R]);

impl<const R: usize> Coefficients for InPlace<R> {
    #[inline(always)]
    unsafe fn at(self, j: usize, i: usize) -> f32 {
        // SAFETY: per the trait.
        unsafe { *self.0[i].add(j) }
    }
}

/// `c[i, 0..nc] (+)= Σ_j A[i, j] · rows[j][0..nc]` for `i < mr ≤ R`, `nc ≤ 16·V`, skipping
/// null rows (zeros): `R × V` accumulators, [`MR`] × 4 (64 columns) or, for narrow outputs,
/// [`super::MR2`] × 2 (32 columns); `c`'s rows are `ldc` apart; `accumulate` adds to what `c` holds.
/// (Nothing else belongs here: an epilogue in this function made LLVM spill the 24
/// accumulators and halved its speed; see [`epilogue_tile`].)
///
/// # Safety
/// AVX-512F must be available; `a` holds the block's `MR × kc` values, `rows` `kc` pointers
/// each null or valid for `nc` reads, and `c` is valid for `mr` rows of `nc` writes at
/// stride `ldc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn broadcast_kernel<const R: usize, const V: usize>(
    kc: usize,
    a: impl Coefficients,
    rows: *const *const f32,
    c: *mut f32,
    ldc: usize,
    nc: usize,
    mr: usize,
    accumulate: bool,
) {
    let masks: [__mmask16; V] = std::array::from_fn(|v| lane_mask(nc, v));
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for j in 0..kc {
        // SAFETY: per the contract; masked loads read no lane past `nc`.
        unsafe {
            let r = *rows.add(j);
            if r.is_null() {
                continue;
            }
            let b: [__m512; V] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], r.wrapping_add(16 * v)));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = _mm512_set1_ps(a.at(j, i));
                for v in 0..V {
                    row[v] = _mm512_fmadd_ps(ai, b[v], row[v]);
                }
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(mr) {
        for (v, &value) in row.iter().enumerate() {
            let p = c.wrapping_add(i * ldc + 16 * v);
            // SAFETY: per the contract; masked loads and stores touch no lane past `nc`.
            unsafe {
                let value = if accumulate { _mm512_add_ps(value, _mm512_maskz_loadu_ps(masks[v], p)) } else { value };
                _mm512_mask_storeu_ps(p, masks[v], value);
            }
        }
    }
}

/// A ReLU layer's backward on a block of its output gradient that the kernel just stored:
/// `c[i, ·] ← c[i, ·] · [h[i, ·] > 0]` (h the layer's output, its rows `ldh` apart), adding
/// each row's sum (the layer's bias gradient) to `sums[i]`.
///
/// # Safety
/// AVX-512F; `c` valid for `mr` rows of `nc` at stride `ldc`, `h` at stride `ldh`, `sums` for
/// `mr` values.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn mask_tile(
    c: *mut f32,
    ldc: usize,
    h: *const f32,
    ldh: usize,
    nc: usize,
    mr: usize,
    sums: *mut f32,
) {
    for i in 0..mr {
        let mut acc = _mm512_setzero_ps();
        for v in 0..nc.div_ceil(16) {
            let mask = lane_mask(nc, v);
            let (c, h) = (c.wrapping_add(i * ldc + 16 * v), h.wrapping_add(i * ldh + 16 * v));
            // SAFETY: per the contract; the mask stops at `nc`.
            unsafe {
                let hv = _mm512_maskz_loadu_ps(mask, h);
                let keep = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(mask, hv, _mm512_setzero_ps());
                let value = _mm512_maskz_loadu_ps(keep, c);
                _mm512_mask_storeu_ps(c, mask, value);
                acc = _mm512_add_ps(acc, value);
            }
        }
        // SAFETY: per the contract.
        unsafe { *sums.add(i) += _mm512_reduce_add_ps(acc) };
    }
}

/// `c[i, 0..nc] = max(c[i, 0..nc] + bias[i], 0)` (or without the max) for `i < mr`: a
/// layer's bias and ReLU on a block the kernel just stored, while it is in L1.
///
/// # Safety
/// AVX-512F; `bias` holds `mr` values; `c` is valid for `mr` rows of `nc` at stride `ldc`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn epilogue_tile(c: *mut f32, ldc: usize, nc: usize, mr: usize, bias: *const f32, relu: bool) {
    for i in 0..mr {
        // SAFETY: per the contract.
        let b = _mm512_set1_ps(unsafe { *bias.add(i) });
        for v in 0..nc.div_ceil(16) {
            let (mask, p) = (lane_mask(nc, v), c.wrapping_add(i * ldc + 16 * v));
            // SAFETY: per the contract; the mask stops at `nc`.
            unsafe {
                let mut value = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, p), b);
                if relu {
                    value = _mm512_max_ps(value, _mm512_setzero_ps());
                }
                _mm512_mask_storeu_ps(p, mask, value);
            }
        }
    }
}

/// `mr` rows of [`NR`] floats from `tile` (rows [`NR`] apart) to `c` (rows `ldc` apart) with
/// streaming stores, which write whole lines without first reading them (a feature map too
/// large to stay cached would otherwise be read from memory once per write, for nothing).
///
/// # Safety
/// AVX-512F; `tile` valid for `mr` rows of [`NR`] reads, `c` for `mr` rows of [`NR`] writes at
/// stride `ldc`, each row starting on a 64-byte line. The caller fences ([`_mm_sfence`])
/// before another thread reads `c`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn stream_tile(tile: *const f32, c: *mut f32, ldc: usize, mr: usize) {
    for i in 0..mr {
        for v in 0..NR / 16 {
            // SAFETY: per the contract.
            unsafe { _mm512_stream_ps(c.add(i * ldc + 16 * v), _mm512_loadu_ps(tile.add(i * NR + 16 * v))) };
        }
    }
}

/// Outputs at least this large are streamed to memory ([`stream_tile`]): a quarter of the L3,
/// at most 8 MB ([`crate::core::cpu::Tuning::stream_bytes`]). At batch 128 that is the 64×64
/// colour model's 32 × 32 × 32 and 64 × 16 × 16 maps (16.8 and 8.4 MB), not MNIST's
/// (3.2 MB), which the next layer still finds in cache.
pub(crate) fn stream_bytes() -> usize {
    crate::core::cpu::tuning().stream_bytes
}

/// Whether a product writing `bytes` of output to `out`, in rows `ldc` floats apart and
/// blocks `batch` floats apart, streams its full-width blocks: large, and every block row
/// starting on a line.
pub(crate) fn streams(out: *const f32, bytes: usize, ldc: usize, batch: usize) -> bool {
    bytes >= stream_bytes() && (out as usize).is_multiple_of(64) && ldc.is_multiple_of(16) && batch.is_multiple_of(16)
}
