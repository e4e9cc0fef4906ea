//! The networks' forward and backward passes over a batch, on preallocated buffers.
//!
//! Notation (all activations *features × batch*, B = batch):
//! P = pixels, C = classes (10 for `cvae`, else 0), H = hidden, L = latent,
//! E = encoder head rows (2L, or L for `ae`), act = ReLU (the tutorial) or tanh.
//!
//! ```text
//! x  [P+C, B]  → h = act(W·x + b)  [H, B]   (encoder: `hidden_layers` such layers)
//!              → enc = We·h + be         [E, B]  (μ rows, then log σ² rows)
//!              → z = μ + ε·exp(½ log σ²) [L, B], then the label rows → [L+C, B]
//!              → g = act(W·z + b)  [H, B]   (decoder: `hidden_layers` such layers)
//!              → logits = W3·g + b3      [P, B],  p(x|z) = Bernoulli(σ(logits))
//! loss = Σ_b BCE_b + β·KL_b   (Kingma & Welling 2014, eq. 10; the tutorial's sum)
//! ```
//!
//! The importance-weighted objective ([`Network::forward_iwae`]) draws k samples of z per
//! example: the decoder then runs on k·B columns, sample-major (column s·B + b), and the
//! loss is Σ_b −log (1/k) Σ_s w_s (Burda et al. 2015; kernels in `core::importance`).

use super::config::{Layout, Linear, ModelConfig};
use crate::core::activations::{activation_backward, bias_activation};
use crate::core::{Mat, Pool, matmul};
use crate::core::{importance, kernels};

/// Every buffer one batch needs, allocated once.
pub struct Workspace {
    pub batch: usize,
    /// Draws of z per example, k: 1, or more for the importance-weighted objective. The
    /// decoder's buffers have k·B columns.
    pub samples: usize,
    /// Input \[P+C, B\]: pixel rows, then one-hot label rows.
    pub x: Vec<f32>,
    /// Encoder hidden activations, one \[H, B\] buffer per layer.
    pub enc_h: Vec<Vec<f32>>,
    pub enc: Vec<f32>,
    /// Standard-normal noise \[L, k·B\] for the reparameterisation.
    pub eps: Vec<f32>,
    /// Decoder input \[L+C, k·B\]: z rows, then the label rows (copied from `x`).
    pub z: Vec<f32>,
    /// Decoder hidden activations, one \[H, k·B\] buffer per layer.
    pub dec_h: Vec<Vec<f32>>,
    /// Logits on the forward pass, then ∂loss/∂logits \[P, k·B\] (or σ(logits) after `decode`).
    pub out: Vec<f32>,
    /// Gradient scratch \[H, k·B\], two so stacked layers can ping-pong.
    dh: [Vec<f32>; 2],
    dz: Vec<f32>,
    denc: Vec<f32>,
    /// Per-column reconstruction loss (BCE summed over pixels) \[k·B\], plus per-thread scratch.
    pub bce: Vec<f32>,
    /// Per-example KL(q(z|x) ‖ p(z)) \[B\]; after [`Network::forward_iwae`], each example's loss.
    pub kl: Vec<f32>,
    /// The targets \[P, k·B\]: `x`'s pixel rows once per sample (empty when k = 1).
    x_rep: Vec<f32>,
    /// Normalised importance weights w̃ \[k·B\] (importance-weighted objective only).
    pub weights: Vec<f32>,
    /// Bias gradient of the output layer when no gradient buffer is given \[P\].
    db_out: Vec<f32>,
}

impl Workspace {
    pub fn new(config: &ModelConfig, batch: usize, threads: usize) -> Workspace {
        Workspace::with_samples(config, batch, 1, threads)
    }

    /// Buffers for `samples` draws of z per example (the decoder runs on samples·batch columns).
    pub fn with_samples(config: &ModelConfig, batch: usize, samples: usize, threads: usize) -> Workspace {
        assert!(samples >= 1, "at least one sample");
        let (h, l, p) = (config.hidden_dim, config.latent_dim, config.pixels());
        let e = config.encoder_out();
        let cols = batch * samples;
        let v = |rows: usize| vec![0.0f32; rows * batch];
        let d = |rows: usize| vec![0.0f32; rows * cols];
        let layers = config.hidden_layers;
        Workspace {
            batch,
            samples,
            x: v(config.encoder_in()),
            enc_h: (0..layers).map(|_| v(h)).collect(),
            enc: v(e),
            eps: d(l),
            z: d(config.decoder_in()),
            dec_h: (0..layers).map(|_| d(h)).collect(),
            out: d(p),
            dh: [d(h), d(h)],
            dz: d(l),
            denc: v(e),
            bce: d(threads.max(1)),
            kl: v(1),
            x_rep: if samples > 1 { d(p) } else { Vec::new() },
            weights: d(1),
            db_out: vec![0.0; p],
        }
    }

