//! The networks' forward and backward passes over a batch, on preallocated buffers.
//!
//! Notation (all activations *features × batch*, B = batch): P = values per image
//! (channels · rows · cols, channel-major), K = classes (a cvae's one-hot label, else 0),
//! L = latent, E = encoder head rows (2L, or L for `ae`), act = ReLU or tanh.
//!
//! ```text
//! MLP   x [P+K, B] → act(W·x + b) … [H, B]                       (encoder layers)
//! conv  x [P, B]   → act(conv(x) + b) … [F, B] + label rows → [F+K, B]
//!       → enc = We·h + be  [E, B]                                 (μ rows, then log σ² rows)
//!       → z = μ + ε·exp(½ log σ²) [L, B], then the label rows → [L+K, B]
//!       → act(W·z + b) … (MLP: fc2…;  conv: decoder_input, reshape, transposed convs)
//!       → out = W_o ⊛ g + b_o  [P, B],   p(x|z) = the likelihood with parameters `out`
//! loss = Σ_b −log p(x_b|z_b) + β·KL_b   (Kingma & Welling 2014, eq. 10; the tutorial's sum)
//! ```
//!
//! The importance-weighted objective ([`Network::forward_iwae`]) draws k samples of z per
//! example: the decoder then runs on k·B columns, sample-major (column s·B + b), and the
//! loss is Σ_b −log (1/k) Σ_s w_s (Burda et al. 2015; kernels in `core::importance`).

use super::config::{Arch, Layout, ModelConfig};
use super::prior::PriorWork;
use crate::core::activations::{Activation, activation_backward, add_assign};
use crate::core::{Buffer, Pool, kernels};
use crate::nn::Layer;

/// Every buffer one batch needs, allocated once.
pub struct Workspace {
    pub batch: usize,
    /// Draws of z per example, k: 1, or more for the importance-weighted objective. The
    /// decoder's buffers have k·B columns.
    pub samples: usize,
    /// Input \[P(+K), B\]: pixel rows, then (MLP cvae) the label rows, copied from `y`.
    pub x: Vec<f32>,
    /// One-hot labels \[K, B\] of a cvae, written by the data pipeline.
    pub y: Vec<f32>,
    /// Encoder activations, one buffer per layer; a conv cvae's last one has the K label
    /// rows appended (the head's input).
    pub enc_h: Vec<Buffer>,
    pub enc: Vec<f32>,
    /// Standard-normal noise \[L, k·B\] for the reparameterisation.
    pub eps: Vec<f32>,
    /// Decoder input \[L+K, k·B\]: z rows, then the label rows.
    pub z: Vec<f32>,
    /// Decoder activations before the output layer, one \[rows, k·B\] buffer per layer.
    pub dec_h: Vec<Buffer>,
    /// The output layer's product on the forward pass, then ∂loss/∂out \[R, k·B\] (R = P,
    /// or a mixture's parameters; after `decode`, the likelihood's mean in the first P rows).
    pub out: Buffer,
    /// Gradient scratch, two so stacked layers can ping-pong.
    dh: [Buffer; 2],
    /// A residual block's skip gradient, kept until it meets the first convolution's (empty
    /// without residual blocks).
    dskip: Buffer,
    pub(super) dz: Vec<f32>,
    pub(super) denc: Vec<f32>,
    /// Per-column reconstruction loss −log p(x|z) \[k·B\], plus per-thread scratch.
    pub bce: Vec<f32>,
    /// Per-example KL(q(z|x) ‖ p(z)) \[B\]; after [`Network::forward_iwae`], each example's loss.
    pub kl: Vec<f32>,
    /// The targets \[P, k·B\]: `x`'s pixel rows once per sample (empty when k = 1).
    pub(super) x_rep: Vec<f32>,
    /// A discretized Gaussian's output product \[P, k·B\], kept from before the loss
    /// overwrote it, for the sampled objectives' weighted log-variance gradient (empty for
    /// the other likelihoods).
    pub(super) out_kept: Vec<f32>,
    /// Normalised importance weights w̃ \[k·B\] (importance-weighted objective only).
    pub weights: Vec<f32>,
    /// The output bias per row \[R\] (a convolution's is per channel), its gradient, and a
    /// Gaussian likelihood's log-variance per row \[P\] and its gradient.
    pub(super) bias_rows: Vec<f32>,
    pub(super) db_rows: Vec<f32>,
    /// A fused ReLU backward's bias gradient (the largest layer's channels).
    db_below: Vec<f32>,
    pub(super) logvar_rows: Vec<f32>,
    pub(super) dlogvar_rows: Vec<f32>,
    /// The convolutions' per-thread column blocks.
    col: Vec<f32>,
    /// A mixture prior's buffers (a VampPrior's pass of the pseudo-inputs through the encoder, the mixture's
    /// terms); `None` for the standard prior.
    pub(super) prior: Option<Box<PriorWork>>,
    /// β-TCVAE's weighted TC gradients, with respect to z `[latent, batch]` and to (μ,
    /// log σ²) `[2·latent, batch]` ([`Network::total_correlation`]); empty until used.
    pub(super) tc_dz: Vec<f32>,
    pub(super) tc_denc: Vec<f32>,
    /// Whether the backward pass's buffers exist ([`Workspace::inference`] leaves them out).
    trains: bool,
}

