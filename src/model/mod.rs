//! Models: configuration, parameter layout, the network passes, and [`Model`], a trained
//! network with a friendly batch API for other programs.

pub mod classifier;
pub mod config;
pub mod factorvae;
pub mod likelihood;
pub mod network;
mod prior;
mod sampled;
mod tcvae;

pub use crate::nn::TensorInfo;
pub use config::{Arch, Layout, ModelConfig, ModelKind};
pub use likelihood::Likelihood;
pub use network::{BatchLoss, Network, Workspace};
pub use prior::PriorDensity;

use crate::core::{Pool, Purpose, Rng};

/// A network with its parameters: what a checkpoint holds.
#[derive(Clone, Debug)]
pub struct Model {
    pub network: Network,
    /// All parameters, laid out as `network.layout` says.
    pub params: Vec<f32>,
}

/// Inputs a [`Model`] cannot take: each message says what was wrong and what fits.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InputError {
    #[error("the images hold {len} values, not a whole number of {pixels}-value images ({shape})")]
    Images { len: usize, pixels: usize, shape: crate::core::Shape },
    #[error("z holds {len} values, not a whole number of {latent}-dimensional codes")]
    Latent { len: usize, latent: usize },
    #[error("this model is conditional: pass one label per image, each below {classes}")]
    MissingLabels { classes: usize },
    #[error("this model is unconditional: it takes no labels or condition (pass None)")]
    UnexpectedLabels,
    #[error("{labels} labels for {n} images: pass one label per image")]
    LabelCount { labels: usize, n: usize },
    #[error("label {label} is out of range: the model knows {classes} classes, 0 to {}", classes - 1)]
    LabelRange { label: u8, classes: usize },
    #[error("the condition holds {len} values, not {n} × {classes} (one row of {classes} per code)")]
    Condition { len: usize, n: usize, classes: usize },
    #[error("the temperature must be a finite number ≥ 0, got {0}")]
    Temperature(f32),
}

/// A VampPrior's pseudo-inputs start as N(mean, std²) per pixel (Tomczak & Welling's
/// code: `pseudoinputs_mean` 0.05, `pseudoinputs_std` 0.01 for MNIST).
pub const PSEUDO_INPUT_MEAN: f32 = 0.05;
pub const PSEUDO_INPUT_STD: f32 = 0.01;

/// What the encoder says of a batch of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoding {
    /// Means of q(z|x), `[n, latent]` row-major (one row per image).
    pub mu: Vec<f32>,
    /// Log-variances of q(z|x), `[n, latent]` (all zero for `ae`, which has none).
    pub logvar: Vec<f32>,
}

/// How weights start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "app", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// PyTorch's default: weights and biases uniform in ±1/√fan_in
    #[default]
    Pytorch,
    /// Glorot & Bengio (2010): weights uniform in ±√(6/(fan_in + fan_out)), biases zero (Burda et al.'s)
    Glorot,
}

impl Init {
    pub fn is_pytorch(&self) -> bool {
        *self == Init::Pytorch
    }
}

/// Draws every tensor that has a fan-in, in layout order, uniform in ±bound: PyTorch's
/// 1/√fan_in for weights and biases, or Glorot & Bengio's √(6/(fan_in + fan_out)) for
/// weights (biases then stay 0). The VAE's and the classifier's one initialisation.
pub(crate) fn init_params(tensors: &[TensorInfo], init: Init, rng: &mut Rng, params: &mut [f32]) {
    for t in tensors {
        let Some(fan_in) = t.fan_in else { continue };
        let bound = match init {
            Init::Pytorch => 1.0 / (fan_in as f64).sqrt(),
            Init::Glorot if t.shape.len() < 2 => continue,
            Init::Glorot => {
                let fan_out = t.shape[0] * t.shape[2..].iter().product::<usize>();
                (6.0 / (fan_in + fan_out) as f64).sqrt()
            }
        };
        for p in &mut params[t.range.clone()] {
            *p = ((rng.uniform() * 2.0 - 1.0) * bound) as f32;
        }
    }
}

