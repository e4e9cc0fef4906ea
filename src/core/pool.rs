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
//! A part belongs to whichever thread claims it first. The caller, having run part 0, claims
//! and runs every part no worker has started yet: a worker that is asleep, or whose core the
//! OS or the hypervisor gave to someone else, does not hold up the step (with a pure hand-off
//! one descheduled vCPU stalled every region: a batch-20 epoch took 8–25 s instead of 2.2 with
//! a build running beside it). A worker that finds its part taken skips the job.
//!
//! The split of work into parts is fixed by the caller, and no part depends on the thread
//! that runs it, so results are bit-for-bit reproducible for a given thread count.
//!
//! Soundness: a pool has one job slot, so [`Pool::run`] lets one caller in at a time (other
//! threads wait their turn on a mutex) and panics, instead of deadlocking or racing, when
//! called from inside one of its own jobs. [`SyncMut`] borrows its buffer for its lifetime.

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
/// How long a parked thread sleeps before checking again on its own (see `park_timeout`).
const PARK_TIMEOUT: Duration = Duration::from_millis(50);

/// A thread that may park, and the flag that tells others to unpark it.
struct Parker {
    thread: Thread,
    /// Shared by the thread's own `Parker` and the one others wake it through.
    parked: Arc<AtomicBool>,
}

impl Parker {
    fn current() -> Parker {
        Parker { thread: std::thread::current(), parked: Arc::new(AtomicBool::new(false)) }
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
    fn wait_until(&self, ready: impl Fn() -> bool, timeout: Option<Duration>, on_park: impl Fn()) {
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
                    on_park();
                    match timeout {
                        Some(t) => std::thread::park_timeout(t),
                        None => std::thread::park(),
                    }
                }
                self.parked.store(false, Ordering::SeqCst);
            }
        }
    }
}

type Job = *const (dyn Fn(usize) + Sync);

thread_local! {
    /// The pool whose worker this thread is (null on other threads): a worker calling its
    /// own pool's `run` would wait for itself.
    static WORKER_OF: std::cell::Cell<*const Shared> = const { std::cell::Cell::new(std::ptr::null()) };
    /// A per-thread byte whose address identifies the thread while it lives.
    static THREAD_TAG: u8 = const { 0 };
}

fn thread_tag() -> usize {
    THREAD_TAG.with(|t| t as *const u8 as usize)
}

struct Shared {
    /// Bumped once per job; workers compare it with the last one they ran.
    generation: AtomicUsize,
    /// Per worker part (`part − 1`): the generation for which that part was last claimed, by
    /// the worker or by the caller. Job `g` starts with every claim at `g − 1`, and a thread
    /// runs the part only if it moves the claim from `g − 1` to `g`.
    claims: Vec<AtomicUsize>,
    /// Per worker part: the generation whose part has finished (written by whoever ran it).
    finished: Vec<AtomicUsize>,
    /// Set when a job panicked on a worker.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// The job of the current generation. Written only by the owner while no part is
    /// running, read by a worker only after it claimed a part of the new generation.
    job: UnsafeCell<Option<Job>>,
    /// The thread running the current job's part 0, waiting for `finished`.
    caller: std::sync::Mutex<Option<Arc<Parker>>>,
    /// Held for the whole of a `run`: one job at a time, whichever threads call.
    turn: std::sync::Mutex<()>,
    /// [`thread_tag`] of the thread holding `turn` (0 when none): a `run` nested in a job
    /// on the calling thread would wait for its own lock.
    owner: AtomicUsize,
    /// How long a parked thread sleeps before it checks again without a wake-up (`None`:
    /// until woken). A safety net in production; tests park without it, so a lost wake-up
    /// hangs them instead of hiding.
    park_timeout: Option<Duration>,
    /// Times a worker parked (tests check that parking happened).
    parks: AtomicUsize,
    /// While set, workers wake but claim nothing ([`Pool::hold_workers`]).
    held: AtomicBool,
}

