//! Matrix products on the `gemm` crate, split across the hot [`Pool`].
//!
//! Activations are stored *features × batch* (row-major, a row per feature), weights in
//! PyTorch's `[out, in]` layout. Then every product of a layer is a plain `W·X`, `dY·Xᵀ` or
//! `Wᵀ·dY` with no copies: transposes are just swapped strides (see the design note:
//! transposed activations let `gemm` run at its peak without repacking the weights).
//!
//! Each product is split into one block of output rows (or columns) per thread, each block
//! computed by a single-threaded `gemm` call, so the result does not depend on scheduling.

use super::pool::{Pool, SyncMut, split_range};

/// A read-only strided view of a matrix inside a slice.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        Mat::strided(data, rows, cols, cols, 1)
    }

    /// The first `cols` columns of a row-major matrix whose rows are `row_stride` apart.
    pub fn columns(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Mat<'a> {
        Mat::strided(data, rows, cols, row_stride, 1)
    }

    fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Mat<'a> {
        if rows > 0 && cols > 0 {
            // Checked: a wrapped offset would let a huge view pass as a small one.
            let last = (rows - 1).checked_mul(rs).zip((cols - 1).checked_mul(cs)).and_then(|(r, c)| r.checked_add(c));
            assert!(last.is_some_and(|l| l < data.len()), "matrix view {rows}x{cols} does not fit its buffer");
        }
        Mat { data, rows, cols, row_stride: rs, col_stride: cs }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Mat<'a> {
        Mat {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// Rows `r` of the view (no copy).
    pub fn rows_range(self, r: std::ops::Range<usize>) -> Mat<'a> {
        assert!(r.end <= self.rows, "rows {r:?} of a {}-row view", self.rows);
        let data = if r.is_empty() { &self.data[..0] } else { &self.data[r.start * self.row_stride..] };
        Mat::strided(data, r.len(), self.cols, self.row_stride, self.col_stride)
    }

    /// Columns `r` of the view (no copy).
    pub fn cols_range(self, r: std::ops::Range<usize>) -> Mat<'a> {
        self.t().rows_range(r).t()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether the view is a plain row-major matrix at the start of [`Mat::data`].
    pub fn is_row_major(&self) -> bool {
        self.col_stride == 1 && (self.row_stride == self.cols || self.rows <= 1)
    }

    /// The row stride, when each row is contiguous in memory (column stride 1, or one column).
    pub(crate) fn unit_col_stride(&self) -> Option<usize> {
        (self.col_stride == 1 || self.cols <= 1).then_some(self.row_stride)
    }

    /// The underlying slice, from the view's first element.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The element at row `r`, column `c`.
    ///
    /// # Panics
    /// If `(r, c)` is outside the view.
    pub fn at(&self, r: usize, c: usize) -> f32 {
        assert!(r < self.rows && c < self.cols, "({r}, {c}) outside a {}x{} view", self.rows, self.cols);
        self.data[r * self.row_stride + c * self.col_stride]
    }
}

/// Products smaller than this many multiply-adds run on one thread: a hand-off costs more.
const PARALLEL_MIN_MACS: usize = 64 * 1024;

/// `dst = a·b` (or `dst += a·b` when `accumulate`), `dst` row-major `a.rows × b.cols`.
///
/// Shapes: `a` [m, k], `b` [k, n], `dst` [m, n].
pub fn matmul(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows);
    assert!(m.checked_mul(n).is_some_and(|mn| dst.len() >= mn), "destination too small for [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    // The parts write disjoint blocks of the destination.
    let dst = SyncMut::new(dst);
    let parts = pool.threads();
    let split_rows = m >= n;
    let block = |part: usize| {
        let (rows, cols) =
            if split_rows { (split_range(m, parts, part, 8), 0..n) } else { (0..m, split_range(n, parts, part, 16)) };
        if rows.is_empty() || cols.is_empty() {
            return;
        }
        let at = dst.ptr().wrapping_add(rows.start * n + cols.start);
        // SAFETY: the destination was bounds-checked above; parts' blocks are disjoint.
        unsafe { matmul_serial(at, n, a.rows_range(rows), b.cols_range(cols), accumulate) };
    };
    if parts == 1 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_MIN_MACS {
        block_all(&block, parts);
    } else {
        pool.run(&block);
    }
}

