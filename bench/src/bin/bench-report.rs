//! bench-report: the no-drop-rate search's next step, and the throughput
//! report (markdown tables and SVG plots) of `scripts/bench-throughput.sh
//! --report`.
//!
//! ```text
//! bench-report next --results R.jsonl --path esprit --size 64 [--max-trials 8] [--precision 0.05]
//!     prints `blast`, `rate PPS` or `done NDR_PPS PDR_PPS TRIALS`
//! bench-report render --results R.jsonl --out DIR [--microbench FILE] [--zc-io-ns 30] [--note TEXT]
//!     writes DIR/report.md, DIR/rate-vs-size.svg, DIR/latency-vs-load-SIZE.svg
//! ```
//!
//! The results file has one JSON object per line, written by the script:
//! `kind` is `search` (a trial of the search), `ndr` (its result) or
//! `latency` (a trial at `load_pct` % of the NDR with one-way latency);
//! `tx` and `rx` are pktgen's reports, `gw1_user_s` / `gw1_sys_s` the
//! encrypting gateway's process CPU time over the trial.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use esprit_bench::ndr::{self, Next, SearchLimits, Trial};
use plotters::prelude::*;
use serde_json::Value;

/// Paths and the kernel-forwarding baseline each is held against.
const BASELINE: [(&str, &str); 4] = [
    ("esprit", "kernel-3hop"),
    ("esprit-encrypt", "kernel-1hop"),
    ("strongswan", "kernel-3hop"),
    ("strongswan-encrypt", "kernel-1hop"),
];

/// The assumed per-packet I/O cost of a zero-copy AF_XDP NIC driver (rx
/// and fill descriptors, tx and completion descriptors, one wakeup per
/// burst of 64), ns; overridable with `--zc-io-ns`.
const DEFAULT_ZC_IO_NS: f64 = 30.0;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("next") => cmd_next(&args[1..]),
        Some("render") => cmd_render(&args[1..]),
        _ => Err("usage: bench-report next|render ... (see the module doc)".into()),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs.
fn options(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let Some(name) = k.strip_prefix("--") else {
            return Err(format!("unexpected argument {k:?}"));
        };
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        m.insert(name.to_string(), v.clone());
    }
    Ok(m)
}

fn need<'a>(o: &'a BTreeMap<String, String>, k: &str) -> Result<&'a str, String> {
    o.get(k).map(String::as_str).ok_or_else(|| format!("--{k} missing"))
}

fn number<T: std::str::FromStr>(o: &BTreeMap<String, String>, k: &str, default: T) -> Result<T, String> {
    match o.get(k) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| format!("--{k} {v:?}: not a number")),
    }
}

/// Every result line; a line that is not JSON is an error naming it.
fn load(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_f64).unwrap_or(0.0)
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_u64).unwrap_or(0)
}

fn trial(v: &Value) -> Trial {
    let secs = f(v, &["tx", "seconds"]);
    let sent = u(v, &["tx", "packets"]);
    Trial {
        offered_pps: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        sent,
        received: u(v, &["rx", "good"]),
    }
}

fn cmd_next(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let rows = load(Path::new(need(&o, "results")?))?;
    let (path, size) = (need(&o, "path")?, need(&o, "size")?);
    let limits =
        SearchLimits { max_trials: number(&o, "max-trials", 8)?, precision: number(&o, "precision", 0.05)? };
    let trials: Vec<Trial> = rows
        .iter()
        .filter(|r| s(r, "kind") == "search" && s(r, "path") == path && s(r, "size") == size)
        .map(trial)
        .collect();
    match ndr::next(&trials, limits) {
        Next::FullBlast => println!("blast"),
        Next::Rate(pps) => println!("rate {pps}"),
        Next::Done(r) => println!("done {:.0} {:.0} {}", r.ndr_pps, r.pdr_pps, r.trials),
    }
    Ok(())
}

/// Frame sizes in report order: numbers ascending, then `imix`.
fn size_order(a: &str) -> (u8, usize) {
    match a.parse::<usize>() {
        Ok(n) => (0, n),
        Err(_) => (1, 0),
    }
}

