//! End to end: the page in headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which `.ci/run` installs), driven over the W3C WebDriver protocol. It moves a slider and
//! checks the digit changed, picks labels, draws a digit, and checks the console is clean.
//!
//! Without Chromium the test is skipped, unless `CI` is set, where it fails.
//! A second test serves a colour conv cvae trained on an image folder: the page takes its
//! shape and class names from the model and encodes an uploaded picture.
//! `VAE_SCREENSHOTS=DIR` saves desktop and phone screenshots of the page there.

mod common;

use common::http::request;
use common::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

struct Driver {
    addr: SocketAddr,
    session: String,
    child: Child,
}

impl Driver {
    fn start(profile: &std::path::Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let mut d = Driver { addr, session: String::new(), child };
        let r = d.call("POST", "/session", Some(caps));
        d.session = r["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {r}")).to_string();
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = request(self.addr, method, path, "application/json", body.as_bytes());
        let v: Value = r.json();
        assert!(r.status < 400, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    fn js(&self, script: &str) -> Value {
        self.call("POST", &self.s("/execute/sync"), Some(json!({ "script": script, "args": [] })))
    }

    fn wait_for(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script);
            if !v.is_null() && v != json!(false) {
                return v;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn element(&self, css: &str) -> String {
        let v = self.call("POST", &self.s("/element"), Some(json!({ "using": "css selector", "value": css })));
        v.as_object().unwrap().values().next().unwrap().as_str().unwrap().to_string()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call("POST", &self.s(&format!("/element/{id}/click")), Some(json!({})));
    }

    fn screenshot(&self, path: &std::path::Path) {
        let data = self.call("GET", &self.s("/screenshot"), None);
        std::fs::write(path, base64_decode(data.as_str().unwrap())).unwrap();
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(self.addr, "DELETE", &format!("/session/{}", self.session), "application/json", b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (screenshots only; no padding errors expected from Chromium).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            _ => 63,
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &c)| acc | (val(c) << (18 - 6 * i)));
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}

#[test]
fn the_page_works_in_headless_chromium() {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(DRIVER).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (see .ci/run)");
        eprintln!("skipped: {CHROMIUM} or {DRIVER} not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // VAE_SCREENSHOT_RUN=DIR shows a well-trained run in the screenshots.
    let run = match std::env::var_os("VAE_SCREENSHOT_RUN") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let run = tmp.path().join("cvae");
            train(&run, &["--epochs", "1", "--model", "cvae"]);
            vae()
                .args(["eval"])
                .arg(&run)
                .args(["--k", "2", "--limit", "20", "--generated", "0", "-q"])
                .assert()
                .success();
            run
        }
    };
    let server = start_server(&run);
    let d = Driver::start(&tmp.path().join("profile"));
    let t0 = Instant::now();
    d.call("POST", &d.s("/url"), Some(json!({ "url": format!("http://{server}/") })));
    d.wait_for("the page to be ready", "return document.body.dataset.ready === '1'");
    let ready_ms = t0.elapsed().as_millis();
    let subtitle = d.js("return document.getElementById('subtitle').textContent");
    if run.join("eval.json").exists() {
        assert!(subtitle.as_str().unwrap().contains("NLL"), "the measured NLL is shown: {subtitle}");
    }
    let fcp =
        d.js("const e = performance.getEntriesByName('first-contentful-paint')[0]; return e ? e.startTime : null");

    let digit = "return document.getElementById('decoded').toDataURL()";
    let before = d.js(digit);
    // Move a slider as a user does: focus it and press keys (each press fires `input`).
    let slider = d.element("#slider-0");
    d.call("POST", &d.s(&format!("/element/{slider}/click")), Some(json!({})));
    d.call("POST", &d.s(&format!("/element/{slider}/value")), Some(json!({ "text": "\u{E014}".repeat(40) })));
    d.wait_for("the slider to move", "return parseFloat(document.getElementById('slider-0').value) !== 0");
    let moved = d.wait_for(
        "the digit to be redrawn",
        &format!("const u = document.getElementById('decoded').toDataURL(); return u !== {before} ? u : null"),
    );
    assert_ne!(moved, before);

    // Each panel has its own class picker: the sliders' digit changes with its label; the
    // samples open with one row per class and change with theirs.
    assert!(d.js("return document.getElementById('sample-label-all').classList.contains('on')") == json!(true));
    let samples = d.js("return document.getElementById('samples').src");
    d.click("#label-7");
    d.wait_for("label 7 to be selected", "return document.getElementById('label-7').classList.contains('on')");
    d.wait_for(
        "the digit to change with the label",
        &format!("return document.getElementById('decoded').toDataURL() !== {moved}"),
    );
    d.click("#sample-label-7");
    d.wait_for("new samples", &format!("return document.getElementById('samples').src !== {samples}"));

    // The temperature slider: colder samples, its value shown.
    let samples = d.js("return document.getElementById('samples').src");
    let t = d.element("#temperature");
    d.call("POST", &d.s(&format!("/element/{t}/click")), Some(json!({})));
    d.call("POST", &d.s(&format!("/element/{t}/value")), Some(json!({ "text": "\u{E012}".repeat(30) })));
    d.wait_for(
        "the temperature to read 0.00",
        "return document.getElementById('temperature-value').textContent === '0.00'",
    );
    d.wait_for("colder samples", &format!("return document.getElementById('samples').src !== {samples}"));
    // Back to the prior (temperature 1), as a user would leave it.
    let cold = d.js("return document.getElementById('samples').src");
    d.call("POST", &d.s(&format!("/element/{t}/value")), Some(json!({ "text": "\u{E014}".repeat(20) })));
    d.wait_for(
        "the temperature to read 1.00",
        "return document.getElementById('temperature-value').textContent === '1.00'",
    );
    d.wait_for("samples at temperature 1", &format!("return document.getElementById('samples').src !== {cold}"));

    // Draw a stroke on the pad: the model's reading appears and the sliders move.
    let rect = d.js("document.getElementById('pad').scrollIntoView(); const r = document.getElementById('pad').getBoundingClientRect(); return [Math.round(r.left + r.width / 2), Math.round(r.top + r.height / 2)]");
    let (cx, cy) = (rect[0].as_i64().unwrap(), rect[1].as_i64().unwrap());
    let stroke = json!({ "actions": [{ "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" }, "actions": [
        { "type": "pointerMove", "origin": "viewport", "x": cx, "y": cy - 80, "duration": 0 },
        { "type": "pointerDown", "button": 0 },
        { "type": "pointerMove", "origin": "pointer", "x": 5, "y": 60, "duration": 100 },
        { "type": "pointerMove", "origin": "pointer", "x": 5, "y": 60, "duration": 100 },
        { "type": "pointerUp", "button": 0 },
    ]}]});
    d.call("POST", &d.s("/actions"), Some(stroke));
    d.wait_for("the drawing to be encoded", "return Array.from(document.querySelectorAll('#sliders input')).some(s => parseFloat(s.value) !== 0 && s.id !== 'slider-0')");

