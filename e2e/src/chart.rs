//! A Serverless timeline drawn as a PNG: four panels over the same time
//! axis (shards; memory used and its limit; CPU used and its limit; ops/s)
//! with every decision marked as a vertical line. Text needs a TrueType
//! font: DejaVu Sans from Debian's `fonts-dejavu-core` (installed by
//! `e2e/scripts/tools.sh`), or the file `TIDECACHE_CHART_FONT` names.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context as _;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::timeline::Row;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 220;

/// Registers the font once for the process; the error says which file.
fn font() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let path = std::env::var("TIDECACHE_CHART_FONT").unwrap_or_else(|_| FONT.into());
            let bytes = std::fs::read(&path).map_err(|e| {
                format!("chart font {path}: {e} (apt-get install fonts-dejavu-core)")
            })?;
            // plotters keeps the font for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("chart font {path}: not a TrueType font"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// One line of a panel: its name, colour and points.
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// One panel: a title, its lines and the unit of its y axis.
struct Panel<'a> {
    title: &'a str,
    unit: &'a str,
    series: Vec<Series<'a>>,
}

/// Draws `rows` to `path` under `title`.
pub fn draw(title: &str, rows: &[Row], path: &Path) -> anyhow::Result<()> {
    font()?;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let points = |f: &dyn Fn(&Row) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.at.as_secs_f64(), f(r))).collect()
    };
    let panels = [
        Panel {
            title: "shards (`currentShards`)",
            unit: "shards",
            series: vec![("shards", BLUE, points(&|r| f64::from(r.shards)))],
        },
        Panel {
            title: "memory",
            unit: "MiB",
            series: vec![
                ("used", BLUE, points(&|r| mib(r.memory))),
                (
                    "what the shards hold",
                    BLACK,
                    points(&|r| mib(r.memory_limit)),
                ),
            ],
        },
        Panel {
            title: "CPU of the primaries",
            unit: "millicores",
            series: vec![
                ("used", BLUE, points(&|r| r.cpu as f64)),
                ("limit", BLACK, points(&|r| r.cpu_limit as f64)),
            ],
        },
        Panel {
            title: "commands",
            unit: "ops/s",
            series: vec![("ops/s", BLUE, points(&|r| r.ops as f64))],
        },
    ];
    // The first row at which each decision appeared.
    let decisions: Vec<f64> = rows
        .windows(2)
        .filter(|w| w[1].decisions > w[0].decisions)
        .map(|w| w[1].at.as_secs_f64())
        .collect();
    let end = rows.last().map_or(1.0, |r| r.at.as_secs_f64()).max(1.0);

    let height = PANEL_HEIGHT * panels.len() as u32 + 40;
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    for (panel, area) in panels.iter().zip(root.split_evenly((panels.len(), 1))) {
        let top = panel
            .series
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y))
            .fold(1.0_f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&area)
            .caption(panel.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(panel.unit)
            .label_style(("sans-serif", 12))
            .draw()?;
        for &(name, colour, ref p) in &panel.series {
            chart
                .draw_series(LineSeries::new(p.iter().copied(), colour.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour));
        }
        for &at in &decisions {
            chart.draw_series(LineSeries::new([(at, 0.0), (at, top)], RED.stroke_width(1)))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_timeline_draws_as_a_png() {
        let rows: Vec<Row> = (0..40)
            .map(|i| Row {
                at: Duration::from_millis(250 * i),
                shards: if i < 20 { 1 } else { 2 },
                memory: 1_000_000 * i,
                memory_limit: if i < 20 { 50_000_000 } else { 100_000_000 },
                cpu: 100 + 10 * i,
                cpu_limit: if i < 20 { 1000 } else { 2000 },
                ops: 5000,
                decisions: usize::from(i >= 18),
                phase: "Ready".into(),
            })
            .collect();
        let path = std::env::temp_dir().join(format!("tidecache-chart-{}.png", std::process::id()));
        draw("test", &rows, &path).unwrap();
        let png = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 10_000, "{} bytes", png.len());
    }
}
