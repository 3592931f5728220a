//! The HTTP/1.1 server loop of one shard: hyper over monoio, routes from axum.
//!
//! All shards accept on clones of one listening socket (bound once, without SO_REUSEPORT, so a
//! second server on the port is refused by the kernel); the kernel hands each connection to one
//! of the waiting shards. hyper gets monoio's timer, without which it would silently drop its
//! header-read timeout and let slow clients hold connections open.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use axum::response::IntoResponse;
use axum::Router;
use monoio::io::IntoPollIo;
use monoio_compat::hyper::{MonoioIo, MonoioTimer};
use socket2::{Domain, Socket, Type};
use tower_service::Service;

use super::response::ApiError;
use crate::panic::CatchPanic;

/// Time a client has to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds the listening socket with explicit options: SO_REUSEADDR (restart over TIME_WAIT) and
/// no SO_REUSEPORT, so that binding a port another process listens on fails.
pub fn bind(address: &str) -> anyhow::Result<std::net::TcpListener> {
    let addr: SocketAddr = parse_listen_address(address)?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).with_context(|| format!("listen tcp {addr}: bind"))?;
    socket.listen(1024).with_context(|| format!("listen tcp {addr}"))?;
    Ok(socket.into())
}

/// Accepts `host:port` and Prometheus's `:port` (all interfaces).
pub fn parse_listen_address(address: &str) -> anyhow::Result<SocketAddr> {
    let full = if address.starts_with(':') { format!("0.0.0.0{address}") } else { address.to_string() };
    std::net::ToSocketAddrs::to_socket_addrs(&full)
        .with_context(|| format!("invalid --web.listen-address {address:?}"))?
        .next()
        .with_context(|| format!("--web.listen-address {address:?} resolves to nothing"))
}

/// Serves connections from `listener` until the process ends.
pub async fn serve(listener: monoio::net::TcpListener, router: Router) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        monoio::spawn(async move {
            let io = match stream.into_poll_io() {
                Ok(io) => MonoioIo::new(io),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot switch connection to poll mode");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let mut router = router.clone();
                async move {
                    match CatchPanic::new(router.call(req)).await {
                        Ok(answer) => answer,
                        Err(message) => {
                            tracing::error!(panic = message, "a request handler panicked; answered 500");
                            Ok(ApiError::internal("internal error: the request handler failed").into_response())
                        }
                    }
                }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(MonoioTimer)
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
