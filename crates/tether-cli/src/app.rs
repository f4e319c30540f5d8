//! What `tether serve` answers: the operational endpoints (metrics, readiness, liveness and
//! the live page) and either the demo endpoints, for trying and measuring the engine, or a
//! folder of files. The demo answers come from static bytes, so serving them allocates
//! nothing.

use std::io;
use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use tether::{
    CloseReason, ConnState, Handle, Handler, Request, Response, Snapshot, Status,
    REQUESTS_PER_CONN_BUCKETS,
};
use tether_files::Files;

use crate::access_log::{body_bytes_sent, version_str, AccessLog, Entry};

const PLAINTEXT: &[u8] = b"Hello, World!";
const JSON: &[u8] = br#"{"message":"Hello, World!"}"#;

/// The live page: plain HTML, CSS and script, refreshed from `metrics.json` beside it. The
/// list of endpoints goes where the page says `<!--ENDPOINTS-->`.
const PAGE: &str = include_str!("page.html");

/// Content type of the Prometheus text exposition format.
pub const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where the operational endpoints live.
#[derive(Clone, Debug)]
pub struct Paths {
    /// The live page.
    pub page: String,
    /// Counters: Prometheus text, or JSON when asked.
    pub metrics: String,
    /// Counters as JSON, always (what the live page reads).
    pub metrics_json: String,
    /// Readiness: 200, or 503 from the start of a shutdown.
    pub ready: String,
    /// Liveness: 200 while the process serves.
    pub live: String,
}

impl Paths {
    /// Every endpoint under `prefix` (which ends with `/`): the page at the prefix itself,
    /// then `metrics`, `metrics.json`, `readyz` and `healthz`.
    pub fn under(prefix: &str) -> Paths {
        Paths {
            page: prefix.to_owned(),
            metrics: format!("{prefix}metrics"),
            metrics_json: format!("{prefix}metrics.json"),
            ready: format!("{prefix}readyz"),
            live: format!("{prefix}healthz"),
        }
    }

    fn is_admin(&self, path: &str) -> bool {
        [
            &self.page,
            &self.metrics,
            &self.metrics_json,
            &self.ready,
            &self.live,
        ]
        .iter()
        .any(|p| *p == path)
    }
}

/// What answers besides the operational endpoints.
pub enum Site {
    /// `/plaintext`, `/json`, `/echo`.
    Demo,
    /// The files of a folder, at `/`.
    Files(Files),
    /// Nothing: a listener of the operational endpoints alone (`--admin-listen`).
    Nothing,
}

/// The handler of `tether serve`. Each worker makes its own; they share the server's
/// [`Handle`].
pub struct App {
    handle: Handle,
    /// The operational endpoints, when this listener serves them.
    admin: Option<Arc<Paths>>,
    /// The live page with its list of endpoints, made once per worker.
    page: Arc<[u8]>,
    site: Site,
    /// Where each exchange is logged (`--access-log`), if anywhere.
    log: Option<AccessLog>,
}

impl App {
    pub fn new(
        handle: Handle,
        admin: Option<Arc<Paths>>,
        site: Site,
        log: Option<AccessLog>,
    ) -> App {
        let page = match &admin {
            Some(paths) => PAGE.replace("<!--ENDPOINTS-->", &endpoints(paths, &site)),
            None => String::new(),
        };
        App {
            handle,
            admin,
            page: page.into_bytes().into(),
            site,
            log,
        }
    }

    fn admin(&self, req: &Request<'_>, res: &mut Response<'_>, p: &Paths) {
        let path = req.path();
        if !matches!(req.method(), "GET" | "HEAD") {
            not_allowed(res, "GET, HEAD");
        } else if path == p.page {
            res.content_type("text/html; charset=utf-8")
                .header("Cache-Control", "no-store")
                .write(&self.page);
        } else if path == p.metrics {
            metrics(res, &self.handle, wants_json(req));
        } else if path == p.metrics_json {
            metrics(res, &self.handle, true);
        } else if path == p.ready {
            if self.handle.is_draining() {
                res.status(Status::SERVICE_UNAVAILABLE);
                static_body(res, "text/plain", b"draining\n");
            } else {
                static_body(res, "text/plain", b"ready\n");
            }
        } else {
            static_body(res, "text/plain", b"ok\n");
        }
    }
}