// SAFETY: `Shared` is shared by the owner and the workers through an `Arc`. Every field but
// `job` is an atomic or a lock. `job` (an `UnsafeCell` holding a raw pointer to a `Sync`
// closure, which is why neither auto trait applies) is written only in `Pool::run` by the
// thread holding `turn`, while no part runs (every part of the previous job `finished`), and
// read by a worker only after it claimed a part of the new `generation` (SeqCst, ordered after
// the write); the closure it points to is `Sync`, so calling it from several threads at once
// is allowed, and `run` keeps it alive until every part has finished.
unsafe impl Sync for Shared {}
// SAFETY: as above: no field is tied to the thread that created it.
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
        Pool::with_park_timeout(threads, Some(PARK_TIMEOUT))
    }

    /// [`Pool::new`] whose idle threads, once parked, sleep at most `park_timeout` between
    /// checks (`None`: until woken; for tests, where a lost wake-up must hang, not hide).
    pub fn with_park_timeout(threads: usize, park_timeout: Option<Duration>) -> Pool {
        let threads = if threads == 0 { available_threads() } else { threads };
        let shared = Arc::new(Shared {
            generation: AtomicUsize::new(0),
            claims: (1..threads).map(|_| AtomicUsize::new(0)).collect(),
            finished: (1..threads).map(|_| AtomicUsize::new(0)).collect(),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            caller: std::sync::Mutex::new(None),
            turn: std::sync::Mutex::new(()),
            owner: AtomicUsize::new(0),
            park_timeout,
            parks: AtomicUsize::new(0),
            held: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                let parked = Arc::new(AtomicBool::new(false));
                let flag = Arc::clone(&parked);
                let handle = std::thread::Builder::new()
                    .name(format!("vae-worker-{index}"))
                    .spawn(move || {
                        WORKER_OF.with(|w| w.set(Arc::as_ptr(&shared)));
                        // The pool's own thread: its jobs always run with subnormals flushed.
                        super::fpmode::flush_denormals_on_this_thread();
                        let me = Parker { thread: std::thread::current(), parked: flag };
                        worker_loop(&shared, &me, index)
                    })
                    .expect("failed to spawn a worker thread");
                let thread = handle.thread().clone();
                (handle, Arc::new(Parker { thread, parked }))
            })
            .collect();
        Pool { shared, workers }
    }

    /// Holds the workers back (`true`) or lets them go again: while held they claim no part,
    /// so the caller runs every part of every job, as when their cores are taken by
    /// something else. For tests that results do not depend on which thread runs a part.
    #[doc(hidden)]
    pub fn hold_workers(&self, held: bool) {
        self.shared.held.store(held, Ordering::SeqCst);
    }

    /// Number of parts each job is split into (workers + the caller).
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `f(part)` for every `part in 0..self.threads()`, part 0 and any part no worker
    /// has claimed by the time part 0 is done on the calling thread, the others each on the
    /// worker that claimed it, and returns when all parts are done. Calls from several threads take turns. Every
    /// part runs with subnormals flushed to zero ([`super::fpmode`]); the calling thread's
    /// floating-point mode is restored on return.
    ///
    /// # Panics
    /// When called from inside one of this pool's own jobs (nested parallelism on one pool
    /// would wait for itself), and when a part panicked.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        // Every part runs with subnormals flushed (workers set it once, at their start).
        let _flush = super::fpmode::FlushDenormals::new();
        if self.workers.is_empty() {
            f(0);
            return;
        }
        let shared = &*self.shared;
        let tag = thread_tag();
        let nested = WORKER_OF.with(|w| std::ptr::eq(w.get(), shared)) || shared.owner.load(Ordering::SeqCst) == tag;
        assert!(!nested, "Pool::run called from inside one of the same pool's jobs; run the inner work serially");
        let _turn = Turn::take(shared, tag);
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
        // SAFETY: every part of the previous job finished (we waited for `finished`), and a
        // worker reads `job` only after claiming a part of the current generation, which
        // nobody can before the bump below, so nobody reads `job` now. The pointer is erased
        // to 'static but only dereferenced before this function returns, while `f` is alive.
        unsafe {
            let erased: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), Job>(f);
            *shared.job.get() = Some(erased);
        }
        let g = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.workers.iter().for_each(|(_, p)| p.wake());
        let mut first_panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0))).err();
        // The parts no worker has claimed yet: run here rather than wait for their thread.
        for (i, claim) in shared.claims.iter().enumerate() {
            if claim.compare_exchange(g - 1, g, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i + 1)));
                if let (Err(payload), None) = (result, &first_panic) {
                    first_panic = Some(payload);
                }
                shared.finished[i].store(g, Ordering::SeqCst);
            }
        }
        let all_finished = || shared.finished.iter().all(|d| d.load(Ordering::SeqCst) == g);
        me.wait_until(all_finished, shared.park_timeout, || {});
        if let Some(payload) = first_panic {
            std::panic::resume_unwind(payload);
        }
        if shared.panicked.swap(false, Ordering::Relaxed) {
            panic!("a worker thread panicked");
        }
    }

    /// Runs `f(part)` for `part in 0..parts` (at most [`Pool::threads`]): on the calling
    /// thread alone, with subnormals flushed as in a job, when `parts` is 1; else on the
    /// pool, whose threads past `parts` idle. For work too small to be worth a hand-off.
    pub fn run_parts(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        if parts <= 1 {
            let _flush = super::fpmode::FlushDenormals::new();
            f(0);
            return;
        }
        self.run(&|part| {
            if part < parts {
                f(part)
            }
        });
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
            let _flush = super::fpmode::FlushDenormals::new();
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
        // In u128: len · i may not fit a usize (it cannot overflow here).
        let raw = (len as u128 * i as u128 / parts as u128) as usize;
        (raw / align * align).min(len)
    };
    bound(part)..bound(part + 1)
}

