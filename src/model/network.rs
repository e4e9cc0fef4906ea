//! The networks' forward and backward passes over a batch, on preallocated buffers.
//!
//! Notation (all activations *features × batch*, B = batch):
//! P = pixels, C = classes (10 for `cvae`, else 0), H = hidden, L = latent,
//! E = encoder head rows (2L, or L for `ae`).
//!
//! ```text
//! x  [P+C, B]  → h1 = relu(W1·x + b1)  [H, B]
//!              → enc = We·h1 + be       [E, B]  (μ rows, then log σ² rows)
//!              → z = μ + ε·exp(½ log σ²) [L, B], then the label rows → [L+C, B]
//!              → h2 = relu(W2·z + b2)   [H, B]
//!              → logits = W3·h2 + b3    [P, B],  p(x|z) = Bernoulli(σ(logits))
//! loss = Σ_b BCE_b + β·KL_b   (Kingma & Welling 2014, eq. 10; the tutorial's sum)
//! ```

use super::config::{Layout, ModelConfig};
use crate::core::kernels;
use crate::core::{Mat, Pool, matmul};

/// Every buffer one batch needs, allocated once.
pub struct Workspace {
    pub batch: usize,
    /// Input [P+C, B]: pixel rows, then one-hot label rows.
    pub x: Vec<f32>,
    pub h1: Vec<f32>,
    pub enc: Vec<f32>,
    /// Standard-normal noise [L, B] for the reparameterisation.
    pub eps: Vec<f32>,
    /// Decoder input [L+C, B]: z rows, then the label rows (copied from `x`).
    pub z: Vec<f32>,
    pub h2: Vec<f32>,
    /// Logits on the forward pass, then ∂loss/∂logits [P, B].
    pub out: Vec<f32>,
    dh2: Vec<f32>,
    dz: Vec<f32>,
    denc: Vec<f32>,
    dh1: Vec<f32>,
    /// Per-example reconstruction loss (BCE summed over pixels) [B], plus per-thread scratch.
    pub bce: Vec<f32>,
    /// Per-example KL(q(z|x) ‖ p(z)) [B].
    pub kl: Vec<f32>,
    /// Bias gradient of the output layer when no gradient buffer is given [P].
    db_out: Vec<f32>,
}

impl Workspace {
    pub fn new(config: &ModelConfig, batch: usize, threads: usize) -> Workspace {
        let (h, l, p) = (config.hidden_dim, config.latent_dim, config.pixels());
        let e = config.encoder_out();
        let v = |rows: usize| vec![0.0f32; rows * batch];
        Workspace {
            batch,
            x: v(config.encoder_in()),
            h1: v(h),
            enc: v(e),
            eps: v(l),
            z: v(config.decoder_in()),
            h2: v(h),
            out: v(p),
            dh2: v(h),
            dz: v(l),
            denc: v(e),
            dh1: v(h),
            bce: v(threads.max(1)),
            kl: v(1),
            db_out: vec![0.0; p],
        }
    }

