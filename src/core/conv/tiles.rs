//! The paired forward and transposed products (`paired`) on AMX tiles (`bf16::amx`): the
//! same sums over (tap, channel pair), with the right operand's tiles loaded straight from
//! the channel-paired activations. A tile of `b` is 16 channel pairs × 16 images at one
//! pixel: row `r` is pair `c' + r`'s 16 lanes, which lie one channel plane apart in `x2`, so
//! one strided `tileloadd` reads it (a tap in the padding reads a row of zeros 16 times).
//! The weight is packed once per product as rows of pairs, `[rows, taps·cp]`, so a tile of
//! `a` is 16 rows × 16 channel pairs of one tap. A block is 32 rows × two 16-image chunks.
//!
//! Where it runs: `VAE_SIMD=amx` on a CPU with AMX (or [`force_engine`], tests), when the
//! reduction's channel pairs fill whole tiles (a multiple of 16: 32, 64, … channels); the
//! vdpbf16ps kernel takes the rest.

use super::paired::LANES;
use crate::core::bf16::amx::{Block, Engine, TILE};
use crate::core::bf16::{self, CHUNKS};
use crate::core::pool::{Pool, SyncMut};

/// Rows of a block: two tiles.
pub(super) const ROWS: usize = 2 * TILE;

thread_local! {
    /// The engine this thread's paired products are forced onto ([`force_engine`]).
    static FORCED: std::cell::Cell<Option<Engine>> = const { std::cell::Cell::new(None) };
}

/// Runs the paired products that this thread starts on `engine` where the shapes allow
/// (`None` restores the default: the tiles with `VAE_SIMD=amx` on an AMX CPU), so the tile
/// path's packing and blocking are tested on emulated tiles on any CPU. Per thread, as
/// `conv::force_portable`.
#[cfg_attr(not(test), allow(dead_code))] // the tests force it; nothing else does yet
pub(crate) fn force_engine(engine: Option<Engine>) {
    FORCED.set(engine);
}

/// The tiles that run a paired product of `rows` output rows reducing over `channels`
/// channels (in pairs), or `None` for the `vdpbf16ps` kernel.
pub(super) fn engine(channels: usize) -> Option<Engine> {
    if !channels.div_ceil(2).is_multiple_of(TILE) {
        return None;
    }
    FORCED.get().or_else(|| bf16::amx_engaged().then_some(Engine::Tiles))
}

/// A weight packed for the tiles: row `r`'s pair `t·cp + c'` is `(w[r·rs + 2c'·cs + taps[t]],
/// w[r·rs + (2c' + 1)·cs + taps[t]])`, rows rounded up to 32 with zeros.
pub(super) struct Weight {
    pairs: Vec<u32>,
    /// Pairs per row: taps · cp.
    lda: usize,
    /// Channel pairs per tap.
    cp: usize,
}

/// Packs `w` (row-major, `(rs, cs)` its row and channel strides) for `rows` outputs over
/// `channels` channels and the taps `taps`, on the pool.
pub(super) fn pack_weight(
    pool: &Pool,
    w: &[f32],
    (rs, cs): (usize, usize),
    (rows, channels): (usize, usize),
    taps: &[usize],
) -> Weight {
    let cp = channels.div_ceil(2);
    let lda = taps.len() * cp;
    let padded = rows.div_ceil(ROWS) * ROWS;
    let mut pairs = vec![0u32; padded * lda];
    let out = SyncMut::new(&mut pairs[..rows * lda]);
    pool.for_ranges(rows, 1, 8, &|_, range| {
        // SAFETY: the parts' row ranges are disjoint.
        let dst = unsafe { out.slice(range.start * lda..range.end * lda) };
        for (r, dst) in range.zip(dst.chunks_exact_mut(lda)) {
            for (d, v) in dst.iter_mut().zip(super::weights::row_pairs(&w[r * rs..], (cs, channels), taps)) {
                *d = v;
            }
        }
    });
    Weight { pairs, lda, cp }
}

/// Rows `r0..min(r0 + 32, rows)` × chunks `cols[..count]` of `c` (rows `ldc` apart; chunk
/// `v` the 16 columns from `cols[v]`) overwritten with `Σ_(t, c') w[r, t·cp + c']·b_t,v[c']`,
/// where `bases[t·CHUNKS + v]` = (first row, step) of chunk `v`'s pairs at tap `t` (channel
/// pair `c'` at `first + c'·step`; chunks from `count` on repeat the last, read and never
/// stored).
///
/// # Safety
/// `c`'s rows and chunks are the caller's; each base holds `cp` rows of 16 pairs at its step;
/// `bases` has `taps·CHUNKS` entries.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn block(
    tiles: &mut Block,
    w: &Weight,
    (r0, rows): (usize, usize),
    bases: &[(*const u32, usize)],
    c: *mut f32,
    ldc: usize,
    cols: &[usize; CHUNKS],
    count: usize,
) {
    let taps = w.lda / w.cp.max(1);
    assert!(bases.len() >= taps * CHUNKS && (r0 + ROWS) * w.lda <= w.pairs.len(), "tile block: operands");
    assert!(LANES == TILE && (1..=CHUNKS).contains(&count), "tile block: chunks");
    let live = ROWS.min(rows - r0);
    let a = w.pairs[r0 * w.lda..].as_ptr();
    for v0 in (0..count).step_by(2) {
        tiles.zero();
        for t in 0..taps {
            let (b0, b1) = (bases[t * CHUNKS + v0], bases[t * CHUNKS + (v0 + 1).min(CHUNKS - 1)]);
            if b0.1 == 0 && b1.1 == 0 {
                // In the padding for both chunks (as `kernel_taps` skips it).
                continue;
            }
            for ct in (0..w.cp).step_by(TILE) {
                let b = [(b0.0.wrapping_add(ct * b0.1), b0.1), (b1.0.wrapping_add(ct * b1.1), b1.1)];
                // SAFETY: `a` holds 32 rows of `lda` pairs (asserted); the bases hold `cp`
                // rows at their steps (the contract).
                unsafe { tiles.step(a.wrapping_add(t * w.cp + ct), w.lda, b) };
            }
        }
        let pair = (count - v0).min(2);
        if live == ROWS {
            let at = |i: usize, j: usize| (j < pair).then(|| c.wrapping_add((r0 + TILE * i) * ldc + cols[v0 + j]));
            // SAFETY: the caller's rows and chunks.
            unsafe { tiles.store([at(0, 0), at(0, 1), at(1, 0), at(1, 1)], ldc) };
            continue;
        }
        // The last rows: clipped.
        // SAFETY: the caller's rows and chunks.
        unsafe { tiles.store_clipped(live, pair * TILE, |r, j| c.add((r0 + r) * ldc + cols[v0 + j])) };
    }
}

