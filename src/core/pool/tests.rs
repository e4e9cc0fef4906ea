//! The pool's tests: parts, splits, wake-ups, turns, nesting and who runs a part.

use super::*;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

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
