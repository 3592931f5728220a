//! The HTTP/1.1 server loop of one shard: hyper over monoio, routes from axum, and the web
//! settings every connection goes through.
//!
//! All shards accept on clones of one listening socket (bound once, without SO_REUSEPORT, so a
//! second server on the port is refused by the kernel); the kernel hands each connection to one
//! of the waiting shards. Before accepting, a shard takes one of `--web.max-connections` slots
//! shared by all shards, so connections beyond the limit wait in the kernel's accept queue, as
//! upstream's limited listener makes them wait. Each connection then gets the TLS configuration
//! in force (`--web.config.file`) and the `--web.read-timeout` deadline, and each request the
//! basic-auth users and response headers in force. hyper gets monoio's timer, without which it would silently
//! drop its header-read timeout and let slow clients hold connections open. A connection's I/O
//! is wrapped three times ([`connection_io`]): raw bytes in the first request line, a client's
//! half close, and the read deadline.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use monoio::io::IntoPollIo;
use monoio_compat::hyper::{MonoioIo, MonoioTimer};
use socket2::{Domain, Socket, Type};
use tower_service::Service;

use super::auth::Authenticator;
use super::client_gone::ClientSocket;
use super::deadline::{Deadline, DeadlineIo};
use super::half_close::{Answering, HalfCloseIo};
use super::raw_target::RawTarget;
use super::response::ApiError;
use super::tls;
use super::web_config::WebConfigFile;
use crate::panic::CatchPanic;
use crate::slots::Slots;

/// Time a client has to send its request headers (and to finish a TLS handshake), at most.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What every shard's server shares.
pub struct Settings {
    /// `--web.config.file`, and the authenticator its users are checked with.
    pub web: Option<(WebConfigFile, Authenticator)>,
    /// `--web.max-connections`, across all shards.
    pub connections: Slots,
    /// `--web.read-timeout` (`Duration::MAX` for none).
    pub read_timeout: Duration,
}

/// Binds the listening socket with explicit options: SO_REUSEADDR (restart over TIME_WAIT) and
/// no SO_REUSEPORT, so that binding a port another process listens on fails.
///
/// Every address (`:9090`, `0.0.0.0:9090`, `[::]:9090`) means every address of both families,
/// as Go's `net.Listen` reads it for upstream: one IPv6 socket on `[::]` with IPV6_V6ONLY off,
/// which takes IPv4 connections too (as `::ffff:a.b.c.d`); where the host has no IPv6,
/// `0.0.0.0`. Any other address is bound alone.
pub fn bind(address: &str) -> anyhow::Result<std::net::TcpListener> {
    let addr: SocketAddr = parse_listen_address(address)?;
    if addr.ip().is_unspecified() {
        let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, addr.port()));
        match bind_socket(any, Some(false)) {
            Ok(listener) => return Ok(listener),
            // No IPv6 on this host (module not loaded, or disabled): IPv4 alone.
            Err(e) if ipv6_unavailable(&e) => tracing::info!(error = %e, "IPv6 unavailable; listening on IPv4 only"),
            Err(e) => return Err(e),
        }
    }
    bind_socket(addr, None)
}

/// A listening socket on `addr`; `only_v6` sets IPV6_V6ONLY on an IPv6 socket.
fn bind_socket(addr: SocketAddr, only_v6: Option<bool>) -> anyhow::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .with_context(|| format!("listen tcp {addr}: socket"))?;
    if let Some(only_v6) = only_v6 {
        socket.set_only_v6(only_v6)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).with_context(|| format!("listen tcp {addr}: bind"))?;
    socket.listen(1024).with_context(|| format!("listen tcp {addr}"))?;
    Ok(socket.into())
}

/// Whether binding failed because the host cannot do IPv6 (rather than, say, the port being
/// taken, which IPv4 would not cure).
fn ipv6_unavailable(error: &anyhow::Error) -> bool {
    error
        .root_cause()
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|code| matches!(code, libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT))
}

