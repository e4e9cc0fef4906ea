//! The bf16 convolution products without a column matrix (`--precision bf16` on AVX512_BF16):
//! the forward product and the gathering transposed one read their right operand straight
//! from a copy of the activations paired along the channels.
//!
//! `vdpbf16ps` multiplies pairs of values adjacent along the reduction. Ordered (channel,
//! tap), as the column matrix is, the two values of a pair are two taps of one channel, a
//! batch apart in `x [C, H, W, B]`, so the blocked path gathers and zips every pair of the
//! column matrix (9 or 16 times per value, once per tap that reads it). Ordered (tap,
//! channel pair) instead, a pair is two channels at one pixel: with the activations copied
//! once into `x2 [⌈C/2⌉, H, W, B]` of bf16 pairs `(x[2c'], x[2c' + 1])`, the 16 lanes of a
//! pair row at one pixel are 16 consecutive images, contiguous in `x2`. So the kernel
//! (`bf16::kernel_taps`) reads each row of a block of 64 columns through four pointers into
//! `x2` (or into zeros where a tap falls in the padding), and the weights are packed once per
//! product in the matching order, in row blocks of 6 and 4 (`weights`):
//!
//! ```text
//! forward      y[o, (oy, ox, b)]  = Σ_(t, c')  (a[o, 2c'·k² + t], a[o, (2c'+1)·k² + t]) · x2[c', iy_t, ix_t, b]
//! transposed   out[c, (iy, ix, b)] = Σ_(t, o') (a[2o', c·k² + t], a[2o'+1, c·k² + t]) · e2[o', oy_t, ox_t, b]
//! ```
//!
//! The transposed product (a convolution's input gradient, a transposed convolution's
//! forward) gathers as `core::implicit::transposed` does: a pixel receives exactly the taps
//! of its parity class, so its output blocks hold pixels of one class and each is written
//! once. Both need a batch of whole 16-lane chunks ([`applies`]); others take the blocked path.
//! With `VAE_SIMD=amx` on an AMX CPU both run on tiles where their reduction fills them
//! (`tiles`: the same bases, a weight packed as rows of pairs).

use super::weights::RowBlocks;
use super::{ConvGeometry, Epilogue, Mask, tiles};
use crate::core::bf16::amx::Block;
use crate::core::bf16::{self, CHUNKS, ZEROS, zip_one, zip_two};
use crate::core::matmul::Mat;
use crate::core::pool::{Pool, SyncMut, split_range};

/// Lanes of a chunk: images at one pixel in one register.
pub(super) const LANES: usize = 16;

/// A weight packed for the `vdpbf16ps` kernel (in row blocks) or for the tiles.
enum Packed {
    Blocks(RowBlocks),
    Tiles(tiles::Weight),
}

/// Where a tap's pair rows start for one chunk and how far apart they lie: `Some(offset)`
/// into a paired tensor of planes `plane` apart, or `None` (the padding: zeros, step 0).
fn base(paired: &[u32], at: Option<usize>, plane: usize) -> (*const u32, usize) {
    match at {
        Some(at) => (paired[at..].as_ptr(), plane),
        None => (ZEROS.0.as_ptr(), 0),
    }
}

