//! `vae`: variational autoencoders on images, trained on a hand-written CPU compute core.
//!
//! The binary `vae` is a thin layer over this library: a program can load a run directory
//! with [`checkpoint::RunDir`], then encode, decode and sample with [`model::Model`].

pub mod bench;
pub mod checkpoint;
pub mod classifier;
pub mod cli;
pub mod core;
pub mod data;
pub mod eval;
pub mod explore;
pub mod images;
pub mod model;
pub mod plot;
pub mod run;
pub mod serve;
pub mod train;