/// The `ndr` lines, by (path, size).
type NdrTable = BTreeMap<(String, String), (f64, f64, u64)>;

fn cmd_render(args: &[String]) -> Result<(), String> {
    let o = options(args)?;
    let rows = load(Path::new(need(&o, "results")?))?;
    let out = PathBuf::from(need(&o, "out")?);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let zc_io_ns = number(&o, "zc-io-ns", DEFAULT_ZC_IO_NS)?;
    let pipeline = match o.get("microbench") {
        Some(p) => pipeline_ns(&std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"))?),
        None => BTreeMap::new(),
    };

    let mut paths: Vec<String> = Vec::new();
    let mut sizes: Vec<String> = Vec::new();
    let mut ndrs = NdrTable::new();
    for r in &rows {
        let (p, z) = (s(r, "path").to_string(), s(r, "size").to_string());
        if !paths.contains(&p) {
            paths.push(p.clone());
        }
        if !sizes.contains(&z) {
            sizes.push(z.clone());
        }
        if s(r, "kind") == "ndr" {
            ndrs.insert((p, z), (f(r, &["ndr_pps"]), f(r, &["pdr_pps"]), u(r, &["trials"])));
        }
    }
    sizes.sort_by_key(|z| size_order(z));
    if ndrs.is_empty() {
        return Err("no search finished: no `ndr` line in the results".into());
    }

    let mut md = String::new();
    let _ = writeln!(md, "# esprit throughput: NDR / PDR, latency, CPU per packet\n");
    if let Some(note) = o.get("note") {
        let _ = writeln!(md, "{note}\n");
    }
    ndr_table(&mut md, &paths, &sizes, &ndrs, &rows);
    trials_table(&mut md, &rows);
    latency_table(&mut md, &rows);
    projection_table(&mut md, &sizes, &ndrs, &rows, &pipeline, zc_io_ns);
    let report = out.join("report.md");
    std::fs::write(&report, &md).map_err(|e| format!("{}: {e}", report.display()))?;

    plot_rates(&out.join("rate-vs-size.svg"), &paths, &sizes, &ndrs).map_err(|e| format!("plot: {e}"))?;
    for z in &sizes {
        let file = out.join(format!("latency-vs-load-{z}.svg"));
        plot_latency(&file, z, &paths, &rows).map_err(|e| format!("plot: {e}"))?;
    }
    print!("{md}");
    Ok(())
}

/// The encrypting gateway's process CPU per packet it was offered, ns
/// (user, system); `None` for the kernel paths (no process of their own).
fn cpu_ns(r: &Value) -> Option<(f64, f64)> {
    let sent = u(r, &["tx", "packets"]);
    let (user, sys) = (f(r, &["gw1_user_s"]), f(r, &["gw1_sys_s"]));
    if sent == 0 || s(r, "path").starts_with("kernel") {
        return None;
    }
    Some((user / sent as f64 * 1e9, sys / sent as f64 * 1e9))
}

fn cpu_cell(r: Option<&Value>) -> String {
    match r.and_then(cpu_ns) {
        Some((user, sys)) => format!("{user:.0} / {sys:.0}"),
        None => "-".into(),
    }
}

/// The search trial closest below the NDR (the one that set it).
fn at_ndr<'a>(rows: &'a [Value], path: &str, size: &str, ndr_pps: f64) -> Option<&'a Value> {
    rows.iter().rev().find(|r| {
        s(r, "kind") == "search"
            && s(r, "path") == path
            && s(r, "size") == size
            && (trial(r).offered_pps - ndr_pps).abs() < 1.0
    })
}

