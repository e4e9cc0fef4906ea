//! Flush-to-zero and denormals-are-zero while the kernels run.
//!
//! A float below 2^-126 ≈ 1.18e-38 (a *subnormal*) costs a microcode assist of ~100 cycles
//! per operation on Intel cores (far less on AMD's Zen). Training makes them: Adam's moments
//! of a weight whose gradient is almost always 0 (the weights of MNIST's border pixels)
//! decay by β₁ = 0.9 and β₂ = 0.999 per step towards 0 and, a few thousand steps in, cross
//! into the subnormal range, so every later step slows down (issue 21 measured epochs
//! going from 1.08 s to 1.77 s on a Xeon). Setting the two MXCSR bits below makes the SSE/AVX
//! units treat subnormal inputs as 0 (DAZ, bit 6) and round subnormal results to 0 (FTZ,
//! bit 15), as PyTorch's `torch.set_flush_denormal(True)` and oneDNN do.
//!
//! What it changes numerically: only values whose magnitude is below 1.18e-38 become 0. No
//! loss, gradient or parameter that matters is that small: the tutorial's 50-epoch run gives
//! the same test loss to the printed digit with and without it (README, BENCHMARKS.md).
//!
//! Where it is set: [`FlushDenormals`] saves the calling thread's MXCSR, sets both bits and
//! restores the saved value when dropped, so a library caller's own floating-point mode is
//! left as it was. [`crate::core::Pool`] holds one for every job on the calling thread (and
//! sets the bits once on its own worker threads, which run nothing else), and
//! `train::Trainer::train_epoch` and `train::evaluate` hold one for their serial kernels too, so
//! results do not depend on which kernels went parallel (1 and 2 threads stay bit for bit
//! the same).
//!
//! A note on the compiler: LLVM assumes the default floating-point environment and may fold
//! a constant expression with subnormal intermediates differently from how the hardware now
//! computes it at run time. That can only differ below 1.18e-38, never in a value the crate
//! reads, so it is accepted here as in every framework that flushes denormals. The MXCSR is
//! read and written with `stmxcsr`/`ldmxcsr` in `asm!` (the `_mm_setcsr` intrinsic is
//! deprecated).

use std::marker::PhantomData;

/// MXCSR bit 15: results that would be subnormal are flushed to ±0.
pub const FTZ: u32 = 1 << 15;
/// MXCSR bit 6: subnormal inputs are read as ±0.
pub const DAZ: u32 = 1 << 6;

/// The calling thread's MXCSR (0 off x86-64).
#[inline]
pub fn mxcsr() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut csr = 0u32;
        // SAFETY: `stmxcsr` stores the 4-byte MXCSR at a valid, writable address; SSE is part
        // of x86-64.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags));
        }
        csr
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// Loads `csr` into the calling thread's MXCSR (nothing off x86-64).
#[inline]
fn set_mxcsr(csr: u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `ldmxcsr` reads 4 bytes from a valid address. The values loaded here are the
    // thread's own MXCSR with at most the FTZ and DAZ bits changed, both supported by every
    // x86-64 CPU, so it cannot fault (a reserved bit set would raise #GP).
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = csr;
}

/// Sets FTZ and DAZ on the calling thread for the rest of its life. For threads the crate
/// owns (the pool's workers, the `vae` binary's main thread); library code uses
/// [`FlushDenormals`].
pub fn flush_denormals_on_this_thread() {
    let csr = mxcsr();
    if csr & (FTZ | DAZ) != FTZ | DAZ {
        set_mxcsr(csr | FTZ | DAZ);
    }
}

/// While alive, the calling thread flushes subnormals to zero (FTZ and DAZ); dropping it
/// restores the thread's MXCSR as it was. Guards nest. Not `Send`: it must be dropped on the
/// thread that made it.
#[must_use = "the mode is restored when the guard is dropped"]
pub struct FlushDenormals {
    saved: u32,
    _not_send: PhantomData<*const ()>,
}