    /// Decoder columns: samples × batch.
    pub fn columns(&self) -> usize {
        self.batch * self.samples
    }

    /// Copies the label rows of `x` (written by the data pipeline) into `z`, once per sample.
    fn copy_labels(&mut self, config: &ModelConfig) {
        let (b, cols) = (self.batch, self.columns());
        let (p, l) = (config.pixels(), config.latent_dim);
        for c in 0..config.cond_dim() {
            let src = &self.x[(p + c) * b..(p + c + 1) * b];
            for block in self.z[(l + c) * cols..(l + c + 1) * cols].chunks_exact_mut(b) {
                block.copy_from_slice(src);
            }
        }
    }

    /// Fills `x_rep` with the reconstruction target of every decoder column when k > 1:
    /// `x`'s pixel rows, once per sample.
    fn fill_targets(&mut self, pixels: usize) {
        let b = self.batch;
        if self.samples == 1 {
            return;
        }
        let cols = self.columns();
        for r in 0..pixels {
            let src = &self.x[r * b..(r + 1) * b];
            for block in self.x_rep[r * cols..(r + 1) * cols].chunks_exact_mut(b) {
                block.copy_from_slice(src);
            }
        }
    }
}

/// A network: configuration plus the parameter layout. Stateless; parameters are passed in.
#[derive(Clone, Debug)]
pub struct Network {
    pub config: ModelConfig,
    pub layout: Layout,
}

/// Loss sums of one batch, in nats.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BatchLoss {
    /// Σ_b BCE_b (the negative log-likelihood term).
    pub bce: f64,
    /// Σ_b KL_b (0 for `ae`).
    pub kl: f64,
}

/// `dst [out, B] = W [out, in] · src [in, B]`.
fn product(pool: &Pool, params: &[f32], layer: &Linear, src: &[f32], dst: &mut [f32], batch: usize) {
    let w = Mat::new(&params[layer.w.clone()], layer.outputs, layer.inputs);
    matmul(pool, dst, w, Mat::new(src, layer.inputs, batch), false);
}

/// `dW [out, in] = dy [out, B] · xᵀ [B, in]`.
fn weight_grad(pool: &Pool, grads: &mut [f32], layer: &Linear, dy: &[f32], x: &[f32], batch: usize) {
    let (dy, x) = (Mat::new(dy, layer.outputs, batch), Mat::new(x, layer.inputs, batch));
    matmul(pool, &mut grads[layer.w.clone()], dy, x.t(), false);
}

/// `dx [rows, B] = W[:, :rows]ᵀ · dy [out, B]` (the first `rows` inputs only).
fn input_grad(pool: &Pool, params: &[f32], layer: &Linear, rows: usize, dy: &[f32], dx: &mut [f32], batch: usize) {
    let w = Mat::columns(&params[layer.w.clone()], layer.outputs, rows, layer.inputs);
    matmul(pool, dx, w.t(), Mat::new(dy, layer.outputs, batch), false);
}

impl Network {
    pub fn new(config: ModelConfig) -> Network {
        let layout = config.layout();
        Network { config, layout }
    }

    /// Encoder: `x` → hidden layers → `enc` (μ, log σ²). Reads `ws.x`.
    pub fn encode(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        let (act, b) = (self.config.activation, ws.batch);
        for (j, layer) in self.layout.encoder.iter().enumerate() {
            let (before, rest) = ws.enc_h.split_at_mut(j);
            let src = if j == 0 { &ws.x } else { &before[j - 1] };
            product(pool, params, layer, src, &mut rest[0], b);
            bias_activation(pool, act, &mut rest[0], &params[layer.b.clone()], b);
        }
        let head = &self.layout.head;
        product(pool, params, head, ws.enc_h.last().expect("one layer at least"), &mut ws.enc, b);
        kernels::bias_add(&mut ws.enc, &params[head.b.clone()], b);
    }

    /// z from the encoding: μ + ε·σ using `ws.eps` (variational), or μ (`ae`); writes the
    /// per-example KL into `ws.kl`. Also copies the label rows into `ws.z`.
    pub fn reparameterize(&self, ws: &mut Workspace) {
        let (l, b) = (self.config.latent_dim, ws.batch);
        if self.config.kind.variational() {
            kernels::reparameterize(&ws.enc, &ws.eps, &mut ws.z[..l * b], &mut ws.kl[..b], b);
        } else {
            ws.z[..l * b].copy_from_slice(&ws.enc[..l * b]);
            ws.kl[..b].fill(0.0);
        }
        ws.copy_labels(&self.config);
    }

