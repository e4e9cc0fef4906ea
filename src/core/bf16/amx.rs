//! bf16 products on AMX tiles (`tdpbf16ps`: Intel Xeon from Sapphire Rapids on) under
//! `--precision bf16` with `VAE_SIMD=amx` (opt-in until a session on an AMX machine has run
//! its tests there; README, "bf16"): the general product here (the linear layers'), and the
//! tile registers (`Block`) that `core::conv::tiles` builds the convolutions' on.
//!
//! A tile register holds 16 rows of 64 bytes. `tdpbf16ps c, a, b` adds to the f32 tile
//! `c [16, 16]` the products of `a [16, 16 pairs]` (each row 32 bf16 values along K) and
//! `b [16 pairs, 16]` (each row the 16 columns' pairs along K, the layout `vdpbf16ps` also
//! reads), pair by pair (Intel SDM, TDPBF16PS):
//!
//! ```text
//! c[m, n] += a[m, 2q]·b[2q, n];  c[m, n] += a[m, 2q + 1]·b[2q + 1, n]   for q = 0..16
//! ```
//!
//! Layouts, with `pp` = ⌈K/2⌉ pairs rounded up to a tile's 16 (zeros past K), M and N
//! rounded up to the block's 32 (zero rows and columns):
//! - `a` [M, K] as rows of pairs, `pa[i·pp + q] = (a[i, 2q], a[i, 2q + 1])`: tile (i, t) is
//!   rows `16i..16i + 16` from pair `16t`, rows `4·pp` bytes apart;
//! - `b` [K, N] in groups of 16 columns, `pb[(g·pp + q)·16 + j] = (b[2q, 16g + j], b[2q + 1,
//!   16g + j])`: tile (g, t) is 1 KB, contiguous.
//!
//! A block is 2 × 2 tiles of `c` (32 × 32 outputs), which with its two `a` tiles and two `b`
//! tiles fills the eight tile registers; each block is computed by one thread over all of K,
//! so the result does not depend on the thread count. Stable Rust has no AMX intrinsics, so
//! the block is `asm!`; Linux hands out tile state only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` ([`hardware`]). The same block runs
//! in Rust as `Engine::Emulated` (the same addresses, the same sums in the same order), so
//! the packing and blocking are tested on every machine and the asm against it on AMX ones.

mod tiles;

pub(crate) use tiles::Block;
#[cfg(target_arch = "x86_64")]
pub(super) use tiles::peak_loop;

use super::pack;
use crate::core::matmul::Mat;
use crate::core::pool::{Pool, SyncMut, split_range};

/// Pairs in a tile row (64 bytes), and rows in a tile.
pub(crate) const TILE: usize = 16;
/// Rows and columns of a block of `c`: 2 × 2 tiles.
const BLOCK: usize = 2 * TILE;

/// Who runs the tile operations of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    /// The AMX instructions ([`hardware`] must hold).
    Tiles,
    /// The same operations in Rust: tests, on any CPU.
    Emulated,
}