impl Model {
    /// A freshly initialised model, as PyTorch's `nn.Linear`, `nn.Conv2d` and
    /// `nn.ConvTranspose2d` do it: every weight and bias of a layer uniform in
    /// [−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5 reduces to exactly this bound;
    /// fan-in as [`crate::nn::Layer::fan_in`]). A learned Gaussian log-variance starts at
    /// [`likelihood::LEARNED_LOGVAR_INIT`].
    pub fn init(config: ModelConfig, seed: u64) -> Model {
        Model::init_with(config, seed, Init::Pytorch)
    }

    /// A freshly initialised model by `init`: PyTorch's default (as [`Model::init`]), or
    /// Glorot & Bengio (2010, eq. 16): weights uniform in ±√(6/(fan_in + fan_out)), biases
    /// zero, with PyTorch's fans (`init._calculate_fan_in_and_fan_out`: dimension 1 and
    /// dimension 0 of the weight, times the kernel's area).
    pub fn init_with(config: ModelConfig, seed: u64, init: Init) -> Model {
        let network = Network::new(config);
        let mut params = vec![0.0f32; network.layout.len];
        let mut rng = Rng::stream(seed, Purpose::Init, 0);
        init_params(&network.layout.tensors, init, &mut rng, &mut params);
        if let Some(r) = &network.layout.logvar {
            params[r.clone()].fill(likelihood::LEARNED_LOGVAR_INIT);
        }
        if let Some(m) = network.config.likelihood.mixture(network.config.shape()) {
            let bias = &mut params[network.layout.output.b.clone()];
            let per = bias.len() / m.params();
            for c in 0..m.channels {
                for k in 0..m.components {
                    let i = m.log_scale(c, k);
                    bias[i * per..(i + 1) * per].fill(likelihood::MIXTURE_LOG_SCALE_INIT);
                }
            }
        }
        if let Some(r) = &network.layout.prior_means {
            // Spread over N(0, I), the standard prior the mixture starts near; unit variances
            // (prior.logvars stays 0).
            rng.fill_normal(&mut params[r.clone()]);
        }
        if let Some(r) = &network.layout.pseudo_inputs {
            // Tomczak & Welling's initialisation: N(0.05, 0.01²) per pixel.
            let u = &mut params[r.clone()];
            rng.fill_normal(u);
            u.iter_mut().for_each(|v| *v = PSEUDO_INPUT_MEAN + PSEUDO_INPUT_STD * *v);
        }
        Model { network, params }
    }

    /// Sets the output bias so that, before training, the decoder's mean is the data's:
    /// each bias value is [`Likelihood::link_of_mean`] of the mean of the pixels it serves
    /// (one pixel for a linear output, a channel's plane for a convolution). `pixel_mean`
    /// \[P\] is the training set's mean image, channel-major, in [0, 1].
    ///
    /// # Panics
    /// If `pixel_mean` is not one value per pixel.
    pub fn set_output_bias_to_mean(&mut self, pixel_mean: &[f32]) {
        let config = &self.network.config;
        let likelihood = config.likelihood;
        assert_eq!(pixel_mean.len(), config.pixels(), "one mean per pixel");
        let out = &self.network.layout.output;
        let plane = out.spatial();
        let bias = &mut self.params[out.b.clone()];
        if let Some(m) = likelihood.mixture(config.shape()) {
            // Every component's mean of channel c starts at the data's, per pixel (MLP) or
            // per channel (conv); the logits, log-scales and coefficients keep their start.
            let per = bias.len() / m.params();
            for (c, values) in pixel_mean.chunks_exact(m.plane).enumerate() {
                for k in 0..m.components {
                    let dst = &mut bias[m.mean(c, k) * per..(m.mean(c, k) + 1) * per];
                    for (b, block) in dst.iter_mut().zip(values.chunks_exact(m.plane / per)) {
                        *b = block.iter().map(|&v| v as f64).sum::<f64>() as f32 / block.len() as f32;
                    }
                }
            }
            return;
        }
        for (b, block) in bias.iter_mut().zip(pixel_mean.chunks_exact(plane)) {
            let mean = block.iter().map(|&v| v as f64).sum::<f64>() / plane as f64;
            *b = likelihood.link_of_mean(mean as f32);
        }
    }

    /// The architecture the weights belong to (image shape, latent size, kind, layers).
    pub fn config(&self) -> &ModelConfig {
        &self.network.config
    }

