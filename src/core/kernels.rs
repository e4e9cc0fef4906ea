//! Fused element-wise kernels, each forward beside its backward.
//!
//! Every activation buffer is *features × batch*: row `r` (a feature) holds `batch`
//! contiguous values, one per example. Per-feature work (biases, bias gradients) is then a
//! contiguous row, and per-example sums (losses) are vector adds across rows.
//!
//! Parallel kernels split rows across the pool; per-example partial sums are kept per part
//! and added in part order, so results are reproducible for a given thread count.

use super::pool::{Pool, SyncMut};
use super::shape::holds;
use super::simd::{self, simd_fn};

/// Rows below this count run on the calling thread (for rows of up to 128 values).
pub(crate) const PARALLEL_MIN_ROWS: usize = 64;

/// The fewest rows of `len` values worth splitting across threads: [`PARALLEL_MIN_ROWS`]
/// for a batch of 128, as few as 2 for a feature map's long per-channel rows.
pub(crate) fn min_parallel_rows(len: usize) -> usize {
    (PARALLEL_MIN_ROWS * 128 / len.max(1)).clamp(2, PARALLEL_MIN_ROWS)
}

/// Independent accumulators of a row sum: one AVX-512 register of f32 (two AVX2 ones).
pub(crate) const LANES: usize = 16;

/// `row[i] = f(row[i], other[i])` along a row, returning the new row's sum. The sum goes
/// into `LANES` independent accumulators so the loop vectorises inside a `simd_fn!` (one
/// running float sum would serialise it: the compiler may not reorder float additions).
#[inline(always)]
pub(crate) fn map_row_sum(row: &mut [f32], other: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut rb = row.chunks_exact_mut(LANES);
    let mut ob = other.chunks_exact(LANES);
    for (r, o) in (&mut rb).zip(&mut ob) {
        let (r, o): (&mut [f32; LANES], &[f32; LANES]) = (r.try_into().expect("LANES"), o.try_into().expect("LANES"));
        for j in 0..LANES {
            r[j] = f(r[j], o[j]);
            lanes[j] += r[j];
        }
    }
    let mut tail = 0.0f32;
    for (r, &o) in rb.into_remainder().iter_mut().zip(ob.remainder()) {
        *r = f(*r, o);
        tail += *r;
    }
    lanes.iter().sum::<f32>() + tail
}

// ---------------------------------------------------------------------------------------
// Linear layers without activation (activations are in `activations.rs`)
// ---------------------------------------------------------------------------------------

/// `e[r, b] += bias[r]` — a linear layer with no activation. Shapes: e \[rows, batch\].
pub fn bias_add(e: &mut [f32], bias: &[f32], batch: usize) {
    for (row, &b) in e.chunks_exact_mut(batch).zip(bias) {
        row.iter_mut().for_each(|v| *v += b);
    }
}

/// `out[r] = Σ_b m[r, b]`: the bias gradient of a linear layer with no activation.
pub fn row_sums(m: &[f32], batch: usize, out: &mut [f32]) {
    for (row, o) in m.chunks_exact(batch).zip(out) {
        *o = row.iter().sum();
    }
}

// ---------------------------------------------------------------------------------------
// Reparameterisation + KL divergence
// ---------------------------------------------------------------------------------------

simd_fn! {
    /// Forward of the reparameterisation trick and the Gaussian KL (Kingma & Welling 2014,
    /// eq. 10 and appendix B):
    /// `z = μ + ε·exp(½ logσ²)`,
    /// `KL(q(z|x) ‖ N(0, I)) = −½ Σ_j (1 + logσ²_j − σ²_j − μ²_j)`.
    ///
    /// Shapes: `enc` \[2·latent, batch\] = μ rows then logσ² rows; `eps` \[latent, batch\];
    /// `z` \[latent, batch\] (output); `kl` \[batch\] receives each example's KL (overwritten).
    /// z is [`super::importance::draw`]'s, with σ computed once for the draw and the KL.
    pub fn reparameterize(enc: &[f32], eps: &[f32], z: &mut [f32], kl: &mut [f32], batch: usize) {
        let (mu, logvar) = enc.split_at(enc.len() / 2);
        kl.fill(0.0);
        let rows = mu.chunks_exact(batch).zip(logvar.chunks_exact(batch));
        for ((mrow, lrow), (erow, zrow)) in rows.zip(eps.chunks_exact(batch).zip(z.chunks_exact_mut(batch))) {
            for i in 0..batch {
                let (m, lv) = (mrow[i], lrow[i]);
                let std = simd::exp(0.5 * lv);
                zrow[i] = m + erow[i] * std;
                kl[i] += 0.5 * (m * m + std * std - 1.0 - lv);
            }
        }
    }
}

