//! Entry points for the fuzz targets (`fuzz/fuzz_targets/`) and for the stable test that
//! replays their corpus (`tests/fuzz_corpus.rs`): each takes arbitrary bytes, runs one
//! parser that meets untrusted input the way `vae` runs it, and panics only on a defect
//! (an `Err` is the right answer to bad bytes). Each returns whether the input was accepted
//! (parsed, or answered with a success), which the seed test checks. Not part of the public API.

use crate::checkpoint::dirkind::DirKind;
use crate::checkpoint::{self, EpochMetrics, RunConfig};
use crate::core::{AdamConfig, Shape};
use crate::data::{Binarize, Source, Split, idx};
use crate::images::picture;
use crate::model::{Arch, Model, ModelConfig, ModelKind, config::MAX_PARAMETERS};
use crate::serve::{AppState, router};
use crate::train::{Objective, TrainConfig};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The IDX reader: optional gzip (with a small decompression limit, so a bomb is cheap to
/// find), then the rank-1 and rank-3 parsers. A parsed file's data must match its header.
pub fn idx(data: &[u8]) -> bool {
    let path = Path::new("fuzz.idx");
    let Ok(bytes) = idx::gunzip_at_most(data, path, 1 << 20) else { return false };
    let mut accepted = false;
    for rank in [1, 3] {
        if let Ok((dims, pixels)) = idx::parse(&bytes, rank, path) {
            assert_eq!(dims.len(), rank as usize);
            assert_eq!(dims.iter().product::<usize>(), pixels.len());
            accepted = true;
        }
    }
    accepted
}

/// `config.json` and `metrics.jsonl` as `vae` loads them: parse, validate the model, then
/// everything the loaders derive from a valid config (layout, shapes, class names).
pub fn run_files(data: &[u8]) -> bool {
    let mut accepted = false;
    if let Ok(config) = serde_json::from_slice::<RunConfig>(data)
        && config.model.validate().is_ok()
    {
        let layout = config.model.layout();
        assert!(layout.len <= MAX_PARAMETERS);
        assert_eq!(layout.tensors.iter().map(|t| t.range.len()).sum::<usize>(), layout.len);
        assert!(config.model.shape().size() > 0);
        let _ = (config.class_names(), config.digit_pictures(), config.model.train_macs_per_example());
        accepted = true;
    }
    let text = String::from_utf8_lossy(data);
    let lines: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let records = lines.iter().filter(|l| serde_json::from_str::<EpochMetrics>(l).is_ok()).count();
    accepted || (records > 0 && records == lines.len())
}

/// The two small models the safetensors and HTTP targets load into: an MLP VAE on 28×28
/// grey digits and a conv CVAE on 8×8 colour pictures of three named classes.
fn tiny_configs() -> [ModelConfig; 2] {
    let mlp = ModelConfig { hidden_dim: 8, latent_dim: 2, ..ModelConfig::tutorial(ModelKind::Vae) };
    let conv = ModelConfig {
        classes: 3,
        class_names: vec!["cat".into(), "dog".into(), "fox".into()],
        arch: Arch::Conv,
        widths: vec![4],
        latent_dim: 3,
        ..ModelConfig::conv(ModelKind::Cvae, Shape::new(3, 8, 8), 3)
    };
    [mlp, conv]
}

/// `model.safetensors` and `train-state.safetensors` for a tiny model (the first byte picks
/// which): a loaded model must have its config's parameter count, all finite.
pub fn safetensors(data: &[u8]) -> bool {
    let Some((&pick, bytes)) = data.split_first() else { return false };
    let config = &tiny_configs()[pick as usize % 2];
    let path = Path::new("fuzz.safetensors");
    if let Ok(model) = checkpoint::model_from_bytes(bytes, config, path) {
        assert_eq!(model.params.len(), config.layout().len);
        assert!(model.params.iter().all(|p| p.is_finite()));
        return true;
    }
    if let Ok(state) = checkpoint::state_from_bytes(bytes, config, path) {
        assert_eq!(state.adam.m.len(), state.model.params.len());
        return true;
    }
    false
}

/// A user's picture (`reconstruct --input`, the page's upload): decode, then convert to a
/// digit model's input and to a 16×16 colour model's; inputs must be in [0, 1].
pub fn picture(data: &[u8]) -> bool {
    let Ok(img) = picture::decode(data, "fuzz") else { return false };
    let photo = |background| picture::Preparation::Photo { background };
    for (shape, prep) in [
        (Shape::mnist(), picture::Preparation::Digits),
        (Shape::new(3, 16, 16), photo(crate::data::Background::White)),
        (Shape::new(1, 16, 16), photo(crate::data::Background::Black)),
    ] {
        let x = picture::to_input(&img, shape, prep);
        assert_eq!(x.len(), shape.size());
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)), "input outside [0, 1]");
    }
    true
}

