//! Serving synthetic targets: one listener per target on loopback, all on one monoio thread.
//!
//! `GET /metrics` returns the target's body, gzip-compressed when the client accepts it (as real
//! exporters do); `POST /-/vanish` makes the target answer 503 from then on, which a test uses
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
use crate::exposition;

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
}

impl Load {
    /// The body of target `index`, `elapsed` seconds after start, `incident` of them in an
    /// incident.
    pub fn body(&self, index: usize, elapsed: f64, incident: f64) -> String {
        match self.profile {
            Profile::Uniform => exposition::render(self.series, index, elapsed, incident),
            Profile::Mixed => exporters::render(self.series, index, self.targets, elapsed, self.churn),
        }
    }
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
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (index, (listener, _)) in listeners.into_iter().enumerate() {
        tasks.push(monoio::spawn(serve_target(listener, index, load, started, arrivals.clone())));
    }
    for t in tasks {
        t.await;
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
    started: Instant,
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
    started: Instant,
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
            let body = load.body(index, started.elapsed().as_secs_f64(), state.incident());
            let gzip = req
                .headers()
                .get(hyper::header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
            let mut r = Response::new(Full::new(if gzip { gzip_bytes(body.as_bytes()) } else { Bytes::from(body) }));
            let headers = r.headers_mut();
            headers.insert(
                hyper::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8".parse().expect("valid header"),
            );
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
