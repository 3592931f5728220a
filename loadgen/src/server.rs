//! Serving synthetic targets: one listener per target on loopback, all on one monoio thread.
//!
//! `GET /metrics` returns the target's body, gzip-compressed when the client accepts it (as real
//! exporters do), in the protobuf format when the client's `Accept` prefers it (the `uniform`
//! profile only; the text format otherwise, negotiated as client_golang negotiates:
//! OpenMetrics is not offered); `POST /-/vanish` makes the target answer 503 from then on, which a test uses
//! to watch a target go down and its series go stale; `POST /-/incident/start` and
//! `/-/incident/stop` make its `status="500"` request counters grow ten times faster in between,
//! which an alerting test uses to cross an error-ratio threshold and come back. When scrapes
//! are recorded ([`Arrivals`]), `GET /-/scrapes` returns when every target was scraped, by whom.

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use monoio::io::IntoPollIo;
use monoio::net::{ListenerOpts, TcpListener};
use monoio_compat::hyper::{MonoioIo, MonoioTimer};

use crate::arrivals::Arrivals;
use crate::exporters::{self, Churn};
use crate::{exposition, protobuf};

/// Which bodies targets serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// One shape for all targets with exactly known counter rates: what tests assert on.
    Uniform,
    /// Service, node and Redis exporters with moving values: what benchmarks load.
    Mixed,
}

/// What every target serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Load {
    pub targets: usize,
    /// Series per target.
    pub series: usize,
    pub profile: Profile,
    /// Pod churn (mixed profile only).
    pub churn: Option<Churn>,
    /// Latency histograms with native buckets (uniform profile; see [`crate::latency`]).
    pub native_histograms: bool,
    /// If not 0, values are those of the scrape's time rounded down to a multiple of this many
    /// milliseconds since the start, and protobuf bodies carry that time as each metric's
    /// timestamp: every scraper that scrapes within the same step stores the same samples.
    pub timestamp_step_ms: u64,
}

/// The formats a body is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Text,
    Protobuf,
}

impl Load {
    /// The body of target `index`, `elapsed` seconds after start, `incident` of them in an
    /// incident, in the text format.
    pub fn body(&self, index: usize, elapsed: f64, incident: f64) -> String {
        match self.profile {
            Profile::Uniform => exposition::render_text(self.series, index, elapsed, incident, self.native_histograms),
            Profile::Mixed => exporters::render(self.series, index, self.targets, elapsed, self.churn),
        }
    }

    /// The body of target `index` in `format`, at `elapsed` seconds after `started` (ms since
    /// the epoch), rounded down to the timestamp step if there is one.
    fn serve(&self, format: Served, index: usize, started: i64, elapsed: f64, incident: f64) -> (Bytes, &'static str) {
        let (elapsed, timestamp) = match self.timestamp_step_ms {
            0 => (elapsed, None),
            step => {
                let at = (elapsed * 1000.0) as u64 / step * step;
                (at as f64 / 1000.0, Some(started + at as i64))
            }
        };
        match (format, self.profile) {
            (Served::Protobuf, Profile::Uniform) => {
                let body =
                    protobuf::render_protobuf(self.series, index, elapsed, incident, self.native_histograms, timestamp);
                (Bytes::from(body), pyrite_core::exposition::protobuf::CONTENT_TYPE)
            }
            _ => (Bytes::from(self.body(index, elapsed, incident)), "text/plain; version=0.0.4; charset=utf-8"),
        }
    }
}

/// The format an `Accept` header prefers among those served: its entries by weight (the
/// first of equal ones first), the first that is the delimited protobuf format, `text/plain`
/// or `*/*`; the text format if none is.
fn negotiate(accept: &str) -> Served {
    let mut offers: Vec<(f64, Served)> = Vec::new();
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"').to_string()))
            .collect();
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let q = param("q").and_then(|q| q.parse().ok()).unwrap_or(1.0);
        let served = match media.as_str() {
            "application/vnd.google.protobuf"
                if param("proto") == Some("io.prometheus.client.MetricFamily")
                    && param("encoding") == Some("delimited") =>
            {
                Served::Protobuf
            }
            "text/plain" | "*/*" => Served::Text,
            _ => continue,
        };
        if q > 0.0 {
            offers.push((q, served));
        }
    }
    offers
        .iter()
        .fold(None::<(f64, Served)>, |best, &o| match best {
            Some(b) if b.0 >= o.0 => Some(b),
            _ => Some(o),
        })
        .map_or(Served::Text, |(_, served)| served)
}

/// Binds `targets` listeners on `ip` (ephemeral ports) and returns them with their addresses.
pub fn bind(ip: &str, targets: usize) -> std::io::Result<Vec<(TcpListener, SocketAddr)>> {
    (0..targets)
        .map(|_| {
            let listener = TcpListener::bind_with_config(format!("{ip}:0"), &ListenerOpts::new().reuse_port(false))?;
            let addr = listener.local_addr()?;
            Ok((listener, addr))
        })
        .collect()
}

