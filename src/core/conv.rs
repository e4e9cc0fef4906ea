//! The three products a convolution layer needs, with the column matrix built block by block
//! in each thread's cache instead of in memory.
//!
//! With `col = im2col_g(x)` (`[K, N]`, K = C·k·k, N = Ho·Wo·B; see `core::im2col`):
//!
//! ```text
//! columns_product     y [M, N] = a [M, K] · col                 conv forward, transposed-conv dx
//! columns_product_t   d [M, K] = e [M, N] · colᵀ                conv dW, transposed-conv dW
//! col2im_product      out      = col2im_g(aᵀ · e),  a [M, K]    conv dx, transposed-conv forward
//! ```
//!
//! A full column matrix is large (12.8 MB for MNIST's second convolution at batch 128, 67 MB
//! for a 64×64 colour model's): writing it out and reading it back made those layers run at
//! half the speed of their products. Here every thread fills a block of at most
//! [`block_floats`] floats (a quarter of its L2 cache), multiplies it at once, and moves on:
//!
//! - `columns_product` splits the N columns across threads (disjoint output columns);
//! - `columns_product_t` splits the K rows (each thread builds only its rows, and writes its
//!   own columns of `d`; no partial sums to add);
//! - `col2im_product` splits the output's channels (each thread computes the column rows of
//!   its channels, which only it scatters), or, for fewer channels than that can balance,
//!   the rows of output positions in two passes (even rows, then odd) so that no two threads
//!   add into the same pixels at once.
//!
//! In bf16 on `vdpbf16ps`, at batches of whole 16-lane chunks, the three products read the
//! activations in place instead, paired along the channels (or, for the weight gradient, along
//! the batch) once per call (`paired`, `paired_grad`); the blocked products gather bf16 pairs
//! elsewhere. With `VAE_SIMD=amx` on an AMX CPU the paired products run on tiles where their
//! shapes fill them (`tiles`).
//!
//! Every split depends on the thread count only, and each pixel's terms are added in a fixed
//! order, so results are reproducible for a given thread count.

use super::bf16;
use super::im2col::ConvGeometry;
use super::matmul::Mat;
use super::pool::{Pool, SyncMut};
use super::shape::holds;

/// What a product's output gets before it is stored: a bias per output row (a channel), and
/// optionally ReLU — a convolution layer's bias and activation fused into its product.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    pub bias: &'a [f32],
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Applies the epilogue to a finished `[rows, cols]` output on the pool (the portable path).
    fn apply(&self, pool: &Pool, out: &mut [f32], cols: usize) {
        if self.relu {
            super::activations::bias_relu(pool, out, self.bias, cols);
        } else {
            super::kernels::bias_add(&mut out[..self.bias.len() * cols], self.bias, cols);
        }
    }
}

/// A ReLU layer's backward fused into the product that computes its output gradient:
/// the product's output `g` becomes `g · [h > 0]` (`h` the layer's output, same layout) and
/// `db` receives its row sums, the layer's bias gradient.
pub struct ReluGrad<'a> {
    pub h: &'a [f32],
    pub db: &'a mut [f32],
}

impl ReluGrad<'_> {
    /// Applies it to a finished `[rows, cols]` product on the pool (the portable path).
    fn apply(self, pool: &Pool, out: &mut [f32], cols: usize) {
        let rows = self.db.len();
        super::activations::activation_backward(
            pool,
            super::activations::Activation::Relu,
            &mut out[..rows * cols],
            self.h,
            self.db,
            cols,
        );
    }
}

/// A ReLU backward fused into a product that computes a layer's output gradient, as the
/// kernels see it: `h` is the layer's output (the product's output layout) and `sums`
/// `[threads, rows]` receives each part's row sums (the layer's bias gradient), zeroed by the
/// caller.
#[derive(Clone, Copy)]
pub struct Mask<'a> {
    pub h: &'a [f32],
    pub sums: SyncMut<'a, f32>,
}

/// Runs a product with a fused ReLU backward (the implicit or the paired one): per-part row
/// sums in the scratch (neither path needs other scratch), added in part order into `db`.
fn with_mask(pool: &Pool, mask: Option<ReluGrad>, rows: usize, scratch: &mut [f32], run: impl FnOnce(Option<Mask>)) {
    let Some(ReluGrad { h, db }) = mask else { return run(None) };
    let parts = pool.threads();
    let sums = &mut scratch[..parts * rows];
    sums.fill(0.0);
    run(Some(Mask { h, sums: SyncMut::new(sums) }));
    db.copy_from_slice(&sums[..rows]);
    for p in 1..parts {
        db.iter_mut().zip(&sums[p * rows..(p + 1) * rows]).for_each(|(a, b)| *a += b);
    }
}

