//! The tile path's packings against their definitions, its products (the emulated tiles on
//! every CPU) against f64 sums of the same bf16-rounded operands, and the AMX instructions
//! against the emulation where the CPU has them.

use super::*;
use crate::core::bf16::tests::{check_products, random, transposed};
use crate::core::bf16::{matmul_bf16, pair};

#[test]
fn the_configuration_is_palette_1_with_eight_tiles_of_16_rows_of_64_bytes() {
    let cfg = config();
    assert_eq!(cfg[0], 1, "palette");
    assert!(cfg[1..16].iter().all(|&b| b == 0), "start row and reserved bytes");
    for t in 0..16 {
        let (colsb, rows) = (u16::from_le_bytes([cfg[16 + 2 * t], cfg[17 + 2 * t]]), cfg[48 + t]);
        let want = if t < 8 { (64, 16) } else { (0, 0) };
        assert_eq!((colsb, rows), want, "tile {t}");
    }
}

#[test]
fn depth_is_rounded_up_to_whole_tiles_of_16_pairs() {
    for (k, pp) in [(1, 16), (2, 16), (32, 16), (33, 32), (64, 32), (784, 400), (400, 208)] {
        assert_eq!(depth_pairs(k), pp, "K = {k}");
    }
}

/// Both packings, from row-major and transposed views, against the module's layouts: every
/// pair in place, zeros past K and in the padding rows and columns.
#[test]
fn the_packings_lay_out_whole_tiles_with_zero_padding() {
    let pool = Pool::new(2);
    for (m, k, n) in [(1, 1, 1), (17, 33, 40), (33, 64, 7), (70, 401, 65)] {
        let (a, b) = (random(m * k, 1), random(k * n, 2));
        let (at, bt) = (transposed(&a, m, k), transposed(&b, k, n));
        let pp = depth_pairs(k);
        let (mp, np) = (m.div_ceil(32) * 32, n.div_ceil(32) * 32);
        let get = |v: &[f32], cols: usize, r: usize, c: usize, rows: usize| {
            if r < rows && c < cols { v[r * cols + c] } else { 0.0 }
        };
        let views = [(Mat::new(&a, m, k), Mat::new(&b, k, n)), (Mat::new(&at, k, m).t(), Mat::new(&bt, n, k).t())];
        for (va, vb) in views {
            let (mut pa, mut pb) = (vec![u32::MAX; mp * pp], vec![u32::MAX; np * pp]);
            pack(&pool, (va, &mut pa), (vb, &mut pb), pp);
            for i in 0..mp {
                for q in 0..pp {
                    let want = pair(get(&a, k, i, 2 * q, m), get(&a, k, i, 2 * q + 1, m));
                    assert_eq!(pa[i * pp + q], want, "a [{m}, {k}] row {i} pair {q}");
                }
            }
            for g in 0..np / 16 {
                for q in 0..pp {
                    for j in 0..16 {
                        let col = 16 * g + j;
                        let want = pair(get(&b, n, 2 * q, col, k), get(&b, n, 2 * q + 1, col, k));
                        assert_eq!(pb[(g * pp + q) * 16 + j], want, "b [{k}, {n}] group {g} pair {q} column {j}");
                    }
                }
            }
        }
    }
}

/// The emulated tiles: K below, at and past a tile's depth (odd ones: a padded pair), M and
/// N not multiples of the 32 × 32 block (the scratch path) and multiples of it (straight into
/// the output), transposed views, accumulation, and the same bits on one thread as on two.
#[test]
fn emulated_tile_products_match_f64_sums_of_the_rounded_operands() {
    let (one, two) = (Pool::new(1), Pool::new(2));
    for (m, k, n) in [(1, 1, 1), (5, 31, 20), (32, 32, 32), (64, 33, 96), (45, 100, 70), (128, 301, 40)] {
        let (a, b) = (random(m * k, m as u64), random(k * n, n as u64 + 7));
        let (at, bt) = (transposed(&a, m, k), transposed(&b, k, n));
        for flipped in [false, true] {
            let (va, vb) = if flipped {
                (Mat::new(&at, k, m).t(), Mat::new(&bt, n, k).t())
            } else {
                (Mat::new(&a, m, k), Mat::new(&b, k, n))
            };
            let (mut got, mut twice) = (vec![f32::NAN; m * n], vec![f32::NAN; m * n]);
            product(&two, &mut got, va, vb, false, Engine::Emulated);
            // Accumulating adds the product to what is there (here: the product itself), in
            // the tiles: the sums start from it.
            twice.copy_from_slice(&got);
            product(&two, &mut twice, va, vb, true, Engine::Emulated);
            check_products((&a, &b), (m, k, n), (&got, &twice, None), &format!("transposed {flipped}"));
            let mut serial = vec![f32::NAN; m * n];
            product(&one, &mut serial, va, vb, false, Engine::Emulated);
            assert_eq!(serial, got, "[{m}, {k}] x [{k}, {n}]: one thread against two");
        }
    }
}

