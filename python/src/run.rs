//! `vae._vae.Run`: a trained run loaded from its directory, its model applied to NumPy arrays.
//!
//! Shapes (checked again here; the Python layer checks them first with friendlier names):
//! images `float32 [N, D]` with D = C·H·W in [0, 1] (`uint8 [N, D]` for the bounds, which are
//! of 8-bit data), codes `float32 [N, L]`, labels `uint8 [N]`. Results are new arrays that own
//! the Rust buffer they were computed into: nothing is copied on the way out.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;
use vae::checkpoint::{RunConfig, RunDir};
use vae::core::{Pool, Purpose, Rng};
use vae::model::Model;
use vae::sampler::{LatentSampler, SamplerName};

use crate::VaeError;

#[pyclass(module = "vae._vae", name = "Run", frozen)]
pub struct Run {
    dir: RunDir,
    config: RunConfig,
    model: Model,
    pool: Pool,
}

/// Two arrays returned together.
type Pair<'py, A, B> = (Bound<'py, A>, Bound<'py, B>);

/// A flat result as a `[rows, cols]` array, without a copy.
fn matrix<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>, cols: usize) -> PyResult<Bound<'py, PyArray2<T>>> {
    let rows = v.len().checked_div(cols).unwrap_or(0);
    PyArray1::from_vec(py, v).reshape([rows, cols])
}

fn value_error(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A contiguous view of `a`, or an error naming `what`.
fn slice<'a, T: numpy::Element>(a: &'a PyReadonlyArray2<'_, T>, what: &str) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| value_error(format!("{what} must be C-contiguous (np.ascontiguousarray)")))
}

impl Run {
    fn labels<'a>(&self, labels: &'a Option<PyReadonlyArray1<'_, u8>>) -> PyResult<Option<&'a [u8]>> {
        labels.as_ref().map(|l| l.as_slice().map_err(|_| value_error("labels must be contiguous"))).transpose()
    }

    /// Checks `[n, D]` images; returns n.
    fn rows(&self, shape: &[usize], what: &str) -> PyResult<usize> {
        let d = self.config.model.pixels();
        if shape.len() != 2 || shape[1] != d {
            return Err(value_error(format!(
                "{what} must be [N, {d}] for this run's {} images, got {shape:?}",
                self.config.model.shape()
            )));
        }
        Ok(shape[0])
    }

    /// A split of 8-bit images `[n, D]` and their labels (zeros for an unconditional model).
    fn split(
        &self,
        x: &PyReadonlyArray2<'_, u8>,
        labels: &Option<PyReadonlyArray1<'_, u8>>,
    ) -> PyResult<vae::data::Split> {
        let n = self.rows(x.shape(), "x")?;
        let labels = match self.labels(labels)? {
            Some(l) => {
                vae::model::check_labels(&self.config.model, Some(l), n).map_err(value_error)?;
                l.to_vec()
            }
            None => {
                vae::model::check_labels(&self.config.model, None, n).map_err(value_error)?;
                vec![0; n]
            }
        };
        Ok(vae::data::Split { images: slice(x, "x")?.to_vec(), labels, shape: self.config.model.shape() })
    }
}

#[pymethods]
impl Run {
    /// Loads the run in `path` (its config and weights), to compute on `threads` threads
    /// (0: all cores).
    #[new]
    #[pyo3(signature = (path, threads = 0))]
    fn new(py: Python<'_>, path: PathBuf, threads: usize) -> PyResult<Run> {
        let dir = RunDir::new(path);
        let (config, model) = py.detach(|| dir.load_model()).map_err(|e| VaeError::new_err(e.to_string()))?;
        Ok(Run { dir, config, model, pool: Pool::new(threads) })
    }

    /// The run directory.
    #[getter]
    fn path(&self) -> String {
        self.dir.path.display().to_string()
    }

