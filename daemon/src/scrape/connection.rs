//! A target's keep-alive connections, reused from scrape to scrape as upstream's HTTP client
//! reuses them.
//!
//! A connection is kept per [`Route`] — the address the TCP connection goes to, the tunnel
//! through a proxy, TLS or not — so a redirect to another host or a change of proxy never
//! reuses a connection to the wrong place. A connection is put back only after its answer was
//! read to the end; one that failed, timed out or was cut short is dropped, and dropping a
//! [`Connection`] ends its task and closes the socket (so a removed target's connections close
//! with its scrape loop). The connections a scrape did not use are closed after it.
//!
//! The server may close an idle connection at any moment, also just as a request goes out on
//! it. As Go's transport does for requests that can be replayed (a scrape is a GET without a
//! body), a request that fails on a reused connection before any answer came is sent once more
//! on a fresh connection, and the scrape does not fail for it. TLS connections are kept the same
//! way, and a new one resumes the session of the last (rustls keeps the tickets per client
//! configuration, which lives as long as the target).
//!
//! An answer may be preceded by at most [`MOST_INFORMATIONAL`] informational (1xx) answers, as
//! Go's client allowed before Go 1.24 (Prometheus 2.42 fails such a scrape with the same
//! words; 3.x's client takes any number until the scrape times out). hyper skips them in a loop
//! that yields only when the socket has nothing to read, so a target sending `100 Continue`
//! without end held the shard's thread (every other scrape, query and health check on it, and
//! the scrape's own timeout) for as long as it kept sending.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use monoio::io::IntoPollIo;
use monoio_compat::hyper::MonoioIo;
use rustls::pki_types::ServerName;

use super::client::ScrapeError;
use super::names::Names;

/// Where a connection leads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// `host:port` the TCP connection goes to: the target's, or its proxy's.
    pub peer: String,
    /// Through a proxy, the `host:port` a `CONNECT` tunnel leads to (for `https` targets).
    pub tunnel: Option<String>,
    /// Whether TLS runs over the connection (or the tunnel).
    pub tls: bool,
}

/// What opening a connection needs besides its route.
pub struct Dial<'a> {
    /// The TLS configuration and the name to verify, for a TLS route.
    pub tls: Option<&'a (Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// The `Proxy-Authorization` header's value for a `CONNECT`.
    pub proxy_authorization: Option<&'a str>,
}

/// An open HTTP/1.1 connection: hyper's sender, and the line whose drop ends the connection's
/// task, which closes the socket.
pub struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    /// Informational answers to the request under way, counted by hyper's callback and checked
    /// by the connection's reads ([`CountedIo`]).
    informational: Arc<AtomicUsize>,
    _close: flume::Sender<()>,
}

impl Connection {
    /// Sends `request`, its informational answers counted afresh: more than
    /// [`MOST_INFORMATIONAL`] fail it, whether they stopped the reads ([`CountedIo`]) or came
    /// in the same read as the answer.
    async fn send(&mut self, mut request: Request<Empty<Bytes>>) -> Result<Response<Incoming>, ScrapeError> {
        self.informational.store(0, Ordering::Relaxed);
        let counted = self.informational.clone();
        hyper::ext::on_informational(&mut request, move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let response = self.sender.send_request(request).await.map_err(http_error)?;
        match self.informational.load(Ordering::Relaxed) > MOST_INFORMATIONAL {
            true => Err(ScrapeError::Http(TOO_MANY_INFORMATIONAL.into())),
            false => Ok(response),
        }
    }
}

/// Go's words for more than [`MOST_INFORMATIONAL`] informational answers.
const TOO_MANY_INFORMATIONAL: &str = "too many 1xx informational responses";

/// Informational answers allowed before a request's answer: Go's `max1xxResponses` (before
/// Go 1.24).
const MOST_INFORMATIONAL: usize = 5;

/// A connection's stream, whose reads fail once the request under way has had more than
/// [`MOST_INFORMATIONAL`] informational answers.
struct CountedIo<IO> {
    io: IO,
    informational: Arc<AtomicUsize>,
}

impl<IO: hyper::rt::Read + Unpin> hyper::rt::Read for CountedIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.informational.load(Ordering::Relaxed) > MOST_INFORMATIONAL {
            return Poll::Ready(Err(std::io::Error::other(TOO_MANY_INFORMATIONAL)));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: hyper::rt::Write + Unpin> hyper::rt::Write for CountedIo<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

/// A target's connections, and the addresses of the names they go to.
pub struct Connections {
    names: Names,
    kept: HashMap<Route, Connection>,
    /// Routes the scrape under way has asked for.
    used: Vec<Route>,
}

impl Connections {
    pub fn new(names: Names) -> Connections {
        Connections { names, kept: HashMap::new(), used: Vec::new() }
    }

