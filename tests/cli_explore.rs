//! The picture commands as a user runs them: sizes of what they write, and clear errors.

mod common;

use common::*;
use std::path::Path;

fn out_png(args: &[&str], run: &Path, out: &Path) -> (u32, u32) {
    vae().args([args[0]]).arg(run).args(&args[1..]).arg("-o").arg(out).assert().success();
    png_size(out)
}

/// Height of one caption strip (a title, column labels or a footer line).
const STRIP: u32 = 23;
/// The second line of column labels too wide for their cells ("input", "output" under
/// 28-pixel cells), staggered below the first.
const STAGGERED: u32 = 16;

/// Checks a captioned grid: the grid of `grid` pixels plus `strips` lines of text above and
/// below; row labels and a long title may only widen it.
fn captioned(size: (u32, u32), grid: (u32, u32), strips: u32) {
    assert_eq!(size.1, grid.1 + strips * STRIP, "height of {size:?} for a {grid:?} grid and {strips} strips");
    assert!(size.0 >= grid.0 && size.0 < grid.0 + 700, "width of {size:?} for a {grid:?} grid");
}

/// A 40x30 RGB picture of a dark diagonal stroke on white.
fn write_stroke_png(path: &Path) {
    let (w, h) = (40u32, 30u32);
    let mut data = Vec::new();
    for y in 0..h {
        for x in 0..w {
            let ink = (x as i32 - (y as i32 + 5)).abs() < 3;
            data.extend_from_slice(if ink { &[10, 10, 10] } else { &[250, 250, 250] });
        }
    }
    let f = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(f), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(&data).unwrap();
}

#[test]
fn every_picture_has_its_documented_size() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, cvae) = (tmp.path().join("vae"), tmp.path().join("cvae"));
    train(&run, &["--epochs", "1"]);
    train(&cvae, &["--epochs", "1", "--model", "cvae"]);
    let o = tmp.path().join("o.png");
    // 32 pairs, 16 images a row: 16·30+2 by 4·30+2, a title above and in/out below.
    captioned(out_png(&["reconstruct"], &run, &o), (482, 122), 2);
    // 5 pairs fill 10 of the 16 slots: make_grid narrows a single row to its images.
    captioned(out_png(&["reconstruct", "-n", "5"], &run, &o), (302, 32), 2);
    // Paths: a title, "linear"/"spherical" on the left, t below, and what t is.
    // 11 steps by default: t = 0, 0.1, …, 1, the midpoint among them.
    captioned(out_png(&["interpolate", "--from", "0", "--to", "7"], &run, &o), (332, 32), 3);
    captioned(out_png(&["interpolate", "--from", "0", "--to", "7", "--slerp", "--steps", "5"], &run, &o), (152, 62), 3);
    captioned(out_png(&["interpolate", "--from", "3", "--to", "4"], &cvae, &o), (332, 32), 3);
    // Across labels: a title and the class names below.
    captioned(out_png(&["interpolate", "--labels"], &cvae, &o), (302, 32), 2);
    captioned(out_png(&["interpolate", "--labels", "--from", "3"], &cvae, &o), (302, 32), 2);
    // 10 dimensions by 11 steps by default; 3 dims by 5 steps on request; z_d on the left.
    captioned(out_png(&["traverse"], &run, &o), (332, 302), 2);
    captioned(out_png(&["traverse", "--dims", "0,5,19", "--steps", "5", "--image", "2"], &run, &o), (152, 92), 2);
    // The plane's coordinates on both axes, a title and a footer naming them.
    captioned(out_png(&["manifold"], &run, &o), (602, 602), 3);
    captioned(out_png(&["manifold", "-n", "5", "--label", "3"], &cvae, &o), (152, 152), 3);
    assert_eq!(out_png(&["scatter", "--limit", "500"], &run, &o), (900, 800));
    let (w, h) = out_png(&["plot"], &run, &o);
    assert!(w >= 800 && h >= 400, "{w}x{h}");
    // Several runs: one curve per run in each of 4 panels (2 × 2) under a 44-pixel title.
    let out = vae().args(["plot"]).arg(&run).arg(&cvae).arg("-o").arg(&o).assert().success();
    assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains("not comparable"));
    assert_eq!(png_size(&o), (1000, 844));
    // A Gaussian run beside a Bernoulli one: the plot says their losses are not comparable.
    let gaussian = tmp.path().join("gaussian");
    train(&gaussian, &["--epochs", "1", "--likelihood", "gaussian", "--fit-sampler", "0"]);
    let out = vae().args(["plot"]).arg(&run).arg(&gaussian).arg("-o").arg(&o).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("likelihoods differ (bernoulli, gaussian), so their losses are not comparable"),
        "{stderr}"
    );
    // By default beside the runs, named after them: never into the current directory.
    vae().args(["plot"]).arg(&run).arg(&cvae).assert().success();
    assert!(tmp.path().join("compare-vae-vs-cvae.png").is_file());
    assert!(std::fs::read_dir(scratch_cwd()).unwrap().next().is_none(), "plot wrote into the working directory");
    let missing = tmp.path().join("missing");
    fails(&["plot", run.to_str().unwrap(), missing.to_str().unwrap()], &["missing is not a run directory"]);
    // Defaults land in the run directory; `vae train` already wrote the curves.
    assert!(run.join("curves.png").is_file());
    vae().args(["manifold"]).arg(&run).assert().success();
    assert!(run.join("manifold.png").is_file());
}

