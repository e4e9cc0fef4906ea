//! Implicit-GEMM convolution products for AVX-512: the three products of `core::conv`
//! without a column matrix and without packing the images.
//!
//! With the batch innermost (`x[c, y, x, b]`), every entry of a column-matrix row over one
//! output position is a contiguous run of the batch: `col[(c, ky, kx), (p, b0..b0+64)]` is
//! `x[c, iy, ix, b0..b0+64]`. So a block of 64 output columns needs no copy at all: the
//! microkernel reads each reduction row straight from the image through a pointer (or skips a
//! row that falls in the padding). A 6 × 64 broadcast kernel (24 AVX-512 accumulators; `a`
//! packed once per call) computes two of a convolution layer's products:
//!
//! - `forward` `y [M, N] = a [M, K] · im2col(x)` (a convolution's forward, a transposed
//!   convolution's input gradient);
//! - `transposed` `out = col2im(aᵀ · e)` as a gather (a convolution's input gradient, a
//!   transposed convolution's forward): an input pixel of parity class (iy mod s, ix mod s)
//!   receives exactly the kernel taps of that class, so each output block is one product over
//!   (tap, row) pointer rows, written once — no scatter-add, no two threads on one pixel.
//!
//! - `weight_grad` `d [M, K] = e [M, N] · im2col(x)ᵀ`: the reduction runs over the batch, so
//!   here the column block is transposed (16 × 16 in registers) to `[batch, K]` rows and
//!   `e`'s block packed, and the same kernel sums over them.
//!
//! Callers check `simd::level()`; `core::conv` keeps the portable blocked products for CPUs
//! without AVX-512.

use super::conv::{Epilogue, Mask};
use super::cpu::MAX_KC;
use super::im2col::ConvGeometry;
use super::pool::{Pool, SyncMut, split_range};
use super::shape::holds;
use std::arch::x86_64::*;
use std::cell::RefCell;

mod kernel;
mod weight_grad;

#[cfg(test)]
pub(crate) use kernel::stream_bytes;
use kernel::{Packed, broadcast_kernel, stream_tile};
pub(crate) use kernel::{epilogue_tile, mask_tile, streams};
pub(crate) use weight_grad::{transpose16, weight_grad};

/// Rows and columns of the broadcast kernel's output block.
const MR: usize = 6;
const NR: usize = 64;
/// The same for outputs 32 wide (the weight gradient of a layer with 32 channels).
const MR2: usize = 12;
const NR2: usize = 32;

