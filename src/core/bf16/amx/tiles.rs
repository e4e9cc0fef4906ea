//! The tile registers as the products use them: a block of 2 × 2 f32 tiles of `c` (tmm0–3,
//! tile (i, j) in tmm(2i + j)), two tiles of `a` (tmm4–5) and two of `b` (tmm6–7), all 16
//! rows of 64 bytes. On AMX each operation is a few instructions of `asm!` (stable Rust has
//! no AMX intrinsics; the compiler never allocates tile registers, so they keep their values
//! from one `asm!` to the next); [`Engine::Emulated`] keeps the eight tiles in memory and
//! does the same loads, sums and stores in Rust, in the order of the SDM's pseudocode for
//! `tdpbf16ps`, so every product built on [`Block`] is tested on any CPU.

use super::{Engine, TILE, config, hardware};
use crate::core::bf16::from_bf16;

/// Values in a tile: 16 rows of 16 four-byte lanes.
const LANES: usize = TILE * TILE;

/// The eight tiles, emulated.
struct Registers {
    c: [[f32; LANES]; 4],
    a: [[u32; LANES]; 2],
    b: [[u32; LANES]; 2],
}

/// A thread's tile registers for the span of one part of a product: configured when made,
/// released when dropped.
pub(crate) struct Block {
    engine: Engine,
    /// The emulated tiles (`None` on AMX).
    emulated: Option<Box<Registers>>,
}

/// A tile of `b` to load: its first row and the distance between rows, in u32s (0 repeats
/// one row: a tile of zeros from a row of zeros).
pub(crate) type Rows = (*const u32, usize);

impl Block {
    /// Configures this thread's tiles ([`config`]).
    ///
    /// # Safety
    /// For [`Engine::Tiles`], [`hardware`] holds.
    pub(crate) unsafe fn begin(engine: Engine) -> Block {
        debug_assert!(engine == Engine::Emulated || hardware());
        #[cfg(target_arch = "x86_64")]
        if engine == Engine::Tiles {
            let cfg = config();
            // SAFETY: AMX present and permitted (the contract); `cfg` is a palette-1 config.
            unsafe { std::arch::asm!("ldtilecfg [{0}]", in(reg) cfg.as_ptr(), options(nostack, readonly)) };
        }
        let emulated = (engine == Engine::Emulated)
            .then(|| Box::new(Registers { c: [[0.0; LANES]; 4], a: [[0; LANES]; 2], b: [[0; LANES]; 2] }));
        Block { engine, emulated }
    }

    /// The emulated tiles.
    fn registers(&mut self) -> &mut Registers {
        self.emulated.as_deref_mut().expect("emulated tiles on the emulated engine")
    }

    /// Whether the instructions run (else the emulation).
    fn tiles(&self) -> bool {
        cfg!(target_arch = "x86_64") && self.engine == Engine::Tiles
    }

