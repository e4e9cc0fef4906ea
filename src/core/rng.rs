//! Deterministic random numbers: xoshiro256++ (Blackman & Vigna 2018) seeded through
//! SplitMix64, normals by the Box–Muller transform.
//!
//! Every random stream of a run is derived from `(seed, purpose, epoch)` with
//! [`Rng::stream`], so an epoch's shuffle and noise do not depend on how the run got there:
//! a resumed run draws exactly what an uninterrupted one would.

use super::pool::{Pool, SyncMut};

/// Two independent N(0, 1) draws from two uniforms in [0, 1) (Box & Muller 1958), in f64.
#[inline]
fn box_muller(u: f64, v: f64) -> (f64, f64) {
    // 1 - u lies in (0, 1], so the log is finite.
    let r = (-2.0 * (1.0 - u).ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * v).sin_cos();
    (r * c, r * s)
}

/// xoshiro256++: 256 bits of state, period 2²⁵⁶ − 1, passes BigCrush.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a random stream is for; part of its seed so streams never overlap.
#[derive(Clone, Copy, Debug)]
#[repr(u64)]
pub enum Purpose {
    Init = 1,
    Shuffle = 2,
    TrainNoise = 3,
    TestNoise = 4,
    Samples = 5,
    Binarize = 6,
    User = 7,
    DynamicBinarize = 8,
    Eval = 9,
    Iwae = 10,
    Split = 11,
    /// Which examples a `--train-limit`/`--test-limit` subset or a preview takes.
    Subset = 12,
    /// The flips and shifts of `--augment`.
    Augment = 13,
    /// The uniform noise that dequantizes 8-bit values for a continuous likelihood.
    Dequantize = 14,
    /// The factor draws of the disentanglement scores (`vae disentanglement`).
    Disentanglement = 15,
    /// FactorVAE's permutations of the codes across a batch.
    Permute = 16,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)];
        Rng { s }
    }

    /// The stream for `purpose` in epoch `epoch` of the run seeded `seed`.
    pub fn stream(seed: u64, purpose: Purpose, epoch: u64) -> Rng {
        let mut sm = seed ^ 0x5EED_0000_0000_0000;
        let a = splitmix64(&mut sm);
        let mut sm2 = a ^ (purpose as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        let b = splitmix64(&mut sm2);
        Rng::new(b ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The key of `purpose`'s per-example streams in epoch `epoch` ([`Rng::example`]).
    pub fn example_key(seed: u64, purpose: Purpose, epoch: u64) -> u64 {
        Rng::stream(seed, purpose, epoch).next_u64()
    }

    /// The draws of example `id` under `key` ([`Rng::example_key`]): the same whichever
    /// process, thread or batch position handles the example, so a batch split across
    /// workers (threads or MPI ranks) draws exactly what the whole batch draws.
    pub fn example(key: u64, id: u64) -> Rng {
        let mut sm = key ^ id.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        Rng::new(splitmix64(&mut sm))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, 1) as f32 with 24 random bits.
    #[inline]
    pub fn uniform_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }

    /// Uniform integer in `0..n` (Lemire's multiply-shift; the bias is < n/2⁶⁴).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Fills `out` with independent N(0, 1) draws (Box–Muller, in f64 for accuracy).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        let mut chunks = out.chunks_exact_mut(2);
        for pair in &mut chunks {
            let (a, b) = self.normal_pair();
            pair[0] = a as f32;
            pair[1] = b as f32;
        }
        if let [last] = chunks.into_remainder() {
            *last = self.normal_pair().0 as f32;
        }
    }

    fn normal_pair(&mut self) -> (f64, f64) {
        let (u, v) = (self.uniform(), self.uniform());
        box_muller(u, v)
    }

    /// Fills `eps` \[rows, k·B\] (column s·B + b: sample s of batch position b) with N(0, 1)
    /// draws, column group b from example `ids[b]`'s own stream under `key` (k·rows values in
    /// order: sample by sample, each a column top to bottom), the positions in parallel on
    /// `pool`. A sub-batch of `ids` gets the columns the whole batch gets for those examples.
    pub fn fill_example_normals(pool: &Pool, key: u64, ids: &[u32], samples: usize, eps: &mut [f32]) {
        let b = ids.len();
        let cols = samples * b;
        if cols == 0 {
            return;
        }
        let rows = eps.len() / cols;
        let dst = SyncMut::new(eps);
        pool.for_ranges(b, 8, 64, &|_, r| {
            for pos in r {
                let mut rng = Rng::example(key, ids[pos] as u64);
                for s in 0..samples {
                    let col = s * b + pos;
                    let mut l = 0;
                    while l < rows {
                        let (u, v) = (rng.uniform(), rng.uniform());
                        let (x, y) = box_muller(u, v);
                        // SAFETY: column `col` belongs to this position alone; the parts'
                        // position ranges are disjoint.
                        unsafe {
                            dst.slice(l * cols + col..l * cols + col + 1)[0] = x as f32;
                            if l + 1 < rows {
                                dst.slice((l + 1) * cols + col..(l + 1) * cols + col + 1)[0] = y as f32;
                            }
                        }
                        l += 2;
                    }
                }
            }
        });
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_output_of_xoshiro256plusplus() {
        // State [1, 2, 3, 4] gives 41943041, 58720359 (the reference C code's first outputs).
        let mut r = Rng { s: [1, 2, 3, 4] };
        assert_eq!(r.next_u64(), 41_943_041);
        assert_eq!(r.next_u64(), 58_720_359);
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = Rng::new(7);
        let mut v = vec![0.0f32; 200_001];
        r.fill_normal(&mut v);
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        // Standard errors: 1/sqrt(n) ≈ 0.0022 for the mean, sqrt(2/n) ≈ 0.0032 for the variance.
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.015, "variance {var}");
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a = Rng::stream(1, Purpose::Shuffle, 3).next_u64();
        assert_eq!(a, Rng::stream(1, Purpose::Shuffle, 3).next_u64());
        assert_ne!(a, Rng::stream(1, Purpose::Shuffle, 4).next_u64());
        assert_ne!(a, Rng::stream(1, Purpose::TrainNoise, 3).next_u64());
        assert_ne!(a, Rng::stream(2, Purpose::Shuffle, 3).next_u64());
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<u32> = (0..1000).collect();
        Rng::new(3).shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }

    /// Values bench/vae_rng.py (the Python port PyTorch runs use to draw what `vae train`
    /// draws) pins: change a stream here and that port must change with it.
    #[test]
    fn python_port_reference_values() {
        assert_eq!(Rng::stream(1, Purpose::Shuffle, 1).next_u64(), 0x9961_CA2C_7512_2DF8);
        let mut order: Vec<u32> = (0..10).collect();
        Rng::stream(1, Purpose::Shuffle, 1).shuffle(&mut order);
        assert_eq!(order, [0, 7, 1, 8, 6, 3, 4, 2, 9, 5]);
        let mut eps = [0.0f32; 3];
        Rng::fill_example_normals(&Pool::new(1), Rng::example_key(1, Purpose::TrainNoise, 1), &[7], 1, &mut eps);
        assert_eq!(eps, [0.396_002_9, -1.515_474_3, 0.864_199_4]);
        let key = Rng::example_key(1, Purpose::Dequantize, 1);
        let x = [0, 1].map(|f| crate::core::kernels::dequantized(0, key, 3, f) * 256.0);
        assert_eq!(x, [0.669_622_6, 0.195_441_66]);
    }

    /// Each example's normals are its own: a sub-batch, or the batch in another order, gets
    /// the same columns for the same examples; k samples are k columns of one stream.
    #[test]
    fn example_normals_follow_the_example_not_its_position() {
        let pool = Pool::new(2);
        let (rows, k) = (5, 3);
        let ids: Vec<u32> = (0..100).map(|i| i * 7 + 3).collect();
        let mut whole = vec![0.0f32; rows * k * ids.len()];
        Rng::fill_example_normals(&pool, 11, &ids, k, &mut whole);
        let column = |eps: &[f32], b: usize, s: usize, pos: usize| -> Vec<f32> {
            (0..rows).map(|l| eps[l * k * b + s * b + pos]).collect()
        };
        let part = &ids[40..45];
        let mut sub = vec![0.0f32; rows * k * part.len()];
        Rng::fill_example_normals(&pool, 11, part, k, &mut sub);
        for s in 0..k {
            for pos in 0..part.len() {
                assert_eq!(column(&sub, part.len(), s, pos), column(&whole, ids.len(), s, 40 + pos));
            }
        }
        // Another key, other draws; the draws are standard normal.
        let mut other = vec![0.0f32; whole.len()];
        Rng::fill_example_normals(&pool, 12, &ids, k, &mut other);
        assert_ne!(whole, other);
        let n = whole.len() as f64;
        let mean = whole.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = whole.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 4.0 / n.sqrt() && (var - 1.0).abs() < 0.15, "{mean} {var}");
    }
}