thread_local! {
    /// Per-thread scratch: the pointer rows of the block being computed.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

#[derive(Default)]
struct Scratch {
    rows: Vec<*const f32>,
    /// A streamed block's output rows, `[m, NR]`, until they are streamed out.
    tile: Vec<f32>,
    /// The weight gradient's transposed column block.
    t: Vec<f32>,
}

/// `a` (`[m, k]`, row-major) packed in blocks of [`MR`] rows, the blocks split across the pool:
/// `packed[(block · k + j) · MR + i] = a[block · MR + i, j]`, zero past `m` rows.
fn pack(pool: &Pool, m: usize, k: usize, a: &[f32], packed: &mut Vec<f32>) {
    let blocks = m.div_ceil(MR);
    packed.clear();
    packed.resize(blocks * k * MR, 0.0);
    let out = SyncMut::new(packed);
    pool.for_ranges(blocks, 1, 2, &|_, range| {
        // SAFETY: the parts' block ranges are disjoint.
        let out = unsafe { out.slice(range.start * k * MR..range.end * k * MR) };
        for (block, out) in range.clone().zip(out.chunks_exact_mut(k * MR)) {
            for i in 0..MR.min(m - block * MR) {
                let row = &a[(block * MR + i) * k..][..k];
                for (j, &v) in row.iter().enumerate() {
                    out[j * MR + i] = v;
                }
            }
        }
    });
}

/// A transposed product's `a` (`[m, k]`, `k = (channel, ky, kx)`) packed per parity class of
/// the output pixels, as [`pack`] packs a `[channels, taps · m]` matrix: class `cl` with taps
/// `classes[cl]` gets `packed[cl][(block · K + t · m + r) · MR + i] = a[r, (c, taps[t])]` for
/// channel `c = block · MR + i` and `K = taps · m`. Each `a` row's run of one channel's
/// `kk²` taps is read once, in order (the gather this replaced read `a` a row apart per value;
/// with the forward's packing it took 3.45 ms of the colour model's 126 ms step, on one
/// thread while the other waited); the channel blocks are split across the pool.
fn pack_classes(
    pool: &Pool,
    a: &[f32],
    m: usize,
    g: &ConvGeometry,
    classes: &[Vec<(usize, usize)>],
    packed: &mut [Vec<f32>],
) {
    let (kk, k, channels) = (g.kernel(), g.col_rows(), g.channels());
    let blocks = channels.div_ceil(MR);
    // Tap (ky, kx) → (its class, its index among the class's taps); the classes partition
    // the taps (ky's residue picks the row class, kx's the column class).
    let mut slot = vec![(usize::MAX, 0); kk * kk];
    for (cl, taps) in classes.iter().enumerate() {
        for (t, &(ky, kx)) in taps.iter().enumerate() {
            slot[ky * kk + kx] = (cl, t);
        }
    }
    for (p, taps) in packed.iter_mut().zip(classes) {
        p.clear();
        p.resize(blocks * taps.len() * m * MR, 0.0);
    }
    let outs: Vec<SyncMut<f32>> = packed.iter_mut().map(|p| SyncMut::new(p)).collect();
    let widths: Vec<usize> = classes.iter().map(|t| t.len() * m).collect();
    pool.for_ranges(blocks, 1, 2, &|_, range| {
        for block in range {
            for r in 0..m {
                for i in 0..MR.min(channels - block * MR) {
                    let taps = &a[r * k + (block * MR + i) * kk * kk..][..kk * kk];
                    for (&v, &(cl, t)) in taps.iter().zip(&slot) {
                        let at = (block * widths[cl] + t * m + r) * MR + i;
                        // SAFETY: `at` lies in block `block` of class `cl`, which only this
                        // part writes; in bounds by construction (checked by the slice).
                        unsafe { outs[cl].slice(at..at + 1)[0] = v };
                    }
                }
            }
        }
    });
}

/// Reduction rows per pass over the row blocks ([`super::cpu::Tuning::kc`]): rows of 64
/// floats filling a third of L1d (64 rows, 16 KB, on a 48 KB L1d) stay there while every
/// block of [`MR`] output rows uses them. The sums run in the same order whatever it is.
fn kc() -> usize {
    super::cpu::tuning().kc
}

/// `c (m rows at stride ldc, nc columns) = packed · rows` over `k` pointer rows, in passes of
/// [`kc`] rows across all row blocks, so each row is fetched once into L1. With
/// `copy = Some(seg)`, each pass's rows are first copied side by side into a chunk: rows of a
/// large feature map lie a multiple of 16 KB apart and, read in place, compete for the same
/// few L1 sets (`seg` = `nc`); and a batch narrower than [`NR`] fills the kernel's width with
/// `nc / seg` positions of `seg` = batch values each, `rows` then holding `k` pointers per
/// position (`rows[g·k + j]`; a null one a zero segment). The epilogue (`bias` per row, ReLU)
/// is applied as the last pass stores, and so is `mask` = (h at `c`'s offset, this part's row
/// sums): the ReLU backward of the layer whose output h is. With `tile` (`nc` = [`NR`], `c`'s
/// rows on lines), the passes accumulate there and each finished block is streamed to `c`
/// ([`stream_tile`]).
///
/// # Safety
/// As [`broadcast_kernel`], for every block: `packed` from [`pack`] with `m` rows and `k`
/// columns, `rows` `k` pointers (`k · nc / seg` with `copy = Some(seg)`, each non-null one
/// holding `seg` floats); with `tile`, as [`stream_tile`] for `c`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn blocked_product(
    m: usize,
    k: usize,
    packed: &[f32],
    rows: &[*const f32],
    c: *mut f32,
    ldc: usize,
    nc: usize,
    epilogue: Option<Epilogue>,
    mask: Option<(*const f32, *mut f32)>,
    copy: Option<usize>,
    tile: Option<&mut [f32]>,
) {
    // Where the passes accumulate: `c` itself, or the tile.
    let streamed = tile.is_some();
    let (w, ldw) = match tile {
        Some(t) => {
            assert!(nc == NR && t.len() >= m.div_ceil(MR) * MR * NR, "streamed block: tile");
            (t.as_mut_ptr(), NR)
        }
        None => (c, ldc),
    };
    // Only the rows copied below are read back, so the chunk is never zeroed.
    let mut chunk = [std::mem::MaybeUninit::<f32>::uninit(); MAX_KC * NR];
    let mut chunk_rows = [std::ptr::null::<f32>(); MAX_KC];
    let pass = kc();
    let mut k0 = 0;
    // At least one pass, also for k = 0 (a transposed convolution's pixel class with no taps
    // when kernel < stride): the kernel then stores zeros, and the epilogue and mask apply.
    loop {
        let kc = pass.min(k - k0);
        let last = k0 + kc == k;
        let src: *const *const f32 = if let Some(seg) = copy {
            let groups = nc / seg;
            for j in 0..kc {
                let row = chunk[j * NR..j * NR + nc].as_mut_ptr().cast::<f32>();
                let mut any = false;
                for g in 0..groups {
                    let r = rows[g * k + k0 + j];
                    let d = row.wrapping_add(g * seg);
                    if !r.is_null() {
                        // SAFETY: per the contract, a non-null row holds `seg` floats, and the
                        // chunk's row j has room for NR ≥ nc = groups · seg; no overlap.
                        unsafe { std::ptr::copy_nonoverlapping(r, d, seg) };
                        any = true;
                    } else if groups > 1 {
                        // SAFETY: as above, inside the chunk's row j.
                        unsafe { std::ptr::write_bytes(d, 0, seg) };
                    }
                }
                chunk_rows[j] = if any { row.cast_const() } else { std::ptr::null() };
            }
            chunk_rows.as_ptr()
        } else {
            rows[k0..].as_ptr()
        };
        for block in 0..m.div_ceil(MR) {
            let a = Packed(packed[(block * k + k0) * MR..].as_ptr());
            let (c, w) = (c.wrapping_add(block * MR * ldc), w.wrapping_add(block * MR * ldw));
            let mr = MR.min(m - block * MR);
            // SAFETY: per the contract.
            unsafe { broadcast_kernel::<MR, 4>(kc, a, src, w, ldw, nc, mr, k0 > 0) };
            if let Some(e) = epilogue.filter(|_| last) {
                // SAFETY: per the contract; the bias holds a value per row.
                unsafe { epilogue_tile(w, ldw, nc, mr, e.bias[block * MR..].as_ptr(), e.relu) };
            }
            if let Some((h, sums)) = mask.filter(|_| last) {
                let (h, sums) = (h.wrapping_add(block * MR * ldc), sums.wrapping_add(block * MR));
                // SAFETY: per the contract: `h` matches `c`'s layout, `sums` holds a value per row.
                unsafe { mask_tile(w, ldw, h, ldc, nc, mr, sums) };
            }
            if streamed && last {
                // SAFETY: per the contract (`nc` = NR, asserted above).
                unsafe { stream_tile(w, c, ldc, mr) };
            }
        }
        k0 += kc;
        if last {
            break;
        }
    }
}

