//! Corpus replay: attack and benign requests in the `../shared/corpora` JSONL format, sent to any
//! HTTP endpoint (or run through the engine offline) and scored per source and category —
//! detection rate (attacks blocked) and false-positive rate (benign requests blocked).

pub mod http1;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::waf::{body_text, decode_body, SampleRequest, Waf, WafPolicy};

/// One corpus record.
#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    /// Unique id.
    pub id: String,
    /// Corpus name.
    pub source: String,
    /// Category within the source.
    pub category: String,
    /// `block` (an attack) or `pass` (legitimate).
    pub expect: String,
    /// Method, sent as is.
    pub method: String,
    /// Request target, sent verbatim.
    pub target: String,
    /// Headers in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Text body.
    #[serde(default)]
    pub body: Option<String>,
    /// Binary body, base64.
    #[serde(default)]
    pub body_b64: Option<String>,
    /// Paranoia level from which CRS blocks (CRS records).
    #[serde(default)]
    pub pl: Option<u8>,
    /// HTTP version when not HTTP/1.1.
    #[serde(default)]
    pub version: Option<String>,
    /// Send the headers exactly as listed.
    #[serde(default)]
    pub verbatim: bool,
}

impl Record {
    fn body_bytes(&self) -> Vec<u8> {
        match &self.body_b64 {
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .unwrap_or_default(),
            None => self.body.clone().unwrap_or_default().into_bytes(),
        }
    }

    /// The bytes to write, and whether the connection may be reused after them.
    pub fn request_bytes(&self, host: &str) -> (Vec<u8>, bool) {
        let version = self.version.as_deref().unwrap_or("HTTP/1.1");
        let body = self.body_bytes();
        let mut headers = self.headers.clone();
        if !self.verbatim {
            let has =
                |h: &[(String, String)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
            if !has(&headers, "host") {
                headers.insert(0, ("Host".into(), host.into()));
            }
            if !has(&headers, "content-length")
                && !has(&headers, "transfer-encoding")
                && (!body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT" | "PATCH"))
            {
                headers.push(("Content-Length".into(), body.len().to_string()));
            }
        }
        let mut out = format!("{} {} {}\r\n", self.method, self.target, version).into_bytes();
        for (k, v) in &headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&body);
        let cl: Vec<&String> = headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v)
            .collect();
        let te = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
        let keep = version == "HTTP/1.1"
            && !te
            && cl.len() <= 1
            && cl
                .first()
                .is_none_or(|v| v.trim() == body.len().to_string())
            && (!cl.is_empty() || body.is_empty());
        (out, keep)
    }

    /// The record as an in-memory request for offline evaluation.
    pub fn sample(&self) -> SampleRequest {
        let mut s = SampleRequest::from_target(&self.method, &self.target);
        s.headers = self.headers.clone();
        let mut body = self.body_bytes();
        let chunked = self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
        });
        if chunked {
            // The gateway's HTTP layer removes chunked framing before the WAF sees a body.
            body = dechunk(&body).unwrap_or(body);
        }
        if body.is_empty() {
            return s;
        }
        // As the gateway reads a body: its codings undone (or inspected as sent when they cannot
        // be), then decoded as text by its byte order mark or content type.
        let header = |name: &str| {
            let values: Vec<&str> = self
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        };
        let limit = WafPolicy::default().body_limit;
        let decoded = decode_body(header("content-encoding").as_deref(), &body, limit)
            .unwrap_or(std::borrow::Cow::Borrowed(&body));
        let content_type = s.content_type().map(str::to_string);
        s.body = Some(body_text(content_type.as_deref(), &decoded).into_owned());
        s
    }
}

/// Removes chunked transfer coding; `None` when the framing is malformed.
fn dechunk(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = b;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or(&[]);
    }
}

/// Reads a JSONL corpus; `sample` keeps a fixed pseudo-random subset of that many records.
pub fn load(path: &Path, sample: Option<usize>, seed: u64) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?;
        out.push(r);
    }
    if let Some(n) = sample {
        if out.len() > n {
            // Deterministic selection: order by a keyed hash of the id.
            out.sort_by_key(|r| fnv(seed, &r.id));
            out.truncate(n);
            out.sort_by(|a, b| a.id.cmp(&b.id));
        }
    }
    Ok(out)
}