    // Frames per second while dragging: 60 slider updates as fast as a user could make them.
    let fps = d.js(
        "const s = document.getElementById('slider-1'); const f0 = window.__vaeFrames; const t0 = performance.now();
         return new Promise(done => { let i = 0; const tick = () => {
           s.value = Math.sin(i / 5) * 2; s.dispatchEvent(new Event('input')); i++;
           if (i < 60) requestAnimationFrame(tick); else setTimeout(() => done(1000 * (window.__vaeFrames - f0) / (performance.now() - t0)), 100); };
           tick(); });",
    );

    // A bad interpolation index: the error shows beside the control, in view, and clears.
    d.js("const f = document.getElementById('from'); f.scrollIntoView(); f.value = 999999; f.dispatchEvent(new Event('change')); return true");
    d.wait_for("the index error", "return document.getElementById('interp-error').textContent.includes('from and to') || document.getElementById('interp-error').textContent.includes('999999')");
    let gap = d.js("return document.getElementById('interp-error').getBoundingClientRect().top - document.getElementById('from').getBoundingClientRect().bottom");
    assert!(gap.as_f64().unwrap() < 80.0, "the error is {gap} px below the control");
    d.js("const f = document.getElementById('from'); f.value = 1; f.dispatchEvent(new Event('change')); return true");
    d.wait_for("the error to clear", "return document.getElementById('interp-error').textContent === ''");