/// `y [M, N] = a [M, K] · im2col_g(x)` with `a` row-major, overwriting `y`.
///
/// # Safety
/// AVX-512F must be available (`simd::level()` is `V4`). Every buffer's length, the
/// epilogue's bias and the mask's included, is checked at entry (a short one panics).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn forward(
    pool: &Pool,
    g: &ConvGeometry,
    a: &[f32],
    m: usize,
    x: &[f32],
    y: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
    mask: Option<Mask>,
) {
    let (k, positions) = (g.col_rows(), g.out_plane());
    let n = positions * batch;
    assert!(
        holds(a.len(), &[m, k]) && holds(x.len(), &[g.in_size(), batch]) && holds(y.len(), &[m, n]),
        "implicit forward: buffers"
    );
    // The epilogue's bias and the mask are read and written through raw pointers below:
    // every length checked here, not only where each starts.
    assert!(epilogue.as_ref().is_none_or(|e| e.bias.len() >= m), "implicit forward: bias");
    assert!(
        mask.as_ref().is_none_or(|mk| holds(mk.h.len(), &[m, n]) && holds(mk.sums.len(), &[pool.threads(), m])),
        "implicit forward: mask"
    );
    let mut packed = Vec::new();
    pack(pool, m, k, a, &mut packed);
    // Column (c, ky, kx)'s offset in x from its position's top-left tap.
    let kk = g.kernel();
    let offsets: Vec<usize> =
        (0..k).map(|j| ((j / (kk * kk) * g.height() + j / kk % kk) * g.width() + j % kk) * batch).collect();
    // Adjacent output positions have adjacent output columns, so narrow batches can share.
    let blocks = Blocks::new(positions, batch, true);
    let yp = SyncMut::new(&mut y[..m * n]);
    let stream = streams(yp.ptr(), m * n * 4, n, batch);
    // Rows of a map at least 16 KB long alias in L1 (10–15% faster copied at 32×32 and 64×64
    // at batch 128, no gain at 16×16; examples/conv_parts.rs).
    let copy = g.width() * batch >= 4096;
    pool.run(&|part| {
        SCRATCH.with_borrow_mut(|s| {
            s.rows.resize(k * blocks.per, std::ptr::null());
            if stream {
                s.tile.resize(m.div_ceil(MR) * MR * NR, 0.0);
            }
            for item in split_range(blocks.items(), pool.threads(), part, 1) {
                let (p0, b0, count, nc) = blocks.item(item);
                for (i, rows) in s.rows.chunks_exact_mut(k).take(count).enumerate() {
                    position_rows(g, &offsets, x, batch, p0 + i, b0, rows);
                }
                let c = yp.ptr().wrapping_add(p0 * batch + b0);
                let mk = mask.map(|mk| (mk.h[p0 * batch + b0..].as_ptr(), mk.sums.ptr().wrapping_add(part * m)));
                let tile = (stream && nc == NR).then_some(&mut s.tile[..]);
                let copy = if blocks.per > 1 { Some(batch) } else { copy.then_some(nc) };
                // SAFETY: AVX-512F per the contract; the rows point into x (each with `batch`
                // values from b0 when grouped), `c` at this part's own columns of y (items are
                // disjoint columns), its row sums its own; a streamed block's rows start on
                // lines (`streams`).
                unsafe { blocked_product(m, k, &packed, &s.rows[..k * count], c, n, nc, epilogue, mk, copy, tile) };
            }
            if stream {
                // SAFETY: SSE; orders this part's streaming stores before the pool's hand-back.
                unsafe { _mm_sfence() };
            }
        });
    });
}

