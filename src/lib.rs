//! `vae`: variational autoencoders on images, trained on a hand-written CPU compute core.
//!
//! The binary `vae` is a thin layer over this library: a program can load a run directory
//! with [`checkpoint::RunDir`], then encode, decode and sample with [`model::Model`]:
//!
//! ```no_run
//! use vae::checkpoint::RunDir;
//! use vae::core::{Pool, Rng};
//!
//! let (_config, model) = RunDir::new("runs/vae-20261125-135301").load_model()?;
//! let pool = Pool::new(0); // all cores
//! // Outputs are flat row-major buffers: 16 images of 784 values (image i is
//! // images[i * 784..(i + 1) * 784]), the decoder's means in [0, 1].
//! let images = model.sample(&pool, 16, None, &mut Rng::new(7))?;
//! let encoding = model.encode(&pool, &images, None)?; // mu, logvar: 16 rows of 20 values each
//! let grid = vae::images::grid(&images, model.config().shape(), 4, 2);
//! grid.save(std::path::Path::new("samples.png"))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(clippy::undocumented_unsafe_blocks, clippy::missing_safety_doc, clippy::missing_errors_doc)]

#[cfg(feature = "app")]
pub mod bench;
pub mod checkpoint;
pub mod classifier;
#[cfg(feature = "app")]
pub mod cli;
pub mod clock;
#[cfg(feature = "mpi")]
pub mod cluster;
pub mod core;
pub mod data;
pub use checkpoint::dirkind;
pub mod eval;
pub mod explore;
pub mod export;
#[cfg(feature = "app")]
#[doc(hidden)]
pub mod fuzzing;
pub mod gmm;
pub mod images;
pub mod io;
pub mod lock;
pub mod metrics;
pub mod model;
pub mod nn;
#[cfg(feature = "app")]
pub mod plot;
pub mod progress;
#[cfg(feature = "app")]
pub mod run;
pub mod rundata;
pub mod sampler;
pub mod schedule;
#[cfg(feature = "app")]
pub mod serve;
pub mod text;
pub mod train;