    /// Encodes `n` images given as `[n, pixels]` intensities in [0, 1], each channel-major
    /// (with their labels for `cvae`).
    ///
    /// # Errors
    /// [`InputError`] when `images` is not a whole number of images, or the labels do not
    /// fit the model (missing for a `cvae`, given to another kind, one per image, each a
    /// class the model knows).
    pub fn encode(&self, pool: &Pool, images: &[f32], labels: Option<&[u8]>) -> Result<Encoding, InputError> {
        let c = self.config();
        let (p, l) = (c.pixels(), c.latent_dim);
        let n = images.len() / p;
        if images.len() != n * p {
            return Err(InputError::Images { len: images.len(), pixels: p, shape: c.shape() });
        }
        check_labels(c, labels, n)?;
        let mut ws = Workspace::inference(c, n.max(1), 1, pool.threads());
        transpose_into(images, n, p, &mut ws.x);
        fill_labels(c, labels, n, &mut ws.y);
        self.network.encode(pool, &self.params, &mut ws);
        let mut mu = vec![0.0; n * l];
        transpose_into(&ws.enc[..l * n], l, n, &mut mu);
        let mut logvar = vec![0.0; n * l];
        if c.kind.variational() {
            transpose_into(&ws.enc[l * n..2 * l * n], l, n, &mut logvar);
        }
        Ok(Encoding { mu, logvar })
    }

    /// Decodes `n` latent vectors `[n, latent]` (with labels for `cvae`) into the
    /// likelihood's means `[n, pixels]` in [0, 1], each image channel-major.
    ///
    /// # Errors
    /// [`InputError`] when `z` is not a whole number of codes, or the labels do not fit the
    /// model (as [`Model::encode`]).
    pub fn decode(&self, pool: &Pool, z: &[f32], labels: Option<&[u8]>) -> Result<Vec<f32>, InputError> {
        self.decode_labelled(pool, z, labels, None)
    }

    /// [`Model::decode`], drawing the pixels with `draw` when given.
    fn decode_labelled(
        &self,
        pool: &Pool,
        z: &[f32],
        labels: Option<&[u8]>,
        draw: Option<&mut Rng>,
    ) -> Result<Vec<f32>, InputError> {
        let c = self.config();
        let n = codes(c, z)?;
        check_labels(c, labels, n)?;
        let classes = c.cond_dim();
        let cond: Option<Vec<f32>> =
            labels.filter(|_| classes > 0).map(|labels| labels.iter().flat_map(|&y| one_hot(y, classes)).collect());
        self.decode_with(pool, z, cond.as_deref(), draw)
    }

    /// Decodes `[n, latent]` codes with condition vectors `[n, classes]` for `cvae` (one-hot
    /// labels, or any mixture of them: the decoder takes real-valued inputs).
    ///
    /// # Errors
    /// [`InputError`] when `z` is not a whole number of codes, a `cvae` gets no condition or
    /// one of the wrong length, or another kind gets one.
    pub fn decode_conditioned(&self, pool: &Pool, z: &[f32], cond: Option<&[f32]>) -> Result<Vec<f32>, InputError> {
        self.decode_with(pool, z, cond, None)
    }

    /// [`Model::decode`], but each image drawn from p(x|z) instead of its mean
    /// ([`Likelihood::draw`]: binary pixels for the Bernoulli, 8-bit values for the
    /// discretized likelihoods), with `rng`'s draws.
    ///
    /// # Errors
    /// As [`Model::decode`].
    pub fn decode_drawn(
        &self,
        pool: &Pool,
        z: &[f32],
        labels: Option<&[u8]>,
        rng: &mut Rng,
    ) -> Result<Vec<f32>, InputError> {
        self.decode_labelled(pool, z, labels, Some(rng))
    }