/// How a product's columns (`positions` of `batch` values each) are cut into blocks of at
/// most [`NR`]: a batch of NR or more in chunks of NR per position; a narrower one, when
/// `shareable` (adjacent positions have adjacent output columns), `per` = ⌊NR/batch⌋
/// positions per block, each position's rows copied into its segment of the chunk.
struct Blocks {
    positions: usize,
    batch: usize,
    chunks: usize,
    per: usize,
}

impl Blocks {
    fn new(positions: usize, batch: usize, shareable: bool) -> Blocks {
        let per = if batch < NR && shareable { NR / batch } else { 1 };
        Blocks { positions, batch, chunks: batch.div_ceil(NR), per }
    }

    /// How many blocks there are.
    fn items(&self) -> usize {
        if self.per > 1 { self.positions.div_ceil(self.per) } else { self.positions * self.chunks }
    }

    /// Block `item`: (first position, first batch column, positions, columns).
    fn item(&self, item: usize) -> (usize, usize, usize, usize) {
        if self.per > 1 {
            let count = self.per.min(self.positions - item * self.per);
            (item * self.per, 0, count, count * self.batch)
        } else {
            let b0 = item % self.chunks * NR;
            (item / self.chunks, b0, 1, NR.min(self.batch - b0))
        }
    }
}

/// The `k` pointer rows of output position `p` from batch column `b0`: where each column
/// (c, ky, kx) of the column matrix reads x, null where its tap falls in the padding.
fn position_rows(
    g: &ConvGeometry,
    offsets: &[usize],
    x: &[f32],
    batch: usize,
    p: usize,
    b0: usize,
    rows: &mut [*const f32],
) {
    let (oy, ox) = (p / g.out_width(), p % g.out_width());
    let inside =
        |o: usize, extent: usize| o * g.stride() >= g.padding() && o * g.stride() + g.kernel() - g.padding() <= extent;
    if inside(oy, g.height()) && inside(ox, g.width()) {
        // Every tap inside: one base plus each column's fixed offset.
        let base = ((oy * g.stride() - g.padding()) * g.width() + ox * g.stride() - g.padding()) * batch + b0;
        for (row, &off) in rows.iter_mut().zip(offsets) {
            *row = x[base + off..].as_ptr();
        }
    } else {
        for (j, row) in rows.iter_mut().enumerate() {
            *row = g.pixel(p, j).map_or(std::ptr::null(), |off| x[off * batch + b0..].as_ptr());
        }
    }
}