impl FlushDenormals {
    /// Sets FTZ and DAZ on the calling thread until the guard is dropped. Costs two MXCSR
    /// accesses (a few ns), and only one when the bits are already set.
    #[inline]
    pub fn new() -> FlushDenormals {
        let saved = mxcsr();
        if saved & (FTZ | DAZ) != FTZ | DAZ {
            set_mxcsr(saved | FTZ | DAZ);
        }
        FlushDenormals { saved, _not_send: PhantomData }
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        FlushDenormals::new()
    }
}

impl Drop for FlushDenormals {
    #[inline]
    fn drop(&mut self) {
        // Restore only the two mode bits: the exception flags accumulated meanwhile stay.
        let now = mxcsr();
        let restored = (now & !(FTZ | DAZ)) | (self.saved & (FTZ | DAZ));
        if restored != now {
            set_mxcsr(restored);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The smallest positive normal f32 halved: a subnormal (2^-127).
    fn subnormal() -> f32 {
        std::hint::black_box(f32::MIN_POSITIVE) * std::hint::black_box(0.5)
    }

    #[test]
    fn the_guard_flushes_and_restores_the_callers_mode() {
        // A test thread starts with the default MXCSR (0x1f80: all exceptions masked,
        // round to nearest, no FTZ/DAZ).
        std::thread::spawn(|| {
            let before = mxcsr();
            assert_eq!(before & (FTZ | DAZ), 0, "a new thread starts without FTZ/DAZ");
            assert_eq!(subnormal(), f32::MIN_POSITIVE / 2.0, "without the guard the subnormal survives");
            {
                let _outer = FlushDenormals::new();
                assert_eq!(mxcsr() & (FTZ | DAZ), FTZ | DAZ);
                // FTZ: a product that would be subnormal is 0.
                assert_eq!(subnormal(), 0.0);
                // DAZ: a subnormal input reads as 0 (its bits made without arithmetic).
                let tiny = std::hint::black_box(f32::from_bits(1));
                assert_eq!(tiny * std::hint::black_box(1.0), 0.0);
                {
                    let _inner = FlushDenormals::new();
                    assert_eq!(subnormal(), 0.0);
                }
                // The inner guard restores what it found: still flushing.
                assert_eq!(mxcsr() & (FTZ | DAZ), FTZ | DAZ);
                assert_eq!(subnormal(), 0.0);
            }
            assert_eq!(mxcsr() & (FTZ | DAZ), before & (FTZ | DAZ));
            assert_eq!(subnormal(), f32::MIN_POSITIVE / 2.0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_caller_that_already_flushes_keeps_flushing() {
        std::thread::spawn(|| {
            flush_denormals_on_this_thread();
            drop(FlushDenormals::new());
            assert_eq!(mxcsr() & (FTZ | DAZ), FTZ | DAZ);
            assert_eq!(subnormal(), 0.0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn pool_jobs_flush_on_every_thread_and_restore_the_caller() {
        std::thread::spawn(|| {
            let before = mxcsr() & (FTZ | DAZ);
            for threads in [1, 2] {
                let pool = crate::core::Pool::new(threads);
                let flushed: Vec<std::sync::atomic::AtomicBool> =
                    (0..threads).map(|_| std::sync::atomic::AtomicBool::new(false)).collect();
                pool.run(&|p| {
                    let on = mxcsr() & (FTZ | DAZ) == FTZ | DAZ && subnormal() == 0.0;
                    flushed[p].store(on, std::sync::atomic::Ordering::SeqCst);
                });
                assert!(flushed.iter().all(|f| f.load(std::sync::atomic::Ordering::SeqCst)), "{threads} threads");
                assert_eq!(mxcsr() & (FTZ | DAZ), before, "the caller's mode is restored");
            }
        })
        .join()
        .unwrap();
    }
}