/// Accepts `host:port` and Prometheus's `:port` (all interfaces; [`bind`] makes that both
/// families, the address returned here says `0.0.0.0`). A host name is looked up by Pyrite's
/// resolver.
pub fn parse_listen_address(address: &str) -> anyhow::Result<SocketAddr> {
    let full = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
    crate::dns::socket_addrs(&full)
        .with_context(|| format!("invalid --web.listen-address {address:?}"))?
        .into_iter()
        .next()
        .with_context(|| format!("--web.listen-address {address:?} resolves to nothing"))
}

/// Whether an accept failed for want of file descriptors or memory, which waiting may cure.
fn out_of_resources(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM))
}

/// First and longest waits before accepting again after an accept that failed for want of
/// resources.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MOST: Duration = Duration::from_secs(1);

/// Serves connections from `listener` until the process ends.
pub async fn serve(listener: monoio::net::TcpListener, router: Router, settings: Arc<Settings>) {
    loop {
        let slot = settings.connections.acquire().await;
        // Out of file descriptors and the like: back off from 5 ms to a second, as Go's server
        // does, so that a lasting shortage logs about once a second rather than spinning or
        // flooding.
        let mut backoff = ACCEPT_BACKOFF_FIRST;
        let stream = loop {
            match listener.accept().await {
                Ok((stream, _)) => break stream,
                Err(e) if out_of_resources(&e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "accept failed");
                    monoio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MOST);
                }
                // A connection that went before it was accepted, and the like: the next one
                // (after a millisecond, lest an error that lasts make the loop spin).
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    monoio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        };
        let (router, settings) = (router.clone(), settings.clone());
        monoio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, router, settings).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// The address a request came from (a request extension, when the socket knows its peer).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub std::net::IpAddr);

/// One connection: TLS if configured, then HTTP/1.1 until the client or a timeout closes it.
async fn connection(
    stream: monoio::net::TcpStream,
    router: Router,
    settings: Arc<Settings>,
) -> Result<(), Box<dyn std::error::Error>> {
    let tls = settings.web.as_ref().and_then(|(file, _)| file.current().tls.clone());
    let header_timeout = HEADER_READ_TIMEOUT.min(settings.read_timeout);
    let socket = ClientSocket(std::os::fd::AsRawFd::as_raw_fd(&stream));
    let address = stream.peer_addr().ok().map(|peer| ClientAddress(peer.ip()));
    let stream = stream.into_poll_io()?;
    let deadline = Deadline::start(settings.read_timeout);
    let answering = Answering::new(deadline.clone());
    let builder = {
        let mut b = hyper::server::conn::http1::Builder::new();
        b.timer(MonoioTimer).header_read_timeout(header_timeout);
        b
    };
    let service = hyper::service::service_fn({
        let answering = answering.clone();
        move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(socket);
            if let Some(address) = address {
                request.extensions_mut().insert(address);
            }
            answering.start();
            respond(request, router.clone(), settings.clone(), answering.clone())
        }
    });
    match tls {
        Some(config) => {
            let stream = tls::accept(config, stream, header_timeout).await?;
            builder.serve_connection(connection_io(stream, &answering, &deadline), service).await?
        }
        None => {
            // The socket stays open until the client has had time to read the last answer.
            let io = connection_io(stream, &answering, &deadline);
            let parts = builder.serve_connection(io, service).without_shutdown().await?;
            linger(socket).await;
            drop(parts);
        }
    }
    Ok(())
}

/// How long a closing connection keeps reading what its client still sends (upstream's Go
/// server waits as long).
const LINGER: Duration = Duration::from_millis(500);

