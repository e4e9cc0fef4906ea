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
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

/// DejaVu Sans, embedded so text renders without any system font (licence: assets/FONT-LICENSE.txt).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
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

/// One named line of a [`curves_png`] panel: `(x, y)` points, drawn in the given order.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend entry, e.g. `"train"`.
    pub name: String,
    /// Points `(x, y)`; those with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
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
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<Vec<u8>, PlotError> {
    ensure_font()?;
    let draw_err = |message: String| PlotError::Draw { chart: chart.to_string(), message };
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
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

/// A [`SCATTER_SIZE`] (900×800) PNG scatter plot of 2-D `points`, point `i` drawn as a small,
/// semi-transparent filled circle in the colour of `labels[i]` in matplotlib's "tab10" palette,
/// in input order (so shuffled input mixes the classes fairly). Labels of 10 or more are not an
/// error: they are drawn in a dark grey and get an extra legend entry "other". The legend
/// ("0".."9") sits in a strip right of the axes, so it never covers points. Dots are more
/// transparent above 2,000 points and smaller above 20,000. Points with a non-finite coordinate
/// are skipped; with no finite point the axes span [-1, 1]. Use [`save_png`] to write the result.
///
/// # Errors
/// [`PlotError::LabelCount`] if `labels.len() != points.len()`; drawing or encoding errors.
pub fn scatter_png(
    points: &[[f32; 2]],
    labels: &[u8],
    title: &str,
    x_label: &str,
    y_label: &str,
) -> Result<Vec<u8>, PlotError> {
    if points.len() != labels.len() {
        return Err(PlotError::LabelCount { title: title.to_string(), points: points.len(), labels: labels.len() });
    }
    let finite = |p: &&[f32; 2]| p[0].is_finite() && p[1].is_finite();
    let (x0, x1) = padded_range(points.iter().filter(finite).map(|p| p[0] as f64), 0.03);
    let (y0, y1) = padded_range(points.iter().filter(finite).map(|p| p[1] as f64), 0.03);
    let has_other = labels.iter().any(|&l| l >= 10);
    let color = |l: u8| TAB10.get(l as usize).copied().unwrap_or(OTHER_COLOR);
    // Fewer, more opaque dots stay visible; many dots need transparency to show density.
    let alpha = if points.len() > 2000 { 0.45 } else { 0.8 };
    let radius = if points.len() > 20_000 { 1 } else { 2 };

    render(title, SCATTER_SIZE, |root| {
        root.fill(&WHITE).map_err(msg)?;
        let (plot_area, legend_area) = root.split_horizontally(SCATTER_SIZE.0 - 90);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, (FONT, 24))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(msg)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(msg)?;
        let dots = points
            .iter()
            .zip(labels)
            .filter(|(p, _)| finite(p))
            .map(|(p, &l)| Circle::new((p[0] as f64, p[1] as f64), radius, color(l).mix(alpha).filled()));
        chart.draw_series(dots).map_err(msg)?;

        // Legend: one opaque dot and label per class, top of the right-hand strip.
        let entries = (0..10u8).map(|l| (l.to_string(), TAB10[l as usize]));
        let entries = entries.chain(has_other.then(|| ("other".to_string(), OTHER_COLOR)));
        legend_area.draw_text("label", &(FONT, 17).into_text_style(&legend_area), (8, 60)).map_err(msg)?;
        for (i, (name, c)) in entries.enumerate() {
            let y = 95 + 26 * i as i32;
            legend_area.draw(&Circle::new((16, y), 6, c.filled())).map_err(msg)?;
            let style = (FONT, 16).into_text_style(&legend_area).pos(Pos::new(HPos::Left, VPos::Center));
            legend_area.draw_text(&name, &style, (30, y)).map_err(msg)?;
        }
        Ok(())
    })
}

