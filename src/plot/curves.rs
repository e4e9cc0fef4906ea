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
    style_mesh(&mut chart, (x_label, y_label), (x_ticks, 8), (14, 16))?;
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
        let scatter = scatter_png(&points, &labels, &[], "Latent means (test set)", "z[0]", "z[1]");
        save_png(&dir.join("plot-scatter.png"), &scatter.unwrap()).unwrap();
        let mut panels = learning_curves(30);
        panels.insert(1, panels[0].clone());
        panels[1].0 = "Reconstruction".into();
        save_png(&dir.join("plot-curves.png"), &curves_png(&panels[..2], "epoch").unwrap()).unwrap();
        save_png(&dir.join("plot-curves3.png"), &curves_png(&panels, "epoch").unwrap()).unwrap();
    }
}
