//! Stacked line-chart panels (learning curves).

use super::*;

/// One named line of a [`curves_png`] panel: `(x, y)` points, drawn in the given order.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Legend entry, e.g. `"train"`.
    pub name: String,
    /// Points `(x, y)`; those with a non-finite coordinate are skipped.
    pub points: Vec<(f64, f64)>,
}

/// Height of the strip holding a [`curves_png`] image's title.
const TITLE_STRIP: u32 = 44;
/// Height of one line of a panel's legend.
const LEGEND_LINE: i32 = 22;

/// A PNG of line-chart panels under `title`, one per `(panel title, y-axis label, curves)`
/// entry of `panels`: stacked in one column, or in two columns for an even count of 4 or
/// more, so no cell is left empty. The image is [`CURVES_WIDTH`] (1000) pixels wide and
/// [`CURVES_ROW_HEIGHT`] (400) pixels high per row of panels, plus a title strip.
///
/// Each panel has an x axis labelled `x_label`, its legend in a strip above the plot (never
/// over the data), and its own y range (padded 5%). Learning curves fall steeply at first: when a
/// panel has 8 or more points per curve and its first tenth lies far above the rest, the y range
/// is fitted to the later points, the early ones run off the chart (clipped), and a note beside
/// the legend says so. The `i`-th curve of a panel is drawn in colour `i % 10` of matplotlib's "tab10"
/// palette, with point markers if it has at most [`MARKER_MAX_POINTS`] points. Points with a
/// non-finite coordinate are skipped; a panel with no finite point spans [-1, 1]. Use
/// [`save_png`] to write the result to a file.
///
/// # Errors
/// Drawing or encoding errors.
pub fn curves_png(title: &str, panels: &[(String, String, Vec<Curve>)], x_label: &str) -> Result<Vec<u8>, PlotError> {
    let cols = if panels.len() >= 4 && panels.len().is_multiple_of(2) { 2 } else { 1 };
    let rows = panels.len().div_ceil(cols).max(1);
    let size = (CURVES_WIDTH, TITLE_STRIP + CURVES_ROW_HEIGHT * rows as u32);
    render(title, size, |root| {
        root.fill(&WHITE).map_err(msg)?;
        let (head, body) = root.split_vertically(TITLE_STRIP);
        let style = (FONT, 22).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        head.draw_text(title, &style, (14, TITLE_STRIP as i32 / 2)).map_err(msg)?;
        let areas = body.split_evenly((rows, cols));
        for ((name, y_label, curves), area) in panels.iter().zip(&areas) {
            draw_panel(area, name, y_label, curves, x_label, cols)?;
        }
        Ok(())
    })
}

/// The y range of a panel: all finite points, or, when the first tenth of a long curve lies
/// far above the rest, the later points only. Returns the range and how many leading x values
/// were left out of it (0: none).
fn y_range(curves: &[Curve]) -> ((f64, f64), usize) {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all = padded_range(curves.iter().flat_map(|c| c.points.iter().filter(finite)).map(|p| p.1), 0.05);
    let len = curves.iter().map(|c| c.points.len()).max().unwrap_or(0);
    if len < 8 {
        return (all, 0);
    }
    let skip = len.div_ceil(10);
    let later = padded_range(curves.iter().flat_map(|c| c.points.iter().skip(skip).filter(finite)).map(|p| p.1), 0.08);
    // Worth it only if the early points would squeeze the rest into under 3/4 of the height.
    if (later.1 - later.0) < 0.75 * (all.1 - all.0) { (later, skip) } else { (all, 0) }
}

