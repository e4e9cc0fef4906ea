//! Each product against the full column matrix's, every path against naive f64 loops.

use super::*;
use crate::core::bf16::amx::Engine;
use crate::core::bf16::{PackedA, matmul_panels_serial};
use crate::core::im2col::{col2im, im2col};
use crate::core::matmul;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    crate::core::Rng::new(seed).fill_normal(&mut v);
    v
}

fn geometries() -> Vec<ConvGeometry> {
    let g = |channels, height, width| ConvGeometry::new(channels, height, width, 4, 2, 1).unwrap();
    // One channel (the row passes), many channels (the channel split), odd maps, and a
    // large one whose blocks end mid-position.
    let odd = ConvGeometry::new(9, 7, 5, 3, 1, 1).unwrap();
    vec![g(1, 8, 6), g(3, 6, 6), g(6, 14, 14), g(13, 10, 4), g(64, 16, 16), odd]
}

/// Equal up to rounding: summing thousands of terms in another order moves a result by a
/// few ulps of the terms' scale, which for a value that cancels to near 0 is more than
/// its own ulps, so the tolerance also scales with the largest value of the output.
fn close(a: &[f32], b: &[f32], what: &str) {
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()) + 1e-5 * scale, "{what}[{i}]: {x} vs {y}");
    }
}

#[test]
fn blocked_products_equal_the_full_column_matrix_products() {
    // Both implementations on this machine: the AVX-512 implicit kernels (when the CPU
    // has them) and the portable blocked ones, chosen for this test's thread only.
    for portable in [false, true] {
        force_portable(portable);
        all_products_match();
    }
    force_portable(false);
}

fn all_products_match() {
    // A map whose rows are ≥ 16 KB (8 × 520 floats): the forward copies its row chunks.
    let wide = ConvGeometry::new(4, 8, 8, 4, 2, 1).unwrap();
    check_products(wide, 2, 520, 70);
    for g in geometries() {
        for (threads, batch, m) in [(1, 3, 5), (2, 3, 70), (2, 33, 5), (3, 7, 66), (2, 130, 64)] {
            check_products(g, threads, batch, m);
        }
    }
}

/// Each product against the full column matrix's, for one geometry, thread count, batch
/// and row count.
fn check_products(g: ConvGeometry, threads: usize, batch: usize, m: usize) {
    let pool = Pool::new(threads);
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    let x = random(g.in_size() * batch, 1);
    let a = random(m * k, 2);
    let e = random(m * n, 3);
    let mut col = vec![0.0; k * n];
    im2col(&pool, &g, &x, &mut col, batch);
    let mut scratch = vec![f32::NAN; scratch_len(threads)];
    let what = format!("{g:?}, {threads} threads, batch {batch}");

    let mut want = vec![0.0; m * n];
    matmul::matmul(&pool, &mut want, Mat::new(&a, m, k), Mat::new(&col, k, n), false);
    let mut got = vec![f32::NAN; m * n];
    columns_product(&pool, &g, Mat::new(&a, m, k), &x, &mut got, &mut scratch, batch, None, None);
    close(&got, &want, &format!("columns_product {what}"));

    let mut want = vec![0.0; m * k];
    matmul::matmul(&pool, &mut want, Mat::new(&e, m, n), Mat::new(&col, k, n).t(), false);
    let mut got = vec![f32::NAN; m * k];
    columns_product_t(&pool, &g, &e, m, &x, &mut got, &mut scratch, batch);
    close(&got, &want, &format!("columns_product_t {what}"));

    let mut dcol = vec![0.0; k * n];
    matmul::matmul(&pool, &mut dcol, Mat::new(&a, m, k).t(), Mat::new(&e, m, n), false);
    let mut want = vec![0.0; x.len()];
    col2im(&pool, &g, &dcol, &mut want, batch);
    let mut got = vec![f32::NAN; x.len()];
    col2im_product(&pool, &g, Mat::new(&a, m, k), &e, &mut got, &mut scratch, batch, None, None);
    close(&got, &want, &format!("col2im_product {what}"));
}

