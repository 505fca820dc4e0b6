//! `portcullis corpus eval|replay`: detection and false-positive rates on request corpora.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use portcullis::corpus::{self, Outcome, Record, Report};
use portcullis::waf::{Waf, WafPolicy};

/// Corpus commands.
#[derive(Subcommand)]
pub enum CorpusCommand {
    /// Run corpus records through the WAF engine in process (no network): fast, for rule work.
    Eval(EvalArgs),
    /// Send corpus records to a running gateway (or any HTTP endpoint) and score its answers.
    Replay(ReplayArgs),
}

/// Options shared by eval and replay.
#[derive(Args)]
pub struct Common {
    /// JSONL files in the ../shared/corpora format.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print a row per category, not just per source.
    #[arg(long)]
    categories: bool,
    /// Write a JSON summary here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Keep a fixed pseudo-random sample of this many records per file.
    #[arg(long)]
    sample: Option<usize>,
    /// Seed of the sample.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the ids of missed attacks (`misses`) or blocked benign requests (`fp`).
    #[arg(long, value_parser = ["misses", "fp"])]
    show: Option<String>,
    /// Only show records whose category contains this text.
    #[arg(long)]
    only: Option<String>,
    /// At most this many records are shown.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Fail (exit 1) when a source's detection falls below, or its false-positive rate rises
    /// above, the floors and ceilings recorded in this JSON file.
    #[arg(long)]
    floors: Option<PathBuf>,
}

/// Recorded floors and ceilings per source: `{"sources": {"gotestwaf": {"min_tpr": 0.7, "max_fpr": 0.05}}}`.
#[derive(serde::Deserialize)]
struct Floors {
    sources: std::collections::BTreeMap<String, Floor>,
}

#[derive(serde::Deserialize)]
struct Floor {
    #[serde(default)]
    min_tpr: Option<f64>,
    #[serde(default)]
    max_fpr: Option<f64>,
}

/// Compares a report with recorded floors; returns the regressions.
fn regressions(report: &Report, floors: &Floors) -> Vec<String> {
    let mut out: Vec<String> = report
        .sources
        .keys()
        .filter(|src| !floors.sources.contains_key(*src))
        .map(|src| format!("{src}: no floor recorded; add it to the floors file"))
        .collect();
    for (src, f) in &floors.sources {
        let Some(s) = report.sources.get(src) else {
            continue;
        };
        if let (Some(min), Some(tpr)) = (f.min_tpr, s.tpr) {
            if tpr < min {
                out.push(format!(
                    "{src}: detection {:.2}% is below the floor {:.2}%",
                    tpr * 100.0,
                    min * 100.0
                ));
            }
        }
        if let (Some(max), Some(fpr)) = (f.max_fpr, s.fpr) {
            if fpr > max {
                out.push(format!(
                    "{src}: false positives {:.2}% exceed the ceiling {:.2}%",
                    fpr * 100.0,
                    max * 100.0
                ));
            }
        }
    }
    out
}

/// `corpus eval` options.
#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    common: Common,
    /// Rule files or directories (default: ./rules or the shipped rules).
    #[arg(long = "rules", value_name = "PATH")]
    rules: Vec<PathBuf>,
    /// Paranoia level.
    #[arg(long, default_value_t = 1)]
    paranoia: u8,
    /// Anomaly threshold.
    #[arg(long, default_value_t = 5)]
    threshold: u32,
    /// Score CRS records expected at or below this paranoia level (default: --paranoia).
    #[arg(long)]
    pl: Option<u8>,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// `corpus replay` options.
#[derive(Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    common: Common,
    /// Base URL of the endpoint under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    url: String,
    /// The same stack without a WAF; records it does not answer 2xx are left out.
    #[arg(long)]
    control: Option<String>,
    /// Parallel connections.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Paranoia level under test: CRS records expected only above it are left out.
    #[arg(long, default_value_t = 1)]
    pl: u8,
    /// Statuses that count as blocked.
    #[arg(long, num_args = 1.., default_values_t = [403u16])]
    block_status: Vec<u16>,
    /// Host header for records without one.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

fn load_all(c: &Common) -> Result<Vec<Record>, String> {
    let mut all = Vec::new();
    for f in &c.files {
        all.extend(corpus::load(f, c.sample, c.seed)?);
    }
    Ok(all)
}

fn finish(
    c: &Common,
    records: &[Record],
    outcomes: &[Outcome],
    settings: serde_json::Value,
) -> ExitCode {
    let report = Report::build(records, outcomes);
    print!("{}", report.table(c.categories));
    if let Some(which) = &c.show {
        let want_block = which == "misses";
        let mut shown = 0;
        for o in outcomes {
            let r = &records[o.index];
            if o.excluded.is_some()
                || (r.expect == "block") != want_block
                || o.blocked == want_block
                || c.only
                    .as_ref()
                    .is_some_and(|f| !r.category.contains(f.as_str()))
            {
                continue;
            }
            println!(
                "{} {} {} {}",
                r.id,
                o.status,
                r.method,
                truncate(&r.target, 160)
            );
            shown += 1;
            if shown >= c.limit {
                break;
            }
        }
    }
    if let Some(path) = &c.floors {
        let floors: Floors = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let bad = regressions(&report, &floors);
        if !bad.is_empty() {
            for b in &bad {
                println!("REGRESSION {b}");
            }
            return ExitCode::FAILURE;
        }
        println!(
            "all sources within the floors and ceilings of {}",
            path.display()
        );
    }
    if let Some(path) = &c.summary {
        let json = serde_json::json!({ "settings": settings, "report": report });
        match serde_json::to_string_pretty(&json) {
            Ok(text) => {
                if let Err(e) = std::fs::write(path, text) {
                    eprintln!("{}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("summary: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

fn truncate(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        let mut end = n;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &s[..end])
    }
}

/// Runs a corpus command.
pub fn run(cmd: CorpusCommand) -> ExitCode {
    match cmd {
        CorpusCommand::Eval(a) => {
            let Some(rs) = super::rules::load(&a.rules) else {
                return ExitCode::FAILURE;
            };
            let waf = match Waf::build(rs, &[a.paranoia]) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let records = match load_all(&a.common) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let policy = WafPolicy {
                paranoia: a.paranoia,
                threshold: a.threshold,
                ..WafPolicy::default()
            };
            let started = std::time::Instant::now();
            let outcomes = corpus::evaluate(
                &waf,
                &policy,
                &records,
                a.pl.unwrap_or(a.paranoia),
                a.threads,
            );
            eprintln!("{} records in {:.2?}", records.len(), started.elapsed());
            finish(
                &a.common,
                &records,
                &outcomes,
                serde_json::json!({"mode": "eval", "paranoia": a.paranoia, "threshold": a.threshold}),
            )
        }
        CorpusCommand::Replay(a) => {
            let records = match load_all(&a.common) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            let opts = corpus::ReplayOptions {
                url: &a.url,
                control: a.control.as_deref(),
                workers: a.workers,
                pl: a.pl,
                block_status: &a.block_status,
                host: &a.host,
                timeout: Duration::from_secs(a.timeout),
            };
            let started = std::time::Instant::now();
            let outcomes = match corpus::replay(&records, &opts) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            eprintln!("{} records in {:.2?}", records.len(), started.elapsed());
            finish(
                &a.common,
                &records,
                &outcomes,
                serde_json::json!({"mode": "replay", "url": a.url, "control": a.control, "pl": a.pl}),
            )
        }
    }
}