/// The page's list of endpoints, as HTML rows.
fn endpoints(p: &Paths, site: &Site) -> String {
    let mut rows: Vec<(&str, &str, &str)> = match site {
        Site::Demo => vec![
            ("GET", "/plaintext", "Hello, World! (text/plain)"),
            (
                "GET",
                "/json",
                "{\"message\":\"Hello, World!\"} (application/json)",
            ),
            ("POST", "/echo", "the request body back"),
        ],
        Site::Files(_) => vec![("GET", "/", "the files of the folder")],
        Site::Nothing => Vec::new(),
    };
    rows.extend([
        ("GET", p.page.as_str(), "this page"),
        (
            "GET",
            p.metrics.as_str(),
            "connection and request counters (Prometheus text; JSON with ?format=json)",
        ),
        ("GET", p.metrics_json.as_str(), "the same counters as JSON"),
        (
            "GET",
            p.ready.as_str(),
            "readiness: 200, or 503 once the server is draining",
        ),
        ("GET", p.live.as_str(), "liveness: 200"),
    ]);
    rows.iter()
        .map(|(m, path, what)| {
            format!(
                "<tr><td>{m}</td><td><code>{}</code></td><td>{}</td></tr>\n",
                escape(path),
                escape(what)
            )
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The paths of the demo, which no operational endpoint may take.
pub const DEMO_PATHS: [&str; 3] = ["/plaintext", "/json", "/echo"];

impl Handler for App {
    async fn call(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        // The demo's own paths first, in place: they are what benchmarks ask for.
        let result = if matches!(self.site, Site::Demo) {
            let get = matches!(req.method(), "GET" | "HEAD");
            match req.path() {
                "/plaintext" if get => {
                    static_body(res, "text/plain", PLAINTEXT);
                    Ok(())
                }
                "/json" if get => {
                    static_body(res, "application/json", JSON);
                    Ok(())
                }
                "/echo" if req.method() == "POST" => echo(req, res).await,
                "/plaintext" | "/json" => {
                    not_allowed(res, "GET, HEAD");
                    Ok(())
                }
                "/echo" => {
                    not_allowed(res, "POST");
                    Ok(())
                }
                _ => self.rest(req, res).await,
            }
        } else {
            self.rest(req, res).await
        };
        if let Some(log) = &self.log {
            log.record(&Entry {
                peer: req.peer_addr(),
                method: req.method(),
                target: req.target(),
                version: version_str(req.version()),
                status: res.status_code().0,
                body_bytes: body_bytes_sent(
                    req.method() == "HEAD",
                    res.status_code(),
                    res.body_len(),
                ),
                referer: req.header("referer"),
                user_agent: req.header("user-agent"),
            });
        }
        result
    }
}

impl App {
    /// Everything but the demo's paths: the operational endpoints, then the folder.
    async fn rest(&self, req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
        if let Some(p) = &self.admin {
            if p.is_admin(req.path()) {
                self.admin(req, res, p);
                return Ok(());
            }
        }
        match &self.site {
            Site::Files(files) => files.serve(req, res).await,
            Site::Demo | Site::Nothing => {
                static_body(res.status(Status::NOT_FOUND), "text/plain", b"Not Found\n");
                Ok(())
            }
        }
    }
}

fn static_body(res: &mut Response<'_>, content_type: &str, body: &'static [u8]) {
    res.content_type(content_type).body_static(body);
}

fn not_allowed(res: &mut Response<'_>, allow: &str) {
    res.status(Status::METHOD_NOT_ALLOWED)
        .header("Allow", allow);
    static_body(res, "text/plain", b"Method Not Allowed\n");
}

/// Answers with the request body, under the request's `Content-Type`.
///
/// A body that fails to arrive (malformed chunked framing, too large, too slow) makes the
/// read fail; returning that error lets the engine replace this response with 400, 413 or
/// 408 and close, so a partial body is never sent as a 200.
async fn echo(req: &mut Request<'_>, res: &mut Response<'_>) -> io::Result<()> {
    match req.header("content-type") {
        Some(ct) => res.header("Content-Type", ct),
        None => res.content_type("application/octet-stream"),
    };
    req.body().read_to_end(res.body_buf()).await?;
    Ok(())
}

/// The counters, as JSON or as Prometheus text.
fn metrics(res: &mut Response<'_>, handle: &Handle, json: bool) {
    let snapshot = handle.stats();
    res.header("Cache-Control", "no-store");
    if json {
        let metrics = Metrics::new(&snapshot, handle.is_draining());
        match serde_json::to_vec(&metrics) {
            Ok(mut body) => {
                body.push(b'\n');
                res.content_type("application/json").write(&body);
            }
            Err(e) => {
                tracing::warn!("metrics not encoded: {e}");
                res.status(Status::INTERNAL_SERVER_ERROR);
            }
        }
    } else {
        res.content_type(PROMETHEUS_TYPE)
            .write(snapshot.to_prometheus().as_bytes());
    }
}

/// `?format=json` wins; then `format=prometheus` or `format=text`; then `Accept`.
fn wants_json(req: &Request<'_>) -> bool {
    let format = req.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("format=").map(str::to_owned))
    });
    match format.as_deref() {
        Some("json") => true,
        Some(_) => false,
        None => req.header("accept").is_some_and(|accept| {
            accept
                .split(|&b| b == b',')
                .map(|t| t.split(|&b| b == b';').next().unwrap_or(t).trim_ascii())
                .any(|t| t.eq_ignore_ascii_case(b"application/json"))
        }),
    }
}

