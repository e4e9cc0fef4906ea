//! The convolution's column matrix gathered straight into bf16 pairs (`--precision bf16`):
//! the right operand of the forward product `y = W · col` in the kernel's panel layout
//! (`core::bf16`: pairs along K, [`NR`] columns per panel), without writing the f32 column
//! block first.

use super::blocked::{column_runs, tap};
use crate::core::bf16::{NR, give_back, run_pairs, take, transpose, zip_hi, zip_one, zip_two};
use crate::core::im2col::ConvGeometry;

/// Packs columns `cols` of `col = im2col_g(x)` ([K, N], K = C·k·k, N = Ho·Wo·B; `x` is
/// `[C, H, W, B]`) into `out` as bf16 pairs: `out[(panel·P + q)·NR + lane] = (col[2q, j],
/// col[2q + 1, j])` with `j − cols.start = panel·NR + lane`, P = ⌈K/2⌉, 0 where a tap falls
/// in the padding, past K or past the last column. Column j is image `j mod B` at output
/// position `j div B`, so each (pair, position) is a run of up to B contiguous images:
/// zipped 16 lanes at a time.
pub(super) fn im2col_pairs(g: &ConvGeometry, x: &[f32], batch: usize, cols: std::ops::Range<usize>, out: &mut [u32]) {
    let p = g.col_rows().div_ceil(2);
    let n = cols.len();
    let panels = n.div_ceil(NR);
    assert!(out.len() >= panels * p * NR, "im2col_pairs: output too short");
    if !n.is_multiple_of(NR) {
        // The last panel's lanes past the last column.
        let (panel, from) = (panels - 1, n % NR);
        for q in 0..p {
            out[(panel * p + q) * NR + from..(panel * p + q + 1) * NR].fill(0);
        }
    }
    for q in 0..p {
        for (offset, pos, b, run) in column_runs(batch, cols.clone(), NR) {
            let dst = &mut out[(offset / NR * p + q) * NR + offset % NR..][..run];
            let source = |r: usize| tap(g, batch, r, pos).map(|at| &x[at + b..][..run]);
            match (source(2 * q), source(2 * q + 1)) {
                (Some(lo), Some(hi)) => zip_two(lo, hi, dst),
                (Some(lo), None) => zip_one(lo, dst),
                (None, Some(hi)) => zip_hi(hi, dst),
                (None, None) => dst.fill(0),
            }
        }
    }
}

/// Packs the block `[cols, rows]` of `colᵀ` (`col = im2col_g(x)` as above) as the right
/// operand of the weight gradient `d[:, rows] (+)= e[:, cols] · colᵀ[cols, rows]`: panels
/// of [`NR`] K rows (the lanes), pairs along the columns, `out[(panel·P + q)·NR + lane] =
/// (col[r, j], col[r, j + 1])` with `r = rows.start + panel·NR + lane`, `j = cols.start +
/// 2q`, P = `cols.len()/2`, 0 past the last row. Each lane's pairs are runs of images at one
/// position (an even batch and an even `cols.start` keep a pair inside a position): rounded
/// a run at a time, then dealt to the lanes in register transposes.
pub(super) fn im2col_pairs_t(
    g: &ConvGeometry,
    x: &[f32],
    batch: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    out: &mut [u32],
) {
    assert!(batch.is_multiple_of(2) && cols.start.is_multiple_of(2), "im2col_pairs_t: pairs would straddle positions");
    let p = cols.len().div_ceil(2);
    let panels = rows.len().div_ceil(NR);
    assert!(out.len() >= panels * p * NR, "im2col_pairs_t: output too short");
    let mut lines = take(NR * p);
    for panel in 0..panels {
        let first = rows.start + panel * NR;
        let count = NR.min(rows.end - first);
        for l in 0..count {
            let line = &mut lines[l * p..(l + 1) * p];
            for (offset, pos, b, run) in column_runs(batch, cols.clone(), usize::MAX) {
                let dst = &mut line[offset / 2..][..run.div_ceil(2)];
                match tap(g, batch, first + l, pos) {
                    Some(at) => run_pairs(&x[at + b..][..run], dst),
                    None => dst.fill(0),
                }
            }
        }
        let dst = &mut out[panel * p * NR..(panel + 1) * p * NR];
        if count < NR {
            dst.fill(0);
        }
        transpose(&lines[..count * p], count, p, dst, NR);
    }
    give_back(lines);
}
