//! The SVG plot: latency percentiles per contender, one panel per load scenario.

use plotters::prelude::*;

use crate::report::{ScenarioReport, CURVE};

const COLORS: [RGBColor; 6] = [
    RGBColor(0xd6, 0x27, 0x28), // pool: red
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x7f, 0x7f, 0x7f),
];

/// The x axis: one evenly spaced position per percentile of [`CURVE`].
fn x_label(x: &f64) -> String {
    let i = x.round();
    if (x - i).abs() > 1e-6 || i < 0.0 {
        return String::new();
    }
    match CURVE.get(i as usize) {
        Some(p) if *p >= 100.0 => "max".into(),
        Some(p) => format!("p{p}"),
        None => String::new(),
    }
}

/// Writes the plot of every scenario with latency rows to `path`.
pub(crate) fn write_svg(
    path: &str,
    scenarios: &[ScenarioReport],
) -> Result<(), Box<dyn std::error::Error>> {
    let panels: Vec<&ScenarioReport> = scenarios
        .iter()
        .filter(|s| s.plot_title.is_some() && !s.rows.is_empty())
        .collect();
    if panels.is_empty() {
        return Ok(());
    }
    let cols = panels.len().min(2);
    let rows = panels.len().div_ceil(cols);
    let root = SVGBackend::new(path, (640 * cols as u32, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for (area, scenario) in areas.iter().zip(&panels) {
        let points = |r: &crate::report::LoadRow| -> Vec<(f64, f64)> {
            r.curve
                .iter()
                .enumerate()
                .filter(|(_, (_, ms))| ms.is_finite() && *ms > 0.0)
                .map(|(i, &(_, ms))| (i as f64, ms))
                .collect()
        };
        let all: Vec<f64> = scenario
            .rows
            .iter()
            .flat_map(|r| points(r).into_iter().map(|(_, y)| y))
            .collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1e-3) * 0.8;
        let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 2.0) * 1.25;
        let mut chart = ChartBuilder::on(area)
            .caption(
                scenario.plot_title.as_deref().unwrap_or(&scenario.name),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.25f64..(CURVE.len() as f64 - 0.75), (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(CURVE.len())
            .x_label_formatter(&x_label)
            .x_desc("percentile")
            .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
            .bold_line_style(RGBColor(0xd0, 0xd0, 0xd0))
            .y_desc("latency (ms, log)")
            .y_label_formatter(&|y| {
                if *y >= 10.0 {
                    format!("{y:.0}")
                } else if *y >= 1.0 {
                    format!("{y:.1}")
                } else {
                    format!("{y:.2}")
                }
            })
            .draw()?;
        for (i, row) in scenario.rows.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let width = if row.contender == "pool" { 3 } else { 2 };
            chart
                .draw_series(LineSeries::new(points(row), color.stroke_width(width)))?
                .label(row.contender.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                });
            chart.draw_series(
                points(row)
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