/// The two tiny models' servers, built once per process.
fn states() -> &'static [Arc<AppState>; 2] {
    static STATES: OnceLock<[Arc<AppState>; 2]> = OnceLock::new();
    STATES.get_or_init(|| {
        tiny_configs().map(|model| {
            let shape = model.shape();
            let n = 4;
            let test = Split {
                images: (0..n * shape.size()).map(|i| (i * 37 % 256) as u8).collect(),
                labels: (0..n).map(|i| (i % model.classes) as u8).collect(),
                shape,
            };
            let train = TrainConfig {
                epochs: 1,
                batch_size: 4,
                adam: AdamConfig::default(),
                beta: 1.0,
                seed: 1,
                threads: 1,
                dataset: Source::Mnist,
                train_limit: None,
                test_limit: None,
                binarize: Binarize::None,
                objective: Objective::Elbo,
                lr_schedule: Default::default(),
                init: Default::default(),
                output_bias: Default::default(),
                kl_warmup: 0,
                augment: Default::default(),
                precision: Default::default(),
                world_size: 1,
                micro_batches: 1,
                gamma: None,
            };
            let config = RunConfig { kind: DirKind::VaeRun, model: model.clone(), train, version: "fuzz".into() };
            let model = Model::init(model, 1);
            Arc::new(AppState::new("fuzz".into(), config, model, Vec::new(), test, None).expect("test fits"))
        })
    })
}

/// The HTTP API: `data` is `<pick byte><method byte><uri>\n<body>`; the request goes through
/// the router (query and body parsing, every handler) of a tiny VAE or CVAE. Every answer
/// must be a response, never a panic or a server error.
pub fn http(data: &[u8]) -> bool {
    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode, header};
    use hyper::service::Service;
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let [pick, method, rest @ ..] = data else { return false };
    let (uri, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let method = [Method::GET, Method::POST, Method::PUT, Method::HEAD][*method as usize % 4].clone();
    let content_type = if body.first() == Some(&b'{') { "application/json" } else { "image/png" };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_vec()))
    else {
        return false;
    };
    let state = states()[*pick as usize % 2].clone();
    let runtime = RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime"));
    let service = hyper_util::service::TowerToHyperService::new(router(state));
    let response = runtime.block_on(service.call(request)).expect("the router is infallible");
    let status = response.status();
    assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "500 for {:?}", String::from_utf8_lossy(uri));
    status.is_success()
}

/// Packs fuzz inputs into one gzipped file (each input as a little-endian u32 length and its
/// bytes), so a corpus of thousands of small files is committed as one.
pub fn pack(inputs: &[Vec<u8>]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(inputs.iter().map(|i| i.len() + 4).sum());
    for input in inputs {
        raw.extend_from_slice(&(input.len() as u32).to_le_bytes());
        raw.extend_from_slice(input);
    }
    gzip(&raw)
}

/// The inputs [`pack`] packed.
///
/// # Errors
/// A message if the bytes are not gzip or a length runs past the end.
pub fn unpack(packed: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    use std::io::Read;
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(packed).read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let mut inputs = Vec::new();
    let mut rest = &raw[..];
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or("a length is cut off")?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(format!("an input of {len} bytes runs past the end"));
        }
        inputs.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(inputs)
}

/// A fuzz target: arbitrary bytes in, whether they were accepted out.
pub type Target = fn(&[u8]) -> bool;

/// The targets, by name, as the fuzz crate and the corpus test call them.
pub const TARGETS: [(&str, Target); 5] =
    [("idx", idx), ("run_files", run_files), ("safetensors", safetensors), ("picture", picture), ("http", http)];

