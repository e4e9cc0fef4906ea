//! im2col and col2im for images stored *features × batch*: `x[c, y, x, b]`, the batch
//! innermost (so a flattened feature map is already the `[C·H·W, B]` input of a linear
//! layer, in PyTorch's flatten order).
//!
//! A convolution with kernel k, stride s and padding p is then one product: the column
//! matrix `col[(c, ky, kx), (oy, ox, b)] = x[c, oy·s − p + ky, ox·s − p + kx, b]` (0 outside
//! the image) has shape `[C·k·k, Ho·Wo·B]`, and `W [C_out, C·k·k] · col` is the output
//! `[C_out, Ho·Wo·B]` in the same layout (Chellapilla, Puri & Simard 2006). Every copy is a
//! contiguous run of B values.
//!
//! [`col2im`] is the adjoint of [`im2col`] (`⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩`): it sums each
//! column entry back onto the pixel it was read from. It is the backward of im2col, and the
//! forward of a transposed convolution.

use super::pool::{Pool, SyncMut};
use super::shape::holds;

/// The geometry of a convolution's *input* side: channels, height, width, and the kernel,
/// stride and padding that map it to the output side. Made only by [`ConvGeometry::new`],
/// which checks it, so every size a kernel computes from it is valid: the fields are private
/// and read through methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    channels: usize,
    height: usize,
    width: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
}

/// Why a convolution geometry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    #[error("a convolution needs at least one channel, pixel, kernel tap and stride step ({0:?})")]
    Zero([usize; 6]),
    #[error("the kernel ({kernel}) is larger than the padded input ({height}x{width} with padding {padding})")]
    KernelTooLarge { kernel: usize, height: usize, width: usize, padding: usize },
    #[error("the convolution's sizes overflow ({0:?})")]
    Overflow([usize; 6]),
}

