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
    /// worker that claimed it, and returns when all parts are done. Calls from several
    /// threads take turns. Every part runs with subnormals flushed to zero
    /// ([`super::fpmode`]); the calling thread's floating-point mode is restored on return.
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
        let g = shared.generation.fetch_add(1, Ordering::SeqCst).wrapping_add(1);
        self.workers.iter().for_each(|(_, p)| p.wake());
        let mut first_panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0))).err();
        // The parts no worker has claimed yet: run here rather than wait for their thread.
        for (i, claim) in shared.claims.iter().enumerate() {
            if claim.compare_exchange(g.wrapping_sub(1), g, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
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
mod tests;