/// Well-formed inputs for `target` that the fuzzer starts from (see
/// `examples/fuzz_corpus.rs`).
///
/// # Panics
/// If `target` is not one of [`TARGETS`].
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "idx" => idx_seeds(),
        "run_files" => run_file_seeds(),
        "safetensors" => safetensor_seeds(),
        "picture" => picture_seeds(),
        "http" => http_seeds(),
        _ => panic!("no fuzz target {target}"),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("writes to a Vec");
    e.finish().expect("writes to a Vec")
}

fn idx_seeds() -> Vec<Vec<u8>> {
    let labels = [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3].to_vec();
    let mut images = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3].to_vec();
    images.extend(0..12u8);
    vec![gzip(&labels), gzip(&images), labels, images]
}

fn run_file_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> =
        states().iter().map(|s| serde_json::to_vec_pretty(&s.config).expect("serialises")).collect();
    let mut tutorial = states()[0].config.clone();
    tutorial.model = ModelConfig::tutorial(ModelKind::Cvae);
    seeds.push(serde_json::to_vec(&tutorial).expect("serialises"));
    let record = |epoch: usize, lr: Option<f32>| EpochMetrics {
        epoch,
        step: 469 * epoch as u64,
        train_objective: 164.2,
        train_reconstruction: 150.1,
        train_kl: 14.1,
        train_batch_loss: 21017.6,
        test_loss: Some(127.1),
        test_reconstruction: Some(104.0),
        test_kl: Some(23.1),
        seconds: 0.6,
        images_per_sec: 100_000.0,
        lr,
        beta: None,
    };
    let lines = [record(1, None), record(2, Some(1e-4))].map(|r| serde_json::to_string(&r).expect("serialises"));
    seeds.push(lines.join("\n").into_bytes());
    seeds
}

fn safetensor_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (pick, config) in tiny_configs().into_iter().enumerate() {
        let model = Model::init(config, 3);
        let adam = crate::core::AdamState::new(model.params.len());
        for bytes in [checkpoint::model_bytes(&model, 2), checkpoint::state_bytes(&model, &adam, 2)] {
            seeds.push([vec![pick as u8], bytes].concat());
        }
    }
    seeds
}

fn picture_seeds() -> Vec<Vec<u8>> {
    use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
    let rgba =
        RgbaImage::from_fn(5, 7, |x, y| Rgba([(x * 50) as u8, (y * 30) as u8, 200, if x == 0 { 0 } else { 255 }]));
    let img = DynamicImage::ImageRgba8(rgba);
    let mut seeds = Vec::new();
    for (img, format) in [
        (img.clone(), ImageFormat::Png),
        (DynamicImage::ImageLuma8(img.to_luma8()), ImageFormat::Png),
        (DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::Jpeg),
        (img.clone(), ImageFormat::Gif),
        (DynamicImage::ImageRgb8(img.to_rgb8()), ImageFormat::Bmp),
        (img, ImageFormat::WebP),
    ] {
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, format).expect("encodes");
        seeds.push(bytes.into_inner());
    }
    seeds
}

fn http_seeds() -> Vec<Vec<u8>> {
    let png = picture_seeds().swap_remove(0);
    let request =
        |pick: u8, method: u8, uri: &str, body: &[u8]| [&[pick, method], uri.as_bytes(), b"\n", body].concat();
    let mut seeds = Vec::new();
    for (pick, label, z) in [(0, "", "[0.5,-1]"), (1, "&label=1", r#"[0.5,-1,0],"label":2"#)] {
        seeds.extend([
            request(pick, 0, "/", b""),
            request(pick, 0, "/api/model", b""),
            request(pick, 0, &format!("/api/sample?n=4&seed=3&nrow=2&temperature=0.5{label}"), b""),
            request(pick, 1, "/api/decode", format!(r#"{{"z":{z},"format":"values"}}"#).as_bytes()),
            request(pick, 1, &format!("/api/encode?x=1{label}"), &png),
            request(pick, 0, "/api/interpolate?from=0&to=3&steps=4&slerp=true", b""),
            request(pick, 0, "/api/test-image?index=2", b""),
        ]);
    }
    seeds.push(request(0, 1, "/api/encode", format!("{{\"pixels\":[{}0]}}", "0.5,".repeat(783)).as_bytes()));
    seeds
}
