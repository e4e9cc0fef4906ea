//! The implicit weight gradient `d [M, K] = e [M, N] · im2col(x)ᵀ`: column blocks transposed
//! in registers to `[batch, K]` rows, summed by the broadcast kernel per position (or
//! tap-major, skipping taps in the padding).

use super::kernel::{InPlace, broadcast_kernel, lane_mask};
use super::{MR, MR2, NR, NR2, SCRATCH, Scratch};
use crate::core::im2col::ConvGeometry;
use crate::core::pool::{Pool, SyncMut, split_range};
use crate::core::shape::holds;
use std::arch::x86_64::*;

/// One weight-gradient pass over all K columns for `nc` of dᵀ's columns: blocks of `R`
/// columns of the column matrix (`column(j)`: `rb` values of column j) against the `rb` rows
/// of eᵀ, into `dt` (`[K, m]`, at the pass's first column).
///
/// # Safety
/// AVX-512F; pointers as [`broadcast_kernel`]'s.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_pass<const R: usize, const V: usize>(
    k: usize,
    rb: usize,
    column: &dyn Fn(usize) -> *const f32,
    rows: &[*const f32],
    dt: *mut f32,
    m: usize,
    nc: usize,
    accumulate: bool,
) {
    let mut k0 = 0;
    while k0 < k {
        let mr = R.min(k - k0);
        let cols = InPlace::<R>(std::array::from_fn(|i| column(k0 + i.min(mr - 1))));
        // SAFETY: per the contract.
        unsafe { broadcast_kernel::<R, V>(rb, cols, rows.as_ptr(), dt.wrapping_add(k0 * m), m, nc, mr, accumulate) };
        k0 += mr;
    }
}

/// Rows of the tap-major weight-gradient blocks ([`weight_pass_taps`]): 4 × 64 and, for
/// narrow outputs, 8 × 32 (16 accumulators each).
const TAP_ROWS: usize = 4;
const TAP_ROWS2: usize = 8;

/// [`weight_pass`] over dᵀ's rows tap-major, for `channels` in multiples of `R`: each block
/// is `R` channels at one tap, so where the tap falls in the padding (`column(t)`, channel 0's
/// column (0, t), is None, and so is every channel's) the block is skipped instead of
/// multiplied by zeros (14% of the products of MNIST's 14 → 7 convolution, 23% at 8 → 4).
/// Channel c's column is channel 0's moved `c·plane` values (a channel plane of `x`); the
/// block's rows of `dt` are `taps·m` apart.
///
/// # Safety
/// As [`weight_pass`]; `channels` a multiple of `R`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_pass_taps<const R: usize, const V: usize>(
    (channels, taps, plane): (usize, usize, usize),
    rb: usize,
    column: &dyn Fn(usize) -> Option<*const f32>,
    rows: &[*const f32],
    dt: *mut f32,
    m: usize,
    nc: usize,
    accumulate: bool,
) {
    debug_assert!(channels.is_multiple_of(R), "weight_pass_taps: channels in blocks of {R}");
    for t in 0..taps {
        // None: in the padding at this position, zero for every channel.
        let Some(at) = column(t) else { continue };
        for c0 in (0..channels).step_by(R) {
            let cols = std::array::from_fn(|i| at.wrapping_add((c0 + i) * plane));
            let c = dt.wrapping_add((c0 * taps + t) * m);
            // SAFETY: per the contract.
            unsafe { broadcast_kernel::<R, V>(rb, InPlace::<R>(cols), rows.as_ptr(), c, taps * m, nc, R, accumulate) };
        }
    }
}

/// Batch values of one position per weight-gradient block (the reduction rows of a pass).
const RB: usize = 128;

/// Transposes 16 rows of 16 floats in registers: `out[j][i] = rows[i][j]`.
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(a, b) } else { _mm512_unpackhi_ps(a, b) }
    });
    // Within each group of four rows: pairs of 64-bit lanes.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let g = i / 4 * 4;
        let (a, b) = (t[g + (i % 4) / 2], t[g + 2 + (i % 4) / 2]);
        if i % 2 == 0 { _mm512_shuffle_ps::<0x44>(a, b) } else { _mm512_shuffle_ps::<0xEE>(a, b) }
    });
    // 128-bit lanes: first across groups 0/1 and 2/3, then across the halves.
    let v: [__m512; 16] = std::array::from_fn(|i| {
        let (h, j) = (i / 8, i % 8);
        let (a, b) = (u[h * 8 + j % 4], u[h * 8 + 4 + j % 4]);
        if j < 4 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) }
    });
    std::array::from_fn(|i| {
        let (a, b) = (v[i % 8], v[8 + i % 8]);
        if i < 8 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xDD>(a, b) }
    })
}

