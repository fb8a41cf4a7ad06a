//! The connection loop: accepts TCP connections and serves the router on each with hyper,
//! under the limits that keep slow or idle clients from holding the service.
//!
//! Promises:
//! - at most `server.max_connections` connections are served at once; past that, new ones
//!   wait in the listen backlog until one closes (nothing is accepted that cannot be served);
//! - a client has `server.header_timeout_secs` to send a request's headers, whether it is a
//!   new connection or an idle keep-alive one, after which the connection is closed (a
//!   slow-headers client cannot hold a connection slot);
//! - request bodies are bounded in time by the router's body idle timeout (see
//!   [`super::router`]); responses are never timed: a large download, a production or a
//!   stream takes as long as it takes;
//! - with TLS ([`super::tls`]), the handshake runs on the connection's own task and must
//!   finish within the header timeout; a client that speaks plain HTTP to the TLS port is
//!   dropped at the handshake;
//! - at shutdown no new connection is accepted, open ones finish their requests, and any
//!   still open after `server.shutdown_grace_secs` are closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1::Builder;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// What a connection may cost the service.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time to send a request's headers (new or keep-alive connection).
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long open connections may finish their requests at shutdown.
    pub shutdown_grace: Duration,
}

impl ConnectionLimits {
    pub fn from_config(config: &crate::config::ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            max_connections: config.max_connections,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<super::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // HTTP/1.1 only: a connection's first bytes are read as request headers, under the
    // header timeout, from the moment it is accepted (an HTTP/1-or-2 detector would wait
    // for them without a limit). HTTP/2 belongs to the TLS front end of a deployment.
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(addr));
                request
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = tls.as_ref().map(|tls| tls.acceptor.clone());
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            // Errors here are a client's: a reset, a header timeout, a malformed request, a
            // failed handshake.
            let served = match acceptor {
                None => {
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
                    watcher.watch(connection).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let connection = builder.serve_connection(
                                TokioIo::new(stream),
                                TowerToHyperService::new(service),
                            );
                            watcher.watch(connection).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(error = %error, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = served {
                tracing::debug!(error = %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open at the end of the shutdown grace period were closed");
        }
    }
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is nothing; running out
/// of file descriptors is waited out (the open connections will free some).
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted => {}
        _ => {
            tracing::error!(error = %error, "accepting a connection failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
