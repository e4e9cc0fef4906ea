//! The bf16 products against f64 sums of the same bf16-rounded operands (equal to f32
//! accumulation error), and against the f32 product (within bf16's rounding).

use super::*;
use crate::core::{Rng, matmul};

pub(super) fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    Rng::new(seed).fill_normal(&mut v);
    v
}

/// `v` [rows, cols] stored transposed, so that `Mat::new(&t, cols, rows).t()` views `v`.
pub(super) fn transposed(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols).map(|i| v[(i % rows) * cols + i / rows]).collect()
}

/// `got = a·b` and `twice` (`got` with the product accumulated onto it) against f64 sums of
/// the bf16-rounded operands (`a` [m, k], `b` [k, n] row-major): within f32 accumulation
/// error, and within bf16's rounding of the f32 product `fp32` where given. Accumulation is
/// checked against 2·(the f64 sum), which holds whether the sums start from what is there
/// (AMX tiles) or are added to it after (`vdpbf16ps`).
pub(super) fn check_products(
    (a, b): (&[f32], &[f32]),
    (m, k, n): (usize, usize, usize),
    (got, twice, fp32): (&[f32], &[f32], Option<&[f32]>),
    label: &str,
) {
    for i in 0..m {
        for j in 0..n {
            let terms = (0..k).map(|p| round(a[i * k + p]) as f64 * round(b[p * n + j]) as f64);
            let (want, scale) = terms.fold((0.0, 0.0), |(s, t), v| (s + v, t + v.abs()));
            let (g, t) = (got[i * n + j] as f64, twice[i * n + j] as f64);
            let what = format!("[{m}, {k}] x [{k}, {n}] {label} ({i}, {j})");
            let tol = 1e-6 * k as f64 * scale + 1e-30;
            assert!((g - want).abs() <= tol, "{what}: {g} vs f64 {want}");
            assert!((t - 2.0 * want).abs() <= 3.0 * tol, "{what}: accumulated {t} vs f64 2·{want}");
            // Against the f32 product: each operand's relative rounding is ≤ 2^-9.
            if let Some(fp32) = fp32 {
                let f = fp32[i * n + j] as f64;
                assert!((g - f).abs() <= 2.0 * 2f64.powi(-8) * scale + 1e-6, "{what}: {g} vs f32 {f}");
            }
        }
    }
}

#[test]
fn rounding_is_to_nearest_even() {
    assert_eq!(to_bf16(1.0), 0x3f80);
    assert_eq!(to_bf16(-2.0), 0xc000);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
    assert_eq!(round(1.0 + 2f32.powi(-8)), 1.0);
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to the even one.
    assert_eq!(round(1.0 + 3.0 * 2f32.powi(-8)), 1.0 + 2f32.powi(-6));
    assert_eq!(round(1.0 + 2f32.powi(-8) + 2f32.powi(-20)), 1.0 + 2f32.powi(-7));
    assert!(round(f32::NAN).is_nan());
    assert_eq!(round(f32::INFINITY), f32::INFINITY);
    assert_eq!(round(f32::MAX), f32::INFINITY); // rounds past the largest bf16
    assert_eq!(from_bf16(to_bf16(3.140625)), 3.140625); // exactly representable
}

/// Shapes with odd K (a padded pair), row and column remainders, strided (transposed) views,
/// on both paths where the CPU has the instruction.
#[test]
fn products_match_f64_sums_of_the_rounded_operands() {
    let pool = Pool::new(2);
    // The last is above the fused products' size: packed on the pool first.
    for (m, k, n) in [(1, 1, 1), (7, 13, 37), (6, 64, 64), (13, 200, 130), (400, 33, 9), (260, 301, 230)] {
        let (a, b) = (random(m * k, m as u64), random(k * n, n as u64 + 100));
        for transposed_views in [false, true] {
            // The same matrices, stored transposed and viewed back.
            let (at, bt) = (transposed(&a, m, k), transposed(&b, k, n));
            let (va, vb) = if transposed_views {
                (Mat::new(&at, k, m).t(), Mat::new(&bt, n, k).t())
            } else {
                (Mat::new(&a, m, k), Mat::new(&b, k, n))
            };
            let mut got = vec![f32::NAN; m * n];
            matmul_bf16(&pool, &mut got, va, vb, false);
            let mut twice = got.clone();
            matmul_bf16(&pool, &mut twice, va, vb, true);
            let mut fp32 = vec![0.0; m * n];
            matmul(&pool, &mut fp32, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
            let label = format!("transposed {transposed_views}");
            check_products((&a, &b), (m, k, n), (&got, &twice, Some(&fp32)), &label);
        }
    }
}

/// The `vdpbf16ps` kernel and the portable loop agree, on a CPU with the instruction (on one
/// without, the test above checks the portable loop).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_hardware_kernel_matches_the_portable_loop() {
    if !hardware() {
        eprintln!("no AVX512_BF16 here: the portable path alone is checked");
        return;
    }
    let (m, k, n) = (11, 77, 70);
    let (a, b) = (random(m * k, 1), random(k * n, 2));
    let pool = Pool::new(2);
    let (mut pa, mut pb, p) =
        (vec![0; pack::a_len(&Mat::new(&a, m, k))], vec![0; pack::b_len(&Mat::new(&b, k, n))], k.div_ceil(2));
    pack::pack(&pool, Some((Mat::new(&a, m, k), &mut pa)), Some((Mat::new(&b, k, n), &mut pb)));
    for (block, panel) in [(0, 0), (1, 1)] {
        let mr = MR.min(m - block * MR);
        let nc = NR.min(n - panel * NR);
        let (sa, sb) = (&pa[block * p * MR..(block + 1) * p * MR], &pb[panel * p * NR..(panel + 1) * p * NR]);
        let (mut h, mut s) = (vec![0.0f32; MR * NR], vec![0.0f32; MR * NR]);
        // SAFETY: this test checked the feature; the buffers hold MR rows of NR at stride NR.
        unsafe {
            kernel::kernel(p, sa, sb, h.as_mut_ptr(), NR, mr, nc, false);
            kernel::portable(p, sa, sb, s.as_mut_ptr(), NR, mr, nc, false);
        }
        for (i, (x, y)) in h.iter().zip(&s).enumerate() {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "block {block} panel {panel} [{i}]: {x} vs {y}");
        }
        // Past mr rows and nc columns nothing is written.
        assert!(h[mr * NR..].iter().all(|&v| v == 0.0));
        assert!((0..mr).all(|r| h[r * NR + nc..(r + 1) * NR].iter().all(|&v| v == 0.0)));
    }
}

