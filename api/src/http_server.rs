//! Serving a router on a listener, as `axum::serve` does, with hyper's header read
//! timeout switched on: `axum::serve` gives hyper no timer, so a client that sends
//! its headers a byte at a time (or never finishes them) would hold a connection and
//! its task forever.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::{debug, warn};

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    /// A client must have sent a request's headers this long after it started them
    /// (or after the previous response, on a kept-alive connection); else the
    /// connection is closed.
    pub header_read_timeout: Duration,
    /// Whether each request carries the client's address (`ConnectInfo<SocketAddr>`).
    pub connect_info: bool,
}

/// Serves `router` on `listener` (HTTP/1.1, as `axum::serve` with axum's default
/// features) until `shutdown` resolves, then stops accepting and waits for the
/// connections to finish what they are doing.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            if settings.connect_info {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(remote));
            }
            router.clone().oneshot(request)
        });
        // Nothing shiplog serves upgrades a connection (no WebSockets), so none is kept for it.
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that went away or sent something that is not HTTP: its business.
            if let Err(error) = connection.await {
                debug!(%remote, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// What `axum::serve` does when accepting fails: a connection reset before it was
/// accepted is nothing; anything else (out of file descriptors) is said, and
/// accepting resumes a second later rather than spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    warn!(%error, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
