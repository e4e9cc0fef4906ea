//! `vae serve`: a local web page to explore a trained model, and the JSON/PNG API behind it.
//!
//! The page (`page.html`, compiled into the binary) and every response come from this
//! process: no files at run time, no CDN. Loopback by default.

mod api;
pub mod listen;

pub use listen::Limits;

use crate::checkpoint::{EpochMetrics, RunConfig, RunDir};
use crate::core::Pool;
use crate::data::Split;
use crate::eval::report::{SplitName, eval_split};
use crate::explore::{Basis, principal_axes};
use crate::model::Model;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// Largest accepted request body.
pub const MAX_BODY: usize = 1 << 20;
/// Most images one request may ask for.
pub const MAX_IMAGES: usize = 400;
/// Sliders shown: every latent dimension up to this many, else this many principal directions.
pub const MAX_SLIDERS: usize = 32;
/// Most pixels of an uploaded picture (1024×1024; the largest model is 128×128): decoding is
/// refused above it before a pixel is decoded.
pub const MAX_UPLOAD_PIXELS: u64 = 1 << 20;
/// How long a heavy request (sample, encode, interpolate) waits for one of the
/// [`AppState::heavy`] slots before it is answered 503 with `Retry-After`.
pub const HEAVY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What every request reads: the model and what the page needs around it.
pub struct AppState {
    pub run: String,
    pub config: RunConfig,
    pub model: Model,
    pub metrics: Vec<EpochMetrics>,
    pub test: Split,
    /// The sliders' axes: the latent dimensions themselves, or the top principal
    /// directions of the test encodings when the latent space has more than 32.
    pub sliders: Basis,
    /// Whether `sliders` are principal directions (else the identity).
    pub principal: bool,
    /// Each slider's label where the data's factors are known (`z3 position x`, `z4 –`, as
    /// `vae traverse` labels its rows); empty otherwise (the page names them z0, z1, …).
    pub slider_labels: Vec<String>,
    /// The run directory, whose evaluations (`evals.jsonl`) `/api/model` reads on every
    /// request, so an eval made while serving shows at the next page load (`None`: no run
    /// directory, no evaluations).
    pub dir: Option<std::path::PathBuf>,
    /// Where `/api/sample` draws its codes from (the prior unless `--sampler gmm`).
    pub sampler: crate::sampler::LatentSampler,
    /// Slots for the heavy handlers, which run on the blocking pool: as many as the machine
    /// has cores (2 to 8), so a burst of uploads waits its turn (bounded memory, and the
    /// async executor stays free for the light requests) instead of all decoding at once.
    pub heavy: Arc<tokio::sync::Semaphore>,
}

/// [`AppState::heavy`]'s slots: the cores, between 2 and 8.
fn heavy_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8)
}

impl AppState {
    /// Loads a run directory: config, weights, metrics, the test split, the slider basis, and
    /// the sampler `--sampler auto` picks.
    ///
    /// # Errors
    /// The run directory cannot be loaded (missing, another kind, corrupt), or its test
    /// data cannot be read.
    pub fn load(dir: &Path) -> anyhow::Result<AppState> {
        AppState::load_with(dir, crate::sampler::SamplerName::Auto, None)
    }

    /// [`AppState::load`], sampling with `sampler` (a fitted mixture is read from the run).
    ///
    /// # Errors
    /// As [`AppState::load`], or [`crate::sampler::SamplerError`] when the sampler cannot be loaded.
    pub fn load_with(
        dir: &Path,
        sampler: crate::sampler::SamplerName,
        moved_to: Option<&Path>,
    ) -> anyhow::Result<AppState> {
        let run = RunDir::new(dir);
        let (config, model) = run.load_model()?;
        let c = model.config();
        let sampler = crate::sampler::LatentSampler::load(
            sampler,
            &run,
            run.model_epoch()?.unwrap_or(0),
            c.latent_dim,
            c.cond_dim(),
        )?;
        let metrics = run.load_metrics()?;
        // The page samples and decodes without data: a missing folder only turns off the
        // test images (a folder that moved and was named must still be the same).
        let test = match crate::rundata::source(&run, &config, moved_to) {
            Err(e) if moved_to.is_none() => {
                eprintln!("warning: {e:#}; serving without test images");
                empty_split(model.config().shape())
            }
            Err(e) => return Err(e),
            Ok(_) => {
                let data = crate::rundata::load(&run, &config, moved_to, false)?;
                if data.test.is_empty() { data.test } else { eval_split(&config, &data, SplitName::Test, None)? }
            }
        };
        let truth = crate::eval::truth::known_factors(dir, &config.train.dataset).unwrap_or_else(|e| {
            eprintln!("warning: {e}; the sliders go unlabelled");
            None
        });
        let mut state = AppState::new(dir.display().to_string(), config, model, metrics, test, Some(dir.to_owned()))?;
        if let Some(truth) = truth.filter(|_| !state.principal) {
            // The factor each dimension carries most, by MIG's mutual information (10,000 draws).
            let pool = Pool::new(0);
            let factors =
                crate::eval::disentanglement::factor_of_each_dimension(&state.model, &pool, truth.as_ref(), 10_000, 1)?;
            let names = truth.names();
            state.slider_labels = (0..state.sliders.axes.len())
                .map(|d| format!("z{d} {}", factors[d].map_or("–", |k| names[k].as_str())))
                .collect();
        }
        state.sampler = sampler;
        Ok(state)
    }