/// Outputs large enough to be streamed to memory (`implicit::stream_bytes`) equal, bit
/// for bit, the same products stored the ordinary way (into a buffer one float off a
/// line, which never streams), with the bias and ReLU epilogue and with the fused ReLU
/// backward, for both products that stream.
#[test]
#[cfg(target_arch = "x86_64")]
fn streamed_outputs_equal_stored_ones() {
    use crate::core::Buffer;
    use crate::core::implicit::{stream_bytes, streams};
    if crate::core::simd::level() != crate::core::simd::Level::V4 {
        eprintln!("skipped: no AVX-512 on this CPU, and only the AVX-512 kernels stream");
        return;
    }
    // The 64×64 colour model's second layer at batch 128: forward output 8.4 MB, its
    // input gradient 16.8 MB.
    let g = ConvGeometry::new(32, 32, 32, 4, 2, 1).unwrap();
    let (batch, m, pool) = (128, 64, Pool::new(2));
    let (k, n, xs) = (g.col_rows(), g.out_plane() * batch, g.in_size() * batch);
    let (x, a, e) = (random(xs, 7), random(m * k, 8), random(m * n, 9));
    let (bias, h_out, h_in) = (random(m, 10), random(m * n, 11), random(xs, 12));
    // One product into `out` (the forward, or the transposed product, whose output has
    // the input's shape), with the epilogue or the fused ReLU backward; returns the
    // latter's bias gradient.
    let run = |forward: bool, masked: bool, out: &mut [f32]| -> Vec<f32> {
        let (rows, h) = if forward { (m, &h_out) } else { (g.channels(), &h_in) };
        let mut db = vec![0.0; rows];
        let ep = (!masked).then(|| Epilogue { bias: &bias[..rows], relu: true });
        let mk = masked.then(|| ReluGrad { h, db: &mut db });
        let (a, mut scratch) = (Mat::new(&a, m, k), vec![0.0; scratch_len(2)]);
        if forward {
            columns_product(&pool, &g, a, &x, out, &mut scratch, batch, ep, mk);
        } else {
            col2im_product(&pool, &g, a, &e, out, &mut scratch, batch, ep, mk);
        }
        db
    };
    for (forward, masked) in [(true, false), (true, true), (false, false), (false, true)] {
        let (len, rows) = if forward { (m * n, m) } else { (xs, g.channels()) };
        let what = format!("forward {forward}, masked {masked}");
        let mut lined = Buffer::zeros(len);
        assert!(streams(lined.as_ptr(), len * 4, len / rows, batch) && len * 4 >= stream_bytes());
        let mut off = Buffer::zeros(len + 1);
        let (db_lined, db_off) = (run(forward, masked, &mut lined), run(forward, masked, &mut off[1..]));
        assert!(lined.iter().zip(&off[1..]).all(|(a, b)| a.to_bits() == b.to_bits()), "{what}: outputs differ");
        assert_eq!(db_lined, db_off, "{what}: bias gradients differ");
        assert!(lined.iter().any(|&v| v != 0.0), "{what}: nothing written");
    }
}

#[test]
fn results_repeat_exactly_for_a_thread_count() {
    let g = geometries()[2];
    let (batch, m) = (9, 4);
    let pool = Pool::new(2);
    let x = random(g.in_size() * batch, 4);
    let a = random(m * g.col_rows(), 5);
    let e = random(m * g.out_plane() * batch, 6);
    let run = || {
        let mut scratch = vec![0.0; scratch_len(2)];
        let mut out = vec![0.0; x.len()];
        col2im_product(&pool, &g, Mat::new(&a, m, g.col_rows()), &e, &mut out, &mut scratch, batch, None, None);
        let mut d = vec![0.0; m * g.col_rows()];
        columns_product_t(&pool, &g, &e, m, &x, &mut d, &mut scratch, batch);
        (out, d)
    };
    assert_eq!(run(), run());
}