fn fnv(seed: u64, s: &str) -> u64 {
    let mut h = 0xcbf29ce484222325u64 ^ seed;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Why a record is not scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// CRS expects a block only at a higher paranoia level.
    AbovePl,
    /// The control (no WAF) did not answer 2xx: the HTTP stack rejects it.
    ControlRejected,
    /// No usable answer.
    NoResponse,
}

/// The outcome of one record.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index of the record.
    pub index: usize,
    /// Status from the gateway (0: none; offline: 403 or 200).
    pub status: u16,
    /// Whether it counts as blocked.
    pub blocked: bool,
    /// Why it is not scored, if it is not.
    pub excluded: Option<Excluded>,
}

/// Scores of one group of records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    /// Scored records.
    pub n: usize,
    /// Scored attacks.
    pub n_block: usize,
    /// Attacks blocked.
    pub tp: usize,
    /// Scored benign records.
    pub n_pass: usize,
    /// Benign records not blocked.
    pub tn: usize,
    /// Detection rate.
    pub tpr: Option<f64>,
    /// True-negative rate (1 − false-positive rate).
    pub tnr: Option<f64>,
    /// False-positive rate.
    pub fpr: Option<f64>,
    /// Left out: above the paranoia level under test.
    pub above_pl: usize,
    /// Left out: rejected by the control.
    pub control_rejected: usize,
    /// Left out: no answer.
    pub no_response: usize,
    /// Gateway answers other than 2xx and 403 among scored records (e.g. 400, 413).
    pub other_status: usize,
}

impl Score {
    fn add(&mut self, expect_block: bool, o: &Outcome) {
        match o.excluded {
            Some(Excluded::AbovePl) => self.above_pl += 1,
            Some(Excluded::ControlRejected) => self.control_rejected += 1,
            Some(Excluded::NoResponse) => self.no_response += 1,
            None => {
                self.n += 1;
                if !(200..300).contains(&o.status) && o.status != 403 {
                    self.other_status += 1;
                }
                if expect_block {
                    self.n_block += 1;
                    self.tp += usize::from(o.blocked);
                } else {
                    self.n_pass += 1;
                    self.tn += usize::from(!o.blocked);
                }
            }
        }
    }

    fn finish(&mut self) {
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        self.tpr = ratio(self.tp, self.n_block);
        self.tnr = ratio(self.tn, self.n_pass);
        self.fpr = self.tnr.map(|t| 1.0 - t);
    }
}

/// Scores per source, and per category within each source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Source → overall score.
    pub sources: BTreeMap<String, Score>,
    /// Source → category → score.
    pub categories: BTreeMap<String, BTreeMap<String, Score>>,
}

impl Report {
    /// Tallies outcomes.
    pub fn build(records: &[Record], outcomes: &[Outcome]) -> Report {
        let mut r = Report::default();
        for o in outcomes {
            let rec = &records[o.index];
            let block = rec.expect == "block";
            r.sources
                .entry(rec.source.clone())
                .or_default()
                .add(block, o);
            r.categories
                .entry(rec.source.clone())
                .or_default()
                .entry(rec.category.clone())
                .or_default()
                .add(block, o);
        }
        r.sources.values_mut().for_each(Score::finish);
        r.categories
            .values_mut()
            .flat_map(|m| m.values_mut())
            .for_each(Score::finish);
        r
    }

    /// A text table: one row per source, then its categories.
    pub fn table(&self, categories: bool) -> String {
        let pct = |x: Option<f64>| {
            x.map(|v| format!("{:6.2}", v * 100.0))
                .unwrap_or_else(|| "     -".into())
        };
        let row = |name: &str, s: &Score| {
            format!(
                "{name:<46} {:>6} {} {} {:>6} {:>6} {:>7} {:>5} {:>6} {:>5}\n",
                s.n,
                pct(s.tpr),
                pct(s.fpr),
                s.n_block,
                s.n_pass,
                s.control_rejected,
                s.above_pl,
                s.no_response,
                s.other_status
            )
        };
        let mut out = format!(
            "{:<46} {:>6} {:>6} {:>6} {:>6} {:>6} {:>7} {:>5} {:>6} {:>5}\n",
            "source / category",
            "n",
            "TPR%",
            "FPR%",
            "n_blk",
            "n_pass",
            "ctl_rej",
            ">pl",
            "noresp",
            "other"
        );
        for (src, s) in &self.sources {
            out.push_str(&row(src, s));
            if categories {
                if let Some(cats) = self.categories.get(src) {
                    for (c, s) in cats {
                        out.push_str(&row(&format!("  {c}"), s));
                    }
                }
            }
        }
        out
    }
}

