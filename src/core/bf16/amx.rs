//! bf16 products on AMX tiles (`tdpbf16ps`: Intel Xeon from Sapphire Rapids on), for the
//! linear layers' products under `--precision bf16` with `VAE_SIMD=amx` (opt-in until a
//! session on an AMX machine has run its tests there; README, "bf16").
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
//! in Rust as [`Engine::Emulated`] (the same addresses, the same sums in the same order), so
//! the packing and blocking are tested on every machine and the asm against it on AMX ones.

use super::{from_bf16, pack};
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

/// `a` [M, K] as rows of `pp` pairs (the module's layout) into `out [M rounded up to 32, pp]`,
/// on the pool. Rows contiguous in memory are rounded a run at a time; others are packed 16
/// at a time in `vdpbf16ps`'s interleaved layout and transposed.
pub(crate) fn pack_a(pool: &Pool, a: Mat, pp: usize, out: &mut [u32]) {
    let (m, p) = (a.rows(), a.cols().div_ceil(2));
    let groups = m.div_ceil(BLOCK) * BLOCK / TILE;
    let out = SyncMut::new(&mut out[..groups * TILE * pp]);
    let parts = if groups * TILE * pp < 64 * 1024 { 1 } else { pool.threads() };
    pool.run_parts(parts, &|part| {
        let range = split_range(groups, parts, part, 1);
        // SAFETY: each part owns its groups' rows.
        let dst = unsafe { out.slice(range.start * TILE * pp..range.end * TILE * pp) };
        let mut lines = pack::take(TILE * p);
        for (g, dst) in range.zip(dst.chunks_exact_mut(TILE * pp)) {
            if let Some(rs) = a.unit_col_stride() {
                let data = a.data();
                for (r, row) in dst.chunks_exact_mut(pp).enumerate() {
                    let i = g * TILE + r;
                    let filled = if i < m { p } else { 0 };
                    if i < m {
                        pack::run_pairs(&data[i * rs..i * rs + a.cols()], row);
                    }
                    row[filled..].fill(0);
                }
            } else if g * TILE >= m {
                dst.fill(0);
            } else {
                // [p][16] interleaved, then each line's pairs into its row.
                pack::pack_groups::<TILE>(a, g * TILE, 1, &mut lines[..TILE * p]);
                pack::transpose(&lines[..TILE * p], p, TILE, dst, pp);
                for row in dst.chunks_exact_mut(pp) {
                    row[p..].fill(0);
                }
            }
        }
        pack::give_back(lines);
    });
}

/// `b` [K, N] in groups of 16 columns of `pp` pairs (the module's layout) into `out [N
/// rounded up to 32, pp]`, on the pool.
pub(crate) fn pack_b(pool: &Pool, b: Mat, pp: usize, out: &mut [u32]) {
    let (n, p) = (b.cols(), b.rows().div_ceil(2));
    let groups = n.div_ceil(BLOCK) * BLOCK / TILE;
    let out = SyncMut::new(&mut out[..groups * pp * TILE]);
    let parts = if groups * pp * TILE < 64 * 1024 { 1 } else { pool.threads() };
    pool.run_parts(parts, &|part| {
        let range = split_range(groups, parts, part, 1);
        // SAFETY: each part owns its groups.
        let dst = unsafe { out.slice(range.start * pp * TILE..range.end * pp * TILE) };
        for (g, dst) in range.zip(dst.chunks_exact_mut(pp * TILE)) {
            // A group wholly past N (N rounded up to 32) is all padding.
            let filled = if g * TILE < n { p * TILE } else { 0 };
            if filled > 0 {
                pack::pack_groups::<TILE>(b.t(), g * TILE, 1, &mut dst[..filled]);
            }
            dst[filled..].fill(0);
        }
    });
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
    pack_a(pool, a, pp, &mut pa_buf);
    pack_b(pool, b, pp, &mut pb_buf);
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
        let mut scratch = [0.0f32; BLOCK * BLOCK];
        // SAFETY: `hardware` holds for `Tiles` (asserted above); each part's blocks are its own
        // rows or columns of `dst`, and the packings hold every tile a block reads.
        unsafe {
            begin(engine);
            for bi in rr {
                for bj in cr.clone() {
                    block(engine, (pa, pp), pb, (bi, bj), (out.ptr(), m, n), accumulate, &mut scratch);
                }
            }
            end(engine);
        }
    });
    pack::give_back(pa_buf);
    pack::give_back(pb_buf);
}