/// A PNG of line-chart panels, one per `(panel title, y-axis label, curves)` entry of `panels`:
/// stacked vertically when there are 1 or 2 panels, otherwise in a grid of 2 columns filled row
/// by row. The image is [`CURVES_WIDTH`] (1000) pixels wide and [`CURVES_ROW_HEIGHT`] (400)
/// pixels high per row of panels (e.g. 2 panels: 1000×800; 3 or 4 panels: 1000×800; 5: 1000×1200;
/// no panel: one empty 1000×400 row). Each panel has its own y range (padded 5%), an x axis
/// labelled `x_label`, and a legend in the corner where it hides the least of the curves (upper
/// right unless another corner is emptier); the `i`-th curve of a panel is drawn in colour
/// `i % 10` of matplotlib's "tab10" palette, with point markers if it has at most
/// [`MARKER_MAX_POINTS`] points. Use [`save_png`] to write the result to a file.
/// Points with a non-finite coordinate are skipped; a panel with no finite point spans [-1, 1].
///
/// # Errors
/// Drawing or encoding errors.
pub fn curves_png(panels: &[(String, String, Vec<Curve>)], x_label: &str) -> Result<Vec<u8>, PlotError> {
    let cols = if panels.len() > 2 { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (CURVES_WIDTH, CURVES_ROW_HEIGHT * rows as u32);
    let name = panels.first().map_or("learning curves", |p| p.0.as_str());
    render(name, size, |root| {
        root.fill(&WHITE).map_err(msg)?;
        let areas = root.split_evenly((rows, cols));
        for ((title, y_label, curves), area) in panels.iter().zip(&areas) {
            draw_panel(area, title, y_label, curves, x_label, cols)?;
        }
        Ok(())
    })
}

/// The corner of a panel whose legend would cover the least of the curves (upper right on ties).
fn legend_corner(curves: &[Curve], (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> SeriesLabelPosition {
    // Sample along each polyline, so a long segment crossing a corner counts too.
    let mut samples = Vec::new();
    for c in curves {
        let pts: Vec<_> = c.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).collect();
        samples.extend(pts.first().map(|&&p| p));
        for w in pts.windows(2) {
            let ((ax, ay), (bx, by)) = (*w[0], *w[1]);
            samples.extend((1..=8).map(|k| (ax + (bx - ax) * k as f64 / 8.0, ay + (by - ay) * k as f64 / 8.0)));
        }
    }
    let covered = |right: bool, upper: bool| {
        let in_corner = |&(x, y): &(f64, f64)| {
            let (fx, fy) = ((x - x0) / (x1 - x0), (y - y0) / (y1 - y0));
            (if right { fx > 0.6 } else { fx < 0.4 }) && (if upper { fy > 0.7 } else { fy < 0.3 })
        };
        samples.iter().filter(|p| in_corner(p)).count()
    };
    use SeriesLabelPosition::*;
    [(true, true, UpperRight), (true, false, LowerRight), (false, true, UpperLeft), (false, false, LowerLeft)]
        .into_iter()
        .min_by_key(|&(right, upper, _)| covered(right, upper))
        .map_or(UpperRight, |c| c.2)
}

/// Draws one panel of [`curves_png`] on `area`.
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    y_label: &str,
    curves: &[Curve],
    x_label: &str,
    cols: usize,
) -> Result<(), String> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all = || curves.iter().flat_map(|c| c.points.iter().filter(finite));
    let (x0, x1) = padded_range(all().map(|p| p.0), 0.02);
    let (y0, y1) = padded_range(all().map(|p| p.1), 0.05);
    // Integer x values (epochs) get integer ticks, at most one per value.
    let int_x = all().all(|p| p.0.fract() == 0.0);
    let x_ticks = if int_x && x1 - x0 >= 1.0 { ((x1 - x0).floor().min(100.0) as usize + 1).clamp(2, 10) } else { 10 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(10)
        .margin_right(20)
        .x_label_area_size(45)
        .y_label_area_size(if cols == 1 { 80 } else { 75 })
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(msg)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_labels(x_ticks)
        .y_labels(8)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(msg)?;
    for (i, curve) in curves.iter().enumerate() {
        let color = TAB10[i % TAB10.len()];
        let pts: Vec<(f64, f64)> = curve.points.iter().filter(finite).copied().collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(msg)?
            .label(curve.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2)));
        if pts.len() <= MARKER_MAX_POINTS {
            let markers = pts.iter().map(|&p| Circle::new(p, 3, color.filled()));
            chart.draw_series(markers).map_err(msg)?;
        }
    }
    if !curves.is_empty() {
        chart
            .configure_series_labels()
            .position(legend_corner(curves, (x0, x1), (y0, y1)))
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(msg)?;
    }
    Ok(())
}

