//! `enumguard proxy` (issue 25) against real upstreams on loopback: an
//! axum app, raw TCP servers that show the exact bytes on the wire, a hyper
//! server that upgrades (a WebSocket-style echo), `python3 -m http.server`
//! when Python is there, and the `enumguard` binary itself for its signals.
//!
//! Every server binds an ephemeral port on 127.0.0.1 and is stopped at the
//! end of its test (a task aborted on drop, a child killed). Clients bind
//! source addresses across 127.0.0.0/8 (Linux routes all of it to
//! loopback) to be several addresses. Every wait is bounded: an await has a
//! deadline, a polling loop a number of tries.
#![cfg(feature = "proxy")]

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::{self, post};
use bytes::Bytes;
use enumguard::proxy::Proxy;
use enumguard::{AccountId, Actor, Config, Verdict};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc};

const FIVE_MIB: usize = 5 * 1024 * 1024;

/// The deadline of any one wait.
const WAIT: Duration = Duration::from_secs(10);

/// `f`, or a failed test after [`WAIT`].
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {WAIT:?}"))
}

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/// Byte `i` of the test pattern: not periodic at any small length, so a
/// dropped, repeated or reordered chunk shows.
fn pattern_byte(i: usize) -> u8 {
    ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i >> 16) as u8
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

/// `total` bytes of the pattern in 64 KiB frames, computed as they go;
/// with `exact`, its length is known (a Content-Length goes out), without,
/// it goes out chunked.
struct PatternBody {
    sent: usize,
    total: usize,
    exact: bool,
}

impl PatternBody {
    fn new(total: usize, exact: bool) -> Self {
        Self {
            sent: 0,
            total,
            exact,
        }
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.sent >= this.total {
            return Poll::Ready(None);
        }
        let end = (this.sent + 64 * 1024).min(this.total);
        let data: Bytes = (this.sent..end).map(pattern_byte).collect();
        this.sent = end;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.total
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact((self.total - self.sent) as u64)
        } else {
            SizeHint::default()
        }
    }
}

/// A body fed frame by frame through a channel (data, then maybe
/// trailers): an upload the test paces, or an answer the upstream paces.
struct ChannelBody(mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut().0.poll_recv(cx).map(|f| f.map(Ok))
    }
}

fn channel_body() -> (mpsc::Sender<Frame<Bytes>>, ChannelBody) {
    let (tx, rx) = mpsc::channel(4);
    (tx, ChannelBody(rx))
}

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// A spawned server, aborted when dropped.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A server on an ephemeral loopback port.
struct Server {
    addr: SocketAddr,
    _task: Task,
}

async fn bind() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

async fn serve_axum(router: Router) -> Server {
    let (listener, addr) = bind().await;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Server {
        addr,
        _task: Task(task),
    }
}

/// What the test and the axum upstream signal each other.
#[derive(Clone, Default)]
struct App {
    /// A held answer (`/slow`, `/events`) may go on.
    release: Arc<Notify>,
    /// `/slow` has its request.
    arrived: Arc<Notify>,
}

/// The axum upstream.
fn app(state: App) -> Router {
    Router::new()
        .route("/hello", routing::get(|| async { "hello" }))
        .route("/echo", post(echo))
        .route("/pattern/{framing}", routing::get(pattern_answer))
        .route("/trailers", post(trailers))
        .route("/events", routing::get(events))
        .route("/slow", routing::get(slow))
        .route("/forever", routing::get(forever))
        .route("/ws", routing::get(ws))
        .route(
            "/host",
            routing::get(|h: HeaderMap| async move { host_of(&h) }),
        )
        .route("/accounts/{id}/book", routing::get(|| async { "book" }))
        .route("/login", routing::get(login))
        .route("/lookup", routing::get(lookup))
        .route("/orders/{id}", routing::get(order))
        .with_state(state)
}

fn host_of(h: &HeaderMap) -> String {
    h.get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned()
}

/// The request body straight back, streamed; `x-request-framing` says how
/// the request came (its Content-Length, or chunked). The answer has the
/// request's framing: a known length goes out as a Content-Length.
async fn echo(headers: HeaderMap, body: AxumBody) -> AxumResponse {
    let framing = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => format!("length {}", v.to_str().unwrap()),
        None => match headers.get(header::TRANSFER_ENCODING) {
            Some(v) => v.to_str().unwrap().to_owned(),
            None => "none".to_owned(),
        },
    };
    let mut res = AxumResponse::new(body);
    res.headers_mut()
        .insert("x-request-framing", framing.parse().unwrap());
    res
}

/// 5 MiB of the pattern, with a Content-Length (`length`) or chunked.
async fn pattern_answer(Path(framing): Path<String>) -> AxumResponse {
    AxumResponse::new(AxumBody::new(PatternBody::new(
        FIVE_MIB,
        framing == "length",
    )))
}

/// Reads the request to its end and says what its trailer `x-req-sum` was;
/// answers a body with a trailer `x-resp-sum`.
async fn trailers(body: AxumBody) -> AxumResponse {
    let collected = body.collect().await.unwrap();
    let got = collected
        .trailers()
        .and_then(|t| t.get("x-req-sum"))
        .map_or("none".to_owned(), |v| v.to_str().unwrap().to_owned());
    let (tx, rx) = channel_body();
    tokio::spawn(async move {
        let _ = tx
            .send(Frame::data(Bytes::from_static(b"with trailers")))
            .await;
        let mut t = HeaderMap::new();
        t.insert("x-resp-sum", HeaderValue::from_static("resp-7"));
        let _ = tx.send(Frame::trailers(t)).await;
    });
    let mut res = AxumResponse::new(AxumBody::new(rx));
    res.headers_mut()
        .insert(header::TRAILER, HeaderValue::from_static("x-resp-sum"));
    res.headers_mut()
        .insert("x-got-req-sum", got.parse().unwrap());
    res
}

/// A server-sent event stream: one event, then (once the test releases
/// it) a second, then the end.
async fn events(State(s): State<App>) -> AxumResponse {
    let (tx, rx) = channel_body();
    tokio::spawn(async move {
        let _ = tx
            .send(Frame::data(Bytes::from_static(b"data: one\n\n")))
            .await;
        s.release.notified().await;
        let _ = tx
            .send(Frame::data(Bytes::from_static(b"data: two\n\n")))
            .await;
    });
    let mut res = AxumResponse::new(AxumBody::new(rx));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    res
}

/// One event, then nothing, never ending.
async fn forever() -> AxumResponse {
    let (tx, rx) = channel_body();
    tokio::spawn(async move {
        let _ = tx
            .send(Frame::data(Bytes::from_static(b"data: one\n\n")))
            .await;
        tx.closed().await;
    });
    AxumResponse::new(AxumBody::new(rx))
}

/// A WebSocket-style upgrade: 101, then the bytes echoed.
async fn ws(mut req: Request<AxumBody>) -> AxumResponse {
    echo_upgraded(hyper::upgrade::on(&mut req));
    switching_protocols()
}

/// Echoes the bytes of an upgraded connection until its end.
fn echo_upgraded(on: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        if let Ok(up) = on.await {
            let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        }
    });
}

/// `101 Switching Protocols` to `websocket`.
fn switching_protocols<B: Default>() -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    res.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    res
}

/// Answers once the test releases it.
async fn slow(State(s): State<App>) -> &'static str {
    s.arrived.notify_one();
    s.release.notified().await;
    "done"
}

/// A login: the upstream names the account on its answer.
async fn login() -> AxumResponse {
    ([("x-account-id", "42")], "welcome").into_response()
}

/// An email lookup that answers 200 either way: `known-*` is registered,
/// anything else is not, and it says so in `x-enumguard-outcome` unless
/// asked `plain=1`.
async fn lookup(Query(q): Query<std::collections::HashMap<String, String>>) -> AxumResponse {
    let email = q.get("email").cloned().unwrap_or_default();
    let outcome = if email.starts_with("known-") {
        "hit"
    } else {
        "miss"
    };
    if q.contains_key("plain") {
        return "answered".into_response();
    }
    ([("x-enumguard-outcome", outcome)], "answered").into_response()
}