    /// `config.json` as text.
    fn config_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.config).map_err(|e| VaeError::new_err(e.to_string()))
    }

    /// `metrics.jsonl` as one JSON list (read now: a run still training has more each epoch).
    fn metrics_json(&self) -> PyResult<String> {
        let metrics = self.dir.load_metrics().map_err(|e| VaeError::new_err(e.to_string()))?;
        serde_json::to_string(&metrics).map_err(|e| VaeError::new_err(e.to_string()))
    }

    /// The class names (empty for unlabelled data).
    #[getter]
    fn classes(&self) -> Vec<String> {
        if self.config.model.classes == 0 { Vec::new() } else { self.config.class_names() }
    }

    /// (channels, height, width) of the run's images.
    #[getter]
    fn shape(&self) -> (usize, usize, usize) {
        let s = self.config.model.shape();
        (s.channels, s.height, s.width)
    }

    #[getter]
    fn latent_dim(&self) -> usize {
        self.config.model.latent_dim
    }

    /// Whether the model takes a label (a cvae).
    #[getter]
    fn conditional(&self) -> bool {
        self.config.model.kind.conditional()
    }

    /// The run's own images of `split` ("test" or "train"; `limit`: a sample of that many,
    /// stratified across classes as `vae eval --limit` takes it): 8-bit `[N, D]` and labels
    /// `[N]`, read from its data as `vae eval` reads them.
    #[pyo3(signature = (split = "test", limit = None))]
    fn images<'py>(
        &self,
        py: Python<'py>,
        split: &str,
        limit: Option<usize>,
    ) -> PyResult<Pair<'py, PyArray2<u8>, PyArray1<u8>>> {
        use vae::eval::report::SplitName;
        let which = match split {
            "test" => SplitName::Test,
            "train" => SplitName::Train,
            other => return Err(value_error(format!("split must be \"test\" or \"train\", got {other:?}"))),
        };
        if limit == Some(0) {
            return Err(value_error("limit must be at least 1 (None: the whole split)"));
        }
        let chosen = py
            .detach(|| {
                let data = vae::rundata::load(&self.dir, &self.config, None, true)?;
                vae::eval::report::eval_split(&self.config, &data, which, limit)
            })
            .map_err(|e| VaeError::new_err(vae::cli::error_line(&e)))?;
        let pixels = chosen.pixels();
        Ok((matrix(py, chosen.images, pixels)?, PyArray1::from_vec(py, chosen.labels)))
    }

    /// μ and log σ² of q(z|x), `[N, L]` each, for images `[N, D]` in [0, 1].
    #[pyo3(signature = (x, labels = None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
        labels: Option<PyReadonlyArray1<'py, u8>>,
    ) -> PyResult<Pair<'py, PyArray2<f32>, PyArray2<f32>>> {
        self.rows(x.shape(), "x")?;
        let (images, labels) = (slice(&x, "x")?, self.labels(&labels)?);
        let e = py.detach(|| self.model.encode(&self.pool, images, labels)).map_err(value_error)?;
        let l = self.config.model.latent_dim;
        Ok((matrix(py, e.mu, l)?, matrix(py, e.logvar, l)?))
    }

    /// The decoder's means `[N, D]` for codes `[N, L]`.
    #[pyo3(signature = (z, labels = None))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        z: PyReadonlyArray2<'py, f32>,
        labels: Option<PyReadonlyArray1<'py, u8>>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let l = self.config.model.latent_dim;
        if z.shape().len() != 2 || z.shape()[1] != l {
            return Err(value_error(format!("z must be [N, {l}] (the run's latent dimension), got {:?}", z.shape())));
        }
        let (codes, labels) = (slice(&z, "z")?, self.labels(&labels)?);
        let images = py.detach(|| self.model.decode(&self.pool, codes, labels)).map_err(value_error)?;
        matrix(py, images, self.config.model.pixels())
    }

    /// `n` images `[n, D]` decoded from codes drawn by `sampler` ("auto", "prior" or "gmm") at
    /// `temperature`, from seed `seed` (the draws of `vae sample --seed`).
    #[pyo3(signature = (n, labels = None, temperature = 1.0, seed = 0, sampler = "auto"))]
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        labels: Option<PyReadonlyArray1<'py, u8>>,
        temperature: f32,
        seed: u64,
        sampler: &str,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let name = match sampler {
            "auto" => SamplerName::Auto,
            "prior" => SamplerName::Prior,
            "gmm" => SamplerName::Gmm,
            other => return Err(value_error(format!("sampler must be \"auto\", \"prior\" or \"gmm\", got {other:?}"))),
        };
        let c = &self.config.model;
        let epoch = self.dir.model_epoch().map_err(|e| VaeError::new_err(e.to_string()))?.unwrap_or(0);
        let chosen = LatentSampler::load(name, &self.dir, epoch, c.latent_dim, c.cond_dim())
            .map_err(|e| VaeError::new_err(e.to_string()))?;
        let labels = self.labels(&labels)?;
        let images = py
            .detach(|| {
                let mut rng = Rng::stream(seed, Purpose::User, 0);
                chosen.sample(&self.model, &self.pool, n, labels, temperature, &mut rng)
            })
            .map_err(value_error)?;
        matrix(py, images, c.pixels())
    }

    /// The ELBO of each image of 8-bit `x` `[N, D]`, nats: the reconstruction term at one draw
    /// of z and the closed-form KL (sampled for a mixture prior), averaged over `samples`
    /// draws; each image's draws are its own (seeded by `seed` and its index), all in one
    /// batched pass.
    #[pyo3(signature = (x, labels = None, samples = 1, seed = 0))]
    fn elbo<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, u8>,
        labels: Option<PyReadonlyArray1<'py, u8>>,
        samples: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        if samples == 0 {
            return Err(value_error("samples must be at least 1"));
        }
        let split = self.split(&x, &labels)?;
        let values = py.detach(|| {
            // Each image `samples` times in a row: one pass draws every copy's z afresh (each
            // position its own noise), and an image's value is the mean over its copies.
            let p = split.pixels();
            let copies = vae::data::Split {
                images: split.images.chunks_exact(p).flat_map(|img| img.repeat(samples)).collect(),
                labels: split.labels.iter().flat_map(|&l| std::iter::repeat_n(l, samples)).collect(),
                shape: split.shape,
            };
            let losses =
                vae::train::evaluate_each(&self.model, &copies, &self.pool, Rng::stream(seed, Purpose::Eval, 0));
            losses.chunks_exact(samples).map(|c| -c.iter().sum::<f64>() / samples as f64).collect::<Vec<f64>>()
        });
        Ok(PyArray1::from_vec(py, values))
    }

    /// IWAE_k of each image of 8-bit `x` `[N, D]`, nats (the bound `vae eval` reports, with
    /// the same draws for the same seed).
    #[pyo3(signature = (x, k, labels = None, seed = 0))]
    fn iwae<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, u8>,
        k: usize,
        labels: Option<PyReadonlyArray1<'py, u8>>,
        seed: u64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        if k == 0 {
            return Err(value_error("k must be at least 1"));
        }
        let split = self.split(&x, &labels)?;
        let values = py.detach(|| vae::eval::iwae::iwae(&self.model, &split, k, seed, &self.pool, &mut |_| {}));
        Ok(PyArray1::from_vec(py, values))
    }
}