/// A buffer whose disjoint parts are written by different threads: it borrows the buffer
/// mutably for `'a`, so the buffer outlives every pointer and slice taken from it and nothing
/// else touches it meanwhile.
#[derive(Clone, Copy)]
pub struct SyncMut<'a, T>(*mut T, usize, std::marker::PhantomData<&'a mut [T]>);

// SAFETY: a `SyncMut` is a `&mut [T]` split between threads: sending or sharing it hands
// out access to `T`s on other threads, which `T: Send` allows. Creating overlapping slices
// is what `slice`'s contract (an `unsafe fn`) forbids; the raw pointer is only dereferenced
// by callers in `unsafe` blocks that state why their blocks are disjoint.
unsafe impl<T: Send> Sync for SyncMut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SyncMut<'_, T> {}

impl<'a, T> SyncMut<'a, T> {
    pub fn new(buf: &'a mut [T]) -> SyncMut<'a, T> {
        SyncMut(buf.as_mut_ptr(), buf.len(), std::marker::PhantomData)
    }

    /// The buffer's start, for callers that write disjoint blocks through raw pointers.
    pub fn ptr(&self) -> *mut T {
        self.0
    }

    /// The buffer's length.
    pub fn len(&self) -> usize {
        self.1
    }

    pub fn is_empty(&self) -> bool {
        self.1 == 0
    }

    /// Elements `range` of the buffer.
    ///
    /// # Safety
    /// No two live slices obtained from the same buffer may overlap, and the buffer must
    /// outlive them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: std::ops::Range<usize>) -> &'a mut [T] {
        assert!(range.start <= range.end && range.end <= self.1, "slice out of bounds");
        // SAFETY: in bounds (checked); the buffer is borrowed for 'a; no overlap per the contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(range.start), range.len()) }
    }
}

/// One caller's turn at a pool: holds its `turn` lock and records the owner, both released
/// on drop (also when a job's panic unwinds through `run`).
struct Turn<'a> {
    shared: &'a Shared,
    _lock: std::sync::MutexGuard<'a, ()>,
}