    /// Copies the label rows of `x` (written by the data pipeline) into `z`.
    fn copy_labels(&mut self, config: &ModelConfig) {
        let b = self.batch;
        let c = config.cond_dim();
        if c > 0 {
            let (p, l) = (config.pixels(), config.latent_dim);
            self.z[l * b..(l + c) * b].copy_from_slice(&self.x[p * b..(p + c) * b]);
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

impl Network {
    pub fn new(config: ModelConfig) -> Network {
        let layout = config.layout();
        Network { config, layout }
    }

    /// Encoder: `x` → `h1`, `enc` (μ, log σ²). Reads `ws.x`.
    pub fn encode(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        let (c, lay, b) = (&self.config, &self.layout, ws.batch);
        let (h, e, i) = (c.hidden_dim, c.encoder_out(), c.encoder_in());
        matmul(
            pool,
            &mut ws.h1,
            Mat::new(&params[lay.fc1_w.clone()], h, i),
            Mat::new(&ws.x, i, b),
            false,
        );
        kernels::bias_relu(pool, &mut ws.h1, &params[lay.fc1_b.clone()], b);
        matmul(
            pool,
            &mut ws.enc,
            Mat::new(&params[lay.enc_w.clone()], e, h),
            Mat::new(&ws.h1, h, b),
            false,
        );
        kernels::bias_add(&mut ws.enc, &params[lay.enc_b.clone()], b);
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

    /// Decoder up to the logits: `z` → `h2` → `out` = W3·h2 (bias not yet added).
    pub fn decode_logits(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        let (c, lay, b) = (&self.config, &self.layout, ws.batch);
        let (h, d, p) = (c.hidden_dim, c.decoder_in(), c.pixels());
        matmul(
            pool,
            &mut ws.h2,
            Mat::new(&params[lay.fc2_w.clone()], h, d),
            Mat::new(&ws.z, d, b),
            false,
        );
        kernels::bias_relu(pool, &mut ws.h2, &params[lay.fc2_b.clone()], b);
        matmul(
            pool,
            &mut ws.out,
            Mat::new(&params[lay.fc3_w.clone()], p, h),
            Mat::new(&ws.h2, h, b),
            false,
        );
    }

    /// Decoder to Bernoulli means: `ws.out` = σ(W3·h2 + b3) [P, B]. Reads `ws.z`.
    pub fn decode(&self, pool: &Pool, params: &[f32], ws: &mut Workspace) {
        self.decode_logits(pool, params, ws);
        kernels::bias_sigmoid(&mut ws.out, &params[self.layout.fc3_b.clone()], ws.batch);
    }

    /// Full forward pass and loss. Needs `ws.x` and (variational models) `ws.eps` filled.
    /// Leaves per-example BCE in `ws.bce[..B]`, KL in `ws.kl`, and ∂BCE/∂logits in `ws.out`;
    /// writes the output-bias gradient into `db3` (or scratch when `None`).
    pub fn forward(
        &self,
        pool: &Pool,
        params: &[f32],
        ws: &mut Workspace,
        db3: Option<&mut [f32]>,
    ) -> BatchLoss {
        self.encode(pool, params, ws);
        self.reparameterize(ws);
        self.decode_logits(pool, params, ws);
        let (p, b) = (self.config.pixels(), ws.batch);
        let db3 = match db3 {
            Some(g) => g,
            None => &mut ws.db_out,
        };
        let b3 = &params[self.layout.fc3_b.clone()];
        kernels::bernoulli_bce(pool, &mut ws.out, b3, &ws.x[..p * b], db3, &mut ws.bce, b);
        BatchLoss {
            bce: ws.bce[..b].iter().map(|&v| v as f64).sum(),
            kl: ws.kl[..b].iter().map(|&v| v as f64).sum(),
        }
    }

    /// Gradients of Σ_b BCE_b + β·KL_b with respect to every parameter, after [`forward`]
    /// (which already wrote the `fc3.bias` gradient). `grads` has the parameters' layout.
    ///
    /// [`forward`]: Network::forward
    pub fn backward(
        &self,
        pool: &Pool,
        params: &[f32],
        grads: &mut [f32],
        ws: &mut Workspace,
        beta: f32,
    ) {
        let (c, lay, b) = (&self.config, &self.layout, ws.batch);
        let (h, l, e, d, p, i) = (
            c.hidden_dim,
            c.latent_dim,
            c.encoder_out(),
            c.decoder_in(),
            c.pixels(),
            c.encoder_in(),
        );
        // fc3: dW3 [P, H] = dout [P, B] · h2ᵀ [B, H];  dh2 [H, B] = W3ᵀ [H, P] · dout [P, B].
        matmul(
            pool,
            &mut grads[lay.fc3_w.clone()],
            Mat::new(&ws.out, p, b),
            Mat::new(&ws.h2, h, b).t(),
            false,
        );
        let w3 = Mat::new(&params[lay.fc3_w.clone()], p, h);
        matmul(pool, &mut ws.dh2, w3.t(), Mat::new(&ws.out, p, b), false);
        kernels::relu_backward(pool, &mut ws.dh2, &ws.h2, &mut grads[lay.fc2_b.clone()], b);
        // fc2: dW2 [H, L+C] = dh2 · zᵀ;  dz [L, B] = W2[:, :L]ᵀ · dh2 (labels need no gradient).
        matmul(
            pool,
            &mut grads[lay.fc2_w.clone()],
            Mat::new(&ws.dh2, h, b),
            Mat::new(&ws.z, d, b).t(),
            false,
        );
        let w2_latent = Mat::columns(&params[lay.fc2_w.clone()], h, l, d);
        matmul(
            pool,
            &mut ws.dz,
            w2_latent.t(),
            Mat::new(&ws.dh2, h, b),
            false,
        );
        // Encoder head: through the reparameterisation and the KL term.
        let db_enc = &mut grads[lay.enc_b.clone()];
        if c.kind.variational() {
            kernels::reparameterize_backward(
                &ws.enc,
                &ws.eps,
                &ws.dz,
                beta,
                &mut ws.denc,
                db_enc,
                b,
            );
        } else {
            ws.denc.copy_from_slice(&ws.dz);
            kernels::row_sums(&ws.denc, b, db_enc);
        }
        // dWe [E, H] = denc · h1ᵀ;  dh1 [H, B] = Weᵀ · denc.
        matmul(
            pool,
            &mut grads[lay.enc_w.clone()],
            Mat::new(&ws.denc, e, b),
            Mat::new(&ws.h1, h, b).t(),
            false,
        );
        let we = Mat::new(&params[lay.enc_w.clone()], e, h);
        matmul(pool, &mut ws.dh1, we.t(), Mat::new(&ws.denc, e, b), false);
        kernels::relu_backward(pool, &mut ws.dh1, &ws.h1, &mut grads[lay.fc1_b.clone()], b);
        // fc1: dW1 [H, P+C] = dh1 · xᵀ (x needs no gradient).
        matmul(
            pool,
            &mut grads[lay.fc1_w.clone()],
            Mat::new(&ws.dh1, h, b),
            Mat::new(&ws.x, i, b).t(),
            false,
        );
    }
}
