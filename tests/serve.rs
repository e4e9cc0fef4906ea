//! `vae serve` over real HTTP on loopback: every endpoint, malformed requests, and a
//! bounded load test with concurrent clients.

mod common;

use common::http::{Conn, get, post_json, request};
use common::*;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One VAE and one CVAE server shared by the tests of this file.
fn servers() -> (SocketAddr, SocketAddr) {
    let s = shared();
    (s.0, s.1)
}

/// The servers and the folder holding their runs (`vae/`, `cvae/`).
fn shared() -> &'static (SocketAddr, SocketAddr, tempfile::TempDir) {
    static S: OnceLock<(SocketAddr, SocketAddr, tempfile::TempDir)> = OnceLock::new();
    S.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let (v, c) = (tmp.path().join("vae"), tmp.path().join("cvae"));
        train(&v, &["--epochs", "1"]);
        train(&c, &["--epochs", "1", "--model", "cvae"]);
        // The cvae has been measured; the page shows its eval.json.
        vae().args(["eval"]).arg(&c).args(["--k", "2", "--limit", "20", "--generated", "0", "-q"]).assert().success();
        (start_server(&v), start_server(&c), tmp)
    })
}

fn png_dims(body: &[u8]) -> (u32, u32) {
    let info = png::Decoder::new(std::io::Cursor::new(body)).read_info().unwrap();
    (info.info().width, info.info().height)
}