impl Workspace {
    /// Each example's loss after [`Network::forward`], `[B]`: the negative ELBO at its draw,
    /// BCE + KL (a mixture prior's forward leaves the whole loss in `kl`).
    pub fn example_losses(&self) -> Vec<f64> {
        let b = self.batch;
        match self.prior {
            Some(_) => self.kl[..b].iter().map(|&v| v as f64).collect(),
            None => self.bce[..b].iter().zip(&self.kl[..b]).map(|(&r, &k)| r as f64 + k as f64).collect(),
        }
    }

    pub fn new(config: &ModelConfig, batch: usize, threads: usize) -> Workspace {
        Workspace::with_samples(config, batch, 1, threads)
    }

    /// Buffers for the forward passes only (encoding, decoding, the loss, the likelihood:
    /// evaluation, sampling, the test pass): without the backward pass's activation
    /// gradients, the largest buffers after the activations themselves (two, or three with
    /// residual blocks, of the widest layer's size). [`Network::backward`] and
    /// [`Network::backward_iwae`] refuse such a workspace.
    pub fn inference(config: &ModelConfig, batch: usize, samples: usize, threads: usize) -> Workspace {
        let mut ws = Workspace::sized(config, batch, samples, threads, false);
        ws.trains = false;
        ws
    }

    /// Buffers for `samples` draws of z per example (the decoder runs on samples·batch columns).
    pub fn with_samples(config: &ModelConfig, batch: usize, samples: usize, threads: usize) -> Workspace {
        Workspace::sized(config, batch, samples, threads, true)
    }

