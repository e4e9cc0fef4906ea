//! `vae bench`: times training and the test pass on random or real data.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use super::{args, train};
use crate::model::ModelKind;
use anyhow::{Result, bail};
use clap::Args;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct BenchArgs {
    /// Epochs to train, 1 to 1000
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub epochs: u32,
    /// Model to benchmark
    #[arg(long, value_enum, default_value_t = ModelKind::Vae)]
    pub model: ModelKind,
    /// Layers: the tutorial's mlp, the reference's convolutions, or those with residual blocks
    #[arg(long, value_enum, default_value_t = crate::model::Arch::Mlp)]
    pub arch: crate::model::Arch,
    /// conv, resnet: channels per stride-2 layer [default: by image side, as `vae train`]
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',')]
    pub widths: Option<Vec<usize>>,
    /// conv, resnet: a fully connected layer of this width after the convolutions and before
    /// the transposed ones (256 in disentanglement_lib's dSprites model) [default: none]
    #[arg(long, value_name = "H", value_parser = args::count(1, 1 << 16))]
    pub hidden_dim: Option<usize>,
    /// resnet: residual blocks per resolution, 1 to 16 [default: 1]
    #[arg(long, value_name = "N", value_parser = args::count(1, crate::model::config::MAX_BLOCKS))]
    pub blocks: Option<usize>,
    /// Dimension of z, 1 to 16384
    #[arg(long, value_name = "D", default_value_t = 20, value_parser = args::count(1, 1 << 14))]
    pub latent_dim: usize,
    /// Train on random binary images of C channels and side S instead of MNIST (as the
    /// PyTorch reference's SHAPE=C,S), e.g. 3,64
    #[arg(long, value_name = "C,S", value_parser = shape_arg)]
    pub shape: Option<crate::core::Shape>,
    /// Steps per epoch on --shape's random images, 1 to 100000
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub steps: u32,
    /// Examples per step, 1 to 65536
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub batch_size: u32,
    /// Objective to train on
    #[arg(long, value_enum, default_value_t = train::ObjectiveName::Elbo)]
    pub objective: train::ObjectiveName,
    /// Importance samples per example for --objective iwae, 1 to 100 [default: 5]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=crate::train::MAX_IWAE_SAMPLES as i64))]
    pub k: Option<u32>,
    /// Threads; 0 = all cores
    #[arg(long, default_value_t = 0, value_parser = crate::cli::threads_arg)]
    pub threads: usize,
    /// Print one JSON object on one line
    #[arg(long)]
    pub json: bool,
    /// Number format of the products (linear layers and convolutions): f32, or bf16 with f32
    /// sums (`vdpbf16ps`, where the CPU has AVX512_BF16); Adam, losses and element-wise
    /// kernels stay f32
    #[arg(long, value_enum, default_value_t = crate::core::bf16::Precision::F32)]
    pub precision: crate::core::bf16::Precision,
}

/// Parses `--shape C,S`: 1 or 3 channels, a side from 4 to 1024.
fn shape_arg(s: &str) -> std::result::Result<crate::core::Shape, String> {
    let parsed = s.split_once(',').and_then(|(c, side)| Some((c.trim().parse().ok()?, side.trim().parse().ok()?)));
    match parsed {
        Some((c @ (1 | 3), side @ 4..=1024)) => Ok(crate::core::Shape::new(c, side, side)),
        _ => Err(format!("expected CHANNELS,SIDE with 1 or 3 channels and a side of 4 to 1024 (e.g. 3,64), got {s:?}")),
    }
}

/// `vae bench`.
///
/// # Errors
/// A flag out of range or a model the objective does not fit.
pub fn bench(a: BenchArgs) -> Result<()> {
    if a.objective == train::ObjectiveName::Elbo && a.k.is_some() {
        bail!("--k sets the samples of --objective iwae; add --objective iwae");
    }
    if let Err(why) = a.precision.path() {
        bail!(
            "--precision {}: {why}; a benchmark of the fallback would mislead, so drop --precision",
            a.precision.name()
        );
    }
    let objective = a.objective.with_k(a.k.map_or(train::DEFAULT_K, |k| k as usize));
    objective.check_model(a.model).map_err(anyhow::Error::msg)?;
    let shape = a.shape.unwrap_or(crate::core::Shape::mnist());
    if a.blocks.is_some() && a.arch != crate::model::Arch::Resnet {
        bail!("--blocks sets the residual blocks of --arch resnet; add --arch resnet");
    }
    let mut model = match a.arch {
        crate::model::Arch::Mlp => {
            if a.widths.is_some() {
                bail!("--widths sets the channels of --arch conv; add --arch conv");
            }
            let t = crate::model::ModelConfig::tutorial(a.model);
            crate::model::ModelConfig {
                hidden_dim: a.hidden_dim.unwrap_or(t.hidden_dim),
                image_rows: shape.height,
                image_cols: shape.width,
                channels: shape.channels,
                latent_dim: a.latent_dim,
                ..t
            }
        }
        arch @ (crate::model::Arch::Conv | crate::model::Arch::Resnet) => {
            let blocks = a.blocks.unwrap_or(crate::model::config::DEFAULT_BLOCKS);
            let mut c = match arch {
                crate::model::Arch::Resnet => crate::model::ModelConfig::resnet(a.model, shape, a.latent_dim, blocks),
                _ => crate::model::ModelConfig::conv(a.model, shape, a.latent_dim),
            };
            if let Some(w) = a.widths {
                c.widths = w;
            }
            c.hidden_dim = a.hidden_dim.unwrap_or(0);
            c
        }
    };
    model.classes = 10;
    model.validate().map_err(anyhow::Error::msg)?;
    // Under `mpirun` (an MPI build), every rank trains its part of each batch.
    let mut group = super::launch::Group::from_launcher()?;
    let threads = if a.threads == 0 { group.default_threads() } else { a.threads };
    let opts = crate::bench::BenchOptions {
        model,
        objective,
        epochs: a.epochs as usize,
        threads,
        batch: a.batch_size as usize,
        random_steps: a.shape.map(|_| a.steps as usize),
        json: a.json,
        precision: a.precision,
    };
    let workers = group.take_collective();
    let result = crate::bench::bench_in(&opts, workers);
    group.conclude(result)
}