/// Runs every record through `waf` in process, `threads` at a time.
pub fn evaluate(
    waf: &Waf,
    policy: &WafPolicy,
    records: &[Record],
    pl: u8,
    threads: usize,
) -> Vec<Outcome> {
    let chunks: Vec<Vec<usize>> = (0..threads.max(1))
        .map(|t| (t..records.len()).step_by(threads.max(1)).collect())
        .collect();
    let mut out: Vec<Outcome> = std::thread::scope(|sc| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|idx| {
                sc.spawn(move || {
                    idx.into_iter()
                        .map(|i| {
                            let rec = &records[i];
                            if rec.pl.is_some_and(|p| p > pl) {
                                return Outcome {
                                    index: i,
                                    status: 0,
                                    blocked: false,
                                    excluded: Some(Excluded::AbovePl),
                                };
                            }
                            let insp = waf.inspect_sample(&rec.sample(), policy);
                            let blocked = policy.over_threshold(&insp);
                            Outcome {
                                index: i,
                                status: if blocked { 403 } else { 200 },
                                blocked,
                                excluded: None,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|o| o.index);
    out
}

/// Settings of a network replay.
pub struct ReplayOptions<'a> {
    /// The endpoint under test.
    pub url: &'a str,
    /// The same stack without a WAF, to find requests the HTTP stack itself rejects.
    pub control: Option<&'a str>,
    /// Parallel connections.
    pub workers: usize,
    /// Paranoia level under test (CRS records above it are left out).
    pub pl: u8,
    /// Statuses that count as blocked.
    pub block_status: &'a [u16],
    /// Host header added when a record has none.
    pub host: &'a str,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Sends every record to `opts.url` (and the control) over keep-alive connections.
pub fn replay(records: &[Record], opts: &ReplayOptions<'_>) -> Result<Vec<Outcome>, String> {
    let workers = opts.workers.max(1);
    // Fail early on a bad URL.
    http1::Conn::new(opts.url, opts.timeout)?;
    if let Some(c) = opts.control {
        http1::Conn::new(c, opts.timeout)?;
    }
    let mut out: Vec<Outcome> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                sc.spawn(move || {
                    let mut conn = http1::Conn::new(opts.url, opts.timeout).ok();
                    let mut control = opts
                        .control
                        .and_then(|c| http1::Conn::new(c, opts.timeout).ok());
                    let mut res = Vec::new();
                    for i in (w..records.len()).step_by(workers) {
                        let rec = &records[i];
                        if rec.pl.is_some_and(|p| p > opts.pl) {
                            res.push(Outcome {
                                index: i,
                                status: 0,
                                blocked: false,
                                excluded: Some(Excluded::AbovePl),
                            });
                            continue;
                        }
                        let (bytes, keep) = rec.request_bytes(opts.host);
                        let head = rec.method == "HEAD";
                        let status = conn
                            .as_mut()
                            .map(|c| c.send(&bytes, head, keep))
                            .unwrap_or(0);
                        let control_status = control.as_mut().map(|c| c.send(&bytes, head, keep));
                        let excluded = if status == 0 {
                            Some(Excluded::NoResponse)
                        } else if control_status.is_some_and(|s| !(200..300).contains(&s)) {
                            Some(Excluded::ControlRejected)
                        } else {
                            None
                        };
                        res.push(Outcome {
                            index: i,
                            status,
                            blocked: opts.block_status.contains(&status),
                            excluded,
                        });
                    }
                    res
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    out.sort_by_key(|o| o.index);
    Ok(out)
}

#[cfg(test)]
mod tests;
