//! The examples' timer: one warm-up call, then the best of 7 rounds of 8 calls, in ms.

use std::time::Instant;

pub fn time(f: &mut dyn FnMut()) -> f64 {
    f();
    let round = |f: &mut dyn FnMut()| {
        let s = Instant::now();
        (0..8).for_each(|_| f());
        s.elapsed().as_secs_f64() / 8.0 * 1e3
    };
    (0..7).map(|_| round(f)).fold(f64::INFINITY, f64::min)
}
