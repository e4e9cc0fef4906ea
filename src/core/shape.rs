//! The shape of an image as it travels from the data through the model to the pictures.

use serde::{Deserialize, Serialize};

/// Whether a buffer of `len` values holds the product of `dims`, computed with checked
/// arithmetic: a product that overflows `usize` fits no buffer (unchecked, it would wrap to a
/// small number and let a kernel write past the end).
pub fn holds(len: usize, dims: &[usize]) -> bool {
    dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d)).is_some_and(|n| len >= n)
}

/// The longest image side `vae` takes (pictures, folders, models).
pub const MAX_SIDE: usize = 4096;

/// An image's shape: `channels × height × width`, stored channel-major (PyTorch's CHW), so
/// the `c·h·w` values of one image are one column of a *features × batch* buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Shape {
    pub const fn new(channels: usize, height: usize, width: usize) -> Shape {
        Shape { channels, height, width }
    }

    /// MNIST's 1 × 28 × 28.
    pub const fn mnist() -> Shape {
        Shape::new(1, 28, 28)
    }

    /// Values per image: `channels · height · width`.
    pub const fn size(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixels per channel: `height · width`.
    pub const fn plane(&self) -> usize {
        self.height * self.width
    }

    pub const fn is_grey(&self) -> bool {
        self.channels == 1
    }
}

impl std::fmt::Display for Shape {
    /// `28x28 grey`, `64x64 RGB`, or `32x32x5` for other channel counts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.channels {
            1 => write!(f, "{}x{} grey", self.width, self.height),
            3 => write!(f, "{}x{} RGB", self.width, self.height),
            c => write!(f, "{}x{}x{c}", self.width, self.height),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_names() {
        let s = Shape::new(3, 64, 48);
        assert_eq!((s.size(), s.plane()), (3 * 64 * 48, 64 * 48));
        assert_eq!(s.to_string(), "48x64 RGB");
        assert_eq!(Shape::mnist().to_string(), "28x28 grey");
        assert_eq!(Shape::mnist().size(), 784);
    }

    #[test]
    fn holds_checks_the_product_without_wrapping() {
        assert!(holds(12, &[3, 4]) && !holds(11, &[3, 4]) && holds(0, &[5, 0]));
        // 2^32 · 2^32 wraps to 0 in usize: it fits no buffer, an empty one included.
        assert!(!holds(0, &[1 << 32, 1 << 32]) && !holds(usize::MAX, &[1 << 40, 1 << 30]));
    }
}
