//! `enumguard proxy` (feature `proxy`): the guard in front of any HTTP
//! service, whatever it is written in. The proxy is the tower
//! [`Guard`] around a forwarding service: the same detection
//! as a Rust service gets from the layer, configured from the same TOML
//! (its `[proxy]` table: [`ProxyConfig`]).
//!
//! Per connection: HTTP/1.1 or HTTP/2 from clients (upgrades such as
//! WebSocket pass through), the peer address given to the guard, the
//! health path answered here; per request: the guard, then the upstream
//! on a pooled connection (HTTP/1.1, or HTTP/2 with `upstream_h2c`),
//! bodies streamed both ways.
//!
//! | file | role |
//! |---|---|
//! | `mod.rs` | [`Proxy`]: listeners, connections, the health path, signals (drain, reload) |
//! | `forward.rs` | the forwarding service: headers, 502/504, upgrades, the upstream's word on the answer |
//! | `account.rs` | who the actor is: a gateway's header, a verified JWT, an account the upstream names |
//! | `pool.rs` | the upstream's HTTP/1.1 connections, pooled; the answer's body that gives its connection back |
//! | `watch.rs` | the header read and upstream timeouts, one timer per connection rather than per request |
//! | `live.rs` | what a reload changes while the proxy runs (timeouts, health path, account source, header names, trusted forwarding), swapped whole |
//! | `reload.rs` | the reloader task: the file again (SIGHUP), or the `[proxy]` table of a config the guard was given otherwise |
//!
//! # Reload
//! SIGHUP ([`Proxy::reload`]) reads the config file again; the guard's
//! settings reload through the core (state kept), and so does the
//! `[proxy]` table, but for its listeners and its upstream (`listen`,
//! `upstream`, `upstream_h2c`, `admin_listen`, `admin_token`): a change
//! to those is logged and takes a restart. A reload through the admin
//! service, or [`GuardHandle::reload`] on [`Proxy::handle`], applies the
//! table the same way (on the next request). A file or a table that
//! cannot be applied (a key file that cannot be read, say) is refused and
//! logged, and what runs stays.

mod account;
mod forward;
mod live;
mod pool;
mod reload;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower_layer::Layer;
use tower_service::Service;

use arc_swap::ArcSwap;

pub use account::MAX_BINDINGS;
use forward::{ProxyBody, TcpPeer, Tunnels, Upstream, answer};
use live::Live;
use watch::HeadWait;

use crate::config::{Config, ProxyConfig};
use crate::{Guard, GuardHandle, GuardLayer, PeerAddr, ResponseBody};

/// A running proxy: what its listener is bound to, and how to stop it.
pub struct Proxy {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    /// The admin listener's accept loop, stopped with the proxy.
    admin: Option<tokio::task::JoinHandle<()>>,
    handle: GuardHandle,
    stop: tokio::sync::watch::Sender<bool>,
    reload: tokio::sync::mpsc::UnboundedSender<Reload>,
    done: tokio::task::JoinHandle<()>,
}