    /// [`Model::decode_conditioned`], drawing the pixels with `draw` when given.
    fn decode_with(
        &self,
        pool: &Pool,
        z: &[f32],
        cond: Option<&[f32]>,
        draw: Option<&mut Rng>,
    ) -> Result<Vec<f32>, InputError> {
        let c = self.config();
        let (p, l, classes) = (c.pixels(), c.latent_dim, c.cond_dim());
        let n = codes(c, z)?;
        match (classes, cond) {
            (0, None) => {}
            (0, Some(_)) => return Err(InputError::UnexpectedLabels),
            (_, None) => return Err(InputError::MissingLabels { classes }),
            (_, Some(cond)) if cond.len() != n * classes => {
                return Err(InputError::Condition { len: cond.len(), n, classes });
            }
            (_, Some(_)) => {}
        }
        let mut ws = Workspace::inference(c, n.max(1), 1, pool.threads());
        transpose_into(z, n, l, &mut ws.z);
        if let Some(cond) = cond {
            transpose_into(cond, n, classes, &mut ws.z[l * n..]);
        }
        match draw {
            Some(rng) => self.network.decode_draw(pool, &self.params, &mut ws, rng),
            None => self.network.decode(pool, &self.params, &mut ws),
        }
        let mut out = vec![0.0; n * p];
        transpose_into(&ws.out[..p * n], p, n, &mut out);
        Ok(out)
    }

    /// Draws `n` images from the generative model: z ~ p(z) (N(0, I), or a mixture prior's
    /// mixture), then the decoder's means.
    /// The result is flat, `[n, pixels]` row-major: image i is `[i·pixels..(i+1)·pixels]`,
    /// channel-major within (see [`ModelConfig::shape`]).
    ///
    /// # Errors
    /// [`InputError`] when the labels do not fit the model (as [`Model::encode`]).
    pub fn sample(&self, pool: &Pool, n: usize, labels: Option<&[u8]>, rng: &mut Rng) -> Result<Vec<f32>, InputError> {
        self.sample_at(pool, n, labels, 1.0, rng)
    }

    /// [`Model::sample`] at a temperature: z ~ N(0, T² I), so T < 1 trades diversity for
    /// typical-looking images (T = 1 is the model's own prior; T = 0 decodes z = 0). A
    /// mixture prior's z: a component's mean plus T times its spread.
    ///
    /// # Errors
    /// [`InputError`] when the labels do not fit the model or the temperature is negative
    /// or not finite.
    pub fn sample_at(
        &self,
        pool: &Pool,
        n: usize,
        labels: Option<&[u8]>,
        temperature: f32,
        rng: &mut Rng,
    ) -> Result<Vec<f32>, InputError> {
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(InputError::Temperature(temperature));
        }
        check_labels(self.config(), labels, n)?;
        let z = self.prior_codes(pool, n, temperature, rng);
        self.decode(pool, &z, labels)
    }

    /// `n` codes `[n, latent]` from the model's prior at temperature T, as
    /// [`Model::sample_at`] decodes them.
    pub fn prior_codes(&self, pool: &Pool, n: usize, temperature: f32, rng: &mut Rng) -> Vec<f32> {
        self.network.prior_density(pool, &self.params).sample(n, temperature, rng)
    }
}

/// `n` codes `[n, latent]` from the prior N(0, T²I) at temperature T.
pub fn prior_codes(n: usize, latent: usize, temperature: f32, rng: &mut Rng) -> Vec<f32> {
    let mut z = vec![0.0; n * latent];
    rng.fill_normal(&mut z);
    if temperature != 1.0 {
        z.iter_mut().for_each(|v| *v *= temperature);
    }
    z
}

/// How many codes `z` holds: a whole number of `config`'s latent vectors, or an error.
fn codes(config: &ModelConfig, z: &[f32]) -> Result<usize, InputError> {
    let l = config.latent_dim;
    let n = z.len() / l;
    if z.len() != n * l {
        return Err(InputError::Latent { len: z.len(), latent: l });
    }
    Ok(n)
}

/// Labels fit `config` for `n` examples: present exactly for a conditional model, one per
/// example, each a class it knows.
///
/// # Errors
/// [`InputError::MissingLabels`], [`InputError::UnexpectedLabels`], [`InputError::LabelCount`]
/// or [`InputError::LabelRange`], saying which.
pub fn check_labels(config: &ModelConfig, labels: Option<&[u8]>, n: usize) -> Result<(), InputError> {
    let classes = config.cond_dim();
    match (classes, labels) {
        (0, None) => Ok(()),
        (0, Some(_)) => Err(InputError::UnexpectedLabels),
        (_, None) => Err(InputError::MissingLabels { classes }),
        (_, Some(l)) if l.len() != n => Err(InputError::LabelCount { labels: l.len(), n }),
        (_, Some(l)) => match l.iter().find(|&&y| y as usize >= classes) {
            Some(&label) => Err(InputError::LabelRange { label, classes }),
            None => Ok(()),
        },
    }
}

