//! Connections: accept on the listener (at most `--max-connections` open at once; more
//! wait in the kernel's backlog), serve each with hyper's HTTP/1.1 (keep-alive, chunked
//! bodies and `Expect: 100-continue` are hyper's), and close it on any of three timeouts:
//!
//! - headers: a request head must arrive within `--header-timeout` (hyper's own timer,
//!   started when the connection opens or the previous response ends);
//! - idle: a keep-alive connection with no request in flight and no bytes moving for
//!   `--idle-timeout` is closed;
//! - write: a write that cannot make progress for `--write-timeout` (a client that stopped
//!   reading) fails, which closes the connection.
//!
//! On shutdown the listener closes, idle connections close at once, and connections with
//! a request in flight close when its response has been written.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::metrics::Metrics;

/// Connection limits and timeouts (flags of `kiln serve`).
#[derive(Clone, Debug)]
pub struct ConnLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    /// Largest request head (request line + headers).
    pub max_header_bytes: usize,
}

/// What a connection's watcher needs to know: when bytes last moved, and how many
/// requests are in flight (from the request head to the end of the response body).
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Woken when a request starts (the connection's loop then watches the client).
    started: tokio::sync::Notify,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Accept and serve until `shutdown` fires, then wait for the open connections to finish
/// (at most `drain_timeout`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    drain_timeout: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, limits, metrics, shutdown) = (app.clone(), limits.clone(), metrics.clone(), shutdown.clone());
        tracker.spawn(async move {
            metrics.connections_open.inc();
            connection(stream, app, &limits, &metrics, shutdown).await;
            metrics.connections_open.dec();
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(drain_timeout, tracker.wait()).await.is_err() {
        tracing::warn!("{} connections still open after {drain_timeout:?}: closing them", tracker.len());
    }
}

/// How often a connection with a request in flight looks whether its client has gone.
const PEER_CHECK: Duration = Duration::from_millis(20);

/// Whether the client closed its side (or reset the connection): a non-blocking peek
/// that reads end-of-stream. Pipelined bytes waiting to be read count as "still there".
fn peer_gone(watch: &std::net::TcpStream) -> bool {
    match watch.peek(&mut [0u8; 1]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted,
    }
}

async fn connection(stream: TcpStream, app: Router, limits: &ConnLimits, metrics: &Metrics, shutdown: CancellationToken) {
    // A second handle on the socket (the same non-blocking file description) to notice a
    // client that leaves while its request runs: hyper reads nothing more once a request
    // says `Connection: close`, so it would only find out when the answer is written.
    let Ok(std_stream) = stream.into_std() else { return };
    let watch = std_stream.try_clone().ok();
    let Ok(stream) = TcpStream::from_std(std_stream) else { return };
    let activity = Arc::new(Activity { start: Instant::now(), last_ms: AtomicU64::new(0), in_flight: AtomicUsize::new(0), started: tokio::sync::Notify::new() });
    let io = TokioIo::new(TimedIo { inner: stream, activity: activity.clone(), write_timeout: limits.write_timeout, stalled: None });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::new(activity.clone());
            let app = app.clone();
            async move {
                let response = app.oneshot(req.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(GuardedBody { inner: body, _guard: guard })))
            }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let tick = (limits.idle_timeout / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() || is_write_stall(&e) {
                        metrics.connections_timed_out.inc();
                    }
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = shutdown.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            // A request started: go round again, so the check below is armed.
            _ = activity.started.notified() => {}
            _ = tokio::time::sleep(PEER_CHECK), if activity.in_flight.load(Ordering::SeqCst) > 0 && watch.is_some() => {
                if watch.as_ref().is_some_and(peer_gone) {
                    // Dropping the connection drops its handler: the request's sequences
                    // end before the engine's next step.
                    tracing::debug!("the client left with a request in flight");
                    return;
                }
            }
            _ = tokio::time::sleep(tick), if !closing => {
                if activity.in_flight.load(Ordering::SeqCst) == 0 && activity.idle_for() >= limits.idle_timeout {
                    metrics.connections_timed_out.inc();
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
}

fn is_write_stall(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io.kind() == io::ErrorKind::TimedOut;
        }
        source = s.source();
    }
    false
}

/// Counts a request as in flight from its head to the end (or drop) of its response body.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.started.notify_one();
        InFlight(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct GuardedBody {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A socket that records when bytes last moved and fails a write that has made no
/// progress for `write_timeout`.
struct TimedIo {
    inner: TcpStream,
    activity: Arc<Activity>,
    write_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl TimedIo {
    fn write_result<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>, progressed: impl Fn(&T) -> bool) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.stalled = None;
                if r.as_ref().is_ok_and(&progressed) {
                    self.activity.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.write_timeout;
                let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {timeout:?}"),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncRead for TimedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for TimedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_result(cx, poll, |&n| n > 0)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_result(cx, poll, |&n| n > 0)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_result(cx, poll, |_| false)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.write_result(cx, poll, |_| false)
    }
}