/// `out [C, H, W, B] = col2im_g(aᵀ · e)` with `a` `[M, K]` row-major and `e` `[M, Ho·Wo·B]`,
/// overwriting `out`: every pixel gathers its own kernel taps.
///
/// # Safety
/// AVX-512F must be available. Every buffer's length, the epilogue's bias and the mask's
/// included, is checked at entry (a short one panics).
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn transposed(
    pool: &Pool,
    g: &ConvGeometry,
    a: &[f32],
    m: usize,
    e: &[f32],
    out: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
    mask: Option<Mask>,
) {
    let (kk, s, pad) = (g.kernel(), g.stride(), g.padding());
    let (k, channels) = (g.col_rows(), g.channels());
    let (ho, wo) = (g.out_height(), g.out_width());
    let n = ho * wo * batch;
    let plane = g.height() * g.width() * batch;
    assert!(
        holds(a.len(), &[m, k]) && holds(e.len(), &[m, n]) && holds(out.len(), &[channels, plane]),
        "implicit transposed: buffers"
    );
    // As in `forward`: the raw-pointer reads and writes below stay inside these lengths.
    assert!(epilogue.as_ref().is_none_or(|e| e.bias.len() >= channels), "implicit transposed: bias");
    assert!(
        mask.as_ref()
            .is_none_or(|mk| holds(mk.h.len(), &[channels, plane]) && holds(mk.sums.len(), &[pool.threads(), channels])),
        "implicit transposed: mask"
    );
    // The taps of each parity class: (ky, kx) with ky ≡ py + pad (mod s).
    let taps = |py: usize, px: usize| -> Vec<(usize, usize)> {
        let ky = (0..kk).filter(|ky| (ky + s - (py + pad) % s).is_multiple_of(s));
        ky.flat_map(|ky| (0..kk).filter(move |kx| (kx + s - (px + pad) % s).is_multiple_of(s)).map(move |kx| (ky, kx)))
            .collect()
    };
    let classes: Vec<Vec<(usize, usize)>> = (0..s * s).map(|c| taps(c / s, c % s)).collect();
    let mut packed = vec![Vec::new(); classes.len()];
    pack_classes(pool, a, m, g, &classes, &mut packed);
    // At stride 1 (one class) adjacent pixels share their taps and their output columns.
    let blocks = Blocks::new(g.height() * g.width(), batch, s == 1);
    let op = SyncMut::new(&mut out[..channels * plane]);
    let stream = streams(op.ptr(), channels * plane * 4, plane, batch);
    pool.run(&|part| {
        SCRATCH.with_borrow_mut(|sc| {
            if stream {
                sc.tile.resize(channels.div_ceil(MR) * MR * NR, 0.0);
            }
            for item in split_range(blocks.items(), pool.threads(), part, 1) {
                let (pixel, b0, count, nc) = blocks.item(item);
                let class = (pixel / g.width() % s) * s + pixel % g.width() % s;
                let t = &classes[class];
                let k = t.len() * m;
                sc.rows.resize(k * count, std::ptr::null());
                // (A class with no taps, kernel < stride, has no rows: k = 0.)
                for (i, rows) in sc.rows.chunks_exact_mut(k.max(1)).take(if k > 0 { count } else { 0 }).enumerate() {
                    let (iy, ix) = ((pixel + i) / g.width(), (pixel + i) % g.width());
                    for (ti, &(ky, kx)) in t.iter().enumerate() {
                        // The output position that read pixel (iy, ix) through tap (ky, kx).
                        let oy = (iy + pad).checked_sub(ky).map(|v| v / s).filter(|&o| o < ho);
                        let ox = (ix + pad).checked_sub(kx).map(|v| v / s).filter(|&o| o < wo);
                        let base = oy.zip(ox).map(|(oy, ox)| (oy * wo + ox) * batch + b0);
                        for r in 0..m {
                            rows[ti * m + r] = base.map_or(std::ptr::null(), |b| e[r * n + b..].as_ptr());
                        }
                    }
                }
                let copy = (blocks.per > 1).then_some(batch);
                let c = op.ptr().wrapping_add(pixel * batch + b0);
                let mk =
                    mask.map(|mk| (mk.h[pixel * batch + b0..].as_ptr(), mk.sums.ptr().wrapping_add(part * channels)));
                let tile = (stream && nc == NR).then_some(&mut sc.tile[..]);
                // SAFETY: AVX-512F per the contract; rows point into e; `c` at this part's own
                // pixels (items are disjoint pixels), its row sums its own; a streamed block's
                // rows start on lines (`streams`).
                unsafe {
                    let rows = &sc.rows;
                    blocked_product(channels, k, &packed[class], rows, c, plane, nc, epilogue, mk, copy, tile)
                };
            }
            if stream {
                // SAFETY: SSE; orders this part's streaming stores before the pool's hand-back.
                unsafe { _mm_sfence() };
            }
        });
    });
}
