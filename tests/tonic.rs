//! The guard in a real tonic server: `Server::builder().layer(...)` over a
//! router with one hand-written gRPC service, on 127.0.0.1 (an ephemeral
//! port), called over HTTP/2 by tonic's own `Channel`, both as a gRPC
//! client (`tonic::client::Grpc` with a raw bytes codec) and as a plain
//! HTTP/2 client (to see the status and headers on the wire).
//!
//! tonic puts the peer address into the request extensions as a
//! `TcpConnectInfo`; the guard reads `PeerAddr`, so the server stack is
//! "copy the peer address, then the guard" (see `copy_peer`).
//!
//! Every call is bounded by a timeout; nothing else sleeps.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use enumguard::{Actor, GuardHandle, GuardLayer, PeerAddr, Refusal, RefusalKind, ResponseBody};
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::NamedService;
use tonic::transport::server::{TcpConnectInfo, TcpIncoming};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Status};
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

const LIMIT: Duration = Duration::from_secs(5);
const SERVICE: &str = "enumguard.test.Echo";
const SAY: &str = "/enumguard.test.Echo/Say";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {LIMIT:?}"))
}

// ---------------------------------------------------------------------------
// A raw codec: messages are the bytes of the gRPC frame, no protobuf
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

// ---------------------------------------------------------------------------
// The service: `enumguard.test.Echo/Say`, unary, answers "hello <peer> <msg>"
// ---------------------------------------------------------------------------

/// The service, as a generated tonic server would be: `NamedService` plus
/// `Service<http::Request<tonic::body::Body>>`, added to the router with
/// `add_service`.
#[derive(Clone, Default)]
struct Echo {
    calls: Arc<AtomicUsize>,
}