    /// The buffers, with the backward pass's (`gradients`) or without.
    fn sized(config: &ModelConfig, batch: usize, samples: usize, threads: usize, gradients: bool) -> Workspace {
        assert!(samples >= 1, "at least one sample");
        let layout = config.layout();
        let (l, p, k) = (config.latent_dim, config.pixels(), config.cond_dim());
        let cols = batch * samples;
        let v = |rows: usize| vec![0.0f32; rows * batch];
        let d = |rows: usize| vec![0.0f32; rows * cols];
        let last = layout.encoder.len() - 1;
        let conv = config.arch.convolutional();
        // Activations and their gradients start on cache lines, for the kernels' streaming
        // stores (`core::buffer`).
        let enc_h = (layout.encoder.iter().enumerate())
            .map(|(j, layer)| Buffer::zeros((layer.outputs() + if conv && j == last { k } else { 0 }) * batch))
            .collect();
        let dec_h = layout.decoder.iter().map(|layer| Buffer::zeros(layer.outputs() * cols)).collect();
        let grad_len = (layout.encoder.iter().map(|l| l.outputs() * batch))
            .chain(layout.decoder.iter().map(|l| l.outputs() * cols))
            .max()
            .unwrap_or(0)
            * usize::from(gradients);
        let col_len = (layout.encoder.iter().chain(&layout.decoder).chain([&layout.output]))
            .map(|l| l.scratch_len(threads.max(1)))
            .max()
            .unwrap_or(0);
        Workspace {
            batch,
            samples,
            x: v(config.encoder_in()),
            y: v(k),
            enc_h,
            enc: v(config.encoder_out()),
            eps: d(l),
            z: d(config.decoder_in()),
            dec_h,
            out: Buffer::zeros(config.output_rows() * cols),
            dh: [Buffer::zeros(grad_len), Buffer::zeros(grad_len)],
            dskip: Buffer::zeros(if config.blocks > 0 { grad_len } else { 0 }),
            dz: if gradients { d(l) } else { Vec::new() },
            denc: if gradients { v(config.encoder_out()) } else { Vec::new() },
            bce: d(threads.max(1)),
            kl: v(1),
            x_rep: if samples > 1 { d(p) } else { Vec::new() },
            out_kept: if gradients && config.likelihood == crate::model::Likelihood::DiscretizedGaussian {
                d(p)
            } else {
                Vec::new()
            },
            weights: d(1),
            bias_rows: vec![0.0; config.output_rows()],
            db_rows: vec![0.0; config.output_rows()],
            db_below: vec![0.0; layout.encoder.iter().chain(&layout.decoder).map(Layer::bias_len).max().unwrap_or(0)],
            logvar_rows: vec![0.0; p],
            dlogvar_rows: vec![0.0; p],
            col: vec![0.0; col_len],
            prior: PriorWork::new(config, cols, threads, gradients),
            tc_dz: Vec::new(),
            tc_denc: Vec::new(),
            trains: gradients,
        }
    }

    /// Whether the backward pass's buffers exist (not a [`Workspace::inference`] one).
    pub fn trains(&self) -> bool {
        self.trains
    }

    /// Decoder columns: samples × batch.
    pub fn columns(&self) -> usize {
        self.batch * self.samples
    }

    /// Copies the label rows `y` into `z`, once per sample.
    pub(super) fn copy_labels(&mut self, config: &ModelConfig) {
        let (b, cols, l) = (self.batch, self.columns(), config.latent_dim);
        for c in 0..config.cond_dim() {
            let src = &self.y[c * b..(c + 1) * b];
            for block in self.z[(l + c) * cols..(l + c + 1) * cols].chunks_exact_mut(b) {
                block.copy_from_slice(src);
            }
        }
    }

    /// Fills `x_rep` with the reconstruction target of every decoder column when k > 1:
    /// `x`'s pixel rows, once per sample.
    pub(super) fn fill_targets(&mut self, pixels: usize) {
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
    /// Σ_b −log p(x_b|z_b), the reconstruction term (the BCE for the Bernoulli).
    pub bce: f64,
    /// Σ_b KL_b (0 for `ae`).
    pub kl: f64,
}

impl Network {
    pub fn new(config: ModelConfig) -> Network {
        let layout = config.layout();
        Network { config, layout }
    }

