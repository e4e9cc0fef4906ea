//! A tiny fork-join pool whose workers stay hot between jobs.
//!
//! A training step is a chain of ~20 short parallel regions (each 10 µs – 1 ms). Waking a
//! parked rayon worker costs > 100 µs on the machines we measured (see
//! `shared/design/compute-core.md`), so our workers spin on a generation counter for a while
//! after each job and only park when idle for longer. The calling thread always takes part
//! `0` itself, so `threads = 1` runs everything inline with no synchronisation.
//!
//! Spinning is only a win while every thread has a core. When the machine is
//! oversubscribed (other processes, parallel tests) a spinning thread can burn the time
//! slice the thread it waits for needs, and a pure spin-wait pool slows down ~50×. So every
//! wait — a worker's for the next job, the caller's for the workers — spins only briefly
//! (`SPIN`), then yields the core (`YIELD`), then parks until unparked: workers by the
//! next job, the caller by the last worker to finish.
//!
//! The split of work into parts is fixed by the caller, so results are bit-for-bit
//! reproducible for a given thread count.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

/// How long a waiting thread busy-spins before yielding its core: longer than the gaps
/// inside a training step, shorter than an OS time slice.
const SPIN: Duration = Duration::from_micros(120);
/// How long it then yields (`sched_yield`) before parking.
const YIELD: Duration = Duration::from_millis(2);

/// A thread that may park, and the flag that tells others to unpark it.
struct Parker {
    thread: Thread,
    parked: AtomicBool,
}

impl Parker {
    fn current() -> Parker {
        Parker { thread: std::thread::current(), parked: AtomicBool::new(false) }
    }

    /// Unparks the thread if it parked (or is about to): call after making its condition true.
    fn wake(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
    }

    /// Waits on the calling thread (which must be `self.thread`) until `ready()`, with the
    /// spin → yield → park back-off. The flag is raised before the last check of `ready()`,
    /// and whoever makes `ready()` true calls [`Parker::wake`] after, so no wake-up is lost
    /// (both sides use SeqCst).
    fn wait_until(&self, ready: impl Fn() -> bool) {
        let start = Instant::now();
        let mut i = 0u32;
        while !ready() {
            i = i.wrapping_add(1);
            if !i.is_multiple_of(64) {
                std::hint::spin_loop();
                continue;
            }
            let waited = start.elapsed();
            if waited < SPIN {
                std::hint::spin_loop();
            } else if waited < SPIN + YIELD {
                std::thread::yield_now();
            } else {
                self.parked.store(true, Ordering::SeqCst);
                if !ready() {
                    std::thread::park_timeout(Duration::from_millis(50));
                }
                self.parked.store(false, Ordering::SeqCst);
            }
        }
    }
}

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job; workers compare it with the last one they ran.
    generation: AtomicUsize,
    /// Workers that finished the current job.
    done: AtomicUsize,
    /// Set when a job panicked on a worker.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// The job of the current generation. Written only by the owner while every worker is
    /// idle, read by workers after they observe the new generation.
    job: UnsafeCell<Option<Job>>,
    /// The thread running the current job's part 0, waiting for `done`.
    caller: std::sync::Mutex<Option<Arc<Parker>>>,
}

// SAFETY: `job` is only written while no worker reads it (between generations), and the
// pointee is `Sync`; all other fields are atomics or sync primitives.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

/// A fixed set of `threads - 1` worker threads plus the caller.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<(JoinHandle<()>, Arc<Parker>)>,
}

impl Pool {
    /// A pool that runs each job on `threads` threads (the caller included). `0` means one
    /// thread per available core.
    pub fn new(threads: usize) -> Pool {
        let threads = if threads == 0 { available_threads() } else { threads };
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            caller: std::sync::Mutex::new(None),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                let (tx, rx) = std::sync::mpsc::channel();
                let handle = std::thread::Builder::new()
                    .name(format!("vae-worker-{index}"))
                    .spawn(move || {
                        let me = Arc::new(Parker::current());
                        tx.send(Arc::clone(&me)).expect("pool is waiting");
                        worker_loop(&shared, &me, index)
                    })
                    .expect("failed to spawn a worker thread");
                (handle, rx.recv().expect("worker started"))
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
        thread_local! {
            static ME: Arc<Parker> = Arc::new(Parker::current());
        }
        let me = ME.with(Arc::clone);
        {
            let mut caller = shared.caller.lock().unwrap_or_else(|e| e.into_inner());
            if !caller.as_ref().is_some_and(|c| Arc::ptr_eq(c, &me)) {
                *caller = Some(Arc::clone(&me));
            }
        }
        // SAFETY: all workers finished the previous job (we waited for `done`), so nobody
        // reads `job` now. The pointer is erased to 'static but only dereferenced before
        // this function returns, while `f` is alive.
        unsafe {
            let erased: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *shared.job.get() = Some(erased);
        }
        shared.done.store(0, Ordering::SeqCst);
        shared.generation.fetch_add(1, Ordering::SeqCst);
        self.workers.iter().for_each(|(_, p)| p.wake());
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        let n = self.workers.len();
        me.wait_until(|| shared.done.load(Ordering::SeqCst) >= n);
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

fn worker_loop(shared: &Shared, me: &Parker, index: usize) {
    let mut seen = 0usize;
    loop {
        me.wait_until(|| shared.generation.load(Ordering::SeqCst) != seen || shared.shutdown.load(Ordering::SeqCst));
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        seen = shared.generation.load(Ordering::SeqCst);
        // SAFETY: the owner wrote `job` before bumping `generation` and keeps the closure
        // alive until every worker has bumped `done`.
        let job = unsafe { (*shared.job.get()).expect("job set before generation bump") };
        let f = unsafe { &*job };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index))).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
        shared.done.fetch_add(1, Ordering::SeqCst);
        if let Some(caller) = shared.caller.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            caller.wake();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for (handle, parker) in self.workers.drain(..) {
            parker.thread.unpark();
            let _ = handle.join();
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