fn error_of(r: &common::http::Response) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn page_and_model_info() {
    let (v, c) = servers();
    let page = get(v, "/");
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").unwrap().starts_with("text/html"));
    let html = String::from_utf8(page.body).unwrap();
    assert!(
        html.contains("id=\"sliders\"") && !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
    let m = get(v, "/api/model").json();
    assert_eq!(
        (m["kind"].as_str(), m["latent_dim"].as_u64(), m["conditional"].as_bool()),
        (Some("vae"), Some(20), Some(false))
    );
    assert_eq!(m["sliders"]["axes"].as_array().unwrap().len(), 20);
    assert!(m["sliders"]["labels"].as_array().unwrap().is_empty(), "MNIST has no known factors to name sliders by");
    assert_eq!(m["metrics"].as_array().unwrap().len(), 1);
    assert!(m["eval"].is_null(), "no eval.json, no eval");
    let cm = get(c, "/api/model").json();
    assert_eq!(cm["conditional"], true);
    assert_eq!(cm["eval"]["iwae"]["k"], 2);
    assert!(cm["eval"]["iwae"]["nll"].as_f64().unwrap() > 0.0);
    // Evaluations made while serving show at once; a quick check never hides a fuller one.
    let run = shared().2.path().join("vae");
    let quick = ["--elbo-samples", "1", "--generated", "0", "-q"];
    vae().args(["eval"]).arg(&run).args(["--k", "2", "--limit", "20"]).args(quick).assert().success();
    vae().args(["eval"]).arg(&run).args(["--k", "10", "--limit", "1"]).args(quick).assert().success();
    let m = get(v, "/api/model").json();
    assert_eq!((m["eval"]["images"].as_u64(), m["eval"]["iwae"]["k"].as_u64()), (Some(20), Some(2)));
    assert_eq!(m["evaluations"], 2);
}

#[test]
fn sample_decode_encode_interpolate() {
    let (v, c) = servers();
    let r = get(v, "/api/sample?n=16&seed=5");
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/png")));
    assert_eq!(png_dims(&r.body), (4 * 30 + 2, 4 * 30 + 2));
    assert_eq!(r.header("x-seed"), Some("5"));
    assert_eq!(get(v, "/api/sample?n=16&seed=5").body, r.body, "same seed, same picture");
    assert_eq!(png_dims(&get(c, "/api/sample?n=10&label=3&nrow=10").body), (302, 32));
    // Temperature: 1 is the default draw; 0 decodes z = 0, so all 4 tiles of one label agree.
    assert_eq!(get(v, "/api/sample?n=16&seed=5&temperature=1").body, r.body);
    assert_ne!(get(v, "/api/sample?n=16&seed=5&temperature=0.5").body, r.body);
    let cold = get(c, "/api/sample?n=4&label=3&nrow=4&seed=9&temperature=0").body;
    let grey = image::load_from_memory(&cold).unwrap().to_luma8();
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    assert_eq!((w, h), (4 * 30 + 2, 32));
    let tile =
        |k: usize| -> Vec<u8> { (2..30).flat_map(|y| grey.as_raw()[y * w + 2 + k * 30..][..28].to_vec()).collect() };
    assert_eq!(tile(0), tile(3));
    assert!(tile(0).iter().any(|&v| v > 128), "a digit, not a blank tile");

    let z = vec![0.0f32; 20];
    let png = post_json(v, "/api/decode", &json!({ "z": z }));
    assert_eq!((png.status, png_dims(&png.body)), (200, (28, 28)));
    let vals = post_json(v, "/api/decode", &json!({ "z": z, "format": "values" })).json();
    let pixels = vals["pixels"].as_array().unwrap();
    assert_eq!(pixels.len(), 784);
    assert!(pixels.iter().all(|p| (0.0..=1.0).contains(&p.as_f64().unwrap())));
    let (a, b) = (
        post_json(c, "/api/decode", &json!({ "z": z, "label": 1, "format": "values" })).json(),
        post_json(c, "/api/decode", &json!({ "z": z, "label": 8, "format": "values" })).json(),
    );
    assert_ne!(a, b, "the label changes the cvae's digit");

    // Encode 784 grey values: μ, log σ², coordinates, reconstruction.
    let digit: Vec<f32> =
        (0..784).map(|i| if (i % 28) > 10 && (i % 28) < 16 && i / 28 > 4 && i / 28 < 24 { 1.0 } else { 0.0 }).collect();
    let e = post_json(v, "/api/encode", &json!({ "pixels": digit })).json();
    assert_eq!(e["mu"].as_array().unwrap().len(), 20);
    assert_eq!(e["coords"], e["mu"], "identity sliders: coordinates are μ");
    assert_eq!(e["reconstruction"].as_array().unwrap().len(), 784);
    // …or a PNG body of any size (here 28x28 grey, as the page's canvas would send larger).
    let grid = vae::images::grid(&digit, vae::core::Shape::mnist(), 1, 0);
    let r = request(c, "POST", "/api/encode?label=1", "image/png", &grid.to_png());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["input"].as_array().unwrap().len(), 784);

    let strip = get(v, "/api/interpolate?from=0&to=5&steps=6&slerp=true");
    assert_eq!((strip.status, png_dims(&strip.body)), (200, (6 * 30 + 2, 2 * 30 + 2)));
    let t = get(c, "/api/test-image?index=0");
    assert_eq!((t.status, t.header("x-label")), (200, Some("7")));
}

