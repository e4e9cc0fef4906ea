//! Training as Python sees it: the run's [`Observer`] hooks forwarded to a Python object,
//! and Ctrl-C checked at every step.

use pyo3::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vae::checkpoint::EpochMetrics;
use vae::run::Observer;

/// Forwards the hooks to a Python object (with the GIL taken for each call). The first
/// Python exception (the observer's own, or `KeyboardInterrupt` from a pending SIGINT) is
/// kept, and training stops: at the next step for a signal, after the epoch for the
/// observer's end-of-epoch hook.
pub struct PyObserver {
    target: Py<PyAny>,
    interrupt: Arc<AtomicBool>,
    error: Option<PyErr>,
}

impl PyObserver {
    /// An observer calling `target`; `interrupt` is the trainer's stop flag.
    pub fn new(target: Py<PyAny>, interrupt: Arc<AtomicBool>) -> PyObserver {
        PyObserver { target, interrupt, error: None }
    }

    /// The Python exception that stopped training, if one did.
    pub fn take_error(&mut self) -> Option<PyErr> {
        self.error.take()
    }

    /// Calls `method(args)` on the target; an exception is kept and stops the trainer.
    fn call<'py, A: pyo3::call::PyCallArgs<'py>>(
        &mut self,
        py: Python<'py>,
        method: &str,
        args: A,
    ) -> Result<(), String> {
        if self.error.is_some() {
            return Err("stopped".into());
        }
        match self.target.bind(py).call_method1(method, args) {
            Ok(_) => Ok(()),
            Err(e) => {
                let message = e.to_string();
                self.error = Some(e);
                self.interrupt.store(true, Ordering::SeqCst);
                Err(message)
            }
        }
    }
}

impl Observer for PyObserver {
    fn epoch_start(&mut self, epoch: usize, total: usize, steps: usize) {
        let _ = Python::attach(|py| self.call(py, "epoch_start", (epoch, total, steps)));
    }

    fn step(&mut self, step: usize, running: f64) {
        Python::attach(|py| {
            // A SIGINT arrives as a flag that only the main thread's signal check turns into
            // KeyboardInterrupt: check it here, between steps.
            if let Err(e) = py.check_signals() {
                if self.error.is_none() {
                    self.error = Some(e);
                }
                self.interrupt.store(true, Ordering::SeqCst);
                return;
            }
            let _ = self.call(py, "step", (step, running));
        });
    }

    fn epoch_end(&mut self, m: &EpochMetrics, total: usize, next_lr: f32) -> Result<(), String> {
        let json = serde_json::to_string(m).map_err(|e| e.to_string())?;
        Python::attach(|py| self.call(py, "epoch_end", (json, total, next_lr)))
    }
}
