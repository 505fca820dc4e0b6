//! The connection guard: what happens on an HTTP/1 connection before the proxy's hooks run.
//!
//! Pingora reads a request head with a timeout per read, so a client that sends one byte
//! every few seconds holds a connection forever (slowloris), and it answers a head it cannot
//! parse with a bare 400 before any hook sees the request. [`GuardedApp`] wraps each HTTP/1
//! connection's stream in a [`HeadGuard`] that
//! - gives the whole request head `limits.client_header_timeout` from its first byte (from the
//!   accept for a connection's first request), then answers 408 and closes;
//! - replaces any response Pingora writes on its own, before the proxy has seen the request,
//!   with a problem+json answer of the same status, and counts and logs it like every refusal.
//!
//! The guard knows where requests begin and end from the proxy ([`mark_request_seen`], at the
//! first hook) and from the keep-alive loop here (between requests); it never parses bytes.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, Stream, UniqueID,
    UniqueIDType, ALPN,
};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::problem::Refusal;
use crate::state::GatewayState;

/// Waiting for the first byte of a request (between keep-alive requests).
const IDLE: u8 = 0;
/// Reading a request head: the deadline runs.
const HEAD: u8 = 1;
/// The proxy has the request.
const SEEN: u8 = 2;

/// A [`ServerApp`] that runs `A`'s HTTP/1 sessions over [`HeadGuard`]ed streams; HTTP/2
/// connections go to `A` unchanged (h2 has its own framing and flow control).
pub struct GuardedApp<A> {
    inner: Arc<A>,
    state: Arc<GatewayState>,
    grace: Duration,
}

impl<A> GuardedApp<A> {
    /// Guards `inner`'s connections with the limits of `state`'s current config. `grace`:
    /// how long idle keep-alive connections are kept once the listeners stop (see
    /// [`ServerApp::cleanup`]).
    pub fn new(grace: Duration, inner: A, state: Arc<GatewayState>) -> GuardedApp<A> {
        GuardedApp {
            inner: Arc::new(inner),
            state,
            grace,
        }
    }
}

#[async_trait]
impl<A> ServerApp for GuardedApp<A>
where
    A: HttpServerApp + ServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return ServerApp::process_new(&self.inner, stream, shutdown).await;
        }
        let timeout = self.state.config.load().limits.client_header_timeout.0;
        let stream: Stream = Box::new(HeadGuard::new(stream, timeout, self.state.clone()));
        let mut session = ServerSession::new_http1(stream);
        // As Pingora's own HTTP/1 loop: 60 s keep-alive, none once shutting down.
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
        let options = self.inner.server_options();
        session.set_keepalive_reuses_remaining(options.and_then(|o| o.keepalive_request_limit));
        let mut reused = self.inner.process_new_http(session, shutdown).await;
        while let Some((stream, settings)) = reused.map(|r| r.consume()) {
            if let Some(g) = stream.as_any().downcast_ref::<HeadGuard>() {
                g.phase.store(IDLE, Ordering::Release);
            }
            let mut session = ServerSession::new_http1(stream);
            if let Some(settings) = settings {
                settings.apply_to_session(&mut session);
            }
            reused = self.inner.process_new_http(session, shutdown).await;
        }
        None
    }

    /// Called when the listeners stop (SIGTERM, graceful upgrade). Pingora's own cleanup
    /// closes every keep-alive connection waiting for its next request at once, racing clients
    /// that are sending one; until `grace` has passed those are served instead, each response
    /// with `Connection: close`, so clients move on to the new process without an error.
    async fn cleanup(&self) {
        tokio::time::sleep(self.grace).await;
        ServerApp::cleanup(&*self.inner).await;
    }
}

/// Tells the guard of `stream` (if it has one) that the proxy has the current request.
pub fn mark_request_seen(stream: Option<&Stream>) {
    if let Some(g) = stream.and_then(|s| s.as_any().downcast_ref::<HeadGuard>()) {
        g.phase.store(SEEN, Ordering::Release);
    }
}

/// A stream wrapper enforcing the request-head deadline and rewriting Pingora's own answers.
pub struct HeadGuard {
    inner: Stream,
    phase: AtomicU8,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Bytes of the current head read so far (0: the client has sent nothing yet).
    head_bytes: usize,
    /// An answer of ours being written in place of Pingora's, and how much of it is out.
    answer: Option<(Vec<u8>, usize)>,
    /// Our answer is complete; Pingora's remaining bytes for it are dropped.
    answered: bool,
    timed_out: bool,
    state: Arc<GatewayState>,
}

