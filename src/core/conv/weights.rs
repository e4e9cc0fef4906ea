//! The paired products' weights (`paired`): a convolution weight as bf16 channel pairs per
//! tap, packed in row blocks of 6 ([`MR`]) and 4 for `bf16::kernel_taps`.
//!
//! A block of 6 rows computes 6 rows whatever the output holds, so 32 output channels in
//! blocks of 6 computed 36 (12.5% of the product wasted, on the MNIST and colour models'
//! transposed products into 32 channels) and 64 computed 66. Ending on one or two blocks of 4
//! computes exactly 32 (6·4 + 4·2) and 64 (6·10 + 4): [`heights`].

use crate::core::bf16::{self, CHUNKS, MR};
use crate::core::pool::{Pool, SyncMut};

/// The narrower block's rows.
const SHORT: usize = 4;

/// A weight row's pairs in the paired products' order (tap, channel pair): pair `t·cp + c2`
/// is `(row[2c2·cs + taps[t]], row[(2c2 + 1)·cs + taps[t]])` as bf16, 0 past `channels`
/// (`cp` = ⌈channels/2⌉). Both weight packings (the kernel's row blocks here, the tiles'
/// rows in `tiles`) lay these out.
pub(super) fn row_pairs<'a>(
    row: &'a [f32],
    (cs, channels): (usize, usize),
    taps: &'a [usize],
) -> impl Iterator<Item = u32> + 'a {
    let at = move |c: usize, t: usize| if c < channels { row[c * cs + t] } else { 0.0 };
    taps.iter()
        .flat_map(move |&t| (0..channels.div_ceil(2)).map(move |c2| bf16::pair(at(2 * c2, t), at(2 * c2 + 1, t))))
}

/// The heights of the row blocks that cover `rows` rows, blocks of [`MR`] first: with no,
/// one or two blocks of 4 at the end, whichever computes the fewest rows (then the fewest
/// blocks). 32 → 6, 6, 6, 6, 4, 4; 64 → ten 6s and a 4; 2 → one 4; 5 → one 6.
pub(super) fn heights(rows: usize) -> Vec<usize> {
    let plan = |short: usize| {
        let long = rows.saturating_sub(SHORT * short).div_ceil(MR);
        (MR * long + SHORT * short, long + short, long, short)
    };
    let (_, _, long, short) = (0..=2).map(plan).min().expect("three plans");
    let mut h = vec![MR; long];
    h.extend(std::iter::repeat_n(SHORT, short));
    h
}

/// One row block: its first row, height (the kernel's R), the rows it stores, and where
/// its pairs start.
#[derive(Clone, Copy, Debug)]
struct Block {
    row: usize,
    height: usize,
    rows: usize,
    at: usize,
}

/// A weight packed for the paired kernel: per block of `height` rows, pair row `q`'s values
/// at `pairs[at + q·height ..][..height]` (0 past the output's rows).
pub(super) struct RowBlocks {
    pairs: Vec<u32>,
    blocks: Vec<Block>,
    /// Pair rows per block: taps × channel pairs.
    depth: usize,
}

impl RowBlocks {
    /// A convolution weight (row-major `w`) packed for pairing along the channels: the
    /// operand `[rows, taps·2⌈C/2⌉]` whose pair `t·⌈C/2⌉ + c'` of row `r` is `(w[r·rs + 2c'·cs
    /// + taps[t]], w[r·rs + (2c'+1)·cs + taps[t]])` (row, reduction channel, tap; 0 past `C`
    /// channels). The forward reads `w [M, C·k²]` with `(rs, cs) = (C·k², k²)`, the
    /// transposed product its transpose, `(rs, cs) = (k², C·k²)`.
    pub(super) fn pack(
        pool: &Pool,
        w: &[f32],
        (rs, cs): (usize, usize),
        (rows, channels): (usize, usize),
        taps: &[usize],
    ) -> RowBlocks {
        let depth = taps.len() * channels.div_ceil(2);
        let (mut row, mut at) = (0, 0);
        let blocks: Vec<Block> = heights(rows)
            .into_iter()
            .map(|height| {
                let b = Block { row, height, rows: height.min(rows - row), at };
                (row, at) = (row + height, at + depth * height);
                b
            })
            .collect();
        let mut pairs = vec![0u32; at];
        let out = SyncMut::new(&mut pairs);
        pool.for_ranges(blocks.len(), 1, 8, &|_, range| {
            for b in &blocks[range] {
                // SAFETY: the blocks' spans of `pairs` are disjoint.
                let dst = unsafe { out.slice(b.at..b.at + depth * b.height) };
                for i in 0..b.rows {
                    for (q, v) in row_pairs(&w[(b.row + i) * rs..], (cs, channels), taps).enumerate() {
                        dst[q * b.height + i] = v;
                    }
                }
            }
        });
        RowBlocks { pairs, blocks, depth }
    }

    /// The row blocks: (first row, rows stored), in order.
    pub(super) fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.blocks.iter().map(|b| (b.row, b.rows))
    }

    /// Block `block`'s product, `bf16::kernel_taps` of its height: rows `row..row + rows`
    /// (as [`RowBlocks::blocks`] gives them) of `c` (rows `ldc` apart) at columns `cols`,
    /// over `taps` taps of `depth / taps` channel pairs each.
    ///
    /// # Safety
    /// `bf16::kernel_taps`'s, with `c` the output's row 0.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn product(
        &self,
        block: usize,
        taps: usize,
        bases: &[(*const u32, usize)],
        c: *mut f32,
        ldc: usize,
        cols: [usize; CHUNKS],
        chunks: usize,
    ) {
        let b = self.blocks[block];
        let (a, shape) = (&self.pairs[b.at..b.at + self.depth * b.height], (taps, self.depth / taps));
        let c = c.wrapping_add(b.row * ldc);
        // SAFETY: per the contract; `a` holds the block's depth·height pairs.
        unsafe {
            match b.height {
                MR => bf16::kernel_taps::<MR>(shape, a, bases, c, ldc, cols, chunks, b.rows),
                _ => bf16::kernel_taps::<SHORT>(shape, a, bases, c, ldc, cols, chunks, b.rows),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_cover_the_rows_with_the_fewest_computed() {
        assert_eq!(heights(32), [6, 6, 6, 6, 4, 4]);
        assert_eq!(heights(64), [6; 10].into_iter().chain([4]).collect::<Vec<_>>());
        assert_eq!(heights(36), [6; 6]);
        assert_eq!(heights(2), [4]);
        assert_eq!(heights(5), [6]);
        assert_eq!(heights(7), [4, 4]);
        assert_eq!(heights(13), [6, 4, 4]);
        assert!(heights(0).is_empty());
        for rows in 1..200 {
            let h = heights(rows);
            let sum: usize = h.iter().sum();
            // Covers the rows, wastes less than a short block, and has 6s before 4s.
            assert!(sum >= rows && sum < rows + SHORT, "{rows}: {h:?}");
            assert!(h.windows(2).all(|w| w[0] >= w[1]), "{rows}: {h:?}");
        }
    }
}
