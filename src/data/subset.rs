//! Subsets that represent the data: `--train-limit`/`--test-limit`, `eval --limit`, and the
//! test images that previews show, as a seeded sample stratified across classes, not the
//! first files (an image folder lists its classes one after another, so the first 300
//! files of ten classes are two of them).
//!
//! Each class gets its share of the `n` examples by largest remainders (Hamilton's method:
//! class k with c_k of N examples gets ⌊n·c_k/N⌋, and the classes with the largest
//! fractional parts one more each), each class's examples are a seeded shuffle of its own,
//! and the subset keeps the examples' original order. The same (split, n, seed) always gives
//! the same subset, so `eval` and `fit-sampler` see the images the run trained on.

use super::Split;
use crate::core::{Purpose, Rng};

/// How many of each class's `counts` a stratified sample of `n` takes (all of them when `n`
/// is at least their total).
pub fn quotas(counts: &[usize], n: usize) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    if n >= total {
        return counts.to_vec();
    }
    // Exact in integers: n·c_k fits in u128.
    let mut q: Vec<usize> = counts.iter().map(|&c| (n as u128 * c as u128 / total as u128) as usize).collect();
    let mut left = n - q.iter().sum::<usize>();
    // Largest remainder first; ties to the lower class.
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by_key(|&k| (std::cmp::Reverse(n as u128 * counts[k] as u128 % total as u128), k));
    for k in order {
        if left == 0 {
            break;
        }
        if q[k] < counts[k] {
            q[k] += 1;
            left -= 1;
        }
    }
    q
}

/// The indices of a seeded stratified sample of `n` of `split`'s examples, ascending.
pub fn sample_indices(split: &Split, n: usize, seed: u64) -> Vec<usize> {
    if n >= split.len() {
        return (0..split.len()).collect();
    }
    let classes = split.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in split.labels.iter().enumerate() {
        members[l as usize].push(i);
    }
    let counts: Vec<usize> = members.iter().map(Vec::len).collect();
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    for (k, (mut m, q)) in members.into_iter().zip(quotas(&counts, n)).enumerate() {
        Rng::stream(seed, Purpose::Subset, k as u64).shuffle(&mut m);
        chosen.extend_from_slice(&m[..q]);
    }
    chosen.sort_unstable();
    chosen
}

/// The examples at `indices`, in that order.
pub fn select(split: &Split, indices: &[usize]) -> Split {
    let images = indices.iter().flat_map(|&i| split.image(i).iter().copied()).collect();
    let labels = indices.iter().map(|&i| split.labels[i]).collect();
    Split { images, labels, shape: split.shape }
}

/// A seeded stratified sample of `n` of `split`'s examples, in their original order.
pub fn sample(split: &Split, n: usize, seed: u64) -> Split {
    if n >= split.len() {
        return split.clone();
    }
    select(split, &sample_indices(split, n, seed))
}

/// `n` examples to show: a stratified sample, ordered class by class in turn (0, 1, 2, …, 0,
/// 1, …) so a grid of them shows every class from its first row.
pub fn preview_indices(split: &Split, n: usize, seed: u64) -> Vec<usize> {
    let chosen = sample_indices(split, n, seed);
    let classes = split.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<std::collections::VecDeque<usize>> = vec![Default::default(); classes];
    for i in chosen {
        by_class[split.labels[i] as usize].push_back(i);
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n.min(split.len()) {
        for q in by_class.iter_mut() {
            if let Some(i) = q.pop_front() {
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Shape;

    /// `per_class[k]` examples of class k, one after another (as an image folder lists them);
    /// each image's single pixel is its index, so a subset shows which it took.
    fn grouped(per_class: &[usize]) -> Split {
        let labels: Vec<u8> =
            per_class.iter().enumerate().flat_map(|(k, &c)| std::iter::repeat_n(k as u8, c)).collect();
        let images = (0..labels.len()).map(|i| i as u8).collect();
        Split { images, labels, shape: Shape::new(1, 1, 1) }
    }

    #[test]
    fn quotas_are_proportional_by_largest_remainder() {
        assert_eq!(quotas(&[30, 30, 30, 30, 30, 30, 30, 30, 30, 30], 25), vec![3, 3, 3, 3, 3, 2, 2, 2, 2, 2]);
        // 7·(5, 3, 2)/10 = 3.5, 2.1, 1.4: floors 3, 2, 1 and the one left to the largest
        // remainder (0.5, class 0).
        assert_eq!(quotas(&[5, 3, 2], 7), vec![4, 2, 1]);
        assert_eq!(quotas(&[5, 3, 2], 10), vec![5, 3, 2]);
        assert_eq!(quotas(&[5, 3, 2], 99), vec![5, 3, 2]);
        assert_eq!(quotas(&[5, 0, 2], 0), vec![0, 0, 0]);
        for n in 0..=10 {
            assert_eq!(quotas(&[5, 3, 2], n).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn a_limit_on_a_folder_in_class_order_takes_every_class() {
        // Issue 22: 300 of ten classes of 382 took the first two classes.
        let split = grouped(&[382; 10]);
        let s = sample(&split, 300, 1);
        assert_eq!(s.len(), 300);
        assert_eq!(s.label_counts(10), vec![30; 10]);
        // Original order kept, no example twice, and each is the image it claims to be.
        let picked: Vec<usize> = s.images.iter().map(|&v| v as usize).collect();
        let idx = sample_indices(&split, 300, 1);
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        assert!(idx.iter().zip(&picked).all(|(&i, &v)| i % 256 == v));
        assert!(idx.iter().zip(&s.labels).all(|(&i, &l)| split.labels[i] == l));
        // Seeded: the same seed the same subset, another seed another.
        assert_eq!(sample_indices(&split, 300, 1), idx);
        assert_ne!(sample_indices(&split, 300, 2), idx);
        // Not the first 30 of each class.
        assert!(idx.iter().any(|&i| i % 382 >= 30));
    }

    #[test]
    fn unequal_classes_keep_their_proportions_and_small_ones_survive() {
        let split = grouped(&[900, 90, 10]);
        assert_eq!(sample(&split, 100, 3).label_counts(3), vec![90, 9, 1]);
        assert_eq!(sample(&split, 5000, 3).len(), 1000);
    }

    #[test]
    fn previews_show_every_class_from_the_first_row() {
        let split = grouped(&[382; 10]);
        let p = preview_indices(&split, 50, 1);
        assert_eq!(p.len(), 50);
        let labels: Vec<u8> = p.iter().map(|&i| split.labels[i]).collect();
        assert_eq!(&labels[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(&labels[40..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        // Fewer examples than asked: all of them.
        let small = grouped(&[2, 1]);
        assert_eq!(preview_indices(&small, 50, 1), vec![0, 2, 1]);
    }
}
