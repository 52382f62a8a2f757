//! How the HTTP server accepts and serves connections, so that no client can stop it
//! without logging in:
//!
//! - **connection cap**: at most [`ServeConfig::max_connections`] connections are served at
//!   once, and at most [`ServeConfig::max_connections_per_ip`] from one address; a connection
//!   over either limit is answered `503` (`server_busy` or `too_many_connections`) with
//!   `Retry-After` and `Connection: close`, then closed, never held open;
//! - **header timeout**: a request head (request line and headers) must be complete within
//!   [`ServeConfig::header_timeout`] of its first byte (of the connection opening, for the first
//!   request), or the connection is closed (slow-loris);
//! - **idle timeout**: a keep-alive connection must start its next request head within
//!   [`ServeConfig::idle_timeout`] of the previous response (hyper's `header_read_timeout`,
//!   which in hyper 1.12 runs from the moment the connection waits for a request head);
//! - **body timeout**: a request body must arrive whole within [`ServeConfig::body_timeout`] of
//!   its head; a handler reading it then gets an error, and the client `408 body_timeout`
//!   with `Connection: close`.
//!
//! - **TLS** (when [`ServeConfig::tls`] is set, see [`crate::tls`]): the handshake must
//!   complete within the header timeout, in the connection's own task (a client that never
//!   finishes it holds only its own place); every request is marked [`OverTls`] and every
//!   response carries `Strict-Transport-Security`. A connection over a limit is closed
//!   without the plain-text 503.
//!
//! Graceful shutdown: the listener is dropped (no new connections), every connection is told
//! to finish its in-flight request and close, and `serve` returns once all have.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

use crate::client::{ClientAddr, TrustedProxies, client_ip};
use crate::error::ApiError;

/// Limits and timeouts of the HTTP listener (`aliquot serve --help` documents each).
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Time from a request head's first byte (from the connection opening, for the first
    /// request) until the head is complete.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request after a response.
    pub idle_timeout: Duration,
    /// Time from a request head until its body has arrived whole.
    pub body_timeout: Duration,
    /// Connections served at once; more are refused with `503 server_busy`.
    pub max_connections: usize,
    /// Connections served at once from one IP address (0: no such limit); more are refused
    /// with `503 too_many_connections`. Counted by the peer's address (behind a proxy, the
    /// proxy's).
    pub max_connections_per_ip: usize,
    /// Serve HTTPS with this configuration (`None`: plain HTTP).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Reverse proxies whose forwarded header gives the client's address (`client.rs`).
    pub trusted_proxies: TrustedProxies,
}

/// A request extension: the request came over this server's own TLS.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 256,
            tls: None,
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// File descriptors kept free for everything but client connections: database files and
/// pools, logs, scans, and the short-lived sockets of refused connections.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 128;

/// How many refused connections are answered at once; beyond that a refused connection is
/// closed without an answer, so a flood cannot use up file descriptors through refusals.
const REFUSALS_AT_ONCE: usize = 64;

impl ServeConfig {
    /// Lowers `max_connections` so that the connections fit under the open-file limit
    /// `nofile` with [`RESERVED_FILE_DESCRIPTORS`] to spare. Returns the cap if lowered.
    pub fn fit_to_file_limit(&mut self, nofile: u64) -> Option<usize> {
        let room = nofile.saturating_sub(RESERVED_FILE_DESCRIPTORS).max(1);
        let room = usize::try_from(room).unwrap_or(usize::MAX);
        if self.max_connections > room {
            self.max_connections = room;
            Some(room)
        } else {
            None
        }
    }
}

/// Raises the soft limit on open files to the hard limit (as far as the system allows) and
/// returns the soft limit now in force (`None`: unlimited or unknown).
#[cfg(unix)]
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return getrlimit(Resource::Nofile).current;
        }
    }
    limit.current
}

/// Raises the soft limit on open files (nothing to do on this platform).
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> Option<u64> {
    None
}

