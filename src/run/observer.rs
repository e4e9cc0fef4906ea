//! What a caller sees of a run as it trains: [`Observer`]'s hooks, and [`Terminal`], the
//! command line's progress bar and report lines. The Python package brings its own.

use crate::checkpoint::EpochMetrics;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// Hooks called by [`super::Run::train_observed`] as training goes.
pub trait Observer {
    /// Epoch `epoch` of `total` starts, with `steps` optimisation steps.
    fn epoch_start(&mut self, _epoch: usize, _total: usize, _steps: usize) {}
    /// Step `step` (1-based) of the current epoch is done; `running` is the mean training
    /// loss of its steps so far.
    fn step(&mut self, _step: usize, _running: f64) {}
    /// Epoch `m.epoch` of `total` is done and saved; `next_lr` is the learning rate of the
    /// next epoch. An error stops training here, every completed epoch kept: the run then
    /// returns [`super::RunError::Stopped`] with the message.
    ///
    /// # Errors
    /// Whatever the observer wants training to stop for.
    fn epoch_end(&mut self, _m: &EpochMetrics, _total: usize, _next_lr: f32) -> Result<(), String> {
        Ok(())
    }
}

/// The command line's: a progress bar per epoch on a terminal and one report line per epoch,
/// nothing at all when `quiet`.
pub struct Terminal {
    quiet: bool,
    tty: bool,
    bar: ProgressBar,
    steps: usize,
    schedule: String,
}

impl Terminal {
    /// `schedule` names the learning-rate schedule in the line that reports a change of rate.
    pub fn new(quiet: bool, schedule: String) -> Terminal {
        let tty = std::io::stdout().is_terminal() && !quiet;
        Terminal { quiet, tty, bar: ProgressBar::hidden(), steps: 0, schedule }
    }
}

impl Observer for Terminal {
    fn epoch_start(&mut self, epoch: usize, total: usize, steps: usize) {
        self.bar = progress_bar(self.tty, steps, epoch, total);
        self.steps = steps;
    }

    fn step(&mut self, step: usize, running: f64) {
        if step.is_multiple_of(4) || step == self.steps {
            self.bar.set_position(step as u64);
            self.bar.set_message(format!("{running:.2}"));
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics, total: usize, next_lr: f32) -> Result<(), String> {
        self.bar.finish_and_clear();
        if !self.quiet {
            println!("{}", format_epoch(m, total));
            if m.epoch < total && m.lr.is_some_and(|lr| lr != next_lr) {
                println!("learning rate {next_lr:e} from epoch {} ({})", m.epoch + 1, self.schedule);
            }
        }
        Ok(())
    }
}

fn progress_bar(tty: bool, steps: usize, epoch: usize, total: usize) -> ProgressBar {
    if !tty {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stdout());
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:24.cyan/blue}] {pos}/{len} loss {msg} eta {eta}")
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch:>3}/{total}"));
    bar.set_message("…");
    bar
}

/// The report line of an epoch (with the epoch's KL weight while a warm-up ramps it; the
/// train figure is the objective at that weight).
pub fn format_epoch(m: &EpochMetrics, total: usize) -> String {
    let beta = m.beta.map(|b| format!("  β {b:.3}")).unwrap_or_default();
    let test = match (m.test_loss, m.test_reconstruction, m.test_kl) {
        (Some(loss), Some(rec), Some(kl)) => format!("test {loss:>8.3} [rec {rec:.2} kl {kl:.2}]"),
        _ => "no test images".to_string(),
    };
    format!(
        "epoch {:>3}/{total}  train {:>8.3} (batch {:>9.2})  {test}  {:>6.2} s  {:>7.0} img/s{beta}",
        m.epoch, m.train_objective, m.train_batch_loss, m.seconds, m.images_per_sec
    )
}
