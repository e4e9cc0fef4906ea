//! The HTTP handlers. Every error is a 4xx with `{"error": "..."}` saying what to change.

use super::{AppState, HEAVY_WAIT, MAX_IMAGES, MAX_UPLOAD_PIXELS};
use crate::core::{Pool, Purpose, Rng};
use crate::explore::{lerp_path, slerp_path};
use crate::images::picture::{decode_limited, to_input};
use crate::images::{Image, grid};
use crate::model::one_hot;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

type St = State<Arc<AppState>>;
type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// A client error: status and a message for the user.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, axum::Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        r
    }
}

/// Runs a heavy handler's work (a model pass over many images, a picture decode) on the
/// blocking pool once one of the state's [`AppState::heavy`] slots is free, so the async
/// executor keeps answering light requests and memory stays bounded by the slots. A request
/// that waits longer than [`HEAVY_WAIT`] gets 503 with `Retry-After: 1`.
async fn heavy<T: Send + 'static>(
    s: &Arc<AppState>,
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let slot = match tokio::time::timeout(HEAVY_WAIT, Arc::clone(&s.heavy).acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        _ => {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy with other requests; retry in a second".into(),
            ));
        }
    };
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        work()
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

impl From<crate::model::InputError> for ApiError {
    fn from(e: crate::model::InputError) -> ApiError {
        bad(e.to_string())
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

type ApiResult = Result<Response, ApiError>;

fn png(image: &Image) -> Response {
    ([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "no-store")], image.to_png()).into_response()
}

fn params(p: Params) -> Result<HashMap<String, String>, ApiError> {
    p.map(|Query(q)| q).map_err(|e| bad(format!("malformed query string: {e}")))
}

/// Highest `temperature` `/api/sample` accepts: beyond 3 the decoder sees codes far outside
/// anything it was trained on.
pub const MAX_TEMPERATURE: f32 = 3.0;

/// An optional integer parameter within `range`.
fn int(
    q: &HashMap<String, String>,
    name: &str,
    default: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => {
            let n: u64 = v.trim().parse().map_err(|_| bad(format!("{name}={v:?} is not a whole number")))?;
            if !range.contains(&n) {
                return Err(bad(format!("{name}={n} is out of range {}..={}", range.start(), range.end())));
            }
            Ok(Some(n))
        }
    }
}

/// A finite number in `range`, or `default` when the parameter is absent.
fn number(
    q: &HashMap<String, String>,
    name: &str,
    default: f32,
    range: std::ops::RangeInclusive<f32>,
) -> Result<f32, ApiError> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<f32>() {
            Ok(x) if range.contains(&x) => Ok(x),
            Ok(_) => Err(bad(format!("{name}={v} is out of range {}..={}", range.start(), range.end()))),
            Err(_) => Err(bad(format!("{name}={v:?} is not a number"))),
        },
    }
}

fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(|s| s.as_str()) {
        None | Some("0") | Some("false") => Ok(false),
        Some("") | Some("1") | Some("true") => Ok(true),
        Some(v) => Err(bad(format!("{name}={v:?} must be true or false"))),
    }
}

/// The label of a request: within the model's classes, and absent for unconditional models.
fn check_label(s: &AppState, label: Option<u64>) -> Result<Option<u8>, ApiError> {
    let c = s.model.config();
    match (label, c.kind.conditional()) {
        (Some(_), false) => Err(bad(format!("label is only for conditional models; this is a {} model", c.kind))),
        (Some(l), true) if l as usize >= c.classes => {
            Err(bad(format!("label={l} is out of range 0..={} (this model has {} classes)", c.classes - 1, c.classes)))
        }
        (Some(l), true) => Ok(Some(l as u8)),
        (None, _) => Ok(None),
    }
}