/// A left operand packed once gives every later product exactly what packing it each time
/// gives.
#[test]
fn a_prepacked_operand_gives_identical_products() {
    let pool = Pool::new(2);
    let (m, k, n) = (20, 31, 70);
    let a = random(m * k, 5);
    let packed = PackedA::new(&pool, Mat::new(&a, m, k));
    assert_eq!(packed.shape(), (m, k));
    for seed in [6, 7] {
        let b = random(k * n, seed);
        let (mut once, mut each) = (vec![0.0; m * n], vec![0.0; m * n]);
        matmul_packed(&pool, &mut once, &packed, Mat::new(&b, k, n), false);
        matmul_vector(&pool, &mut each, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
        assert_eq!(once, each);
    }
}

/// A column range of a left operand packed whole gives what packing that range alone gives,
/// and the serial products match the pooled one.
#[test]
fn a_column_range_of_a_whole_packing_multiplies_as_the_range_alone() {
    let pool = Pool::new(2);
    let (m, depth, n) = (13, 75, 70);
    let a = random(m * depth, 8);
    let whole = PackedA::new(&pool, Mat::new(&a, m, depth));
    for cols in [0..75, 0..16, 16..48, 64..75] {
        let k = cols.len();
        let b = random(k * n, 9);
        let range = Mat::new(&a, m, depth).cols_range(cols.clone());
        let mut want = vec![0.0; m * n];
        matmul_vector(&pool, &mut want, range, Mat::new(&b, k, n), false);
        let (mut got, mut alone) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
        let single = PackedA::serial(range);
        // SAFETY: both destinations hold m rows of n.
        unsafe {
            matmul_packed_cols_serial(got.as_mut_ptr(), n, &whole, cols.clone(), Mat::new(&b, k, n), false);
            matmul_packed_serial(alone.as_mut_ptr(), n, &single, Mat::new(&b, k, n), false);
        }
        assert_eq!(got, want, "columns {cols:?}");
        assert_eq!(alone, want, "columns {cols:?} packed alone");
    }
}

/// A narrow product runs transposed ([`matmul_vector`]'s choice by block use) and gives the
/// bits of the direct orientation, accumulating too.
#[test]
fn narrow_products_run_transposed_with_the_same_bits() {
    let pool = Pool::new(2);
    for (m, k, n) in [(200, 784, 20), (784, 200, 20), (50, 33, 7)] {
        let (a, b) = (random(m * k, 10), random(k * n, 11));
        assert!(block_use(n, m) > 1.25 * block_use(m, n), "[{m}, {n}] should run transposed");
        let (mut got, mut direct) = (random(m * n, 12), random(m * n, 12));
        matmul_vector(&pool, &mut got, Mat::new(&a, m, k), Mat::new(&b, k, n), true);
        product(&pool, &mut direct, Mat::new(&a, m, k), Mat::new(&b, k, n), true);
        assert_eq!(got, direct, "[{m}, {k}] x [{k}, {n}]");
    }
}

/// `pack_b` against its definition, `out[(panel·P + q)·NR + j] = (b[2q, panel·NR + j],
/// b[2q + 1, …])` with 0 past N and past an odd K, on shapes large enough that the pool splits
/// each panel's pairs (a weight gradient's eᵀ, viewed transposed as it is there), with a
/// partial panel and an odd K; stale spare buffers (all ones) must be overwritten.
#[test]
fn pack_b_splits_each_panel_by_pairs() {
    for threads in [1, 2, 3] {
        let pool = Pool::new(threads);
        for (k, n) in [(4097, 64), (3001, 100), (20, 5)] {
            let e = random(n * k, 31);
            let b = Mat::new(&e, n, k).t(); // [K, N], each column contiguous
            give_back(vec![u32::MAX; 2 * NR * k]);
            let out = pack_b(&pool, b);
            let p = k.div_ceil(2);
            let at = |r: usize, c: usize| if r < k && c < n { b.at(r, c) } else { 0.0 };
            for panel in 0..n.div_ceil(NR) {
                for q in 0..p {
                    for j in 0..NR {
                        let (c, got) = (panel * NR + j, out[(panel * p + q) * NR + j]);
                        let want = pair(at(2 * q, c), at(2 * q + 1, c));
                        assert_eq!(got, want, "threads {threads} K {k} N {n}: panel {panel} pair {q} lane {j}");
                    }
                }
            }
            give_back(out);
        }
    }
}