/// `t[r·stride + j] = src[j][r]` for `j < cols` (16-row blocks; rows past `cols` zero) and
/// `r < rb`, where `src[j]` points at `rb` floats or is null (zeros).
///
/// # Safety
/// AVX-512F; `t` holds `rb · stride` floats, `stride` a multiple of 16 ≥ `cols`.
#[target_feature(enable = "avx512f")]
unsafe fn transpose_rows(src: &[*const f32], rb: usize, t: &mut [f32], stride: usize) {
    for j0 in (0..stride).step_by(16) {
        for r0 in (0..rb).step_by(16) {
            let mask = lane_mask(rb - r0, 0);
            let rows: [__m512; 16] = std::array::from_fn(|i| {
                let p = src.get(j0 + i).copied().unwrap_or(std::ptr::null());
                if p.is_null() {
                    _mm512_setzero_ps()
                } else {
                    // SAFETY: a non-null row holds `rb` floats; the mask stops at rb.
                    unsafe { _mm512_maskz_loadu_ps(mask, p.wrapping_add(r0)) }
                }
            });
            let out = transpose16(rows);
            for (i, v) in out.iter().enumerate().take(rb - r0) {
                // SAFETY: row r0 + i < rb of t, 16 floats at j0 < stride.
                unsafe { _mm512_storeu_ps(t.as_mut_ptr().add((r0 + i) * stride + j0), *v) };
            }
        }
    }
}

