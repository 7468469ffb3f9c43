//! The guard in a real axum server on 127.0.0.1 (an ephemeral port), served
//! with connect info, driven by a raw hyper HTTP/1 client over a
//! `TcpStream`: the peer address and proxy headers as a server sees them,
//! bans end to end, and 5 MiB streamed bodies both ways, through a plain
//! route and through a JSON-body probe. Also: bad configurations give
//! errors that name the field.
//!
//! Time is a `ManualClock`; nothing sleeps.
// Served by axum, whose `ConnectInfo` the guard reads with the `axum` feature.
#![cfg(feature = "axum")]

mod common;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body as AxumBody;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use enumguard::{
    Actor, Config, ConfigErrorKind, GuardHandle, GuardLayer, ManualClock, ProbeConfig, TargetConfig,
};
use http::{Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const FIVE_MIB: usize = 5 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

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

/// A response body that streams `total` bytes of the pattern in `chunk`
/// sized frames, computed as it goes (never held whole).
struct PatternBody {
    sent: usize,
    total: usize,
    chunk: usize,
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
        let end = (this.sent + this.chunk).min(this.total);
        let data: Bytes = (this.sent..end).map(pattern_byte).collect();
        this.sent = end;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.total
    }

    fn size_hint(&self) -> SizeHint {
        // Unknown length on purpose: the response goes out chunked.
        SizeHint::default()
    }
}

/// A request body fed through a channel, chunk by chunk, as a client
/// streams an upload.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// A body of `data` streamed in `CHUNK` sized pieces by a task, through a
/// small channel (so the sender waits for the server to read).
fn streamed(data: Arc<Vec<u8>>) -> ChannelBody {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        for c in data.chunks(CHUNK) {
            if tx.send(Bytes::copy_from_slice(c)).await.is_err() {
                return;
            }
        }
    });
    ChannelBody(rx)
}

// ---------------------------------------------------------------------------
// The app
// ---------------------------------------------------------------------------

/// What the handlers saw.
#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    /// The last request body, and how many frames it came in.
    body: Arc<Mutex<Option<(Bytes, usize)>>>,
}

impl Seen {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn take_body(&self) -> (Bytes, usize) {
        self.body
            .lock()
            .unwrap()
            .take()
            .expect("a handler read a body")
    }
}

/// Reads a request body frame by frame (bounded), keeping it whole.
async fn read_all(seen: &Seen, mut body: AxumBody) -> Result<(), StatusCode> {
    let mut buf = BytesMut::new();
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| StatusCode::BAD_REQUEST)?;
        frames += 1;
        if let Ok(d) = frame.into_data() {
            buf.extend_from_slice(&d);
        }
        if buf.len() > 2 * FIVE_MIB {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
    }
    *seen.body.lock().unwrap() = Some((buf.freeze(), frames));
    Ok(())
}

/// A streamed response of `x-reply-bytes` pattern bytes (0 if absent).
fn reply(headers: &HeaderMap, status: StatusCode) -> Response {
    let total = headers
        .get("x-reply-bytes")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    let body = PatternBody {
        sent: 0,
        total,
        chunk: CHUNK,
    };
    (status, AxumBody::new(body)).into_response()
}

async fn hello(State(seen): State<Seen>) -> &'static str {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    "hello"
}

async fn upload(State(seen): State<Seen>, headers: HeaderMap, body: AxumBody) -> Response {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    match read_all(&seen, body).await {
        Ok(()) => reply(&headers, StatusCode::OK),
        Err(s) => s.into_response(),
    }
}

async fn download(State(seen): State<Seen>, headers: HeaderMap) -> Response {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    reply(&headers, StatusCode::OK)
}

/// `POST /api/password-reset`, the JSON-body probe: reads the body, then
/// answers 202 with the streamed reply.
async fn reset(State(seen): State<Seen>, headers: HeaderMap, body: AxumBody) -> Response {
    seen.calls.fetch_add(1, Ordering::SeqCst);
    match read_all(&seen, body).await {
        Ok(()) => reply(&headers, StatusCode::ACCEPTED),
        Err(s) => s.into_response(),
    }
}

/// The usual guard for these tests, with a manual clock. The JSON probe
/// passes bodies over its limit (`oversized = "pass"`), so that large
/// uploads through it are checked byte for byte; identities probes refuse
/// them by default.
fn guard(clock: &ManualClock) -> enumguard::GuardBuilder {
    GuardLayer::builder()
        .probe(
            ProbeConfig::identities(
                "reset",
                "POST",
                "/api/password-reset",
                TargetConfig::json("email"),
            )
            .body_limit(16 * 1024, enumguard::Oversized::Pass),
        )
        .account(common::account_from_header)
        .clock(clock.clone())
}