/// The geometries of the naive comparison: kernel < stride (pixels no tap reaches), = and >,
/// with channel and row counts on both sides of the implicit kernels' thresholds
/// (`IMPLICIT_MIN_CHANNELS` for the transposed product, `IMPLICIT_MIN_E_ROWS` and
/// `IMPLICIT_MIN_COLUMNS` for the weight gradient), and channels in multiples of 4.
fn naive_geometries() -> Vec<ConvGeometry> {
    let g = |channels, height, width, kernel, stride, padding| {
        ConvGeometry::new(channels, height, width, kernel, stride, padding).unwrap()
    };
    vec![
        g(9, 7, 6, 1, 2, 0),
        g(33, 6, 6, 1, 2, 0),
        g(9, 8, 8, 2, 3, 0),
        g(10, 6, 6, 2, 2, 0),
        g(9, 8, 6, 4, 2, 1),
        g(3, 5, 5, 3, 1, 1),
        g(9, 6, 5, 3, 1, 1), // a residual block's convolution, past the implicit thresholds
        // Channels in fours and eights: the weight gradients' tap-major orders (at 70 and 32 rows).
        g(8, 7, 7, 4, 2, 1),
        g(12, 5, 6, 3, 1, 1),
    ]
}

/// The input position output position (oy, ox) reads through tap (ky, kx), if inside.
fn tap(g: &ConvGeometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * g.stride() + ky).checked_sub(g.padding()).filter(|&i| i < g.height())?;
    let ix = (ox * g.stride() + kx).checked_sub(g.padding()).filter(|&i| i < g.width())?;
    Some((iy, ix))
}

/// The three products by their definitions, in f64: `y [M, Ho, Wo, B] = Σ a[o, (c, ky, kx)]
/// x[c, iy, ix, b]`; `d [M, K] = Σ e[o, oy, ox, b] x[c, iy, ix, b]`; `t [C, H, W, B] =
/// Σ a[o, (c, ky, kx)] e[o, oy, ox, b]`, summed over every tap that lands inside.
fn naive(g: &ConvGeometry, m: usize, a: &[f32], x: &[f32], e: &[f32], batch: usize) -> [Vec<f64>; 3] {
    let (k, kk, ho, wo) = (g.col_rows(), g.kernel(), g.out_height(), g.out_width());
    let xi = |c: usize, iy: usize, ix: usize, b: usize| ((c * g.height() + iy) * g.width() + ix) * batch + b;
    let oi = |o: usize, oy: usize, ox: usize, b: usize| ((o * ho + oy) * wo + ox) * batch + b;
    let (mut y, mut d, mut t) = (vec![0.0; m * ho * wo * batch], vec![0.0; m * k], vec![0.0; g.in_size() * batch]);
    for o in 0..m {
        for (oy, ox, b) in itertools_product(ho, wo, batch) {
            for j in 0..k {
                let (c, ky, kx) = (j / (kk * kk), j / kk % kk, j % kk);
                let Some((iy, ix)) = tap(g, oy, ox, ky, kx) else { continue };
                let (av, xv, ev) = (a[o * k + j] as f64, x[xi(c, iy, ix, b)] as f64, e[oi(o, oy, ox, b)] as f64);
                y[oi(o, oy, ox, b)] += av * xv;
                d[o * k + j] += ev * xv;
                t[xi(c, iy, ix, b)] += av * ev;
            }
        }
    }
    [y, d, t]
}

/// (i, j, l) over [0, n1) × [0, n2) × [0, n3).
fn itertools_product(n1: usize, n2: usize, n3: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    (0..n1).flat_map(move |i| (0..n2).flat_map(move |j| (0..n3).map(move |l| (i, j, l))))
}