/// The pieces of a polyline inside `y0 ≤ y ≤ y1`, each segment cut where it crosses a bound.
fn clip(points: &[(f64, f64)], (y0, y1): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let inside = |y: f64| (y0..=y1).contains(&y);
    let cut = |(ax, ay): (f64, f64), (bx, by): (f64, f64), y: f64| (ax + (bx - ax) * (y - ay) / (by - ay), y);
    for (i, &p) in points.iter().enumerate() {
        if i == 0 {
            if inside(p.1) {
                current.push(p);
            }
            continue;
        }
        let q = points[i - 1];
        match (inside(q.1), inside(p.1)) {
            (true, true) => current.push(p),
            (true, false) => {
                current.push(cut(q, p, if p.1 > y1 { y1 } else { y0 }));
                pieces.push(std::mem::take(&mut current));
            }
            (false, true) => {
                current.push(cut(q, p, if q.1 > y1 { y1 } else { y0 }));
                current.push(p);
            }
            (false, false) => {
                // Crossing the whole range from above to below (or back).
                if (q.1 > y1) != (p.1 > y1) && (q.1 < y0) != (p.1 < y0) {
                    let (top, bottom) = (cut(q, p, y1), cut(q, p, y0));
                    pieces.push(if q.1 > y1 { vec![top, bottom] } else { vec![bottom, top] });
                }
            }
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

/// Draws one panel of [`curves_png`] on `area`: title and legend above, the chart below.
fn draw_panel(
    area: &DrawingArea<super::text::Crisp<'_>, Shift>,
    title: &str,
    y_label: &str,
    curves: &[Curve],
    x_label: &str,
    cols: usize,
) -> Result<(), String> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all = || curves.iter().flat_map(|c| c.points.iter().filter(finite));
    let (x0, x1) = padded_range(all().map(|p| p.0), 0.02);
    let ((y0, y1), skipped) = y_range(curves);
    let note = match skipped {
        0 => String::new(),
        1 => "the first point lies off the chart".to_string(),
        n => format!("the first {n} points lie off the chart"),
    };
    // The legend: entries in lines under the title, wrapped to the panel's width.
    let (width, _) = area.dim_in_pixel();
    let legend_font = (FONT, 15).into_font();
    let measure = (FONT, 15).into_text_style(area);
    let mut entries = Vec::new();
    let (mut x, mut line) = (20i32, 0i32);
    for (i, c) in curves.iter().enumerate() {
        let w = area.estimate_text_size(&c.name, &measure).map_or(8 * c.name.len() as u32, |s| s.0) as i32 + 44;
        // Leave room for the clipping note at the right of the legend's lines.
        let room = width as i32 - 10 - if skipped > 0 { 240 } else { 0 };
        if x + w > room && x > 20 {
            (x, line) = (20, line + 1);
        }
        entries.push((i, x, line));
        x += w;
    }
    let lines = if curves.is_empty() { 0 } else { line + 1 };
    let head = 30 + lines * LEGEND_LINE;
    let (top, plot) = area.split_vertically(head);
    let caption = (FONT, 19).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Center));
    top.draw_text(title, &caption, (width as i32 / 2, 16)).map_err(msg)?;
    // The clipping note sits at the right end of the legend's first line, in grey.
    let grey = (FONT, 13).into_font().color(&RGBColor(110, 110, 110)).pos(Pos::new(HPos::Right, VPos::Center));
    top.draw_text(&note, &grey, (width as i32 - 16, 30 + LEGEND_LINE / 2)).map_err(msg)?;
    for (i, x, line) in entries {
        let color = TAB10[i % TAB10.len()];
        let y = 30 + line * LEGEND_LINE + LEGEND_LINE / 2;
        top.draw(&PathElement::new(vec![(x, y), (x + 26, y)], color.stroke_width(3))).map_err(msg)?;
        let style = legend_font.clone().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
        top.draw_text(&curves[i].name, &style, (x + 32, y)).map_err(msg)?;
    }
    // Integer x values (epochs) get integer ticks, at most one per value.
    let int_x = all().all(|p| p.0.fract() == 0.0);
    let x_ticks = if int_x && x1 - x0 >= 1.0 { ((x1 - x0).floor().min(100.0) as usize + 1).clamp(2, 10) } else { 10 };
    let mut chart = ChartBuilder::on(&plot)
        .margin(10)
        .margin_right(20)
        .x_label_area_size(45)
        .y_label_area_size(if cols == 1 { 80 } else { 75 })
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(msg)?;
    style_mesh(&mut chart, (x_label, y_label), (x_ticks, 8), (14, 16))?;
    for (i, curve) in curves.iter().enumerate() {
        let color = TAB10[i % TAB10.len()];
        let pts: Vec<(f64, f64)> = curve.points.iter().filter(finite).copied().collect();
        for piece in clip(&pts, (y0, y1)) {
            chart.draw_series(LineSeries::new(piece, color.stroke_width(2))).map_err(msg)?;
        }
        if pts.len() <= MARKER_MAX_POINTS {
            let markers = pts.iter().filter(|p| (y0..=y1).contains(&p.1)).map(|&p| Circle::new(p, 3, color.filled()));
            chart.draw_series(markers).map_err(msg)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{blobs, count, decode};
    use super::*;

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
        // One column, or two for an even count of 4 or more: never an empty cell.
        for (n, rows) in [(0, 1), (1, 1), (2, 2), (3, 3), (4, 2), (5, 5), (6, 3)] {
            let many: Vec<_> = panels.iter().cycle().take(n).cloned().collect();
            let img = decode(&curves_png("run", &many, "epoch").unwrap());
            assert_eq!((img.0, img.1), (CURVES_WIDTH, TITLE_STRIP + CURVES_ROW_HEIGHT * rows), "{n} panels");
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
            // A curve with two finite points at finite, distinct values draws a line of its
            // colour; the frame and text are drawn whatever the data.
            let drawn: Vec<RGBColor> = (curves.iter().enumerate())
                .filter(|(_, c)| c.points.iter().filter(|p| p.0.is_finite() && p.1.is_finite()).count() >= 2)
                .map(|(i, _)| TAB10[i % TAB10.len()])
                .collect();
            let panels = vec![("t".to_string(), "y".to_string(), curves)];
            let img = decode(&curves_png("edge", &panels, "x").unwrap());
            assert_eq!((img.0, img.1), (CURVES_WIDTH, TITLE_STRIP + CURVES_ROW_HEIGHT));
            assert!(count(&img, 0, |px| px.iter().all(|&v| v < 90)) > 200, "no frame or text");
            // Below the title strip, whose legend shows each colour whether drawn or not.
            let first = (TITLE_STRIP * CURVES_WIDTH * 3) as usize;
            for c in drawn {
                let n = img.2[first..].chunks(3).filter(|px| *px == [c.0, c.1, c.2]).count();
                assert!(n > 10, "{:?}: a curve not drawn", panels[0].2);
            }
        }
    }

    #[test]
    fn a_steep_start_runs_off_the_top_so_later_epochs_fill_the_panel() {
        let panels = learning_curves(50);
        // 100 + 450/(e + 0.5): epoch 1 at 400, epoch 6 at 169, epoch 50 at 108.9.
        let ((y0, y1), skipped) = y_range(&panels[0].2);
        assert_eq!(skipped, 5, "the first tenth of 50 epochs");
        assert!(y1 < 200.0 && y0 > 100.0, "fitted to epochs 6-50: {y0}..{y1}");
        // A gentle curve keeps every point in range.
        let flat: Vec<Curve> = vec![curve("flat", (1..=50).map(|e| (e as f64, 100.0 - e as f64 * 0.1)).collect())];
        assert_eq!(y_range(&flat).1, 0);
        // Short runs keep every point too.
        assert_eq!(y_range(&learning_curves(7)[0].2).1, 0);
    }

    #[test]
    fn clipping_cuts_segments_at_the_range() {
        let pts = [(0.0, 10.0), (1.0, 0.0), (2.0, 0.5), (3.0, -9.0), (4.0, 11.0)];
        let pieces = clip(&pts, (0.0, 1.0));
        // 10 → 0 enters at y = 1 (x = 0.9); 0.5 → -9 leaves at y = 0 (x = 2 + 0.5/9.5);
        // -9 → 11 crosses the whole range, from y = 0 (x = 3.45) to y = 1 (x = 3.5).
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0][..3], [(0.9, 1.0), (1.0, 0.0), (2.0, 0.5)]);
        assert!((pieces[0][3].0 - (2.0 + 0.5 / 9.5)).abs() < 1e-12 && pieces[0][3].1 == 0.0);
        assert_eq!(pieces[1], [(3.45, 0.0), (3.5, 1.0)]);
        assert_eq!(clip(&[(0.0, 5.0), (1.0, 6.0)], (0.0, 1.0)).len(), 0, "wholly outside");
    }

    #[test]
    fn save_png_writes_and_names_the_file_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = curves_png("run", &learning_curves(3), "epoch").unwrap();
        let path = dir.path().join("curves.png");
        save_png(&path, &bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        let bad = dir.path().join("missing-dir").join("x.png");
        let err = save_png(&bad, &bytes).unwrap_err();
        assert!(err.to_string().contains("missing-dir"), "{err}");
    }

    /// Renders the sample charts into a temporary folder (or, for a visual check, into
    /// `VAE_PLOT_SAMPLES`: `VAE_PLOT_SAMPLES=/tmp cargo test --lib plot`), and checks each
    /// file is a PNG of the chart's size.
    #[test]
    fn render_samples() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = std::env::var_os("VAE_PLOT_SAMPLES").map_or_else(|| tmp.path().to_owned(), PathBuf::from);
        let (points, labels) = blobs(10_000);
        let scatter = scatter_png(&points, &labels, &[], "Latent means (test set)", "z[0]", "z[1]");
        save_png(&dir.join("plot-scatter.png"), &scatter.unwrap()).unwrap();
        let mut panels = learning_curves(30);
        panels.insert(1, panels[0].clone());
        panels[1].0 = "Reconstruction".into();
        save_png(&dir.join("plot-curves.png"), &curves_png("two", &panels[..2], "epoch").unwrap()).unwrap();
        save_png(&dir.join("plot-curves3.png"), &curves_png("three", &panels, "epoch").unwrap()).unwrap();
        let size = |name: &str| {
            let img = decode(&std::fs::read(dir.join(name)).unwrap());
            (img.0, img.1)
        };
        assert_eq!(size("plot-scatter.png"), SCATTER_SIZE);
        assert_eq!(size("plot-curves.png"), (CURVES_WIDTH, TITLE_STRIP + 2 * CURVES_ROW_HEIGHT));
        assert_eq!(size("plot-curves3.png"), (CURVES_WIDTH, TITLE_STRIP + 3 * CURVES_ROW_HEIGHT));
    }
}