/// `dst = a·b` (or `dst += a·b`) on the calling thread, into the row-major block at `dst`
/// whose rows are `dst_row_stride` apart. For kernels that split a product across the pool
/// themselves.
///
/// # Safety
/// `dst` must be valid for writes of `a.rows` rows of `b.cols` values at that stride, and no
/// other thread may access them during the call.
pub unsafe fn matmul_serial(dst: *mut f32, dst_row_stride: usize, a: Mat, b: Mat, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ: [{m}, {k}] x [{}, {n}]", b.rows);
    assert!(n <= dst_row_stride || m <= 1, "destination rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the views were bounds-checked in `Mat::strided`; `dst` per the contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Runs every part on the calling thread, with subnormals flushed as in a pool job (so a
/// product gives the same bits whether it went parallel or not).
fn block_all(block: &dyn Fn(usize), parts: usize) {
    let _flush = super::fpmode::FlushDenormals::new();
    for p in 0..parts {
        block(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 24's example: a 2⁶⁰-row column of stride 0 times a 1×16 row is a [2⁶⁰, 16]
    /// product, whose size wraps to 0 in unchecked arithmetic and passed for an empty
    /// destination, and the product then wrote out of bounds. Checked, it is refused with
    /// the message below, with overflow checks on (tests) or off (release), where a wrap
    /// would have panicked with another message or not at all.
    #[test]
    #[should_panic(expected = "destination too small for [1152921504606846976, 16]")]
    fn a_product_whose_size_overflows_is_refused() {
        let one = [1.0f32];
        let row = [1.0f32; 16];
        let a = Mat::columns(&one, 1 << 60, 1, 0);
        matmul(&Pool::new(1), &mut [], a, Mat::new(&row, 1, 16), false);
    }

    /// A view whose last element's offset overflows is refused, not wrapped into range.
    #[test]
    #[should_panic(expected = "does not fit its buffer")]
    fn a_view_whose_extent_overflows_is_refused() {
        let data = [0.0f32; 4];
        let _ = Mat::columns(&data, usize::MAX / 2 + 2, 1, 2);
    }

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn ramp(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| ((i as f32 * 0.37 + seed).sin() * 2.0).round() / 2.0).collect()
    }

    #[test]
    fn products_with_transposes_match_the_naive_loop_exactly() {
        // Entries are multiples of 0.5 with small sums, so every order of summation is exact.
        for threads in [1, 2, 3] {
            let pool = Pool::new(threads);
            for (m, k, n) in [(1, 1, 1), (3, 5, 7), (64, 33, 130), (130, 70, 9)] {
                let a = ramp(m * k, 0.1);
                let b = ramp(k * n, 0.7);
                let want = naive(&a, &b, m, k, n);
                let mut got = vec![0.0; m * n];
                matmul(&pool, &mut got, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
                assert_eq!(got, want);
                // Aᵀ stored as [k, m] and viewed transposed gives the same product.
                let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
                let mut got_t = vec![1.0; m * n];
                matmul(&pool, &mut got_t, Mat::new(&at, k, m).t(), Mat::new(&b, k, n), true);
                let want_acc: Vec<f32> = want.iter().map(|v| v + 1.0).collect();
                assert_eq!(got_t, want_acc);
            }
        }
    }

    #[test]
    fn column_view_uses_only_the_leading_columns() {
        let pool = Pool::new(1);
        // w: 2 x 3, use its first 2 columns.
        let w = [1.0, 2.0, 100.0, 3.0, 4.0, 100.0];
        let x = [1.0, 0.0, 0.0, 1.0];
        let mut y = [0.0; 4];
        matmul(&pool, &mut y, Mat::columns(&w, 2, 2, 3), Mat::new(&x, 2, 2), false);
        assert_eq!(y, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    #[should_panic(expected = "inner dimensions differ")]
    fn mismatched_shapes_are_rejected() {
        let pool = Pool::new(1);
        let mut y = [0.0; 4];
        matmul(&pool, &mut y, Mat::new(&[0.0; 6], 2, 3), Mat::new(&[0.0; 4], 2, 2), false);
    }
}