    let errors = d.js("return window.__vaeErrors");
    assert_eq!(errors, json!([]), "page errors");
    let status = d.js("return document.getElementById('status').textContent");
    assert_eq!(status, json!(""), "the page reported an error");
    // Chromedriver's browser log (console.error, failed loads): no SEVERE entries.
    let log = request(d.addr, "POST", &d.s("/se/log"), "application/json", br#"{"type":"browser"}"#);
    if log.status == 200 {
        let entries = log.json()["value"].clone();
        // The deliberately bad interpolation request above is the one expected failure.
        let expected = |e: &&Value| e["message"].as_str().unwrap_or_default().contains("from=999999");
        let severe: Vec<&Value> = entries
            .as_array()
            .map(|a| a.iter().filter(|e| e["level"] == "SEVERE" && !expected(e)).collect())
            .unwrap_or_default();
        assert!(severe.is_empty(), "console errors: {severe:?}");
    }
    eprintln!("page ready in {ready_ms} ms (first contentful paint {fcp} ms); slider redraws at {fps} frames/s");

    if let Some(dir) = std::env::var_os("VAE_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        d.js("window.scrollTo(0, 0); return true");
        d.call("POST", &d.s("/window/rect"), Some(json!({ "width": 1280, "height": 900 })));
        std::thread::sleep(Duration::from_millis(300));
        d.screenshot(&dir.join("serve-desktop.png"));
        d.call("POST", &d.s("/window/rect"), Some(json!({ "width": 390, "height": 1600 })));
        std::thread::sleep(Duration::from_millis(300));
        d.screenshot(&dir.join("serve-phone.png"));
    }

    // An unconditional model shows no class pickers: their `hidden` wins over the rows'
    // flex layout (issue 22: empty "class" headings).
    let vae_run = tmp.path().join("vae");
    train(&vae_run, &["--epochs", "1", "--fit-sampler", "0"]);
    let server = start_server(&vae_run);
    d.call("POST", &d.s("/url"), Some(json!({ "url": format!("http://{server}/") })));
    d.wait_for("the vae page to be ready", "return document.body.dataset.ready === '1'");
    for id in ["sample-labels", "labels", "pad-labels"] {
        let shown = d.js(&format!("return getComputedStyle(document.getElementById('{id}')).display"));
        assert_eq!(shown, json!("none"), "#{id} on an unconditional model's page");
    }
}

#[test]
fn a_colour_model_takes_its_shape_and_classes_and_encodes_an_upload() {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(DRIVER).exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver (see .ci/run)");
        eprintln!("skipped: {CHROMIUM} or {DRIVER} not installed (apt-get install chromium chromium-driver)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // VAE_SCREENSHOT_COLOUR_RUN=DIR shows a well-trained colour run in the screenshot.
    let run = match std::env::var_os("VAE_SCREENSHOT_COLOUR_RUN") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let (data, run) = (tmp.path().join("squares"), tmp.path().join("run"));
            colour_folder(&data);
            vae()
                .env("VAE_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/vae-cache"))
                .args(["train", "--arch", "conv", "--model", "cvae", "--epochs", "2", "--batch-size", "16", "-q"])
                .args(["--latent-dim", "4", "--data-dir"])
                .arg(&data)
                .arg("--out")
                .arg(&run)
                .assert()
                .success();
            run
        }
    };
    let config: Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let (rows, cols) =
        (config["model"]["image_rows"].as_u64().unwrap(), config["model"]["image_cols"].as_u64().unwrap());
    let server = start_server(&run);
    let d = Driver::start(&tmp.path().join("profile"));
    d.call("POST", &d.s("/url"), Some(json!({ "url": format!("http://{server}/") })));
    d.wait_for("the page to be ready", "return document.body.dataset.ready === '1'");
    // The decoded image has the model's shape, in colour; the pad is hidden, the picker named.
    assert_eq!(d.js("const c = document.getElementById('decoded'); return [c.width, c.height]"), json!([cols, rows]));
    assert_eq!(d.js("return getComputedStyle(document.getElementById('pad-row')).display"), json!("none"));
    let names = d.js("return Array.from(document.querySelectorAll('#labels button')).map(b => b.textContent)");
    assert_eq!(names, config["model"]["class_names"]);
    let sample_names =
        d.js("return Array.from(document.querySelectorAll('#sample-labels button')).map(b => b.textContent)");
    assert_eq!(sample_names[0], "all");
    let subtitle = d.js("return document.getElementById('subtitle').textContent");
    assert!(subtitle.as_str().unwrap().contains(" RGB, "), "{subtitle}");
    // An uploaded picture (a red rectangle, 40x30) is encoded as the pad's class: the sliders move.
    d.click("#pad-label-2");
    d.js("const c = document.createElement('canvas'); c.width = 40; c.height = 30; const x = c.getContext('2d');
         x.fillStyle = '#fff'; x.fillRect(0, 0, 40, 30); x.fillStyle = '#d22'; x.fillRect(10, 5, 20, 20);
         c.toBlob(b => window.__vaeEncodePicture(b, 'image/png'), 'image/png'); return true;");
    d.wait_for(
        "the upload to be encoded",
        "return Array.from(document.querySelectorAll('#sliders input')).some(s => parseFloat(s.value) !== 0)",
    );
    let seen = d.js("const c = document.getElementById('seen'); return [c.width, c.height]");
    assert_eq!(seen, json!([cols, rows]), "the model's reading is shown at its shape");
    assert_eq!(d.js("return window.__vaeErrors"), json!([]), "page errors");
    assert_eq!(d.js("return document.getElementById('status').textContent"), json!(""));
    if let Some(dir) = std::env::var_os("VAE_SCREENSHOTS") {
        d.js("window.scrollTo(0, 0); return true");
        d.call("POST", &d.s("/window/rect"), Some(json!({ "width": 1280, "height": 900 })));
        std::thread::sleep(Duration::from_millis(300));
        d.screenshot(&std::path::PathBuf::from(dir).join("serve-colour.png"));
    }
}
