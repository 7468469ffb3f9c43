//! [`Pool`]: the upstream's HTTP/1.1 connections, kept open between
//! requests. A request takes the connection that went idle last (one lock,
//! no hashing: there is one upstream), or opens one; its answer's body
//! ([`UpstreamBody`]) gives the connection back when it ends. A connection
//! idle longer than the idle timeout is never used again (it would race
//! the upstream's own keep-alive close) and is closed by a sweep.
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
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use crate::GuardBody;

/// The most idle connections kept; past it a connection that goes idle is
/// closed.
const MAX_IDLE: usize = 1024;

/// A connection's sending half.
pub(crate) type Sender = SendRequest<GuardBody<Incoming>>;

/// Why a request got no answer.
pub(crate) type Failed = Box<dyn std::error::Error + Send + Sync>;

/// The upstream's idle HTTP/1.1 connections.
pub(crate) struct Pool {
    /// `host:port`, as connected to.
    addr: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    /// The most recently idle last.
    idle: Mutex<Vec<Idle>>,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

impl Pool {
    /// A pool for `authority` (port 80 if it names none); idle connections
    /// swept every `idle_timeout` while the pool is there.
    pub(crate) fn new(
        authority: &http::uri::Authority,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        let addr = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:80", authority.host()),
        };
        let pool = Arc::new(Self {
            addr,
            connect_timeout,
            idle_timeout,
            idle: Mutex::new(Vec::new()),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(sweep(Arc::downgrade(&pool), idle_timeout));
        }
        pool
    }

    /// Sends `req` on an idle connection, or a new one: the answer, and
    /// the connection to give back once its body has ended.
    pub(crate) async fn send(
        &self,
        mut req: Request<GuardBody<Incoming>>,
    ) -> Result<(Response<Incoming>, Sender), Failed> {
        if let Some(mut tx) = self.take() {
            match tx.try_send_request(req).await {
                Ok(res) => return Ok((res, tx)),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection closed while idle.
                    Some(unsent) => req = unsent,
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut tx = self.connect().await?;
        match tx.try_send_request(req).await {
            Ok(res) => Ok((res, tx)),
            Err(e) => Err(e.into_error().into()),
        }
    }

    /// The connection that went idle last, if still fresh and open; the
    /// stale ones met on the way are closed.
    fn take(&self) -> Option<Sender> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                match idle.pop() {
                    None => break None,
                    Some(i) if i.since.elapsed() <= self.idle_timeout && i.tx.is_ready() => {
                        break Some(i.tx);
                    }
                    Some(i) => stale.push(i),
                }
            }
        };
        drop(stale);
        found
    }

    async fn connect(&self) -> Result<Sender, Failed> {
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.addr.as_str()),
        )
        .await
        .map_err(|_| format!("connect to {}: timed out", self.addr))?
        .map_err(|e| format!("connect to {}: {e}", self.addr))?;
        let _ = tcp.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // Upgrades (WebSocket) hand the connection over from here.
            let _ = conn.with_upgrades().await;
        });
        Ok(tx)
    }

    /// Takes `tx` back once its exchange is over: at once if it is ready
    /// for the next request, else when it is (a request body still
    /// going), unless it closes first.
    fn put(self: &Arc<Self>, mut tx: Sender) {
        if tx.is_ready() {
            self.keep(tx);
        } else if !tx.is_closed() {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let pool = self.clone();
            rt.spawn(async move {
                if tx.ready().await.is_ok() {
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
                .partition(|i| i.since.elapsed() <= self.idle_timeout && !i.tx.is_closed());
            *idle = fresh;
            stale
        };
        drop(stale);
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