/// The `label` parameter: a class number, or a class name as `vae sample --label` takes it
/// (`label=cat`, any case), checked against the model.
fn label_param(s: &AppState, q: &HashMap<String, String>) -> Result<Option<u8>, ApiError> {
    let Some(v) = q.get("label") else { return Ok(None) };
    if v.trim().parse::<u64>().is_ok() {
        return check_label(s, int(q, "label", None, 0..=MAX_LABEL)?);
    }
    let names = s.config.class_names();
    let Some(l) = crate::checkpoint::find_label(&names, v) else {
        let listed: Vec<String> = names.iter().take(12).cloned().collect();
        let more = if names.len() > 12 { ", …" } else { "" };
        return Err(bad(format!("label={v:?} is not a class of this model: {}{more}", listed.join(", "))));
    };
    check_label(s, Some(l.into()))
}

/// The largest label a request may carry (checked against the model by [`check_label`]).
const MAX_LABEL: u64 = 255;

pub async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(include_str!("page.html"))).into_response()
}

pub async fn model_info(State(s): St) -> Response {
    let c = s.model.config();
    // The fullest evaluation, read now: `vae eval` may have run since the server started.
    let evals = s.dir.as_deref().map(crate::eval::history::load).unwrap_or_default();
    let eval = crate::eval::history::fullest(&evals);
    axum::Json(json!({
        "run": s.run,
        "kind": c.kind,
        "conditional": c.kind.conditional(),
        "latent_dim": c.latent_dim,
        "arch": c.arch,
        "hidden_dim": c.hidden_dim,
        "hidden_layers": c.hidden_layers,
        "widths": c.widths,
        "likelihood": c.likelihood.describe(),
        "sampler": s.sampler.describe(&c.prior),
        "image": { "rows": c.image_rows, "cols": c.image_cols, "channels": c.channels },
        "classes": s.config.class_names(),
        "epoch": s.metrics.last().map_or(0, |m| m.epoch),
        "metrics": s.metrics,
        "config": s.config,
        "eval": eval,
        "evaluations": evals.len(),
        "sliders": {
            "principal": s.principal, "origin": s.sliders.origin, "axes": s.sliders.axes, "scales": s.sliders.scales,
            "labels": s.slider_labels,
        },
        "test_images": s.test.len(),
        "limits": { "max_images": MAX_IMAGES, "max_body_bytes": super::MAX_BODY, "max_upload_pixels": MAX_UPLOAD_PIXELS },
    }))
    .into_response()
}

