//! The importance-weighted bound (Burda, Grosse & Salakhutdinov 2015, eq. 8):
//!
//! ```text
//! log p(x) ≥ IWAE_k(x) = E[ log (1/k) Σ_{i=1..k} w_i ],   w_i = p(x|z_i) p(z_i) / q(z_i|x),
//! z_i ~ q(z|x) = N(μ(x), diag σ²(x))
//! ```
//!
//! With z = μ + σ·ε, `log p(z) − log q(z|x) = Σ_j −½ z_j² + ½ ε_j² + ½ log σ²_j` (the
//! (2π)^{−L/2} factors cancel), and `log p(x|z) = Σ_pixels x·l − softplus(l)` for the
//! decoder's logits l. For `cvae` every term is conditioned on the label: log p(x | y).
//!
//! The k·n decoder passes are streamed in chunks of columns, each chunk one batched
//! decode on both cores; each image's log-mean-exp is accumulated online, so memory stays
//! bounded whatever k is. IWAE_1 is exactly the single-sample ELBO estimator
//! log p(x|z) + log p(z) − log q(z|x) on the same draw.

use crate::core::importance;
use crate::core::kernels::one_hot;
use crate::core::logsumexp::LogSumExp;
pub use crate::core::logsumexp::log_sum_exp;
use crate::core::pool::SyncMut;
use crate::core::{Pool, Purpose, Rng};
use crate::data::Split;
use crate::model::{Model, Workspace};

/// Decoder columns per chunk: big enough for `gemm` to run at full speed, small enough
/// that the logits (pixels × chunk floats, ~3 MB) stay in the last-level cache.
pub const CHUNK: usize = 1024;

/// The noise of importance sample `sample` of image `image`: a stream of its own, so any
/// sample can be drawn in any order, on any thread, with any chunking.
pub fn sample_rng(seed: u64, image: usize, sample: usize) -> Rng {
    Rng::stream(seed, Purpose::Iwae, ((image as u64) << 32) | sample as u64)
}

/// The encodings μ, log σ² of every image of `split`, `[n, latent]` each; with `dequantize =
/// Some(key)`, of its dequantized values ([`crate::core::kernels::dequantized`]).
pub fn encode_split(model: &Model, split: &Split, pool: &Pool, dequantize: Option<u64>) -> (Vec<f32>, Vec<f32>) {
    let c = model.config();
    let (l, p, n) = (c.latent_dim, c.pixels(), split.len());
    let (mut mu, mut logvar) = (vec![0.0; n * l], vec![0.0; n * l]);
    let batch = crate::train::EVAL_BATCH.min(n.max(1));
    let mut ws = Workspace::inference(c, batch, 1, pool.threads());
    let all: Vec<u32> = (0..n as u32).collect();
    for chunk in all.chunks(batch) {
        let b = chunk.len();
        if b != ws.batch {
            ws = Workspace::inference(c, b, 1, pool.threads());
        }
        match dequantize {
            Some(key) => {
                crate::core::kernels::gather_dequantized(pool, &split.images, p, (chunk, chunk), key, &mut ws.x)
            }
            None => crate::core::kernels::gather_images(&split.images, p, chunk, &mut ws.x[..p * b]),
        }
        if c.cond_dim() > 0 {
            one_hot(chunk.iter().map(|&i| split.labels[i as usize]), c.cond_dim(), &mut ws.y, b);
        }
        model.network.encode(pool, &model.params, &mut ws);
        for (col, &i) in chunk.iter().enumerate() {
            for j in 0..l {
                mu[i as usize * l + j] = ws.enc[j * b + col];
                if c.kind.variational() {
                    logvar[i as usize * l + j] = ws.enc[(l + j) * b + col];
                }
            }
        }
    }
    (mu, logvar)
}

/// The targets of a chunk, `x` \[pixels, cols\] with column c = image `images_of[c]`, where
/// the columns come in runs of one image (k samples each): every row of a run is one value,
/// so it is filled rather than gathered column by column. With `dequantize`, the values
/// are the dequantized ones of [`encode_split`] with the same key.
fn broadcast_images(
    pool: &Pool,
    images: &[u8],
    pixels: usize,
    image_of: &[u32],
    dequantize: Option<u64>,
    x: &mut [f32],
) {
    let cols = image_of.len();
    let mut runs = Vec::new(); // (first column, end, image)
    for (c, &i) in image_of.iter().enumerate() {
        match runs.last_mut() {
            Some((_, end, image)) if *image == i => *end = c + 1,
            _ => runs.push((c, c + 1, i)),
        }
    }
    let xp = SyncMut::new(x);
    pool.for_ranges(pixels, 1, 64, &|_, rows| {
        // SAFETY: parts write disjoint row ranges.
        let x = unsafe { xp.slice(rows.start * cols..rows.end * cols) };
        for (f, row) in rows.zip(x.chunks_exact_mut(cols)) {
            for &(c0, c1, image) in &runs {
                let v = images[image as usize * pixels + f];
                row[c0..c1].fill(match dequantize {
                    Some(key) => crate::core::kernels::dequantized(v, key, image, f),
                    None => v as f32 / 255.0,
                });
            }
        }
    });
}