/// Block (`bi`, `bj`) of `c [m, n] (+)= a·b` from the packings: straight into `c` when the
/// block lies wholly inside it, else through `scratch` (32 × 32).
///
/// # Safety
/// `c` valid for `m` rows of `n` floats, this block owned by the caller; `pa` and `pb` hold
/// the block's tiles; for [`Engine::Tiles`], [`begin`] ran on this thread.
unsafe fn block(
    engine: Engine,
    (pa, pp): (&[u32], usize),
    pb: &[u32],
    (bi, bj): (usize, usize),
    (c, m, n): (*mut f32, usize, usize),
    accumulate: bool,
    scratch: &mut [f32; BLOCK * BLOCK],
) {
    let (r0, c0) = (bi * BLOCK, bj * BLOCK);
    assert!((r0 + BLOCK) * pp <= pa.len() && (c0 + BLOCK) * pp <= pb.len(), "AMX block outside the packings");
    let (rows, cols) = ((m - r0).min(BLOCK), (n - c0).min(BLOCK));
    let (a0, b0) = (pa[r0 * pp..].as_ptr(), pb[c0 * pp..].as_ptr());
    let at = c.wrapping_add(r0 * n + c0);
    if rows == BLOCK && cols == BLOCK {
        // SAFETY: the block is 32 whole rows of 32 columns of `c`, per the contract.
        unsafe { tiles(engine, a0, pp, b0, at, n, accumulate) };
        return;
    }
    for r in 0..rows {
        for j in 0..cols {
            // SAFETY: inside the block's valid rows and columns.
            scratch[r * BLOCK + j] = if accumulate { unsafe { *at.add(r * n + j) } } else { 0.0 };
        }
    }
    // SAFETY: the scratch is a whole 32 × 32 block.
    unsafe { tiles(engine, a0, pp, b0, scratch.as_mut_ptr(), BLOCK, true) };
    for r in 0..rows {
        for j in 0..cols {
            // SAFETY: as above.
            unsafe { *at.add(r * n + j) = scratch[r * BLOCK + j] };
        }
    }
}

/// Loads the tile configuration on this thread.
///
/// # Safety
/// For [`Engine::Tiles`], [`hardware`] holds.
unsafe fn begin(engine: Engine) {
    #[cfg(target_arch = "x86_64")]
    if engine == Engine::Tiles {
        let cfg = config();
        // SAFETY: AMX present and permitted (the contract); `cfg` is a valid palette-1 config.
        unsafe { std::arch::asm!("ldtilecfg [{0}]", in(reg) cfg.as_ptr(), options(nostack, readonly)) };
    }
    let _ = engine;
}