    /// Decoder up to the logits: `z` → hidden layers → `out` = W3·g (bias not yet added),
    /// on all k·B columns.
    pub fn decode_logits(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        let (act, b) = (self.config.activation, ws.columns());
        for (j, layer) in self.layout.decoder.iter().enumerate() {
            let (before, rest) = ws.dec_h.split_at_mut(j);
            let src = if j == 0 { &ws.z } else { &before[j - 1] };
            product(pool, params, layer, src, &mut rest[0], b);
            bias_activation(pool, act, &mut rest[0], &params[layer.b.clone()], b);
        }
        let last = ws.dec_h.last().expect("one layer at least");
        product(pool, params, &self.layout.output, last, &mut ws.out, b);
    }

    /// Decoder to Bernoulli means: `ws.out` = σ(W3·g + b3) \[P, B\]. Reads `ws.z`.
    pub fn decode(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        self.decode_logits(pool, params, ws);
        let cols = ws.columns();
        crate::core::likelihood::bias_sigmoid(&mut ws.out, &params[self.layout.output.b.clone()], cols);
    }

    /// Full forward pass and loss. Needs `ws.x` and (variational models) `ws.eps` filled.
    /// Leaves per-example BCE in `ws.bce[..B]`, KL in `ws.kl`, and ∂BCE/∂logits in `ws.out`;
    /// writes the output-bias gradient into `db3` (or scratch when `None`).
    pub fn forward(&self, pool: &Pool, params: &[f32], ws: &mut Workspace, db3: Option<&mut [f32]>) -> BatchLoss {
        assert_eq!(ws.samples, 1, "the ELBO takes one draw of z per example; see forward_iwae");
        self.encode(pool, params, ws);
        self.reparameterize(ws);
        self.decode_logits(pool, params, ws);
        let (p, b) = (self.config.pixels(), ws.batch);
        let db3 = match db3 {
            Some(g) => g,
            None => &mut ws.db_out,
        };
        let b3 = &params[self.layout.output.b.clone()];
        crate::core::likelihood::bernoulli_bce(pool, &mut ws.out, b3, &ws.x[..p * b], db3, &mut ws.bce, b);
        BatchLoss { bce: ws.bce[..b].iter().map(|&v| v as f64).sum(), kl: ws.kl[..b].iter().map(|&v| v as f64).sum() }
    }

    /// Gradients of Σ_b BCE_b + β·KL_b with respect to every parameter, after [`forward`]
    /// (which already wrote the `fc3.bias` gradient). `grads` has the parameters' layout.
    ///
    /// [`forward`]: Network::forward
    pub fn backward(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace, beta: f32) {
        self.backward_decoder(pool, params, grads, ws);
        // Encoder head: through the reparameterisation and the KL term.
        let db_head = &mut grads[self.layout.head.b.clone()];
        if self.config.kind.variational() {
            kernels::reparameterize_backward(&ws.enc, &ws.eps, &ws.dz, beta, &mut ws.denc, db_head, ws.batch);
        } else {
            ws.denc.copy_from_slice(&ws.dz);
            kernels::row_sums(&ws.denc, ws.batch, db_head);
        }
        self.backward_encoder(pool, params, grads, ws);
    }

    /// The importance-weighted objective with k = `ws.samples` draws of z per example
    /// (Burda, Grosse & Salakhutdinov 2015, eq. 8): Σ_b −log (1/k) Σ_s w_s. Needs `ws.x`
    /// and `ws.eps` \[L, k·B\] filled. Leaves the w̃-weighted ∂loss/∂logits in `ws.out`,
    /// w̃ in `ws.weights`, each example's loss in `ws.kl`, and writes the `fc3.bias`
    /// gradient into `db3` (or scratch when `None`). The returned `bce` is Σ_b of the mean
    /// reconstruction loss over the samples and `kl` the rest, so `bce + kl` is the loss;
    /// for k = 1 `kl` is the single-draw estimate log q(z|x) − log p(z).
    pub fn forward_iwae(&self, pool: &Pool, params: &[f32], ws: &mut Workspace, db3: Option<&mut [f32]>) -> BatchLoss {
        assert!(self.config.kind.variational(), "the importance-weighted objective needs a variational model");
        let (l, p, b, cols) = (self.config.latent_dim, self.config.pixels(), ws.batch, ws.columns());
        self.encode(pool, params, ws);
        importance::reparameterize_samples(&ws.enc, &ws.eps, &mut ws.z[..l * cols], b);
        ws.copy_labels(&self.config);
        self.decode_logits(pool, params, ws);
        ws.fill_targets(p);
        let x = if ws.samples == 1 { &ws.x[..p * b] } else { &ws.x_rep[..] };
        let b3 = &params[self.layout.output.b.clone()];
        crate::core::likelihood::bernoulli_bce(pool, &mut ws.out, b3, x, &mut ws.db_out, &mut ws.bce, cols);
        let (loss, bce) = importance::importance_weights(
            &ws.enc,
            &ws.eps,
            &ws.z[..l * cols],
            &ws.bce[..cols],
            &mut ws.weights,
            &mut ws.kl[..b],
            b,
        );
        let db3 = match db3 {
            Some(g) => g,
            None => &mut ws.db_out,
        };
        importance::weight_columns(&mut ws.out, &ws.weights, db3);
        BatchLoss { bce, kl: loss - bce }
    }