simd_fn! {
    /// Backward of [`reparameterize`] with the KL weighted by `beta`:
    /// `∂/∂μ = dz + β·μ`, `∂/∂logσ² = dz·ε·½σ + β·½(σ² − 1)`, and the encoder-head bias
    /// gradient `db[r] = Σ_b denc[r, b]`.
    ///
    /// Shapes: `enc`, `denc` \[2·latent, batch\]; `eps`, `dz` \[latent, batch\]; `db` \[2·latent\].
    pub fn reparameterize_backward(
        enc: &[f32],
        eps: &[f32],
        dz: &[f32],
        beta: f32,
        denc: &mut [f32],
        db: &mut [f32],
        batch: usize,
    ) {
        let latent = eps.len() / batch;
        let (mu, logvar) = enc.split_at(latent * batch);
        let (dmu, dlogvar) = denc.split_at_mut(latent * batch);
        let (db_mu, db_logvar) = db.split_at_mut(latent);
        for j in 0..latent {
            let r = j * batch..(j + 1) * batch;
            let (mut smu, mut slv) = (0.0f32, 0.0f32);
            let (mrow, lrow, erow, dzrow) = (&mu[r.clone()], &logvar[r.clone()], &eps[r.clone()], &dz[r.clone()]);
            let (dmrow, dlrow) = (&mut dmu[r.clone()], &mut dlogvar[r]);
            for i in 0..batch {
                let std = simd::exp(0.5 * lrow[i]);
                let gm = dzrow[i] + beta * mrow[i];
                let gl = 0.5 * (dzrow[i] * erow[i] * std + beta * (std * std - 1.0));
                dmrow[i] = gm;
                dlrow[i] = gl;
                smu += gm;
                slv += gl;
            }
            db_mu[j] = smu;
            db_logvar[j] = slv;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Input gather
// ---------------------------------------------------------------------------------------

/// The dequantized intensity of byte `v`, feature `feature` of image `image`: (v + u)/256
/// with u uniform in [0, 1) (Theis, van den Oord & Bethge 2016, eq. 8), drawn by hashing
/// (key, image, feature) with SplitMix64's finaliser (a counter-based draw: any value in any
/// order, on any thread, gives the same u). 24 bits of u: values stay distinct in f32.
#[inline]
pub fn dequantized(v: u8, key: u64, image: u32, feature: usize) -> f32 {
    let mut h = key ^ ((image as u64) << 32 | feature as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    let u = (h >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
    (v as f32 + u) * (1.0 / 256.0)
}

/// [`gather_images_parallel`] with the intensities dequantized ([`dequantized`]): column c
/// holds image `indices[c]` of `images`, its noise keyed by `key` and `ids[c]` (the image's
/// index in its dataset, so a batch gathered from a copy draws the same noise). Shapes as
/// there.
pub fn gather_dequantized(
    pool: &Pool,
    images: &[u8],
    pixels: usize,
    (indices, ids): (&[u32], &[u32]),
    key: u64,
    x: &mut [f32],
) {
    let batch = indices.len();
    assert!(holds(x.len(), &[pixels, batch]) && ids.len() == batch, "x must be [pixels, batch]");
    let xp = SyncMut::new(&mut x[..pixels * batch]);
    pool.for_ranges(pixels, 1, 64, &|_, rows| {
        // SAFETY: parts write disjoint row ranges.
        let x = unsafe { xp.slice(rows.start * batch..rows.end * batch) };
        for (f, row) in rows.zip(x.chunks_exact_mut(batch)) {
            for ((v, &i), &id) in row.iter_mut().zip(indices).zip(ids) {
                *v = dequantized(images[i as usize * pixels + f], key, id, f);
            }
        }
    });
}

/// Copies the images `indices` of a `[count, pixels]` u8 dataset into the columns of
/// `x` \[pixels, batch\] as intensities `v / 255` (torchvision's `ToTensor`), transposing on
/// the way. Works in blocks of 16 examples so every store is a contiguous run of a row.
pub fn gather_images(images: &[u8], pixels: usize, indices: &[u32], x: &mut [f32]) {
    let batch = indices.len();
    assert!(holds(x.len(), &[pixels, batch]), "x must be [pixels, batch]");
    // SAFETY: bounds checked above; we hold the only reference to x.
    unsafe { gather_columns(images, pixels, indices, x.as_mut_ptr(), batch, 0) }
}

/// [`gather_images`] with the columns split across the pool. Shapes as there.
pub fn gather_images_parallel(pool: &Pool, images: &[u8], pixels: usize, indices: &[u32], x: &mut [f32]) {
    let batch = indices.len();
    assert!(holds(x.len(), &[pixels, batch]), "x must be [pixels, batch]");
    let xp = SyncMut::new(x);
    pool.for_ranges(batch, 16, 64, &|_, r| {
        // SAFETY: bounds checked above; parts write disjoint columns.
        unsafe { gather_columns(images, pixels, &indices[r.clone()], xp.ptr(), batch, r.start) }
    });
}

/// Writes columns `col0..col0 + indices.len()` of the row-major `[pixels, stride]` buffer `x`.
///
/// # Safety
/// `x` must point to `pixels * stride` floats, and no other thread may touch these columns.
unsafe fn gather_columns(images: &[u8], pixels: usize, indices: &[u32], x: *mut f32, stride: usize, col0: usize) {
    const BLOCK: usize = 16;
    let lut: [f32; 256] = std::array::from_fn(|v| v as f32 / 255.0);
    assert!(col0 + indices.len() <= stride, "columns out of range");
    for (block_index, block) in indices.chunks(BLOCK).enumerate() {
        let c0 = col0 + block_index * BLOCK;
        let mut rows: [&[u8]; BLOCK] = [&[]; BLOCK];
        for (slot, &i) in rows.iter_mut().zip(block) {
            let start = i as usize * pixels;
            *slot = &images[start..start + pixels];
        }
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if block.len() == BLOCK && simd::level() == simd::Level::V4 {
            done = pixels / BLOCK * BLOCK;
            for f in (0..done).step_by(BLOCK) {
                // SAFETY: AVX-512 checked; pixels f..f + 16 of each row, and columns c0..c0 + 16
                // of rows f..f + 16 of x (the contract).
                unsafe { gather_tile(&rows, f, x.add(f * stride + c0), stride) };
            }
        }
        for f in done..pixels {
            // SAFETY: f < pixels and c0 + block.len() <= stride, per the contract.
            let out = unsafe { std::slice::from_raw_parts_mut(x.add(f * stride + c0), block.len()) };
            for (o, src) in out.iter_mut().zip(&rows) {
                *o = lut[src[f] as usize];
            }
        }
    }
}

/// Pixels `f..f + 16` of 16 images as a 16 × 16 tile of `x` (rows `stride` apart): each
/// image's 16 bytes widened to floats and divided by 255 (as the table in [`gather_columns`],
/// to the bit: one correctly rounded division), then transposed in registers so each pixel's
/// 16 images are one store (the tutorial's step gathers its batch in 0.045 ms, 0.077 a
/// value at a time).
///
/// # Safety
/// AVX-512F; each row holds bytes `f..f + 16`; `x` is valid for 16 rows of 16 floats at
/// stride `stride`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_tile(rows: &[&[u8]; 16], f: usize, x: *mut f32, stride: usize) {
    use std::arch::x86_64::*;
    let scale = _mm512_set1_ps(255.0);
    let tile: [__m512; 16] = std::array::from_fn(|i| {
        let bytes = &rows[i][f..f + 16];
        // SAFETY: 16 bytes (sliced above).
        let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
        _mm512_div_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)), scale)
    });
    for (j, row) in super::implicit::transpose16(tile).into_iter().enumerate() {
        // SAFETY: per the contract.
        unsafe { _mm512_storeu_ps(x.add(j * stride), row) };
    }
}

/// Writes one-hot label rows: `y[c, b] = 1` if `labels[b] == c`. Shapes: y \[classes, batch\].
pub fn one_hot(labels: impl Iterator<Item = u8>, classes: usize, y: &mut [f32], batch: usize) {
    y[..classes * batch].fill(0.0);
    for (b, label) in labels.enumerate() {
        let c = label as usize;
        assert!(c < classes, "label {c} out of range for {classes} classes");
        y[c * batch + b] = 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x[f, b] = images[idx[b]·pixels + f] / 255` to the bit, for every byte value, on one
    /// and two threads, with whole 16 × 16 tiles (in registers where the CPU has AVX-512), a
    /// batch that leaves a partial block of columns (101 = 48 + 53 on two threads), and pixels
    /// past the last whole tile.
    #[test]
    fn gathered_columns_are_the_bytes_over_255() {
        let pixels = 50; // three tiles of 16 and 2 pixels more
        let n = 40;
        let images: Vec<u8> = (0..n * pixels).map(|i| (i * 97 % 256) as u8).collect();
        assert!((0..=255u8).all(|v| images.contains(&v)), "every byte value appears");
        let idx: Vec<u32> = (0..101).map(|b| (b * 13 % n) as u32).collect();
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let mut x = vec![f32::NAN; pixels * idx.len()];
            gather_images_parallel(&pool, &images, pixels, &idx, &mut x);
            for f in 0..pixels {
                for (b, &i) in idx.iter().enumerate() {
                    let want = images[i as usize * pixels + f] as f32 / 255.0;
                    let got = x[f * idx.len() + b];
                    assert_eq!(got.to_bits(), want.to_bits(), "{threads} threads: pixel {f}, column {b}");
                }
            }
        }
    }
}
