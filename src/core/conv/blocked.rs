//! The portable convolution products (and their bf16 forms): the column matrix built a
//! block at a time in each thread's cache (a quarter of its L2) and multiplied at once by
//! `gemm`, or in bf16 gathered straight into the kernel's pairs (`pairs`). See the parent
//! module for the three products and how each splits across the pool.

use super::pairs;
use super::{ConvGeometry, block_floats};
use crate::core::bf16::{self, PackedA, matmul_packed_cols_serial, matmul_packed_serial, matmul_panels_serial};
use crate::core::matmul::{Mat, matmul_serial};
use crate::core::pool::{Pool, SyncMut, split_range};

/// Columns per block for `rows` rows: fills [`block_floats`], a multiple of 16, at least 16.
pub(super) fn block_cols(rows: usize) -> usize {
    (block_floats() / rows.max(1)) / 16 * 16
}

/// The runs of columns `cols` of a column matrix ([K, N], N = positions × batch, column j
/// image `j mod B` at position `j div B`): `(offset from cols.start, position, first image,
/// images)`, one per position, also cut every `width` columns from `cols.start` (a panel's
/// lanes; `usize::MAX` for no cut).
pub(super) fn column_runs(
    batch: usize,
    cols: std::ops::Range<usize>,
    width: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut j = cols.start;
    std::iter::from_fn(move || {
        (j < cols.end).then(|| {
            let (pos, b, offset) = (j / batch, j % batch, j - cols.start);
            let run = (batch - b).min(cols.end - j).min(width - offset % width);
            j += run;
            (offset, pos, b, run)
        })
    })
}

/// Where row `r` of the column matrix (`(c, ky, kx)`) reads at output position `pos`: the
/// offset in `x` (`[C, H, W, B]`) of image 0 of its tap, or `None` where the tap falls in the
/// padding (or past the last row).
pub(super) fn tap(g: &ConvGeometry, batch: usize, r: usize, pos: usize) -> Option<usize> {
    let (kk, wo) = (g.kernel(), g.out_width());
    if r >= g.col_rows() {
        return None;
    }
    let (c, ky, kx) = (r / (kk * kk), r / kk % kk, r % kk);
    let (iy, ix) = (g.source(pos / wo, ky, g.height())?, g.source(pos % wo, kx, g.width())?);
    Some(((c * g.height() + iy) * g.width() + ix) * batch)
}

/// Rows `rows` × columns `cols` of `im2col_g(x)` into `col` (`[rows.len(), cols.len()]`).
pub(super) fn im2col_block(
    g: &ConvGeometry,
    x: &[f32],
    batch: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    col: &mut [f32],
) {
    for (r, out) in rows.zip(col.chunks_exact_mut(cols.len())) {
        for (offset, pos, b, run) in column_runs(batch, cols.clone(), usize::MAX) {
            let dst = &mut out[offset..offset + run];
            match tap(g, batch, r, pos) {
                Some(at) => dst.copy_from_slice(&x[at + b..][..run]),
                None => dst.fill(0.0),
            }
        }
    }
}

/// Adds the block `col` (rows `rows` × columns `cols` of a column matrix) onto the pixels
/// [`im2col_block`] would have read them from.
pub(super) fn col2im_block(
    g: &ConvGeometry,
    col: &[f32],
    batch: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    out: *mut f32,
) {
    for (r, src) in rows.zip(col.chunks_exact(cols.len())) {
        for (offset, pos, b, run) in column_runs(batch, cols.clone(), usize::MAX) {
            if let Some(at) = tap(g, batch, r, pos) {
                // SAFETY: the caller owns these pixels of `out` (see `col2im_product`).
                let dst = unsafe { std::slice::from_raw_parts_mut(out.add(at + b), run) };
                dst.iter_mut().zip(&src[offset..offset + run]).for_each(|(d, v)| *d += v);
            }
        }
    }
}

