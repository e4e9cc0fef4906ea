//! A batch's inputs (gathered, binarized or dequantized from a split) and the test pass
//! over a split in chunks of [`EVAL_BATCH`].

use super::{EVAL_BATCH, TestLoss};
use crate::core::{Pool, Purpose, Rng, kernels};
use crate::data::Split;
use crate::data::binarize::gather_binarized;
use crate::model::{BatchLoss, Model, Workspace};

/// Copies the batch `idx` of `split` into `ws.x` (pixel rows) and a cvae's labels into `ws.y`.
/// With `coins = Some(key)`, every pixel is a fresh Bernoulli(intensity) draw from the
/// image's own stream under the key (dynamic binarization);
/// with `dequantize = Some(key)`, every value is (v + u)/256 with u drawn from the key and
/// the image's index ([`kernels::dequantized`]).
pub fn fill_inputs(
    pool: &Pool,
    split: &Split,
    idx: &[u32],
    config: &crate::model::ModelConfig,
    ws: &mut Workspace,
    coins: Option<u64>,
    dequantize: Option<u64>,
) {
    let labels = idx.iter().map(|&i| split.labels[i as usize]);
    let batch = Batch { images: &split.images, idx, ids: idx };
    fill_from(pool, batch, labels, config, ws, (coins, dequantize));
}

/// Where a batch's images come from: bytes `[n, pixels]`, the batch's indices into them,
/// and each column's image id (its index in the dataset, which keys its dequantization).
pub(super) struct Batch<'a> {
    pub(super) images: &'a [u8],
    pub(super) idx: &'a [u32],
    pub(super) ids: &'a [u32],
}

/// [`fill_inputs`] from a [`Batch`] and the batch's labels, with its binarization coins or
/// dequantization key.
pub(super) fn fill_from(
    pool: &Pool,
    batch: Batch<'_>,
    labels: impl Iterator<Item = u8>,
    config: &crate::model::ModelConfig,
    ws: &mut Workspace,
    (coins, dequantize): (Option<u64>, Option<u64>),
) {
    let (p, b) = (config.pixels(), ws.batch);
    let Batch { images, idx, ids } = batch;
    debug_assert_eq!(idx.len(), b);
    let x = &mut ws.x[..p * b];
    match (coins, dequantize) {
        (Some(key), _) => gather_binarized(images, p, (idx, ids), x, key),
        (None, Some(key)) => kernels::gather_dequantized(pool, images, p, (idx, ids), key, x),
        (None, None) => kernels::gather_images_parallel(pool, images, p, idx, x),
    }
    if config.cond_dim() > 0 {
        kernels::one_hot(labels, config.cond_dim(), &mut ws.y, b);
    }
}

/// The key of the dequantization noise of an evaluation seeded `seed` (`None` for a model
/// fitted to the grid values).
pub fn eval_dequantize_key(config: &crate::model::ModelConfig, seed: u64) -> Option<u64> {
    config.dequantize.then(|| Rng::stream(seed, Purpose::Dequantize, u64::MAX).next_u64())
}

/// Mean per-example BCE and KL over `split` with one z ~ q(z|x) per image (z = μ for `ae`),
/// each image's noise its own (drawn from `rng`'s key and its index, [`Rng::example`]).
pub fn evaluate(model: &Model, split: &Split, pool: &Pool, rng: Rng) -> TestLoss {
    let n = split.len();
    if n == 0 {
        return TestLoss::default();
    }
    let sum = evaluate_range(model, split, 0..n, pool, rng);
    TestLoss { bce: sum.bce / n as f64, kl: sum.kl / n as f64 }
}

/// Each image's loss in [`evaluate`]'s pass (−ELBO at its one draw, nats), `[n]`.
pub fn evaluate_each(model: &Model, split: &Split, pool: &Pool, rng: Rng) -> Vec<f64> {
    let mut out = Vec::with_capacity(split.len());
    evaluate_chunks(model, split, 0..split.len(), pool, rng, &mut |ws, _| out.extend(ws.example_losses()));
    out
}

/// [`evaluate`]'s sums (not means) over the images `range` of `split`, each drawing the noise
/// it draws in the whole split's pass.
pub fn evaluate_range(model: &Model, split: &Split, range: std::ops::Range<usize>, pool: &Pool, rng: Rng) -> BatchLoss {
    let mut sum = BatchLoss::default();
    evaluate_chunks(model, split, range, pool, rng, &mut |_, loss| {
        sum.bce += loss.bce;
        sum.kl += loss.kl;
    });
    sum
}

/// The test pass over the images `range` of `split`, chunk by chunk, each chunk's workspace
/// and loss handed to `each` after its forward pass.
fn evaluate_chunks(
    model: &Model,
    split: &Split,
    range: std::ops::Range<usize>,
    pool: &Pool,
    mut rng: Rng,
    each: &mut dyn FnMut(&Workspace, BatchLoss),
) {
    let _flush = crate::core::FlushDenormals::new();
    let c = model.config();
    let n = range.len();
    if n == 0 {
        return;
    }
    // The dequantization noise of this pass (drawn first, only for models that use it).
    let dequantize = c.dequantize.then(|| rng.next_u64());
    let noise = rng.next_u64();
    let mut ws = Workspace::inference(c, EVAL_BATCH.min(n), 1, pool.threads());
    let mut small: Option<Workspace> = None;
    let all: Vec<u32> = (range.start as u32..range.end as u32).collect();
    for chunk in all.chunks(EVAL_BATCH) {
        let ws = if chunk.len() == ws.batch {
            &mut ws
        } else {
            small.insert(Workspace::inference(c, chunk.len(), 1, pool.threads()))
        };
        fill_inputs(pool, split, chunk, c, ws, None, dequantize);
        if c.kind.variational() {
            Rng::fill_example_normals(pool, noise, chunk, 1, &mut ws.eps);
        }
        let loss = model.network.forward(pool, &model.params, ws);
        each(ws, loss);
    }
}

/// The fixed latent draws (and labels) of the per-epoch sample grid: `rows × 10` images;
/// for `cvae` row r shows class r (modulo the class count).
pub fn sample_grid_inputs(model: &Model, seed: u64, n: usize) -> (Vec<f32>, Option<Vec<u8>>) {
    let c = model.config();
    let mut z = vec![0.0; n * c.latent_dim];
    Rng::stream(seed, Purpose::Samples, 0).fill_normal(&mut z);
    let labels = c.kind.conditional().then(|| (0..n).map(|i| ((i / 10) % c.classes) as u8).collect());
    (z, labels)
}
