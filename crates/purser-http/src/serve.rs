//! Serving a router: our own accept loop over hyper, so that every connection is bounded
//! before a request is read, and graceful shutdown with a grace period.
//!
//! Each connection is admitted only within [`ConnectionLimits`]: at most `max_connections` at
//! once, and at most `max_connections_per_address` from one client address (an IPv6 client
//! counts by its /64, which one host usually holds whole). One over either cap is answered at
//! once with the error envelope (`overloaded` or `rate_limited`, with `Retry-After`) and closed.
//! An admitted connection must send each request's head within `header_read_timeout` (which
//! also bounds how long a kept-alive HTTP/1 connection waits for its next request), is closed
//! once nothing has moved on it for `idle_timeout`, and has its head size, header count and
//! HTTP/2 streams bounded. Requests carry the client's address as
//! `ConnectInfo<SocketAddr>`.
//!
//! On the shutdown signal the listener is dropped, every connection is told to finish its
//! in-flight requests and close, and whatever still runs after the grace period is aborted.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use purser_domain::ErrorCode;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::connection::{Activity, Watched, envelope_answer_with};

/// Bounds on connections, applied before a request is read.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is answered `overloaded` and closed.
    pub max_connections: usize,
    /// Connections open at once from one client address (IPv6: one /64); one more is answered
    /// `rate_limited` and closed.
    pub max_connections_per_address: usize,
    /// How long a client may take to send a request's head, and how long a kept-alive
    /// HTTP/1 connection waits for the next one.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moved for this long is closed (a client that stopped
    /// reading, an HTTP/2 connection left open). Kept above the request timeout.
    pub idle_timeout: Duration,
    /// Headers per request; more is answered `headers_too_large`.
    pub max_headers: usize,
    /// The largest request head (request line and headers) hyper reads: beyond it the
    /// request is answered `headers_too_large` (`uri_too_long` for a URL over 64 KiB).
    pub max_head_bytes: usize,
    /// Streams at once on one HTTP/2 connection.
    pub http2_max_concurrent_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_address: 256,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_headers: 100,
            max_head_bytes: 64 * 1024,
            http2_max_concurrent_streams: 256,
        }
    }
}

/// How long a refused connection is given to take its answer.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the accept loop pauses when accepting fails for want of resources (file
/// descriptors, memory), rather than spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` resolves, then drains for at most `grace`.
/// Returns `Ok(true)` when every connection finished within the grace period.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    limits: ConnectionLimits,
) -> std::io::Result<bool> {
    let builder = connection_builder(&limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = AddressCounts::default();
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            // Reap finished connections so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // A connection that failed before it was accepted is the client's
                        // business; running out of descriptors is worth a pause.
                        if !is_connection_error(&err) {
                            tracing::warn!(error = %err, "accepting a connection failed");
                            tokio::time::sleep(ACCEPT_BACKOFF).await;
                        }
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    connections.spawn(refuse(stream, ErrorCode::Overloaded, "the server has as many connections open as it allows; retry shortly"));
                    continue;
                };
                let Some(counted) = per_address.admit(peer.ip(), limits.max_connections_per_address) else {
                    connections.spawn(refuse(stream, ErrorCode::RateLimited, "too many connections from this address; close some, or retry shortly"));
                    continue;
                };
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    router.clone(),
                    builder.clone(),
                    limits,
                    stopping.clone(),
                    (slot, counted),
                ));
            }
        }
    }
    drop(listener);
    tracing::info!(
        grace_seconds = grace.as_secs(),
        connections = connections.len(),
        "shutting down: draining in-flight requests"
    );
    let _ = stop.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            connections = connections.len(),
            "grace period over with requests still in flight; closing them"
        );
        connections.abort_all();
    }
    Ok(drained)
}

fn connection_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // hyper's smallest buffer is 8 KiB.
        .max_buf_size(limits.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        // Streams reset by the client faster than they are served (the "rapid reset" attack)
        // count against this, and the connection is closed past it.
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256));
    builder
}

/// Serves one connection until it closes, idles out, or shutdown drains it.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _held: (OwnedSemaphorePermit, AddressSlot),
) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched::new(stream, activity.clone()));
    let service = router.map_request(move |request: hyper::Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    });
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    tokio::pin!(connection);
    let idle_timeout = limits.idle_timeout;
    let idle = activity.idle_for(idle_timeout);
    tokio::pin!(idle);
    let silent = activity.silent_for(limits.header_read_timeout);
    tokio::pin!(silent);
    let mut draining = false;
    loop {
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(error = %err, %peer, "connection ended with an error");
                }
                return;
            }
            () = &mut idle => {
                tracing::debug!(%peer, "closing a connection idle for {idle_timeout:?}");
                return;
            }
            () = &mut silent => {
                tracing::debug!(%peer, "closing a connection that sent nothing");
                return;
            }
            changed = stopping.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Answers a connection refused before any request with the envelope for `code`, and closes
/// it.
async fn refuse(mut stream: TcpStream, code: ErrorCode, message: &'static str) {
    let answer = envelope_answer_with(code, message, &[("retry-after", "1")]);
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
}

fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// The part of a client address that identifies one client: an IPv4 address, or an IPv6
/// address's /64 (IPv4-mapped IPv6 addresses count as IPv4).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// Open connections per client; an address is forgotten when its last connection closes, so
/// the map never holds more entries than there are connections.
#[derive(Debug, Clone, Default)]
struct AddressCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One counted connection of an address; uncounted when dropped.
#[derive(Debug)]
struct AddressSlot {
    counts: AddressCounts,
    address: IpAddr,
}

impl AddressCounts {
    fn admit(&self, ip: IpAddr, cap: usize) -> Option<AddressSlot> {
        let address = client_key(ip);
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(address).or_insert(0);
        if *count >= cap.max(1) {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_prefix() {
        let counts = AddressCounts::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let first = counts.admit(a, 2).unwrap();
        let _second = counts.admit(a, 2).unwrap();
        assert!(counts.admit(a, 2).is_none());
        assert!(counts.admit("10.0.0.2".parse().unwrap(), 2).is_some());
        drop(first);
        assert!(counts.admit(a, 2).is_some());
        // One /64, however many addresses of it.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_key(v6("2001:db8:1:2:aaaa::1")),
            client_key(v6("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_key(v6("2001:db8:1:2::1")),
            client_key(v6("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(v6("::ffff:10.0.0.1")), a);
    }

    #[test]
    fn an_address_is_forgotten_with_its_last_connection() {
        let counts = AddressCounts::default();
        let slot = counts.admit("10.0.0.1".parse().unwrap(), 5).unwrap();
        assert_eq!(counts.0.lock().unwrap().len(), 1);
        drop(slot);
        assert!(counts.0.lock().unwrap().is_empty());
    }
}
