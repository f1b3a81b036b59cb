//! The HTTP listener: plain HTTP/1.1 (axum's server), or, with `http.tls_cert` and
//! `http.tls_key`, TLS with HTTP/2 and HTTP/1.1 offered by ALPN. Apple's players need HTTP/2 for
//! low-latency HLS, and browsers speak HTTP/2 only over TLS.
//!
//! Both paths share one accept loop with a header-read timeout, an idle timeout and a cap on
//! open connections (slowloris and descriptor exhaustion once kept sockets open for ever).
//!
//! rustls is 0.21 (through tokio-rustls 0.24): later releases need `subtle` 2.5 or newer, and
//! the RTMP crate (rml_rtmp, through crypto-mac) pins `subtle` below 2.5.
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client that opens a connection and does not finish the TLS handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish their requests when the server stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of [`tls_acceptor`]: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")]
    NoKey { path: String },
    #[error("certificate {cert} and key {key} do not make a TLS configuration: {source}")]
    Config {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// The TLS side of the listener from a PEM certificate chain and its private key.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain: Vec<rustls::Certificate> = rustls_pemfile::certs(&mut BufReader::new(&cert_pem[..]))
        .map_err(|source| TlsError::Read {
            path: cert.display().to_string(),
            source,
        })?
        .into_iter()
        .map(rustls::Certificate)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key_pem = read(key)?;
    let private_key = private_key(&key_pem).ok_or_else(|| TlsError::NoKey {
        path: key.display().to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|source| TlsError::Config {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The first private key in a PEM file, whichever of the usual encodings it has.
fn private_key(pem: &[u8]) -> Option<rustls::PrivateKey> {
    let mut reader = BufReader::new(pem);
    loop {
        match rustls_pemfile::read_one(&mut reader).ok()?? {
            rustls_pemfile::Item::PKCS8Key(k)
            | rustls_pemfile::Item::RSAKey(k)
            | rustls_pemfile::Item::ECKey(k) => return Some(rustls::PrivateKey(k)),
            _ => continue,
        }
    }
}

/// What one connection may cost: see `http.*` in the README's config table.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection must send its request's headers within this (the first request counts from
    /// the accept, later ones from the end of the previous response).
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections (WebSockets included); more are refused with a 503 and closed.
    pub max_connections: usize,
}

/// Descriptors kept free for media (segments, parts, recordings, publishers, SQLite) whatever
/// `http.max_connections` says: a full descriptor table must never stop segment writing.
const RESERVED_DESCRIPTORS: u64 = 1024;

/// `configured`, lowered so that HTTP connections always leave [`RESERVED_DESCRIPTORS`] (or half
/// of a small table) to media. Raises the soft `RLIMIT_NOFILE` to the hard one first.
pub fn connection_cap(configured: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return configured;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        limit.rlim_cur
    };
    let reserve = RESERVED_DESCRIPTORS.min(soft / 2);
    let available = usize::try_from(soft - reserve).unwrap_or(usize::MAX);
    if available < configured {
        tracing::warn!(
            configured,
            allowed = available,
            descriptors = soft,
            "http.max_connections lowered to keep descriptors for media"
        );
    }
    configured.min(available).max(1)
}

/// The answer to a connection beyond `http.max_connections` (plain HTTP; TLS ones are closed).
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 5\r\nconnection: close\r\ncontent-length: 70\r\n\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"too many open connections\"}}";

/// When bytes last moved on a connection, and whether a request has begun.
struct Activity {
    opened: Instant,
    /// Milliseconds after `opened`.
    last_io_ms: AtomicU64,
    requested: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            requested: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection is to be closed if nothing happens before.
    fn deadline(&self, limits: &Limits) -> Instant {
        if !self.requested.load(Ordering::Relaxed) {
            // Before its first request a client gets the header timeout in all; hyper's own
            // header timeout starts only once HTTP/1 is detected.
            return self.opened + limits.header_read_timeout;
        }
        self.opened
            + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
            + limits.idle_timeout
    }
}

/// A socket that records activity and holds its connection slot until it is dropped (after a
/// WebSocket upgrade, too).
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    /// Headers and body leave in one `writev`: without it hyper copies every body (segments
    /// of megabytes) into its own buffer first.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accepting an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, max = limits.max_connections, "HTTP connection refused: too many open");
            if tls.is_none() {
                // Fits the socket buffer; a client that cannot take it gets the close alone.
                let _ = tcp.try_write(REFUSAL);
            }
            continue;
        };
        let activity = Arc::new(Activity::new());
        let io = Tracked {
            inner: tcp,
            activity: activity.clone(),
            _slot: slot,
        };
        let (tls, router, stop) = (tls.clone(), router.clone(), shutdown.clone());
        connections.spawn(async move {
            let Some(tls) = tls else {
                return connection(io, peer, router, limits, activity, stop).await;
            };
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(io)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            connection(stream, peer, router, limits, activity, stop).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("HTTP connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// One client connection (HTTP/1.1 or HTTP/2, WebSocket upgrades handed on) until it ends, idles
/// out or the server stops.
async fn connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    activity: Arc<Activity>,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |mut request| {
            activity.requested.store(true, Ordering::Relaxed);
            // The peer address feeds per-client limits (viewer registration).
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(activity.deadline(&limits).into()) => {
                if activity.deadline(&limits) <= Instant::now() {
                    tracing::debug!(%peer, "closing an idle HTTP connection");
                    break;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    conn.as_mut().graceful_shutdown();
    // A response under way may finish; a peer that takes nothing is dropped.
    let _ = tokio::time::timeout(limits.idle_timeout.min(DRAIN_TIMEOUT), conn).await;
}
