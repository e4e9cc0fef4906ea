//! PNG charts: a labelled 2-D scatter plot (e.g. latent means coloured by digit) and stacked
//! line-chart panels (learning curves).
//!
//! Charts are drawn with `plotters` into an in-memory RGB buffer and encoded with `png`; text uses
//! DejaVu Sans, compiled into the binary (`assets/DejaVuSans.ttf`), so no system font, font-kit or
//! fontconfig is needed at run time. The font is registered with plotters under the family name
//! `"sans-serif"` (plotters' default family) on first use.
//!
//! Non-finite coordinates (NaN, ±inf) are skipped. An axis with no finite value spans [-1, 1]; an
//! axis whose values are all equal is padded around that value, so neither case panics.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

mod captions;
mod curves;
mod scatter;
pub mod text;

pub use captions::{Captions, annotate, caption_rows};
pub use curves::{Curve, curves_png};
pub use scatter::scatter_png;

/// DejaVu Sans, embedded so text renders without any system font (licence: assets/FONT-LICENSE.txt).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
/// Family the embedded font is registered under; plotters' default styles also ask for it.
const FONT: &str = "sans-serif";

/// Width and height of [`scatter_png`] images, in pixels.
pub const SCATTER_SIZE: (u32, u32) = (900, 800);
/// Width of [`curves_png`] images, in pixels.
pub const CURVES_WIDTH: u32 = 1000;
/// Height of one row of panels in [`curves_png`] images, in pixels.
pub const CURVES_ROW_HEIGHT: u32 = 400;
/// A curve with at most this many points gets a marker on each point.
pub const MARKER_MAX_POINTS: usize = 60;

/// matplotlib's "tab10" palette; label `k` (0–9) is drawn in `TAB10[k]`.
const TAB10: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];
/// Colour of scatter points whose label is 10 or more (legend entry "other"). It is darker than
/// tab10's grey (label 7) so the two stay distinguishable.
const OTHER_COLOR: RGBColor = RGBColor(40, 40, 40);

/// Errors while drawing, encoding or saving a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The embedded font could not be parsed (a corrupt `assets/DejaVuSans.ttf` at build time).
    #[error("cannot load the chart font assets/DejaVuSans.ttf compiled into the binary")]
    Font,
    /// `scatter_png` was given a different number of labels than points.
    #[error("scatter plot {title:?}: {points} points but {labels} labels")]
    LabelCount { title: String, points: usize, labels: usize },
    /// plotters failed while drawing.
    #[error("cannot draw chart {chart:?}: {message}")]
    Draw { chart: String, message: String },
    /// The PNG encoder failed.
    #[error("cannot encode chart {chart:?} as PNG: {source}")]
    Encode { chart: String, source: png::EncodingError },
    /// Writing the PNG file failed.
    #[error("cannot write PNG file {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Registers the embedded font with plotters once per process.
fn ensure_font() -> Result<(), PlotError> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok { Ok(()) } else { Err(PlotError::Font) }
}

/// The range spanned by the finite values, widened by `frac` of its span on each side; [-1, 1]
/// when there is no finite value, and a range around the value when all values are (nearly)
/// equal. Values are clamped to ±1e15 and the range is at least 2e-9 wide: plotters' tick
/// placement loops (practically) forever on infinite or extremely narrow ranges.
fn padded_range(values: impl Iterator<Item = f64>, frac: f64) -> (f64, f64) {
    const LIMIT: f64 = 1e15;
    const MIN_HALF_WIDTH: f64 = 1e-9;
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return (-1.0, 1.0);
    }
    let (lo, hi) = (lo.clamp(-LIMIT, LIMIT), hi.clamp(-LIMIT, LIMIT));
    let span = hi - lo;
    if span < 2.0 * MIN_HALF_WIDTH || span <= 1e-12 * lo.abs().max(hi.abs()) {
        let mid = lo / 2.0 + hi / 2.0;
        let pad = if mid == 0.0 { 1.0 } else { (mid.abs() * 0.05).max(MIN_HALF_WIDTH) };
        return (mid - pad, mid + pad);
    }
    (lo - frac * span, hi + frac * span)
}

/// A tick label: short and without float noise such as `0.30000000000000004`.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Draws into a white RGB buffer of `w`×`h` with `draw`, then encodes it as PNG.
fn render(
    chart: &str,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<text::Crisp<'_>, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let draw_err = |message: String| PlotError::Draw { chart: chart.to_string(), message };
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = text::Crisp(BitMapBackend::with_buffer(&mut buf, (w, h))).into_drawing_area();
        draw(&root).map_err(draw_err)?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    let encode_err = |source| PlotError::Encode { chart: chart.to_string(), source };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(encode_err)?;
    writer.write_image_data(&buf).map_err(encode_err)?;
    writer.finish().map_err(encode_err)?;
    Ok(out)
}

/// Converts any plotters error into the message carried by [`PlotError::Draw`].
fn msg<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Axis titles, tick counts, tick labels without float noise, and light grey grid lines: the
/// look every chart shares. `fonts` are the tick-label and axis-title sizes in pixels.
fn style_mesh(
    chart: &mut ChartContext<'_, text::Crisp<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    (x_label, y_label): (&str, &str),
    (x_ticks, y_ticks): (usize, usize),
    (label_size, desc_size): (u32, u32),
) -> Result<(), String> {
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(x_ticks)
        .y_labels(y_ticks)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FONT, label_size))
        .axis_desc_style((FONT, desc_size))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(msg)
}

/// Writes a chart's PNG `bytes` (from [`scatter_png`] or [`curves_png`]) to `path`
/// atomically (see [`crate::checkpoint::write_atomic`]): as they are, or re-encoded as JPEG
/// for a `.jpg`/`.jpeg` name, so the bytes always match the extension.
///
/// # Errors
/// [`PlotError::Write`], naming `path`, if the file cannot be written.
pub fn save_png(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    let jpeg;
    let bytes = if crate::images::is_jpeg(path) {
        let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).expect("our own PNG decodes");
        let rgb = img.to_rgb8();
        let picture = crate::images::Image {
            width: rgb.width() as usize,
            height: rgb.height() as usize,
            channels: 3,
            pixels: rgb.into_raw(),
        };
        jpeg = picture.to_jpeg();
        &jpeg
    } else {
        bytes
    };
    crate::checkpoint::write_atomic(path, bytes).map_err(|source| PlotError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
pub(crate) mod testing {
    /// Decodes a PNG into (width, height, RGB bytes).
    pub fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Counts pixels in columns `x_from..` whose colour passes `pred`.
    pub fn count(img: &(u32, u32, Vec<u8>), x_from: u32, pred: impl Fn(&[u8]) -> bool) -> usize {
        let (w, _, buf) = img;
        buf.chunks(3).enumerate().filter(|(i, px)| *i as u32 % w >= x_from && pred(px)).count()
    }

    /// `n` points from 10 overlapping Gaussian blobs around a circle, label `i * 7 % 10`.
    pub fn blobs(n: usize) -> (Vec<[f32; 2]>, Vec<u8>) {
        let mut state = 12345u64;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let point = |l: u8, r: f64, t: f64| {
            let a = l as f64 * 0.628;
            [(2.0 * a.cos() + 0.6 * r * t.cos()) as f32, (2.0 * a.sin() + 0.6 * r * t.sin()) as f32]
        };
        let draw = |i: usize| ((i * 7 % 10) as u8, (-2.0 * uniform().ln()).sqrt(), std::f64::consts::TAU * uniform());
        (0..n).map(draw).map(|(l, r, t)| (point(l, r, t), l)).unzip()
    }
}
