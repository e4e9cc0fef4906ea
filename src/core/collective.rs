//! Data-parallel training's one operation: every worker computes part of each batch, then the
//! workers sum their gradients and loss sums, and all take the same optimiser step.
//!
//! A [`Collective`] is that sum. [`Alone`] is one process (nothing to sum); [`LocalGroup`]
//! is workers on threads of one process, which tests use to check that a batch split across
//! workers trains as the whole batch does; an MPI build adds ranks on many machines. Every
//! implementation adds the workers' contributions in rank order (0, 1, …), so the result is
//! the same bits on every worker and from run to run, whatever order they arrive in.

use std::sync::{Arc, Barrier, Mutex};

/// Why a collective operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    /// Another worker stopped taking part (it died, or stopped early).
    #[error("worker {rank} of {size} is gone: {why}")]
    Gone { rank: usize, size: usize, why: String },
    /// The workers' buffers differ in length: they run different models.
    #[error(
        "worker {rank} summed {len} values where worker 0 summed {expected}; every worker must train the same model"
    )]
    Length { rank: usize, len: usize, expected: usize },
}

/// The workers training one model together.
pub trait Collective: Send {
    /// This worker's index, 0 to `size() − 1`.
    fn rank(&self) -> usize;
    /// How many workers there are.
    fn size(&self) -> usize;
    /// Replaces `values` on every worker by their sum over the workers, added in rank order.
    ///
    /// # Errors
    /// [`CollectiveError`] when a worker is gone or the buffers differ in length.
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<(), CollectiveError>;
    /// [`Collective::sum_f32`] for f64 values (loss sums).
    ///
    /// # Errors
    /// As [`Collective::sum_f32`].
    fn sum_f64(&mut self, values: &mut [f64]) -> Result<(), CollectiveError>;
}

/// The part of `n` items worker `rank` of `size` takes: contiguous, in rank order, the
/// first `n % size` workers one more.
pub fn part(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// One worker alone: sums are the values themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Alone;

impl Collective for Alone {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&mut self, _: &mut [f32]) -> Result<(), CollectiveError> {
        Ok(())
    }
    fn sum_f64(&mut self, _: &mut [f64]) -> Result<(), CollectiveError> {
        Ok(())
    }
}

/// Workers on threads of one process, joined by a barrier: each deposits its values, and
/// each adds all of them up in rank order.
pub struct LocalGroup {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    slots: Mutex<Vec<Vec<f64>>>,
    barrier: Barrier,
}

impl LocalGroup {
    /// The `size` members of a new group, rank 0 first; move each to its own thread.
    pub fn new(size: usize) -> Vec<LocalGroup> {
        let shared = Arc::new(Shared { size, slots: Mutex::new(vec![Vec::new(); size]), barrier: Barrier::new(size) });
        (0..size).map(|rank| LocalGroup { rank, shared: shared.clone() }).collect()
    }

    fn sum(
        &mut self,
        values: &mut dyn Iterator<Item = f64>,
        write: &mut dyn FnMut(usize, f64),
    ) -> Result<(), CollectiveError> {
        let mine: Vec<f64> = values.collect();
        let len = mine.len();
        self.shared.slots.lock().map_err(|_| self.gone("a worker panicked"))?[self.rank] = mine;
        self.shared.barrier.wait();
        let result = {
            let slots = self.shared.slots.lock().map_err(|_| self.gone("a worker panicked"))?;
            if let Some((rank, s)) = slots.iter().enumerate().find(|(_, s)| s.len() != slots[0].len()) {
                Err(CollectiveError::Length { rank, len: s.len(), expected: slots[0].len() })
            } else {
                for i in 0..len {
                    // Rank order, in f64, then rounded once: the same on every worker.
                    write(i, slots.iter().map(|s| s[i]).sum());
                }
                Ok(())
            }
        };
        // Nobody deposits the next values before everyone has read these.
        self.shared.barrier.wait();
        result
    }

    fn gone(&self, why: &str) -> CollectiveError {
        CollectiveError::Gone { rank: self.rank, size: self.shared.size, why: why.to_string() }
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<(), CollectiveError> {
        let copy: Vec<f32> = values.to_vec();
        self.sum(&mut copy.iter().map(|&v| v as f64), &mut |i, s| values[i] = s as f32)
    }
    fn sum_f64(&mut self, values: &mut [f64]) -> Result<(), CollectiveError> {
        let copy: Vec<f64> = values.to_vec();
        self.sum(&mut copy.into_iter(), &mut |i, s| values[i] = s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_items_in_rank_order() {
        for (n, size) in [(10, 3), (128, 2), (3, 4), (0, 2)] {
            let parts: Vec<_> = (0..size).map(|r| part(n, r, size)).collect();
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[size - 1].end, n);
            assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
            assert!(parts.iter().all(|p| p.len() == n / size || p.len() == n / size + 1));
        }
        assert_eq!(part(10, 0, 3), 0..4);
        assert_eq!(part(10, 2, 3), 7..10);
    }

    #[test]
    fn a_local_group_sums_in_rank_order_on_every_worker() {
        let members = LocalGroup::new(3);
        let results: Vec<(Vec<f32>, Vec<f64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = members
                .into_iter()
                .map(|mut g| {
                    s.spawn(move || {
                        let r = g.rank() as f32;
                        let mut a = vec![r, 1.0, 1e8, -0.25 * r];
                        let mut b = vec![r as f64 * 0.5];
                        g.sum_f32(&mut a).unwrap();
                        g.sum_f64(&mut b).unwrap();
                        // A second round reuses the slots.
                        let mut c = vec![1.0f32];
                        g.sum_f32(&mut c).unwrap();
                        assert_eq!(c, [3.0]);
                        (a, b)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (a, b) in &results {
            // 0+1+2, three ones, 3e8 and −0.75, the same on every worker.
            assert_eq!(a, &[3.0, 3.0, 3e8, -0.75]);
            assert_eq!(b, &[1.5]);
        }
    }

    #[test]
    fn buffers_of_different_lengths_are_an_error() {
        let members = LocalGroup::new(2);
        let errors: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = members
                .into_iter()
                .map(|mut g| s.spawn(move || g.sum_f32(&mut vec![0.0; 2 + g.rank()]).unwrap_err().to_string()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(errors.iter().all(|e| e.contains("summed 3 values where worker 0 summed 2")), "{errors:?}");
    }
}