/// `dst[c, r] = src[r, c]` for a row-major `[rows, cols]` source.
pub fn transpose_into(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    for r in 0..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

fn fill_labels(config: &ModelConfig, labels: Option<&[u8]>, n: usize, rows: &mut [f32]) {
    let classes = config.cond_dim();
    if classes == 0 {
        return;
    }
    let labels = labels.expect("checked by check_labels");
    crate::core::kernels::one_hot(labels.iter().copied(), classes, rows, n);
}

/// The one-hot vector of `label` among `classes`.
pub fn one_hot(label: u8, classes: usize) -> Vec<f32> {
    (0..classes).map(|k| f32::from(k == label as usize)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glorot & Bengio's bound √(6/(fan_in + fan_out)) per weight, zero biases; PyTorch's
    /// 1/√fan_in for both. The largest |w| of a 200×784 layer lies within 1% of its bound.
    #[test]
    fn glorot_and_pytorch_bounds() {
        let config =
            ModelConfig { hidden_dim: 200, hidden_layers: 2, latent_dim: 50, ..ModelConfig::tutorial(ModelKind::Vae) };
        let glorot = Model::init_with(config.clone(), 1, Init::Glorot);
        let pytorch = Model::init(config.clone(), 1);
        for t in &glorot.network.layout.tensors {
            let max = |m: &Model| m.params[t.range.clone()].iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64;
            let fan_in = t.fan_in.unwrap() as f64;
            if t.shape.len() == 1 {
                assert_eq!(max(&glorot), 0.0, "{}", t.name);
                assert!(max(&pytorch) <= 1.0 / fan_in.sqrt(), "{}", t.name);
                continue;
            }
            let bound = (6.0 / (fan_in + t.shape[0] as f64)).sqrt();
            assert!(max(&glorot) <= bound && max(&glorot) > 0.99 * bound, "{}: {} vs {bound}", t.name, max(&glorot));
            assert!(max(&pytorch) <= 1.0 / fan_in.sqrt() && max(&pytorch) > 0.99 / fan_in.sqrt(), "{}", t.name);
        }
        let fc1 = &glorot.network.layout.tensors[0];
        assert_eq!((fc1.name.as_str(), fc1.shape.clone()), ("fc1.weight", vec![200, 784]));
    }

    /// With the output layer's weights zeroed, the decoder's mean is σ(bias) whatever z is:
    /// after [`Model::set_output_bias_to_mean`] that is the data's mean, per pixel for the
    /// MLP (inside the [0.001, 0.999] clip), per channel plane for the convolutional decoder.
    #[test]
    fn output_bias_starts_the_decoder_at_the_data_mean() {
        let pool = Pool::new(1);
        let mlp = ModelConfig::tutorial(ModelKind::Vae);
        let conv = ModelConfig::conv(ModelKind::Vae, crate::core::Shape::new(3, 16, 16), 8);
        for config in [mlp, conv] {
            let p = config.pixels();
            let mean: Vec<f32> = (0..p).map(|i| [0.0, 0.3, 0.97, 1.0, 0.5][i % 5]).collect();
            let mut model = Model::init(config.clone(), 2);
            let w = model.network.layout.output.w.clone();
            model.params[w].fill(0.0);
            model.set_output_bias_to_mean(&mean);
            let z: Vec<f32> = (0..2 * config.latent_dim).map(|i| i as f32 * 0.37 - 3.0).collect();
            let out = model.decode(&pool, &z, None).unwrap();
            let plane = model.network.layout.output.spatial();
            for (i, &o) in out.iter().enumerate() {
                let channel = (i % p) / plane;
                let block = &mean[channel * plane..(channel + 1) * plane];
                let want = (block.iter().sum::<f32>() / plane as f32).clamp(0.001, 0.999);
                assert!((o - want).abs() < 1e-5, "{:?} pixel {i}: {o} vs {want}", config.arch);
            }
        }
    }
}
