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

/// Lanes `16·v ..` of an `nc`-wide row as a mask.
#[inline(always)]
fn lane_mask(nc: usize, v: usize) -> __mmask16 {
    let lanes = nc.saturating_sub(16 * v).min(16);
    ((1u32 << lanes) - 1) as __mmask16
}

/// Where the kernel finds `A[i, j]` (row i of its block, reduction index j).
trait Coefficients: Copy {
    /// # Safety
    /// `(j, i)` within the block the value was made for.
    unsafe fn at(self, j: usize, i: usize) -> f32;
}

/// Packed by [`pack`]: `a[j·MR + i]`.
#[derive(Clone, Copy)]
struct Packed(*const f32);

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
struct InPlace<const R: usize>([*const f32; R]);

impl<const R: usize> Coefficients for InPlace<R> {
    #[inline(always)]
    unsafe fn at(self, j: usize, i: usize) -> f32 {
        // SAFETY: per the trait.
        unsafe { *self.0[i].add(j) }
    }
}

/// `c[i, 0..nc] (+)= Σ_j A[i, j] · rows[j][0..nc]` for `i < mr ≤ R`, `nc ≤ 16·V`, skipping
/// null rows (zeros): `R × V` accumulators, [`MR`] × 4 (64 columns) or, for narrow outputs,
/// [`MR2`] × 2 (32 columns); `c`'s rows are `ldc` apart; `accumulate` adds to what `c` holds.
/// (Nothing else belongs here: an epilogue in this function made LLVM spill the 24
/// accumulators and halved its speed; see [`epilogue_tile`].)
///
/// # Safety
/// AVX-512F must be available; `a` holds the block's `MR × kc` values, `rows` `kc` pointers
/// each null or valid for `nc` reads, and `c` is valid for `mr` rows of `nc` writes at
/// stride `ldc`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn broadcast_kernel<const R: usize, const V: usize>(
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
unsafe fn stream_tile(tile: *const f32, c: *mut f32, ldc: usize, mr: usize) {
    for i in 0..mr {
        for v in 0..NR / 16 {
            // SAFETY: per the contract.
            unsafe { _mm512_stream_ps(c.add(i * ldc + 16 * v), _mm512_loadu_ps(tile.add(i * NR + 16 * v))) };
        }
    }
}

/// Outputs at least this large are streamed to memory ([`stream_tile`]): a quarter of the L3,
/// at most 8 MB ([`super::cpu::Tuning::stream_bytes`]). At batch 128 that is the 64×64
/// colour model's 32 × 32 × 32 and 64 × 16 × 16 maps (16.8 and 8.4 MB), not MNIST's
/// (3.2 MB), which the next layer still finds in cache.
pub(crate) fn stream_bytes() -> usize {
    super::cpu::tuning().stream_bytes
}

/// Whether a product writing `bytes` of output to `out`, in rows `ldc` floats apart and
/// blocks `batch` floats apart, streams its full-width blocks: large, and every block row
/// starting on a line.
pub(crate) fn streams(out: *const f32, bytes: usize, ldc: usize, batch: usize) -> bool {
    bytes >= stream_bytes() && (out as usize).is_multiple_of(64) && ldc.is_multiple_of(16) && batch.is_multiple_of(16)
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
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
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
        if super::super::simd::level() != super::super::simd::Level::V4 {
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
