//! Layers over the flat parameter buffer: linear, convolution, transposed convolution, each
//! with its forward and backward products, PyTorch's parameter names, shapes and fan-in.
//!
//! Every activation buffer is *features × batch* (`core::kernels`); for a feature map the
//! features are `(channel, row, column)` in PyTorch's flatten order, so a flatten or a reshape
//! between a convolution and a linear layer is free: the same buffer, read with other names.
//! A layer computes its product only; its bias is added by the fused pass that follows
//! (bias + activation, or bias + likelihood), with `columns = spatial · batch` because a
//! feature map's bias is per channel.

pub mod conv;
pub mod linear;

use crate::core::Pool;
use crate::core::activations::{Activation, bias_activation, bias_residual_activation};
use crate::core::conv::{Epilogue, ReluGrad};
use crate::core::im2col::ConvGeometry;
use std::ops::Range;

/// Kernel, stride and padding of every convolution of `--arch conv` (each halves the side).
pub const KERNEL: usize = 4;
pub const STRIDE: usize = 2;
pub const PADDING: usize = 1;
/// Kernel of the two convolutions of an `--arch resnet` residual block (stride 1, padding 1:
/// each keeps the side).
pub const BLOCK_KERNEL: usize = 3;

/// What a layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// `nn.Linear(inputs → outputs)`.
    Linear { inputs: usize, outputs: usize },
    /// `nn.Conv2d(geometry.channels → out_channels)`; `geometry` is its input side.
    Conv2d { geometry: ConvGeometry, out_channels: usize },
    /// `nn.ConvTranspose2d(in_channels → geometry.channels)`: the adjoint of a Conv2d whose
    /// input side, `geometry`, is this layer's output.
    ConvTranspose2d { geometry: ConvGeometry, in_channels: usize },
}

/// One layer: what it computes and where its weight and bias live in the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// PyTorch's module name: `fc1`, `encoder.0`, ….
    pub name: String,
    pub kind: LayerKind,
    pub w: Range<usize>,
    pub b: Range<usize>,
    /// The second convolution of a residual block (He et al. 2016, eq. 1, without batch
    /// normalisation): its output is `act(W ⊛ x + b + s)`, where `s`, the block's input, is
    /// the output of the layer two before it in its stack ([`Layer::forward_residual`]).
    pub residual: bool,
}

impl Layer {
    /// PyTorch's weight shape: `[out, in]`, `[C_out, C_in, k, k]` or `[C_in, C_out, k, k]`.
    pub fn weight_shape(&self) -> Vec<usize> {
        match &self.kind {
            LayerKind::Linear { inputs, outputs } => vec![*outputs, *inputs],
            LayerKind::Conv2d { geometry: g, out_channels } => {
                vec![*out_channels, g.channels(), g.kernel(), g.kernel()]
            }
            LayerKind::ConvTranspose2d { geometry: g, in_channels } => {
                vec![*in_channels, g.channels(), g.kernel(), g.kernel()]
            }
        }
    }

    /// Bias length: output features (linear) or output channels (convolutions).
    pub fn bias_len(&self) -> usize {
        match &self.kind {
            LayerKind::Linear { outputs, .. } => *outputs,
            LayerKind::Conv2d { out_channels, .. } => *out_channels,
            LayerKind::ConvTranspose2d { geometry, .. } => geometry.channels(),
        }
    }

    /// PyTorch's fan-in (`init._calculate_fan_in_and_fan_out`): the weight's dimension 1
    /// times the kernel area — `in`, `C_in·k·k`, and for a transposed convolution `C_out·k·k`.
    pub fn fan_in(&self) -> usize {
        self.weight_shape()[1..].iter().product()
    }

    /// Input features per example (rows of the input buffer it reads).
    pub fn inputs(&self) -> usize {
        match &self.kind {
            LayerKind::Linear { inputs, .. } => *inputs,
            LayerKind::Conv2d { geometry, .. } => geometry.in_size(),
            LayerKind::ConvTranspose2d { geometry, in_channels } => in_channels * geometry.out_plane(),
        }
    }

    /// Output features per example (rows of the output buffer).
    pub fn outputs(&self) -> usize {
        self.bias_len() * self.spatial()
    }