/// What the reloader is asked.
#[derive(Debug, Clone, Copy)]
enum Reload {
    /// Read the config file again (SIGHUP).
    File,
    /// The guard's config was reloaded by someone else (the admin service,
    /// the handle): apply its `[proxy]` table.
    Follow,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What every connection shares.
struct State {
    guard: Guard<Upstream>,
    handle: GuardHandle,
    /// The settings a reload changes.
    live: Arc<ArcSwap<Live>>,
    /// The last guard generation the reloader was asked to follow.
    asked: AtomicU64,
    reload: tokio::sync::mpsc::UnboundedSender<Reload>,
    draining: AtomicBool,
    tunnels: Arc<Tunnels>,
}

impl Proxy {
    /// Binds the listeners of `config`'s `[proxy]` table and starts serving
    /// on the current tokio runtime. `file`: where `reload` reads the
    /// config again (SIGHUP in the binary).
    ///
    /// # Errors
    /// An invalid config, a listener that cannot bind, a secret that is not
    /// there.
    pub async fn start(config: Config, file: Option<PathBuf>) -> Result<Self, String> {
        config.validate().map_err(|e| e.to_string())?;
        let p = config.proxy.clone().unwrap_or_default();
        let upstream: http::Uri = p
            .upstream
            .parse()
            .map_err(|e| format!("proxy.upstream: {e}"))?;
        let authority = upstream
            .authority()
            .cloned()
            .ok_or("proxy.upstream: no host")?;
        let prefix = upstream.path().trim_end_matches('/').to_owned();
        let live = Arc::new(ArcSwap::from_pointee(Live::new(
            &config,
            &authority,
            p.upstream_h2c,
            None,
            0,
        )?));
        let tunnels = Arc::new(Tunnels::new());
        let shared = forward::Shared {
            h2c: p.upstream_h2c,
            authority: authority.clone(),
            prefix,
            live: live.clone(),
            tunnels: tunnels.clone(),
        };
        let layer = GuardLayer::builder()
            .config(config.clone())
            .account(live::account_hook(&live))
            .build()
            .map_err(|e| e.to_string())?;
        let handle = layer.handle();
        // The generation the settings were built for.
        let generation = handle.detector().generation();
        live.store(Arc::new(live.load().seen_at(generation)));
        let (reload, reload_rx) = tokio::sync::mpsc::unbounded_channel();
        let state = Arc::new(State {
            guard: layer.layer(Upstream(Arc::new(shared))),
            handle: handle.clone(),
            live: live.clone(),
            asked: AtomicU64::new(generation),
            reload: reload.clone(),
            draining: AtomicBool::new(false),
            tunnels,
        });
        let listener = TcpListener::bind(&p.listen)
            .await
            .map_err(|e| format!("proxy.listen {}: {e}", p.listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let admin = match &p.admin_listen {
            Some(a) => Some(admin_listener(a, &p, &handle, reload.clone()).await?),
            None => None,
        };
        let (admin_addr, admin) = admin.unzip();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(reload::reloader(
            reload_rx,
            file,
            handle.clone(),
            live,
            (p.clone(), authority),
        ));
        let done = tokio::spawn(serve(listener, state, stop_rx));
        tracing::info!(target: "enumguard::proxy", %addr, upstream = %p.upstream, "enumguard proxy listening");
        Ok(Self {
            addr,
            admin_addr,
            admin,
            handle,
            stop,
            reload,
            done,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The guard's handle (bans, reload, inspection).
    pub fn handle(&self) -> &GuardHandle {
        &self.handle
    }

    /// Reads the config file again and reloads the guard through the
    /// core's reload (state kept); a bad file is logged and the running
    /// config stays. What SIGHUP does.
    pub fn reload(&self) {
        let _ = self.reload.send(Reload::File);
    }

    /// Drains and stops: the health path answers 503 at once; new
    /// connections are taken for the grace period, then refused; requests
    /// in flight (and upgraded tunnels) are served for up to the grace
    /// period more; then whatever is still open is closed, and this
    /// returns (the admin listener, if any, closes too).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.done.await;
        if let Some(admin) = self.admin {
            admin.abort();
            let _ = admin.await;
        }
    }
}

/// The accept loop: every connection served (HTTP/1.1 and HTTP/2, with
/// upgrades), until a stop, then the drain.
async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No timer: the header read timeout is kept per connection (`watch`).
    builder.http1().header_read_timeout(None);
    // An answer's head and its body in one buffer, one write(2): cheaper
    // than writev(2) of the two for the short answers most are (about 460
    // instructions a request); a long body is copied into the buffer as it
    // goes, which costs little beside its system calls.
    builder.http1().writev(false);
    let mut grace = Duration::ZERO;
    let mut deadline: Option<tokio::time::Instant> = None;
    // The connections' tasks: the drain closes those still open at its end.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accept = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, listener.accept()).await.ok(),
                None => Some(listener.accept().await),
            }
        };
        tokio::select! {
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            changed = stop.changed(), if deadline.is_none() => {
                if changed.is_err() || *stop.borrow() {
                    state.draining.store(true, Ordering::SeqCst);
                    grace = state.live.load().grace;
                    tracing::warn!(target: "enumguard::proxy", grace_secs = grace.as_secs(), "draining: health answers 503; new connections for the grace period, then none");
                    deadline = Some(tokio::time::Instant::now() + grace);
                }
            }
            conn = accept => {
                let Some(conn) = conn else { break };
                let Ok((tcp, peer)) = conn else {
                    // Out of file descriptors, say: wait rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let header_read = state.live.load().header_read;
                let state = state.clone();
                // The header read timeout: from the connection's start, then
                // from the end of each answer, to the next request head
                // (hyper's, without its timer per request; HTTP/2 requests
                // are not timed once one came).
                let wait = Arc::new(HeadWait::new());
                let first = wait.first(header_read);
                let stamp = wait.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    stamp.request(req.version() == http::Version::HTTP_2);
                    let state = state.clone();
                    let stamp = stamp.clone();
                    async move {
                        let res = state.handle(req, peer).await;
                        Ok::<_, Infallible>(res.map(|body| Answer { body, wait: stamp }))
                    }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                let conn = graceful.watch(conn.into_owned());
                conns.spawn(async move {
                    if watch::until(conn, first, || wait.check(header_read)).await.is_none() {
                        tracing::debug!(target: "enumguard::proxy", %peer, "no request head within the header read timeout: connection closed");
                    }
                });
            }
        }
    }
    // No more connections: refused from here on, not left unanswered in
    // the backlog while the drain goes on.
    drop(listener);
    let drained = async {
        graceful.shutdown().await;
        state.tunnels.drained().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(target: "enumguard::proxy", "grace period over: connections and tunnels still open are closed");
    }
    state.tunnels.close();
    conns.shutdown().await;
}

pin_project_lite::pin_project! {
    /// An answer's body, which says when it ended (or was dropped): from
    /// then on the connection waits for its next request head.
    struct Answer<B> {
        #[pin]
        body: B,
        wait: Arc<HeadWait>,
    }

    impl<B> PinnedDrop for Answer<B> {
        fn drop(this: Pin<&mut Self>) {
            this.project().wait.answered();
        }
    }
}

impl<B: http_body::Body> http_body::Body for Answer<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

impl State {
    async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody<ProxyBody>> {
        let client = {
            let live = self.live.load();
            self.follow(live.generation);
            if req.uri().path() == live.health {
                let res = if self.draining.load(Ordering::SeqCst) {
                    answer(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
                } else {
                    answer(StatusCode::OK, "ok\n")
                };
                return res.map(ResponseBody::inner);
            }
            client_addr(&live, &req, peer)
        };
        if client != peer {
            // The forwarding headers append the hop the proxy saw.
            req.extensions_mut().insert(TcpPeer(peer.ip()));
        }
        req.extensions_mut().insert(PeerAddr(client));
        let mut guard = self.guard.clone();
        // The forwarding service is always ready; the guard asks it.
        let ready = std::future::poll_fn(|cx| guard.poll_ready(cx)).await;
        match ready {
            Ok(()) => match guard.call(req).await {
                Ok(res) => res,
                Err(never) => match never {},
            },
            Err(never) => match never {},
        }
    }

    /// Asks the reloader to apply the guard's config if it was reloaded
    /// since `generation` (by the admin service, say): once per reload.
    fn follow(&self, generation: u64) {
        let now = self.handle.detector().generation();
        if now != generation && self.asked.swap(now, Ordering::Relaxed) != now {
            let _ = self.reload.send(Reload::Follow);
        }
    }
}

/// The client's address: the peer, or (from a trusted peer) the address
/// an edge in front resolved into `client_ip_header`.
fn client_addr(live: &Live, req: &Request<Incoming>, peer: SocketAddr) -> SocketAddr {
    let Some(h) = &live.client_ip_header else {
        return peer;
    };
    if live.trusted.is_empty() || !crate::actor::in_any(&live.trusted, peer.ip()) {
        return peer;
    }
    req.headers()
        .get(h)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<std::net::IpAddr>().ok())
        .map_or(peer, |ip| SocketAddr::new(ip, 0))
}

/// The process's Prometheus recorder, installed by the first proxy that
/// asks (a recorder is process-wide and installs once: a second proxy in
/// the same process, or one started again, renders the same one). `None`
/// when another recorder was installed first.
fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| {
                    tracing::warn!(target: "enumguard::proxy", error = %e, "no /metrics: another metrics recorder is installed");
                })
                .ok()
        })
        .clone()
}

