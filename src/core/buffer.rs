//! [`Buffer`]: a zeroed `f32` buffer whose start lies on a 64-byte cache line.
//!
//! The convolution kernels write their large outputs (feature maps of many MB, which no cache
//! keeps until the next layer reads them) with streaming stores, which skip reading each line
//! before writing it but need whole, aligned lines (`core::implicit`). A `Vec<f32>` is only
//! 16-byte aligned by the system allocator, so a workspace holds its activations in these.

use std::ops::{Deref, DerefMut};

/// One cache line of floats.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// `len` floats, zeroed, starting on a cache line; a slice of `f32` by `Deref`.
#[derive(Clone, Default)]
pub struct Buffer {
    lines: Vec<Line>,
    len: usize,
}

impl Buffer {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Buffer {
        Buffer { lines: vec![Line([0.0; 16]); len.div_ceil(16)], len }
    }
}

impl Deref for Buffer {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        // SAFETY: `Line` is `repr(C)` over `[f32; 16]` with no padding (64 bytes), so the lines
        // are `16 · lines.len() ≥ len` contiguous, initialised floats; an empty vector's
        // dangling pointer is aligned and non-null, valid for a zero-length slice.
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<f32>(), self.len) }
    }
}

impl DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, borrowed mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<f32>(), self.len) }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_aligned_and_exactly_as_long_as_asked() {
        for len in [0, 1, 15, 16, 17, 1000, 1 << 20] {
            let mut b = Buffer::zeros(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&v| v == 0.0));
            assert_eq!(b.as_ptr() as usize % 64, 0, "len {len}");
            b.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32);
            let c = b.clone();
            assert!(c.iter().enumerate().all(|(i, &v)| v == i as f32));
            assert_eq!(c.as_ptr() as usize % 64, 0);
        }
    }
}