/// Orders: below 2000 they are c1's, from 2000 c2's; the owner is named
/// in `x-enumguard-owner` unless asked `anon=1`.
async fn order(
    Path(id): Path<u64>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> AxumResponse {
    let owner = if id < 2000 { "c1" } else { "c2" };
    if q.contains_key("anon") {
        return "order".into_response();
    }
    ([("x-enumguard-owner", owner)], "order").into_response()
}

/// A raw TCP upstream: every request head it reads is kept as text (the
/// bytes on the wire), and each is answered with `answer`, on connections
/// kept open for the next.
struct RawUpstream {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    _task: Task,
}

impl RawUpstream {
    async fn start(answer: &'static [u8]) -> Self {
        let (listener, addr) = bind().await;
        let heads = Arc::new(Mutex::new(Vec::new()));
        let kept = heads.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let heads = kept.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(head) = read_head(&mut s, &mut buf).await {
                        heads.lock().unwrap().push(head);
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            heads,
            _task: Task(task),
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    fn last(&self) -> String {
        self.heads()
            .last()
            .cloned()
            .expect("the upstream got a request")
    }
}

/// Reads one message head (to its blank line) from `s`, `buf` keeping what
/// was read past it. `None` at the end of the stream.
async fn read_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    for _ in 0..1000 {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i + 4]).into_owned();
            buf.drain(..i + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    None
}

/// The values of header `name` in a message head, in order.
fn values(head: &str, name: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// The proxy and its clients
// ---------------------------------------------------------------------------

/// A config: `top` (top-level keys, probes), then the `[proxy]` table on an
/// ephemeral port in front of `upstream`, with `proxy` added to it. A stop
/// takes the grace twice (connections taken, then the drain): no grace
/// unless the test gives one.
fn config_text(top: &str, upstream: SocketAddr, proxy: &str) -> String {
    let grace = if proxy.contains("grace_secs") {
        ""
    } else {
        "grace_secs = 0"
    };
    format!(
        "{top}\n[proxy]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\n{grace}\n{proxy}\n"
    )
}

async fn start(top: &str, upstream: SocketAddr, proxy: &str) -> Proxy {
    let config = Config::from_toml_str(&config_text(top, upstream, proxy)).unwrap();
    Proxy::start(config, None).await.unwrap()
}

const BOOK: &str = r#"
[[probes]]
name = "book"
path = "/accounts/{id}/book"
target = { path = "id" }
"#;

/// A connection to `to`, from `from` (a loopback address) if given.
async fn connect(to: SocketAddr, from: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = from {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(to).await
}

/// `req` on a new HTTP/1.1 connection to `to`, from `from`.
async fn send<B>(to: SocketAddr, from: Option<IpAddr>, req: Request<B>) -> Response<Incoming>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = within("connect", connect(to, from)).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    within("an answer's head", tx.send_request(req))
        .await
        .unwrap()
}

/// A request to the proxy (its `Host` set, as a client's is).
fn request(method: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "service.test")
}

/// GET `path` from `from` with these headers: status, headers, body.
async fn get(
    to: SocketAddr,
    from: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut req = request("GET", path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = send(to, from, req.body(Empty::<Bytes>::new()).unwrap()).await;
    let (parts, body) = res.into_parts();
    let bytes = within("a body", body.collect()).await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn ip(a: u8, b: u8, c: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, a, b, c)))
}

/// GETs `path(i)` for i in 0..max from `from` with `headers` until one is
/// refused (429): how many were answered 200 before it, or `None` if none
/// was refused. Any other status fails the test.
async fn until_refused(
    to: SocketAddr,
    from: Option<IpAddr>,
    path: impl Fn(usize) -> String,
    headers: &[(&str, &str)],
    max: usize,
) -> Option<usize> {
    for i in 0..max {
        let (status, _, body) = get(to, from, &path(i), headers).await;
        match status {
            StatusCode::OK => {}
            StatusCode::TOO_MANY_REQUESTS => return Some(i),
            s => panic!("request {i}: {s} {body}"),
        }
    }
    None
}

/// Whether a live verdict names `actor` (on `probe`, if given).
fn has_verdict(proxy: &Proxy, actor: &Actor, probe: Option<&str>) -> bool {
    let key = proxy.handle().key(actor);
    proxy
        .handle()
        .verdicts()
        .iter()
        .any(|v| v.actor == key && probe.is_none_or(|p| v.probe.as_deref() == Some(p)))
}

fn account(id: &str) -> Actor {
    Actor::Account(AccountId::new(id))
}

/// Writes a request on a raw connection and reads the answer's head.
async fn raw_exchange(to: SocketAddr, request: &str) -> (TcpStream, String, Vec<u8>) {
    let mut s = within("connect", connect(to, None)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let head = within("an answer's head", read_head(&mut s, &mut rest))
        .await
        .expect("an answer");
    (s, head, rest)
}

// ---------------------------------------------------------------------------
// Bodies, streaming, trailers
// ---------------------------------------------------------------------------

/// 5 MiB both ways through the proxy, byte for byte, with a Content-Length
/// and chunked (each kept as the sender framed it); the upstream's 5 MiB
/// answers likewise.
#[tokio::test]
async fn five_mib_bodies_pass_byte_identical_both_ways_with_either_framing() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start("", up.addr, "").await;
    let want = pattern(FIVE_MIB);
    for exact in [true, false] {
        let req = request("POST", "/echo")
            .body(PatternBody::new(FIVE_MIB, exact))
            .unwrap();
        let res = send(proxy.addr(), None, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let framing = res.headers()["x-request-framing"].to_str().unwrap();
        let length = res.headers().get(header::CONTENT_LENGTH).cloned();
        if exact {
            assert_eq!(framing, format!("length {FIVE_MIB}"));
            assert_eq!(length.unwrap(), FIVE_MIB.to_string().as_str());
        } else {
            assert_eq!(framing, "chunked");
            assert!(length.is_none(), "a chunked echo has no length");
            assert_eq!(res.headers()[header::TRANSFER_ENCODING], "chunked");
        }
        let got = within("the echo", res.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(got.len(), FIVE_MIB, "exact = {exact}");
        assert!(got == want, "the echo differs (exact = {exact})");
    }
    for framing in ["length", "chunked"] {
        let res = send(
            proxy.addr(),
            None,
            request("GET", &format!("/pattern/{framing}"))
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            res.headers().contains_key(header::CONTENT_LENGTH),
            framing == "length",
            "{framing}: {:?}",
            res.headers()
        );
        let got = within("the download", res.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        assert!(got == want, "the download differs ({framing})");
    }
    proxy.shutdown().await;
}

/// Neither direction is buffered: the client sends a chunk and waits for
/// it to come back from the upstream's echo before sending the next (a
/// proxy that read the whole request, or the whole answer, first would
/// never answer).
#[tokio::test]
async fn a_request_body_reaches_the_upstream_and_back_chunk_by_chunk() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start("", up.addr, "").await;
    let (tx, body) = channel_body();
    let res = send(
        proxy.addr(),
        None,
        request("POST", "/echo").body(body).unwrap(),
    );
    // The head comes back once the upstream has the request's head.
    let first = Bytes::from(vec![b'a'; 1000]);
    tx.send(Frame::data(first.clone())).await.unwrap();
    let mut res = res.await;
    assert_eq!(res.headers()["x-request-framing"], "chunked");
    let body = res.body_mut();
    let mut got = Vec::new();
    for round in 0..3u8 {
        if round > 0 {
            tx.send(Frame::data(Bytes::from(vec![b'a' + round; 1000])))
                .await
                .unwrap();
        }
        // Read until this round's chunk is back (bounded by its size).
        while got.len() < 1000 * (usize::from(round) + 1) {
            let frame = within(&format!("round {round}'s echo"), body.frame())
                .await
                .expect("the echo goes on")
                .unwrap();
            if let Ok(d) = frame.into_data() {
                got.extend_from_slice(&d);
            }
        }
    }
    drop(tx);
    let rest = within("the end", body.collect()).await.unwrap().to_bytes();
    assert!(rest.is_empty());
    let want: Vec<u8> = (0..3u8).flat_map(|r| vec![b'a' + r; 1000]).collect();
    assert_eq!(got, want);
    proxy.shutdown().await;
}

/// Trailers go through both ways: the client's request trailer reaches the
/// upstream, the upstream's answer trailer reaches the client.
#[tokio::test]
async fn trailers_are_kept_both_ways() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start("", up.addr, "").await;
    let (tx, body) = channel_body();
    tokio::spawn(async move {
        let _ = tx.send(Frame::data(Bytes::from_static(b"payload"))).await;
        let mut t = HeaderMap::new();
        t.insert("x-req-sum", HeaderValue::from_static("req-3"));
        let _ = tx.send(Frame::trailers(t)).await;
    });
    let req = request("POST", "/trailers")
        .header(header::TRAILER, "x-req-sum")
        .header(header::TE, "trailers")
        .body(body)
        .unwrap();
    let res = send(proxy.addr(), None, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["x-got-req-sum"],
        "req-3",
        "the request's trailer reached the upstream"
    );
    let collected = within("the body", res.into_body().collect()).await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(&collected.to_bytes()[..], b"with trailers");
    assert_eq!(
        trailers
            .as_ref()
            .and_then(|t| t.get("x-resp-sum"))
            .map(|v| v.to_str().unwrap()),
        Some("resp-7"),
        "the answer's trailer reached the client: {trailers:?}"
    );
    proxy.shutdown().await;
}

/// A server-sent event reaches the client while the upstream's answer is
/// still open: the upstream sends its second event only after the test has
/// seen the first through the proxy.
#[tokio::test]
async fn a_server_sent_event_arrives_before_the_answer_ends() {
    let state = App::default();
    let up = serve_axum(app(state.clone())).await;
    let proxy = start("", up.addr, "").await;
    let res = send(
        proxy.addr(),
        None,
        request("GET", "/events")
            .header(header::ACCEPT, "text/event-stream")
            .body(Empty::<Bytes>::new())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let mut got = Vec::new();
    for _ in 0..100 {
        if got.ends_with(b"\n\n") {
            break;
        }
        let frame = within("the first event (held by the proxy?)", body.frame())
            .await
            .expect("the stream is open")
            .unwrap();
        got.extend_from_slice(&frame.into_data().unwrap_or_default());
    }
    assert_eq!(got, b"data: one\n\n");
    assert!(!body.is_end_stream());
    state.release.notify_one();
    let rest = within("the rest", body.collect()).await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data: two\n\n");
    proxy.shutdown().await;
}

/// An HTTP/2 client (prior knowledge, h2c) is served; the upstream gets
/// HTTP/1.1 with the client's authority as its `Host`.
#[tokio::test]
async fn an_http2_client_is_served() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start("", up.addr, "").await;
    let tcp = within("connect", connect(proxy.addr(), None))
        .await
        .unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = Request::get("http://h2.service.test/host")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = within("an h2 answer", tx.send_request(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"h2.service.test");
    proxy.shutdown().await;
}

/// `upstream_h2c = true`: the proxy speaks HTTP/2 (prior knowledge) to an
/// upstream that serves h2c, to HTTP/1.1 clients; bodies pass both ways.
#[tokio::test]
async fn an_h2c_upstream_is_spoken_to_in_http2() {
    let (listener, addr) = bind().await;
    let router = app(App::default()).route(
        "/version",
        routing::get(|req: Request<AxumBody>| async move { format!("{:?}", req.version()) }),
    );
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .http2_only()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let proxy = start("", addr, "upstream_h2c = true").await;
    let (status, _, body) = get(proxy.addr(), None, "/version", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "HTTP/2.0");
    let sent = pattern(64 * 1024);
    let req = request("POST", "/echo")
        .body(Full::new(Bytes::from(sent.clone())))
        .unwrap();
    let res = send(proxy.addr(), None, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let got = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&got[..], &sent[..]);
    proxy.shutdown().await;
    task.abort();
}

/// `python3 -m http.server` (an HTTP/1.0 server in another language) as the
/// upstream: a 5 MiB file byte for byte with its Content-Length, and its
/// 404. Skipped, saying so, without Python.
#[tokio::test]
async fn a_python_upstream_serves_a_file_through_the_proxy() {
    let dir = std::env::temp_dir().join(format!("enumguard-proxy-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let want = pattern(FIVE_MIB);
    std::fs::write(dir.join("big.bin"), &want).unwrap();
    let child = tokio::process::Command::new("python3")
        .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
        .arg("--directory")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: python3 is not available ({e})");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
    };
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = within("python's first line", lines.next_line())
        .await
        .unwrap()
        .expect("python says where it serves");
    let port: u16 = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    let up = SocketAddr::from(([127, 0, 0, 1], port));
    let proxy = start("", up, "").await;
    let res = send(
        proxy.addr(),
        None,
        request("GET", "/big.bin")
            .body(Empty::<Bytes>::new())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_LENGTH],
        FIVE_MIB.to_string().as_str()
    );
    let got = within("the file", res.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    assert!(got == want, "the file differs");
    let (status, _, _) = get(proxy.addr(), None, "/missing.bin", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    proxy.shutdown().await;
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Headers, upgrades, errors
// ---------------------------------------------------------------------------

/// Hop-by-hop headers (those RFC 9110 section 7.6.1 lists, and those the
/// `Connection` header names) stop at the proxy in both directions;
/// end-to-end headers pass. The one exception is the proxy's own: a client
/// that takes trailers has the proxy ask for them upstream.
#[tokio::test]
async fn hop_by_hop_headers_stop_at_the_proxy_both_ways() {
    let up = RawUpstream::start(
        b"HTTP/1.1 200 OK\r\n\
          Content-Length: 2\r\n\
          Connection: keep-alive, X-Resp-Secret\r\n\
          X-Resp-Secret: 1\r\n\
          Keep-Alive: timeout=5\r\n\
          Proxy-Authenticate: Basic realm=\"up\"\r\n\
          Upgrade: h2c\r\n\
          X-End-To-End: answer\r\n\
          \r\n\
          ok",
    )
    .await;
    let proxy = start("", up.addr, "").await;
    let (_conn, head, _) = raw_exchange(
        proxy.addr(),
        "GET /anything HTTP/1.1\r\n\
         Host: service.test\r\n\
         Connection: keep-alive, X-Secret\r\n\
         X-Secret: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: gzip, deflate\r\n\
         Proxy-Authorization: Basic c2VjcmV0\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-End-To-End: request\r\n\
         \r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = up.last();
    for gone in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            values(&seen, gone).is_empty(),
            "{gone} reached the upstream:\n{seen}"
        );
    }
    assert!(
        values(&seen, "connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-secret")),
        "{seen}"
    );
    assert_eq!(values(&seen, "x-end-to-end"), ["request"], "{seen}");
    assert_eq!(values(&seen, "host"), ["service.test"], "{seen}");
    for gone in [
        "x-resp-secret",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert!(
            values(&head, gone).is_empty(),
            "{gone} reached the client:\n{head}"
        );
    }
    assert!(
        values(&head, "connection")
            .iter()
            .all(|v| !v.to_ascii_lowercase().contains("x-resp-secret")),
        "{head}"
    );
    assert_eq!(values(&head, "x-end-to-end"), ["answer"], "{head}");

    // `TE: trailers` from the client: the proxy, which passes trailers on,
    // asks the upstream for them itself (`TE: trailers` with its `TE`
    // connection option), and for nothing else the client named.
    let (_conn, head, _) = raw_exchange(
        proxy.addr(),
        "GET /anything HTTP/1.1\r\n\
         Host: service.test\r\n\
         TE: gzip, trailers\r\n\
         Connection: TE\r\n\
         \r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let seen = up.last();
    assert_eq!(values(&seen, "te"), ["trailers"], "{seen}");
    assert_eq!(values(&seen, "connection"), ["te"], "{seen}");
    proxy.shutdown().await;
}

/// A hyper upstream that answers `Upgrade: websocket` with 101 and then
/// echoes raw bytes; the request heads it saw.
async fn upgrade_upstream() -> (Server, Arc<Mutex<Vec<HeaderMap>>>) {
    let (listener, addr) = bind().await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = kept.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                seen.lock().unwrap().push(req.headers().clone());
                async move {
                    if req.headers().get(header::UPGRADE).is_none() {
                        let mut res = Response::new(Empty::<Bytes>::new());
                        *res.status_mut() = StatusCode::BAD_REQUEST;
                        return Ok::<_, Infallible>(res);
                    }
                    echo_upgraded(hyper::upgrade::on(&mut req));
                    Ok(switching_protocols())
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (
        Server {
            addr,
            _task: Task(task),
        },
        seen,
    )
}

/// A WebSocket-style upgrade through the proxy: the client (raw HTTP/1.1,
/// `Connection: keep-alive, Upgrade` as browsers send it) gets the 101 and
/// its bytes echoed back by the upstream, several times over the open
/// tunnel, until it closes its side.
#[tokio::test]
async fn a_websocket_upgrade_passes_through_and_echoes() {
    let (up, seen) = upgrade_upstream().await;
    let proxy = start("", up.addr, "").await;
    let (mut s, head, rest) = raw_exchange(
        proxy.addr(),
        "GET /ws HTTP/1.1\r\n\
         Host: service.test\r\n\
         Connection: keep-alive, Upgrade\r\n\
         Upgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         \r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(values(&head, "upgrade"), ["websocket"], "{head}");
    assert!(rest.is_empty());
    {
        let seen = seen.lock().unwrap();
        let h = seen.last().expect("the upstream got the handshake");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert!(
            h[header::CONNECTION]
                .to_str()
                .unwrap()
                .eq_ignore_ascii_case("upgrade"),
            "{h:?}"
        );
        assert!(h.contains_key("sec-websocket-key"), "{h:?}");
    }
    for msg in [
        &b"hello through the proxy"[..],
        b"and again",
        &[0u8, 255, 1, 254],
    ] {
        s.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        within("the echo", s.read_exact(&mut back)).await.unwrap();
        assert_eq!(back, msg);
    }
    // The client closes its side: the tunnel closes end to end.
    s.shutdown().await.unwrap();
    let mut tail = Vec::new();
    within("the close", s.read_to_end(&mut tail)).await.unwrap();
    assert!(tail.is_empty());
    proxy.shutdown().await;
}

/// 502 for an upstream that is not listening; 504 for one that takes the
/// connection and never answers (`upstream_timeout_secs = 1`); each with a
/// short body saying so.
#[tokio::test]
async fn unreachable_is_502_and_silent_is_504() {
    let (gone, gone_addr) = bind().await;
    drop(gone);
    let proxy = start("", gone_addr, "connect_timeout_secs = 1").await;
    let (status, headers, body) = get(proxy.addr(), None, "/hello", &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(!body.is_empty() && body.len() < 200, "{body:?}");
    assert!(body.contains("502"), "{body}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    proxy.shutdown().await;

    // Takes connections (kept open) and never writes.
    let (silent, silent_addr) = bind().await;
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let _held = Task(held);
    let proxy = start("", silent_addr, "upstream_timeout_secs = 1").await;
    let t = std::time::Instant::now();
    let (status, _, body) = get(proxy.addr(), None, "/hello", &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(!body.is_empty() && body.len() < 200, "{body:?}");
    assert!(body.contains("504"), "{body}");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    proxy.shutdown().await;
}

/// `header_read_timeout_secs`: a client that sends half a request head,
/// one that sends nothing at all, and one that stops inside the HTTP/2
/// preface are each cut off after the timeout (not before), while the
/// proxy serves others meanwhile and after.
#[tokio::test]
async fn a_client_slow_with_its_request_head_is_cut_off_after_the_timeout() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start("", up.addr, "header_read_timeout_secs = 1").await;
    let addr = proxy.addr();
    let t = std::time::Instant::now();
    let mut slow = Vec::new();
    for (what, sent) in [
        (
            "half a head",
            "GET /hello HTTP/1.1\r\nHost: service.test\r\nAccept: ",
        ),
        ("nothing", ""),
        ("half the HTTP/2 preface", "PRI * HTTP/2.0\r\n"),
    ] {
        let mut s = within("connect", connect(addr, None)).await.unwrap();
        s.write_all(sent.as_bytes()).await.unwrap();
        slow.push((what, s));
    }
    // Served while the slow ones hang.
    let (status, _, body) = get(addr, None, "/hello", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    for (what, mut s) in slow {
        let mut got = Vec::new();
        // The end of the stream (or a reset): the proxy closed it.
        let _ = within(what, s.read_to_end(&mut got)).await;
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(900),
            "{what}: cut off after {took:?}, before the timeout"
        );
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || got.starts_with("HTTP/1.1 408"),
            "{what}: {got:?}"
        );
    }
    let (status, _, body) = get(addr, None, "/hello", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    proxy.shutdown().await;
}

/// The header read timeout runs again from the end of each answer: a
/// keep-alive connection left idle after one is closed once it has waited
/// that long for its next head (not before), while an answer that streams
/// for longer than it is never cut.
#[tokio::test]
async fn a_keep_alive_connection_waits_for_its_next_head_only_as_long_as_the_timeout() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start("", up.addr, "header_read_timeout_secs = 1").await;
    let addr = proxy.addr();
    let (mut idle, head, mut rest) = raw_exchange(
        addr,
        "GET /hello HTTP/1.1\r\nHost: service.test\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Its body ("hello"), then nothing until the proxy closes.
    while rest.len() < 5 {
        let mut chunk = [0u8; 64];
        let n = within("the body", idle.read(&mut chunk)).await.unwrap();
        assert!(n > 0, "closed before the body");
        rest.extend_from_slice(&chunk[..n]);
    }
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let _ = within("the idle connection's end", idle.read_to_end(&mut got)).await;
    let took = t.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(900),
        "cut off after {took:?}, before the timeout"
    );

    // One event, then an answer that never ends: still open well past the
    // timeout.
    let (mut streaming, head, _) =
        raw_exchange(addr, "GET /forever HTTP/1.1\r\nHost: service.test\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut chunk = [0u8; 256];
    let quiet = tokio::time::timeout(Duration::from_millis(1800), async {
        loop {
            match streaming.read(&mut chunk).await {
                Ok(0) | Err(_) => return "closed",
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a streaming answer was cut: {quiet:?}");
    proxy.shutdown().await;
}

/// Answers the first request of each connection, then reads the next and
/// never answers it (a pooled connection whose upstream went silent).
/// Counts its connections.
async fn silent_after_one() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>, Task) {
    let (listener, addr) = bind().await;
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = connections.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(tokio::spawn(async move {
                let mut buf = Vec::new();
                if read_head(&mut s, &mut buf).await.is_none()
                    || s.write_all(OK_ANSWER).await.is_err()
                {
                    return;
                }
                let _ = read_head(&mut s, &mut buf).await;
                std::future::pending::<()>().await;
            }));
        }
    });
    (addr, connections, Task(task))
}

/// The upstream timeout holds on a pooled connection as on a new one: the
/// second request, on the connection the first left in the pool, gets no
/// answer and is a 504 after the timeout (not before); that connection is
/// not used again.
#[tokio::test]
async fn a_request_on_a_pooled_connection_that_gets_no_answer_is_504() {
    let (up, connections, _task) = silent_after_one().await;
    let proxy = start("", up, "upstream_timeout_secs = 1").await;
    let (status, _, body) = get(proxy.addr(), None, "/hello", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let t = std::time::Instant::now();
    let (status, _, body) = get(proxy.addr(), None, "/hello", &[]).await;
    let took = t.elapsed();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert!(body.contains("504"), "{body}");
    assert!(took >= Duration::from_millis(900), "504 after {took:?}");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    let (status, _, body) = get(proxy.addr(), None, "/hello", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    proxy.shutdown().await;
}

/// An upstream with a keep-alive of `keep_alive`: a request that arrives
/// on a connection idle longer than that is read and dropped unanswered,
/// as when its close crosses the request on the wire (the race a pooled
/// client loses, made certain). Counts its connections.
struct KeepAliveUpstream {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    _task: Task,
}

impl KeepAliveUpstream {
    async fn start(keep_alive: Duration) -> Self {
        let (listener, addr) = bind().await;
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut idle_since = std::time::Instant::now();
                    while read_head(&mut s, &mut buf).await.is_some() {
                        if idle_since.elapsed() > keep_alive {
                            return;
                        }
                        if s.write_all(OK_ANSWER).await.is_err() {
                            return;
                        }
                        idle_since = std::time::Instant::now();
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            _task: Task(task),
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The pooled client's idle timeout below the upstream's keep-alive
/// (`pool_idle_secs = 1` before an upstream's 1.5 s): requests spaced past
/// the keep-alive go out on new connections and never get a 502, while
/// back-to-back ones share a connection. The same requests through a proxy
/// whose pool keeps connections longer than the upstream does (the
/// default 30 s) send a request on a connection the upstream has given up,
/// and get a 502: the setting is what avoids it.
#[tokio::test]
async fn a_pool_idle_timeout_below_the_upstream_keep_alive_never_races_its_close() {
    let keep_alive = Duration::from_millis(1500);
    let below = KeepAliveUpstream::start(keep_alive).await;
    let above = KeepAliveUpstream::start(keep_alive).await;
    let proxy = start("", below.addr, "pool_idle_secs = 1").await;
    let lax = start("", above.addr, "pool_idle_secs = 30").await;
    for p in [&proxy, &lax] {
        for _ in 0..2 {
            let (status, _, body) = get(p.addr(), None, "/hello", &[]).await;
            assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        }
    }
    assert_eq!(
        below.connections(),
        1,
        "back-to-back: one pooled connection"
    );
    assert_eq!(above.connections(), 1);
    let mut lax_502 = 0;
    for round in 0..2 {
        if round > 0 {
            // A connection pooled again (the last one got a 502).
            let (status, _, _) = get(lax.addr(), None, "/hello", &[]).await;
            assert_eq!(status, StatusCode::OK);
        }
        // Past the upstream's keep-alive.
        tokio::time::sleep(keep_alive + Duration::from_millis(200)).await;
        let (status, _, body) = get(proxy.addr(), None, "/hello", &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "ok"),
            "round {round}: an idle pooled connection was reused"
        );
        assert_eq!(
            below.connections(),
            2 + round,
            "round {round}: a new connection"
        );
        let (status, _, _) = get(lax.addr(), None, "/hello", &[]).await;
        if status == StatusCode::BAD_GATEWAY {
            lax_502 += 1;
        }
    }
    assert_eq!(
        lax_502, 2,
        "a pool longer than the keep-alive loses the race"
    );
    proxy.shutdown().await;
    lax.shutdown().await;
}

// ---------------------------------------------------------------------------
// Operations: health, drain, reload, admin
// ---------------------------------------------------------------------------

/// Whether GET /healthz answered, and with what, within a short wait;
/// `Err` if the connection was refused.
async fn health(to: SocketAddr) -> Result<Option<StatusCode>, ()> {
    let tcp = match connect(to, None).await {
        Ok(t) => t,
        Err(_) => return Err(()),
    };
    let ask = async {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = request("GET", "/healthz")
            .body(Empty::<Bytes>::new())
            .unwrap();
        tx.send_request(req).await.ok().map(|r| r.status())
    };
    Ok(tokio::time::timeout(Duration::from_millis(300), ask)
        .await
        .ok()
        .flatten())
}

/// The health path is the proxy's own (never forwarded); on shutdown it
/// answers 503 while a request in flight goes on; after the grace no new
/// connection is taken; the request in flight completes; after the grace
/// again what never ends (an event stream, a WebSocket tunnel) is closed,
/// and the proxy has stopped.
#[tokio::test]
async fn shutdown_drains_a_request_in_flight_and_health_says_503() {
    let state = App::default();
    let up = serve_axum(app(state.clone())).await;
    let proxy = start("", up.addr, "grace_secs = 2").await;
    let addr = proxy.addr();
    // The upstream has no /healthz: a 200 "ok" is the proxy's own.
    let (status, _, body) = get(addr, None, "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));

    // An event stream and a tunnel that would never end.
    let res = send(
        addr,
        None,
        request("GET", "/forever")
            .body(Empty::<Bytes>::new())
            .unwrap(),
    )
    .await;
    let mut stream = res.into_body();
    let first = within("the first event", stream.frame()).await.unwrap();
    assert_eq!(first.unwrap().into_data().unwrap(), "data: one\n\n");
    let (mut tunnel, head, _) = raw_exchange(
        addr,
        "GET /ws HTTP/1.1\r\nHost: service.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    tunnel.write_all(b"ping").await.unwrap();
    let mut pong = [0u8; 4];
    within("the echo", tunnel.read_exact(&mut pong))
        .await
        .unwrap();
    assert_eq!(&pong, b"ping");

    let in_flight = tokio::spawn(async move { get(addr, None, "/slow", &[]).await });
    within("the slow request upstream", state.arrived.notified()).await;
    let stopping = tokio::spawn(proxy.shutdown());

    let mut draining = false;
    for _ in 0..100 {
        if health(addr).await == Ok(Some(StatusCode::SERVICE_UNAVAILABLE)) {
            draining = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(draining, "health never answered 503 while draining");

    // After the grace, connections are refused (not left unanswered).
    let mut refused = false;
    for _ in 0..150 {
        if health(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a new connection was still taken after the grace");
    assert!(
        !stopping.is_finished(),
        "the drain waits for the request in flight"
    );

    state.release.notify_one();
    let (status, _, body) = within("the request in flight", in_flight).await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "done"));
    within("the stop", stopping).await.unwrap();

    // Stopped: the stream and the tunnel are closed, not left running.
    let end = within("the stream's end", stream.frame()).await;
    assert!(
        !matches!(end, Some(Ok(_))),
        "the event stream outlived the proxy"
    );
    let mut rest = Vec::new();
    let closed = within("the tunnel's end", tunnel.read_to_end(&mut rest)).await;
    assert!(
        closed.is_err() || rest.is_empty(),
        "the tunnel outlived the proxy"
    );
}

/// A tracing writer into a shared buffer (what the proxy logs).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(needle)
            .count()
    }
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("enumguard-proxy-{}-{name}", std::process::id()))
}

/// `reload()` reads the file again: a good file's new threshold is the
/// running config (the state kept); a file that does not parse, and one
/// with an invalid value, are refused with a log line and the running
/// config stays.
#[tokio::test]
async fn reload_takes_a_good_file_and_keeps_the_config_on_a_broken_one() {
    // The reload runs on this (current-thread) runtime: its log lines come
    // to this thread's subscriber.
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let up = serve_axum(app(App::default())).await;
    let file = temp_file("reload.toml");
    let with = |foreign_block: u32| {
        config_text(
            &format!("{BOOK}\n[probes.thresholds]\nforeign_block = {foreign_block}\n"),
            up.addr,
            "",
        )
    };
    std::fs::write(&file, with(15)).unwrap();
    let config = Config::from_file(&file).unwrap();
    let proxy = Proxy::start(config, Some(file.clone())).await.unwrap();
    let foreign_block = || {
        proxy.handle().config().probes[0]
            .resolved_thresholds()
            .foreign_block
    };
    assert_eq!(foreign_block(), 15);
    for id in [3, 4] {
        let (status, _, _) = get(proxy.addr(), None, &format!("/accounts/{id}/book"), &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let tracked = proxy.handle().tracked();
    assert!(tracked > 0);

    std::fs::write(&file, with(7)).unwrap();
    proxy.reload();
    let mut reloaded = false;
    for _ in 0..200 {
        if foreign_block() == 7 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(reloaded, "the new threshold never showed");
    assert_eq!(proxy.handle().tracked(), tracked, "the state is kept");
    assert_eq!(logs.count("config reloaded file="), 1);

    for (n, broken) in [
        "[[probes]\nname = ",
        "mode = \"sometimes\"\n[proxy]\nlisten = \"127.0.0.1:0\"\n",
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&file, broken).unwrap();
        proxy.reload();
        let mut refused = false;
        for _ in 0..200 {
            if logs.count("reload refused: the running config stays") == n + 1 {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "broken file {n}: no refusal logged");
        assert_eq!(
            foreign_block(),
            7,
            "broken file {n}: the running config stays"
        );
    }
    let (status, _, _) = get(proxy.addr(), None, "/hello", &[]).await;
    assert_eq!(status, StatusCode::OK, "still serving");
    proxy.shutdown().await;
    let _ = std::fs::remove_file(&file);
}

/// A reload applies the `[proxy]` table while the proxy runs: the health
/// path, the account source, the outcome header's name, the trusted
/// forwarding options (`trusted_proxies`, `client_ip_header`) and the
/// upstream timeout change at once (bans kept), while a new `listen` and
/// `upstream` are logged as taking a restart and the running ones stay. A
/// table that cannot be applied (a key file that is not there) refuses the
/// file. A reload through the handle (as the admin service does) applies
/// its table too.
#[tokio::test]
async fn reload_applies_the_proxy_table_but_its_listeners_and_upstream() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let state = App::default();
    let up = serve_axum(app(state.clone())).await;
    let file = temp_file("live.toml");
    std::fs::write(
        &file,
        config_text(
            BOOK,
            up.addr,
            "account = { request_header = \"x-user-id\" }",
        ),
    )
    .unwrap();
    let proxy = Proxy::start(Config::from_file(&file).unwrap(), Some(file.clone()))
        .await
        .unwrap();
    let addr = proxy.addr();
    let edge: IpAddr = "198.51.100.9".parse().unwrap();
    proxy
        .handle()
        .ban(&account("bob"), Duration::from_secs(600));
    proxy
        .handle()
        .ban(&Actor::ip(edge), Duration::from_secs(600));
    let status = |path: &'static str, headers: &'static [(&'static str, &'static str)]| async move {
        get(addr, None, path, headers).await.0
    };
    let bob_by_user_id: &[(&str, &str)] = &[("x-user-id", "bob")];
    let bob_by_gateway: &[(&str, &str)] = &[("x-gateway-user", "bob")];
    let from_edge: &[(&str, &str)] = &[("cf-connecting-ip", "198.51.100.9")];

    assert_eq!(status("/healthz", &[]).await, StatusCode::OK);
    assert_eq!(status("/alive", &[]).await, StatusCode::NOT_FOUND);
    assert_eq!(
        status("/hello", bob_by_user_id).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status("/hello", bob_by_gateway).await, StatusCode::OK);
    assert_eq!(status("/hello", from_edge).await, StatusCode::OK);
    let (_, headers, _) = get(addr, None, "/lookup?email=a", &[]).await;
    assert!(
        !headers.contains_key("x-enumguard-outcome"),
        "stripped: {headers:?}"
    );

    let changed = config_text(
        &format!("trusted_proxies = [\"127.0.0.0/8\"]\n{BOOK}"),
        "127.0.0.1:1".parse().unwrap(),
        r#"health_path = "/alive"
account = { request_header = "x-gateway-user" }
outcome_header = "x-word"
client_ip_header = "cf-connecting-ip"
upstream_timeout_secs = 1"#,
    )
    .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"");
    std::fs::write(&file, changed).unwrap();
    proxy.reload();
    let mut reloaded = false;
    for _ in 0..200 {
        if logs.count("config reloaded file=") == 1 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        reloaded,
        "no reload logged: {}",
        String::from_utf8_lossy(&logs.0.lock().unwrap())
    );
    assert_eq!(
        logs.count("these [proxy] settings differ from the running ones"),
        1
    );
    assert_eq!(
        logs.count("fields=listen, upstream"),
        1,
        "the restart-only fields are named"
    );
    let running = proxy.handle().config().proxy.unwrap();
    assert_eq!(running.listen, "127.0.0.1:0");
    assert_eq!(running.upstream, format!("http://{}", up.addr));
    assert_eq!(running.health_path, "/alive");

    let (code, _, body) = get(addr, None, "/alive", &[]).await;
    assert_eq!(
        (code, body.as_str()),
        (StatusCode::OK, "ok\n"),
        "the new health path"
    );
    assert_eq!(
        status("/healthz", &[]).await,
        StatusCode::NOT_FOUND,
        "the old one goes to the upstream (still the same)"
    );
    assert_eq!(
        status("/hello", bob_by_gateway).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status("/hello", bob_by_user_id).await, StatusCode::OK);
    assert_eq!(
        status("/hello", from_edge).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the edge's client address, from a peer now trusted"
    );
    let (_, headers, _) = get(addr, None, "/lookup?email=a", &[]).await;
    assert_eq!(
        headers.get("x-enumguard-outcome").map(|v| v.as_bytes()),
        Some(&b"miss"[..]),
        "no longer the outcome header: passed on"
    );
    let t = std::time::Instant::now();
    assert_eq!(status("/slow", &[]).await, StatusCode::GATEWAY_TIMEOUT);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    state.release.notify_waiters();

    // A table that cannot be applied refuses the whole file.
    std::fs::write(
        &file,
        config_text(
            BOOK,
            up.addr,
            "account = { jwt = { public_key_file = \"/nonexistent/enumguard-key.pem\" } }",
        ),
    )
    .unwrap();
    proxy.reload();
    let mut refused = false;
    for _ in 0..200 {
        if logs.count("reload refused: the running config stays") == 1 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "no refusal logged");
    assert_eq!(status("/alive", &[]).await, StatusCode::OK);
    assert_eq!(
        status("/hello", bob_by_gateway).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A reload through the handle: applied from the next request on.
    let mut c = proxy.handle().config();
    c.proxy.as_mut().unwrap().health_path = "/ready".into();
    proxy.handle().reload(c).unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if status("/ready", &[]).await == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ready, "the handle's [proxy] table was never applied");
    assert_eq!(status("/alive", &[]).await, StatusCode::NOT_FOUND);
    proxy.shutdown().await;
    let _ = std::fs::remove_file(&file);
}

/// The `enumguard proxy` binary: it says where it listens, forwards, reloads
/// its file on SIGHUP (a broken file refused), drains and exits 0 on
/// SIGTERM.
#[tokio::test]
async fn the_binary_reloads_on_sighup_and_stops_on_sigterm() {
    let up = serve_axum(app(App::default())).await;
    let file = temp_file("binary.toml");
    let text = |per_minute: u32| {
        config_text(
            &format!("{BOOK}\n[throttle]\nper_minute = {per_minute}\n"),
            up.addr,
            "grace_secs = 1",
        )
    };
    std::fs::write(&file, text(20)).unwrap();
    let bin = env!("CARGO_BIN_EXE_enumguard");
    // Cargo built it with this test's features; another build in the same
    // target directory running at once may have replaced it since.
    let help = std::process::Command::new(bin)
        .args(["proxy", "--help"])
        .output()
        .unwrap();
    if !help.status.success() {
        eprintln!(
            "skipped: {bin} has no `proxy` subcommand (rebuilt without the feature by a concurrent build?)"
        );
        return;
    }
    let mut child = tokio::process::Command::new(bin)
        .arg("proxy")
        .arg("--config")
        .arg(&file)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // Lines until one contains `needle` (bounded by the deadline).
    async fn until(
        lines: &mut tokio::io::Lines<impl tokio::io::AsyncBufRead + Unpin>,
        needle: &str,
    ) -> String {
        within(needle, async {
            loop {
                match lines.next_line().await.unwrap() {
                    Some(l) if l.contains(needle) => return l,
                    Some(_) => {}
                    None => panic!("the output ended before {needle:?}"),
                }
            }
        })
        .await
    }
    let line = until(&mut stderr, "listening on").await;
    let addr: SocketAddr = line.rsplit(' ').next().unwrap().parse().unwrap();
    let (status, _, body) = get(addr, None, "/hello", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));

    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    std::fs::write(&file, text(40)).unwrap();
    signal("-HUP");
    let line = until(&mut stdout, "config reloaded file=").await;
    assert!(line.contains("per_minute"), "{line}");
    std::fs::write(&file, "[[probes]\n").unwrap();
    signal("-HUP");
    until(&mut stdout, "reload refused: the running config stays").await;
    let (status, _, _) = get(addr, None, "/hello", &[]).await;
    assert_eq!(status, StatusCode::OK);

    signal("-TERM");
    until(&mut stderr, "draining").await;
    let exit = within("the exit", child.wait()).await.unwrap();
    assert!(exit.success(), "{exit:?}");
    let _ = std::fs::remove_file(&file);
}

/// The admin listener: a ban with its bearer token refuses that address
/// through the proxy (others pass), none without the token; `/metrics`
/// shows the guard's counters; neither is on the public listener; the
/// admin listener closes with the proxy, and a second proxy in the same
/// process has its `/metrics` too.
#[tokio::test]
async fn a_ban_through_the_admin_listener_refuses_through_the_proxy() {
    const TOKEN: &str = "admin-token-for-tests";
    let up = serve_axum(app(App::default())).await;
    let admin_conf = format!("admin_listen = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"");
    let proxy = start(BOOK, up.addr, &admin_conf).await;
    let admin = proxy.admin_addr().expect("an admin listener");
    let banned = ip(0, 0, 5);
    assert_eq!(
        get(proxy.addr(), banned, "/hello", &[]).await.0,
        StatusCode::OK
    );

    let ban = |token: Option<&'static str>| {
        let mut req =
            request("POST", "/admin/bans").header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.body(Full::new(Bytes::from_static(
            br#"{"actor": {"kind": "ip", "value": "127.0.0.5"}, "secs": 600}"#,
        )))
        .unwrap()
    };
    let res = send(admin, None, ban(None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(proxy.addr(), banned, "/hello", &[]).await.0,
        StatusCode::OK
    );
    let res = send(admin, None, ban(Some(TOKEN))).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    let (status, _, body) = get(proxy.addr(), banned, "/hello", &[]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(
        get(proxy.addr(), ip(0, 0, 6), "/hello", &[]).await.0,
        StatusCode::OK
    );
    assert!(matches!(
        proxy
            .handle()
            .verdict(&Actor::ip("127.0.0.5".parse::<IpAddr>().unwrap())),
        Verdict::Block { .. }
    ));

    let (status, _, metrics) = get(admin, None, "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(metrics.contains("enumguard_requests_total"), "{metrics}");
    // Only `/admin` and what is under it reach the admin service: a path
    // that merely starts with the same letters is the listener's 404.
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let (status, _, body) = get(admin, None, "/admin/verdicts", &auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for path in ["/administrator/verdicts", "/adminverdicts", "/admin-x"] {
        let (status, _, body) = get(admin, None, path, &auth).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body.starts_with("not found: /admin/"), "{path}: {body}");
    }
    // The public listener forwards these paths (the upstream has neither).
    for path in ["/metrics", "/admin/verdicts"] {
        let (status, _, body) = get(proxy.addr(), None, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.contains("enumguard"), "{path}: {body}");
    }
    proxy.shutdown().await;
    let mut closed = false;
    for _ in 0..100 {
        if connect(admin, None).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(closed, "the admin listener outlived its proxy");

    let again = start(BOOK, up.addr, &admin_conf).await;
    assert_eq!(
        get(again.addr(), None, "/hello", &[]).await.0,
        StatusCode::OK
    );
    let admin = again.admin_addr().unwrap();
    let (_, _, metrics) = get(admin, None, "/metrics", &[]).await;
    assert!(
        metrics.contains("enumguard_requests_total"),
        "a second proxy's /metrics: {metrics:?}"
    );
    again.shutdown().await;
}

// ---------------------------------------------------------------------------
// Who the actor is
// ---------------------------------------------------------------------------

/// The account from a gateway's request header: a banned account is
/// refused, another is not; a scraper is blocked as its account.
#[tokio::test]
async fn the_account_from_a_gateway_header() {
    let up = serve_axum(app(App::default())).await;
    let proxy = start(
        BOOK,
        up.addr,
        "account = { request_header = \"x-user-id\" }",
    )
    .await;
    proxy
        .handle()
        .ban(&account("bob"), Duration::from_secs(600));
    let as_user = |who: &'static str| [("x-user-id", who)];
    let (status, _, _) = get(proxy.addr(), ip(1, 0, 1), "/hello", &as_user("bob")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "bob is banned");
    let (status, _, _) = get(proxy.addr(), ip(1, 0, 1), "/hello", &as_user("carol")).await;
    assert_eq!(status, StatusCode::OK);

    let passed = until_refused(
        proxy.addr(),
        ip(1, 0, 2),
        |i| format!("/accounts/{}/book", 1000 + i),
        &as_user("dave"),
        60,
    )
    .await
    .expect("the scraper is stopped");
    assert!(passed <= 15, "{passed} foreign books read");
    assert!(has_verdict(&proxy, &account("dave"), Some("book")));
    proxy.shutdown().await;
}

/// A tiny base64url (no padding), for a hand-made `alg: none` token.
fn b64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 token for `sub`, expiring `exp` seconds from now, signed with
/// `secret`.
fn hs256(secret: &[u8], sub: &str, exp: i64) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({ "sub": sub, "exp": now_secs() + exp }),
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// The account from a verified JWT: a valid token is the account (banned:
/// refused; scraping: blocked as it); a bad signature, an expired token and
/// an `alg: none` token, each naming the banned account, are no account at
/// all (served as anonymous requests are, and never counted as the
/// account they name).
#[tokio::test]
async fn the_account_from_a_verified_jwt_and_never_from_a_bad_one() {
    const SECRET: &[u8] = b"proxy-test-secret";
    let up = serve_axum(app(App::default())).await;
    let proxy = start(
        BOOK,
        up.addr,
        "account = { jwt = { hs256_secret = \"proxy-test-secret\", claim = \"sub\" } }",
    )
    .await;
    proxy
        .handle()
        .ban(&account("mallory"), Duration::from_secs(600));
    let bearer = |t: &str| format!("Bearer {t}");
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(format!(r#"{{"sub":"mallory","exp":{}}}"#, now_secs() + 600).as_bytes())
    );
    let cases = [
        (
            "valid",
            hs256(SECRET, "mallory", 600),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        (
            "bad signature",
            hs256(b"not-the-secret", "mallory", 600),
            StatusCode::OK,
        ),
        ("expired", hs256(SECRET, "mallory", -3600), StatusCode::OK),
        ("alg none", none, StatusCode::OK),
        ("not a token", "mallory".to_owned(), StatusCode::OK),
    ];
    for (what, token, want) in &cases {
        let (status, _, body) = get(
            proxy.addr(),
            ip(2, 0, 1),
            "/hello",
            &[("authorization", &bearer(token))],
        )
        .await;
        assert_eq!(status, *want, "{what}: {body}");
    }

    // Scrapers: with a valid token, blocked as the token's account; with a
    // forged one naming an account, stopped as what they are (their
    // address), the named account never counted.
    let valid = hs256(SECRET, "alice", 600);
    let passed = until_refused(
        proxy.addr(),
        ip(2, 1, 1),
        |i| format!("/accounts/{}/book", 1000 + i),
        &[("authorization", &bearer(&valid))],
        60,
    )
    .await
    .expect("the scraper with a valid token is stopped");
    assert!(passed <= 15, "{passed}");
    assert!(has_verdict(&proxy, &account("alice"), Some("book")));
    let forged = [
        ("bad signature", hs256(b"not-the-secret", "eve-1", 600)),
        ("expired", hs256(SECRET, "eve-2", -3600)),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none","typ":"JWT"}"#),
                b64url(format!(r#"{{"sub":"eve-3","exp":{}}}"#, now_secs() + 600).as_bytes())
            ),
        ),
    ];
    for (n, (what, token)) in forged.iter().enumerate() {
        let from = ip(2, 2 + n as u8, 1);
        let passed = until_refused(
            proxy.addr(),
            from,
            |i| format!("/accounts/{}/book", 5000 + 100 * n + i),
            &[("authorization", &bearer(token))],
            80,
        )
        .await;
        assert!(passed.is_some(), "{what}: the anonymous scraper is stopped");
        let named = format!("eve-{}", n + 1);
        assert_eq!(
            proxy.handle().verdict(&account(&named)),
            Verdict::Allow,
            "{what}: the named account holds nothing"
        );
        assert!(
            !proxy
                .handle()
                .verdicts()
                .iter()
                .any(|v| v.actor == proxy.handle().key(&account(&named))),
            "{what}"
        );
        assert!(
            has_verdict(&proxy, &Actor::ip(from.unwrap()), Some("book")),
            "{what}: stopped as its address"
        );
    }
    proxy.shutdown().await;
}

/// A test key of `tests/keys/` (test-only keys, committed: see its
/// README), as a path for the config and as its bytes.
fn test_key(name: &str) -> (String, Vec<u8>) {
    let path = format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// A token for `sub` of `alg` (RS256 or ES256), expiring `exp` seconds
/// from now, with `kid` if given, signed with the PEM private key `key`.
fn signed(
    alg: jsonwebtoken::Algorithm,
    key: &str,
    kid: Option<&str>,
    sub: &str,
    exp: i64,
) -> String {
    let pem = test_key(key).1;
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
    }
    .unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &serde_json::json!({ "sub": sub, "exp": now_secs() + exp }),
        &key,
    )
    .unwrap()
}

/// RS256 and ES256 with a PEM public key, and both from a JWKS file (by
/// `kid`): a valid token names the account (banned: refused), while a
/// token signed by another key, an expired one, `alg: none`, an HS256
/// token whose secret is the public key itself (the algorithm confusion),
/// and from the JWKS a token with a `kid` of another key, each naming the
/// banned account, are no account (served).
#[tokio::test]
async fn the_account_from_an_rs256_es256_or_jwks_token_and_never_from_a_bad_one() {
    use jsonwebtoken::Algorithm::{ES256, RS256};
    let up = serve_axum(app(App::default())).await;
    let none = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(format!(r#"{{"sub":"mallory","exp":{}}}"#, now_secs() + 600).as_bytes())
    );
    let (rsa_pub, rsa_pub_pem) = test_key("rsa-a.pub.pem");
    let (ec_pub, ec_pub_pem) = test_key("ec-a.pub.pem");
    let (jwks, _) = test_key("jwks.json");
    // (source, [(case, token, account named?)])
    let sources = [
        (
            format!("public_key_file = \"{rsa_pub}\""),
            vec![
                (
                    "RS256",
                    signed(RS256, "rsa-a.pem", None, "mallory", 600),
                    true,
                ),
                (
                    "another key",
                    signed(RS256, "rsa-b.pem", None, "mallory", 600),
                    false,
                ),
                (
                    "expired",
                    signed(RS256, "rsa-a.pem", None, "mallory", -3600),
                    false,
                ),
                (
                    "HS256 with the public key",
                    hs256(&rsa_pub_pem, "mallory", 600),
                    false,
                ),
                (
                    "ES256 to an RSA key",
                    signed(ES256, "ec-a.pem", None, "mallory", 600),
                    false,
                ),
            ],
        ),
        (
            format!("public_key_file = \"{ec_pub}\""),
            vec![
                (
                    "ES256",
                    signed(ES256, "ec-a.pem", None, "mallory", 600),
                    true,
                ),
                (
                    "another key",
                    signed(ES256, "ec-b.pem", None, "mallory", 600),
                    false,
                ),
                (
                    "expired",
                    signed(ES256, "ec-a.pem", None, "mallory", -3600),
                    false,
                ),
                (
                    "HS256 with the public key",
                    hs256(&ec_pub_pem, "mallory", 600),
                    false,
                ),
            ],
        ),
        (
            format!("jwks_file = \"{jwks}\""),
            vec![
                (
                    "RS256 by kid",
                    signed(RS256, "rsa-a.pem", Some("rsa-a"), "mallory", 600),
                    true,
                ),
                (
                    "ES256 by kid",
                    signed(ES256, "ec-a.pem", Some("ec-a"), "mallory", 600),
                    true,
                ),
                (
                    "no kid",
                    signed(ES256, "ec-a.pem", None, "mallory", 600),
                    true,
                ),
                (
                    "another RSA key",
                    signed(RS256, "rsa-b.pem", Some("rsa-a"), "mallory", 600),
                    false,
                ),
                (
                    "another EC key",
                    signed(ES256, "ec-b.pem", Some("ec-a"), "mallory", 600),
                    false,
                ),
                (
                    "another key's kid",
                    signed(ES256, "ec-a.pem", Some("rsa-a"), "mallory", 600),
                    false,
                ),
                (
                    "unknown kid",
                    signed(RS256, "rsa-a.pem", Some("rsa-z"), "mallory", 600),
                    false,
                ),
                (
                    "expired",
                    signed(RS256, "rsa-a.pem", Some("rsa-a"), "mallory", -3600),
                    false,
                ),
                (
                    "HS256 with a public key",
                    hs256(&rsa_pub_pem, "mallory", 600),
                    false,
                ),
            ],
        ),
    ];
    for (n, (source, cases)) in sources.iter().enumerate() {
        let proxy = start(
            BOOK,
            up.addr,
            &format!("account = {{ jwt = {{ {source} }} }}"),
        )
        .await;
        proxy
            .handle()
            .ban(&account("mallory"), Duration::from_secs(600));
        let alg_none = ("alg none", none.clone(), false);
        for (what, token, named) in cases.iter().chain([&alg_none]) {
            let (status, _, body) = get(
                proxy.addr(),
                ip(2, 10 + n as u8, 1),
                "/hello",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
            let want = if *named {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::OK
            };
            assert_eq!(status, want, "{source}, {what}: {body}");
        }
        proxy.shutdown().await;
    }
}

/// The account the upstream names in a response header: bound to the
/// session (here the `authorization` header), stripped before the client
/// sees it; the session's later requests are that account's, and a scraper
/// walking books with it is stopped with a verdict on account 42.
#[tokio::test]
async fn the_account_from_a_response_header_binds_the_session() {
    let up = serve_axum(app(App::default())).await;
    let top = format!("session = {{ header = \"authorization\" }}\n{BOOK}");
    let proxy = start(
        &top,
        up.addr,
        "account = { response_header = \"x-account-id\" }",
    )
    .await;
    let session = [("authorization", "Bearer session-of-42")];
    let from = ip(3, 0, 1);
    let (status, headers, body) = get(proxy.addr(), from, "/login", &session).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "welcome"));
    assert!(
        !headers.contains_key("x-account-id"),
        "the client saw the account header: {headers:?}"
    );
    // Its own book is its own.
    for _ in 0..3 {
        let (status, _, _) = get(proxy.addr(), from, "/accounts/42/book", &session).await;
        assert_eq!(status, StatusCode::OK);
    }
    let passed = until_refused(
        proxy.addr(),
        from,
        |i| format!("/accounts/{}/book", 1000 + i),
        &session,
        60,
    )
    .await
    .expect("the scraper is stopped");
    assert!(passed <= 15, "{passed}");
    assert!(
        has_verdict(&proxy, &account("42"), Some("book")),
        "the verdict names account 42: {:?}",
        proxy.handle().verdicts()
    );
    // Another session, never bound, is not account 42.
    let (status, _, _) = get(
        proxy.addr(),
        ip(3, 0, 2),
        "/hello",
        &[("authorization", "Bearer someone-else")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    proxy.shutdown().await;
}

/// Sessions from a cookie and from a header, as the library reads them
/// (the config's `session`): a session that scrapes books through the
/// proxy is blocked and refused everywhere, while another session from
/// the same address is served.
#[tokio::test]
async fn a_blocked_session_is_refused_and_another_at_its_address_is_not() {
    let up = serve_axum(app(App::default())).await;
    let sources = [
        (
            "session = { cookie = \"sid\" }",
            "cookie",
            "theme=dark; sid=",
        ),
        ("session = { header = \"x-session\" }", "x-session", ""),
    ];
    for (n, (source, name, prefix)) in sources.into_iter().enumerate() {
        let proxy = start(&format!("{source}\n{BOOK}"), up.addr, "").await;
        let from = ip(5, n as u8, 1);
        let scraper = format!("{prefix}tok-scraper-{n}");
        let other = format!("{prefix}tok-reader-{n}");
        let passed = until_refused(
            proxy.addr(),
            from,
            |i| format!("/accounts/{}/book", 1000 + i),
            &[(name, &scraper)],
            60,
        )
        .await
        .unwrap_or_else(|| panic!("{source}: the scraping session is stopped"));
        assert!(passed <= 15, "{source}: {passed} foreign books read");
        assert!(
            has_verdict(
                &proxy,
                &Actor::session(format!("tok-scraper-{n}")),
                Some("book")
            ),
            "{source}: the verdict names the session: {:?}",
            proxy.handle().verdicts()
        );
        let (status, _, _) = get(proxy.addr(), from, "/hello", &[(name, &scraper)]).await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "{source}: the blocked session is refused on any path"
        );
        let (status, _, body) = get(proxy.addr(), from, "/hello", &[(name, &other)]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "hello"),
            "{source}: another session at the same address is served"
        );
        proxy.shutdown().await;
    }
}

/// The upstream's word on its answers: `x-enumguard-outcome: miss` on 200
/// answers stops a guesser (the same lookups without the header never
/// would: all 200s are finds), and `x-enumguard-owner` keeps a customer
/// reading its own orders from ever being refused (the same reads without
/// it are refused), while a scraper of those orders is stopped. Both
/// headers are stripped.
#[tokio::test]
async fn outcome_and_owner_headers_are_used_and_stripped() {
    let up = serve_axum(app(App::default())).await;
    let top = r#"
[[probes]]
name = "lookup"
path = "/lookup"
target = { query = "email" }
style = "identities"
needs_login = true

[[probes]]
name = "order"
path = "/orders/{id}"
target = { path = "id" }
"#;
    let proxy = start(top, up.addr, "account = { request_header = \"x-user-id\" }").await;
    let addr = proxy.addr();

    // Without the outcome header every 200 is a find: never stopped. (Its
    // emails are not the guesser's below: an email someone found is a
    // shared target, and another's lookup of it is no miss.)
    let plain = until_refused(
        addr,
        ip(4, 0, 1),
        |i| format!("/lookup?email=plain-{i}%40example.com&plain=1"),
        &[("x-user-id", "guesser-plain")],
        40,
    )
    .await;
    assert_eq!(plain, None, "200s without the header are finds");
    let (_, headers, _) = get(
        addr,
        ip(4, 0, 2),
        "/lookup?email=known-1%40example.com",
        &[("x-user-id", "checker")],
    )
    .await;
    assert!(!headers.contains_key("x-enumguard-outcome"), "{headers:?}");
    let passed = until_refused(
        addr,
        ip(4, 0, 3),
        |i| format!("/lookup?email=guess-{i}%40example.com"),
        &[("x-user-id", "guesser")],
        100,
    )
    .await
    .expect("the guesser is stopped though every answer is 200");
    assert!(passed <= 40, "{passed}");
    assert!(has_verdict(&proxy, &account("guesser"), Some("lookup")));

    // c1 reads its 60 orders: each is its own.
    for i in 0..60 {
        let (status, headers, body) = get(
            addr,
            ip(4, 1, 1),
            &format!("/orders/{}", 1000 + i),
            &[("x-user-id", "c1")],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "order {i} of c1's own: {body}");
        assert!(!headers.contains_key("x-enumguard-owner"), "{headers:?}");
    }
    // A scraper of c1's orders is stopped.
    let passed = until_refused(
        addr,
        ip(4, 2, 1),
        |i| format!("/orders/{}", 1000 + i),
        &[("x-user-id", "scraper")],
        60,
    )
    .await
    .expect("the order scraper is stopped");
    assert!(passed <= 15, "{passed}");
    assert!(has_verdict(&proxy, &account("scraper"), Some("order")));
    // Without the owner header, c2's own orders look foreign: refused.
    let passed = until_refused(
        addr,
        ip(4, 3, 1),
        |i| format!("/orders/{}?anon=1", 2000 + i),
        &[("x-user-id", "c2")],
        60,
    )
    .await;
    assert!(
        passed.is_some(),
        "without the owner, own orders are foreign"
    );
    proxy.shutdown().await;
}

// ---------------------------------------------------------------------------
// Forwarding headers and the client address
// ---------------------------------------------------------------------------

const OK_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/// From a peer that is not a trusted proxy, a client's own forwarding
/// headers are replaced by its address (and believed by nobody).
#[tokio::test]
async fn an_untrusted_peer_forwarding_headers_are_replaced() {
    let up = RawUpstream::start(OK_ANSWER).await;
    let proxy = start("", up.addr, "").await;
    proxy.handle().ban(
        &Actor::ip("203.0.113.7".parse::<IpAddr>().unwrap()),
        Duration::from_secs(600),
    );
    let (status, _, _) = get(
        proxy.addr(),
        None,
        "/hello",
        &[
            ("x-forwarded-for", "203.0.113.7"),
            ("forwarded", "for=203.0.113.7;proto=https"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a client's own header is not believed"
    );
    let seen = up.last();
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.1"], "{seen}");
    assert_eq!(
        values(&seen, "forwarded"),
        ["for=127.0.0.1;proto=http"],
        "{seen}"
    );
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"], "{seen}");
    proxy.shutdown().await;
}

/// From a trusted proxy, the upstream sees the incoming chain with the peer
/// appended, and the guard takes the client from it (a banned client is
/// refused, another is not); the same headers from an untrusted peer are
/// replaced and not believed.
#[tokio::test]
async fn a_trusted_peer_forwarding_chain_is_appended_and_believed() {
    let up = RawUpstream::start(OK_ANSWER).await;
    let proxy = start("trusted_proxies = [\"127.0.0.1/32\"]", up.addr, "").await;
    proxy.handle().ban(
        &Actor::ip("203.0.113.7".parse::<IpAddr>().unwrap()),
        Duration::from_secs(600),
    );
    let chain =
        |client: &'static str| [("x-forwarded-for", client), ("x-forwarded-proto", "https")];
    let (status, _, _) = get(proxy.addr(), ip(0, 0, 1), "/hello", &chain("203.0.113.8")).await;
    assert_eq!(status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        values(&seen, "x-forwarded-for"),
        ["203.0.113.8, 127.0.0.1"],
        "{seen}"
    );
    assert_eq!(values(&seen, "x-forwarded-proto"), ["https"], "{seen}");
    assert_eq!(
        values(&seen, "forwarded"),
        ["for=127.0.0.1;proto=http"],
        "{seen}"
    );

    let before = up.heads().len();
    let (status, _, _) = get(proxy.addr(), ip(0, 0, 1), "/hello", &chain("203.0.113.7")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the banned client behind the proxy"
    );
    assert_eq!(
        up.heads().len(),
        before,
        "a refusal never reaches the upstream"
    );

    // 127.0.0.2 is not trusted: its header is neither passed nor believed.
    let (status, _, _) = get(proxy.addr(), ip(0, 0, 2), "/hello", &chain("203.0.113.7")).await;
    assert_eq!(status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(values(&seen, "x-forwarded-for"), ["127.0.0.2"], "{seen}");
    assert_eq!(values(&seen, "x-forwarded-proto"), ["http"], "{seen}");
    proxy.shutdown().await;
}

/// `client_ip_header = "cf-connecting-ip"`: from a trusted peer the guard
/// takes the client from it (a ban on that address refuses); from an
/// untrusted peer the header is ignored. The upstream's chain still ends
/// with the peer the proxy saw.
#[tokio::test]
async fn a_client_ip_header_is_believed_only_from_a_trusted_peer() {
    let up = RawUpstream::start(OK_ANSWER).await;
    let proxy = start(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        up.addr,
        "client_ip_header = \"cf-connecting-ip\"",
    )
    .await;
    let banned: IpAddr = "198.51.100.9".parse().unwrap();
    proxy
        .handle()
        .ban(&Actor::ip(banned), Duration::from_secs(600));
    let cf = |client: &'static str| [("cf-connecting-ip", client), ("x-forwarded-for", client)];
    let (status, _, _) = get(proxy.addr(), ip(0, 0, 1), "/hello", &cf("198.51.100.9")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the edge's client is banned"
    );
    let (status, _, _) = get(proxy.addr(), ip(0, 0, 1), "/hello", &cf("198.51.100.10")).await;
    assert_eq!(status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        values(&seen, "x-forwarded-for"),
        ["198.51.100.10, 127.0.0.1"],
        "the chain goes on with the edge the proxy saw:\n{seen}"
    );
    // From an untrusted peer the header means nothing.
    let (status, _, _) = get(proxy.addr(), ip(0, 0, 2), "/hello", &cf("198.51.100.9")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(values(&up.last(), "x-forwarded-for"), ["127.0.0.2"]);
    proxy.shutdown().await;
}
