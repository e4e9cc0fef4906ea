//! The paired weight gradient (`--precision bf16` on AVX512_BF16, batches of whole 16-lane
//! chunks): `d = e · im2col_g(x)ᵀ` reduced over the batch, two images at one position per
//! pair, read in place from `x` rounded to bf16 (`x16`) against `eᵀ` packed once; on AMX
//! tiles where the shapes fill them (`tiles::weight_grad`).

use super::{ConvGeometry, paired::LANES, paired::applies, tiles};
use crate::core::bf16::{self, MR};
use crate::core::matmul::Mat;
use crate::core::pool::{Pool, SyncMut, split_range};

/// Bytes of the output gradient's packed panel that a weight-gradient pass streams per
/// block of rows (a slice of L2 that each row block rereads).
const PASS_BYTES: usize = 128 << 10;

/// `d [M, C·k²] = e [M, Ho·Wo·B] · im2col_g(x)ᵀ`, overwriting `d`; the K rows split across
/// the pool. The reduction runs over the batch: a pair is two images at one position, so
/// the column matrix's rows are read in place from `x` rounded to bf16 (`x16`, pairs of
/// consecutive images) a position at a time, and `eᵀ` is packed once. Computed as `dᵀ` in
/// row blocks of (channel, tap)s against panels of `e`'s rows, then transposed into `d`.
pub(super) fn weight_grad(pool: &Pool, g: &ConvGeometry, e: &[f32], m: usize, x: &[f32], d: &mut [f32], batch: usize) {
    assert!(applies(batch), "paired weight_grad: needs vdpbf16ps and a batch of whole chunks");
    let (k, kk, kw) = (g.col_rows(), g.kernel() * g.kernel(), g.kernel());
    let (h, w, wo, positions) = (g.height(), g.width(), g.out_width(), g.out_plane());
    let (n, half) = (positions * batch, batch / 2);
    let x16 = pair_images(pool, x);
    if let Some(engine) = tiles::weight_engine(g.channels(), batch) {
        let pb = bf16::pack_b(pool, Mat::new(e, m, n).t());
        let mut dt = vec![0.0f32; k * m];
        tiles::weight_grad(pool, engine, g, &pb, m, &x16, batch, &mut dt);
        transpose_sums(&dt, 1, (m, k), d);
        bf16::give_back(x16);
        bf16::give_back(pb);
        return;
    }
    let zeros = vec![0u32; half];
    let order = Order::of(g.channels(), m);
    let r = order.rows();
    let panels = m.div_ceil(bf16::NR);
    let chunk = (PASS_BYTES / (half * bf16::NR * 4)).max(1);
    // The parts share the rows of dᵀ, or, when there are at most two blocks each (an image's
    // 1 or 3 channels: 16 or 48 rows), the positions, each part summing into a dᵀ of its own:
    // each then streams half of `eᵀ`'s panel instead of all of it (the colour model's first
    // layer, 48 rows at 64×64: 4.1–4.6 → 2.9–4.6 ms, `conv_parts`, two threads).
    let parts = pool.threads();
    let by_position = parts > 1 && k <= 2 * r * parts;
    // Split by rows, every part reads all of `eᵀ`: packed once, on the pool. Split by
    // positions (or on one thread), each part packs its own slice of it a pass at a time,
    // just before reading it: a colour model's first layer's `eᵀ` is 16 MB, and packed whole
    // it went out to memory and back (its weight gradient, two threads: 3.4–3.8 → 1.9 ms).
    let pb = (!by_position && parts > 1).then(|| bf16::pack_b(pool, Mat::new(e, m, n).t()));
    let mut dt = vec![0.0f32; if by_position { parts * k * m } else { k * m }];
    let dp = SyncMut::new(&mut dt);
    pool.run(&|part| {
        let (mine, places, own) = if by_position {
            (0..k, split_range(positions, parts, part, 1), part * k * m)
        } else {
            (split_range(k, parts, part, order.align()), 0..positions, 0)
        };
        let mut table = vec![zeros.as_ptr(); chunk * r];
        let mut slice = Vec::new();
        for p0 in places.clone().step_by(chunk) {
            let segs = chunk.min(places.end - p0);
            // The packed `eᵀ` this pass reads: (pairs, the pair of its position p0, pairs per panel).
            let (pairs, from, per_panel) = match &pb {
                Some(pb) => (&pb[..], p0 * half, n.div_ceil(2)),
                None => {
                    bf16::pack_b_pairs(Mat::new(e, m, n).t(), p0 * half..(p0 + segs) * half, &mut slice);
                    (&slice[..], 0, segs * half)
                }
            };
            for r0 in mine.clone().step_by(r) {
                // (channel, ky, kx) of the block's rows; rows past the part's last repeat it
                // (computed, never stored).
                let taps: [(usize, usize, usize); 12] = std::array::from_fn(|i| {
                    let (c, t) = order.row((r0 + i.min(r - 1)).min(mine.end - 1), g.channels(), kk);
                    (c, t / kw, t % kw)
                });
                for (s, pos) in (p0..p0 + segs).enumerate() {
                    let (oy, ox) = (pos / wo, pos % wo);
                    for (slot, &(c, ky, kx)) in table[s * r..(s + 1) * r].iter_mut().zip(&taps) {
                        let src = g.source(oy, ky, h).zip(g.source(ox, kx, w));
                        *slot = match src {
                            Some((iy, ix)) => x16[((c * h + iy) * w + ix) * half..].as_ptr(),
                            None => zeros.as_ptr(),
                        };
                    }
                }
                let (mr, accumulate) = (r.min(mine.end - r0), p0 > places.start);
                // dᵀ's row of the block's first row, and the distance between its rows.
                let (first, ldc) = match order {
                    Order::TapMajor => (taps[0].0 * kk + taps[0].1 * kw + taps[0].2, kk * m),
                    _ => (r0, m),
                };
                let z = zeros.as_ptr();
                for panel in 0..panels {
                    let nc = bf16::NR.min(m - panel * bf16::NR);
                    let b = pairs[(panel * per_panel + from) * bf16::NR..].as_ptr();
                    let c = dp.ptr().wrapping_add(own + first * m + panel * bf16::NR);
                    // SAFETY: `applies` checked the features; the table's pointers hold `half`
                    // pairs (x16 at one position, or zeros), b `segs·half` rows of the panel;
                    // the block's rows of dt (of this part's own dt when split by position)
                    // are this part's own.
                    unsafe {
                        match order {
                            Order::Narrow => {
                                bf16::kernel_segments::<12, 2>(segs, half, &table, z, b, c, ldc, mr, nc, accumulate)
                            }
                            Order::Wide => {
                                bf16::kernel_segments::<MR, 4>(segs, half, &table, z, b, c, ldc, mr, nc, accumulate)
                            }
                            Order::TapMajor => {
                                bf16::kernel_segments::<4, 4>(segs, half, &table, z, b, c, ldc, mr, nc, accumulate)
                            }
                        }
                    };
                }
            }
        }
    });
    transpose_sums(&dt, if by_position { parts } else { 1 }, (m, k), d);
    bf16::give_back(x16);
    if let Some(pb) = pb {
        bf16::give_back(pb);
    }
}