    /// Zeroes the four tiles of `c`.
    pub(crate) fn zero(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if self.tiles() {
            // SAFETY: configured by `begin`.
            unsafe {
                std::arch::asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                )
            };
            return;
        }
        self.registers().c = [[0.0; LANES]; 4];
    }

    /// Loads `c`'s tiles from `c[i]` (tile i = 2·row + column), rows `ldc` floats apart.
    ///
    /// # Safety
    /// Each `c[i]` valid for 16 rows of 16 floats at stride `ldc`.
    pub(crate) unsafe fn load(&mut self, c: [*const f32; 4], ldc: usize) {
        #[cfg(target_arch = "x86_64")]
        if self.tiles() {
            // SAFETY: configured by `begin`; the rows are readable (the contract).
            unsafe {
                std::arch::asm!(
                    "tileloadd tmm0, [{c0} + {s}*1]",
                    "tileloadd tmm1, [{c1} + {s}*1]",
                    "tileloadd tmm2, [{c2} + {s}*1]",
                    "tileloadd tmm3, [{c3} + {s}*1]",
                    c0 = in(reg) c[0], c1 = in(reg) c[1], c2 = in(reg) c[2], c3 = in(reg) c[3], s = in(reg) ldc * 4,
                    options(nostack, readonly),
                )
            };
            return;
        }
        for (tile, &at) in self.registers().c.iter_mut().zip(&c) {
            for (r, row) in tile.chunks_exact_mut(TILE).enumerate() {
                // SAFETY: per the contract.
                row.copy_from_slice(unsafe { std::slice::from_raw_parts(at.add(r * ldc), TILE) });
            }
        }
    }

    /// `c(i, j) += a(i)·b(j)` for the 2 × 2 tiles: `a(i)` the 16 rows of 16 pairs from
    /// `a + 16·i·lda` (rows `lda` u32s apart), `b(j)` the 16 rows of 16 pairs at `b[j]`.
    ///
    /// # Safety
    /// The rows readable: `a` for 32 rows of 16 pairs at stride `lda`, each `b[j]` for 16 rows
    /// of 16 at its stride.
    pub(crate) unsafe fn step(&mut self, a: *const u32, lda: usize, b: [Rows; 2]) {
        #[cfg(target_arch = "x86_64")]
        if self.tiles() {
            // SAFETY: configured by `begin`; the rows are readable (the contract).
            unsafe {
                std::arch::asm!(
                    "tileloadd tmm4, [{a0} + {sa}*1]",
                    "tileloadd tmm5, [{a1} + {sa}*1]",
                    "tileloadd tmm6, [{b0} + {sb0}*1]",
                    "tileloadd tmm7, [{b1} + {sb1}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a,
                    a1 = in(reg) a.wrapping_add(TILE * lda),
                    sa = in(reg) lda * 4,
                    b0 = in(reg) b[0].0,
                    sb0 = in(reg) b[0].1 * 4,
                    b1 = in(reg) b[1].0,
                    sb1 = in(reg) b[1].1 * 4,
                    options(nostack, readonly),
                )
            };
            return;
        }
        let e = self.registers();
        for (i, tile) in e.a.iter_mut().enumerate() {
            for (r, row) in tile.chunks_exact_mut(TILE).enumerate() {
                // SAFETY: per the contract.
                row.copy_from_slice(unsafe { std::slice::from_raw_parts(a.add((TILE * i + r) * lda), TILE) });
            }
        }
        for (tile, &(at, stride)) in e.b.iter_mut().zip(&b) {
            for (r, row) in tile.chunks_exact_mut(TILE).enumerate() {
                // SAFETY: per the contract.
                row.copy_from_slice(unsafe { std::slice::from_raw_parts(at.add(r * stride), TILE) });
            }
        }
        let half = |v: u32, hi: bool| from_bf16(if hi { (v >> 16) as u16 } else { v as u16 });
        for (t, c) in e.c.iter_mut().enumerate() {
            let (a, b) = (&e.a[t / 2], &e.b[t % 2]);
            for m in 0..TILE {
                for q in 0..TILE {
                    let x = a[m * TILE + q];
                    for n in 0..TILE {
                        let y = b[q * TILE + n];
                        let s = &mut c[m * TILE + n];
                        *s += half(x, false) * half(y, false);
                        *s += half(x, true) * half(y, true);
                    }
                }
            }
        }
    }

    /// Stores `c`'s tiles to `c[i]` where given (tile i = 2·row + column), rows `ldc` floats
    /// apart.
    ///
    /// # Safety
    /// Each given `c[i]` valid for writes of 16 rows of 16 floats at stride `ldc`, owned by the
    /// caller.
    pub(crate) unsafe fn store(&mut self, c: [Option<*mut f32>; 4], ldc: usize) {
        for (i, at) in c.into_iter().enumerate() {
            let Some(at) = at else { continue };
            #[cfg(target_arch = "x86_64")]
            if self.tiles() {
                use std::arch::asm;
                let s = ldc * 4;
                // SAFETY: configured by `begin`; the rows are the caller's (the contract).
                unsafe {
                    match i {
                        0 => asm!("tilestored [{c} + {s}*1], tmm0", c = in(reg) at, s = in(reg) s, options(nostack)),
                        1 => asm!("tilestored [{c} + {s}*1], tmm1", c = in(reg) at, s = in(reg) s, options(nostack)),
                        2 => asm!("tilestored [{c} + {s}*1], tmm2", c = in(reg) at, s = in(reg) s, options(nostack)),
                        _ => asm!("tilestored [{c} + {s}*1], tmm3", c = in(reg) at, s = in(reg) s, options(nostack)),
                    }
                }
                continue;
            }
            for (r, row) in self.registers().c[i].chunks_exact(TILE).enumerate() {
                // SAFETY: per the contract.
                unsafe { std::slice::from_raw_parts_mut(at.add(r * ldc), TILE) }.copy_from_slice(row);
            }
        }
    }
}

impl Block {
    /// Stores rows `..rows` and columns `..cols` of the 2 × 2 tiles of `c` (32 × 32 at most)
    /// through a scratch block: row `r`'s values of column tile `j` (16, fewer in the last)
    /// go to `at(r, j)`. For blocks at the edge of an output, or whose rows or column tiles
    /// do not lie at one stride.
    ///
    /// # Safety
    /// Each `at(r, j)` valid for writes of the values it receives, owned by the caller.
    pub(crate) unsafe fn store_clipped(&mut self, rows: usize, cols: usize, at: impl Fn(usize, usize) -> *mut f32) {
        const SIDE: usize = 2 * TILE;
        let mut scratch = [0.0f32; SIDE * SIDE];
        let s = scratch.as_mut_ptr();
        let corners = [s, s.wrapping_add(TILE), s.wrapping_add(TILE * SIDE), s.wrapping_add(TILE * SIDE + TILE)];
        // SAFETY: the scratch holds the four tiles.
        unsafe { self.store(corners.map(Some), SIDE) };
        for r in 0..rows.min(SIDE) {
            for j in 0..cols.min(SIDE).div_ceil(TILE) {
                let n = (cols - TILE * j).min(TILE);
                // SAFETY: per the contract.
                unsafe { std::slice::from_raw_parts_mut(at(r, j), n) }
                    .copy_from_slice(&scratch[r * SIDE + TILE * j..][..n]);
            }
        }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if self.tiles() {
            // SAFETY: AMX present (checked when the block began); returns the tiles to their
            // initial state, so the kernel need not save them.
            unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
        }
    }
}

/// `iters` rounds of four `tdpbf16ps` on tiles loaded once (each 16 × 16 outputs × 32
/// multiply-adds = 16,384 FLOP): the instruction's throughput, the ceiling of the tile
/// products. Returns an output (32·`iters`: sums of 1·1) so the work is kept.
///
/// # Safety
/// [`hardware`] holds.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn peak_loop(iters: usize) -> f32 {
    let ones = vec![0x3f80_3f80u32; LANES]; // pairs of bf16 1.0
    let mut out = [0.0f32; LANES];
    // SAFETY: AMX present (the contract); the loads read `ones`, the store writes `out`.
    unsafe {
        let _block = Block::begin(Engine::Tiles);
        std::arch::asm!(
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
    }
    out[0]
}