    /// Sends the request `build` makes over the connection kept for `route`, or over a new one,
    /// and returns the answer's head with the connection, to [`Connections::keep`] once the
    /// answer's body has been read. A kept connection that fails before an answer is replaced by
    /// a fresh one, once.
    pub async fn send(
        &mut self,
        route: &Route,
        dial: &Dial<'_>,
        build: impl Fn() -> Result<Request<Empty<Bytes>>, ScrapeError>,
    ) -> Result<(Response<Incoming>, Connection), ScrapeError> {
        if !self.used.contains(route) {
            self.used.push(route.clone());
        }
        if let Some(mut kept) = self.kept.remove(route) {
            if !kept.sender.is_closed() && kept.sender.ready().await.is_ok() {
                match kept.send(build()?).await {
                    Ok(response) => return Ok((response, kept)),
                    // Answers came: the target's fault, not a connection closed while idle.
                    Err(ScrapeError::Http(e)) if e.contains(TOO_MANY_INFORMATIONAL) => {
                        return Err(ScrapeError::Http(e))
                    }
                    Err(_) => {}
                }
            }
        }
        let mut fresh = self.open(route, dial).await?;
        let response = fresh.send(build()?).await?;
        Ok((response, fresh))
    }

    /// Keeps `connection`, whose last answer was read to the end, for the next request on
    /// `route`.
    pub fn keep(&mut self, route: &Route, connection: Connection) {
        self.kept.insert(route.clone(), connection);
    }

    /// Ends a scrape: closes the connections it did not use.
    pub fn end_scrape(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.kept.retain(|route, _| used.contains(route));
    }

    /// A new connection for `route`: TCP to the first address of the peer that answers, the
    /// proxy's tunnel, TLS, and hyper's HTTP/1.1 handshake.
    async fn open(&mut self, route: &Route, dial: &Dial<'_>) -> Result<Connection, ScrapeError> {
        let mut stream = self.connect(&route.peer, if route.tls { 443 } else { 80 }).await?;
        if let Some(to) = &route.tunnel {
            tunnel(&mut stream, to, dial.proxy_authorization).await?;
        }
        let stream = stream.into_poll_io().map_err(ScrapeError::Connect)?;
        if !route.tls {
            return handshake(MonoioIo::new(stream)).await;
        }
        let (config, name) = dial.tls.ok_or_else(|| ScrapeError::Tls("no TLS configuration".into()))?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let stream = connector.connect(name.clone(), stream).await.map_err(|e| ScrapeError::Tls(e.to_string()))?;
        handshake(MonoioIo::new(stream)).await
    }