/// IWAE_k(x) for every image of `split`, in nats (log p̂(x), ≤ log p(x) in expectation).
/// `progress(images_done)` is called after each chunk.
pub fn iwae(
    model: &Model,
    split: &Split,
    k: usize,
    seed: u64,
    pool: &Pool,
    progress: &mut dyn FnMut(usize),
) -> Vec<f64> {
    assert!(k > 0, "k must be at least 1");
    let c = model.config();
    let (l, p, n) = (c.latent_dim, c.pixels(), split.len());
    let dequantize = crate::train::eval_dequantize_key(c, seed);
    let (mu, logvar) = encode_split(model, split, pool, dequantize);
    let total = n * k;
    let mut ws = Workspace::inference(c, CHUNK.min(total.max(1)), 1, pool.threads());
    let mut acc = vec![LogSumExp::default(); n];
    let mut image_of = vec![0u32; CHUNK];
    let mut log_ratio = vec![0.0f32; CHUNK]; // log p(z) − log q(z|x) per column
    // log p(z) per chunk from the prior (N(0, I)'s −½‖z‖², or a mixture's).
    let prior = model.network.prior_density(pool, &model.params);
    let mut log_prior = vec![0.0; CHUNK];
    let mut start = 0usize;
    while start < total {
        let cols = CHUNK.min(total - start);
        if cols != ws.batch {
            ws = Workspace::inference(c, cols, 1, pool.threads());
        }
        for (col, slot) in image_of[..cols].iter_mut().enumerate() {
            *slot = ((start + col) / k) as u32;
        }
        // Columns in parallel: z = μ + σ·ε and the prior/posterior log-ratio.
        let (zp, rp) = (SyncMut::new(&mut ws.z), SyncMut::new(&mut log_ratio));
        pool.for_ranges(cols, 16, 64, &|_, r| {
            let mut eps = vec![0.0f32; l];
            for col in r {
                let (image, sample) = ((start + col) / k, (start + col) % k);
                sample_rng(seed, image, sample).fill_normal(&mut eps);
                let mut lr = 0.0f32;
                for j in 0..l {
                    let (m, lv) = (mu[image * l + j], logvar[image * l + j]);
                    let z = importance::draw(m, lv, eps[j]);
                    lr += importance::neg_log_posterior(eps[j], lv); // − log q(z|x); log p(z) below
                    // SAFETY: each column is written by one part only.
                    unsafe { zp.slice(j * cols + col..j * cols + col + 1)[0] = z };
                }
                // SAFETY: as above.
                unsafe { rp.slice(col..col + 1)[0] = lr };
            }
        });
        prior.log_density(pool, &ws.z[..l * cols], &mut log_prior[..cols]);
        for (r, &v) in log_ratio[..cols].iter_mut().zip(&log_prior[..cols]) {
            *r += v;
        }
        if c.cond_dim() > 0 {
            let labels = image_of[..cols].iter().map(|&i| split.labels[i as usize]);
            one_hot(labels, c.cond_dim(), &mut ws.z[l * cols..], cols);
        }
        broadcast_images(pool, &split.images, p, &image_of[..cols], dequantize, &mut ws.x[..p * cols]);
        model.network.decode_logits(pool, &model.params, &mut ws);
        let x = std::mem::take(&mut ws.x);
        model.network.log_likelihood(pool, &model.params, &mut ws, &x[..p * cols]);
        ws.x = x;
        for col in 0..cols {
            let image = image_of[col] as usize;
            acc[image].add(ws.bce[col] as f64 + log_ratio[col] as f64);
        }
        start += cols;
        progress(start / k);
    }
    let log_k = (k as f64).ln();
    acc.iter().map(|a| a.value() - log_k).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_targets_equal_the_gathered_ones() {
        let (pixels, n) = (70, 9);
        let images: Vec<u8> = (0..pixels * n).map(|i| (i * 37 % 256) as u8).collect();
        // Runs of one image as the chunks have them, ending and starting mid-chunk.
        let image_of: Vec<u32> = [1u32, 1, 1, 4, 4, 7, 7, 7, 7, 8].repeat(20);
        let (mut a, mut b) = (vec![0.0; pixels * 200], vec![1.0; pixels * 200]);
        crate::core::kernels::gather_images(&images, pixels, &image_of, &mut a);
        broadcast_images(&Pool::new(2), &images, pixels, &image_of, None, &mut b);
        assert_eq!(a, b);
        // Dequantized: the same values as the training gather of those images and keys.
        let pool = Pool::new(2);
        crate::core::kernels::gather_dequantized(&pool, &images, pixels, (&image_of, &image_of), 77, &mut a);
        broadcast_images(&pool, &images, pixels, &image_of, Some(77), &mut b);
        assert_eq!(a, b);
        // Each value lies in its bin [v/256, (v+1)/256), and the noise differs by image.
        for (f, row) in a.chunks(200).enumerate() {
            for (&x, &i) in row.iter().zip(&image_of) {
                let v = images[i as usize * pixels + f] as f32;
                assert!(x >= v / 256.0 && x < (v + 1.0) / 256.0, "{x} for byte {v}");
            }
        }
        let noise = |x: f32| x * 256.0 - (x * 256.0).floor();
        assert_ne!(noise(a[0]), noise(a[3]), "images 1 and 4 share their noise");
    }

    #[test]
    fn sample_streams_are_distinct_per_image_and_sample() {
        let a = sample_rng(1, 2, 3).next_u64();
        assert_eq!(a, sample_rng(1, 2, 3).next_u64());
        assert_ne!(a, sample_rng(1, 3, 2).next_u64());
        assert_ne!(a, sample_rng(1, 2, 4).next_u64());
    }
}