    /// The state for a model and its test split (the slider basis computed here).
    ///
    /// # Errors
    /// [`crate::model::InputError`] if the test split does not fit the model.
    pub fn new(
        run: String,
        config: RunConfig,
        model: Model,
        metrics: Vec<EpochMetrics>,
        test: Split,
        dir: Option<std::path::PathBuf>,
    ) -> Result<AppState, crate::model::InputError> {
        let l = model.config().latent_dim;
        let (sliders, principal) = if l <= MAX_SLIDERS || test.is_empty() {
            // Without test codes to find principal directions: the first dimensions.
            let shown = l.min(MAX_SLIDERS);
            let axes = (0..shown).map(|i| (0..l).map(|j| f32::from(i == j)).collect()).collect();
            (Basis { origin: vec![0.0; l], axes, scales: vec![1.0; shown] }, false)
        } else {
            let pool = Pool::new(0);
            let images = test.images_f32(test.len());
            let labels = model.config().kind.conditional().then_some(&test.labels[..]);
            let mu = model.encode(&pool, &images, labels)?.mu;
            (principal_axes(&mu, l, MAX_SLIDERS), true)
        };
        let sampler = crate::sampler::LatentSampler::Prior;
        let heavy = Arc::new(tokio::sync::Semaphore::new(heavy_slots()));
        let slider_labels = Vec::new();
        Ok(AppState { run, config, model, metrics, test, sliders, principal, slider_labels, dir, sampler, heavy })
    }
}

/// The router: the page and the API, with the body limit and JSON fallbacks.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/api/model", get(api::model_info))
        .route("/api/sample", get(api::sample))
        .route("/api/decode", post(api::decode))
        .route("/api/encode", post(api::encode))
        .route("/api/interpolate", get(api::interpolate))
        .route("/api/test-image", get(api::test_image))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Binds `host:port` (port 0 picks a free one) and serves until Ctrl-C within `limits`;
/// `ready` receives the bound address and the connection cap once listening.
///
/// # Errors
/// The address cannot be bound (in use, not this machine's, not resolvable).
pub async fn serve(
    state: Arc<AppState>,
    host: &str,
    port: u16,
    limits: Limits,
    ready: impl FnOnce(SocketAddr, usize),
) -> anyhow::Result<()> {
    let listener = listen::bind(host, port).await?;
    let cap = listen::effective_cap(&limits, listen::raise_fd_limit());
    ready(listener.local_addr()?, cap);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    listen::accept_loop(listener, router(state), limits, cap, shutdown).await;
    Ok(())
}

/// How `vae serve` serves (its flags).
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// Runtime worker threads; 0 = all cores.
    pub threads: usize,
    pub limits: Limits,
    pub sampler: crate::sampler::SamplerName,
    /// The products' number format on every thread of the runtime (bf16 where the CPU runs
    /// it, else f32).
    pub precision: crate::core::bf16::Precision,
}

/// `vae serve`: load, bind, print the address, serve on a runtime of `threads` workers.
///
/// # Errors
/// As [`AppState::load`] and [`serve`], or when the runtime cannot start.
pub fn run(dir: &Path, o: &ServeOptions, moved_to: Option<&Path>) -> anyhow::Result<()> {
    let (host, port, limits) = (o.host.as_str(), o.port, o.limits);
    let precision = o.precision;
    let state = {
        let _precision = precision.scope();
        Arc::new(AppState::load_with(dir, o.sampler, moved_to)?)
    };
    let threads = if o.threads == 0 { crate::core::pool::available_threads() } else { o.threads };
    // Every request runs its products on a thread of this runtime (a worker, or the blocking
    // pool's): each starts in the asked precision.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .on_thread_start(move || crate::core::bf16::set_enabled(precision.runs_bf16()))
        .enable_all()
        .build()?;
    let kind = state.model.config().kind;
    runtime.block_on(serve(state, host, port, limits, |addr, cap| {
        println!("serving {kind} from {} at http://{addr}/ (Ctrl-C to stop)", dir.display());
        if cap < limits.max_connections {
            eprintln!(
                "note: at most {cap} connections at once (the open-file limit allows no more; raise it with `ulimit -n`)"
            );
        }
        if !addr.ip().is_loopback() {
            eprintln!(
                "warning: listening on {}: anyone who can reach this machine on port {} can use the page and its \
                 API, with no password; use the default --host 127.0.0.1 to keep it on this machine",
                addr.ip(),
                addr.port()
            );
        }
    }))
}

/// No images, of `shape`.
fn empty_split(shape: crate::core::Shape) -> Split {
    Split { images: Vec::new(), labels: Vec::new(), shape }
}
