//! The products of a linear layer `y = W·x + b` in the *features × batch* layout, with
//! PyTorch's `[out, in]` weights (Kingma & Welling's MLPs, the tutorial's `nn.Linear`):
//!
//! ```text
//! forward          y  [out, B]  = W [out, in] · x [in, B]        (bias added by the caller)
//! weight gradient  dW [out, in] = dy [out, B] · xᵀ [B, in]
//! input gradient   dx [rows, B] = W[:, :rows]ᵀ · dy [out, B]     (the first `rows` inputs)
//! ```
//!
//! The bias is left to a fused pass (bias + activation, or bias + likelihood) whose row sum
//! is the bias gradient.

use crate::core::{Mat, Pool, bf16};

/// The product the layer's products use: f32, or bf16 with f32 sums when this thread asked
/// for it ([`bf16::set_enabled`]).
fn matmul(pool: &Pool, dst: &mut [f32], a: Mat, b: Mat, accumulate: bool) {
    if bf16::enabled() {
        bf16::matmul_bf16(pool, dst, a, b, accumulate);
    } else {
        crate::core::matmul(pool, dst, a, b, accumulate);
    }
}

/// `y [out, B] = W [out, in] · x [in, B]`, overwriting `y`.
pub fn forward(pool: &Pool, w: &[f32], (outputs, inputs): (usize, usize), x: &[f32], y: &mut [f32], batch: usize) {
    matmul(pool, y, Mat::new(w, outputs, inputs), Mat::new(x, inputs, batch), false);
}

/// `dW [out, in] = dy [out, B] · xᵀ [B, in]`, overwriting `dw`.
pub fn weight_grad(
    pool: &Pool,
    dw: &mut [f32],
    (outputs, inputs): (usize, usize),
    dy: &[f32],
    x: &[f32],
    batch: usize,
) {
    matmul(pool, dw, Mat::new(dy, outputs, batch), Mat::new(x, inputs, batch).t(), false);
}

/// `dx [rows, B] = W[:, :rows]ᵀ · dy [out, B]`: the gradient of the first `rows` inputs
/// (a label appended to the input needs none).
pub fn input_grad(
    pool: &Pool,
    w: &[f32],
    (outputs, inputs): (usize, usize),
    rows: usize,
    dy: &[f32],
    dx: &mut [f32],
    batch: usize,
) {
    matmul(pool, dx, Mat::columns(w, outputs, rows, inputs).t(), Mat::new(dy, outputs, batch), false);
}