#[test]
fn png_inputs_are_converted_like_mnist() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "1"]);
    let pics = tmp.path().join("pics");
    std::fs::create_dir(&pics).unwrap();
    write_stroke_png(&pics.join("a.png"));
    write_stroke_png(&pics.join("b.png"));
    std::fs::write(pics.join("notes.txt"), "ignored").unwrap();
    let o = tmp.path().join("o.png");
    // Two pictures → one row each: the file's name, the picture and its reconstruction.
    captioned(out_png(&["reconstruct", "--input", pics.to_str().unwrap()], &run, &o), (62, 62 + STAGGERED), 2);
    let a = pics.join("a.png");
    // Files as well as folders, several at once; the default name says which.
    let b = pics.join("b.png");
    vae().args(["reconstruct"]).arg(&run).arg("--input").arg(&a).arg(&b).assert().success();
    captioned(png_size(&run.join("reconstructions-inputs.png")), (62, 62 + STAGGERED), 2);
    vae().args(["reconstruct"]).arg(&run).arg("--input").arg(&a).assert().success();
    captioned(png_size(&run.join("reconstructions-a.png")), (62, 32 + STAGGERED), 2);
    captioned(out_png(&["interpolate", "--from", a.to_str().unwrap(), "--to", "5"], &run, &o), (332, 32), 3);
}