impl<'a> Turn<'a> {
    fn take(shared: &'a Shared, tag: usize) -> Turn<'a> {
        // A panic in an earlier job poisons nothing this lock protects.
        let lock = shared.turn.lock().unwrap_or_else(|e| e.into_inner());
        shared.owner.store(tag, Ordering::SeqCst);
        Turn { shared, _lock: lock }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.shared.owner.store(0, Ordering::SeqCst);
    }
}

/// Threads the OS lets us use (at least 1).
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn worker_loop(shared: &Shared, me: &Parker, index: usize) {
    let mut seen = 0usize;
    loop {
        me.wait_until(
            || shared.generation.load(Ordering::SeqCst) != seen || shared.shutdown.load(Ordering::SeqCst),
            shared.park_timeout,
            || {
                shared.parks.fetch_add(1, Ordering::Relaxed);
            },
        );
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        while shared.held.load(Ordering::SeqCst) && !shared.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_micros(100));
        }
        let g = shared.generation.load(Ordering::SeqCst);
        seen = g;
        // Job g cannot end before its part `index` is claimed, so a claim still at g − 1 is
        // job g's, in progress; otherwise the caller took the part (or `g` is already old).
        let claim = &shared.claims[index - 1];
        if claim.compare_exchange(g.wrapping_sub(1), g, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            continue;
        }
        // SAFETY: the owner wrote `job` before bumping `generation` to `g`, and keeps the
        // closure alive until this part's `finished` reads `g`.
        let job = unsafe { (*shared.job.get()).expect("job set before generation bump") };
        // SAFETY: as above.
        let f = unsafe { &*job };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(index))).is_err() {
            shared.panicked.store(true, Ordering::Relaxed);
        }
        shared.finished[index - 1].store(g, Ordering::SeqCst);
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
    /// Lengths near usize::MAX split without overflow: the parts tile the range exactly
    /// (len · part / parts computed in u128; in usize it wrapped).
    #[test]
    fn huge_lengths_split_without_overflow() {
        let len = usize::MAX - 7;
        let parts = 3;
        let ranges: Vec<_> = (0..parts).map(|p| super::split_range(len, parts, p, 1)).collect();
        assert_eq!(ranges[0].start, 0);
        assert_eq!(ranges[2].end, len);
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start && w[0].start <= w[0].end));
        assert_eq!(ranges[1].start, (len as u128 / 3) as usize);
    }

    use super::*;
    use std::sync::Mutex;
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

    /// Runs `f` on another thread and fails if it has not finished after `limit`: a lost
    /// wake-up or a deadlock fails the test instead of hanging it.
    fn within(limit: std::time::Duration, f: impl FnOnce() + Send + 'static) {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let handle = std::thread::spawn(move || {
            f();
            flag.store(true, Ordering::SeqCst);
        });
        let start = Instant::now();
        while !done.load(Ordering::SeqCst) {
            assert!(!handle.is_finished() || done.load(Ordering::SeqCst), "the test thread panicked");
            assert!(start.elapsed() < limit, "the pool hung");
            std::thread::sleep(Duration::from_millis(5));
        }
        handle.join().unwrap();
    }

    #[test]
    fn parked_workers_and_a_parked_caller_are_woken() {
        within(std::time::Duration::from_secs(20), || {
            // No park timeout: a wake-up that is lost hangs, and `within` fails.
            let pool = Pool::with_park_timeout(2, None);
            let sum = AtomicU64::new(0);
            pool.run(&|p| {
                sum.fetch_add(p as u64 + 1, Ordering::Relaxed);
            });
            // Idle for longer than SPIN + YIELD: the worker parks.
            let start = Instant::now();
            while pool.shared.parks.load(Ordering::Relaxed) == 0 {
                assert!(start.elapsed() < Duration::from_secs(10), "the worker never parked");
                std::thread::sleep(Duration::from_millis(5));
            }
            // Part 0 waits until the worker has claimed part 1 (else the caller would run it),
            // and the worker's part outlasts the caller's spin and yield, so the caller parks
            // too and only the worker's wake-up lets `run` return.
            let started = AtomicBool::new(false);
            pool.run(&|p| {
                if p == 1 {
                    started.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                } else {
                    while !started.load(Ordering::SeqCst) {
                        std::hint::spin_loop();
                    }
                }
                sum.fetch_add(p as u64 + 1, Ordering::Relaxed);
            });
            assert_eq!(sum.load(Ordering::Relaxed), 6);
        });
    }

    #[test]
    fn callers_on_several_threads_take_turns() {
        let pool = Arc::new(Pool::new(2));
        let total = Arc::new(AtomicU64::new(0));
        // The caller whose run is in progress (0: none), claimed by each of its parts and
        // released by the last one to finish: a part that finds another caller's id there
        // ran during someone else's run.
        let owner = Arc::new(AtomicU64::new(0));
        let clashes = Arc::new(AtomicU64::new(0));
        let callers: Vec<_> = (1..=4)
            .map(|id| {
                let (pool, total, owner, clashes) =
                    (Arc::clone(&pool), Arc::clone(&total), Arc::clone(&owner), Arc::clone(&clashes));
                std::thread::spawn(move || {
                    for _ in 0..500 {
                        let done = AtomicU64::new(0);
                        pool.run(&|_| {
                            let before = owner.swap(id, Ordering::SeqCst);
                            if before != 0 && before != id {
                                clashes.fetch_add(1, Ordering::SeqCst);
                            }
                            // Widen the window in which another run would show.
                            for _ in 0..50 {
                                std::hint::spin_loop();
                            }
                            total.fetch_add(1, Ordering::Relaxed);
                            if done.fetch_add(1, Ordering::SeqCst) + 1 == 2 {
                                owner.store(0, Ordering::SeqCst);
                            }
                        });
                        assert_eq!(done.load(Ordering::SeqCst), 2, "both parts ran before run returned");
                    }
                })
            })
            .collect();
        callers.into_iter().for_each(|c| c.join().unwrap());
        assert_eq!(total.load(Ordering::Relaxed), 4 * 500 * 2);
        assert_eq!(clashes.load(Ordering::SeqCst), 0, "parts of two callers' runs overlapped");
    }

    #[test]
    fn a_run_nested_in_a_job_panics_instead_of_deadlocking() {
        for part in [0, 1] {
            within(std::time::Duration::from_secs(20), move || {
                let pool = Pool::new(2);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    pool.run(&|p| {
                        if p == part {
                            pool.run(&|_| {});
                        }
                    })
                }));
                let err = result.expect_err("a nested run must panic");
                let msg = err
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| err.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                // Part 1 fails on the worker ("a worker thread panicked") or, when the caller
                // claimed it first, on the caller, as part 0 does.
                let caller = msg.contains("inside one of the same pool's jobs");
                assert!(caller || (part == 1 && msg.contains("a worker thread panicked")), "part {part}: {msg}");
                // The pool still works afterwards.
                let n = AtomicU64::new(0);
                pool.run(&|_| {
                    n.fetch_add(1, Ordering::Relaxed);
                });
                assert_eq!(n.load(Ordering::Relaxed), 2);
            });
        }
    }

    /// Which thread ran each part of `jobs` jobs, as (job, part) → thread tag.
    fn runners(pool: &Pool, jobs: usize) -> Vec<Vec<usize>> {
        (0..jobs)
            .map(|_| {
                let tags: Vec<AtomicUsize> = (0..pool.threads()).map(|_| AtomicUsize::new(0)).collect();
                pool.run(&|p| {
                    assert_eq!(tags[p].swap(thread_tag(), Ordering::SeqCst), 0, "part {p} ran twice");
                });
                tags.iter().map(|t| t.load(Ordering::SeqCst)).collect()
            })
            .collect()
    }

    #[test]
    fn the_caller_runs_the_parts_no_worker_claims() {
        within(Duration::from_secs(20), || {
            let pool = Pool::new(3);
            let me = thread_tag();
            pool.hold_workers(true);
            // Held workers claim nothing: every part of every job runs on the caller.
            for job in runners(&pool, 300) {
                assert_eq!(job, vec![me; 3]);
            }
            // Let go, the workers take their parts again (none runs a job it was held through):
            // part 0 waits until parts 1 and 2 have started, which only the workers can do.
            pool.hold_workers(false);
            let started = AtomicUsize::new(0);
            let on = Mutex::new(vec![0usize; 3]);
            for _ in 0..50 {
                started.store(0, Ordering::SeqCst);
                pool.run(&|p| {
                    if p == 0 {
                        while started.load(Ordering::SeqCst) < 2 {
                            std::hint::spin_loop();
                        }
                    } else {
                        started.fetch_add(1, Ordering::SeqCst);
                    }
                    on.lock().unwrap()[p] = thread_tag();
                });
                let on = on.lock().unwrap();
                assert!(on[0] == me && on[1] != me && on[2] != me && on[1] != on[2], "{on:?}");
            }
            // And every part still runs once a job, whoever claims it.
            assert!(runners(&pool, 1000).iter().all(|job| job.iter().all(|&t| t != 0)));
        });
    }

    #[test]
    fn another_pool_may_run_inside_a_job() {
        let (outer, inner) = (Pool::new(2), Pool::new(2));
        let n = AtomicU64::new(0);
        outer.run(&|p| {
            if p == 0 {
                inner.run(&|_| {
                    n.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
