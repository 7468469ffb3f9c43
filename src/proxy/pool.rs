//! [`Pool`]: the upstream's HTTP/1.1 connections, kept open between
//! requests. A request takes the connection that went idle last (one lock,
//! no hashing: there is one upstream), or opens one; its answer's body
//! ([`UpstreamBody`]) gives the connection back when it ends. A connection
//! idle longer than the idle timeout is never used again (it would race
//! the upstream's own keep-alive close) and is closed by a sweep.
//!
//! Each connection times the answer to its request in flight (the
//! upstream timeout) with one timer of its own, looked at when it goes
//! off (`watch.rs`), not a timer per request: past the deadline the
//! connection is closed and the request fails as [`TimedOut`].
//!
//! A request that a pooled connection could not take (the upstream closed
//! it before a byte of the request was written) goes again on a new
//! connection, whatever its method: nothing of it reached the upstream.
//! A request the upstream received and then dropped is a 502, never sent
//! twice.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::watch::{Deadline, until};
use crate::GuardBody;

/// The most idle connections kept; past it a connection that goes idle is
/// closed.
const MAX_IDLE: usize = 1024;

/// A connection's sending half, and when its request in flight is due.
pub(crate) struct Sender {
    tx: SendRequest<GuardBody<Incoming>>,
    due: Arc<Deadline>,
}

/// The upstream did not answer in time (the upstream timeout).
#[derive(Debug)]
pub(crate) struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the upstream did not answer in time")
    }
}

impl std::error::Error for TimedOut {}

/// Why a request got no answer.
pub(crate) type Failed = Box<dyn std::error::Error + Send + Sync>;

/// The upstream's idle HTTP/1.1 connections.
pub(crate) struct Pool {
    /// `host:port`, as connected to.
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// The upstream timeout: the longest a request's deadline is from its
    /// start, and so how often a connection's timer looks at least.
    timeout: Duration,
    /// The most recently idle last.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

impl Pool {
    /// A pool for `authority` (port 80 if it names none); idle connections
    /// swept every `idle_timeout` while the pool is there; `timeout`: the
    /// upstream timeout its requests are sent with.
    pub(crate) fn new(
        authority: &http::uri::Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
        timeout: Duration,
    ) -> Arc<Self> {
        let addr = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let pool = Arc::new(Self {
            addr,
            connect_timeout,
            idle_timeout,
            timeout,
            idle: Mutex::new(Vec::new()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool), idle_timeout));
        }
        pool
    }

    /// Sends `req` on an idle connection, or a new one, its answer's head
    /// due within the upstream timeout ([`TimedOut`] after it): the answer,
    /// and the connection to give back once its body has ended.
    pub(crate) async fn send(
        &self,
        mut req: Request<GuardBody<Incoming>>,
    ) -> Result<(Response<Incoming>, Sender), Failed> {
        let now = Instant::now();
        let due = now.checked_add(self.timeout);
        if let Some(mut s) = self.take(now) {
            match s.send(req, due).await {
                Ok(res) => return Ok((res, s)),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed while idle.
                    Some(unsent) if !s.due.timed_out() => req = unsent,
                    _ => return Err(s.failed(e)),
                },
            }
        }
        // A new connection: its connect is timed here, the request by its
        // connection's timer. Boxed: a rare path, kept out of the future of
        // every request.
        let connect = async {
            match due {
                Some(d) => match tokio::time::timeout_at(d.into(), self.connect(due)).await {
                    Ok(s) => s,
                    Err(_) => Err(Box::new(TimedOut) as Failed),
                },
                None => self.connect(due).await,
            }
        };
        let mut s = Box::pin(connect).await?;
        match s.send(req, due).await {
            Ok(res) => Ok((res, s)),
            Err(e) => Err(s.failed(e)),
        }
    }

    /// The connection that went idle last, if still fresh at `now` and
    /// open; the stale ones met on the way are closed.
    fn take(&self, now: Instant) -> Option<Sender> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                match idle.pop() {
                    None => break None,
                    Some(i)
                        if now.saturating_duration_since(i.since) <= self.idle_timeout
                            && i.tx.tx.is_ready() =>
                    {
                        break Some(i.tx);
                    }
                    Some(i) => stale.push(i),
                }
            }
        };
        drop(stale);
        found
    }

    /// A new connection to the upstream; its timer's first check at the
    /// first request's deadline `first_due` (the connect came out of that
    /// request's time), or one timeout from now.
    async fn connect(&self, first_due: Option<Instant>) -> Result<Sender, Failed> {
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.addr.as_str()),
        )
        .await
        .map_err(|_| format!("connect to {}: timed out", self.addr))?
        .map_err(|e| format!("connect to {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        let due = Arc::new(Deadline::new());
        let watch = due.clone();
        let every = self.timeout;
        tokio::spawn(async move {
            // Upgrades (WebSocket) hand the connection over from here. A
            // request past its deadline closes the connection: its answer
            // fails, as `TimedOut`.
            let first = match (Instant::now().checked_add(every), first_due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let _ = until(conn.with_upgrades(), first, || watch.check(every)).await;
        });
        Ok(Sender { tx, due })
    }

    /// Takes `tx` back once its exchange is over: at once if it is ready
    /// for the next request, else when it is (a request body still
    /// going), unless it closes first.
    fn put(self: &Arc<Self>, mut tx: Sender) {
        if tx.tx.is_ready() {
            self.keep(tx);
        } else if !tx.tx.is_closed() {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let pool = self.clone();
            rt.spawn(async move {
                if tx.tx.ready().await.is_ok() {
                    pool.keep(tx);
                }
            });
        }
    }

    fn keep(&self, tx: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    /// Closes the connections idle too long, or closed by the upstream.
    fn sweep(&self) {
        let stale: Vec<Idle> = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let (fresh, stale) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|i| i.since.elapsed() <= self.idle_timeout && !i.tx.tx.is_closed());
            *idle = fresh;
            stale
        };
        drop(stale);
    }
}

impl Sender {
    /// `req` on this connection, its answer's head due at `due`.
    async fn send(
        &mut self,
        req: Request<GuardBody<Incoming>>,
        due: Option<Instant>,
    ) -> Result<Response<Incoming>, TrySendError<Request<GuardBody<Incoming>>>> {
        self.due.set(due);
        let res = self.tx.try_send_request(req).await;
        self.due.clear();
        res
    }

    /// Why a request on this connection failed: its timeout, or the
    /// connection's error.
    fn failed(&self, e: TrySendError<Request<GuardBody<Incoming>>>) -> Failed {
        if self.due.timed_out() {
            Box::new(TimedOut)
        } else {
            e.into_error().into()
        }
    }
}

/// Sweeps `pool` every `every`, until it is gone.
async fn sweep(pool: Weak<Pool>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(p) => p.sweep(),
            None => return,
        }
    }
}

/// An upstream answer's body, streamed as it comes; its connection goes
/// back to the pool when it ends (a body dropped before its end closes
/// the connection).
pub(crate) struct UpstreamBody {
    inner: Incoming,
    back: Option<(Arc<Pool>, Sender)>,
}

impl UpstreamBody {
    /// `inner`, giving `back` its connection at the end (`None`: an
    /// HTTP/2 stream, or a connection upgraded).
    pub(crate) fn new(inner: Incoming, back: Option<(Arc<Pool>, Sender)>) -> Self {
        let mut body = Self { inner, back };
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((pool, tx)) = self.back.take() {
            pool.put(tx);
        }
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