/// Starts the app behind `layer` on 127.0.0.1, an ephemeral port, with
/// connect info. The server task ends with the test's runtime.
async fn start(layer: GuardLayer) -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/hello", get(hello))
        .route("/upload", post(upload))
        .route("/download", get(download))
        .route("/api/password-reset", post(reset))
        .with_state(seen.clone())
        .layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, seen)
}

// ---------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------

/// Sends `req` on a new connection; returns the status, headers and whole
/// body.
async fn send<B>(addr: SocketAddr, mut req: Request<B>) -> (StatusCode, HeaderMap, Bytes)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    req.headers_mut()
        .insert("host", addr.to_string().parse().unwrap());
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let res = sender.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, bytes)
}

/// `GET /hello` with these headers.
async fn hello_with(addr: SocketAddr, headers: &[(&str, &str)]) -> StatusCode {
    let mut b = Request::get("/hello");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(addr, b.body(Empty::<Bytes>::new()).unwrap()).await.0
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------
// Peer address and proxy headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_does_not_change_the_actor() {
    let clock = ManualClock::new();
    let layer = guard(&clock).build().unwrap();
    let handle = layer.handle();
    let (addr, seen) = start(layer).await;

    // The loopback peer is banned: a spoofed header does not get it out.
    handle.ban(&Actor::ip(ip("127.0.0.1")), Duration::from_secs(600));
    for headers in [
        &[("x-forwarded-for", "1.2.3.4")][..],
        &[("forwarded", "for=1.2.3.4")],
        &[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "1.2.3.4")],
        &[("x-forwarded-for", "1.2.3.4, 5.6.7.8, 9.9.9.9")],
    ] {
        assert_eq!(
            hello_with(addr, headers).await,
            StatusCode::TOO_MANY_REQUESTS,
            "{headers:?}"
        );
    }
    assert_eq!(seen.calls(), 0);

    // Another address is banned: claiming it does not get the peer refused.
    assert!(handle.unban(&Actor::ip(ip("127.0.0.1"))));
    handle.ban(&Actor::ip(ip("9.9.9.9")), Duration::from_secs(600));
    for headers in [
        &[("x-forwarded-for", "9.9.9.9")][..],
        &[("forwarded", "for=9.9.9.9")],
        &[("x-forwarded-for", "1.1.1.1, 9.9.9.9")],
    ] {
        assert_eq!(
            hello_with(addr, headers).await,
            StatusCode::OK,
            "{headers:?}"
        );
    }
    assert_eq!(seen.calls(), 3);
}