#[test]
fn bad_requests_get_a_4xx_with_a_message_and_the_server_carries_on() {
    let (v, c) = servers();
    let cases: Vec<(common::http::Response, u16, &str)> = vec![
        (get(v, "/api/sample?n=401"), 400, "n=401 is out of range 1..=400"),
        (get(v, "/api/sample?n=abc"), 400, "not a whole number"),
        (get(v, "/api/sample?temperature=-1"), 400, "temperature=-1 is out of range 0..=3"),
        (get(v, "/api/sample?temperature=NaN"), 400, "temperature=NaN is out of range"),
        (get(v, "/api/sample?temperature=warm"), 400, "is not a number"),
        (get(v, "/api/sample?label=3"), 400, "label is only for conditional models"),
        (get(c, "/api/sample?label=12"), 400, "label=12 is out of range"),
        (get(c, "/api/sample?label=seven"), 400, "label=\"seven\" is not a class of this model: 0, 1, 2"),
        (post_json(v, "/api/decode", &json!({ "z": [1, 2] })), 400, "z has 2 values; this model's latent space has 20"),
        (post_json(v, "/api/decode", &json!({ "z": vec![1e9; 20] })), 400, "finite numbers"),
        (post_json(c, "/api/decode", &json!({ "z": vec![0; 20] })), 400, "needs a label"),
        (post_json(v, "/api/decode", &json!({ "z": vec![0; 20], "format": "gif" })), 400, "format"),
        (post_json(v, "/api/decode", &json!({ "zz": [] })), 400, "invalid JSON body"),
        (request(v, "POST", "/api/decode", "application/json", b"{not json"), 400, "invalid JSON body"),
        (post_json(v, "/api/encode", &json!({ "pixels": vec![0.5; 10] })), 400, "pixels has 10 values"),
        (post_json(v, "/api/encode", &json!({ "pixels": vec![2.0; 784] })), 400, "[0, 1]"),
        (request(v, "POST", "/api/encode", "image/png", b"\x89PNG garbage"), 400, "not a readable PNG"),
        (request(v, "POST", "/api/decode", "application/json", &vec![b' '; 2 << 20]), 413, "1 MB"),
        (request(v, "PUT", "/api/decode", "text/plain", b""), 405, "PUT is not allowed"),
        (get(v, "/api/decode"), 405, "GET is not allowed"),
        (get(v, "/api/nothing"), 404, "no such endpoint"),
        (get(v, "/api/interpolate?from=0"), 400, "from and to"),
        (get(v, "/api/interpolate?from=0&to=10000"), 400, "out of range"),
        (get(v, "/api/test-image?index=%zz"), 400, ""),
    ];
    for (r, status, needle) in cases {
        assert_eq!(r.status, status, "{needle}: {}", String::from_utf8_lossy(&r.body));
        let msg = error_of(&r);
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
    }
    // Garbage that is not HTTP at all, and a connection dropped mid-request.
    let mut conn = Conn::open(v);
    conn.send_raw(b"\x00\x01\x02 not http\r\n\r\n");
    drop(conn);
    let mut half = Conn::open(v);
    half.send_raw(b"POST /api/decode HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"z\":");
    drop(half);
    assert_eq!(get(v, "/api/model").status, 200, "still serving");
}