/// Floats of column-matrix block per thread: a quarter of the core's L2
/// ([`super::cpu::Tuning::conv_block`]; 256 KB of a Zen 5 core's 1 MB).
pub fn block_floats() -> usize {
    super::cpu::tuning().conv_block
}

/// Scratch floats the products need for a pool of `threads`.
pub fn scratch_len(threads: usize) -> usize {
    threads * block_floats()
}

/// Whether the AVX-512 implicit-GEMM kernels (`core::implicit`) run a product, rather than
/// the portable blocked ones below; `a` must then be a plain row-major matrix.
fn implicit(a: Mat) -> bool {
    cfg!(target_arch = "x86_64")
        && super::simd::level() == super::simd::Level::V4
        && a.is_row_major()
        && !PORTABLE.get()
        && !bf16::enabled()
}

/// Whether the bf16 products on channel-paired activations (`paired`) run a product, rather
/// than the blocked ones gathering bf16 column blocks.
fn paired(batch: usize) -> bool {
    bf16::enabled() && !PORTABLE.get() && paired::applies(batch)
}

/// The paired forward pairs the input's channels and the paired transposed product fills
/// blocks of 6 output channels: an image's 1 or 3 channels waste half a pair or most of a
/// block, and the blocked products are faster there (`examples/conv_parts.rs 128 1`: MNIST's
/// first layer forward 0.30 vs 1.22 ms, a colour image's 4.9 vs 8.1 ms, their transposed
/// products 0.43 vs 1.33 and 6.2 vs 10.7 ms). The weight gradient is faster paired for all.
const PAIRED_MIN_CHANNELS: usize = 8;

/// Whether the paired forward or transposed product runs (a row-major weight, enough
/// channels: [`PAIRED_MIN_CHANNELS`]).
fn paired_gather(a: Mat, g: &ConvGeometry, batch: usize) -> bool {
    paired(batch) && a.is_row_major() && g.channels() >= PAIRED_MIN_CHANNELS
}

/// The gathering `col2im_product` fills blocks of 6 output channels: below 8 channels (an
/// image's 1 or 3) most of each block is wasted, and the blocked scatter is faster
/// (`examples/conv_parts.rs`: 0.11 vs 0.39 ms for MNIST's first layer).
const IMPLICIT_MIN_CHANNELS: usize = 8;

/// Below this batch the gathering `col2im_product` fills its 64-column blocks only at stride
/// 1, where adjacent pixels share their taps and can share a block; at stride 2 each block
/// holds one pixel's batch, and the blocked scatter is faster (batch 32, 64 → 32 channels at
/// 32×32: 3.2 vs 5.5 ms; `examples/conv_parts.rs 32`).
const IMPLICIT_MIN_BATCH: usize = 64;

/// The implicit weight gradient runs `e`'s rows 32 or 64 at a time (below 32 most lanes idle),
/// and pays a transpose of `e`'s block per position, which MNIST's first layer's 16 columns
/// do not repay (0.15 vs 0.12 ms); a colour image's 48 do (1.4 vs 2.5 ms at 64×64).
const IMPLICIT_MIN_E_ROWS: usize = 32;
const IMPLICIT_MIN_COLUMNS: usize = 32;