    /// Encoder: `x` → layers → `enc` (μ, log σ²). Reads `ws.x` (and `ws.y` for a cvae).
    pub fn encode(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        let (c, b) = (&self.config, ws.batch);
        let (p, k) = (c.pixels(), c.cond_dim());
        if k > 0 && c.arch == Arch::Mlp {
            ws.x[p * b..(p + k) * b].copy_from_slice(&ws.y[..k * b]);
        }
        let stack = (&self.layout.encoder[..], &ws.x[..]);
        stack_forward(pool, params, c.activation, stack, &mut ws.enc_h, &mut ws.col, b);
        let last = ws.enc_h.last_mut().expect("one layer at least");
        if k > 0 && c.arch.convolutional() {
            let f = self.layout.encoder.last().expect("one layer at least").outputs();
            last[f * b..(f + k) * b].copy_from_slice(&ws.y[..k * b]);
        }
        let head = &self.layout.head;
        head.forward(pool, params, last, &mut ws.enc, &mut ws.col, b, None);
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

    /// Decoder up to the output layer's product: `z` → layers → `out` = W_o ⊛ g (bias not
    /// yet added), on all k·B columns. Reads `ws.z`.
    pub fn decode_logits(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        let cols = ws.columns();
        let stack = (&self.layout.decoder[..], &ws.z[..]);
        stack_forward(pool, params, self.config.activation, stack, &mut ws.dec_h, &mut ws.col, cols);
        let last = ws.dec_h.last().expect("one layer at least");
        self.layout.output.forward(pool, params, last, &mut ws.out, &mut ws.col, cols, None);
    }

    /// Decoder to the likelihood's mean: `ws.out` \[P, k·B\] in [0, 1]. Reads `ws.z`.
    pub fn decode(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        self.decode_logits(pool, params, ws);
        let cols = ws.columns();
        let bias = self.output_bias(params, &mut ws.bias_rows);
        self.config.likelihood.mean(self.config.shape(), &mut ws.out, bias, cols);
    }

    /// Decoder to one image drawn from p(x|z) per column (`--sample-pixels`), in `ws.out`'s
    /// first P rows (see [`crate::model::Likelihood::draw`]). Reads `ws.z`.
    pub fn decode_draw(&self, pool: &Pool, params: &[f32], ws: &mut Workspace, rng: &mut crate::core::Rng) {
        self.decode_logits(pool, params, ws);
        let cols = ws.columns();
        self.fill_logvar(params, &mut ws.logvar_rows);
        let bias = self.output_bias(params, &mut ws.bias_rows);
        self.config.likelihood.draw(self.config.shape(), &mut ws.out, bias, &ws.logvar_rows, cols, rng);
    }

    /// The output bias per row: the layer's own for a linear output, a convolution's
    /// per-channel bias spread over its channel's rows in `rows`.
    pub(super) fn output_bias<'a>(&self, params: &'a [f32], rows: &'a mut [f32]) -> &'a [f32] {
        let out = &self.layout.output;
        let bias = &params[out.b.clone()];
        if out.spatial() == 1 {
            return bias;
        }
        for (block, &v) in rows.chunks_exact_mut(out.spatial()).zip(bias) {
            block.fill(v);
        }
        rows
    }

    /// The likelihood's per-row log-variance (Gaussian; untouched otherwise).
    fn fill_logvar(&self, params: &[f32], rows: &mut [f32]) {
        let learned = self.layout.logvar.as_ref().map_or(&[][..], |r| &params[r.clone()]);
        self.config.likelihood.fill_logvar(learned, self.config.shape().plane(), rows);
    }

    /// The reconstruction term on the decoder's `cols` columns against targets `x`
    /// \[P, cols\]: each column's −log p(x|z) in `ws.bce[..cols]`, ∂/∂out in `ws.out`, and the
    /// output bias's (and log-variance's) row gradients in the workspace.
    pub(super) fn reconstruction(&self, pool: &Pool, params: &[f32], ws: &mut Workspace, targets: Targets) {
        let (p, cols) = (self.config.pixels(), ws.columns());
        self.fill_logvar(params, &mut ws.logvar_rows);
        let bias = self.output_bias(params, &mut ws.bias_rows);
        let x = match targets {
            Targets::Batch => &ws.x[..p * ws.batch],
            Targets::Repeated => &ws.x_rep[..],
        };
        let lik = self.config.likelihood;
        lik.loss(
            pool,
            self.config.shape(),
            &mut ws.out,
            bias,
            &ws.logvar_rows,
            x,
            &mut ws.db_rows,
            &mut ws.dlogvar_rows,
            &mut ws.bce,
            cols,
        );
    }

    /// Full forward pass and loss. Needs `ws.x` (and `ws.y` for a cvae) and, for variational
    /// models, `ws.eps` filled. Leaves per-example reconstruction losses in `ws.bce[..B]`, KL
    /// in `ws.kl`, and ∂loss/∂out in `ws.out` for [`Network::backward`].
    ///
    /// With a mixture prior (VampPrior, `mog`) the KL term has no closed form: the loss is the one-draw ELBO with
    /// the KL estimated at the draw ([`Network::forward_samples`] with k = 1), and `ws.kl`
    /// holds each example's loss.
    pub fn forward(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) -> BatchLoss {
        assert_eq!(ws.samples, 1, "the ELBO takes one draw of z per example; see forward_iwae");
        if ws.prior.is_some() {
            return self.forward_samples(pool, params, ws, false);
        }
        self.encode(pool, params, ws);
        self.reparameterize(ws);
        self.decode_logits(pool, params, ws);
        self.reconstruction(pool, params, ws, Targets::Batch);
        let b = ws.batch;
        BatchLoss { bce: ws.bce[..b].iter().map(|&v| v as f64).sum(), kl: ws.kl[..b].iter().map(|&v| v as f64).sum() }
    }

    /// Gradients of Σ_b −log p(x_b|z_b) + β·KL_b with respect to every parameter, after
    /// [`Network::forward`]. `grads` has the parameters' layout; every entry is overwritten.
    pub fn backward(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace, beta: f32) {
        assert!(ws.trains, "backward needs a workspace with gradients (Workspace::new, not ::inference)");
        if ws.prior.is_some() {
            return self.backward_iwae(pool, params, grads, ws, beta);
        }
        self.backward_decoder(pool, params, grads, ws);
        // Encoder head: through the reparameterisation and the KL term.
        let db_head = &mut grads[self.layout.head.b.clone()];
        if self.config.kind.variational() {
            kernels::reparameterize_backward(&ws.enc, &ws.eps, &ws.dz, beta, &mut ws.denc, db_head, ws.batch);
        } else {
            ws.denc.copy_from_slice(&ws.dz);
            kernels::row_sums(&ws.denc, ws.batch, db_head);
        }
        self.backward_encoder(pool, params, grads, ws, None);
    }

    /// Forward only: each decoder column's log p(x|z) against targets `x` \[P, cols\], from
    /// the output layer's product in `ws.out` (after [`Network::decode_logits`]); the result
    /// is in `ws.bce[..cols]`.
    pub fn log_likelihood(&self, pool: &Pool, params: &[f32], ws: &mut Workspace, x: &[f32]) {
        let cols = ws.columns();
        self.fill_logvar(params, &mut ws.logvar_rows);
        let bias = self.output_bias(params, &mut ws.bias_rows);
        self.config.likelihood.log_likelihood(
            pool,
            self.config.shape(),
            &ws.out,
            bias,
            &ws.logvar_rows,
            x,
            &mut ws.bce,
            cols,
        );
    }

    /// Output layer and decoder stack, from ∂loss/∂out in `ws.out` to ∂loss/∂z in `ws.dz`.
    pub(super) fn backward_decoder(&self, pool: &Pool, params: &[f32], grads: &mut [f32], ws: &mut Workspace) {
        let (c, lay, cols) = (&self.config, &self.layout, ws.columns());
        // The likelihood's row gradients: the output bias (summed per channel for a
        // convolution) and a learned log-variance (summed per channel).
        let out = &lay.output;
        sum_blocks(&ws.db_rows, out.spatial(), &mut grads[out.b.clone()]);
        if let Some(r) = &lay.logvar {
            sum_blocks(&ws.dlogvar_rows, c.shape().plane(), &mut grads[r.clone()]);
        }
        let last = ws.dec_h.last().expect("one layer at least");
        let rows = last.len() / cols;
        let below_layer = lay.decoder.last().expect("one layer at least");
        let below = fusable(c, below_layer).then_some((&last[..], &mut ws.db_below[..below_layer.bias_len()]));
        let dh = Some((&mut ws.dh[0][..], rows));
        let done = out.backward(pool, params, grads, last, &ws.out, dh, below, &mut ws.col, cols);
        if done {
            grads[below_layer.b.clone()].copy_from_slice(&ws.db_below[..below_layer.bias_len()]);
        }
        // Decoder layers; the first one's input is z (labels need no gradient, so only the
        // latent rows of dz are computed).
        let dz = Some((&mut ws.dz[..], c.latent_dim));
        let stack = Stack { layers: &lay.decoder, outputs: &ws.dec_h, input: &ws.z };
        let scratch = Scratch { dh: &mut ws.dh, dskip: &mut ws.dskip, db: &mut ws.db_below, col: &mut ws.col };
        stack_backward(pool, c, params, grads, stack, scratch, dz, done, cols);
    }

    /// Encoder head and encoder stack, from ∂loss/∂enc in `ws.denc` (and the head's bias
    /// gradient, already written).
    /// With `dx = Some((buf, rows))`, also the input's gradient (its first `rows` rows).
    pub(super) fn backward_encoder(
        &self,
        pool: &Pool,
        params: &[f32],
        grads: &mut [f32],
        ws: &mut Workspace,
        dx: Option<(&mut [f32], usize)>,
    ) {
        let (c, lay, b) = (&self.config, &self.layout, ws.batch);
        let last = ws.enc_h.last().expect("one layer at least");
        // The head's input gradient for the features only (a conv cvae's label rows need none).
        let rows = lay.encoder.last().expect("one layer at least").outputs();
        lay.head.backward(pool, params, grads, last, &ws.denc, Some((&mut ws.dh[0], rows)), None, &mut ws.col, b);
        // Encoder layers (x needs no gradient unless asked: a VampPrior's pseudo-inputs).
        let stack = Stack { layers: &lay.encoder, outputs: &ws.enc_h, input: &ws.x };
        let scratch = Scratch { dh: &mut ws.dh, dskip: &mut ws.dskip, db: &mut ws.db_below, col: &mut ws.col };
        stack_backward(pool, c, params, grads, stack, scratch, dx, false, b);
    }
}

/// Which targets the reconstruction term compares with: the batch's (k = 1) or the
/// repeated ones of k > 1 samples.
pub(super) enum Targets {
    Batch,
    Repeated,
}

/// `out[i] = Σ src[i·block .. (i+1)·block]`: per-row sums gathered per channel (a plain
/// copy when `block` is 1).
fn sum_blocks(src: &[f32], block: usize, out: &mut [f32]) {
    if block == 1 {
        out.copy_from_slice(&src[..out.len()]);
        return;
    }
    for (o, chunk) in out.iter_mut().zip(src.chunks_exact(block)) {
        *o = chunk.iter().sum();
    }
}

/// Whether the ReLU backward of `layer`'s output can be fused into the product that computes
/// its gradient (a convolution's per-channel bias and ReLU).
fn fusable(c: &ModelConfig, layer: &Layer) -> bool {
    c.activation == crate::core::activations::Activation::Relu
        && !matches!(layer.kind, crate::nn::LayerKind::Linear { .. })
}

/// A stack of `act(layer(x) + b)` layers: the layers, each one's output, the stack's input.
struct Stack<'a> {
    layers: &'a [Layer],
    outputs: &'a [Buffer],
    input: &'a [f32],
}

/// Forward through a stack of `act(layer(x) + b)` layers, `(layers, input)`, on `cols`
/// columns, each layer's output into its buffer of `outputs`; a residual block's second
/// convolution adds the output two layers below it (the block's input) before its activation.
fn stack_forward(
    pool: &Pool,
    params: &[f32],
    act: Activation,
    (layers, input): (&[Layer], &[f32]),
    outputs: &mut [Buffer],
    col: &mut [f32],
    cols: usize,
) {
    for (j, layer) in layers.iter().enumerate() {
        let (before, rest) = outputs.split_at_mut(j);
        let src: &[f32] = if j == 0 { input } else { &before[j - 1] };
        if layer.residual {
            let skip = &before[j.checked_sub(2).expect("a residual block follows a layer")];
            layer.forward_residual(pool, params, src, skip, &mut rest[0], col, cols, act);
        } else {
            layer.forward(pool, params, src, &mut rest[0], col, cols, Some(act));
        }
    }
}

/// The backward pass's scratch: `dh` two gradient buffers to ping-pong, `dskip` a residual
/// block's skip gradient, `db` a fused ReLU backward's bias gradient, `col` the products'.
struct Scratch<'a> {
    dh: &'a mut [Buffer; 2],
    dskip: &'a mut [f32],
    db: &'a mut [f32],
    col: &'a mut [f32],
}