/// Whether this CPU has AMX-TILE and AMX-BF16 and Linux granted this process the tile state
/// (asked once; the permission is the whole process's, so every pool thread may then use it).
pub fn hardware() -> bool {
    static HARDWARE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HARDWARE.get_or_init(|| crate::core::cpu::cpu().amx_bf16 && request_tile_state())
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` (Linux 5.16 on): whether this
/// process may use the tile registers.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_tile_state() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: integer arguments only; the call changes which register state the kernel saves
    // for this process, nothing in its memory.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_tile_state() -> bool {
    false
}

/// The tile configuration (`ldtilecfg`'s 64 bytes): palette 1, all eight tiles 16 rows of
/// 64 bytes (tmm0–3 the block of `c`, tmm4–5 `a`, tmm6–7 `b`).
pub(crate) fn config() -> [u8; 64] {
    let mut cfg = [0u8; 64];
    cfg[0] = 1; // palette: 8 tiles of up to 16 rows × 64 bytes
    for t in 0..8 {
        cfg[16 + 2 * t..18 + 2 * t].copy_from_slice(&64u16.to_le_bytes()); // bytes per row
        cfg[48 + t] = TILE as u8; // rows
    }
    cfg
}

/// Pairs per row of `a`'s packing and per group of `b`'s for depth `k`.
pub(crate) fn depth_pairs(k: usize) -> usize {
    k.div_ceil(2).div_ceil(TILE) * TILE
}

/// Groups of 16 lines (rows of `a`, columns of `b`) in a packing: M or N rounded up to 32.
fn groups(lines: usize) -> usize {
    lines.div_ceil(BLOCK) * BLOCK / TILE
}

/// `a` [M, K] and `b` [K, N] packed in the module's layouts, `pp` pairs deep, into `pa [M
/// rounded up to 32, pp]` and `pb [N rounded up to 32, pp]`, in one hand-off to the pool:
/// each part packs its share of the groups of both.
pub(crate) fn pack(pool: &Pool, (a, pa): (Mat, &mut [u32]), (b, pb): (Mat, &mut [u32]), pp: usize) {
    let (ga, gb) = (groups(a.rows()), groups(b.cols()));
    let (pa, pb) = (SyncMut::new(&mut pa[..ga * TILE * pp]), SyncMut::new(&mut pb[..gb * TILE * pp]));
    let parts = if (ga + gb) * TILE * pp < 64 * 1024 { 1 } else { pool.threads() };
    pool.run_parts(parts, &|part| {
        let (ra, rb) = (split_range(ga, parts, part, 1), split_range(gb, parts, part, 1));
        // SAFETY: each part owns its groups of both.
        unsafe {
            pack_a_groups(a, pp, ra.clone(), pa.slice(ra.start * TILE * pp..ra.end * TILE * pp));
            pack_b_groups(b, pp, rb.clone(), pb.slice(rb.start * TILE * pp..rb.end * TILE * pp));
        }
    });
}

/// Row groups `range` of `a` [M, K] as rows of `pp` pairs into `dst` (group `range.start`
/// first), on the calling thread. Rows contiguous in memory are rounded a run at a time;
/// others are packed 16 at a time in `vdpbf16ps`'s interleaved layout and transposed.
fn pack_a_groups(a: Mat, pp: usize, range: std::ops::Range<usize>, dst: &mut [u32]) {
    let (m, p) = (a.rows(), a.cols().div_ceil(2));
    if let Some(rs) = a.unit_col_stride() {
        let data = a.data();
        for (i, row) in (range.start * TILE..).zip(dst.chunks_exact_mut(pp)) {
            let filled = if i < m { p } else { 0 };
            if i < m {
                pack::run_pairs(&data[i * rs..i * rs + a.cols()], row);
            }
            row[filled..].fill(0);
        }
        return;
    }
    // All the part's groups interleaved at once ([p][16] each), then each line's pairs
    // into its row.
    let lines = interleaved(a, range.clone());
    for (g, dst) in range.zip(dst.chunks_exact_mut(TILE * pp)) {
        match lines.group(g) {
            Some(group) => {
                pack::transpose(group, p, TILE, dst, pp);
                dst.chunks_exact_mut(pp).for_each(|row| row[p..].fill(0));
            }
            None => dst.fill(0),
        }
    }
    pack::give_back(lines.pairs);
}

/// Groups `groups` of 16 lines of `m` (lines × K) in the `vdpbf16ps` interleaved layout,
/// packed in one call (each K pair of all their lines zipped at once where a K run is
/// contiguous across the lines); groups wholly past `m`'s lines are left out.
struct Interleaved {
    pairs: Vec<u32>,
    /// The first group and the number packed.
    first: usize,
    live: usize,
    /// Pairs per line.
    p: usize,
}

impl Interleaved {
    /// Group `g`'s `[p][16]` pairs, or `None` past the lines.
    fn group(&self, g: usize) -> Option<&[u32]> {
        let i = g.checked_sub(self.first).filter(|&i| i < self.live)?;
        Some(&self.pairs[i * self.p * TILE..(i + 1) * self.p * TILE])
    }
}

fn interleaved(m: Mat, groups: std::ops::Range<usize>) -> Interleaved {
    let p = m.cols().div_ceil(2);
    let live = groups.end.min(m.rows().div_ceil(TILE)).saturating_sub(groups.start);
    let mut pairs = pack::take(live * p * TILE);
    if live > 0 {
        pack::pack_groups::<TILE>(m, groups.start * TILE, live, &mut pairs[..live * p * TILE]);
    }
    Interleaved { pairs, first: groups.start, live, p }
}

/// Column groups `range` of `b` [K, N], `pp` pairs deep, into `dst` (group `range.start`
/// first), on the calling thread.
fn pack_b_groups(b: Mat, pp: usize, range: std::ops::Range<usize>, dst: &mut [u32]) {
    let p = b.rows().div_ceil(2);
    let columns = interleaved(b.t(), range.clone());
    for (g, dst) in range.zip(dst.chunks_exact_mut(pp * TILE)) {
        // A group wholly past N (N rounded up to 32) is all padding.
        let filled = columns.group(g).map_or(0, |group| {
            dst[..p * TILE].copy_from_slice(group);
            p * TILE
        });
        dst[filled..].fill(0);
    }
    pack::give_back(columns.pairs);
}

/// `dst [m, n] = a·b` (or `+=` when `accumulate`) with the operands rounded to bf16 and the
/// sums in f32, on `engine`. Shapes: `a` [m, k], `b` [k, n], `dst` row-major.
pub(crate) fn product(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool, engine: Engine) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    assert_eq!(b.rows(), k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows());
    assert!(m.checked_mul(n).is_some_and(|mn| dst.len() >= mn), "destination too small for [{m}, {n}]");
    assert!(engine == Engine::Emulated || hardware(), "AMX tiles asked for on a CPU without them");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let pp = depth_pairs(k);
    let (mp, np) = (m.div_ceil(BLOCK) * BLOCK, n.div_ceil(BLOCK) * BLOCK);
    let (mut pa_buf, mut pb_buf) = (pack::take(mp * pp), pack::take(np * pp));
    pack(pool, (a, &mut pa_buf), (b, &mut pb_buf), pp);
    let (rows, cols) = (mp / BLOCK, np / BLOCK);
    let by_rows = rows >= cols;
    let parts = if m.saturating_mul(n).saturating_mul(k) < 64 * 1024 { 1 } else { pool.threads() };
    let out = SyncMut::new(&mut dst[..m * n]);
    let (pa, pb) = (&pa_buf[..mp * pp], &pb_buf[..np * pp]);
    pool.run_parts(parts, &|part| {
        let (rr, cr) = if by_rows {
            (split_range(rows, parts, part, 1), 0..cols)
        } else {
            (0..rows, split_range(cols, parts, part, 1))
        };
        if rr.is_empty() || cr.is_empty() {
            return;
        }
        // SAFETY: `hardware` holds for `Tiles` (asserted above); each part's blocks are its own
        // rows or columns of `dst`, and the packings hold every tile a block reads.
        unsafe {
            let mut tiles = Block::begin(engine);
            for bi in rr {
                for bj in cr.clone() {
                    block(&mut tiles, (pa, pp), pb, (bi, bj), (out.ptr(), m, n), accumulate);
                }
            }
        }
    });
    pack::give_back(pa_buf);
    pack::give_back(pb_buf);
}

/// Block (`bi`, `bj`) of `c [m, n] (+)= a·b` from the packings: straight into `c` when the
/// block lies wholly inside it, else through a scratch block.
///
/// # Safety
/// `c` valid for `m` rows of `n` floats, this block owned by the caller; `pa` and `pb` hold
/// the block's tiles.
unsafe fn block(
    tiles: &mut Block,
    (pa, pp): (&[u32], usize),
    pb: &[u32],
    (bi, bj): (usize, usize),
    (c, m, n): (*mut f32, usize, usize),
    accumulate: bool,
) {
    let (r0, c0) = (bi * BLOCK, bj * BLOCK);
    assert!((r0 + BLOCK) * pp <= pa.len() && (c0 + BLOCK) * pp <= pb.len(), "AMX block outside the packings");
    let (rows, cols) = ((m - r0).min(BLOCK), (n - c0).min(BLOCK));
    let whole = rows == BLOCK && cols == BLOCK;
    let at = c.wrapping_add(r0 * n + c0);
    let corners = [at, at.wrapping_add(TILE), at.wrapping_add(TILE * n), at.wrapping_add(TILE * n + TILE)];
    if accumulate && whole {
        // SAFETY: 32 whole rows of 32 columns of `c` (the contract).
        unsafe { tiles.load(corners.map(|p| p.cast_const()), n) };
    } else if accumulate {
        let mut part = [0.0f32; BLOCK * BLOCK];
        for r in 0..rows {
            // SAFETY: inside the block's valid rows and columns.
            part[r * BLOCK..r * BLOCK + cols]
                .copy_from_slice(unsafe { std::slice::from_raw_parts(at.add(r * n), cols) });
        }
        let p = part.as_ptr();
        // SAFETY: `part` is a whole block.
        unsafe {
            tiles.load(
                [p, p.wrapping_add(TILE), p.wrapping_add(TILE * BLOCK), p.wrapping_add(TILE * BLOCK + TILE)],
                BLOCK,
            )
        };
    } else {
        tiles.zero();
    }
    let (a0, b0) = (pa[r0 * pp..].as_ptr(), pb[c0 * pp..].as_ptr());
    for t in 0..pp / TILE {
        let b = [(b0.wrapping_add(t * TILE * TILE), TILE), (b0.wrapping_add((pp + t * TILE) * TILE), TILE)];
        // SAFETY: 32 rows of 16 pairs of `a` and two tiles of `b` inside the packings (asserted).
        unsafe { tiles.step(a0.wrapping_add(t * TILE), pp, b) };
    }
    // SAFETY: the block's own rows and columns of `c` (the contract).
    unsafe {
        if whole {
            tiles.store(corners.map(Some), n);
        } else {
            tiles.store_clipped(rows, cols, |r, j| at.add(r * n + TILE * j));
        }
    }
}

/// Whether this run executes the tile instructions: on a CPU with AMX, when asked with
/// `VAE_TEST_AMX=1` (`bench/amx_check.sh` sets it). Until a session on an AMX machine has
/// run them there, a plain `cargo test` (CI's, on whichever CPU it gets) does not.
#[cfg(test)]
pub(crate) fn tiles_tested() -> bool {
    if std::env::var_os("VAE_TEST_AMX").is_none() {
        println!("VAE_TEST_AMX unset: the AMX instructions are not run (bench/amx_check.sh runs them)");
        return false;
    }
    if !hardware() {
        println!("no AMX-BF16 here (or Linux refused the tile state): the emulated tiles alone are checked");
        return false;
    }
    true
}

#[cfg(test)]
mod tests;
