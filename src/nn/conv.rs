//! Convolution and transposed convolution as im2col + one product, each forward beside its
//! backward, in the *features × batch* layout `[C, H, W, B]` (see `core::im2col`).
//!
//! `Conv2d(C_in → C_out)` with weight `[C_out, C_in, k, k]` = `[C_out, C_in·k·k]` row-major:
//!
//! ```text
//! forward          col = im2col(x)  [C_in·k·k, Ho·Wo·B];  y [C_out, Ho·Wo·B] = W · col
//! weight gradient  dW [C_out, C_in·k·k] = dy · colᵀ
//! input gradient   dx = col2im(Wᵀ · dy)
//! ```
//!
//! `ConvTranspose2d(C_in → C_out)` is the adjoint of a `Conv2d(C_out → C_in)` with the same
//! kernel, stride and padding (Dumoulin & Visin 2016, §4); PyTorch lays its weight out as
//! `[C_in, C_out, k, k]` = `[C_in, C_out·k·k]`. With `g` the geometry of its *output*:
//!
//! ```text
//! forward          y [C_out, H, W, B] = col2im_g(Wᵀ · x)     x [C_in, Ho·Wo·B]
//! weight gradient  dW [C_in, C_out·k·k] = x · im2col_g(dy)ᵀ
//! input gradient   dx [C_in, Ho·Wo·B] = W · im2col_g(dy)
//! ```
//!
//! Backward passes recompute the column matrix rather than keep one per layer: it is a
//! memory copy, cheap beside the products, and the model's memory stays one scratch buffer.

use crate::core::im2col::{ConvGeometry, col2im, im2col};
use crate::core::{Mat, Pool, matmul};

/// Conv2d forward: `y [C_out, Ho·Wo·B] = W · im2col_g(x)`. `col` is scratch of
/// `[C_in·k·k, Ho·Wo·B]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    pool: &Pool,
    g: &ConvGeometry,
    w: &[f32],
    out_channels: usize,
    x: &[f32],
    y: &mut [f32],
    col: &mut [f32],
    batch: usize,
) {
    let n = g.out_plane() * batch;
    im2col(pool, g, x, col, batch);
    matmul(pool, y, Mat::new(w, out_channels, g.col_rows()), Mat::new(col, g.col_rows(), n), false);
}

/// Conv2d backward: `dW = dy · im2col(x)ᵀ`, and `dx = col2im(Wᵀ · dy)` when `dx` is given.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward(
    pool: &Pool,
    g: &ConvGeometry,
    w: &[f32],
    dw: &mut [f32],
    out_channels: usize,
    x: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    col: &mut [f32],
    batch: usize,
) {
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    im2col(pool, g, x, col, batch);
    matmul(pool, dw, Mat::new(dy, out_channels, n), Mat::new(col, k, n).t(), false);
    if let Some(dx) = dx {
        matmul(pool, col, Mat::new(w, out_channels, k).t(), Mat::new(dy, out_channels, n), false);
        col2im(pool, g, col, dx, batch);
    }
}

/// ConvTranspose2d forward: `y [C_out, H, W, B] = col2im_g(Wᵀ · x)` with `x` `[C_in, Ho·Wo·B]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_forward(
    pool: &Pool,
    g: &ConvGeometry,
    w: &[f32],
    in_channels: usize,
    x: &[f32],
    y: &mut [f32],
    col: &mut [f32],
    batch: usize,
) {
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    matmul(pool, col, Mat::new(w, in_channels, k).t(), Mat::new(x, in_channels, n), false);
    col2im(pool, g, col, y, batch);
}

/// ConvTranspose2d backward: `dW = x · im2col_g(dy)ᵀ`, and `dx = W · im2col_g(dy)` when
/// `dx` is given.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_backward(
    pool: &Pool,
    g: &ConvGeometry,
    w: &[f32],
    dw: &mut [f32],
    in_channels: usize,
    x: &[f32],
    dy: &[f32],
    dx: Option<&mut [f32]>,
    col: &mut [f32],
    batch: usize,
) {
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    im2col(pool, g, dy, col, batch);
    matmul(pool, dw, Mat::new(x, in_channels, n), Mat::new(col, k, n).t(), false);
    if let Some(dx) = dx {
        matmul(pool, dx, Mat::new(w, in_channels, k), Mat::new(col, k, n), false);
    }
}
