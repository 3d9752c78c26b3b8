//! The SVG plot: latency percentiles per contender, one panel per load scenario, then one
//! panel per chart of the sweeping scenarios (a figure against callers or connections).

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{Chart, ScenarioReport, CURVE};

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

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// One panel of the plot.
enum Panel<'a> {
    /// Latency percentiles of a load scenario's rows.
    Latency(&'a ScenarioReport),
    Chart(&'a Chart),
}

/// Writes the plot of every scenario with latency rows or charts to `path`.
pub(crate) fn write_svg(path: &str, scenarios: &[ScenarioReport]) -> PlotResult {
    let mut panels: Vec<Panel<'_>> = scenarios
        .iter()
        .filter(|s| s.plot_title.is_some() && !s.rows.is_empty())
        .map(Panel::Latency)
        .collect();
    panels.extend(
        scenarios
            .iter()
            .flat_map(|s| s.charts.iter())
            .filter(|c| c.series.iter().any(|s| !points_of(s).is_empty()))
            .map(Panel::Chart),
    );
    if panels.is_empty() {
        return Ok(());
    }
    let cols = panels.len().min(2);
    let rows = panels.len().div_ceil(cols);
    let root = SVGBackend::new(path, (640 * cols as u32, 420 * rows as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((rows, cols));
    for (area, panel) in areas.iter().zip(&panels) {
        match panel {
            Panel::Latency(scenario) => latency_panel(area, scenario)?,
            Panel::Chart(chart) => chart_panel(area, chart)?,
        }
    }
    root.present()?;
    Ok(())
}

/// The drawable points of a series: finite, and positive (both axes may be logarithmic).
fn points_of(series: &crate::report::Series) -> Vec<(f64, f64)> {
    series
        .points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite() && *x > 0.0 && *y > 0.0)
        .collect()
}

fn number(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A chart: x on a log scale (the swept values are powers of 2 or 10), y linear from 0 or
/// logarithmic; a line and dots per series, pool first and thickest.
fn chart_panel(area: &DrawingArea<SVGBackend<'_>, Shift>, chart: &Chart) -> PlotResult {
    let all: Vec<(f64, f64)> = chart.series.iter().flat_map(points_of).collect();
    let x_lo = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_hi = all.iter().map(|p| p.0).fold(0.0, f64::max).max(x_lo * 2.0);
    let y_lo = all.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_hi = all.iter().map(|p| p.1).fold(0.0, f64::max);
    let x_range = (x_lo / 1.3)..(x_hi * 1.3);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&chart.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(60);
    let series = |i: usize| {
        let color = COLORS[i % COLORS.len()];
        let width = if i == 0 { 3 } else { 2 };
        (color, width)
    };
    macro_rules! draw {
        ($chart:expr) => {{
            let mut c = $chart;
            c.configure_mesh()
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .x_label_formatter(&|x| number(*x))
                .y_label_formatter(&|y| number(*y))
                .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
                .bold_line_style(RGBColor(0xd0, 0xd0, 0xd0))
                .draw()?;
            for (i, s) in chart.series.iter().enumerate() {
                let (color, width) = series(i);
                let points = points_of(s);
                c.draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))?
                    .label(s.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(width))
                    });
                c.draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )?;
            }
            c.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .draw()?;
        }};
    }
    if chart.y_log {
        let lo = y_lo * 0.8;
        let hi = y_hi.max(lo * 2.0) * 1.25;
        draw!(builder.build_cartesian_2d(x_range.log_scale(), (lo..hi).log_scale())?);
    } else {
        draw!(builder.build_cartesian_2d(x_range.log_scale(), 0.0..(y_hi * 1.15))?);
    }
    Ok(())
}

fn latency_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    scenario: &ScenarioReport,
) -> PlotResult {
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
    Ok(())
}