/// The tiles that run a paired weight gradient over `channels` input channels at `batch`
/// images, or `None` for the `vdpbf16ps` kernel: whole 32-row blocks of channels, and 16
/// pairs of images (a tile's depth) at each position.
pub(super) fn weight_engine(channels: usize, batch: usize) -> Option<Engine> {
    let fits = channels.is_multiple_of(ROWS) && batch.is_multiple_of(2 * TILE);
    if fits { engine(channels) } else { None }
}

/// `dᵀ [C·k², M]` (row `c·k² + t`) of the weight gradient `d = e · im2col_g(x)ᵀ`, overwritten,
/// on the tiles: each block is 32 channels at one tap × 32 rows of `e`, summed over every
/// position and image. A tile of `a` is 16 channels × 16 image pairs of `x16` (`x` as pairs
/// of consecutive images, channel planes `h·w·B/2` pairs apart); a tile of `b` is 16 image
/// pairs × 16 rows of `e` from `pb` (`eᵀ` packed in the bf16 module's 64-column panels).
/// The blocks split across the pool.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad(
    pool: &Pool,
    engine: Engine,
    g: &super::ConvGeometry,
    pb: &[u32],
    m: usize,
    x16: &[u32],
    batch: usize,
    dt: &mut [f32],
) {
    let (kw, kk, k) = (g.kernel(), g.kernel() * g.kernel(), g.col_rows());
    let (h, w, wo, positions) = (g.height(), g.width(), g.out_width(), g.out_plane());
    let (half, nr) = (batch / 2, bf16::NR);
    let (p, plane) = (positions * half, h * w * half);
    let (ctiles, otiles) = (g.channels() / ROWS, m.div_ceil(ROWS));
    assert!(x16.len() >= g.channels() * plane && pb.len() >= m.div_ceil(nr) * p * nr, "tile weight_grad: operands");
    let blocks = kk * ctiles * otiles;
    let out = SyncMut::new(&mut dt[..k * m]);
    let ldc = kk * m;
    pool.run(&|part| {
        // SAFETY: an engine of `Tiles` only where AMX is present (`engine`).
        let mut tiles = unsafe { Block::begin(engine) };
        for block in crate::core::pool::split_range(blocks, pool.threads(), part, 1) {
            let (t, rest) = (block / (ctiles * otiles), block % (ctiles * otiles));
            let (c0, o0) = (rest / otiles * ROWS, rest % otiles * ROWS);
            let (ky, kx) = (t / kw, t % kw);
            tiles.zero();
            for pos in 0..positions {
                let Some((iy, ix)) = g.source(pos / wo, ky, h).zip(g.source(pos % wo, kx, w)) else { continue };
                let a = x16[((c0 * h + iy) * w + ix) * half..].as_ptr();
                for j0 in (0..half).step_by(TILE) {
                    let q = pos * half + j0;
                    // Rows o and o + 16 of e lie in one panel (32-row blocks never straddle one).
                    let b = |o: usize| (pb[((o / nr) * p + q) * nr + o % nr..].as_ptr(), nr);
                    // SAFETY: 32 channel planes of x16 from c0 at this pixel and 16 pairs
                    // from j0; 16 pair rows of the panel from q (asserted sizes).
                    unsafe { tiles.step(a.wrapping_add(j0), plane, [b(o0), b(o0 + TILE)]) };
                }
            }
            let c = out.ptr().wrapping_add((c0 * kk + t) * m + o0);
            if o0 + ROWS <= m {
                let at = |i: usize, j: usize| Some(c.wrapping_add(TILE * i * ldc + TILE * j));
                // SAFETY: rows c·k² + t (c in c0..c0 + 32) and columns o0..o0 + 32 of dᵀ are
                // this block's own.
                unsafe { tiles.store([at(0, 0), at(0, 1), at(1, 0), at(1, 1)], ldc) };
                continue;
            }
            // SAFETY: as above, the block's own columns of its own rows.
            unsafe { tiles.store_clipped(ROWS, m - o0, |r, j| c.add(r * ldc + TILE * j)) };
        }
    });
}