#[test]
fn bad_requests_get_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, cvae, tiny) = (tmp.path().join("vae"), tmp.path().join("cvae"), tmp.path().join("tiny"));
    train(&run, &["--epochs", "1"]);
    train(&cvae, &["--epochs", "1", "--model", "cvae"]);
    train(&tiny, &["--epochs", "1", "--latent-dim", "1"]);
    let (r, c, t) = (run.to_str().unwrap(), cvae.to_str().unwrap(), tiny.to_str().unwrap());
    fails(&["interpolate", r, "--from", "0", "--to", "10000"], &["--to 10000 is not a test-set index", "0..=9999"]);
    fails(&["interpolate", r, "--from", "0"], &["--from A and --to B"]);
    fails(&["interpolate", r, "--labels"], &["--labels needs a conditional model"]);
    fails(&["traverse", r, "--dims", "18..25"], &["dimension 20 does not exist"]);
    fails(&["traverse", r, "--dims", "a-b"], &["--dims"]);
    fails(&["traverse", r, "--range", "-1"], &["--range", "expected a number greater than 0"]);
    fails(&["manifold", t], &["at least 2 dimensions"]);
    fails(&["manifold", r, "--label", "3"], &["--label needs a conditional model"]);
    let junk = tmp.path().join("junk.png");
    std::fs::write(&junk, b"not an image").unwrap();
    fails(&["interpolate", r, "--from", junk.to_str().unwrap(), "--to", "1"], &["junk.png is not a readable PNG"]);
    fails(&["interpolate", r, "--from", "/no/such.png", "--to", "1"], &["cannot read /no/such.png"]);
    let pic = tmp.path().join("pic.png");
    write_stroke_png(&pic);
    fails(&["interpolate", c, "--from", pic.to_str().unwrap(), "--to", "1"], &["pass --label C"]);
    fails(&["reconstruct", c, "--input", pic.to_str().unwrap()], &["cannot tell the class of", "pic.png"]);
    // A cvae reads each picture's class from its name (or its folder's).
    let seven = tmp.path().join("7-mine.png");
    std::fs::copy(&pic, &seven).unwrap();
    vae().args(["reconstruct", c, "--input"]).arg(&seven).arg(&pic).args(["--label", "3"]).assert().success();
    vae().args(["reconstruct", c, "--input"]).arg(&seven).assert().success();
    assert!(cvae.join("reconstructions-7-mine.png").is_file());
    fails(&["sample", c, "--label", "ten"], &["--label \"ten\" is not a class", "its classes are 0, 1, 2"]);
    fails(&["manifold", c, "--label", "10"], &["--label \"10\" is not a class"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(&["reconstruct", r, "--input", empty.to_str().unwrap()], &["holds no pictures (PNG, JPEG"]);
    fails(&["reconstruct", r, "-n", "0"], &["0 is not in 1..=10000"]);
    fails(&["sample", r, "-o", "x.gif"], &["samples are written as .png, .jpg or .npy"]);
    fails(&["traverse", r, "-o", "x.bmp"], &["end the name in .png or .jpg", "or .gif for an animation"]);
    fails(&["traverse", r, "--gif", "-o", "x.png"], &["--gif writes an animation: end -o in .gif"]);
    fails(&["scatter", empty.to_str().unwrap()], &["not a run directory"]);
}

/// A `.npy` file's header text and data bytes (format 1.0: magic, version, u16 header length).
fn npy_parts(bytes: &[u8]) -> (String, &[u8]) {
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    (String::from_utf8_lossy(&bytes[10..10 + len]).into_owned(), &bytes[10 + len..])
}

#[test]
fn runs_are_listed_and_codes_and_samples_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("first"), tmp.path().join("second"));
    train(&a, &["--epochs", "1", "--hidden-layers", "2", "--objective", "iwae", "--k", "2"]);
    let weighted = ["--beta", "2", "--kl-warmup", "3", "--binarize", "dynamic"];
    train(&b, &[&["--epochs", "2", "--model", "cvae", "--latent-dim", "3"][..], &weighted].concat());
    std::fs::create_dir(tmp.path().join("not-a-run")).unwrap();
    let out = vae().args(["runs"]).arg(tmp.path()).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two runs: {text}");
    assert!(lines[1].starts_with("second") && lines[1].contains("2/2"), "{text}");
    assert!(lines[1].contains("cvae mlp 400, z3, β 2, warm-up 3  "), "{text}");
    assert!(lines[1].contains("MNIST (embedded), dynamic binarized"), "{text}");
    assert!(lines[2].starts_with("first") && lines[2].contains("1/1"), "newest first: {text}");
    assert!(lines[2].contains("vae mlp 400x2, z20, iwae k=2"), "{text}");

    // Codes: CSV with labels, μ and log σ²; NPY with μ, float32 [images, latent].
    vae().args(["encode"]).arg(&b).args(["--limit", "5"]).assert().success();
    let csv = std::fs::read_to_string(b.join("latents-test.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "index,label,mu_0,mu_1,mu_2,logvar_0,logvar_1,logvar_2");
    assert_eq!(rows.len(), 6);
    // --limit 5: a seeded sample across the classes, each row naming its test image's index.
    let test_labels = vae::data::Dataset::load(&vae::data::Source::Mnist).unwrap().test.labels;
    let mut seen = std::collections::HashSet::new();
    for row in &rows[1..] {
        let mut f = row.split(',');
        let (i, label): (usize, &str) = (f.next().unwrap().parse().unwrap(), f.next().unwrap());
        assert_eq!(label, test_labels[i].to_string(), "row {row}: test image {i}'s label");
        seen.insert(test_labels[i]);
    }
    assert_eq!(seen.len(), 5, "five images of five classes: {csv}");
    let npy = tmp.path().join("z.npy");
    vae().args(["encode"]).arg(&b).args(["--limit", "5", "-o"]).arg(&npy).assert().success();
    let bytes = std::fs::read(&npy).unwrap();
    let (header, data) = npy_parts(&bytes);
    assert!(header.contains("'shape': (5, 3)"), "{header}");
    assert_eq!(data.len(), 5 * 3 * 4);
    fails(&["encode", b.to_str().unwrap(), "-o", "z.txt"], &["written as .csv, .npy or .npz"]);
    // Samples' values for NumPy: [N, channels, height, width] in [0, 1].
    let s = tmp.path().join("s.npy");
    vae().args(["sample"]).arg(&a).args(["-n", "2", "-o"]).arg(&s).assert().success();
    let bytes = std::fs::read(&s).unwrap();
    let (header, data) = npy_parts(&bytes);
    assert!(header.contains("'shape': (2, 1, 28, 28)"), "{header}");
    assert_eq!(data.len(), 2 * 784 * 4);
    let values: Vec<f32> = data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(values.iter().any(|&v| v > 0.0 && v < 1.0), "means are grey levels");
    // --sample-pixels: the Bernoulli's draws are binary pixels.
    vae().args(["sample"]).arg(&a).args(["-n", "2", "--sample-pixels", "-o"]).arg(&s).assert().success();
    let bytes = std::fs::read(&s).unwrap();
    let values: Vec<f32> = npy_parts(&bytes).1.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    assert!(values.iter().all(|&v| v == 0.0 || v == 1.0) && values.contains(&1.0));
    // Flags that would do nothing are refused.
    fails(&["train", "--model", "ae", "--beta", "2"], &["--beta weights the KL term", "ae has none"]);
    fails(&["train", "--model", "ae", "--kl-warmup", "5"], &["--kl-warmup weights the KL term", "ae has none"]);
    fails(&["bench", "--k", "7"], &["--k sets the samples of --objective iwae"]);
    let ae = tmp.path().join("ae");
    train(&ae, &["--epochs", "1", "--model", "ae"]);
    fails(&["sample", ae.to_str().unwrap()], &["no prior to sample from"]);
    fails(
        &["serve", a.to_str().unwrap(), "--host", "no.such.host.invalid", "--port", "0"],
        &["--host no.such.host.invalid"],
    );
    fails(&["train", "--epochs", "0"], &["0 is not in 1..=100000"]);
}