thread_local! {
    /// Whether this thread's products are forced onto the portable path ([`force_portable`]).
    static PORTABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Forces the portable products for the products this thread starts (`false` restores the
/// default), to test and time both paths on one machine. Per thread, because the path is
/// chosen on the calling thread: a test flipping it cannot change the path another test,
/// running beside it in the same process, takes.
pub fn force_portable(on: bool) {
    PORTABLE.set(on);
}

/// `y [M, N] = a [M, K] · im2col_g(x)`, overwriting `y`; columns split across the pool.
/// `scratch` holds at least [`scratch_len`] floats.
#[allow(clippy::too_many_arguments)]
pub fn columns_product(
    pool: &Pool,
    g: &ConvGeometry,
    a: Mat,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
    mask: Option<ReluGrad>,
) {
    let (m, k, n) = (a.rows(), g.col_rows(), g.out_plane() * batch);
    assert_eq!(a.cols(), k, "columns_product: a must be [M, {k}]");
    assert!(holds(x.len(), &[g.in_size(), batch]) && holds(y.len(), &[m, n]), "columns_product: buffers too small");
    assert!(scratch.len() >= scratch_len(pool.threads()), "columns_product: scratch too small");
    assert!(epilogue.is_none_or(|e| e.bias.len() == m), "columns_product: a bias per output row");
    assert!(
        mask.as_ref().is_none_or(|mk| mk.db.len() == m && holds(mk.h.len(), &[m, n])),
        "columns_product: mask shape"
    );
    #[cfg(target_arch = "x86_64")]
    if implicit(a) {
        // SAFETY: `implicit` checked for AVX-512.
        let run =
            |mk: Option<Mask>| unsafe { super::implicit::forward(pool, g, a.data(), m, x, y, batch, epilogue, mk) };
        return with_mask(pool, mask, m, scratch, run);
    }
    if paired_gather(a, g, batch) {
        let run = |mk: Option<Mask>| paired::forward(pool, g, a, x, y, batch, epilogue, mk);
        return with_mask(pool, mask, m, scratch, run);
    }
    blocked_columns_product(pool, g, a, x, y, scratch, batch);
    if let Some(e) = epilogue {
        e.apply(pool, &mut y[..m * n], n);
    }
    if let Some(mk) = mask {
        mk.apply(pool, y, n);
    }
}

/// `d [M, K] = e [M, N] · im2col_g(x)ᵀ`, overwriting `d`; the K rows split across the pool.
#[allow(clippy::too_many_arguments)]
pub fn columns_product_t(
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
    assert!(
        holds(e.len(), &[m, n]) && holds(d.len(), &[m, k]) && holds(x.len(), &[g.in_size(), batch]),
        "columns_product_t: buffers"
    );
    assert!(scratch.len() >= scratch_len(pool.threads()), "columns_product_t: scratch too small");
    #[cfg(target_arch = "x86_64")]
    if implicit(Mat::new(e, m, n)) && m >= IMPLICIT_MIN_E_ROWS && k >= IMPLICIT_MIN_COLUMNS {
        // SAFETY: `implicit` checked for AVX-512.
        return unsafe { super::implicit::weight_grad(pool, g, e, m, x, d, batch) };
    }
    if paired(batch) {
        return paired_grad::weight_grad(pool, g, e, m, x, d, batch);
    }
    blocked::blocked_columns_product_t(pool, g, e, m, x, d, scratch, batch);
}

/// `out = col2im_g(aᵀ · e)` with `a` `[M, K]` and `e` `[M, N]`, overwriting `out`
/// (`[C, H, W, B]` of the geometry's input side).
#[allow(clippy::too_many_arguments)]
pub fn col2im_product(
    pool: &Pool,
    g: &ConvGeometry,
    a: Mat,
    e: &[f32],
    out: &mut [f32],
    scratch: &mut [f32],
    batch: usize,
    epilogue: Option<Epilogue>,
    mask: Option<ReluGrad>,
) {
    let (m, k, n) = (a.rows(), g.col_rows(), g.out_plane() * batch);
    assert_eq!(a.cols(), k, "col2im_product: a must be [M, {k}]");
    assert!(holds(e.len(), &[m, n]) && holds(out.len(), &[g.in_size(), batch]), "col2im_product: buffers too small");
    assert!(scratch.len() >= scratch_len(pool.threads()), "col2im_product: scratch too small");
    assert!(epilogue.is_none_or(|e| e.bias.len() == g.channels()), "col2im_product: a bias per channel");
    let plane = g.height() * g.width() * batch;
    assert!(
        mask.as_ref().is_none_or(|mk| mk.db.len() == g.channels() && mk.h.len() >= g.channels() * plane),
        "col2im_product: mask shape"
    );
    #[cfg(target_arch = "x86_64")]
    if implicit(a) && g.channels() >= IMPLICIT_MIN_CHANNELS && (batch >= IMPLICIT_MIN_BATCH || g.stride() == 1) {
        // SAFETY: `implicit` checked for AVX-512.
        let run = |mk: Option<Mask>| unsafe {
            super::implicit::transposed(pool, g, a.data(), m, e, out, batch, epilogue, mk)
        };
        return with_mask(pool, mask, g.channels(), scratch, run);
    }
    if paired_gather(a, g, batch) {
        let run = |mk: Option<Mask>| paired::transposed(pool, g, a, e, out, batch, epilogue, mk);
        return with_mask(pool, mask, g.channels(), scratch, run);
    }
    blocked_col2im_product(pool, g, a, e, out, scratch, batch);
    if let Some(ep) = epilogue {
        ep.apply(pool, &mut out[..g.channels() * plane], plane);
    }
    if let Some(mk) = mask {
        mk.apply(pool, out, plane);
    }
}

mod blocked;
mod paired;
mod paired_grad;
mod pairs;
mod tiles;
mod weights;

#[cfg(test)]
use blocked::im2col_block;
use blocked::{blocked_col2im_product, blocked_columns_product};

#[cfg(test)]
mod tests;