/// Returns the tile registers to their initial state (so the kernel need not save them).
///
/// # Safety
/// As [`begin`].
unsafe fn end(engine: Engine) {
    #[cfg(target_arch = "x86_64")]
    if engine == Engine::Tiles {
        // SAFETY: AMX present (the contract).
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
    let _ = engine;
}

/// The 2 × 2 tiles of `c` at `c` (rows `ldc` floats apart) loaded (`load`) or zeroed, the
/// products of `kt = pp / 16` tile pairs added (`a` rows from `a0`, `4·pp` bytes apart; `b`
/// tiles from `b0`, contiguous), and stored back.
///
/// # Safety
/// `c` valid for 32 rows of 32 floats at stride `ldc`; `a0` for 32 rows of `pp` pairs, `b0`
/// for two groups of `pp·16` pairs; `pp` a positive multiple of 16; for [`Engine::Tiles`],
/// [`begin`] ran on this thread.
unsafe fn tiles(engine: Engine, a0: *const u32, pp: usize, b0: *const u32, c: *mut f32, ldc: usize, load: bool) {
    match engine {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: per the contract.
        Engine::Tiles => unsafe { tiles_amx(a0, pp, b0, c, ldc, load) },
        // SAFETY: per the contract.
        _ => unsafe { tiles_emulated(a0, pp, b0, c, ldc, load) },
    }
}

/// [`tiles`] in Rust: per output, the pairs' exact products added one at a time in f32
/// (low half, then high), pair by pair along K, as the SDM's pseudocode does.
///
/// # Safety
/// As [`tiles`].
unsafe fn tiles_emulated(a0: *const u32, pp: usize, b0: *const u32, c: *mut f32, ldc: usize, load: bool) {
    let half = |v: u32, hi: bool| from_bf16(if hi { (v >> 16) as u16 } else { v as u16 });
    for ti in 0..2 {
        for tj in 0..2 {
            for r in 0..TILE {
                for col in 0..TILE {
                    // SAFETY: inside the block, per the contract.
                    unsafe {
                        let d = c.add((ti * TILE + r) * ldc + tj * TILE + col);
                        let mut s = if load { *d } else { 0.0 };
                        for q in 0..pp {
                            let x = *a0.add((ti * TILE + r) * pp + q);
                            let y = *b0.add((tj * pp + q) * TILE + col);
                            s += half(x, false) * half(y, false);
                            s += half(x, true) * half(y, true);
                        }
                        *d = s;
                    }
                }
            }
        }
    }
}

/// [`tiles`] on the tile registers: tmm0–3 the block of `c`, tmm4–5 `a`'s tiles, tmm6–7
/// `b`'s, four `tdpbf16ps` per 16 pairs of K.
///
/// # Safety
/// As [`tiles`], with AMX present and configured on this thread.
#[cfg(target_arch = "x86_64")]
unsafe fn tiles_amx(a0: *const u32, pp: usize, b0: *const u32, c: *mut f32, ldc: usize, load: bool) {
    use std::arch::asm;
    let (sc, sa, sb) = (ldc * 4, pp * 4, TILE * 4);
    let (c01, c10) = (c.wrapping_add(TILE), c.wrapping_add(TILE * ldc));
    let c11 = c10.wrapping_add(TILE);
    // SAFETY (all four blocks): AMX configured (the contract); every address is inside the
    // block of `c` or the packings, per the contract.
    unsafe {
        if load {
            asm!(
                "tileloadd tmm0, [{c00} + {sc}*1]",
                "tileloadd tmm1, [{c01} + {sc}*1]",
                "tileloadd tmm2, [{c10} + {sc}*1]",
                "tileloadd tmm3, [{c11} + {sc}*1]",
                c00 = in(reg) c, c01 = in(reg) c01, c10 = in(reg) c10, c11 = in(reg) c11, sc = in(reg) sc,
                options(nostack, readonly),
            );
        } else {
            asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        }
        asm!(
            "2:",
            "tileloadd tmm4, [{a0} + {sa}*1]",
            "tileloadd tmm5, [{a1} + {sa}*1]",
            "tileloadd tmm6, [{b0} + {sb}*1]",
            "tileloadd tmm7, [{b1} + {sb}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {kt}",
            "jnz 2b",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a0.wrapping_add(TILE * pp) => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b0.wrapping_add(pp * TILE) => _,
            kt = inout(reg) pp / TILE => _,
            sa = in(reg) sa,
            sb = in(reg) sb,
            options(nostack, readonly),
        );
        asm!(
            "tilestored [{c00} + {sc}*1], tmm0",
            "tilestored [{c01} + {sc}*1], tmm1",
            "tilestored [{c10} + {sc}*1], tmm2",
            "tilestored [{c11} + {sc}*1], tmm3",
            c00 = in(reg) c, c01 = in(reg) c01, c10 = in(reg) c10, c11 = in(reg) c11, sc = in(reg) sc,
            options(nostack),
        );
    }
}

/// `iters` rounds of four `tdpbf16ps` on tiles already loaded (each 16 × 16 outputs × 32
/// multiply-adds = 16,384 FLOP): the instruction's throughput, the ceiling of [`product`].
/// Returns a value of the result so the work is kept.
///
/// # Safety
/// [`hardware`] holds.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn peak_loop(iters: usize) -> f32 {
    use std::arch::asm;
    let ones = vec![0x3f80_3f80u32; TILE * TILE]; // pairs of bf16 1.0
    let mut out = [0.0f32; TILE * TILE];
    // SAFETY: AMX present (the contract); the loads read `ones`, the store writes `out`.
    unsafe {
        begin(Engine::Tiles);
        asm!(
            "tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3",
            "tileloadd tmm4, [{p} + {s}*1]",
            "tileloadd tmm5, [{p} + {s}*1]",
            "tileloadd tmm6, [{p} + {s}*1]",
            "tileloadd tmm7, [{p} + {s}*1]",
            "2:",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "dec {n}",
            "jnz 2b",
            "tilestored [{o} + {s}*1], tmm0",
            p = in(reg) ones.as_ptr(), o = in(reg) out.as_mut_ptr(), s = in(reg) TILE * 4,
            n = inout(reg) iters.max(1) => _,
            options(nostack),
        );
        end(Engine::Tiles);
    }
    out[0]
}

#[cfg(test)]
mod tests;