    /// Connects to the first of `address`'s addresses that answers (`localhost` may resolve to
    /// `::1` first while the target listens on `127.0.0.1`).
    async fn connect(&mut self, address: &str, default_port: u16) -> Result<monoio::net::TcpStream, ScrapeError> {
        let (host, port) = split_host_port(address, default_port)?;
        let mut last = ScrapeError::Resolve(format!("lookup {host}: no address"));
        for ip in self.names.resolve(host).await? {
            match monoio::net::TcpStream::connect(SocketAddr::new(ip, port)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = ScrapeError::Connect(e),
            }
        }
        self.names.forget(host);
        Err(last)
    }
}

/// Response headers a target may send. hyper's default of 100 failed targets behind chatty
/// proxies, where Go's client takes any number within 10 MB; the head's bytes stay bounded by
/// hyper's read buffer (about 400 KB), and each parse of a response head allocates this many
/// slots twice (64 B a slot, 128 KB).
const MAX_RESPONSE_HEADERS: usize = 2048;

/// hyper's HTTP/1.1 handshake over `io`; the connection's task runs on the shard until the
/// connection closes or the returned [`Connection`] is dropped.
async fn handshake<IO>(io: IO) -> Result<Connection, ScrapeError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
{
    // hyper's HTTP/1 client builder takes no timer: the whole exchange is bounded by the
    // scrape's timeout instead.
    let informational = Arc::new(AtomicUsize::new(0));
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_RESPONSE_HEADERS)
        .handshake::<_, Empty<Bytes>>(CountedIo { io, informational: informational.clone() })
        .await
        .map_err(http_error)?;
    let (close, closed) = flume::bounded::<()>(1);
    monoio::spawn(async move {
        monoio::select! {
            _ = conn => {}
            _ = closed.recv_async() => {}
        }
    });
    Ok(Connection { sender, informational, _close: close })
}

/// hyper's error with what caused it (an error of the stream is only its cause).
fn http_error(e: hyper::Error) -> ScrapeError {
    match std::error::Error::source(&e) {
        Some(cause) => ScrapeError::Http(format!("{e}: {cause}")),
        None => ScrapeError::Http(e.to_string()),
    }
}

/// `host` and port of `address` (`host:port`, `[v6]:port`, or a host alone, which takes
/// `default_port`); IPv6 brackets removed.
pub(super) fn split_host_port(address: &str, default_port: u16) -> Result<(&str, u16), ScrapeError> {
    let invalid = || ScrapeError::Address(address.to_string());
    let (host, port) = match address.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
            (host, if after.is_empty() { None } else { Some(after.strip_prefix(':').ok_or_else(invalid)?) })
        }
        None => match address.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (address, None),
        },
    };
    let port = port.map_or(Ok(default_port), |p| p.parse::<u16>().map_err(|_| invalid()))?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host, port))
}

/// Opens a `CONNECT` tunnel to `address` through the proxy `stream` is connected to.
async fn tunnel(
    stream: &mut monoio::net::TcpStream,
    address: &str,
    proxy_authorization: Option<&str>,
) -> Result<(), ScrapeError> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut request = format!("CONNECT {address} HTTP/1.1\r\nHost: {address}\r\n");
    if let Some(value) = proxy_authorization {
        request.push_str(&format!("Proxy-Authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    let (written, _) = stream.write_all(request.into_bytes()).await;
    written.map_err(ScrapeError::Connect)?;
    // The proxy's answer head, up to its blank line.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 {
            return Err(ScrapeError::Http("proxy answer head too long".into()));
        }
        let (read, byte) = stream.read(Vec::with_capacity(1)).await;
        if read.map_err(ScrapeError::Connect)? == 0 {
            return Err(ScrapeError::Http("proxy closed the connection".into()));
        }
        head.extend_from_slice(&byte);
    }
    let status = String::from_utf8_lossy(&head).lines().next().unwrap_or("").to_string();
    match status.split(' ').nth(1) {
        Some("200") => Ok(()),
        _ => Err(ScrapeError::Http(format!("proxy refused CONNECT: {status}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn addresses_split_into_host_and_port() {
        let split = |a| split_host_port(a, 80).map_err(|e| e.to_string());
        assert_eq!(split("localhost:9100"), Ok(("localhost", 9100)));
        assert_eq!(split("[::1]:9100"), Ok(("::1", 9100)));
        assert_eq!(split("[::1]"), Ok(("::1", 80)));
        assert_eq!(split("node.example"), Ok(("node.example", 80)));
        assert!(split("node:port").is_err());
        assert!(split(":9100").is_err());
        assert!(split("[::1").is_err());
        assert!(split("::1:9100").is_err());
    }
}
