//! The compute core: hot thread pool, `gemm` wrapper, fused kernels, Adam, random numbers.
//! Callers own every buffer of activations and gradients. Small per-call allocations remain
//! where noted: the implicit convolutions pack their weights per call (`implicit`), the
//! likelihoods' per-part scratch (`likelihood::mixture`), the GMM's and the VampPrior's
//! working vectors.

pub mod activations;
pub mod adam;
pub mod bf16;
pub mod buffer;
pub mod collective;
pub mod conv;
pub mod cpu;
pub mod fpmode;
pub mod im2col;
#[cfg(target_arch = "x86_64")]
pub mod implicit;
pub mod importance;
pub mod kernels;
pub mod likelihood;
pub mod logsumexp;
pub mod matmul;
pub mod pool;
pub mod rng;
pub mod shape;
pub mod simd;
pub mod tc;
pub mod vamp;

pub use adam::{AdamConfig, AdamState, adam_step, adam_step_parts};
pub use buffer::Buffer;
pub use fpmode::FlushDenormals;
pub use matmul::{Mat, matmul};
pub use pool::Pool;
pub use rng::{Purpose, Rng};
pub use shape::Shape;
