//! Convolution and transposed convolution, each forward beside its backward, in the
//! *features × batch* layout `[C, H, W, B]` (see `core::im2col`), on the blocked products of
//! `core::conv` (the column matrix never exists whole).
//!
//! `Conv2d(C_in → C_out)` with weight `[C_out, C_in, k, k]` = `[C_out, C_in·k·k]` row-major,
//! `g` its input side, `col = im2col_g(x)` `[C_in·k·k, Ho·Wo·B]`:
//!
//! ```text
//! forward          y [C_out, Ho·Wo·B] = W · col
//! weight gradient  dW [C_out, C_in·k·k] = dy · colᵀ
//! input gradient   dx = col2im_g(Wᵀ · dy)
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

use crate::core::Mat;
use crate::core::Pool;
use crate::core::conv::{Epilogue, ReluGrad, col2im_product, columns_product, columns_product_t};
use crate::core::im2col::ConvGeometry;

/// Conv2d forward: `y [C_out, Ho·Wo·B] = W · im2col_g(x)`, then the epilogue (bias per
/// channel, ReLU). `scratch`: `core::conv::scratch_len`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_forward(
    pool: &Pool,
    g: &ConvGeometry,
    w: &[f32],
    out_channels: usize,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
) {
    columns_product(pool, g, Mat::new(w, out_channels, g.col_rows()), x, y, scratch, batch, epilogue, None);
}

/// Conv2d backward: `dW = dy · im2col(x)ᵀ`, and `dx = col2im(Wᵀ · dy)` when `dx` is given,
/// with `relu` the backward of the ReLU that produced x applied to it.
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
    relu: Option<ReluGrad>,
    scratch: &mut [f32],
    batch: usize,
) {
    columns_product_t(pool, g, dy, out_channels, x, dw, scratch, batch);
    if let Some(dx) = dx {
        col2im_product(pool, g, Mat::new(w, out_channels, g.col_rows()), dy, dx, scratch, batch, None, relu);
    }
}

/// ConvTranspose2d forward: `y [C_out, H, W, B] = col2im_g(Wᵀ · x)` with `x` `[C_in, Ho·Wo·B]`,
/// then the epilogue.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose2d_forward(
    pool: &Pool,
    g: &ConvGeometry,
    w: &[f32],
    in_channels: usize,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
) {
    col2im_product(pool, g, Mat::new(w, in_channels, g.col_rows()), x, y, scratch, batch, epilogue, None);
}

/// ConvTranspose2d backward: `dW = x · im2col_g(dy)ᵀ`, and `dx = W · im2col_g(dy)` when
/// `dx` is given, with `relu` the backward of the ReLU that produced x applied to it.
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
    relu: Option<ReluGrad>,
    scratch: &mut [f32],
    batch: usize,
) {
    columns_product_t(pool, g, x, in_channels, dy, dw, scratch, batch);
    if let Some(dx) = dx {
        columns_product(pool, g, Mat::new(w, in_channels, g.col_rows()), dy, dx, scratch, batch, None, relu);
    }
}