/// The admin service and `/metrics` on their own listener.
async fn admin_listener(
    addr: &str,
    p: &ProxyConfig,
    handle: &GuardHandle,
    reload: tokio::sync::mpsc::UnboundedSender<Reload>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), String> {
    let token = account::secret(p.admin_token.as_deref().unwrap_or_default())?;
    let admin =
        crate::admin::AdminService::new(handle.clone(), token).map_err(|e| e.to_string())?;
    let metrics = prometheus();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("proxy.admin_listen {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let admin = admin.clone();
            let metrics = metrics.clone();
            let reload = reload.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let mut admin = admin.clone();
                let metrics = metrics.clone();
                let reload = reload.clone();
                async move {
                    if req.uri().path() == "/metrics" {
                        let text = metrics.as_ref().map(|m| m.render()).unwrap_or_default();
                        return Ok::<_, Infallible>(Response::new(http_body_util::Either::Left(
                            Full::new(Bytes::from(text)),
                        )));
                    }
                    let path = req.uri().path().to_owned();
                    // `/admin` and what is under it (`/admin/...`), never a
                    // path that only starts with the same letters
                    // (`/administrator`).
                    let under = path
                        .strip_prefix("/admin")
                        .filter(|rest| rest.is_empty() || rest.starts_with('/'));
                    let res = match under {
                        Some(_) => {
                            let (mut parts, body) = req.into_parts();
                            let rest = &parts.uri.path_and_query().map_or("/", |p| p.as_str())
                                ["/admin".len()..];
                            // `/admin` and `/admin?q` are the admin service's `/`.
                            let rest = if rest.starts_with('/') {
                                rest.to_owned()
                            } else {
                                format!("/{rest}")
                            };
                            parts.uri =
                                rest.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
                            let res = admin
                                .call(Request::from_parts(parts, body))
                                .await
                                .unwrap_or_else(|never| match never {});
                            // A reload or a rollback: its [proxy] table
                            // applies now (nothing to do otherwise).
                            let _ = reload.send(Reload::Follow);
                            res
                        }
                        None => {
                            let mut r = Response::new(Full::new(Bytes::from_static(
                                b"not found: /admin/... or /metrics\n",
                            )));
                            *r.status_mut() = StatusCode::NOT_FOUND;
                            r
                        }
                    };
                    Ok(res.map(http_body_util::Either::Right))
                }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok((local, task))
}