/// The portable [`columns_product`], without the epilogue.
pub(super) fn blocked_columns_product(
    pool: &Pool,
    g: &ConvGeometry,
    a: Mat,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
) {
    let (m, k, n) = (a.rows(), g.col_rows(), g.out_plane() * batch);
    let (yp, sp) = (SyncMut::new(&mut y[..m * n]), SyncMut::new(scratch));
    let nb = block_cols(k);
    // In bf16 the weight is packed once for every block.
    let packed = bf16::enabled().then(|| PackedA::new(pool, a));
    pool.run(&|part| {
        // SAFETY: each part uses its own scratch block.
        let col = unsafe { sp.slice(part * block_floats()..(part + 1) * block_floats()) };
        let mine = split_range(n, pool.threads(), part, 16);
        let mut j = mine.start;
        while j < mine.end {
            let cols = j..(j + nb).min(mine.end);
            let dst = yp.ptr().wrapping_add(cols.start);
            if let Some(pa) = &packed {
                // The block gathered straight into bf16 pairs (in a buffer of this thread's).
                let mut pb = bf16::take(cols.len().div_ceil(bf16::NR) * k.div_ceil(2) * bf16::NR);
                pairs::im2col_pairs(g, x, batch, cols.clone(), &mut pb);
                // SAFETY: parts write disjoint column ranges of y.
                unsafe { matmul_panels_serial(dst, n, pa, 0..k, &pb, cols.len(), false) };
                bf16::give_back(pb);
            } else {
                let c = &mut col[..k * cols.len()];
                im2col_block(g, x, batch, 0..k, cols.clone(), c);
                // SAFETY: parts write disjoint column ranges of y.
                unsafe { matmul_serial(dst, n, a, Mat::new(c, k, cols.len()), false) };
            }
            j = cols.end;
        }
    });
}

/// The portable [`col2im_product`], without the epilogue.
pub(super) fn blocked_col2im_product(
    pool: &Pool,
    g: &ConvGeometry,
    a: Mat,
    e: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
) {
    let (m, k, n) = (a.rows(), g.col_rows(), g.out_plane() * batch);
    let e = Mat::new(e, m, n);
    let threads = pool.threads();
    let plane = g.height() * g.width() * batch;
    let (op, sp) = (SyncMut::new(&mut out[..g.channels() * plane]), SyncMut::new(scratch));
    let kk = g.kernel() * g.kernel();
    // Column rows of the block [rows, cols] as aᵀ · e, then scattered.
    // In bf16, `packed` is aᵀ's `rows` packed once by the caller.
    let bf = bf16::enabled();
    let block =
        |col: &mut [f32], packed: Option<&PackedA>, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>| {
            let c = &mut col[..rows.len() * cols.len()];
            let (at, ecols) = (a.cols_range(rows.clone()).t(), e.cols_range(cols.clone()));
            // SAFETY: `c` is this part's own scratch.
            unsafe {
                match packed {
                    Some(pa) => matmul_packed_serial(c.as_mut_ptr(), cols.len(), pa, ecols, false),
                    None => matmul_serial(c.as_mut_ptr(), cols.len(), at, ecols, false),
                }
            }
            col2im_block(g, c, batch, rows, cols, op.ptr());
        };
    if g.channels() >= 2 * threads || threads == 1 {
        // Each part owns whole channels: their column rows and their pixels.
        pool.run(&|part| {
            let channels = split_range(g.channels(), threads, part, 1);
            if channels.is_empty() {
                return;
            }
            // SAFETY: parts own disjoint channel planes of out, and their own scratch.
            unsafe { op.slice(channels.start * plane..channels.end * plane).fill(0.0) };
            // SAFETY: part `part`'s own block of the scratch.
            let col = unsafe { sp.slice(part * block_floats()..(part + 1) * block_floats()) };
            let rows = channels.start * kk..channels.end * kk;
            let packed = bf.then(|| PackedA::serial(a.cols_range(rows.clone()).t()));
            let nb = block_cols(rows.len());
            let mut j = 0;
            while j < n {
                let cols = j..(j + nb).min(n);
                block(col, packed.as_ref(), rows.clone(), cols.clone());
                j = cols.end;
            }
        });
        return;
    }
    // Few channels: split the rows of output positions. Row oy scatters into input rows
    // oy·s − p … oy·s − p + k − 1 (2·oy − 1 … 2·oy + 2 for kernel 4, stride 2), so rows
    // ⌈k/s⌉ apart never meet: one pass per residue of oy modulo ⌈k/s⌉ (even rows, then odd).
    let passes = g.kernel().div_ceil(g.stride());
    pool.run(&|part| {
        let len = g.channels() * plane;
        // SAFETY: parts zero disjoint ranges.
        unsafe { op.slice(split_range(len, threads, part, 16)).fill(0.0) };
    });
    let (ho, row_cols) = (g.out_height(), g.out_width() * batch);
    let packed = bf.then(|| PackedA::new(pool, a.t()));
    for residue in 0..passes {
        let rows_of_parity: Vec<usize> = (residue..ho).step_by(passes).collect();
        pool.run(&|part| {
            // SAFETY: each part uses its own scratch; rows of one pass touch disjoint pixels.
            let col = unsafe { sp.slice(part * block_floats()..(part + 1) * block_floats()) };
            let nb = block_cols(k);
            for &oy in &rows_of_parity[split_range(rows_of_parity.len(), threads, part, 1)] {
                let mut j = oy * row_cols;
                while j < (oy + 1) * row_cols {
                    let cols = j..(j + nb).min((oy + 1) * row_cols);
                    block(col, packed.as_ref(), 0..k, cols.clone());
                    j = cols.end;
                }
            }
        });
    }
}

