//! Renders N distinct 20-result reports, for profilers and for a machine other people load:
//! besides the wall time it prints the process's CPU time per report (`/proc/self/stat`), which
//! their load does not inflate as much. Callgrind counts instructions, immune to the load:
//!
//! ```sh
//! cargo build --profile bench --workspace --example render_many
//! target/release/examples/render_many 400 distinct 2
//! valgrind --tool=callgrind target/release/examples/render_many 45 distinct
//! ```
//!
//! Arguments: the number of reports; `mrn` (only the MRN and the sodium value differ, as the
//! benchmark's `one_thread`) or `distinct` (another patient, order and values each time, as
//! `one_thread_distinct`); the number of threads sharing the reports.

#[path = "../tests/fixtures/distinct_reports.rs"]
mod distinct_reports;

use std::sync::atomic::{AtomicUsize, Ordering};

use aliquot_report::{PdfMeta, render_pdf};

/// The process's user + system CPU time in seconds (Linux; `None` elsewhere).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // Fields 14 and 15 of proc(5) (utime, stime), counted from the state (field 3).
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(100);
    let data: fn(usize) -> String = match args.next().as_deref() {
        None | Some("mrn") => distinct_reports::mrn_and_sodium,
        Some("distinct") => distinct_reports::distinct,
        Some(other) => return Err(format!("mrn or distinct, not {other}").into()),
    };
    let threads: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1);
    let meta = PdfMeta {
        ident: "order-17-report-2".into(),
        created: "2026-11-28T16:05:00Z".parse()?,
    };
    // Warm up: fonts parsed, the template's constant parts memoised.
    for i in 0..5 {
        render_pdf(data(1_000_000 + i).as_bytes(), &meta)?;
    }
    let next = AtomicUsize::new(0);
    let bytes = AtomicUsize::new(0);
    let cpu = cpu_seconds();
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let pdf = render_pdf(data(i).as_bytes(), &meta).map_or(0, |p| p.len());
                    bytes.fetch_add(pdf, Ordering::Relaxed);
                }
            });
        }
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
    eprintln!(
        "{n} reports by {threads} thread(s), {} bytes: {:.2} ms each ({:.1} reports/s), CPU {} ms per report",
        bytes.load(Ordering::Relaxed),
        wall * 1e3 / n as f64,
        n as f64 / wall,
        cpu.map_or("?".into(), |c| format!("{:.2}", c * 1e3 / n as f64)),
    );
    Ok(())
}