/// A layer's bias and ReLU (`epilogue`) or ReLU backward (`mask`, with `part`'s row sums) on
/// rows `r0..r0 + mr` of chunks `cols` (16 lanes each) of an output `[rows, ld]` at `c`, just
/// stored by the kernel and still in L1, so neither needs a pass of its own over the output
/// (nothing without either). The tiles take any number of rows.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn finish(
    c: *mut f32,
    (ld, rows): (usize, usize),
    (r0, mr): (usize, usize),
    cols: &[usize],
    epilogue: Option<Epilogue>,
    mask: Option<Mask>,
    part: usize,
) {
    if epilogue.is_none() && mask.is_none() {
        return;
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the paired products run on x86-64 only");
    #[cfg(target_arch = "x86_64")]
    for &col in cols {
        let at = r0 * ld + col;
        // SAFETY: the paired products run on AVX-512 (`applies`); the caller's block owns
        // these rows and chunks of the output, `h` has the output's layout (checked by the
        // caller), the bias a value per row, and `sums` a row of `rows` per part.
        unsafe {
            if let Some(e) = epilogue {
                crate::core::implicit::epilogue_tile(c.add(at), ld, LANES, mr, e.bias[r0..].as_ptr(), e.relu);
            }
            if let Some(mk) = mask {
                let (h, sums) = (mk.h[at..].as_ptr(), mk.sums.ptr().add(part * rows + r0));
                crate::core::implicit::mask_tile(c.add(at), ld, h, ld, LANES, mr, sums);
            }
        }
    }
}

/// Whether the paired products run for this batch: bf16 on `vdpbf16ps` and whole chunks.
pub(super) fn applies(batch: usize) -> bool {
    bf16::hardware() && batch.is_multiple_of(LANES)
}

/// The distance between channel planes of `plane` values in a paired tensor: `plane`, one
/// cache line more when `plane` spans an even number of lines. The kernel steps a plane per
/// pair, so with an even number of lines (powers of two in it: 32·32·128 is 8,192 lines)
/// successive planes fall on a few cache sets and evict each other; an odd count cycles
/// through every set. Measured (`conv_parts`, one thread, batch 128, alternating): the colour
/// model's 32 → 64 forward 14.4–14.7 → 13.7–13.8 ms, the others unchanged within noise.
fn plane_stride(plane: usize) -> usize {
    let line = 64 / std::mem::size_of::<u32>();
    if (plane / line).is_multiple_of(2) { plane + line } else { plane }
}

/// `v` (`[channels, plane]`) as bf16 pairs along the channels, `[⌈channels/2⌉, stride]`
/// with `stride = plane_stride(plane)`: `out[c'·stride + j] = (v[2c'·plane + j],
/// v[(2c' + 1)·plane + j])` for `j < plane`, the high half 0 past the last channel (the
/// values past `plane` in each stride are not written). One pass over `v`, split across the
/// pool.
fn pair_channels(pool: &Pool, v: &[f32], channels: usize, plane: usize) -> (Vec<u32>, usize) {
    let (pairs, stride) = (channels.div_ceil(2), plane_stride(plane));
    // Every value read is written: a spare buffer (at least this long), not a zeroed one;
    // the caller gives it back (`bf16::give_back`).
    let mut out = bf16::take(pairs * stride);
    let op = SyncMut::new(&mut out[..pairs * stride]);
    pool.for_ranges(pairs * plane, LANES, 1 << 14, &|_, range| {
        let mut i = range.start;
        while i < range.end {
            let (c2, j) = (i / plane, i % plane);
            let run = (plane - j).min(range.end - i);
            let lo = &v[2 * c2 * plane + j..][..run];
            // SAFETY: the parts' ranges are disjoint, and so are their places in `out`.
            let d = unsafe { op.slice(c2 * stride + j..c2 * stride + j + run) };
            if 2 * c2 + 1 < channels {
                zip_two(lo, &v[(2 * c2 + 1) * plane + j..][..run], d);
            } else {
                zip_one(lo, d);
            }
            i += run;
        }
    });
    (out, stride)
}

/// `y [M, Ho·Wo·B] = a [M, C·k²] · im2col_g(x)`, overwriting `y`, then the layer's
/// `epilogue` or `mask` ([`finish`]); the 64-column blocks split across the pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    pool: &Pool,
    g: &ConvGeometry,
    a: Mat,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
    mask: Option<Mask>,
) {
    assert!(applies(batch), "paired forward: needs vdpbf16ps and a batch of whole chunks");
    let (m, kk, k) = (a.rows(), g.kernel() * g.kernel(), g.kernel());
    let (h, w, wo) = (g.height(), g.width(), g.out_width());
    let n = g.out_plane() * batch;
    let taps: Vec<usize> = (0..kk).collect();
    assert!(a.is_row_major(), "paired forward: a row-major weight");
    let engine = tiles::engine(g.channels());
    let strides = (g.col_rows(), kk);
    let packed = match engine {
        Some(_) => Packed::Tiles(tiles::pack_weight(pool, a.data(), strides, (m, g.channels()), &taps)),
        None => Packed::Blocks(RowBlocks::pack(pool, a.data(), strides, (m, g.channels()), &taps)),
    };
    let (x2, plane) = pair_channels(pool, x, g.channels(), h * w * batch);
    let chunks = n / LANES;
    let blocks = chunks.div_ceil(CHUNKS);
    let yp = SyncMut::new(&mut y[..m * n]);
    pool.run(&|part| {
        // SAFETY: an engine of `Tiles` only where AMX is present (`tiles::engine`).
        let mut block_tiles = engine.map(|e| unsafe { Block::begin(e) });
        let mut bases = vec![(ZEROS.0.as_ptr(), 0); kk * CHUNKS];
        for block in split_range(blocks, pool.threads(), part, 1) {
            let (first, count) = (block * CHUNKS, CHUNKS.min(chunks - block * CHUNKS));
            for v in 0..CHUNKS {
                // Chunks past the last repeat it (read, never stored).
                let j = (first + v.min(count - 1)) * LANES;
                let (pos, b0) = (j / batch, j % batch);
                for t in 0..kk {
                    let src = g.source(pos / wo, t / k, h).zip(g.source(pos % wo, t % k, w));
                    bases[t * CHUNKS + v] = base(&x2, src.map(|(iy, ix)| (iy * w + ix) * batch + b0), plane);
                }
            }
            let cols = std::array::from_fn(|v| (first + v) * LANES);
            if let (Packed::Tiles(tw), Some(bt)) = (&packed, block_tiles.as_mut()) {
                for r0 in (0..m).step_by(tiles::ROWS) {
                    // SAFETY: as below.
                    unsafe { tiles::block(bt, tw, (r0, m), &bases, yp.ptr(), n, &cols, count) };
                    let rows = tiles::ROWS.min(m - r0);
                    finish(yp.ptr(), (n, m), (r0, rows), &cols[..count], epilogue, mask, part);
                }
                continue;
            }
            let Packed::Blocks(packed) = &packed else { unreachable!("tiles have an engine") };
            for (rb, (r0, mr)) in packed.blocks().enumerate() {
                // SAFETY: `applies` checked the features; the bases step through x2's channel
                // planes (or read ZEROS); the block's `count` chunks of rows r0.. are this
                // part's own columns of y.
                unsafe { packed.product(rb, kk, &bases, yp.ptr(), n, cols, count) };
                finish(yp.ptr(), (n, m), (r0, mr), &cols[..count], epilogue, mask, part);
            }
        }
    });
    bf16::give_back(x2);
}