    /// Output positions per example sharing one bias value: 1 for a linear layer, the
    /// feature map's area for a convolution. Fused bias passes see `spatial · batch` columns.
    pub fn spatial(&self) -> usize {
        match &self.kind {
            LayerKind::Linear { .. } => 1,
            LayerKind::Conv2d { geometry, .. } => geometry.out_plane(),
            LayerKind::ConvTranspose2d { geometry, .. } => geometry.height() * geometry.width(),
        }
    }

    /// Floats of scratch the layer's products need on a pool of `threads` (0 for linear).
    pub fn scratch_len(&self, threads: usize) -> usize {
        match &self.kind {
            LayerKind::Linear { .. } => 0,
            _ => crate::core::conv::scratch_len(threads),
        }
    }

    /// Multiply-adds of the forward product per example (the weight gradient costs the same,
    /// and so does the full input gradient).
    pub fn macs(&self) -> usize {
        self.w.len() * self.spatial_of_product()
    }

    /// How many times each weight is used per example.
    fn spatial_of_product(&self) -> usize {
        match &self.kind {
            LayerKind::Linear { .. } => 1,
            LayerKind::Conv2d { geometry: g, .. } | LayerKind::ConvTranspose2d { geometry: g, .. } => g.out_plane(),
        }
    }

    /// Forward: `y [outputs, B] = W ⊛ x [inputs, B]`, then, with `act`, the bias and the
    /// activation (`act(y + b)`, per output row or channel); without, the product alone (the
    /// bias is left to a fused likelihood or head pass). A convolution's ReLU is applied as its
    /// product stores, sparing a pass over the feature map. `col` is scratch of at least
    /// [`Layer::scratch_len`] floats.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        pool: &Pool,
        params: &[f32],
        x: &[f32],
        y: &mut [f32],
        col: &mut [f32],
        batch: usize,
        act: Option<Activation>,
    ) {
        let w = &params[self.w.clone()];
        let bias = &params[self.b.clone()];
        let fused = (act == Some(Activation::Relu)).then_some(Epilogue { bias, relu: true });
        match &self.kind {
            LayerKind::Linear { inputs, outputs } => linear::forward(pool, w, (*outputs, *inputs), x, y, batch),
            LayerKind::Conv2d { geometry, out_channels } => {
                conv::conv2d_forward(pool, geometry, w, *out_channels, x, y, col, batch, fused)
            }
            LayerKind::ConvTranspose2d { geometry, in_channels } => {
                conv::conv_transpose2d_forward(pool, geometry, w, *in_channels, x, y, col, batch, fused)
            }
        }
        let conv_fused = fused.is_some() && !matches!(self.kind, LayerKind::Linear { .. });
        if let Some(act) = act.filter(|_| !conv_fused) {
            bias_activation(pool, act, &mut y[..self.outputs() * batch], bias, self.spatial() * batch);
        }
    }

    /// Forward of a residual block's second convolution: `y = act(W ⊛ x + b + skip)`, with
    /// `skip` `[outputs, B]` the block's input. Its backward is [`Layer::backward`] after the
    /// activation's backward: the pre-activation gradient is also the skip's.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_residual(
        &self,
        pool: &Pool,
        params: &[f32],
        x: &[f32],
        skip: &[f32],
        y: &mut [f32],
        col: &mut [f32],
        batch: usize,
        act: Activation,
    ) {
        self.forward(pool, params, x, y, col, batch, None);
        let n = self.outputs() * batch;
        bias_residual_activation(pool, act, &mut y[..n], &params[self.b.clone()], &skip[..n], self.spatial() * batch);
    }

    /// Backward product: the weight gradient into `grads[self.w]` from the layer's input
    /// `x` and output gradient `dy` (the bias gradient is the fused pass's), and, when
    /// `dx = Some((buf, rows))`, the gradient of the input's first `rows` features (all of
    /// them for a convolution). `below = Some((h, db))` asks for the ReLU backward of the
    /// layer below (whose output, x, is `h`; its bias gradient into `db`) to be applied to
    /// `dx` as it is computed; the return value says whether it was (convolutions only).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        pool: &Pool,
        params: &[f32],
        grads: &mut [f32],
        x: &[f32],
        dy: &[f32],
        dx: Option<(&mut [f32], usize)>,
        below: Option<(&[f32], &mut [f32])>,
        col: &mut [f32],
        batch: usize,
    ) -> bool {
        let (w, dw) = (&params[self.w.clone()], &mut grads[self.w.clone()]);
        let fused = below.is_some() && dx.is_some() && !matches!(self.kind, LayerKind::Linear { .. });
        let relu = below.filter(|_| fused).map(|(h, db)| ReluGrad { h, db });
        match &self.kind {
            LayerKind::Linear { inputs, outputs } => {
                linear::weight_grad(pool, dw, (*outputs, *inputs), dy, x, batch);
                if let Some((dx, rows)) = dx {
                    linear::input_grad(pool, w, (*outputs, *inputs), rows, dy, dx, batch);
                }
            }
            LayerKind::Conv2d { geometry, out_channels } => {
                let dx = dx.map(|(buf, _)| buf);
                conv::conv2d_backward(pool, geometry, w, dw, *out_channels, x, dy, dx, relu, col, batch);
            }
            LayerKind::ConvTranspose2d { geometry, in_channels } => {
                let dx = dx.map(|(buf, _)| buf);
                conv::conv_transpose2d_backward(pool, geometry, w, dw, *in_channels, x, dy, dx, relu, col, batch);
            }
        }
        fused
    }
}

