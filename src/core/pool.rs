//! A tiny fork-join pool whose workers stay hot between jobs.
//!
//! A training step is a chain of ~20 short parallel regions (each 10 µs – 1 ms). Waking a
//! parked rayon worker costs > 100 µs on the machines we measured (see
//! `shared/design/compute-core.md`), so our workers spin on a generation counter for a while
//! after each job and only park after [`SPIN_LIMIT`] idle spins. The calling thread always
//! takes part `0` itself, so `threads = 1` runs everything inline with no synchronisation.
//!
//! The split of work into parts is fixed by the caller, so results are bit-for-bit
//! reproducible for a given thread count.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Idle spins (each a `spin_loop` hint, ~10–40 ns) before a worker parks: a few ms of
/// spinning keeps the worker hot across the gaps inside a training step.
const SPIN_LIMIT: u32 = 100_000;

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job; workers compare it with the last one they ran.
    generation: AtomicUsize,
    /// Workers that finished the current job.
    done: AtomicUsize,
    /// Workers currently parked (or about to park) on `wake`.
    sleepers: AtomicUsize,
    /// Set when a job panicked on a worker.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// The job of the current generation. Written only by the owner while every worker is
    /// idle, read by workers after they observe the new generation (Acquire).
    job: UnsafeCell<Option<Job>>,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is only written while no worker reads it (between generations), and the
// pointee is `Sync`; all other fields are atomics or sync primitives.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of `threads - 1` worker threads plus the caller.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool that runs each job on `threads` threads (the caller included). `0` means one
    /// thread per available core.
    pub fn new(threads: usize) -> Pool {
        let threads = if threads == 0 { available_threads() } else { threads };
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("vae-worker-{index}"))
                    .spawn(move || worker_loop(&shared, index))
                    .expect("failed to spawn a worker thread")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Number of parts each job is split into (workers + the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(part)` for every `part in 0..self.threads()`, part 0 on the calling thread,
    /// and returns when all parts are done.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        let shared = &*self.shared;
        // SAFETY: all workers finished the previous job (we waited for `done`), so nobody
        // reads `job` now. The pointer is erased to 'static but only dereferenced before
        // this function returns, while `f` is alive.
        unsafe {
            let erased: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *shared.job.get() = Some(erased);
        }
        shared.done.store(0, Ordering::Relaxed);
        shared.generation.fetch_add(1, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        let n = self.workers.len();
        while shared.done.load(Ordering::Acquire) < n {
            std::hint::spin_loop();
        }
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a worker thread panicked");
        }
    }

    /// Splits `0..len` into `self.threads()` contiguous ranges, each a multiple of `align`
    /// (except the last), and runs `f(part, range)` on each in parallel. Lengths below
    /// `min_parallel` run as one range on the calling thread (a hand-off costs ~1 µs).
    pub fn for_ranges(
        &self,
        len: usize,
        align: usize,
        min_parallel: usize,
        f: &(dyn Fn(usize, std::ops::Range<usize>) + Sync),
    ) {
        if len < min_parallel || self.threads() == 1 {
            f(0, 0..len);
            return;
        }
        let parts = self.threads();
        self.run(&|part| {
            let r = split_range(len, parts, part, align);
            if !r.is_empty() {
                f(part, r);
            }
        });
    }
}

/// The `part`-th of `parts` contiguous ranges covering `0..len`, boundaries rounded to
/// multiples of `align` so SIMD lanes and cache lines are not shared between threads.
pub fn split_range(len: usize, parts: usize, part: usize, align: usize) -> std::ops::Range<usize> {
    let align = align.max(1);
    let bound = |i: usize| -> usize {
        if i >= parts {
            return len;
        }
        let raw = len * i / parts;
        (raw / align * align).min(len)
    };
    bound(part)..bound(part + 1)
}

/// A raw pointer to a buffer whose disjoint parts are written by different threads.
#[derive(Clone, Copy)]
pub struct SyncMut<T>(*mut T, usize);

// SAFETY: users only create non-overlapping slices from it (see `SyncMut::slice`).
unsafe impl<T: Send> Sync for SyncMut<T> {}
unsafe impl<T: Send> Send for SyncMut<T> {}

impl<T> SyncMut<T> {
    pub fn new(buf: &mut [T]) -> SyncMut<T> {
        SyncMut(buf.as_mut_ptr(), buf.len())
    }

    /// The buffer's start, for callers that write disjoint blocks through raw pointers.
    pub fn ptr(&self) -> *mut T {
        self.0
    }

    /// Elements `range` of the buffer.
    ///
    /// # Safety
    /// No two live slices obtained from the same buffer may overlap, and the buffer must
    /// outlive them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: std::ops::Range<usize>) -> &mut [T] {
        assert!(range.start <= range.end && range.end <= self.1, "slice out of bounds");
        unsafe { std::slice::from_raw_parts_mut(self.0.add(range.start), range.len()) }
    }
}

/// Threads the OS lets us use (at least 1).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn worker_loop(shared: &Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        // Spin while hot, then park.
        let mut spins = 0u32;
        let generation = loop {
            let g = shared.generation.load(Ordering::Acquire);
            if g != seen || shared.shutdown.load(Ordering::Relaxed) {
                break g;
            }
            spins += 1;
            if spins < SPIN_LIMIT {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.sleepers.fetch_add(1, Ordering::SeqCst);
            while shared.generation.load(Ordering::SeqCst) == seen && !shared.shutdown.load(Ordering::SeqCst) {
                guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            shared.sleepers.fetch_sub(1, Ordering::SeqCst);
            spins = 0;
        };
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = generation;
        // SAFETY: the owner wrote `job` before bumping `generation` (Release/SeqCst) and keeps
        // the closure alive until every worker has bumped `done`.
        let job = unsafe { (*shared.job.get()).expect("job set before generation bump") };
        let f = unsafe { &*job };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index))).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
        shared.done.fetch_add(1, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn every_part_runs_exactly_once_per_job() {
        let pool = Pool::new(3);
        let hits: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        for _ in 0..1000 {
            pool.run(&|p| {
                hits[p].fetch_add(1, Ordering::Relaxed);
            });
        }
        for h in &hits {
            assert_eq!(h.load(Ordering::Relaxed), 1000);
        }
    }

    #[test]
    fn ranges_cover_exactly_once_and_respect_alignment() {
        for len in [0usize, 1, 7, 16, 100, 1023] {
            for parts in 1..5 {
                let mut next = 0;
                for p in 0..parts {
                    let r = split_range(len, parts, p, 16);
                    assert_eq!(r.start, next);
                    assert!(r.start.is_multiple_of(16) || r.start == len);
                    next = r.end;
                }
                assert_eq!(next, len);
            }
        }
    }

    #[test]
    fn parked_workers_wake_up() {
        let pool = Pool::new(2);
        let sum = AtomicU64::new(0);
        pool.run(&|p| {
            sum.fetch_add(p as u64 + 1, Ordering::Relaxed);
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        pool.run(&|p| {
            sum.fetch_add(p as u64 + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 6);
    }
}