/// Shuts the connection for writing, then reads and discards what the client still sends until
/// it closes, for at most [`LINGER`]. Closing a socket with unread input resets the connection,
/// and the reset can reach the client before it reads the answer: a client still sending a
/// body too large to accept would see "connection reset" or "broken pipe" instead of 413. A
/// client that closed first costs nothing here.
async fn linger(socket: ClientSocket) {
    // SAFETY: the descriptor is the connection's, open until the caller drops its stream.
    unsafe { libc::shutdown(socket.0, libc::SHUT_WR) };
    let until = std::time::Instant::now() + LINGER;
    let mut buf = [0u8; 16 << 10];
    while std::time::Instant::now() < until {
        // SAFETY: as above; the buffer is valid for its length.
        let n = unsafe { libc::recv(socket.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        match n {
            0 => return,
            n if n > 0 => continue,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock => {
                monoio::time::sleep(Duration::from_millis(10)).await
            }
            _ => return,
        }
    }
}

/// Answers one request: 401 without valid credentials when users are configured, the router's
/// answer otherwise, with the configured headers either way. Users and headers are those in
/// force for this request (as upstream, which reads them per request), so a removed user is
/// refused on connections already open too.
async fn respond(
    request: Request<Incoming>,
    mut router: Router,
    settings: Arc<Settings>,
    answering: Answering,
) -> Result<Response<WhenSent<Body>>, Infallible> {
    if let Some(problem) = unreadable(&request) {
        answering.ready();
        return Ok(bad_request(problem).map(|body| WhenSent { inner: body, answering }));
    }
    let web = settings.web.as_ref().map(|(file, auth)| (file.current(), auth));
    let authorized = match &web {
        Some((web, auth)) if !web.users.is_empty() => {
            let credentials = request.headers().get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
            auth.check(&web.users, credentials).await
        }
        _ => true,
    };
    let mut response = if authorized { answer(&mut router, request).await } else { unauthorized() };
    for (name, value) in web.iter().flat_map(|(w, _)| &w.headers) {
        response.headers_mut().insert(name, value.clone());
    }
    answering.ready();
    Ok(response.map(|body| WhenSent { inner: body, answering }))
}

/// The I/O hyper serves a connection over: the first request line's raw bytes are
/// percent-encoded, a half-closing client's end-of-file waits for its answer, and reads end at
/// the read deadline.
fn connection_io<S>(
    stream: S,
    answering: &Answering,
    deadline: &Deadline,
) -> DeadlineIo<HalfCloseIo<RawTarget<MonoioIo<S>>>> {
    let io = HalfCloseIo::new(RawTarget::new(MonoioIo::new(stream)), answering.clone());
    DeadlineIo::new(io, deadline.clone())
}

/// A response body that tells its connection when hyper has taken all of it.
pub struct WhenSent<B> {
    inner: B,
    answering: Answering,
}

impl<B> Drop for WhenSent<B> {
    fn drop(&mut self) {
        self.answering.sent();
    }
}

impl<B: HttpBody<Data = Bytes> + Unpin> HttpBody for WhenSent<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router's answer; a handler that panics gets 500 and the server serves on.
async fn answer(router: &mut Router, request: Request<Incoming>) -> Response<Body> {
    match CatchPanic::new(router.call(request)).await {
        Ok(response) => response.unwrap_or_else(|never| match never {}),
        Err(message) => {
            tracing::error!(panic = message, "a request handler panicked; answered 500");
            ApiError::internal("internal error: the request handler failed").into_response()
        }
    }
}

/// What Go's server refuses in a request before any handler, with the reason it gives if any:
/// `Host` headers (none on HTTP/1.1, more than one, or one with a byte no host name or address
/// holds), and a `Content-Length` past 2^63 − 1 (hyper takes up to 2^64 − 1).
fn unreadable(request: &Request<Incoming>) -> Option<Option<&'static str>> {
    let mut hosts = request.headers().get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Some("too many Host headers"),
        (None, _) if request.version() >= axum::http::Version::HTTP_11 && request.method() != Method::CONNECT => {
            Some("missing required Host header")
        }
        (Some(host), None)
            if !host.as_bytes().iter().all(|&b| b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b)) =>
        {
            Some("malformed Host header")
        }
        _ => None,
    };
    // hyper's parse of `Content-Length`: the body's exact size.
    let length = HttpBody::size_hint(request.body()).lower();
    match host {
        Some(reason) => Some(Some(reason)),
        None => (length > i64::MAX as u64).then_some(None),
    }
}

/// Go's server's answer to a request it cannot read: 400 with the reason, if any, and the
/// connection closed.
fn bad_request(reason: Option<&str>) -> Response<Body> {
    let body = match reason {
        Some(reason) => format!("400 Bad Request: {reason}"),
        None => "400 Bad Request".to_string(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Upstream's answer to missing or wrong credentials.
fn unauthorized() -> Response<Body> {
    let mut response = Response::new(Body::from("Unauthorized\n"));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