/// `GET /api/sample?n=64&seed=0&label=3&nrow=8&temperature=1`: a PNG grid of samples (as
/// `vae sample`); z ~ N(0, T² I) with T = `temperature` in 0..=3, or from the fitted
/// mixture the server was started with (`--sampler gmm`), each component's spread × T.
pub async fn sample(State(s): St, q: Params) -> ApiResult {
    let q = params(q)?;
    let n = int(&q, "n", Some(64), 1..=MAX_IMAGES as u64)?.unwrap_or(64) as usize;
    let seed = int(&q, "seed", Some(0), 0..=u64::MAX)?.unwrap_or(0);
    let label = label_param(&s, &q)?;
    let default_row = (n as f64).sqrt().ceil() as u64;
    let nrow = int(&q, "nrow", Some(default_row), 1..=MAX_IMAGES as u64)?.unwrap_or(default_row) as usize;
    let temperature = number(&q, "temperature", 1.0, 0.0..=MAX_TEMPERATURE)?;
    let c = s.model.config().clone();
    let state = Arc::clone(&s);
    let image = heavy(&s, move || {
        let labels: Option<Vec<u8>> = c.kind.conditional().then(|| match label {
            Some(d) => vec![d; n],
            None => (0..n).map(|i| ((i / nrow) % c.classes.max(1)) as u8).collect(),
        });
        let mut rng = Rng::stream(seed, Purpose::User, 0);
        let imgs = state.sampler.sample(&state.model, &Pool::new(1), n, labels.as_deref(), temperature, &mut rng)?;
        Ok(grid(&imgs, c.shape(), nrow, 2))
    })
    .await?;
    let mut r = png(&image);
    r.headers_mut().insert("x-seed", HeaderValue::from(seed));
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecodeRequest {
    z: Vec<f32>,
    #[serde(default)]
    label: Option<u64>,
    #[serde(default)]
    format: Option<String>,
}

fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let body = body.map_err(|e| ApiError(e.status(), format!("{} (bodies are limited to 1 MB)", e.body_text())))?;
    serde_json::from_slice(&body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

/// `POST /api/decode` `{"z": [...], "label": 3, "format": "png" | "values"}`: the image the
/// decoder's output stands for (the likelihood's mean) as a PNG, or as `{"pixels": [...]}` in
/// [0, 1], channel-major (all of red, then green, then blue for colour models).
pub async fn decode(State(s): St, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let req: DecodeRequest = json_body(body)?;
    let c = s.model.config();
    if req.z.len() != c.latent_dim {
        return Err(bad(format!("z has {} values; this model's latent space has {}", req.z.len(), c.latent_dim)));
    }
    if req.z.iter().any(|v| !v.is_finite() || v.abs() > 1e4) {
        return Err(bad("z must hold finite numbers of magnitude below 10000"));
    }
    let label = check_label(&s, req.label)?;
    if c.kind.conditional() && label.is_none() {
        return Err(bad(format!("this conditional model needs a label 0-{}", c.classes - 1)));
    }
    let cond = label.map(|l| one_hot(l, c.classes));
    let img = s.model.decode_conditioned(&Pool::new(1), &req.z, cond.as_deref())?;
    match req.format.as_deref() {
        None | Some("png") => Ok(png(&grid(&img, c.shape(), 1, 0))),
        Some("values") => Ok(axum::Json(json!({ "pixels": img })).into_response()),
        Some(f) => Err(bad(format!("format {f:?} must be \"png\" or \"values\""))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncodeRequest {
    pixels: Vec<f32>,
    #[serde(default)]
    label: Option<u64>,
}

/// `POST /api/encode`: a JSON body `{"pixels": [...values in 0..1, channel-major], "label": 3}`,
/// or a picture body (`Content-Type: image/png`, `image/jpeg`, … ; label as `?label=3`) of any
/// size, converted to the model's shape (like MNIST for digit models). Returns μ, log σ², the
/// slider coordinates, the input as the model saw it, and the reconstruction decoded from μ.
pub async fn encode(State(s): St, headers: HeaderMap, q: Params, body: Result<Bytes, BytesRejection>) -> ApiResult {
    let c = s.model.config().clone();
    let is_picture = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"image/"));
    // What to encode: a picture's bytes (decoded below, on the blocking pool), or pixels.
    let (input, label) = if is_picture {
        let q = params(q)?;
        let body = body.map_err(|e| ApiError(e.status(), format!("{} (bodies are limited to 1 MB)", e.body_text())))?;
        (Err(body), label_param(&s, &q)?.map(u64::from))
    } else {
        let req: EncodeRequest = json_body(body)?;
        if req.pixels.len() != c.pixels() {
            return Err(bad(format!(
                "pixels has {} values; this model takes {} ({}, channel-major)",
                req.pixels.len(),
                c.pixels(),
                c.shape()
            )));
        }
        if req.pixels.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(bad("pixels must be intensities in [0, 1]"));
        }
        (Ok(req.pixels), req.label)
    };
    let label = check_label(&s, label)?;
    if c.kind.conditional() && label.is_none() {
        return Err(bad(format!("this conditional model needs a label 0-{}", c.classes - 1)));
    }
    let state = Arc::clone(&s);
    let json = heavy(&s, move || {
        let pixels = match input {
            Ok(pixels) => pixels,
            Err(bytes) => {
                let img =
                    decode_limited(&bytes, "the uploaded image", MAX_UPLOAD_PIXELS).map_err(|e| bad(e.to_string()))?;
                drop(bytes);
                to_input(&img, c.shape(), state.config.picture_preparation())
            }
        };
        let pool = Pool::new(1);
        let labels = label.map(|l| vec![l]);
        let enc = state.model.encode(&pool, &pixels, labels.as_deref())?;
        let recon = state.model.decode(&pool, &enc.mu, labels.as_deref())?;
        let b = &state.sliders;
        let coords: Vec<f32> = (b.axes.iter().zip(&b.scales))
            .map(|(axis, sc)| {
                enc.mu.iter().zip(&b.origin).zip(axis).map(|((m, o), a)| (m - o) * a).sum::<f32>() / sc.max(1e-6)
            })
            .collect();
        Ok(json!({ "mu": enc.mu, "logvar": enc.logvar, "coords": coords, "input": pixels, "reconstruction": recon }))
    })
    .await?;
    Ok(axum::Json(json).into_response())
}

/// The last test-set index, or an error if the run has no test images.
fn last_test_index(s: &AppState) -> Result<u64, ApiError> {
    match s.test.len() {
        0 => Err(bad("this run has no test images")),
        n => Ok(n as u64 - 1),
    }
}

/// `GET /api/interpolate?from=3&to=17&steps=10&slerp=true`: a strip from test image `from`
/// to `to` through the encodings' means (a second, spherical row with `slerp`).
pub async fn interpolate(State(s): St, q: Params) -> ApiResult {
    let q = params(q)?;
    let last = last_test_index(&s)?;
    let (Some(from), Some(to)) = (int(&q, "from", None, 0..=last)?, int(&q, "to", None, 0..=last)?) else {
        return Err(bad(format!("from and to (test-set indices 0..={last}) are required")));
    };
    let steps = int(&q, "steps", Some(10), 2..=50)?.unwrap_or(10) as usize;
    let slerp = flag(&q, "slerp")?;
    let c = s.model.config().clone();
    let state = Arc::clone(&s);
    let image = heavy(&s, move || {
        let s = state;
        let pool = Pool::new(1);
        let (a, b) = (from as usize, to as usize);
        let (la, lb) = (s.test.labels[a], s.test.labels[b]);
        let cond = c.kind.conditional();
        let za = s.model.encode(&pool, &s.test.image_f32(a), cond.then_some(&[la][..]))?.mu;
        let zb = s.model.encode(&pool, &s.test.image_f32(b), cond.then_some(&[lb][..]))?.mu;
        let mut paths = vec![lerp_path(&za, &zb, steps)];
        if slerp {
            paths.push(slerp_path(&za, &zb, steps));
        }
        let labels = lerp_path(&one_hot(la, c.classes), &one_hot(lb, c.classes), steps);
        let mut imgs = Vec::new();
        for p in &paths {
            imgs.extend(s.model.decode_conditioned(&pool, p, cond.then_some(&labels[..]))?);
        }
        Ok(grid(&imgs, c.shape(), steps, 2))
    })
    .await?;
    Ok(png(&image))
}

/// `GET /api/test-image?index=7`: one test image as a PNG (its label in `x-label`).
pub async fn test_image(State(s): St, q: Params) -> ApiResult {
    let q = params(q)?;
    let last = last_test_index(&s)?;
    let Some(i) = int(&q, "index", None, 0..=last)? else {
        return Err(bad(format!("index (0..={last}) is required")));
    };
    let c = s.model.config();
    let mut r = png(&grid(&s.test.image_f32(i as usize), c.shape(), 1, 0));
    r.headers_mut().insert("x-label", HeaderValue::from(s.test.labels[i as usize] as u16));
    Ok(r)
}

pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {method} {}; the API is described in README.md", uri.path()),
    )
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}; see README.md for each endpoint's method", uri.path()),
    )
}