impl fmt::Debug for HeadGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadGuard")
            .field("inner", &self.inner)
            .field("phase", &self.phase.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl HeadGuard {
    fn new(inner: Stream, timeout: Duration, state: Arc<GatewayState>) -> HeadGuard {
        HeadGuard {
            inner,
            // The first request's deadline runs from the accept.
            phase: AtomicU8::new(HEAD),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            head_bytes: 0,
            answer: None,
            answered: false,
            timed_out: false,
            state,
        }
    }

    fn peer(&self) -> Option<SocketAddr> {
        self.inner
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied())
    }

    /// Counts and logs `refusal` and queues its bytes in place of whatever Pingora writes.
    fn answer_with(&mut self, refusal: Refusal) {
        let request_id = crate::stage::new_request_id();
        let peer = self.peer();
        super::record_connection_refusal(&self.state, &refusal, &request_id, peer);
        self.answer = Some((refusal.http1_bytes(&request_id), 0));
    }

    /// Writes what is left of our answer; `Ready(Ok)` once all of it is out.
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.answer {
            if *sent == bytes.len() {
                self.answer = None;
                self.answered = true;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// The status of a response head Pingora is about to write (`HTTP/1.x NNN ...`).
fn status_of(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

impl AsyncRead for HeadGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    match this.phase.load(Ordering::Acquire) {
                        IDLE => {
                            this.phase.store(HEAD, Ordering::Release);
                            this.head_bytes = n;
                            let at = Instant::now() + this.timeout;
                            this.deadline.as_mut().reset(at);
                        }
                        HEAD => this.head_bytes += n,
                        _ => {}
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if this.phase.load(Ordering::Acquire) == HEAD
                    && this.deadline.as_mut().poll(cx).is_ready()
                {
                    this.timed_out = true;
                    if this.head_bytes > 0 {
                        // Answered on the shutdown Pingora does after the failed read.
                        log::info!(
                            "client {} sent {} bytes of a request head in {:?} without finishing it; closing (limits.client_header_timeout)",
                            this.peer().map(|p| p.to_string()).unwrap_or_default(),
                            this.head_bytes,
                            this.timeout
                        );
                        this.answer_with(Refusal::HeaderTimeout);
                    }
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head not received within limits.client_header_timeout",
                    )));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for HeadGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.answered || this.timed_out {
            // The connection is closing with our answer; Pingora's own is dropped.
            return Poll::Ready(Ok(buf.len()));
        }
        if this.answer.is_none() && this.phase.load(Ordering::Acquire) != SEEN {
            // No hook has seen a request: this is Pingora answering by itself.
            match status_of(buf) {
                Some(status) => {
                    log::info!(
                        "client {} sent a request the HTTP parser refused ({status})",
                        this.peer().map(|p| p.to_string()).unwrap_or_default()
                    );
                    this.answer_with(Refusal::Unparsable { status });
                }
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        if this.answer.is_some() {
            return match this.poll_answer(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_some() {
            match this.poll_answer(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.answer.is_some() {
            match this.poll_answer(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => this.answer = None,
                Poll::Pending => return Poll::Pending,
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for HeadGuard {
    async fn shutdown(&mut self) {
        let _ = tokio::io::AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for HeadGuard {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadGuard {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadGuard {
    fn get_timing_digest(&self) -> Vec<Option<pingora::protocols::TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadGuard {
    fn get_proxy_digest(&self) -> Option<Arc<pingora::protocols::raw_connect::ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl GetSocketDigest for HeadGuard {
    fn get_socket_digest(&self) -> Option<Arc<pingora::protocols::SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

#[async_trait]
impl Peek for HeadGuard {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::status_of;

    #[test]
    fn the_status_of_a_response_head() {
        assert_eq!(status_of(b"HTTP/1.1 400 Bad Request\r\n"), Some(400));
        assert_eq!(status_of(b"HTTP/1.0 405 Method Not Allowed\r\n"), Some(405));
        assert_eq!(status_of(b"HTTP/1.1 40"), None);
        assert_eq!(status_of(b"0\r\n\r\n"), None);
    }
}