/// The JSON form of the counters.
///
/// ```json
/// {"accepted":3,"refused":0,"requests":7,"open":1,"closed":2,"draining":false,
///  "states":{"new":0,"active":1,"idle":0,"closing":0},"parked":0,
///  "closed_by":{"peer_closed":1,"peer_reset":0,...},
///  "requests_per_connection":{"buckets":[{"le":0,"count":0},...,{"le":null,"count":0}],
///                             "sum":5,"count":2},
///  "bytes_read":512,"bytes_written":1024}
/// ```
///
/// Buckets count closed connections by requests served, each for itself (not cumulative);
/// `le` is the bucket's upper bound, `null` for the last, unbounded one. The byte counts
/// are what the sockets read and wrote, heads and bodies.
#[derive(Serialize)]
pub struct Metrics {
    accepted: u64,
    refused: u64,
    requests: u64,
    open: u64,
    closed: u64,
    draining: bool,
    states: Named,
    parked: u64,
    closed_by: Named,
    requests_per_connection: Histogram,
    bytes_read: u64,
    bytes_written: u64,
}

impl Metrics {
    pub fn new(s: &Snapshot, draining: bool) -> Metrics {
        let states = [
            ConnState::New,
            ConnState::Active,
            ConnState::Idle,
            ConnState::Closing,
        ];
        Metrics {
            accepted: s.accepted,
            refused: s.refused,
            requests: s.requests,
            open: s.open(),
            closed: s.closed,
            draining,
            states: Named(
                states
                    .iter()
                    .map(|&st| (st.name(), s.in_state(st)))
                    .collect(),
            ),
            parked: s.parked,
            closed_by: Named(
                CloseReason::ALL
                    .iter()
                    .map(|&r| (r.name(), s.closed_for(r)))
                    .collect(),
            ),
            requests_per_connection: Histogram {
                buckets: REQUESTS_PER_CONN_BUCKETS
                    .iter()
                    .zip(s.requests_per_conn)
                    .map(|(&le, count)| ((le != u64::MAX).then_some(le), count))
                    .collect(),
                sum: s.requests_per_conn_sum,
                count: s.requests_per_conn.iter().sum(),
            },
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
        }
    }
}

/// Counts by name, serialised as a JSON object in the engine's order.
struct Named(Vec<(&'static str, u64)>);

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, n) in &self.0 {
            map.serialize_entry(name, n)?;
        }
        map.end()
    }
}

struct Histogram {
    buckets: Vec<(Option<u64>, u64)>,
    sum: u64,
    count: u64,
}

impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Bucket {
            le: Option<u64>,
            count: u64,
        }
        struct Buckets<'a>(&'a [(Option<u64>, u64)]);
        impl Serialize for Buckets<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.len()))?;
                for &(le, count) in self.0 {
                    seq.serialize_element(&Bucket { le, count })?;
                }
                seq.end()
            }
        }
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("buckets", &Buckets(&self.buckets))?;
        map.serialize_entry("sum", &self.sum)?;
        map.serialize_entry("count", &self.count)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_names_every_state_reason_and_bucket() {
        let mut s = Snapshot {
            accepted: 5,
            closed: 3,
            requests_per_conn_sum: 6,
            ..Snapshot::default()
        };
        s.states[1] = 2;
        s.closed_by[CloseReason::Evicted as usize] = 3;
        s.requests_per_conn[2] = 3;
        let v: serde_json::Value =
            serde_json::to_value(Metrics::new(&s, true)).expect("serialisable");
        assert_eq!(v["accepted"], 5);
        assert_eq!(v["open"], 2);
        assert_eq!(v["draining"], true);
        assert_eq!(v["states"]["active"], 2);
        assert_eq!(v["states"].as_object().map(|o| o.len()), Some(4));
        assert_eq!(v["closed_by"]["evicted"], 3);
        assert_eq!(
            v["closed_by"].as_object().map(|o| o.len()),
            Some(CloseReason::ALL.len())
        );
        let h = &v["requests_per_connection"];
        assert_eq!(h["buckets"][2], serde_json::json!({"le": 2, "count": 3}));
        assert_eq!(
            h["buckets"][REQUESTS_PER_CONN_BUCKETS.len() - 1]["le"],
            serde_json::Value::Null
        );
        assert_eq!((h["sum"].as_u64(), h["count"].as_u64()), (Some(6), Some(3)));
    }
}