/// Accepts and serves connections on `listener` until `shutdown` completes, then shuts
/// down gracefully (see the module documentation).
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = Limits::new(&config);
    let trusted = Arc::new(config.trusted_proxies.clone());
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts this timer whenever the connection waits for a request head: after
        // a response, so it is the idle timeout (the header timeout is `GuardedIo`'s).
        .header_read_timeout(config.idle_timeout)
        .keep_alive(true);
    let tls = config.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let accept_errors = Throttled::default();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors (or a connection that died in the backlog):
                    // wait a moment rather than spin; the connections already open go on.
                    if accept_errors.due() {
                        tracing::warn!(error = %e, suppressed = accept_errors.take_suppressed(), "accepting a connection failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = match limits.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                // Over TLS a plain-text 503 would be noise to the client: it is closed.
                limits.refuse(stream, peer.ip(), refusal, tls.is_none());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::new(ConnShared::default());
        let service = TowerToHyperService::new(ConnService {
            router: router.clone(),
            shared: shared.clone(),
            peer,
            body_timeout: config.body_timeout,
            tls: tls.is_some(),
            trusted: trusted.clone(),
        });
        let Some(acceptor) = &tls else {
            let io = TokioIo::new(GuardedIo::new(stream, shared, config.header_timeout));
            let connection = graceful.watch(builder.serve_connection(io, service));
            tokio::spawn(async move {
                // Held until the connection is closed, then its place is free again.
                let _admitted = admitted;
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
            });
            continue;
        };
        let (acceptor, watcher, builder) = (acceptor.clone(), graceful.watcher(), builder.clone());
        let header_timeout = config.header_timeout;
        tokio::spawn(async move {
            let _admitted = admitted;
            let stream = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake did not complete within the header timeout");
                    return;
                }
            };
            let io = TokioIo::new(GuardedIo::new(stream, shared, header_timeout));
            if let Err(e) = watcher.watch(builder.serve_connection(io, service)).await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Busy,
    PerClient,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::Busy => "server_busy",
            Refusal::PerClient => "too_many_connections",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::Busy => "the server is serving as many connections as it may; retry shortly",
            Refusal::PerClient => {
                "this address has as many connections open as it may; close some or retry shortly"
            }
        }
    }
}

/// The connection counters (total and per IP address).
struct Limits {
    total: Arc<Semaphore>,
    max_total: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_ip: usize,
    refusing: Arc<Semaphore>,
    warn_busy: Throttled,
    warn_per_ip: Throttled,
}

/// A connection's place under the limits, given back when dropped.
struct Admitted {
    _total: OwnedSemaphorePermit,
    ip: IpAddr,
    per_ip: Option<Arc<Mutex<HashMap<IpAddr, usize>>>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(per_ip) = &self.per_ip {
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

impl Limits {
    fn new(config: &ServeConfig) -> Self {
        let max_total = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Limits {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            max_per_ip: config.max_connections_per_ip,
            refusing: Arc::new(Semaphore::new(REFUSALS_AT_ONCE)),
            warn_busy: Throttled::default(),
            warn_per_ip: Throttled::default(),
        }
    }

    fn admit(&self, ip: IpAddr) -> Result<Admitted, Refusal> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        if self.max_per_ip == 0 {
            return Ok(Admitted {
                _total: total,
                ip,
                per_ip: None,
            });
        }
        let mut counts = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(Refusal::PerClient);
        }
        *n += 1;
        Ok(Admitted {
            _total: total,
            ip,
            per_ip: Some(self.per_ip.clone()),
        })
    }

    /// Answers a refused connection with 503 in a task of its own (bounded in number and
    /// time), logging a warning with the client's address only, at most once a second.
    fn refuse(&self, stream: TcpStream, ip: IpAddr, refusal: Refusal, answer: bool) {
        let (warn, limit) = match refusal {
            Refusal::Busy => (&self.warn_busy, self.max_total),
            Refusal::PerClient => (&self.warn_per_ip, self.max_per_ip),
        };
        if warn.due() {
            tracing::warn!(
                client = %ip,
                code = refusal.code(),
                limit,
                suppressed = warn.take_suppressed(),
                "connection refused"
            );
        }
        if !answer {
            return; // closed at once
        }
        let Ok(permit) = self.refusing.clone().try_acquire_owned() else {
            return; // too many refusals in progress: close at once
        };
        tokio::spawn(async move {
            let _permit = permit;
            let _ =
                tokio::time::timeout(Duration::from_secs(3), answer_refused(stream, refusal)).await;
        });
    }
}