fn ndr_table(md: &mut String, paths: &[String], sizes: &[String], ndrs: &NdrTable, rows: &[Value]) {
    let _ = writeln!(md, "## No-drop rate (NDR, 0 loss) and partial drop rate (PDR, <= 0.1 % loss)\n");
    let _ = writeln!(
        md,
        "| path | size B | NDR Mpps | NDR Gbit/s | PDR Mpps | NDR / baseline | trials | gw1 CPU ns/pkt at NDR (user / sys) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for z in sizes {
        for p in paths {
            let Some(&(ndr_pps, pdr_pps, trials)) = ndrs.get(&(p.clone(), z.clone())) else { continue };
            let base = BASELINE.iter().find(|(ours, _)| ours == p).map(|(_, b)| *b);
            let ratio = base
                .and_then(|b| ndrs.get(&(b.to_string(), z.clone())))
                .filter(|b| b.0 > 0.0)
                .map(|b| format!("{:.2} ({})", ndr_pps / b.0, base.unwrap_or_default()))
                .unwrap_or_else(|| "-".into());
            let hit = at_ndr(rows, p, z, ndr_pps);
            // Bits of the frames the generator sent, without FCS, at the NDR.
            let gbps = hit.map(|r| f(r, &["tx", "bytes"]) * 8.0 / f(r, &["tx", "seconds"]).max(1e-9) / 1e9);
            let _ = writeln!(
                md,
                "| {p} | {z} | {:.3} | {} | {:.3} | {ratio} | {trials} | {} |",
                ndr_pps / 1e6,
                gbps.map(|g| format!("{g:.3}")).unwrap_or_else(|| "-".into()),
                pdr_pps / 1e6,
                cpu_cell(hit)
            );
        }
    }
    let _ = writeln!(md);
}

fn trials_table(md: &mut String, rows: &[Value]) {
    let _ = writeln!(md, "## Every trial\n");
    let _ = writeln!(
        md,
        "| path | size B | kind | offered Mpps | received Mpps | loss | gw1 CPU ns/pkt (user / sys) | all CPUs busy |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|");
    for r in rows.iter().filter(|r| matches!(s(r, "kind"), "search" | "latency")) {
        let t = trial(r);
        let kind = match s(r, "kind") {
            "latency" => format!("{} % NDR", u(r, &["load_pct"])),
            _ => "search".into(),
        };
        // Busy CPU time over the interval it was read across (the
        // generator's whole run), as a share of all CPUs.
        let busy = f(r, &["busy_cpu_s"]) / (f(r, &["ncpu"]).max(1.0) * f(r, &["wall_s"]).max(1e-9));
        let _ = writeln!(
            md,
            "| {} | {} | {kind} | {:.3} | {:.3} | {:.4} % | {} | {:.0} % |",
            s(r, "path"),
            s(r, "size"),
            t.offered_pps / 1e6,
            f(r, &["rx", "mpps"]),
            t.loss() * 100.0,
            cpu_cell(Some(r)),
            busy * 100.0
        );
    }
    let _ = writeln!(md);
}

fn latency_table(md: &mut String, rows: &[Value]) {
    let _ = writeln!(md, "## One-way latency, generator to sink, at 10 / 50 / 90 % of the NDR (us)\n");
    let _ = writeln!(
        md,
        "(`-`: a sink behind an encrypting gateway counts ESP; it cannot read the send time.)\n"
    );
    let _ = writeln!(md, "| path | size B | load | Mpps | p50 | p90 | p99 | p99.9 | max | samples | loss |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows.iter().filter(|r| s(r, "kind") == "latency") {
        // A sink behind an encrypting gateway sees ESP: no send time to read.
        let samples = u(r, &["rx", "latency_ns", "count"]);
        let l = |q: &str| {
            if samples == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", f(r, &["rx", "latency_ns", q]) / 1e3)
            }
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} % | {:.3} | {} | {} | {} | {} | {} | {samples} | {:.4} % |",
            s(r, "path"),
            s(r, "size"),
            u(r, &["load_pct"]),
            trial(r).offered_pps / 1e6,
            l("p50"),
            l("p90"),
            l("p99"),
            l("p999"),
            l("max"),
            trial(r).loss() * 100.0
        );
    }
    let _ = writeln!(md);
}

/// `pipeline LAN->WAN encrypt` ns per packet by inner packet size, from
/// `microbench-report --interleaved`'s table (the `ns/pkt` column, the
/// restore already subtracted).
fn pipeline_ns(text: &str) -> BTreeMap<usize, f64> {
    let mut m = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| pipeline LAN->WAN encrypt")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let (Some(size), Some(ns)) =
            (cells.get(2).and_then(|c| c.parse().ok()), cells.get(5).and_then(|c| c.parse().ok()))
        {
            m.insert(size, ns);
        }
    }
    m
}