/// `d [M, K] = e [M, N] · im2col_g(x)ᵀ`, overwriting `d`, computed as its transpose
/// `dᵀ [K, M] = im2col(x) · eᵀ`: the kernel's broadcast values are the image's own rows
/// (six columns of the column matrix, each a contiguous run of the batch, read in place),
/// and only `e`'s block of each position is transposed (`M × batch` values, not the
/// `K × batch` of the column block). Positions are split across the pool; each part sums into
/// its own `dᵀ`, and the parts are added in order as `d` is written.
///
/// # Safety
/// AVX-512F must be available.
pub(crate) unsafe fn weight_grad(
    pool: &Pool,
    g: &ConvGeometry,
    e: &[f32],
    m: usize,
    x: &[f32],
    d: &mut [f32],
    batch: usize,
) {
    let (k, positions) = (g.col_rows(), g.out_plane());
    let n = positions * batch;
    assert!(
        holds(e.len(), &[m, n]) && holds(x.len(), &[g.in_size(), batch]) && holds(d.len(), &[m, k]),
        "implicit weight_grad: buffers"
    );
    let kk = g.kernel();
    let offsets: Vec<usize> =
        (0..k).map(|j| ((j / (kk * kk) * g.height() + j / kk % kk) * g.width() + j % kk) * batch).collect();
    let threads = pool.threads();
    let partials: Vec<std::sync::Mutex<Vec<f32>>> = (0..threads).map(|_| Default::default()).collect();
    // Rows of eᵀ a multiple of 16 floats apart, plus 16, so that they do not share L1 sets.
    let stride = m.next_multiple_of(16) + 16;
    let zeros = vec![0.0f32; batch];
    pool.run(&|part| {
        let mine = split_range(positions, threads, part, 1);
        let mut dt = vec![0.0f32; k * m]; // this part's dᵀ [K, M]
        SCRATCH.with_borrow_mut(|s| {
            let Scratch { rows, t, .. } = s;
            t.resize(RB * stride, 0.0);
            let mut first = true;
            for p in mine.clone() {
                let (oy, ox) = (p / g.out_width(), p % g.out_width());
                let inside = |o: usize, extent: usize| {
                    o * g.stride() >= g.padding() && o * g.stride() + kk - g.padding() <= extent
                };
                let interior = inside(oy, g.height()) && inside(ox, g.width());
                let base = if interior {
                    ((oy * g.stride() - g.padding()) * g.width() + ox * g.stride() - g.padding()) * batch
                } else {
                    0
                };
                for b0 in (0..batch).step_by(RB) {
                    let rb = RB.min(batch - b0);
                    // eᵀ of this block: t[r·stride + i] = e[i, p·batch + b0 + r].
                    let src: Vec<*const f32> = (0..m).map(|i| e[i * n + p * batch + b0..].as_ptr()).collect();
                    // SAFETY: AVX-512F per the contract; every row holds rb floats.
                    unsafe { transpose_rows(&src, rb, t, stride) };
                    // Column j of the column matrix, in place in x (None in the padding).
                    let column = |j: usize| {
                        let off = if interior { Some(base + offsets[j]) } else { g.pixel(p, j).map(|o| o * batch) };
                        off.map(|o| x[o + b0..].as_ptr())
                    };
                    let filled = |j: usize| column(j).unwrap_or(zeros.as_ptr());
                    let width = if m <= NR2 { NR2 } else { NR };
                    let mut m0 = 0;
                    while m0 < m {
                        let nc = width.min(m - m0);
                        rows.clear();
                        rows.extend((0..rb).map(|r| t[r * stride + m0..].as_ptr()));
                        let c = dt.as_mut_ptr().wrapping_add(m0);
                        let taps = (g.channels(), kk * kk, g.height() * g.width() * batch);
                        // SAFETY: AVX-512F; columns point into x or the zeros (rb values each),
                        // rows into t; `c` into this part's own dᵀ.
                        unsafe {
                            let in_blocks = |r: usize| g.channels().is_multiple_of(r);
                            match width {
                                NR2 if in_blocks(TAP_ROWS2) => {
                                    weight_pass_taps::<TAP_ROWS2, 2>(taps, rb, &column, rows, c, m, nc, !first)
                                }
                                NR2 => weight_pass::<MR2, 2>(k, rb, &filled, rows, c, m, nc, !first),
                                _ if in_blocks(TAP_ROWS) => {
                                    weight_pass_taps::<TAP_ROWS, 4>(taps, rb, &column, rows, c, m, nc, !first)
                                }
                                _ => weight_pass::<MR, 4>(k, rb, &filled, rows, c, m, nc, !first),
                            }
                        };
                        m0 += nc;
                    }
                    first = false;
                }
            }
        });
        if mine.is_empty() {
            dt.fill(0.0);
        }
        *partials[part].lock().unwrap_or_else(|e| e.into_inner()) = dt;
    });
    let parts: Vec<Vec<f32>> =
        partials.into_iter().map(|p| p.into_inner().unwrap_or_else(|e| e.into_inner())).collect();
    // d = Σ_parts dᵀ in 16 × 16 tiles, split by rows of d across the pool (a plain double
    // loop on the calling thread, reading each dᵀ a whole row apart per value, took ~4 ms of
    // the 64×64 colour model's 134 ms step: `examples/step_times colour`); each value adds
    // the parts in order, as before.
    const TILE: usize = 16;
    let dp = SyncMut::new(&mut d[..m * k]);
    pool.for_ranges(m.div_ceil(TILE), 1, 2, &|_, blocks| {
        let rows = blocks.start * TILE..(blocks.end * TILE).min(m);
        // SAFETY: the parts' row ranges of d are disjoint.
        let d = unsafe { dp.slice(rows.start * k..rows.end * k) };
        for i0 in rows.clone().step_by(TILE) {
            for j0 in (0..k).step_by(TILE) {
                for i in i0..(i0 + TILE).min(rows.end) {
                    for j in j0..(j0 + TILE).min(k) {
                        d[(i - rows.start) * k + j] = parts.iter().map(|dt| dt[j * m + i]).sum();
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_by_sixteen_transpose() {
        if crate::core::simd::level() != crate::core::simd::Level::V4 {
            // Nothing to test without AVX-512 (core::conv then never calls this); say so.
            eprintln!("skipped: no AVX-512 on this CPU, and core::conv never calls transpose16 without it");
            return;
        }
        let m: Vec<f32> = (0..256).map(|v| v as f32).collect();
        // SAFETY: AVX-512F checked above.
        let out = unsafe {
            let rows: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(m[i * 16..].as_ptr()));
            transpose16(rows)
        };
        for (j, v) in out.iter().enumerate() {
            let mut lanes = [0.0f32; 16];
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *v) };
            let want: Vec<f32> = (0..16).map(|i| m[i * 16 + j]).collect();
            assert_eq!(lanes.to_vec(), want, "row {j}");
        }
    }
}
