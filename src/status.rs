//! The pages under `/-/` (no mirror path starts with `-`):
//!
//! - `/-/metrics`: Prometheus text format;
//! - `/-/status`: an HTML page for people, self-contained (no external assets), that
//!   polls `/-/status.json` once a second;
//! - `/-/status.json`: the same numbers for scripts.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use crate::cache::Cache;
use crate::http::{Handler, Method, Request, Response, date};
use crate::metrics::{Metrics, Snapshot};

/// The status page's HTML (its script fetches `status.json`).
const PAGE: &str = include_str!("status.html");

/// The handler for `/-/`.
pub struct Ops {
    metrics: Arc<Metrics>,
    cache: Arc<Cache>,
}

impl Ops {
    /// Pages about `cache` and the request counters in `metrics`.
    pub fn new(metrics: Arc<Metrics>, cache: Arc<Cache>) -> Ops {
        Ops { metrics, cache }
    }
}

impl Handler for Ops {
    fn handle(&self, req: &mut Request) -> Response {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Response::method_not_allowed("GET, HEAD");
        }
        let page = match req.path_info() {
            "/metrics" => Response::bytes(
                "text/plain; version=0.0.4; charset=utf-8",
                Snapshot::take(&self.metrics, &self.cache).prometheus(),
            ),
            "/status.json" => Response::bytes(
                "application/json",
                json(&Snapshot::take(&self.metrics, &self.cache)),
            ),
            "/status" => Response::bytes("text/html; charset=utf-8", PAGE),
            "" | "/" => {
                let to = format!("{}/status", req.script_name());
                return Response::new(302)
                    .with_header("Location", to.clone())
                    .with_body(crate::http::Body::Bytes(format!("see {to}\n").into_bytes()));
            }
            _ => return Response::error(404),
        };
        page.with_header("Cache-Control", "no-store")
    }
}

/// The status as JSON.
pub fn json(s: &Snapshot) -> String {
    let mut o = String::with_capacity(2048);
    let _ = write!(
        o,
        "{{\"version\":{},\"started\":{},\"uptime_seconds\":{}",
        quote(env!("CARGO_PKG_VERSION")),
        quote(&date::format_rfc3339(s.started_at)),
        s.uptime.floor()
    );
    if let Some(a) = s.active {
        let _ = write!(o, ",\"active_requests\":{a}");
    }
    o.push_str(",\"requests\":{");
    for (i, (outcome, n, _)) in s.outcomes.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(o, "{sep}\"{}\":{n}", outcome.name());
    }
    let _ = write!(
        o,
        "}},\"hit_ratio\":{},\"bytes\":{{\"sent\":{},\"from_cache\":{},\"from_upstream\":{},\"saved\":{}}}",
        s.hit_ratio()
            .map_or("null".to_owned(), |r| format!("{r:.4}")),
        s.bytes_sent(),
        s.bytes_from_disk(),
        s.bytes_upstream(),
        s.bytes_saved()
    );
    let c = &s.cache;
    let _ = write!(
        o,
        ",\"cache\":{{\"bytes\":{},\"files\":{},\"max_bytes\":{},\"index_ready\":{},\"evictions\":{},\"evicted_bytes\":{}}}",
        c.bytes,
        c.files,
        c.cap.map_or("null".to_owned(), |n| n.to_string()),
        c.ready,
        c.evictions,
        c.evicted_bytes
    );
    let _ = write!(
        o,
        ",\"downloads_stored\":{},\"downloads_failed\":{}",
        s.stored, s.failed
    );
    json_sources(&mut o, s);
    json_verification(&mut o, s);
    json_downloads(&mut o, s);
    let _ = write!(
        o,
        ",\"now\":{}}}",
        quote(&date::format_rfc3339(SystemTime::now()))
    );
    o
}

/// `,"sources":[…]`: each source's counters and health, and the path prefix it
/// serves (`null` for a plain source).
fn json_sources(o: &mut String, s: &Snapshot) {
    o.push_str(",\"sources\":");
    json_source_list(o, &s.sources);
}

/// `,"origins":[…],"src_uri_fetches":N,"stored_checks":{…},"repo":{…}|null`: the
/// `SRC_URI` hosts asked, checks of stored files, and the `--repo` index.
fn json_verification(o: &mut String, s: &Snapshot) {
    let v = &s.verification;
    o.push_str(",\"origins\":");
    json_source_list(o, &v.origins);
    let _ = write!(
        o,
        ",\"src_uri_fetches\":{},\"stored_checks\":{{\"read\":{},\"failed\":{}}}",
        v.src_uri_fetches, v.stored_reads, v.stored_failures
    );
    match &v.repo {
        Some(r) => {
            let _ = write!(
                o,
                ",\"repo\":{{\"ready\":{},\"generation\":{},\"distfiles\":{},\"in_manifests\":{}}}",
                r.ready, r.generation, r.names, r.manifest_names
            );
        }
        None => o.push_str(",\"repo\":null"),
    }
}

/// `[…]`: sources' (or origins') counters and health.
fn json_source_list(o: &mut String, list: &[crate::metrics::SourceStats]) {
    o.push('[');
    for (i, src) in list.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        let (h, requests, failures, bytes) = (&src.health, src.requests, src.failures, src.bytes);
        let (error, error_at) = match &h.last_error {
            Some((e, t)) => (quote(e), quote(&date::format_rfc3339(*t))),
            None => ("null".into(), "null".into()),
        };
        let _ = write!(
            o,
            "{sep}{{\"url\":{},\"up\":{},\"requests\":{requests},\"failures\":{failures},\"bytes\":{bytes},\"verified\":{},\"mismatches\":{},\"latency_ms\":{},\"last_error\":{error},\"last_error_at\":{error_at},\"prefix\":{}}}",
            quote(&h.url),
            !h.down,
            src.verified,
            src.mismatches,
            h.last_latency.map_or("null".to_owned(), |l| format!(
                "{:.1}",
                l.as_secs_f64() * 1000.0
            )),
            h.prefix.as_deref().map_or("null".to_owned(), quote),
        );
    }
    o.push(']');
}

/// `,"downloads":[…]`: the downloads in progress.
fn json_downloads(o: &mut String, s: &Snapshot) {
    o.push_str(",\"downloads\":[");
    for (i, d) in s.downloads.iter().enumerate() {
        let sep = if i > 0 { "," } else { "" };
        let secs = d.elapsed.as_secs_f64();
        let rate = if secs > 0.0 {
            (d.written as f64 / secs) as u64
        } else {
            0
        };
        let _ = write!(
            o,
            "{sep}{{\"path\":{},\"received\":{},\"total\":{},\"clients\":{},\"elapsed_ms\":{},\"bytes_per_second\":{rate}}}",
            quote(&format!("/{}", d.key)),
            d.written,
            d.len.map_or("null".to_owned(), |n| n.to_string()),
            d.readers,
            d.elapsed.as_millis()
        );
    }
    o.push(']');
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `<` too, so the JSON can never close a script element it is embedded in.
            c if (c as u32) < 0x20 || c == '<' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\n\u{1}<"), "\"a\\\"b\\\\c\\n\\u0001\\u003c\"");
        assert_eq!(quote("ümlaut"), "\"ümlaut\"");
    }
}