/// How the weight gradient walks the rows of `dᵀ` (the (channel, tap)s) and which kernel
/// shape it runs them in.
#[derive(Clone, Copy)]
enum Order {
    /// Channel-major (dᵀ's own order), 12 × 32 blocks: outputs of 32 rows or fewer.
    Narrow,
    /// Channel-major, 6 × 64 blocks: wider outputs over a channel count not in fours.
    Wide,
    /// Tap-major, 4 × 64 blocks of 4 channels at one tap: where the tap falls in the padding
    /// at a position, every row of the block is zero there and the kernel skips the position
    /// (14% of the products of MNIST's 14 → 7 convolution, 23% at 8 → 4). For channel counts
    /// in fours, so that no block straddles two taps.
    TapMajor,
}

impl Order {
    fn of(channels: usize, m: usize) -> Order {
        if m <= 32 {
            Order::Narrow
        } else if channels.is_multiple_of(4) {
            Order::TapMajor
        } else {
            Order::Wide
        }
    }

    /// Rows per block.
    fn rows(self) -> usize {
        match self {
            Order::Narrow => 12,
            Order::Wide => MR,
            Order::TapMajor => 4,
        }
    }

    /// The multiple the parts' row ranges start at (tap-major: whole blocks).
    fn align(self) -> usize {
        match self {
            Order::TapMajor => 4,
            _ => 12,
        }
    }

    /// (channel, tap) of row `r` in this order.
    fn row(self, r: usize, channels: usize, kk: usize) -> (usize, usize) {
        match self {
            Order::TapMajor => (r % channels, r / channels),
            _ => (r / kk, r % kk),
        }
    }
}

/// `d [m, k]` = the sum of the `sums` transposed parts `dt [sums][k, m]`.
fn transpose_sums(dt: &[f32], sums: usize, (m, k): (usize, usize), d: &mut [f32]) {
    for (row, dr) in d[..m * k].chunks_exact_mut(k).enumerate() {
        for (j, v) in dr.iter_mut().enumerate() {
            *v = (0..sums).map(|p| dt[p * k * m + j * m + row]).sum();
        }
    }
}

/// `x` rounded to bf16, read as pairs of consecutive values (with the batch innermost, two
/// images at one pixel).
fn pair_images(pool: &Pool, x: &[f32]) -> Vec<u32> {
    // As in `pair_channels`.
    let mut out = bf16::take(x.len().div_ceil(2));
    let op = SyncMut::new(&mut out[..x.len().div_ceil(2)]);
    pool.for_ranges(x.len().div_ceil(2), LANES, 1 << 14, &|_, range| {
        // SAFETY: the parts' ranges are disjoint.
        let dst = unsafe { op.slice(range.clone()) };
        bf16::run_pairs(&x[2 * range.start..(2 * range.end).min(x.len())], dst);
    });
    out
}
