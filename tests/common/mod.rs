//! Helpers shared by the command-line tests.
#![allow(dead_code)]

pub mod reference;

use assert_cmd::Command;
use std::path::Path;

/// The binary, run in an empty directory of its own: what the repository's working
/// directory holds (a `runs/classifier-mnist` a user trained, say) must not change a test;
/// and with the folder cache under the target directory, never the user's.
pub fn vae() -> Command {
    let mut c = Command::cargo_bin("vae").unwrap();
    c.current_dir(scratch_cwd()).env("VAE_CACHE_DIR", concat!(env!("CARGO_TARGET_TMPDIR"), "/vae-cache"));
    c
}

/// An empty directory for this test process, made once.
pub fn scratch_cwd() -> &'static Path {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("vae-test-cwd-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

/// Quick training flags: 512 images, batches of 64, 200 test images.
pub const SMALL: [&str; 6] = ["--train-limit", "512", "--test-limit", "200", "--batch-size", "64"];

pub fn train(dir: &Path, extra: &[&str]) -> String {
    let out = vae().args(["train", "--out"]).arg(dir).args(SMALL).args(extra).assert().success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

/// Runs `args`, expects failure with exactly one `Error:` line containing every `needle`.
pub fn fails(args: &[&str], needles: &[&str]) -> String {
    let out = vae().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got {stderr}");
    assert!(lines[0].starts_with("Error:") || lines[0].starts_with("error:"), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: {stderr:?} lacks {n:?}");
    }
    stderr
}

/// Three classes of 16x16 colour pictures: blue, green and red squares of varying size on
/// white, 24 of each, 20 in train/ and 4 in test/.
pub fn colour_folder(dir: &Path) {
    for (c, name) in ["blue", "green", "red"].iter().enumerate() {
        for i in 0..24 {
            let split = if i < 20 { "train" } else { "test" };
            let d = dir.join(split).join(name);
            std::fs::create_dir_all(&d).unwrap();
            let half = 2 + i % 6;
            let colour = [[40, 60, 220], [40, 200, 60], [220, 40, 40]][c];
            let img = image::RgbImage::from_fn(16, 16, |x, y| {
                let inside = (x as i32 - 8).abs() < half && (y as i32 - 8).abs() < half;
                image::Rgb(if inside { colour } else { [255, 255, 255] })
            });
            img.save(d.join(format!("{i:02}.png"))).unwrap();
        }
    }
}

pub fn png_size(path: &Path) -> (u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let info = dec.read_info().unwrap();
    (info.info().width, info.info().height)
}

pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A minimal HTTP/1.1 client over a raw socket, so tests can also send malformed requests.
pub mod http {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;

    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
        }
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_slice(&self.body)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
        }
    }

    /// A keep-alive connection.
    pub struct Conn {
        reader: BufReader<TcpStream>,
    }

    impl Conn {
        pub fn open(addr: SocketAddr) -> Conn {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            s.set_nodelay(true).unwrap();
            Conn { reader: BufReader::new(s) }
        }

        /// Writes `bytes`. A server may answer and close before it has taken all of a large
        /// body (a 413 at the body limit): the write then fails with a broken pipe or a reset,
        /// and what the server answered is still there to read.
        pub fn send_raw(&mut self, bytes: &[u8]) {
            if let Err(e) = self.reader.get_mut().write_all(bytes) {
                use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
                assert!(matches!(e.kind(), BrokenPipe | ConnectionReset), "writing the request: {e}");
            }
        }

        pub fn request(&mut self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Response {
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let mut req = head.into_bytes();
            req.extend_from_slice(body);
            self.send_raw(&req);
            self.read_response()
        }

        pub fn read_response(&mut self) -> Response {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line {line:?}"));
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                self.reader.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .map_or(0, |(_, v)| v.parse().unwrap());
            let mut body = vec![0u8; len];
            self.reader.read_exact(&mut body).unwrap();
            Response { status, headers, body }
        }
    }

    /// One request on a fresh connection.
    pub fn request(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &[u8]) -> Response {
        Conn::open(addr).request(method, path, content_type, body)
    }

    pub fn get(addr: SocketAddr, path: &str) -> Response {
        request(addr, "GET", path, "text/plain", b"")
    }

    pub fn post_json(addr: SocketAddr, path: &str, json: &serde_json::Value) -> Response {
        request(addr, "POST", path, "application/json", json.to_string().as_bytes())
    }
}

/// Starts `vae serve` in-process on a free loopback port; the server lives until the test
/// process exits.
pub fn start_server(run: &Path) -> std::net::SocketAddr {
    start_server_with(run, vae::sampler::SamplerName::Prior)
}

/// [`start_server`] with `--sampler`.
pub fn start_server_with(run: &Path, sampler: vae::sampler::SamplerName) -> std::net::SocketAddr {
    let state = std::sync::Arc::new(vae::serve::AppState::load_with(run, sampler, None).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let limits = vae::serve::Limits::default();
        rt.block_on(vae::serve::serve(state, "127.0.0.1", 0, limits, move |a, _| tx.send(a).unwrap())).unwrap();
    });
    rx.recv().unwrap()
}
