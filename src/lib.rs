//! `vae`: variational autoencoders on images, trained on a hand-written CPU compute core.
pub mod core;
