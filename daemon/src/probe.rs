//! `pyrite health` and `pyrite ready`: the container health check of an image without a shell
//! or `wget` (ECS, Compose and Kubernetes run it in exec form). The probe asks the server on
//! this host for `/-/healthy` or `/-/ready` and exits 0 on a 200, 1 otherwise, within a short
//! timeout.
//!
//! It takes the server's own flags, so that a task definition can repeat the server's command
//! line: the URL is derived from `--web.listen-address` (the loopback address when the server
//! listens on every interface), `--web.route-prefix` or the path of `--web.external-url`
//! (behind a load balancer at `/prometheus` the probe asks `/prometheus/-/healthy`), and
//! `--web.config.file` (`https` when it turns TLS on). `--http.config.file` gives what the
//! probe needs to pass the server's checks — `basic_auth`, `tls_config` — in promtool's
//! format; `--url` names the server outright.

use anyhow::Context as _;

use crate::cli::{ProbeArgs, ServerFlags};
use crate::http::prefix::WebPaths;
use crate::http_client;

/// What a probe asks.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// `/-/healthy`: the process serves HTTP.
    Healthy,
    /// `/-/ready`: storage is loaded and queries are answered.
    Ready,
}

impl Probe {
    fn path(self) -> &'static str {
        match self {
            Probe::Healthy => "/-/healthy",
            Probe::Ready => "/-/ready",
        }
    }
}

/// Runs the probe: `Ok` with the server's answer on a 200, an error saying what went wrong
/// otherwise.
pub fn run(probe: Probe, args: &ProbeArgs) -> anyhow::Result<String> {
    let http = http_client::config_file(args.http_config_file.as_deref())?;
    anyhow::ensure!(args.timeout.millis() > 0, "--timeout must be above 0s");
    let url = match &args.url {
        Some(url) => given_url(url, probe)?,
        None => derived_url(&args.server, probe)?,
    };
    let none = |_: &str, _: &str| Ok(Vec::new());
    let answer = http_client::send(&http, "GET", &url, args.timeout.as_std(), &none, http_client::Payload::Empty)
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    // Redirects followed, as promtool follows them; then only a 200 is health.
    match answer.status() {
        200 => Ok(answer.into_string().unwrap_or_default()),
        code => anyhow::bail!("{url}: HTTP status {code}"),
    }
}

/// The URL of `probe` under `--url`, which names a server (and its path prefix) and nothing
/// more: with a query or fragment, the probe would ask another page than the one meant.
fn given_url(url: &str, probe: Probe) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).with_context(|| format!("--url {url:?}"))?;
    anyhow::ensure!(
        parsed.query().is_none() && parsed.fragment().is_none(),
        "--url {url:?}: a server's URL, without a query or fragment"
    );
    Ok(format!("{}{}", url.trim_end_matches('/'), probe.path()))
}

/// The URL of `probe` on the server the flags describe, reached on this host.
fn derived_url(server: &ServerFlags, probe: Probe) -> anyhow::Result<String> {
    let tls = match &server.web_config_file {
        Some(file) => crate::http::web_config::WebConfigFile::load(file)?.tls(),
        None => false,
    };
    let listen = crate::http::server::parse_listen_address(&server.listen_address)?;
    // A server on every interface answers on IPv4's loopback, dual-stack sockets included.
    let host = match listen.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let web = WebPaths::from_flags(
        server.external_url.as_deref(),
        server.route_prefix.as_deref(),
        &server.listen_address,
        tls,
    )?;
    let scheme = if tls { "https" } else { "http" };
    Ok(format!("{scheme}://{host}:{}{}", listen.port(), web.route(probe.path())))
}