    /// Gradients of the importance-weighted loss after [`forward_iwae`] (which already wrote
    /// the `fc3.bias` gradient).
    ///
    /// [`forward_iwae`]: Network::forward_iwae
    pub fn backward_iwae(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace) {
        self.backward_decoder(pool, params, grads, ws);
        let l = self.config.latent_dim * ws.columns();
        let db_head = &mut grads[self.layout.head.b.clone()];
        importance::importance_backward(
            &ws.enc,
            &ws.eps,
            &ws.z[..l],
            &ws.dz,
            &ws.weights,
            &mut ws.denc,
            db_head,
            ws.batch,
        );
        self.backward_encoder(pool, params, grads, ws);
    }

    /// Output layer and decoder stack, from ∂loss/∂logits in `ws.out` to ∂loss/∂z in `ws.dz`.
    fn backward_decoder(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace) {
        let (c, lay, cols) = (&self.config, &self.layout, ws.columns());
        let (h, n) = (c.hidden_dim, c.hidden_layers);
        // Output layer: dW3 = dout · gᵀ, dg = W3ᵀ · dout.
        weight_grad(pool, grads, &lay.output, &ws.out, &ws.dec_h[n - 1], cols);
        input_grad(pool, params, &lay.output, h, &ws.out, &mut ws.dh[0], cols);
        // Decoder hidden layers; the first one's input is z (labels need no gradient, so
        // only the latent rows of dz are computed).
        let dz = Some((&mut ws.dz[..], c.latent_dim));
        stack_backward(pool, c, params, grads, &lay.decoder, &ws.dec_h, &ws.z, &mut ws.dh, dz, cols);
    }

    /// Encoder head and encoder stack, from ∂loss/∂enc in `ws.denc` (and the head's bias
    /// gradient, already written).
    fn backward_encoder(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace) {
        let (c, lay, b) = (&self.config, &self.layout, ws.batch);
        let (h, n) = (c.hidden_dim, c.hidden_layers);
        weight_grad(pool, grads, &lay.head, &ws.denc, &ws.enc_h[n - 1], b);
        input_grad(pool, params, &lay.head, h, &ws.denc, &mut ws.dh[0], b);
        // Encoder hidden layers (x needs no gradient).
        stack_backward(pool, c, params, grads, &lay.encoder, &ws.enc_h, &ws.x, &mut ws.dh, None, b);
    }
}

/// Backward through a stack of `act(W·x + b)` layers, last to first. On entry `dh[0]`
/// holds ∂loss/∂(last layer's output); `outputs[j]` is layer j's output and `input` the
/// stack's input. Writes every weight and bias gradient, and, when `dx = Some((buf, rows))`,
/// the gradient of the input's first `rows` rows into `buf`. `dh[1]` is scratch.
#[allow(clippy::too_many_arguments)]
fn stack_backward(
    pool: &Pool,
    c: &ModelConfig,
    params: &[f32],
    grads: &mut [f32],
    layers: &[Linear],
    outputs: &[Vec<f32>],
    input: &[f32],
    dh: &mut [Vec<f32>; 2],
    dx: Option<(&mut [f32], usize)>,
    b: usize,
) {
    let [d0, d1] = dh;
    let (mut cur, mut next) = (d0, d1);
    for j in (0..layers.len()).rev() {
        let layer = &layers[j];
        activation_backward(pool, c.activation, cur, &outputs[j], &mut grads[layer.b.clone()], b);
        weight_grad(pool, grads, layer, cur, if j == 0 { input } else { &outputs[j - 1] }, b);
        if j > 0 {
            input_grad(pool, params, layer, c.hidden_dim, cur, next, b);
            std::mem::swap(&mut cur, &mut next);
        }
    }
    if let Some((buf, rows)) = dx {
        input_grad(pool, params, &layers[0], rows, cur, buf, b);
    }
}