/// The naive output after a fused pass: `bias` per row of `rows` rows (`cols` values each)
/// and ReLU, or the ReLU backward of `h` with its row sums.
fn finish(v: &[f64], rows: usize, fused: Fused, bias: &[f32], h: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let cols = v.len() / rows;
    let mut out = v.to_vec();
    let mut sums = vec![0.0; rows];
    for (i, o) in out.iter_mut().enumerate() {
        let r = i / cols;
        match fused {
            Fused::None => {}
            Fused::Bias => *o += bias[r] as f64,
            Fused::BiasRelu => *o = (*o + bias[r] as f64).max(0.0),
            Fused::Mask => {
                *o = if h[i] > 0.0 { *o } else { 0.0 };
                sums[r] += *o;
            }
        }
    }
    (out, sums)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fused {
    None,
    Bias,
    BiasRelu,
    Mask,
}

/// Every path of every product (the AVX-512 implicit kernels where the CPU has them, the
/// portable blocked ones, forced for this thread, and those in bf16) against the naive f64
/// loops, without and with each fused pass, on geometries with kernel < stride, = and >, at widths on both
/// sides of the implicit thresholds. Stale output (NaN on entry) must be overwritten
/// everywhere, also where no tap lands.
#[test]
fn every_path_matches_naive_loops() {
    let avx512 = crate::core::simd::level() == crate::core::simd::Level::V4;
    if !avx512 {
        eprintln!("no AVX-512 here: the portable path alone is checked");
    }
    let pool = Pool::new(2);
    // (portable, bf16): the implicit kernels, the blocked ones, and in bf16 (against the
    // loops fed the same bf16-rounded operands) the paired ones (batches of whole 16-lane
    // chunks, on vdpbf16ps) or the blocked ones, and the blocked ones forced.
    for (portable, bf16) in [(false, false), (true, false), (false, true), (true, true)] {
        force_portable(portable);
        crate::core::bf16::set_enabled(bf16);
        for g in naive_geometries() {
            for (m, batch) in [(5, 3), (40, 17), (9, 32), (6, 65), (13, 48), (70, 16), (32, 16)] {
                check_against_naive(&pool, g, m, batch, &format!("portable {portable} bf16 {bf16}"));
            }
        }
    }
    force_portable(false);
    crate::core::bf16::set_enabled(false);
}

/// The three products of one geometry, `m` rows and `batch` images against the naive f64
/// loops (fed bf16-rounded operands when this thread's products run in bf16), without and
/// with each fused pass, from NaN-filled outputs.
fn check_against_naive(pool: &Pool, g: ConvGeometry, m: usize, batch: usize, label: &str) {
    let bf16 = crate::core::bf16::enabled();
    let rounded = |v: Vec<f32>| if bf16 { v.into_iter().map(crate::core::bf16::round).collect() } else { v };
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    let (x, a, e) = (random(g.in_size() * batch, 21), random(m * k, 22), random(m * n, 23));
    let [y, d, t] = naive(&g, m, &rounded(a.clone()), &rounded(x.clone()), &rounded(e.clone()), batch);
    let what = format!("{g:?} m {m} batch {batch} {label}");
    let mut scratch = vec![f32::NAN; scratch_len(pool.threads())];
    let mut got = vec![f32::NAN; m * k];
    columns_product_t(pool, &g, &e, m, &x, &mut got, &mut scratch, batch);
    close_f64(&got, &d, &format!("columns_product_t {what}"));
    for fused in [Fused::None, Fused::Bias, Fused::BiasRelu, Fused::Mask] {
        for forward in [true, false] {
            let (rows, want, len) = if forward { (m, &y, m * n) } else { (g.channels(), &t, x.len()) };
            let (bias, h) = (random(rows, 24), random(len, 25));
            let (want, want_sums) = finish(want, rows, fused, &bias, &h);
            let mut db = vec![f32::NAN; rows];
            let ep = match fused {
                Fused::Bias | Fused::BiasRelu => Some(Epilogue { bias: &bias, relu: fused == Fused::BiasRelu }),
                _ => None,
            };
            let mk = (fused == Fused::Mask).then(|| ReluGrad { h: &h, db: &mut db });
            let mut out = vec![f32::NAN; len];
            let am = Mat::new(&a, m, k);
            if forward {
                columns_product(pool, &g, am, &x, &mut out, &mut scratch, batch, ep, mk);
            } else {
                col2im_product(pool, &g, am, &e, &mut out, &mut scratch, batch, ep, mk);
            }
            let name = if forward { "columns_product" } else { "col2im_product" };
            close_f64(&out, &want, &format!("{name} {fused:?} {what}"));
            if fused == Fused::Mask {
                close_f64(&db, &want_sums, &format!("{name} bias gradient {what}"));
            }
        }
    }
}

/// The paired products on emulated AMX tiles (and, with `VAE_TEST_AMX=1` on an AMX CPU, on
/// the tiles themselves) against the naive loops: the forward and transposed ones where
/// their reduction fills whole tiles (32 or 64 channels in pairs), the weight gradient at
/// 32·i channels and batches of 32·j; rows that fill the 32-row blocks and rows that do not
/// (the clipped stores), odd and even counts of 16-image chunks per block, taps in the
/// padding (a tile of zeros, or a skipped one), stride 2 and a 3 × 3 stride-1 kernel. With
/// AVX512_BF16 only: elsewhere the paired products do not run.
#[test]
fn paired_products_on_emulated_tiles_match_naive_loops() {
    if !crate::core::bf16::hardware() {
        eprintln!("no AVX512_BF16 here: the paired products (and their tiles) do not run");
        return;
    }
    let pool = Pool::new(2);
    crate::core::bf16::set_enabled(true);
    let g = |channels, side, kernel, stride| ConvGeometry::new(channels, side, side, kernel, stride, 1).unwrap();
    let mut engines = vec![Engine::Emulated];
    if crate::core::bf16::amx::tiles_tested() {
        engines.push(Engine::Tiles);
    }
    for engine in engines {
        tiles::force_engine(Some(engine));
        for (geometry, m, batch) in [
            (g(32, 6, 4, 2), 64, 16),
            (g(32, 5, 4, 2), 40, 48),
            (g(64, 4, 3, 1), 32, 32),
            (g(31, 4, 4, 2), 33, 16),
            (g(32, 5, 4, 2), 40, 32),
            (g(32, 6, 4, 2), 96, 64),
        ] {
            check_against_naive(&pool, geometry, m, batch, &format!("{engine:?} tiles"));
        }
    }
    tiles::force_engine(None);
    crate::core::bf16::set_enabled(false);
}

/// [`close`] against an f64 reference.
fn close_f64(got: &[f32], want: &[f64], what: &str) {
    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert_eq!(got.len(), want.len(), "{what}: length");
    close(got, &want, what);
}

/// The weight gradient's gather straight into pairs (`pairs::im2col_pairs_t`) on blocks that
/// start and end inside an output position and inside a panel of K rows: the product it
/// feeds equals the one from the f32 column block packed the ordinary way, bit for bit.
#[test]
fn the_gathered_weight_gradient_block_equals_the_packed_column_block() {
    let pool = Pool::new(1);
    let g = ConvGeometry::new(9, 7, 5, 3, 1, 1).unwrap();
    let (batch, m) = (6, 7);
    let (k, n) = (g.col_rows(), g.out_plane() * batch);
    let (x, e) = (random(g.in_size() * batch, 31), random(m * n, 32));
    let packed = PackedA::new(&pool, Mat::new(&e, m, n));
    for (rows, cols) in [(0..k, 0..n), (3..k - 1, 4..n - 6), (70..75, 10..44)] {
        let mut col = vec![0.0f32; rows.len() * cols.len()];
        im2col_block(&g, &x, batch, rows.clone(), cols.clone(), &mut col);
        let colt = Mat::new(&col, rows.len(), cols.len()).t();
        let mut want = vec![0.0f32; m * rows.len()];
        crate::core::bf16::matmul_vector(&pool, &mut want, Mat::new(&e, m, n).cols_range(cols.clone()), colt, false);
        let mut pb = vec![u32::MAX; rows.len().div_ceil(bf16::NR) * cols.len().div_ceil(2) * bf16::NR];
        pairs::im2col_pairs_t(&g, &x, batch, rows.clone(), cols.clone(), &mut pb);
        let mut got = vec![f32::NAN; m * rows.len()];
        // SAFETY: `got` holds m rows of rows.len().
        unsafe { matmul_panels_serial(got.as_mut_ptr(), rows.len(), &packed, cols.clone(), &pb, rows.len(), false) };
        assert_eq!(got, want, "rows {rows:?} cols {cols:?}");
    }
}
