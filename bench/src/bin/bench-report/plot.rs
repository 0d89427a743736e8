//! The report's SVG plots (plotters, SVG backend only).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const SIZE: (u32, u32) = (720, 400);
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// One line of a chart: a label and (x, y) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Axis description: label and whether it is logarithmic.
pub struct Axis<'a> {
    pub label: &'a str,
    pub log: bool,
}

fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    let (mut lo, mut hi) = v
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        (lo / 2.0, hi * 2.0)
    } else {
        let lo = if lo >= 0.0 { 0.0 } else { lo * 1.1 };
        (lo, if hi > lo { hi * 1.15 } else { lo + 1.0 })
    }
}

/// A line chart with points, each axis linear or logarithmic.
pub fn lines(path: &Path, title: &str, x: Axis, y: Axis, series: &[Series]) -> Result<()> {
    let (x0, x1) = range(
        series.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
        x.log,
    );
    let (y0, y1) = range(
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        y.log,
    );
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    // The four (linear|log) x (linear|log) coordinate types differ; one macro body.
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x.label)
                .y_desc(y.label)
                .x_label_formatter(&|v| short(*v))
                .y_label_formatter(&|v| short(*v))
                .draw()
                .map_err(err)?;
            for (i, s) in series.iter().enumerate() {
                let colour = COLOURS[i % COLOURS.len()];
                let pts: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .copied()
                    .filter(|(a, b)| {
                        a.is_finite()
                            && b.is_finite()
                            && (!x.log || *a > 0.0)
                            && (!y.log || *b > 0.0)
                    })
                    .collect();
                chart
                    .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                    .map_err(err)?
                    .label(s.label.clone())
                    .legend(move |(px, py)| {
                        PathElement::new(vec![(px, py), (px + 18, py)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(PointSeries::of_element(
                        pts,
                        4,
                        colour.filled(),
                        &|c, s, st| Circle::new(c, s, st),
                    ))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }};
    }
    match (x.log, y.log) {
        (false, false) => draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
        (true, false) => draw!(builder
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(err)?),
        (false, true) => draw!(builder
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(err)?),
        (true, true) => draw!(builder
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .map_err(err)?),
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Grouped bars: one group per category, one bar per series (values may be missing).
pub fn bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Result<()> {
    let top = series
        .iter()
        .flat_map(|(_, v)| v.iter().flatten().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let groups = categories.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..groups, 0.0..top)
        .map_err(err)?;
    let cats = categories.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(categories.len().max(1) * 2 + 1)
        .x_label_formatter(&|v| {
            // Label the middle of each group.
            let i = v.floor() as usize;
            if (v - v.floor() - 0.5).abs() < 1e-6 {
                cats.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .y_label_formatter(&|v| short(*v))
        .draw()
        .map_err(err)?;
    let n = series.len().max(1) as f64;
    let width = 0.8 / n;
    for (si, (label, values)) in series.iter().enumerate() {
        let colour = COLOURS[si % COLOURS.len()];
        let rects: Vec<Rectangle<(f64, f64)>> = values
            .iter()
            .enumerate()
            .filter_map(|(ci, v)| {
                let v = (*v)?;
                let x = ci as f64 + 0.1 + si as f64 * width;
                Some(Rectangle::new(
                    [(x, 0.0), (x + width * 0.92, v)],
                    colour.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(label.clone())
            .legend(move |(px, py)| {
                Rectangle::new([(px, py - 5), (px + 14, py + 5)], colour.filled())
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Tick labels: 1.5k, 2M, 0.25 ...
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels() {
        assert_eq!(short(1500.0), "1.5k");
        assert_eq!(short(2e6), "2M");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(0.0), "0");
        assert_eq!(short(100.0), "100");
    }

    #[test]
    fn plots_are_svg_documents() {
        let dir = std::env::temp_dir().join(format!("bench-report-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = dir.join("l.svg");
        lines(
            &line,
            "t",
            Axis {
                label: "x",
                log: true,
            },
            Axis {
                label: "y",
                log: false,
            },
            &[
                Series {
                    label: "a".into(),
                    points: vec![(1e3, 1.0), (1e6, 0.5)],
                },
                Series {
                    label: "empty".into(),
                    points: vec![],
                },
            ],
        )
        .unwrap();
        let bar = dir.join("b.svg");
        bars(
            &bar,
            "t",
            "Mpps",
            &["1e3".into(), "1e5".into()],
            &[("io".into(), vec![Some(2.0), None])],
        )
        .unwrap();
        for p in [line, bar] {
            let s = std::fs::read_to_string(&p).unwrap();
            assert!(
                s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
                "{s}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