/// `out = col2im_g(aᵀ · e)` (`[C, H, W, B]`) with `a` `[M, C·k²]` and `e` `[M, Ho·Wo·B]`,
/// overwriting `out`, gathered per parity class, then the layer's `epilogue` or `mask`
/// ([`finish`]); the blocks split across the pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn transposed(
    pool: &Pool,
    g: &ConvGeometry,
    a: Mat,
    e: &[f32],
    out: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
    mask: Option<Mask>,
) {
    assert!(applies(batch), "paired transposed: needs vdpbf16ps and a batch of whole chunks");
    let (m, k, s, pad) = (a.rows(), g.kernel(), g.stride(), g.padding());
    let (h, w, ho, wo, channels) = (g.height(), g.width(), g.out_height(), g.out_width(), g.channels());
    let (plane, kk) = (h * w * batch, k * k);
    assert!(a.is_row_major(), "paired transposed: a row-major weight");
    // Pixel (iy, ix) is read through tap (ky, kx) by output (oy, ox) = ((iy + pad − ky)/s, …)
    // when s divides: ky ≡ iy + pad (mod s). Class (ry, rx) = ((iy + pad) mod s, (ix + pad) mod s).
    let classes: Vec<Vec<usize>> =
        (0..s * s).map(|cl| (0..kk).filter(|&t| t / k % s == cl / s && t % k % s == cl % s).collect()).collect();
    let engine = tiles::engine(m);
    let strides = (kk, g.col_rows());
    let packed: Vec<Option<Packed>> = classes
        .iter()
        .map(|taps| {
            (!taps.is_empty()).then(|| match engine {
                Some(_) => Packed::Tiles(tiles::pack_weight(pool, a.data(), strides, (channels, m), taps)),
                None => Packed::Blocks(RowBlocks::pack(pool, a.data(), strides, (channels, m), taps)),
            })
        })
        .collect();
    let e_plane = ho * wo * batch;
    let (e2, e_stride) = pair_channels(pool, e, m, e_plane);
    // The chunks (pixel, first image) of each class in raster order, cut into blocks.
    let per = batch / LANES;
    let mut chunks: Vec<Vec<usize>> = vec![Vec::new(); s * s];
    for pixel in 0..h * w {
        let cl = ((pixel / w + pad) % s) * s + (pixel % w + pad) % s;
        chunks[cl].extend((0..per).map(|i| pixel * per + i));
    }
    let blocks: Vec<(usize, usize)> =
        (0..s * s).flat_map(|cl| (0..chunks[cl].len().div_ceil(CHUNKS)).map(move |b| (cl, b * CHUNKS))).collect();
    let op = SyncMut::new(&mut out[..channels * plane]);
    pool.run(&|part| {
        // SAFETY: an engine of `Tiles` only where AMX is present (`tiles::engine`).
        let mut block_tiles = engine.map(|e| unsafe { Block::begin(e) });
        let mut bases = Vec::new();
        for &(cl, first) in &blocks[split_range(blocks.len(), pool.threads(), part, 1)] {
            let mine = &chunks[cl][first..(first + CHUNKS).min(chunks[cl].len())];
            // (pixel, first image) of chunk v; chunks past the last repeat it (never stored).
            let at = |v: usize| (mine[v.min(mine.len() - 1)] / per, mine[v.min(mine.len() - 1)] % per * LANES);
            let cols = std::array::from_fn(|v| at(v).0 * batch + at(v).1);
            let Some(pa) = &packed[cl] else {
                // No tap reaches this class (kernel < stride): zeros.
                for c in 0..channels {
                    for &col in &cols[..mine.len()] {
                        // SAFETY: this block's own chunks of `out`.
                        unsafe { op.slice(c * plane + col..c * plane + col + LANES).fill(0.0) };
                    }
                }
                finish(op.ptr(), (plane, channels), (0, channels), &cols[..mine.len()], epilogue, mask, part);
                continue;
            };
            let taps = &classes[cl];
            bases.clear();
            bases.resize(taps.len() * CHUNKS, (ZEROS.0.as_ptr(), 0));
            for v in 0..CHUNKS {
                let (pixel, b0) = at(v);
                let (iy, ix) = (pixel / w, pixel % w);
                for (ti, &t) in taps.iter().enumerate() {
                    let oy = (iy + pad).checked_sub(t / k).map(|v| v / s).filter(|&o| o < ho);
                    let ox = (ix + pad).checked_sub(t % k).map(|v| v / s).filter(|&o| o < wo);
                    let at = oy.zip(ox).map(|(oy, ox)| (oy * wo + ox) * batch + b0);
                    bases[ti * CHUNKS + v] = base(&e2, at, e_stride);
                }
            }
            if let (Packed::Tiles(tw), Some(bt)) = (pa, block_tiles.as_mut()) {
                for r0 in (0..channels).step_by(tiles::ROWS) {
                    let count = mine.len();
                    // SAFETY: as below.
                    unsafe { tiles::block(bt, tw, (r0, channels), &bases, op.ptr(), plane, &cols, count) };
                    let rows = tiles::ROWS.min(channels - r0);
                    finish(op.ptr(), (plane, channels), (r0, rows), &cols[..count], epilogue, mask, part);
                }
                continue;
            }
            let Packed::Blocks(pa) = pa else { unreachable!("tiles have an engine") };
            for (rb, (r0, mr)) in pa.blocks().enumerate() {
                // SAFETY: as in `forward`; blocks hold disjoint chunks of pixels.
                unsafe { pa.product(rb, taps.len(), &bases, op.ptr(), plane, cols, mine.len()) };
                finish(op.ptr(), (plane, channels), (r0, mr), &cols[..mine.len()], epilogue, mask, part);
            }
        }
    });
    bf16::give_back(e2);
}