/// Backward through a stack, last layer to first. On entry `dh[0]` holds ∂loss/∂(last
/// layer's output) — with its activation's backward already applied when `done` (fused into
/// the product above). Writes every weight and bias gradient, and, when
/// `dx = Some((buf, rows))`, the gradient of the input's first `rows` rows into `buf`.
///
/// A residual block `y = act(s + conv2(act(conv1(s))) + b)` sends ∂loss/∂(pre-activation) to
/// both conv2 and its input s: it is kept in `dskip` and added to the gradient conv1's input
/// product gives s, before s's own activation backward (which therefore is not fused).
#[allow(clippy::too_many_arguments)]
fn stack_backward(
    pool: &Pool,
    c: &ModelConfig,
    params: &[f32],
    grads: &mut [f32],
    stack: Stack,
    scratch: Scratch,
    mut dx: Option<(&mut [f32], usize)>,
    mut done: bool,
    b: usize,
) {
    let Stack { layers, outputs, input } = stack;
    let Scratch { dh: [d0, d1], dskip, db, col } = scratch;
    let (mut cur, mut next) = (d0, d1);
    for j in (0..layers.len()).rev() {
        let layer = &layers[j];
        let n = layer.outputs() * b;
        if !done {
            activation_backward(
                pool,
                c.activation,
                &mut cur[..n],
                &outputs[j],
                &mut grads[layer.b.clone()],
                layer.spatial() * b,
            );
        }
        if layer.residual {
            dskip[..n].copy_from_slice(&cur[..n]);
        }
        // This layer is a block's conv1: its input is the block's, which the skip also reaches.
        let opens_block = layers.get(j + 1).is_some_and(|l| l.residual);
        if j > 0 {
            let under = &layers[j - 1];
            let below =
                (fusable(c, under) && !opens_block).then_some((&outputs[j - 1][..], &mut db[..under.bias_len()]));
            let rows = under.outputs();
            done =
                layer.backward(pool, params, grads, &outputs[j - 1], cur, Some((&mut next[..], rows)), below, col, b);
            if done {
                grads[under.b.clone()].copy_from_slice(&db[..under.bias_len()]);
            }
            if opens_block {
                add_assign(pool, &mut next[..rows * b], &dskip[..rows * b]);
            }
            std::mem::swap(&mut cur, &mut next);
        } else {
            assert!(!opens_block, "a residual block's input is a layer's output");
            layer.backward(pool, params, grads, input, cur, dx.take(), None, col, b);
        }
    }
}