/// One named tensor inside the flat buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// PyTorch's `state_dict` name, e.g. `fc1.weight`.
    pub name: String,
    /// PyTorch's shape.
    pub shape: Vec<usize>,
    pub range: Range<usize>,
    /// Initialisation: uniform in ±1/√fan_in (PyTorch's default for weights and biases of
    /// linear and convolution layers), or zeros when `None`.
    pub fan_in: Option<usize>,
}

/// Lays named tensors out one after another in a flat buffer.
#[derive(Default)]
pub struct LayoutBuilder {
    pub tensors: Vec<TensorInfo>,
    pub len: usize,
}

impl LayoutBuilder {
    /// Appends a tensor of `shape`; returns its range.
    pub fn push(&mut self, name: impl Into<String>, shape: Vec<usize>, fan_in: Option<usize>) -> Range<usize> {
        let n: usize = shape.iter().product();
        let r = self.len..self.len + n;
        self.len += n;
        self.tensors.push(TensorInfo { name: name.into(), shape, range: r.clone(), fan_in });
        r
    }

    /// Appends a layer's weight, then its bias, as `{name}.weight` and `{name}.bias`.
    pub fn layer(&mut self, name: &str, kind: LayerKind) -> Layer {
        let mut layer = Layer { name: name.to_string(), kind, w: 0..0, b: 0..0, residual: false };
        let fan_in = Some(layer.fan_in());
        layer.w = self.push(format!("{name}.weight"), layer.weight_shape(), fan_in);
        layer.b = self.push(format!("{name}.bias"), vec![layer.bias_len()], fan_in);
        layer
    }

    /// Appends a residual block on `channels × height × width` feature maps: `{name}.conv1`
    /// and `{name}.conv2`, 3×3 convolutions keeping the channels and the side, the second
    /// adding the block's input before its activation.
    pub fn residual_block(&mut self, name: &str, channels: usize, height: usize, width: usize) -> [Layer; 2] {
        let geometry = ConvGeometry::new(channels, height, width, BLOCK_KERNEL, 1, BLOCK_KERNEL / 2)
            .unwrap_or_else(|e| panic!("residual block {channels}x{height}x{width}: {e}"));
        let kind = LayerKind::Conv2d { geometry, out_channels: channels };
        let first = self.layer(&format!("{name}.conv1"), kind.clone());
        let second = Layer { residual: true, ..self.layer(&format!("{name}.conv2"), kind) };
        [first, second]
    }

    /// Appends `nn.Linear(inputs → outputs)`.
    pub fn linear(&mut self, name: &str, inputs: usize, outputs: usize) -> Layer {
        self.layer(name, LayerKind::Linear { inputs, outputs })
    }
}

/// The geometry of a `KERNEL`/`STRIDE`/`PADDING` convolution reading `channels × side × side`.
///
/// # Panics
/// If the geometry is refused ([`ConvGeometry::new`]): a zero count, or sizes that overflow.
/// Model configurations are validated before their layout is built
/// (`ModelConfig::validate`), so a run's config never gets here with such sizes.
pub fn halving(channels: usize, height: usize, width: usize) -> ConvGeometry {
    ConvGeometry::new(channels, height, width, KERNEL, STRIDE, PADDING)
        .unwrap_or_else(|e| panic!("convolution {channels}x{height}x{width}: {e}"))
}

#[cfg(test)]
mod tests;