/// Reads the request head (briefly), answers 503 and closes: the client reads a clear answer
/// instead of a reset or a connection that hangs.
async fn answer_refused(mut stream: TcpStream, refusal: Refusal) -> io::Result<()> {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while seen.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let body = serde_json::json!({
        "error": {"code": refusal.code(), "message": refusal.message()}
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(answer.as_bytes()).await?;
    stream.shutdown().await?;
    // Drain what the client still sends, so closing does not reset the connection before
    // the client has read the answer.
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}

/// At most one event a second passes; the others are counted.
#[derive(Default)]
struct Throttled {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttled {
    fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            true
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::Relaxed)
    }
}

/// What a connection's IO and its service share.
#[derive(Default)]
struct ConnShared {
    /// Requests handed to the service so far.
    requests: AtomicU64,
    /// Requests whose response is not yet produced.
    in_flight: AtomicUsize,
}

/// The socket, with the header timeout: armed when the connection opens and when the first
/// byte of a request arrives on an idle connection; disarmed once the service has the
/// request. When it fires while hyper waits for more of the head, the read fails and hyper
/// closes the connection.
struct GuardedIo<S> {
    inner: S,
    shared: Arc<ConnShared>,
    header_timeout: Duration,
    /// The deadline and the request count when it was armed.
    head_deadline: Option<(Pin<Box<Sleep>>, u64)>,
}

impl<S> GuardedIo<S> {
    fn new(inner: S, shared: Arc<ConnShared>, header_timeout: Duration) -> Self {
        GuardedIo {
            inner,
            shared,
            header_timeout,
            head_deadline: Some((Box::pin(tokio::time::sleep(header_timeout)), 0)),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let requests = this.shared.requests.load(Ordering::Acquire);
        if this
            .head_deadline
            .as_ref()
            .is_some_and(|(_, armed_at)| *armed_at != requests)
        {
            this.head_deadline = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before
                    && this.head_deadline.is_none()
                    && this.shared.in_flight.load(Ordering::Acquire) == 0
                {
                    this.head_deadline =
                        Some((Box::pin(tokio::time::sleep(this.header_timeout)), requests));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some((deadline, _)) = &mut this.head_deadline
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request head did not arrive within the header timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router as one connection's service: counts requests for the header timeout, gives
/// handlers the peer address (`ConnectInfo<SocketAddr>`) and the client's (`ClientAddr`,
/// through trusted proxies) and puts a deadline on the body.
#[derive(Clone)]
struct ConnService {
    router: Router,
    shared: Arc<ConnShared>,
    peer: SocketAddr,
    body_timeout: Duration,
    /// The connection is this server's TLS: requests are marked [`OverTls`], responses
    /// carry HSTS.
    tls: bool,
    trusted: Arc<TrustedProxies>,
}

/// Counts a request in flight until dropped.
struct InFlight(Arc<ConnShared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl tower::Service<Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        self.shared.requests.fetch_add(1, Ordering::AcqRel);
        let in_flight = InFlight(self.shared.clone());
        let timed_out = Arc::new(AtomicBool::new(false));
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let tls = self.tls;
        if tls {
            parts.extensions.insert(OverTls);
        }
        parts.extensions.insert(ClientAddr(client_ip(
            self.peer.ip(),
            &parts.headers,
            &self.trusted,
        )));
        let body = Body::new(DeadlineBody {
            inner: body,
            deadline: tokio::time::Instant::now() + self.body_timeout,
            sleep: None,
            timed_out: timed_out.clone(),
        });
        let response = self
            .router
            .clone()
            .oneshot(Request::from_parts(parts, body));
        Box::pin(async move {
            let _in_flight = in_flight;
            let mut response = response.await?;
            if timed_out.load(Ordering::Acquire) {
                response = body_timeout_response(response);
            }
            if tls {
                response.headers_mut().insert(
                    header::STRICT_TRANSPORT_SECURITY,
                    HeaderValue::from_static(crate::tls::HSTS),
                );
            }
            Ok(response)
        })
    }
}

/// The answer when the body did not arrive in time, whatever the handler made of the read
/// error; it keeps the handler's headers (security headers, request id) and closes the
/// connection.
fn body_timeout_response(handled: Response) -> Response {
    let mut response = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "the request body did not arrive within the body timeout",
    )
    .into_response();
    for (name, value) in handled.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A request body that fails once its deadline passes before it has arrived whole.
struct DeadlineBody {
    inner: Incoming,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let deadline = this.deadline;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Release);
                    return Poll::Ready(Some(Err(Box::new(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request body did not arrive within the body timeout",
                    )))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