#[test]
fn many_concurrent_clients_get_no_errors() {
    let (v, _) = servers();
    // 32 clients × 150 decodes on keep-alive connections, bounded by a deadline.
    let (clients, per_client) = (32, 150);
    let deadline = Instant::now() + Duration::from_secs(60);
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            std::thread::spawn(move || {
                let mut conn = Conn::open(v);
                let mut latencies = Vec::with_capacity(per_client);
                for k in 0..per_client {
                    if Instant::now() > deadline {
                        break;
                    }
                    let z: Vec<f32> = (0..20).map(|j| ((i * 31 + k * 7 + j) % 13) as f32 / 4.0 - 1.5).collect();
                    let body = json!({ "z": z }).to_string();
                    let t = Instant::now();
                    let r = conn.request("POST", "/api/decode", "application/json", body.as_bytes());
                    latencies.push(t.elapsed());
                    assert_eq!(r.status, 200);
                    assert_eq!(png_dims(&r.body), (28, 28));
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles.into_iter().flat_map(|h| h.join().expect("a client failed")).collect();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(all.len(), clients * per_client, "every request answered before the deadline");
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    eprintln!(
        "load: {} requests in {secs:.2} s = {:.0}/s, p50 {:?}, p99 {p99:?} (debug or release build, shared cores)",
        all.len(),
        all.len() as f64 / secs,
        all[all.len() / 2]
    );
}

/// A burst of 200 concurrent 1 MB picture uploads: each is answered 200, or 503 with
/// `Retry-After` when it waited too long for a slot; none fails otherwise, and `/api/model`
/// keeps answering meanwhile (heavy work runs on the blocking pool behind a few slots). Its
/// latency and the process's peak memory are printed, not asserted (BENCHMARKS.md records
/// them).
#[test]
fn a_burst_of_uploads_waits_its_turn() {
    let (v, _) = servers();
    // 1000×1000 grey noise: a PNG of about 1 MB that does not compress.
    let mut rng = vae::core::Rng::new(3);
    let pixels: Vec<u8> = (0..1000 * 1000).map(|_| rng.below(256) as u8).collect();
    let mut png = Vec::new();
    image::GrayImage::from_raw(1000, 1000, pixels)
        .unwrap()
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert!(png.len() > 900_000 && png.len() <= vae::serve::MAX_BODY, "{} bytes", png.len());
    let png = std::sync::Arc::new(png);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let monitor = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut conn = Conn::open(v);
            let mut latencies = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = conn.request("GET", "/api/model", "", b"");
                latencies.push(t.elapsed());
                assert_eq!(r.status, 200, "/api/model during the burst");
                std::thread::sleep(Duration::from_millis(5));
            }
            latencies
        })
    };
    let uploads: Vec<_> = (0..200)
        .map(|_| {
            let png = std::sync::Arc::clone(&png);
            std::thread::spawn(move || {
                let r = request(v, "POST", "/api/encode", "image/png", &png);
                match r.status {
                    200 => assert_eq!(r.json()["input"].as_array().unwrap().len(), 784),
                    503 => assert_eq!(r.header("retry-after"), Some("1"), "{}", error_of(&r)),
                    s => panic!("status {s}: {}", error_of(&r)),
                }
                r.status
            })
        })
        .collect();
    let statuses: Vec<u16> = uploads.into_iter().map(|h| h.join().expect("an upload failed")).collect();
    // A flat 2000×1000 picture is a small file but 2 million pixels: refused before decoding.
    let mut flat = Vec::new();
    image::GrayImage::new(2000, 1000).write_to(&mut std::io::Cursor::new(&mut flat), image::ImageFormat::Png).unwrap();
    let r = request(v, "POST", "/api/encode", "image/png", &flat);
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("2000x1000; at most 1048576 pixels"), "{}", error_of(&r));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut latencies = monitor.join().expect("the monitor failed");
    latencies.sort();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert!(ok > 0, "no upload was served");
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM")).map(str::to_string))
        .unwrap_or_default();
    eprintln!(
        "burst: {ok} of 200 uploads served, {} told to retry; /api/model p50 {:?}, p99 {:?} over {} requests; {hwm}",
        200 - ok,
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies.len()
    );
}

/// `vae serve --precision bf16` as a user starts it: every request's products run in bf16
/// (the codes differ from an f32 server's by bf16's rounding, no more), and without the
/// instruction (`VAE_SIMD=fp32`) it says so once and serves exactly the f32 figures.
#[test]
fn serve_in_bf16_runs_the_requests_in_bf16() {
    use std::io::BufRead;
    let (_, _, tmp) = shared();
    let run = tmp.path().join("vae");
    let start = |precision: &str, simd: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vae"));
        cmd.args(["serve"]).arg(&run).args(["--port", "0", "--precision", precision]);
        if let Some(s) = simd {
            cmd.env("VAE_SIMD", s);
        }
        let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).and_then(|r| r.trim().split('/').next()).expect(&line).to_string();
        (child, addr.parse::<SocketAddr>().unwrap())
    };
    let digit: Vec<f32> = (0..784).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
    let mut codes = Vec::new();
    let mut children = Vec::new();
    for (precision, simd) in [("f32", None), ("bf16", None), ("bf16", Some("fp32"))] {
        let (child, addr) = start(precision, simd);
        let e = post_json(addr, "/api/encode", &json!({ "pixels": digit })).json();
        let mu: Vec<f64> = e["mu"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        codes.push(mu);
        children.push(child);
    }
    for mut c in children.drain(..2) {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let mut fallback = children.pop().unwrap();
    fallback.kill().unwrap();
    let out = fallback.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("bf16 needs AVX512_BF16") && stderr.contains("serving in f32"), "{stderr}");
    assert_eq!(codes[2], codes[0], "the fallback serves the f32 figures");
    let scale = codes[0].iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let diff = codes[0].iter().zip(&codes[1]).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 0.05 * scale, "bf16 codes differ by {diff} (scale {scale})");
    if vae::core::bf16::hardware() {
        assert!(diff > 0.0, "the bf16 server computed in f32");
    }
}
