//! `vae._vae`: the Rust side of the Python package `vae`. It takes and gives flat, C-ordered
//! NumPy arrays (`float32 [N, D]`, labels `uint8 [N]`) and command-line arguments; the
//! package's Python layer (python/vae/__init__.py) checks shapes and dtypes, maps keyword
//! arguments to flags and class names to labels, and draws the progress bar.
//!
//! Every call that computes releases the GIL. Errors arrive as `vae.VaeError` with the CLI's
//! one-line message, or `ValueError` for arguments the command line would refuse.

use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;

mod observe;
mod run;

pyo3::create_exception!(_vae, VaeError, pyo3::exceptions::PyException, "An error of vae: the CLI's message.");

/// The CLI's one-line message of `e` as a `VaeError`.
fn vae_error(e: &anyhow::Error) -> PyErr {
    VaeError::new_err(vae::cli::error_line(e))
}

/// Parses `vae SUBCOMMAND ARGS…`; a refusal becomes a `ValueError` with clap's first paragraph
/// (what is wrong), as the binary prints it.
fn parse(subcommand: &str, args: Vec<String>) -> PyResult<vae::cli::Command> {
    use clap::Parser;
    let argv = ["vae".to_string(), subcommand.to_string()].into_iter().chain(args);
    match vae::cli::Cli::try_parse_from(argv) {
        Ok(cli) => Ok(cli.command),
        Err(e) => {
            let text = e.to_string();
            let what: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            Err(PyValueError::new_err(what.join(" ").trim_start_matches("error: ").to_string()))
        }
    }
}

/// Trains as `vae train ARGS…` does, telling `observer` (an object with `epoch_start(epoch,
/// total, steps)`, `step(step, running_loss)` and `epoch_end(metrics_json, total, next_lr)`)
/// as it goes. Returns the run directory. Ctrl-C (SIGINT) stops before the next step and
/// raises `KeyboardInterrupt`; an exception raised by the observer stops after the epoch it
/// was told of and is raised again; either way every completed epoch is kept.
#[pyfunction]
fn train(py: Python<'_>, args: Vec<String>, observer: Py<PyAny>) -> PyResult<String> {
    let vae::cli::Command::Train(a) = parse("train", args)? else { unreachable!("parsed as train") };
    vae::core::fpmode::flush_denormals_on_this_thread();
    let opened = py.detach(|| vae::cli::train::open(&a)).map_err(|e| vae_error(&e))?;
    let Some(mut run) = opened else {
        return Ok(a.resume.unwrap_or_default().display().to_string());
    };
    let dir = run.dir.path.display().to_string();
    let mut watcher = observe::PyObserver::new(observer, run.trainer.interrupt.clone());
    let trained = py.detach(|| run.train_observed(&mut watcher));
    match (trained, watcher.take_error()) {
        // Ctrl-C: KeyboardInterrupt, saying what was kept and how to go on — whether it came
        // between steps or while an observer's hook ran (then after the epoch just saved).
        (trained, Some(e)) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
            let stop = match trained {
                Err(stop @ vae::run::RunError::Interrupted { .. }) => stop,
                _ => vae::run::RunError::Interrupted {
                    epoch: run.trainer.epoch + 1,
                    last_saved: run.trainer.epoch,
                    dir: run.dir.path.clone(),
                },
            };
            return Err(PyKeyboardInterrupt::new_err(stop.to_string()));
        }
        (_, Some(e)) => return Err(e),
        (Err(e), None) => return Err(vae_error(&e.into())),
        (Ok(()), None) => {}
    }
    let fit = a.fit_sampler;
    py.detach(move || vae::cli::train::finish(&run, fit, true)).map_err(|e| vae_error(&e))?;
    Ok(dir)
}

/// Evaluates as `vae eval ARGS…` does (the report is written to the run directory unless
/// `--output` says otherwise); returns the report as JSON.
#[pyfunction]
fn evaluate(py: Python<'_>, args: Vec<String>) -> PyResult<String> {
    let vae::cli::Command::Eval(a) = parse("eval", args)? else { unreachable!("parsed as eval") };
    let report = py
        .detach(|| {
            vae::core::fpmode::flush_denormals_on_this_thread();
            let dir = vae::checkpoint::RunDir::new(&a.run_dir);
            vae::eval::report::run_eval(&dir, &a.options())
        })
        .map_err(|e| vae_error(&e))?;
    serde_json::to_string(&report).map_err(|e| VaeError::new_err(e.to_string()))
}

/// The usage text of `vae SUBCOMMAND --help`, for the Python functions' docstrings.
#[pyfunction]
fn help(subcommand: &str) -> String {
    use clap::CommandFactory;
    let mut cli = vae::cli::Cli::command();
    cli.find_subcommand_mut(subcommand).map(|c| c.render_long_help().to_string()).unwrap_or_default()
}

#[pymodule]
fn _vae(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Messages name the commands to type next; in Python the program is not `python`.
    vae::text::set_command_name("vae");
    m.add("VaeError", m.py().get_type::<VaeError>())?;
    m.add_class::<run::Run>()?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(help, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
