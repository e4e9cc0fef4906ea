//! Data-parallel training's one operation: every worker computes part of each batch, then the
//! workers sum their gradients and loss sums, and all take the same optimiser step.
//!
//! A [`Collective`] is that sum. [`Alone`] is one process (nothing to sum); [`LocalGroup`]
//! is workers on threads of one process, which tests use to check that a batch split across
//! workers trains as the whole batch does; an MPI build adds ranks on many machines. Every
//! implementation adds the workers' contributions in rank order (0, 1, …), so the result is
//! the same bits on every worker and from run to run, whatever order they arrive in.

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The workers' parameters (or Adam state) differ: they no longer train one model.
    #[error(
        "worker {rank}'s parameters differ from worker 0's after epoch {epoch} (checksums {theirs:016x} and \
         {first:016x}): the workers drifted apart, so this epoch is not saved; resume from the last saved epoch, \
         with every worker running the same build"
    )]
    Drift { rank: usize, epoch: usize, theirs: u64, first: u64 },
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
    /// Every worker's `value`, in rank order, on every worker (checksums compared across
    /// workers).
    ///
    /// # Errors
    /// [`CollectiveError::Gone`] when a worker is gone.
    fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>, CollectiveError>;
}

/// The sum over workers of element `i`, from each worker's value in rank order: added in
/// f64, then rounded once by the caller. Every implementation sums this way, so a sum is the
/// same bits on every worker, from run to run, and across implementations.
pub fn rank_order_sum(values: impl Iterator<Item = f64>) -> f64 {
    values.fold(0.0, |acc, v| acc + v)
}

/// 64-bit FNV-1a of `words` (the bits of parameters and optimiser moments): equal states give
/// equal checksums; a single flipped bit changes it.
pub fn checksum(words: impl Iterator<Item = u32>) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    words.fold(0xcbf2_9ce4_8422_2325, |h, w| w.to_le_bytes().iter().fold(h, |h, &b| (h ^ b as u64).wrapping_mul(PRIME)))
}