#[tokio::test]
async fn a_trusted_proxy_header_changes_the_actor() {
    let clock = ManualClock::new();
    let layer = guard(&clock)
        .trusted_proxies(["127.0.0.0/8"])
        .build()
        .unwrap();
    let handle = layer.handle();
    let (addr, seen) = start(layer).await;

    handle.ban(&Actor::ip(ip("9.9.9.9")), Duration::from_secs(600));
    // The proxy (the loopback peer) says the client is 9.9.9.9.
    assert_eq!(
        hello_with(addr, &[("x-forwarded-for", "9.9.9.9")]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Only the configured header (X-Forwarded-For by default) is read: a
    // client-written `Forwarded`, passed through by the proxy, is not.
    assert_eq!(
        hello_with(addr, &[("forwarded", "for=9.9.9.9;proto=https")]).await,
        StatusCode::OK
    );
    // Walking from the right: a client-written entry on the left is not it.
    assert_eq!(
        hello_with(addr, &[("x-forwarded-for", "9.9.9.9, 1.2.3.4")]).await,
        StatusCode::OK
    );
    // Without the header, the actor is the proxy itself.
    assert_eq!(hello_with(addr, &[]).await, StatusCode::OK);
    assert_eq!(seen.calls(), 3);

    // Banning the proxy's address does not refuse the clients it forwards.
    handle.ban(&Actor::ip(ip("127.0.0.1")), Duration::from_secs(600));
    assert_eq!(
        hello_with(addr, &[("x-forwarded-for", "1.2.3.4")]).await,
        StatusCode::OK
    );
    assert_eq!(hello_with(addr, &[]).await, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(seen.calls(), 4);
}

// ---------------------------------------------------------------------------
// Bans end to end
// ---------------------------------------------------------------------------

#[tokio::test]
async fn banned_ip_and_account_are_refused_and_the_handler_never_runs() {
    let clock = ManualClock::new();
    let layer = guard(&clock).build().unwrap();
    let handle = layer.handle();
    let (addr, seen) = start(layer).await;

    assert_eq!(hello_with(addr, &[]).await, StatusCode::OK);
    assert_eq!(seen.calls(), 1);

    // An account ban.
    handle.ban(&Actor::account(42u64), Duration::from_secs(120));
    let (status, headers, body) = send(
        addr,
        Request::get("/hello")
            .header("x-account", "42")
            .body(Empty::<Bytes>::new())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "120");
    assert!(!body.is_empty());
    assert_eq!(
        hello_with(addr, &[("x-account", "43")]).await,
        StatusCode::OK
    );
    assert_eq!(seen.calls(), 2);

    // An ip ban refuses every route, the probe and the streaming ones too,
    // and never reads the upload.
    handle.ban(&Actor::ip(ip("127.0.0.1")), Duration::from_secs(60));
    assert_eq!(hello_with(addr, &[]).await, StatusCode::TOO_MANY_REQUESTS);
    let (status, headers, _) = send(
        addr,
        Request::post("/api/password-reset")
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from_static(
                br#"{"email":"a@b.test"}"#,
            )))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "60");
    // (A small streamed upload: a refusal does not wait for the body, and
    // a large one could still be on its way when the server closes.)
    let (status, _, _) = send(
        addr,
        Request::post("/upload")
            .body(streamed(Arc::new(pattern(CHUNK))))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(seen.calls(), 2, "a handler ran for a banned actor");

    // The ban ends with time; the account ban outlives it.
    clock.advance(Duration::from_secs(61));
    assert_eq!(hello_with(addr, &[]).await, StatusCode::OK);
    assert_eq!(
        hello_with(addr, &[("x-account", "42")]).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Unbanned, it passes.
    assert!(handle.unban(&Actor::account(42u64)));
    assert_eq!(
        hello_with(addr, &[("x-account", "42")]).await,
        StatusCode::OK
    );
    assert_eq!(seen.calls(), 4);
}

// ---------------------------------------------------------------------------
// Streaming bodies
// ---------------------------------------------------------------------------

/// Uploads 5 MiB in 64 KiB chunks to `path` and checks what the handler
/// read.
async fn upload_is_identical(addr: SocketAddr, seen: &Seen, path: &str, expect: StatusCode) {
    let data = Arc::new(pattern(FIVE_MIB));
    let (status, _, _) = send(
        addr,
        Request::post(path)
            .header("content-type", "application/json")
            .body(streamed(data.clone()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, expect, "{path}");
    let (got, frames) = seen.take_body();
    assert_eq!(got.len(), FIVE_MIB, "{path}");
    assert!(got[..] == data[..], "{path}: the handler read other bytes");
    assert!(frames > 1, "{path}: the body came in {frames} frame(s)");
}

/// Asks `path` for a 5 MiB streamed reply and checks it.
async fn download_is_identical<B>(addr: SocketAddr, req: Request<B>, expect: StatusCode)
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    let (status, headers, body) = send(addr, req).await;
    assert_eq!(status, expect, "{path}");
    assert!(
        headers.get("content-length").is_none(),
        "{path}: the reply was not streamed"
    );
    assert_eq!(body.len(), FIVE_MIB, "{path}");
    assert!(body[..] == pattern(FIVE_MIB)[..], "{path}: other bytes");
}

#[tokio::test]
async fn a_streamed_5mib_request_body_arrives_byte_identical() {
    let clock = ManualClock::new();
    let (addr, seen) = start(guard(&clock).build().unwrap()).await;
    // A plain route, and the JSON-body probe (which reads the first 16 KiB
    // itself, then hands the body on).
    upload_is_identical(addr, &seen, "/upload", StatusCode::OK).await;
    upload_is_identical(addr, &seen, "/api/password-reset", StatusCode::ACCEPTED).await;

    // A JSON body under the probe's limit, sent in many small chunks, is
    // buffered by the guard and replayed.
    let json = Arc::new(
        format!(
            r#"{{"email":"someone@example.test","note":"{}"}}"#,
            "x".repeat(10_000)
        )
        .into_bytes(),
    );
    let (tx, rx) = mpsc::channel(4);
    let chunks: Vec<Bytes> = json.chunks(100).map(Bytes::copy_from_slice).collect();
    tokio::spawn(async move {
        for c in chunks {
            if tx.send(c).await.is_err() {
                return;
            }
        }
    });
    let (status, _, _) = send(
        addr,
        Request::post("/api/password-reset")
            .body(ChannelBody(rx))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (got, _) = seen.take_body();
    assert!(got[..] == json[..]);
    assert_eq!(seen.calls(), 3);
}

#[tokio::test]
async fn a_streamed_5mib_response_body_arrives_byte_identical() {
    let clock = ManualClock::new();
    let (addr, seen) = start(guard(&clock).build().unwrap()).await;
    let five = FIVE_MIB.to_string();
    download_is_identical(
        addr,
        Request::get("/download")
            .header("x-reply-bytes", &five)
            .body(Empty::<Bytes>::new())
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    download_is_identical(
        addr,
        Request::post("/api/password-reset")
            .header("x-reply-bytes", &five)
            .body(http_body_util::Full::new(Bytes::from_static(
                br#"{"email":"someone@example.test"}"#,
            )))
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    // Both ways at once through the probe: 5 MiB up, 5 MiB down.
    download_is_identical(
        addr,
        Request::post("/api/password-reset")
            .header("x-reply-bytes", &five)
            .body(streamed(Arc::new(pattern(FIVE_MIB))))
            .unwrap(),
        StatusCode::ACCEPTED,
    )
    .await;
    let (got, _) = seen.take_body();
    assert!(got[..] == pattern(FIVE_MIB)[..]);
    assert_eq!(seen.calls(), 3);
}

// ---------------------------------------------------------------------------
// Configuration errors
// ---------------------------------------------------------------------------

#[test]
fn bad_configs_give_errors_that_name_the_field() {
    let probe = "[[probes]]\nname = \"book\"\npath = \"/api/{id}\"\ntarget = { path = \"id\" }\n";
    // (toml, kind, field, value)
    let cases: &[(String, ConfigErrorKind, &str, Option<&str>)] = &[
        // Bad CIDRs.
        (
            "trusted_proxies = [\"10.0.0.0/33\"]".into(),
            ConfigErrorKind::Invalid,
            "trusted_proxies[0]",
            Some("10.0.0.0/33"),
        ),
        (
            "[deny]\ncidrs = [\"10.0.0.0/8\", \"banana\"]".into(),
            ConfigErrorKind::Invalid,
            "deny.cidrs[1]",
            Some("banana"),
        ),
        (
            "[allow]\ncidrs = [\"10.0.0.1/8\"]".into(),
            ConfigErrorKind::Invalid,
            "allow.cidrs[0]",
            Some("10.0.0.1/8"),
        ),
        // Wrong types.
        (
            "trusted_proxies = \"10.0.0.0/8\"".into(),
            ConfigErrorKind::Parse,
            "trusted_proxies",
            None,
        ),
        (
            "limits.max_actors = \"lots\"".into(),
            ConfigErrorKind::Parse,
            "limits.max_actors",
            Some("\"lots\""),
        ),
        // Unknown fields and variants.
        (
            "mood = \"observe\"".into(),
            ConfigErrorKind::Parse,
            "mood",
            None,
        ),
        (
            "mode = \"lenient\"".into(),
            ConfigErrorKind::Parse,
            "mode",
            None,
        ),
        // Bad probes.
        (
            probe.replace("/api/{id}", "api/{id}"),
            ConfigErrorKind::Invalid,
            "probes[0].path",
            Some("api/{id}"),
        ),
        (
            probe.replace("/api/{id}", "/api/{id"),
            ConfigErrorKind::Invalid,
            "probes[0].path",
            Some("/api/{id"),
        ),
        (
            probe.replace("path = \"id\"", "path = \"ident\""),
            ConfigErrorKind::Invalid,
            "probes[0].target.path",
            Some("ident"),
        ),
        (
            format!(
                "{probe}{}",
                probe.replace("name = \"book\"", "name = \"b2\"\nmethod = \"G ET\"")
            ),
            ConfigErrorKind::Invalid,
            "probes[1].method",
            Some("G ET"),
        ),
        (
            format!("{probe}[probes.thresholds]\nthrottle_at = 2.0\n"),
            ConfigErrorKind::Invalid,
            "probes[0].thresholds.throttle_at",
            Some("2"),
        ),
        (
            // Read with the rest of the file: a parse error, with its line.
            format!("{probe}[probes.thresholds]\nforiegn_block = 7\n"),
            ConfigErrorKind::Parse,
            "probes[0].thresholds.foriegn_block",
            None,
        ),
        // A count that cannot be 0 (`NonZeroU32`): refused as the file is read.
        (
            "[throttle]\nper_minute = 0".into(),
            ConfigErrorKind::Parse,
            "throttle.per_minute",
            Some("0"),
        ),
        // Other ranges.
        (
            "session = { header = \"bad header\" }".into(),
            ConfigErrorKind::Invalid,
            "session.header",
            Some("bad header"),
        ),
    ];
    for (toml, kind, field, value) in cases {
        let e = Config::from_toml_str(toml).expect_err(toml);
        assert_eq!(e.kind(), *kind, "{toml}: {e}");
        assert_eq!(e.field(), Some(*field), "{toml}: {e}");
        if let Some(v) = value {
            assert_eq!(e.value(), Some(*v), "{toml}: {e}");
        }
        assert!(e.to_string().contains(field), "{toml}: {e}");
    }

    // The builder validates the same way.
    let e = GuardLayer::builder()
        .trusted_proxies(["10.0.0.0/33"])
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("trusted_proxies[0]"));
    assert_eq!(e.value(), Some("10.0.0.0/33"));
    let e = GuardLayer::builder()
        .allow_cidr("10.0.0.0/8")
        .allow_cidr("not a network")
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("allow.cidrs[1]"));
    let e = GuardLayer::builder()
        .probe(ProbeConfig::objects(
            "book",
            "GET",
            "/api/accounts/{id}",
            TargetConfig::path("account"),
        ))
        .build()
        .unwrap_err();
    assert_eq!(e.field(), Some("probes[0].target.path"));
    assert_eq!(e.value(), Some("account"));
}

#[test]
fn config_files_name_the_file_and_the_field() {
    // Not found.
    let missing = std::env::temp_dir().join(format!(
        "enumguard-no-such-file-{}.toml",
        std::process::id()
    ));
    let e = Config::from_file(&missing).unwrap_err();
    assert_eq!(e.kind(), ConfigErrorKind::Io);
    assert_eq!(e.value(), Some(missing.display().to_string().as_str()));
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );

    // Found, with a bad field.
    let path = std::env::temp_dir().join(format!("enumguard-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "mode = \"observe\"\n\n[limits]\nmax_actors = 3\n").unwrap();
    let e = Config::from_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(e.kind(), ConfigErrorKind::Invalid);
    assert_eq!(e.field(), Some("limits.max_actors"));
    assert_eq!(e.value(), Some("3"));
    let msg = e.to_string();
    assert!(msg.contains("limits.max_actors"), "{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");

    // Found and valid: the guard builds from it.
    let path = std::env::temp_dir().join(format!("enumguard-good-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "mode = \"observe\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n\
         [[probes]]\nname = \"book\"\npath = \"/api/accounts/{id}/addressbook\"\ntarget = { path = \"id\" }\n",
    )
    .unwrap();
    let config = Config::from_file(&path);
    std::fs::remove_file(&path).unwrap();
    let config = config.unwrap();
    assert_eq!(config.mode, enumguard::Mode::Observe);
    let _layer = GuardLayer::from_config(config).unwrap();
}

/// A key inside a `[table]` or `[[array]]` is named by its full path, as
/// `ConfigError::field` documents ("as a path (`probes[0].target`)") and as
/// the validation errors do (`limits.max_actors`).
///
/// Fails today: parse errors (wrong type, unknown field, bad variant) name
/// only the bare key on the error's line (`max_actors`, `body_limit`), which
/// is ambiguous with two probes; and a missing field has no name at all.
#[test]
fn parse_errors_name_the_full_path_of_the_field() {
    let probe = "[[probes]]\nname = \"book\"\npath = \"/api/{id}\"\ntarget = { path = \"id\" }\n";
    let cases: &[(String, &str)] = &[
        (
            "[limits]\nmax_actors = \"lots\"\n".into(),
            "limits.max_actors",
        ),
        (
            "[responses]\nblock_status = 99999\n".into(),
            "responses.block_status",
        ),
        ("[allow]\naccounts = [1]\n".into(), "allow.accounts"),
        ("[limits]\nmax_actorz = 5\n".into(), "limits.max_actorz"),
        (
            format!("{probe}{probe}body_limit = -1\n"),
            "probes[1].body_limit",
        ),
        (format!("{probe}style = \"people\"\n"), "probes[0].style"),
        (
            "[[probes]]\nname = \"book\"\npath = \"/api/{id}\"\n".into(),
            "probes[0].target",
        ),
    ];
    for (toml, field) in cases {
        let e = Config::from_toml_str(toml).expect_err(toml);
        assert_eq!(e.field(), Some(*field), "{toml}: {e}");
    }
}

/// A `GuardHandle` is `Send + Sync + Clone`, so an admin task can hold one.
#[test]
fn handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<GuardHandle>();
    check::<GuardLayer>();
}