/// The pipeline cost for a frame size: the microbench's nearest inner
/// packet size; IMIX as the 7:4:1 mean of its frames' costs.
fn pipeline_for(size: &str, pipeline: &BTreeMap<usize, f64>) -> Option<f64> {
    let nearest = |n: usize| pipeline.iter().min_by_key(|(k, _)| k.abs_diff(n)).map(|(_, v)| *v);
    match size.parse::<usize>() {
        Ok(n) => nearest(n),
        Err(_) => {
            let mix = [(64usize, 7.0), (570, 4.0), (1400, 1.0)];
            mix.iter().map(|&(n, w)| nearest(n).map(|c| c * w)).sum::<Option<f64>>().map(|c| c / 12.0)
        }
    }
}

fn projection_table(
    md: &mut String,
    sizes: &[String],
    ndrs: &NdrTable,
    rows: &[Value],
    pipeline: &BTreeMap<usize, f64>,
    zc_io_ns: f64,
) {
    let _ = writeln!(md, "## Per-core projection for a zero-copy NIC (encrypting gateway)\n");
    let _ = writeln!(
        md,
        "Mpps per core = 1000 / (t_pipeline + t_io): t_pipeline is the in-memory encrypt pipeline \
         (parse, classify, ESP AES-128-GCM, headers; bursts of 64) measured by `microbench-report \
         --interleaved` in this run, nearest size (IMIX: the 7:4:1 mean); t_io = {zc_io_ns:.0} ns \
         is the assumed zero-copy driver cost per packet (descriptors on four rings, one wakeup per \
         burst), not measured here. Beside it, fastpathd's measured CPU per packet at the NDR on \
         veth (copy mode, naps when idle) and what that leaves for I/O.\n"
    );
    if pipeline.is_empty() {
        let _ = writeln!(md, "(no microbench figures in this run)\n");
        return;
    }
    let _ = writeln!(
        md,
        "| size B | t_pipeline ns | projected Mpps/core | esprit(-encrypt) NDR Mpps | measured gw1 CPU ns/pkt | of which I/O (veth) ns |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
    for z in sizes {
        let Some(t) = pipeline_for(z, pipeline) else { continue };
        // gw1 only encrypts on both esprit paths; the encrypt-only one
        // is the purer figure when it ran.
        let found = ["esprit-encrypt", "esprit"]
            .into_iter()
            .find_map(|p| ndrs.get(&(p.to_string(), z.clone())).map(|n| (p, n)));
        let ndr = found.map(|(_, n)| n);
        let cpu =
            found.and_then(|(p, n)| at_ndr(rows, p, z, n.0)).and_then(cpu_ns).map(|(user, sys)| user + sys);
        let _ = writeln!(
            md,
            "| {z} | {t:.1} | {:.2} | {} | {} | {} |",
            1000.0 / (t + zc_io_ns),
            ndr.map(|n| format!("{:.3}", n.0 / 1e6)).unwrap_or_else(|| "-".into()),
            cpu.map(|c| format!("{c:.0}")).unwrap_or_else(|| "-".into()),
            cpu.map(|c| format!("{:.0}", c - t)).unwrap_or_else(|| "-".into()),
        );
    }
    let _ = writeln!(md);
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn color(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// NDR (solid) and PDR (thin) against frame size, one colour per path;
/// the kernel baselines on the same axes.
fn plot_rates(file: &Path, paths: &[String], sizes: &[String], ndrs: &NdrTable) -> PlotResult {
    let root = SVGBackend::new(file, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = ndrs.values().map(|v| v.0.max(v.1)).fold(0.0, f64::max) / 1e6 * 1.15 + 1e-3;
    let n = sizes.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("NDR (solid) and PDR (thin) vs frame size", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..(n - 0.5), 0f64..ymax)?;
    let label = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 0.01 && i >= 0.0 {
            sizes.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_labels(sizes.len() * 2 + 1)
        .x_label_formatter(&label)
        .x_desc("frame size, B (without FCS)")
        .y_desc("Mpps")
        .draw()?;
    for (i, p) in paths.iter().enumerate() {
        let c = color(i);
        let pts = |k: usize| -> Vec<(f64, f64)> {
            sizes
                .iter()
                .enumerate()
                .filter_map(|(x, z)| {
                    ndrs.get(&(p.clone(), z.clone())).map(|v| (x as f64, [v.0, v.1][k] / 1e6))
                })
                .collect()
        };
        let baseline = p.starts_with("kernel");
        let name = if baseline { format!("{p} (baseline)") } else { p.clone() };
        chart
            .draw_series(LineSeries::new(
                pts(0),
                ShapeStyle::from(&c).stroke_width(if baseline { 1 } else { 3 }),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(pts(0).into_iter().map(|xy| Circle::new(xy, 4, c.filled())))?;
        chart.draw_series(LineSeries::new(pts(1), ShapeStyle::from(&c).stroke_width(1)))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// p50 (solid) and p99 (thin) one-way latency against load, per path.
fn plot_latency(file: &Path, size: &str, paths: &[String], rows: &[Value]) -> PlotResult {
    let root = SVGBackend::new(file, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    // Trials without samples (a sink counting ESP) have nothing to plot.
    let lat: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            s(r, "kind") == "latency" && s(r, "size") == size && u(r, &["rx", "latency_ns", "count"]) > 0
        })
        .collect();
    let ymax = lat.iter().map(|r| f(r, &["rx", "latency_ns", "p99"]) / 1e3).fold(0.0, f64::max) * 1.15 + 1.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("one-way latency vs load, {size} B: p50 (solid), p99 (thin)"), ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..100f64, 0f64..ymax)?;
    chart.configure_mesh().x_desc("offered load, % of the path's NDR").y_desc("us").draw()?;
    for (i, p) in paths.iter().enumerate() {
        let mine: Vec<&&Value> = lat.iter().filter(|r| s(r, "path") == p).collect();
        if mine.is_empty() {
            continue;
        }
        let c = color(i);
        let pts = |q: &str| -> Vec<(f64, f64)> {
            mine.iter().map(|r| (u(r, &["load_pct"]) as f64, f(r, &["rx", "latency_ns", q]) / 1e3)).collect()
        };
        chart
            .draw_series(LineSeries::new(pts("p50"), ShapeStyle::from(&c).stroke_width(3)))?
            .label(p.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(3)));
        chart.draw_series(pts("p50").into_iter().map(|xy| Circle::new(xy, 4, c.filled())))?;
        chart.draw_series(LineSeries::new(pts("p99"), ShapeStyle::from(&c).stroke_width(1)))?;
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_figures_from_the_interleaved_table() {
        let t = "| pipeline LAN->WAN encrypt aes128gcm16 | 64 | 125.9 | 1.6 | 124.3 | 1.30 | +28.6 | MET |\n\
                 | pipeline WAN->LAN decrypt aes128gcm16 | 64 | 128.6 | 3.5 | 125.1 | 1.31 | +37.3 | |\n\
                 | pipeline LAN->WAN encrypt aes128gcm16 | 1400 | 243.3 | 1.6 | 241.7 | 1.14 | +29.3 | MET |\n";
        let m = pipeline_ns(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&64], 124.3);
        assert_eq!(pipeline_for("1400", &m), Some(241.7));
        assert_eq!(pipeline_for("512", &m), Some(124.3));
        // IMIX: 7 x 64 + 4 x 570 (nearest 64) + 1 x 1400 (nearest 1400).
        let imix = pipeline_for("imix", &m).unwrap();
        assert!((imix - (11.0 * 124.3 + 241.7) / 12.0).abs() < 1e-9);
    }

    #[test]
    fn sizes_in_report_order() {
        let mut z = vec!["imix", "1400", "64", "512"];
        z.sort_by_key(|z| size_order(z));
        assert_eq!(z, ["64", "512", "1400", "imix"]);
    }
}
