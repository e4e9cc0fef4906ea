//! Every training step's loss: retrains a run's model from its own config (same seed, data,
//! shuffle and noise as `vae train` drew) into a new directory for `EPOCHS` epochs and
//! prints one line per step, `epoch step loss` (the step's −ELBO per example). With
//! `STEPS_LOG=FILE python bench/torch_colour.py`, which writes the same lines, it shows where
//! two trainings on the same random numbers part (issue 23's side by side).
//!
//! With `FROM_RUN`, training starts from that run's trained weights (Adam fresh) instead of
//! the seed's initial ones, as `LOAD=FROM_RUN` does for the PyTorch side: the two computations
//! compared where a trained model's parameters lie, not only near the start.
//!
//! `cargo run --release --example step_losses -- RUN_DIR NEW_DIR EPOCHS [FROM_RUN]`

use std::path::PathBuf;
use vae::checkpoint::RunDir;
use vae::run::{Observer, Run};

/// Turns the running mean the trainer reports into each step's own loss.
struct Steps {
    epoch: usize,
    before: f64,
}

impl Observer for Steps {
    fn epoch_start(&mut self, epoch: usize, _total: usize, _steps: usize) {
        (self.epoch, self.before) = (epoch, 0.0);
    }

    fn step(&mut self, step: usize, running: f64) {
        let sum = running * step as f64;
        println!("{} {step} {:.6}", self.epoch, sum - self.before);
        self.before = sum;
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(run), Some(out), Some(epochs)) = (args.first(), args.get(1), args.get(2)) else {
        anyhow::bail!("usage: step_losses RUN_DIR NEW_DIR EPOCHS [FROM_RUN]");
    };
    let dir = RunDir::new(run);
    let mut config = dir.load_config()?;
    config.train.epochs = epochs.parse()?;
    let data = vae::rundata::load(&dir, &config, None, true)?;
    let mut new = Run::create(PathBuf::from(out), config, data)?;
    if let Some(from) = args.get(3) {
        let (_, trained) = RunDir::new(from).load_model()?;
        anyhow::ensure!(trained.params.len() == new.trainer.model.params.len(), "{from} holds another model");
        new.trainer.model.params = trained.params;
    }
    new.train_observed(&mut Steps { epoch: 0, before: 0.0 })?;
    Ok(())
}