/// The part of `n` items worker `rank` of `size` takes: contiguous, in rank order, the
/// first `n % size` workers one more.
pub fn part(n: usize, rank: usize, size: usize) -> std::ops::Range<usize> {
    let (base, extra) = (n / size, n % size);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

/// Whether a batch of `batch` examples splits evenly across `size` workers, each computing
/// its part in `micro` micro-batches.
///
/// # Errors
/// A message naming the next batch size that does.
pub fn check_split(batch: usize, size: usize, micro: usize) -> Result<(), String> {
    let parts = size * micro;
    if batch.is_multiple_of(parts) {
        return Ok(());
    }
    let next = batch.div_ceil(parts) * parts;
    Err(match (size, micro) {
        (_, 1) => format!(
            "--batch-size {batch} does not split evenly across {size} workers; use a multiple of {size} (e.g. {next})"
        ),
        (1, _) => format!(
            "--batch-size {batch} does not split into {micro} equal micro-batches; use a multiple of {micro} (e.g. \
             {next}) or another --micro-batches"
        ),
        _ => format!(
            "--batch-size {batch} does not split into {micro} equal micro-batches on each of {size} workers; use a \
             multiple of {parts} (e.g. {next}) or another --micro-batches"
        ),
    })
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
    fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>, CollectiveError> {
        Ok(vec![value])
    }
}

/// A [`Collective`] that clocks the time its sums and gathers take (waiting for the slowest
/// worker included), readable through the [`Stopwatch`] [`Timed::new`] returns.
pub struct Timed {
    inner: Box<dyn Collective>,
    nanos: Arc<AtomicU64>,
}

/// The seconds a [`Timed`] collective has spent so far.
#[derive(Clone, Debug, Default)]
pub struct Stopwatch(Arc<AtomicU64>);

impl Stopwatch {
    pub fn seconds(&self) -> f64 {
        self.0.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

impl Timed {
    pub fn new(inner: Box<dyn Collective>) -> (Timed, Stopwatch) {
        let nanos = Arc::new(AtomicU64::new(0));
        (Timed { inner, nanos: nanos.clone() }, Stopwatch(nanos))
    }

    fn time<T>(&mut self, f: impl FnOnce(&mut dyn Collective) -> T) -> T {
        let start = std::time::Instant::now();
        let out = f(&mut *self.inner);
        self.nanos.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}

impl Collective for Timed {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn sum_f32(&mut self, values: &mut [f32]) -> Result<(), CollectiveError> {
        self.time(|c| c.sum_f32(values))
    }
    fn sum_f64(&mut self, values: &mut [f64]) -> Result<(), CollectiveError> {
        self.time(|c| c.sum_f64(values))
    }
    fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>, CollectiveError> {
        self.time(|c| c.gather_u64(value))
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

    /// Deposits `mine`, waits for every worker's, and hands them all (rank order) to `read`.
    fn exchange<T>(&mut self, mine: Vec<f64>, read: impl FnOnce(&[Vec<f64>]) -> T) -> Result<T, CollectiveError> {
        self.shared.slots.lock().map_err(|_| self.gone("a worker panicked"))?[self.rank] = mine;
        self.shared.barrier.wait();
        let result = {
            let slots = self.shared.slots.lock().map_err(|_| self.gone("a worker panicked"))?;
            read(&slots)
        };
        // Nobody deposits the next values before everyone has read these.
        self.shared.barrier.wait();
        Ok(result)
    }

    fn sum(&mut self, mine: Vec<f64>, write: &mut dyn FnMut(usize, f64)) -> Result<(), CollectiveError> {
        let len = mine.len();
        self.exchange(mine, |slots| {
            if let Some((rank, s)) = slots.iter().enumerate().find(|(_, s)| s.len() != slots[0].len()) {
                return Err(CollectiveError::Length { rank, len: s.len(), expected: slots[0].len() });
            }
            for i in 0..len {
                write(i, rank_order_sum(slots.iter().map(|s| s[i])));
            }
            Ok(())
        })?
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
        let mine = values.iter().map(|&v| v as f64).collect();
        self.sum(mine, &mut |i, s| values[i] = s as f32)
    }
    fn sum_f64(&mut self, values: &mut [f64]) -> Result<(), CollectiveError> {
        let mine = values.to_vec();
        self.sum(mine, &mut |i, s| values[i] = s)
    }
    fn gather_u64(&mut self, value: u64) -> Result<Vec<u64>, CollectiveError> {
        // Two exact 32-bit halves per f64 slot.
        let halves = vec![(value >> 32) as f64, (value & 0xffff_ffff) as f64];
        self.exchange(halves, |slots| slots.iter().map(|s| ((s[0] as u64) << 32) | s[1] as u64).collect())
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
    fn a_local_group_gathers_every_value_in_rank_order() {
        let members = LocalGroup::new(3);
        let gathered: Vec<Vec<u64>> = std::thread::scope(|s| {
            let handles: Vec<_> = members
                .into_iter()
                .map(|mut g| s.spawn(move || g.gather_u64(u64::MAX - g.rank() as u64).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(gathered.iter().all(|v| v == &[u64::MAX, u64::MAX - 1, u64::MAX - 2]), "{gathered:?}");
    }

    #[test]
    fn checksums_see_one_flipped_bit() {
        let a = [1.0f32, -2.5, 3e-8];
        let bits = |v: &[f32]| checksum(v.iter().map(|x| x.to_bits()));
        let mut b = a;
        b[2] = f32::from_bits(b[2].to_bits() ^ 1);
        assert_eq!(bits(&a), bits(&a));
        assert_ne!(bits(&a), bits(&b));
        // FNV-1a's offset basis for no input.
        assert_eq!(checksum(std::iter::empty()), 0xcbf2_9ce4_8422_2325);
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
