//! The labelled 2-D scatter plot (latent means coloured by class).

use super::*;

/// A [`SCATTER_SIZE`] (900×800) PNG scatter plot of 2-D `points`, point `i` drawn as a small,
/// semi-transparent filled circle in the colour of `labels[i]` in matplotlib's "tab10" palette,
/// in input order (so shuffled input mixes the classes fairly). Labels of 10 or more are not an
/// error: they are drawn in a dark grey and get an extra legend entry "other". The legend
/// (the first ten `names`, or "0".."9" when `names` is empty) sits in a strip right of the
/// axes, widened for long names, so it never covers points. Dots are more
/// transparent above 2,000 points and smaller above 20,000. Points with a non-finite coordinate
/// are skipped; with no finite point the axes span [-1, 1]. Use [`save_png`] to write the result.
///
/// # Errors
/// [`PlotError::LabelCount`] if `labels.len() != points.len()`; drawing or encoding errors.
pub fn scatter_png(
    points: &[[f32; 2]],
    labels: &[u8],
    names: &[String],
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
    // Legend names: the classes' (shortened), or the label numbers.
    let name = |l: u8| -> String {
        let n = names.get(l as usize).cloned().unwrap_or_else(|| l.to_string());
        if n.chars().count() > 18 { format!("{}…", n.chars().take(17).collect::<String>()) } else { n }
    };
    let longest = (0..10u8).map(|l| name(l).chars().count()).max().unwrap_or(1);
    let legend_width = (40 + 10 * longest as u32).clamp(90, 230);
    let color = |l: u8| TAB10.get(l as usize).copied().unwrap_or(OTHER_COLOR);
    // Fewer, more opaque dots stay visible; many dots need transparency to show density.
    let alpha = if points.len() > 2000 { 0.45 } else { 0.8 };
    let radius = if points.len() > 20_000 { 1 } else { 2 };

    render(title, SCATTER_SIZE, |root| {
        root.fill(&WHITE).map_err(msg)?;
        let (plot_area, legend_area) = root.split_horizontally(SCATTER_SIZE.0 - legend_width);
        let mut chart = ChartBuilder::on(&plot_area)
            .caption(title, (FONT, 24))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(msg)?;
        style_mesh(&mut chart, (x_label, y_label), (10, 10), (15, 17))?;
        let dots = points
            .iter()
            .zip(labels)
            .filter(|(p, _)| finite(p))
            .map(|(p, &l)| Circle::new((p[0] as f64, p[1] as f64), radius, color(l).mix(alpha).filled()));
        chart.draw_series(dots).map_err(msg)?;

        // Legend: one opaque dot and label per class, top of the right-hand strip.
        let shown = if names.is_empty() { 10 } else { names.len().min(10) } as u8;
        let entries = (0..shown).map(|l| (name(l), TAB10[l as usize]));
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

#[cfg(test)]
mod tests {
    use super::super::testing::{blobs, count, decode};
    use super::*;

    #[test]
    fn scatter_has_size_points_and_text() {
        let (points, labels) = blobs(2000);
        let img = decode(&scatter_png(&points, &labels, &[], "Latent means", "z[0]", "z[1]").unwrap());
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
            let img = decode(&scatter_png(&points, &labels, &[], "t", "x", "y").unwrap());
            assert_eq!((img.0, img.1), SCATTER_SIZE);
            // The frame, ticks and legend are drawn whatever the points, and a finite point of
            // a palette label shows as coloured pixels in the plot area (left of the widest legend strip).
            assert!(count(&img, 0, |px| px.iter().all(|&v| v < 90)) > 200, "{points:?}: no frame or text");
            let coloured = |px: &[u8]| px.iter().max().unwrap() - px.iter().min().unwrap() > 40;
            let in_plot = img
                .2
                .chunks(3)
                .enumerate()
                .filter(|(i, px)| (*i as u32 % img.0) < SCATTER_SIZE.0 - 230 && coloured(px));
            let dots = in_plot.count();
            // (Labels from 10 on are drawn in dark grey, "other".)
            let palette = points.iter().zip(&labels).any(|(p, &l)| p[0].is_finite() && p[1].is_finite() && l < 10);
            assert_eq!(dots > 0, palette, "{points:?}: {dots} coloured pixels");
        }
        let err = scatter_png(&[[0.0, 0.0]], &[], &[], "t", "x", "y").unwrap_err();
        assert!(matches!(err, PlotError::LabelCount { points: 1, labels: 0, .. }), "{err}");
    }
}