impl Echo {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl NamedService for Echo {
    const NAME: &'static str = SERVICE;
}

impl Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let calls = self.calls.clone();
        Box::pin(async move {
            if req.uri().path() != SAY {
                return Ok(Status::unimplemented("no such method").into_http());
            }
            let say = tower::service_fn(move |req: tonic::Request<Bytes>| {
                calls.fetch_add(1, Ordering::SeqCst);
                // The peer address the adapter copied for the guard is
                // still in the extensions.
                let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
                let reply = match peer {
                    Some(ip) => format!("hello {ip} {}", String::from_utf8_lossy(req.get_ref())),
                    None => "no peer".to_owned(),
                };
                async move { Ok::<_, Status>(tonic::Response::new(Bytes::from(reply))) }
            });
            Ok(tonic::server::Grpc::new(RawCodec).unary(say, req).await)
        })
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// Copies tonic's `TcpConnectInfo` into the `PeerAddr` the guard reads.
/// The wiring a tonic user writes is
/// `ServiceBuilder::new().map_request(copy_peer).layer(guard)`.
fn copy_peer(mut req: http::Request<Body>) -> http::Request<Body> {
    if let Some(addr) = req
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
    {
        req.extensions_mut().insert(PeerAddr(addr));
    }
    req
}

/// What the server saw outside the guard: the `Refusal` of each refused
/// response.
type Refusals = Arc<Mutex<Vec<Refusal>>>;

struct Running {
    addr: SocketAddr,
    echo: Echo,
    refusals: Refusals,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Running {
    fn refusals(&self) -> Vec<Refusal> {
        self.refusals.lock().unwrap().clone()
    }

    async fn channel(&self) -> Channel {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("endpoint")
            .connect_timeout(LIMIT)
            .timeout(LIMIT);
        bounded("connect", endpoint.connect())
            .await
            .expect("connect to the tonic server")
    }

    /// Graceful shutdown: the clients must be gone.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        bounded("shutdown", task)
            .await
            .expect("server task")
            .expect("server ran without error");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A tonic server with `Echo` behind `layer`, plus an outermost layer that
/// records refusals (to show the `Refusal` extension reaches the layers
/// outside the guard).
async fn serve<L>(layer: L) -> Running
where
    L: Layer<
            tonic::service::Routes,
            Service: Service<
                http::Request<Body>,
                Response = http::Response<ResponseBody<Body>>,
                Error = Infallible,
                Future: Send,
            > + Clone
                         + Send
                         + 'static,
        > + Clone
        + Send
        + 'static,
{
    let listener = TcpListener::bind((LOCALHOST, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let echo = Echo::default();
    let refusals = Refusals::default();
    let seen = refusals.clone();
    let record = ServiceBuilder::new()
        .map_response(move |res: http::Response<ResponseBody<Body>>| {
            if let Some(r) = res.extensions().get::<Refusal>() {
                seen.lock().unwrap().push(r.clone());
            }
            res
        })
        .into_inner();
    let (stop, stopped) = oneshot::channel::<()>();
    let router = Server::builder()
        .layer(record)
        .layer(layer)
        .add_service(echo.clone());
    let task = tokio::spawn(router.serve_with_incoming_shutdown(
        TcpIncoming::from(listener),
        async move {
            let _ = stopped.await;
        },
    ));
    Running {
        addr,
        echo,
        refusals,
        stop: Some(stop),
        task: Some(task),
    }
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// A unary call to `Say` through tonic's gRPC client.
async fn say(channel: &Channel, msg: &'static str) -> Result<tonic::Response<Bytes>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    bounded("grpc ready", grpc.ready())
        .await
        .map_err(|e| Status::unknown(format!("not ready: {e}")))?;
    let req = tonic::Request::new(Bytes::from_static(msg.as_bytes()));
    bounded(
        "grpc call",
        grpc.unary(req, PathAndQuery::from_static(SAY), RawCodec),
    )
    .await
}

/// What a plain HTTP/2 client sees of a call to `Say`.
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

/// The same call as `say`, by hand: one length-prefixed gRPC frame.
async fn say_raw(channel: &Channel, msg: &'static str) -> Raw {
    let mut frame = BytesMut::with_capacity(5 + msg.len());
    frame.put_u8(0);
    frame.put_u32(msg.len() as u32);
    frame.put_slice(msg.as_bytes());
    let req = http::Request::post(format!("http://localhost{SAY}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(Full::new(frame.freeze())))
        .expect("request");
    let res = bounded("raw call", channel.clone().oneshot(req))
        .await
        .expect("an HTTP/2 response");
    let (parts, body) = res.into_parts();
    let collected = bounded("raw body", body.collect())
        .await
        .expect("a complete body");
    let trailers = collected.trailers().cloned();
    Raw {
        status: parts.status,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

fn header<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// A call passes; a ban on 127.0.0.1 refuses it before the service (HTTP
/// 429 on the wire, an error status in the gRPC client); an unban lets it
/// through again.
#[tokio::test]
async fn ban_refuses_grpc_calls_and_unban_restores_them() {
    let guard = GuardLayer::builder().build().expect("guard");
    let handle: GuardHandle = guard.handle();
    // The wiring: tell the guard the peer address, then the guard.
    let layer = ServiceBuilder::new().map_request(copy_peer).layer(guard);
    let server = serve(layer).await;
    let channel = server.channel().await;

    // 1. Passes and reaches the service, which sees the peer address.
    let res = say(&channel, "one").await.expect("allowed call");
    assert_eq!(res.get_ref().as_ref(), b"hello 127.0.0.1 one");
    assert_eq!(server.echo.calls(), 1);
    let raw = say_raw(&channel, "two").await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(
        header(&raw.headers, "content-type"),
        Some("application/grpc")
    );
    assert_eq!(&raw.body[5..], b"hello 127.0.0.1 two");
    let trailers = raw.trailers.expect("grpc trailers");
    assert_eq!(header(&trailers, "grpc-status"), Some("0"));
    assert_eq!(server.echo.calls(), 2);
    assert!(server.refusals().is_empty());

    // 2. Banned: refused by the guard, the service is not called.
    handle.ban(&Actor::ip(LOCALHOST), Duration::from_secs(600));
    let raw = say_raw(&channel, "three").await;
    assert_eq!(raw.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&raw.headers, "retry-after"), Some("600"));
    assert_eq!(header(&raw.headers, "grpc-status"), None);
    assert!(raw.trailers.is_none());
    assert_eq!(raw.body.as_ref(), b"too many requests; retry later\n");
    let status = say(&channel, "four").await.expect_err("banned call");
    // The default refusal is plain HTTP, not gRPC: tonic's client reports
    // it as INTERNAL (it reads the text body as a gRPC frame) or, without
    // a body, UNAVAILABLE (the gRPC mapping of 429). Either way it names
    // the 429. For a proper gRPC status use `on_refusal` (next test).
    assert!(
        matches!(status.code(), Code::Internal | Code::Unavailable),
        "{status:?}"
    );
    assert!(status.message().contains("429"), "{status:?}");
    assert_eq!(server.echo.calls(), 2, "a refused call reached the service");
    let refusals = server.refusals();
    assert_eq!(refusals.len(), 2);
    assert!(refusals.iter().all(|r| r.kind() == RefusalKind::Blocked));

    // 3. Unbanned: passes again.
    assert!(handle.unban(&Actor::ip(LOCALHOST)));
    let res = say(&channel, "five").await.expect("call after unban");
    assert_eq!(res.get_ref().as_ref(), b"hello 127.0.0.1 five");
    assert_eq!(server.echo.calls(), 3);
    assert_eq!(server.refusals().len(), 2);

    drop(channel);
    server.stop().await;
}

/// A refusal as a gRPC status: the `on_refusal` hook answers a
/// trailers-only gRPC response, so a gRPC client gets RESOURCE_EXHAUSTED
/// with `retry-after` metadata.
#[tokio::test]
async fn on_refusal_gives_grpc_clients_a_grpc_status() {
    let guard = GuardLayer::builder()
        .on_refusal(|r: &Refusal| {
            let code = match r.kind() {
                RefusalKind::MissingPeer => Code::Internal,
                RefusalKind::Denylisted => Code::PermissionDenied,
                _ => Code::ResourceExhausted,
            };
            let mut status = Status::new(code, r.to_string());
            if let Some(secs) = r.retry_after_secs() {
                status.metadata_mut().insert("retry-after", secs.into());
            }
            status.into_http::<Bytes>()
        })
        .build()
        .expect("guard");
    let handle = guard.handle();
    // The wiring: tell the guard the peer address, then the guard.
    let layer = ServiceBuilder::new().map_request(copy_peer).layer(guard);
    let server = serve(layer).await;
    let channel = server.channel().await;

    say(&channel, "one").await.expect("allowed call");
    assert_eq!(server.echo.calls(), 1);

    handle.ban(&Actor::ip(LOCALHOST), Duration::from_secs(90));
    let status = say(&channel, "two").await.expect_err("banned call");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), "refused: blocked (ip)");
    assert_eq!(
        status
            .metadata()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("90")
    );
    let raw = say_raw(&channel, "three").await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(
        header(&raw.headers, "content-type"),
        Some("application/grpc")
    );
    assert_eq!(header(&raw.headers, "grpc-status"), Some("8"));
    assert!(raw.body.is_empty());
    assert_eq!(server.echo.calls(), 1, "a refused call reached the service");
    assert_eq!(server.refusals().len(), 2);

    assert!(handle.unban(&Actor::ip(LOCALHOST)));
    let res = say(&channel, "four").await.expect("call after unban");
    assert_eq!(res.get_ref().as_ref(), b"hello 127.0.0.1 four");
    assert_eq!(server.echo.calls(), 2);

    drop(channel);
    server.stop().await;
}

/// Without the `TcpConnectInfo` -> `PeerAddr` step the guard has no peer
/// address and refuses everything with 500 (`MissingPeer`): the step is
/// required with tonic.
#[tokio::test]
async fn without_the_peer_step_every_call_is_refused() {
    let guard = GuardLayer::builder().build().expect("guard");
    let server = serve(guard).await;
    let channel = server.channel().await;

    let raw = say_raw(&channel, "one").await;
    assert_eq!(raw.status, StatusCode::INTERNAL_SERVER_ERROR);
    let status = say(&channel, "two").await.expect_err("no peer");
    assert_ne!(status.code(), Code::Ok);
    assert_eq!(server.echo.calls(), 0);
    let refusals = server.refusals();
    assert_eq!(refusals.len(), 2);
    assert!(
        refusals
            .iter()
            .all(|r| r.kind() == RefusalKind::MissingPeer)
    );

    drop(channel);
    server.stop().await;
}