impl ConvGeometry {
    /// A checked geometry: every count at least 1, a kernel no larger than the padded input,
    /// and every size derived from it (input, column matrix, output plane, their products
    /// with up to 2¹⁶ images) within usize.
    ///
    /// # Errors
    /// [`GeometryError`] saying which of these fails.
    pub fn new(
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<ConvGeometry, GeometryError> {
        let all = [channels, height, width, kernel, stride, padding];
        if all[..5].contains(&0) {
            return Err(GeometryError::Zero(all));
        }
        let padded = |e: usize| padding.checked_mul(2).and_then(|p| e.checked_add(p));
        let (ph, pw) =
            (padded(height).ok_or(GeometryError::Overflow(all))?, padded(width).ok_or(GeometryError::Overflow(all))?);
        if kernel > ph || kernel > pw {
            return Err(GeometryError::KernelTooLarge { kernel, height, width, padding });
        }
        let g = ConvGeometry { channels, height, width, kernel, stride, padding };
        let fits = |dims: &[usize]| dims.iter().try_fold(1usize << 16, |p, &d| p.checked_mul(d)).is_some();
        let (ho, wo) = ((ph - kernel) / stride + 1, (pw - kernel) / stride + 1);
        if !(fits(&[channels, height, width]) && fits(&[channels, kernel, kernel, ho, wo])) {
            return Err(GeometryError::Overflow(all));
        }
        Ok(g)
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    pub fn height(&self) -> usize {
        self.height
    }

    pub fn width(&self) -> usize {
        self.width
    }

    pub fn kernel(&self) -> usize {
        self.kernel
    }

    pub fn stride(&self) -> usize {
        self.stride
    }

    pub fn padding(&self) -> usize {
        self.padding
    }

    /// Output side along an input `extent`: `(extent + 2p − k) / s + 1`, checked (a kernel
    /// larger than the padded input, a zero stride or sizes past usize panic with a message
    /// here, rather than wrap into a small, wrong size).
    fn out_side(&self, extent: usize) -> usize {
        let padded = self.padding.checked_mul(2).and_then(|p| extent.checked_add(p));
        let span =
            padded.and_then(|p| p.checked_sub(self.kernel)).expect("convolution: kernel larger than the padded input");
        assert!(self.stride > 0, "convolution: stride 0");
        span / self.stride + 1
    }

    /// The checked product of `dims`.
    fn product(dims: &[usize]) -> usize {
        dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).expect("convolution geometry overflows usize")
    }

    /// Output height `(H + 2p − k) / s + 1`.
    pub fn out_height(&self) -> usize {
        self.out_side(self.height)
    }

    /// Output width `(W + 2p − k) / s + 1`.
    pub fn out_width(&self) -> usize {
        self.out_side(self.width)
    }

    /// Rows of the column matrix: `C·k·k`.
    pub fn col_rows(&self) -> usize {
        Self::product(&[self.channels, self.kernel, self.kernel])
    }

    /// Output positions per example: `Ho·Wo`.
    pub fn out_plane(&self) -> usize {
        Self::product(&[self.out_height(), self.out_width()])
    }

    /// Input values per example: `C·H·W`.
    pub fn in_size(&self) -> usize {
        Self::product(&[self.channels, self.height, self.width])
    }

    /// The input coordinate read by output coordinate `o` at kernel offset `k`, if inside
    /// `extent` (the input's height or width): the one place the convolutions' paths ask
    /// which pixel an output reads.
    #[inline]
    pub(crate) fn source(&self, o: usize, k: usize, extent: usize) -> Option<usize> {
        (o * self.stride + k).checked_sub(self.padding).filter(|&i| i < extent)
    }

    /// The input pixel (`(c·H + iy)·W + ix`) that column-matrix row `k = (c, ky, kx)` reads
    /// for output position `p` (`oy·Wo + ox`), if inside.
    #[inline]
    pub(crate) fn pixel(&self, p: usize, k: usize) -> Option<usize> {
        let (kk, wo) = (self.kernel, self.out_width());
        let (c, ky, kx) = (k / (kk * kk), k / kk % kk, k % kk);
        let iy = self.source(p / wo, ky, self.height)?;
        let ix = self.source(p % wo, kx, self.width)?;
        Some((c * self.height + iy) * self.width + ix)
    }
}

/// Rows of the column matrix below this count run on the calling thread.
const PARALLEL_MIN_ROWS: usize = 4;

/// `col [C·k·k, Ho·Wo·B] ← im2col(x [C, H, W, B])`, overwriting `col`.
pub fn im2col(pool: &Pool, g: &ConvGeometry, x: &[f32], col: &mut [f32], batch: usize) {
    let (ho, wo, k) = (g.out_height(), g.out_width(), g.kernel);
    let row_len = ho * wo * batch;
    let rows = g.col_rows();
    assert!(holds(x.len(), &[g.in_size(), batch]), "im2col: x must be [{}, {batch}]", g.in_size());
    assert!(holds(col.len(), &[rows, row_len]), "im2col: col must be [{rows}, {row_len}]");
    let cp = SyncMut::new(&mut col[..rows * row_len]);
    pool.for_ranges(rows, 1, PARALLEL_MIN_ROWS, &|_, range| {
        // SAFETY: parts write disjoint row ranges of `col`.
        let block = unsafe { cp.slice(range.start * row_len..range.end * row_len) };
        for (r, out) in range.zip(block.chunks_exact_mut(row_len)) {
            let (c, ky, kx) = (r / (k * k), r / k % k, r % k);
            let plane = &x[c * g.height * g.width * batch..(c + 1) * g.height * g.width * batch];
            for (oy, out_row) in out.chunks_exact_mut(wo * batch).enumerate() {
                let Some(iy) = g.source(oy, ky, g.height) else {
                    out_row.fill(0.0);
                    continue;
                };
                for (ox, dst) in out_row.chunks_exact_mut(batch).enumerate() {
                    match g.source(ox, kx, g.width) {
                        Some(ix) => dst.copy_from_slice(&plane[(iy * g.width + ix) * batch..][..batch]),
                        None => dst.fill(0.0),
                    }
                }
            }
        }
    });
}

/// `x [C, H, W, B] ← col2im(col [C·k·k, Ho·Wo·B])`, overwriting `x`: every column entry is
/// added onto the input pixel [`im2col`] read it from. Channels are split across the pool
/// and each pixel's terms are added in kernel order, so the result does not depend on the
/// thread count.
pub fn col2im(pool: &Pool, g: &ConvGeometry, col: &[f32], x: &mut [f32], batch: usize) {
    let (ho, wo, k) = (g.out_height(), g.out_width(), g.kernel);
    let row_len = ho * wo * batch;
    let plane_len = g.height * g.width * batch;
    assert!(holds(col.len(), &[g.col_rows(), row_len]), "col2im: col must be [{}, {row_len}]", g.col_rows());
    assert!(holds(x.len(), &[g.channels, plane_len]), "col2im: x must be [{}, {batch}]", g.in_size());
    let xp = SyncMut::new(&mut x[..g.channels * plane_len]);
    pool.for_ranges(g.channels, 1, 2, &|_, channels| {
        // SAFETY: parts write disjoint channel planes of `x`.
        let block = unsafe { xp.slice(channels.start * plane_len..channels.end * plane_len) };
        for (c, plane) in channels.zip(block.chunks_exact_mut(plane_len)) {
            plane.fill(0.0);
            for ky in 0..k {
                for kx in 0..k {
                    let src = &col[((c * k + ky) * k + kx) * row_len..][..row_len];
                    for oy in 0..ho {
                        let Some(iy) = g.source(oy, ky, g.height) else { continue };
                        for ox in 0..wo {
                            let Some(ix) = g.source(ox, kx, g.width) else { continue };
                            let dst = &mut plane[(iy * g.width + ix) * batch..][..batch];
                            let s = &src[(oy * wo + ox) * batch..][..batch];
                            dst.iter_mut().zip(s).for_each(|(d, v)| *d += v);
                        }
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(
        channels: usize,
        height: usize,
        width: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> ConvGeometry {
        ConvGeometry::new(channels, height, width, kernel, stride, padding).unwrap()
    }

    /// Sizes that would wrap, a kernel wider than the padded input and zero counts are
    /// refused by the constructor, not turned into small wrong sizes later.
    #[test]
    fn bad_geometries_are_refused() {
        use GeometryError as E;
        assert!(matches!(ConvGeometry::new(1 << 22, 1 << 21, 1 << 21, 1, 1, 0), Err(E::Overflow(_))));
        assert!(matches!(ConvGeometry::new(1, usize::MAX, 4, 1, 1, 1), Err(E::Overflow(_))));
        assert!(matches!(ConvGeometry::new(1, 2, 2, 5, 1, 1), Err(E::KernelTooLarge { kernel: 5, .. })));
        for zero in 0..5 {
            let mut a = [3usize, 8, 8, 4, 2, 1];
            a[zero] = 0;
            assert!(matches!(ConvGeometry::new(a[0], a[1], a[2], a[3], a[4], a[5]), Err(E::Zero(_))), "{a:?}");
        }
        let g = geometry(3, 8, 6, 4, 2, 1);
        assert_eq!((g.channels(), g.height(), g.width(), g.kernel(), g.stride(), g.padding()), (3, 8, 6, 4, 2, 1));
        assert_eq!((g.out_height(), g.out_width(), g.col_rows()), (4, 3, 48));
    }

    fn ramp(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 20) as f32 / 4096.0 - 0.5)
            .collect()
    }

    /// The column matrix entry by entry from its definition.
    fn naive_im2col(g: &ConvGeometry, x: &[f32], batch: usize) -> Vec<f32> {
        let (ho, wo, k) = (g.out_height(), g.out_width(), g.kernel);
        let mut col = vec![0.0; g.col_rows() * ho * wo * batch];
        for c in 0..g.channels {
            for ky in 0..k {
                for kx in 0..k {
                    for oy in 0..ho {
                        for ox in 0..wo {
                            for b in 0..batch {
                                let iy = (oy * g.stride + ky) as i64 - g.padding as i64;
                                let ix = (ox * g.stride + kx) as i64 - g.padding as i64;
                                let inside = (0..g.height as i64).contains(&iy) && (0..g.width as i64).contains(&ix);
                                let v = if inside {
                                    x[((c * g.height + iy as usize) * g.width + ix as usize) * batch + b]
                                } else {
                                    0.0
                                };
                                col[(((c * k + ky) * k + kx) * ho * wo + oy * wo + ox) * batch + b] = v;
                            }
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_its_definition_on_odd_and_even_geometries() {
        for g in [
            geometry(2, 6, 6, 4, 2, 1),
            geometry(3, 5, 7, 3, 1, 1),
            geometry(1, 4, 4, 4, 2, 1),
            geometry(2, 7, 5, 2, 2, 0),
        ] {
            for threads in [1, 2, 3] {
                let pool = Pool::new(threads);
                let batch = 3;
                let x = ramp(g.in_size() * batch, 7);
                let mut col = vec![f32::NAN; g.col_rows() * g.out_plane() * batch];
                im2col(&pool, &g, &x, &mut col, batch);
                assert_eq!(col, naive_im2col(&g, &x, batch), "{g:?}, {threads} threads");
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩ for random x and c, in f64 to keep rounding out.
        for g in [geometry(2, 6, 6, 4, 2, 1), geometry(3, 5, 7, 3, 1, 1), geometry(2, 8, 4, 4, 2, 1)] {
            let batch = 5;
            let pool = Pool::new(2);
            let x = ramp(g.in_size() * batch, 1);
            let c = ramp(g.col_rows() * g.out_plane() * batch, 2);
            let mut col = vec![0.0; c.len()];
            im2col(&pool, &g, &x, &mut col, batch);
            let mut back = vec![f32::NAN; x.len()];
            col2im(&pool, &g, &c, &mut back, batch);
            let lhs: f64 = col.iter().zip(&c).map(|(a, b)| *a as f64 * *b as f64).sum();
            let rhs: f64 = x.iter().zip(&back).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "{g:?}: {lhs} vs {rhs}");
            // And it does not depend on the thread count.
            let mut one = vec![0.0; x.len()];
            col2im(&Pool::new(1), &g, &c, &mut one, batch);
            assert_eq!(one, back);
        }
    }

    #[test]
    fn stride_two_kernel_four_halves_the_side() {
        let g = geometry(1, 28, 28, 4, 2, 1);
        assert_eq!((g.out_height(), g.out_width(), g.col_rows()), (14, 14, 16));
        // col2im of ones counts how often each pixel is read: along an axis, row y is read by
        // the two offsets with 2·o − 1 + k = y (o in 0..14, k in 0..4), except y = 0 and 27
        // (one each, the other falls in the padding). So 4 inside, 2 on edges, 1 at corners.
        let pool = Pool::new(1);
        let ones = vec![1.0; g.col_rows() * g.out_plane()];
        let mut counts = vec![0.0; 28 * 28];
        col2im(&pool, &g, &ones, &mut counts, 1);
        let per_axis = |i: usize| if i == 0 || i == 27 { 1.0 } else { 2.0 };
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(counts[y * 28 + x], per_axis(y) * per_axis(x), "pixel ({y}, {x})");
            }
        }
    }
}