/// Serves every listener forever, recording scrapes in `arrivals` if given. Call inside a
/// monoio runtime.
pub async fn serve(listeners: Vec<(TcpListener, SocketAddr)>, load: Load, arrivals: Option<Rc<Arrivals>>) {
    let started = Started::now();
    let mut tasks = Vec::new();
    for (index, (listener, _)) in listeners.into_iter().enumerate() {
        tasks.push(monoio::spawn(serve_target(listener, index, load, started, arrivals.clone())));
    }
    for t in tasks {
        t.await;
    }
}

/// When the targets started serving, on the monotonic clock and the wall clock (ms since the
/// epoch, for explicit timestamps).
#[derive(Debug, Clone, Copy)]
struct Started {
    at: Instant,
    wall_ms: i64,
}

impl Started {
    fn now() -> Started {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Started { at: Instant::now(), wall_ms: wall.as_millis() as i64 }
    }
}

/// A target's switches: vanished, and its incidents.
#[derive(Default)]
struct TargetState {
    vanished: Cell<bool>,
    /// Seconds spent in incidents that ended, and when the current one started.
    incident_seconds: Cell<f64>,
    incident_since: Cell<Option<Instant>>,
}

impl TargetState {
    fn incident(&self) -> f64 {
        self.incident_seconds.get() + self.incident_since.get().map_or(0.0, |s| s.elapsed().as_secs_f64())
    }
}

async fn serve_target(
    listener: TcpListener,
    index: usize,
    load: Load,
    started: Started,
    arrivals: Option<Rc<Arrivals>>,
) {
    let state = Rc::new(TargetState::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let Ok(io) = stream.into_poll_io() else { continue };
        let state = state.clone();
        let arrivals = arrivals.clone();
        monoio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let state = state.clone();
                let arrivals = arrivals.clone();
                async move { Ok::<_, Infallible>(respond(&req, &state, index, &load, started, arrivals.as_deref())) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(MonoioTimer)
                .serve_connection(MonoioIo::new(io), service)
                .await;
        });
    }
}

fn respond(
    req: &Request<hyper::body::Incoming>,
    state: &TargetState,
    index: usize,
    load: &Load,
    started: Started,
    arrivals: Option<&Arrivals>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/-/vanish") => {
            state.vanished.set(true);
            reply(StatusCode::OK, "vanished\n".into())
        }
        (&Method::POST, "/-/incident/start") => {
            if state.incident_since.get().is_none() {
                state.incident_since.set(Some(Instant::now()));
            }
            reply(StatusCode::OK, "incident started\n".into())
        }
        (&Method::POST, "/-/incident/stop") => {
            state.incident_seconds.set(state.incident());
            state.incident_since.set(None);
            reply(StatusCode::OK, "incident stopped\n".into())
        }
        (_, "/metrics") if state.vanished.get() => {
            reply(StatusCode::SERVICE_UNAVAILABLE, "this target has vanished\n".into())
        }
        (&Method::GET, "/-/scrapes") => match arrivals {
            Some(arrivals) => reply(StatusCode::OK, arrivals.render()),
            None => reply(StatusCode::NOT_FOUND, "scrapes are not recorded (--record-scrapes)\n".into()),
        },
        (&Method::GET, "/metrics") => {
            if let Some(arrivals) = arrivals {
                let agent = req.headers().get(hyper::header::USER_AGENT).and_then(|v| v.to_str().ok());
                arrivals.record(index, agent.unwrap_or(""));
            }
            let accept = req.headers().get(hyper::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let elapsed = started.at.elapsed().as_secs_f64();
            let (body, content_type) = load.serve(negotiate(accept), index, started.wall_ms, elapsed, state.incident());
            let gzip = req
                .headers()
                .get(hyper::header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            let mut r = Response::new(Full::new(if gzip { gzip_bytes(&body) } else { body }));
            let headers = r.headers_mut();
            headers.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
            if gzip {
                headers.insert(hyper::header::CONTENT_ENCODING, "gzip".parse().expect("valid header"));
            }
            r
        }
        _ => reply(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn gzip_bytes(data: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, data).expect("writing to a Vec cannot fail");
    Bytes::from(encoder.finish().expect("finishing a Vec cannot fail"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_the_one_the_accept_header_prefers() {
        let proto = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
        assert_eq!(
            negotiate(&format!("{proto};q=0.6,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1")),
            Served::Protobuf
        );
        assert_eq!(
            negotiate("application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"),
            Served::Text
        );
        assert_eq!(negotiate(&format!("text/plain;q=0.7,{proto};q=0.5")), Served::Text);
        assert_eq!(negotiate("application/vnd.google.protobuf;q=0.9,text/plain;q=0.1"), Served::Text, "not delimited");
        assert_eq!(negotiate(""), Served::Text);
        assert_eq!(negotiate(proto), Served::Protobuf);
    }
}