/// An empty reduction writes zeros (or leaves an accumulated output as it was); an empty
/// output touches nothing.
#[test]
fn empty_products_write_zeros_or_nothing() {
    let pool = Pool::new(2);
    let mut dst = vec![3.0f32; 6];
    product(&pool, &mut dst, Mat::new(&[], 2, 0), Mat::new(&[], 0, 3), true, Engine::Emulated);
    assert_eq!(dst, [3.0; 6]);
    product(&pool, &mut dst, Mat::new(&[], 2, 0), Mat::new(&[], 0, 3), false, Engine::Emulated);
    assert_eq!(dst, [0.0; 6]);
    let mut none: Vec<f32> = vec![];
    product(&pool, &mut none, Mat::new(&[], 0, 4), Mat::new(&[1.0; 4], 4, 1), false, Engine::Emulated);
}

/// The emulated tiles and the `vdpbf16ps` path (or its portable loop) compute the same
/// products to f32 rounding: the two orders of the same pair sums.
#[test]
fn emulated_tiles_agree_with_the_vdpbf16ps_products() {
    let pool = Pool::new(2);
    let (m, k, n) = (400, 784, 128); // the tutorial's first layer, forward
    let (a, b) = (random(m * k, 3), random(k * n, 4));
    let (mut tiles, mut vector) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
    product(&pool, &mut tiles, Mat::new(&a, m, k), Mat::new(&b, k, n), false, Engine::Emulated);
    let _f32 = crate::core::bf16::Precision::Bf16.scope();
    if !crate::core::bf16::amx_engaged() {
        matmul_bf16(&pool, &mut vector, Mat::new(&a, m, k), Mat::new(&b, k, n), false);
        for (i, (t, v)) in tiles.iter().zip(&vector).enumerate() {
            assert!((t - v).abs() <= 2e-5 * (1.0 + v.abs()) * (k as f32).sqrt(), "[{i}]: tiles {t} vs {v}");
        }
    }
}

/// On a CPU with AMX (`VAE_TEST_AMX=1`): the tile instructions against their emulation,
/// including the edge blocks and accumulation, and the probe of their peak. Elsewhere it
/// says what it skipped.
#[test]
fn the_amx_tiles_match_their_emulation() {
    if !tiles_tested() {
        return;
    }
    let pool = Pool::new(2);
    for (m, k, n) in [(32, 32, 32), (45, 100, 70), (400, 784, 128), (784, 400, 20)] {
        let (a, b) = (random(m * k, 11), random(k * n, 12));
        for accumulate in [false, true] {
            let (mut hw, mut emu) = (random(m * n, 13), random(m * n, 13));
            product(&pool, &mut hw, Mat::new(&a, m, k), Mat::new(&b, k, n), accumulate, Engine::Tiles);
            product(&pool, &mut emu, Mat::new(&a, m, k), Mat::new(&b, k, n), accumulate, Engine::Emulated);
            for (i, (h, e)) in hw.iter().zip(&emu).enumerate() {
                let what = format!("[{m}, {k}] x [{k}, {n}] accumulate {accumulate} [{i}]");
                assert!((h - e).abs() <= 1e-5 * (1.0 + e.abs()) * (k as f32).sqrt(), "{what}: tiles {h} vs {e}");
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `hardware` holds. 256 rounds of 32 pairs of 1·1 per output.
        let v = unsafe { peak_loop(256) };
        assert_eq!(v, 256.0 * 32.0);
    }
}
