//! Draws a timeline CSV written by an e2e run as a PNG:
//! `cargo run -p tidecache-e2e --example draw_timeline -- target/e2e-timelines/serverless-memory.csv`.

use std::time::Duration;

use tidecache_e2e::timeline::Row;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).expect("a timeline CSV");
    let text = std::fs::read_to_string(&path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Row> = lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let field = |name: &str| -> u64 {
                header
                    .iter()
                    .position(|h| *h == name)
                    .and_then(|i| f.get(i)?.parse().ok())
                    .unwrap_or(0)
            };
            Row {
                at: Duration::from_secs_f64(f[0].parse().unwrap_or(0.0)),
                shards: field("shards") as i32,
                memory: field("memory_bytes"),
                memory_limit: field("memory_limit_bytes"),
                cpu: field("cpu_millicores"),
                cpu_limit: field("cpu_limit_millicores"),
                ops: field("ops_per_second"),
                decisions: field("decisions") as usize,
                phase: f.last().unwrap_or(&"").to_string(),
            }
        })
        .collect();
    let png = std::path::Path::new(&path).with_extension("png");
    let name = png.file_stem().unwrap().to_string_lossy().into_owned();
    tidecache_e2e::chart::draw(&name, &rows, &png)?;
    println!("{}", png.display());
    Ok(())
}