/// The portable [`columns_product_t`] (and its bf16 form): each part builds its K rows of
/// the column matrix a block of columns at a time and multiplies them into its columns of `d`.
#[allow(clippy::too_many_arguments)]
pub(super) fn blocked_columns_product_t(
    pool: &Pool,
    g: &ConvGeometry,
    e: &[f32],
    m: usize,
    x: &[f32],
    d: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
) {
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    let e = Mat::new(e, m, n);
    let (dp, sp) = (SyncMut::new(&mut d[..m * k]), SyncMut::new(scratch));
    // In bf16, e is packed once for every part and chunk.
    let packed = bf16::enabled().then(|| PackedA::new(pool, e));
    pool.run(&|part| {
        // SAFETY: each part uses its own scratch block.
        let col = unsafe { sp.slice(part * block_floats()..(part + 1) * block_floats()) };
        let rows = split_range(k, pool.threads(), part, 1);
        if rows.is_empty() {
            return;
        }
        let nb = block_cols(rows.len());
        let mut j = 0;
        while j < n {
            let cols = j..(j + nb).min(n);
            let dst = dp.ptr().wrapping_add(rows.start);
            if let Some(pa) = packed.as_ref().filter(|_| batch.is_multiple_of(2)) {
                // colᵀ's block gathered straight into bf16 pairs (an even batch: a pair of
                // columns is two images at one position).
                let mut pb = bf16::take(rows.len().div_ceil(bf16::NR) * cols.len().div_ceil(2) * bf16::NR);
                pairs::im2col_pairs_t(g, x, batch, rows.clone(), cols.clone(), &mut pb);
                // SAFETY: parts write disjoint column ranges (their rows of col) of d.
                unsafe { matmul_panels_serial(dst, k, pa, cols.clone(), &pb, rows.len(), j > 0) };
                bf16::give_back(pb);
                j = cols.end;
                continue;
            }
            let c = &mut col[..rows.len() * cols.len()];
            im2col_block(g, x, batch, rows.clone(), cols.clone(), c);
            let colt = Mat::new(c, rows.len(), cols.len()).t();
            // SAFETY: parts write disjoint column ranges (their rows of col) of d.
            unsafe {
                match &packed {
                    Some(pa) => matmul_packed_cols_serial(dst, k, pa, cols.clone(), colt, j > 0),
                    None => matmul_serial(dst, k, e.cols_range(cols.clone()), colt, j > 0),
                }
            }
            j = cols.end;
        }
    });
}