/// Writes PNG `bytes` (from [`scatter_png`] or [`curves_png`]) to `path` atomically, through a
/// temporary file in the same directory (see [`crate::checkpoint::write_atomic`]).
///
/// # Errors
/// [`PlotError::Write`], naming `path`, if the file cannot be written.
pub fn save_png(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    crate::checkpoint::write_atomic(path, bytes).map_err(|source| PlotError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG into (width, height, RGB bytes).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// Counts pixels in columns `x_from..` whose colour passes `pred`.
    fn count(img: &(u32, u32, Vec<u8>), x_from: u32, pred: impl Fn(&[u8]) -> bool) -> usize {
        let (w, _, buf) = img;
        buf.chunks(3).enumerate().filter(|(i, px)| *i as u32 % w >= x_from && pred(px)).count()
    }

    /// `n` points from 10 overlapping Gaussian blobs around a circle, label `i * 7 % 10`.
    fn blobs(n: usize) -> (Vec<[f32; 2]>, Vec<u8>) {
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

    #[test]
    fn scatter_has_size_points_and_text() {
        let (points, labels) = blobs(2000);
        let img = decode(&scatter_png(&points, &labels, "Latent means", "z[0]", "z[1]").unwrap());
        assert_eq!((img.0, img.1), SCATTER_SIZE);
        // Points: pixels of a single dot blended over white (alpha 0.8, tolerance for overlaps).
        let blended = |c: RGBColor, px: &[u8]| {
            let want = [c.0, c.1, c.2].map(|v| 0.8 * v as f64 + 0.2 * 255.0);
            px.iter().zip(want).all(|(&p, w)| (p as f64 - w).abs() <= 3.0)
        };
        let drawn = TAB10.iter().filter(|&&c| count(&img, 0, |px| blended(c, px)) >= 50).count();
        assert!(drawn >= 8, "only {drawn} palette colours found among the points");
        // Text: the legend strip (right of x = 810) has dark glyph pixels.
        let dark = count(&img, SCATTER_SIZE.0 - 90, |px| px.iter().all(|&v| v < 90));
        assert!(dark > 200, "legend text not rendered ({dark} dark pixels)");
    }

    #[test]
    fn scatter_edge_cases_do_not_panic() {
        let cases: Vec<(Vec<[f32; 2]>, Vec<u8>)> = vec![
            (vec![], vec![]),
            (vec![[1.0, 2.0]], vec![3]),
            (vec![[5.0, 5.0]; 4], vec![0, 1, 2, 3]),
            (vec![[f32::NAN, 0.0], [f32::INFINITY, 1.0], [0.0, 1.0], [1.0, 0.0]], vec![0, 1, 12, 200]),
            (vec![[f32::NAN, f32::NAN]], vec![0]),
            (vec![[-1e30, 0.0], [1e30, 1e-30]], vec![4, 5]),
            (vec![[f32::MAX, f32::MIN_POSITIVE], [f32::MIN, 0.0], [1e-38, -1e-38]], vec![1, 2, 3]),
        ];
        for (points, labels) in cases {
            let img = decode(&scatter_png(&points, &labels, "t", "x", "y").unwrap());
            assert_eq!((img.0, img.1), SCATTER_SIZE);
        }
        let err = scatter_png(&[[0.0, 0.0]], &[], "t", "x", "y").unwrap_err();
        assert!(matches!(err, PlotError::LabelCount { points: 1, labels: 0, .. }), "{err}");
    }

    fn curve(name: &str, points: Vec<(f64, f64)>) -> Curve {
        Curve { name: name.to_string(), points }
    }

    fn learning_curves(epochs: usize) -> Vec<(String, String, Vec<Curve>)> {
        let loss = |e: f64, off: f64| 100.0 + off + 450.0 / (e + 0.5);
        let train = (1..=epochs).map(|e| (e as f64, loss(e as f64, 0.0))).collect();
        let test = (1..=epochs).map(|e| (e as f64, loss(e as f64, 4.0))).collect();
        let kl = (1..=epochs).map(|e| (e as f64, 25.0 - 10.0 / e as f64)).collect();
        vec![
            ("Loss per example".into(), "nats".into(), vec![curve("train", train), curve("test", test)]),
            ("KL".into(), "nats".into(), vec![curve("train", kl)]),
        ]
    }

    #[test]
    fn curves_sizes() {
        let panels = learning_curves(20);
        for (n, rows) in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2), (5, 3)] {
            let many: Vec<_> = panels.iter().cycle().take(n).cloned().collect();
            let img = decode(&curves_png(&many, "epoch").unwrap());
            assert_eq!((img.0, img.1), (CURVES_WIDTH, CURVES_ROW_HEIGHT * rows), "{n} panels");
            if n > 0 {
                assert!(count(&img, 0, |px| px == [31, 119, 180]) > 100, "curve not drawn");
                assert!(count(&img, 0, |px| px.iter().all(|&v| v < 90)) > 500, "no text");
            }
        }
    }

    #[test]
    fn curves_edge_cases_do_not_panic() {
        let nan = f64::NAN;
        let cases = [
            vec![],
            vec![curve("empty", vec![])],
            vec![curve("one", vec![(1.0, 5.0)])],
            vec![curve("flat", vec![(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)])],
            vec![curve("nan", vec![(1.0, nan), (nan, 1.0), (2.0, f64::INFINITY), (3.0, 1.0)])],
            vec![curve("all nan", vec![(nan, nan)]), curve("big", vec![(0.0, 1e300), (1e-300, -1e300)])],
            vec![curve("huge", vec![(f64::MIN, f64::MAX), (f64::MAX, f64::MIN)])],
            vec![curve("tiny", vec![(0.0, 1e-300), (1.0, 1e-300)]), curve("t2", vec![(0.0, 0.0), (1e-300, 1e-30)])],
            (0..12).map(|i| curve(&format!("c{i}"), vec![(0.0, i as f64), (0.5, 1.0)])).collect(),
        ];
        for curves in cases {
            let panels = vec![("t".to_string(), "y".to_string(), curves)];
            let img = decode(&curves_png(&panels, "x").unwrap());
            assert_eq!((img.0, img.1), (CURVES_WIDTH, CURVES_ROW_HEIGHT));
        }
    }

    #[test]
    fn save_png_writes_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = curves_png(&learning_curves(3), "epoch").unwrap();
        let path = dir.path().join("curves.png");
        save_png(&path, &bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let bad = dir.path().join("missing-dir").join("x.png");
        let err = save_png(&bad, &bytes).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }

    /// Renders sample charts for a visual check: `VAE_PLOT_SAMPLES=/tmp cargo test --lib plot`.
    #[test]
    fn render_samples_when_asked() {
        let Some(dir) = std::env::var_os("VAE_PLOT_SAMPLES") else { return };
        let dir = PathBuf::from(dir);
        let (points, labels) = blobs(10_000);
        let scatter = scatter_png(&points, &labels, "Latent means (test set)", "z[0]", "z[1]");
        save_png(&dir.join("plot-scatter.png"), &scatter.unwrap()).unwrap();
        let mut panels = learning_curves(30);
        panels.insert(1, panels[0].clone());
        panels[1].0 = "Reconstruction".into();
        save_png(&dir.join("plot-curves.png"), &curves_png(&panels[..2], "epoch").unwrap()).unwrap();
        save_png(&dir.join("plot-curves3.png"), &curves_png(&panels, "epoch").unwrap()).unwrap();
    }
}
