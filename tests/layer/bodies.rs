//! JSON-body probes: the inner service gets the body as sent; and verdicts held across paths.

use super::*;

// ---------------------------------------------------------------------------
// JSON-body probes: the inner service gets the body as sent
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct BodyError(&'static str);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyError {}

/// A request body that yields the given frames one at a time, returning
/// `Pending` (and waking itself) before each, like a slow network.
struct Chunks {
    frames: VecDeque<Result<Frame<Bytes>, BodyError>>,
    pending_next: bool,
    polls_after_end: Arc<AtomicUsize>,
}

impl Chunks {
    fn new(data: &[u8], chunk: usize) -> Self {
        let frames = data
            .chunks(chunk.max(1))
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        Self {
            frames,
            pending_next: true,
            polls_after_end: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn then(mut self, frame: Result<Frame<Bytes>, BodyError>) -> Self {
        self.frames.push_back(frame);
        self
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.frames.is_empty() {
            this.polls_after_end.fetch_add(1, Ordering::SeqCst);
            return Poll::Ready(None);
        }
        if this.pending_next {
            this.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.pending_next = true;
        Poll::Ready(this.frames.pop_front())
    }

    fn size_hint(&self) -> SizeHint {
        let n: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.as_ref().ok()?.data_ref().map(|d| d.len() as u64))
            .sum();
        SizeHint::with_exact(n)
    }
}

/// What the inner service saw of the body.
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    error: Option<String>,
}

async fn drain<B>(mut body: B) -> Seen
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: fmt::Display,
{
    let mut seen = Seen::default();
    // Bounded: a body never yields more frames than this in these tests.
    for _ in 0..100_000 {
        match body.frame().await {
            None => return seen,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(d) => seen.data.extend_from_slice(&d),
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        seen.trailers = Some(t);
                    }
                }
            },
            Some(Err(e)) => {
                seen.error = Some(e.to_string());
                return seen;
            }
        }
    }
    panic!("body never ended");
}

/// An inner service that reads the whole body into `seen`, counts its calls
/// and answers `status`.
#[allow(clippy::type_complexity)]
fn recording(
    seen: Arc<Mutex<Option<Seen>>>,
    calls: Arc<AtomicUsize>,
    status: StatusCode,
) -> impl Service<
    Request<GuardBody<Chunks>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    service_fn(move |req: Request<GuardBody<Chunks>>| {
        let seen = seen.clone();
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let body = req.into_body();
            let got = drain(Box::pin(body)).await;
            *seen.lock().unwrap() = Some(got);
            let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
            *res.status_mut() = status;
            Ok(res)
        }
    })
}

fn reset_layer(body_limit: usize, clock: &ManualClock) -> GuardLayer {
    GuardLayer::builder()
        .probe(
            ProbeConfig::identities(
                "reset",
                "POST",
                "/api/password-reset",
                TargetConfig::json("email"),
            )
            .body_limit(body_limit, Oversized::Pass),
        )
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn reset_request(peer: &str, body: Chunks) -> Request<Chunks> {
    let mut req = Request::post("/api/password-reset")
        .header("content-type", "application/json")
        .body(body)
        .unwrap();
    req.extensions_mut().insert(SocketAddr::new(ip(peer), 1));
    req
}

/// Sends `body` through a JSON probe with `body_limit` and returns what the
/// inner service saw.
async fn through_probe(body_limit: usize, body: Chunks) -> Seen {
    let clock = ManualClock::new();
    let layer = reset_layer(body_limit, &clock);
    let seen = Arc::new(Mutex::new(None));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(recording(seen.clone(), calls.clone(), StatusCode::OK));
    let res = svc.oneshot(reset_request("192.0.2.1", body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.extensions().get::<Refusal>().is_none());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    seen.lock()
        .unwrap()
        .take()
        .expect("inner service read the body")
}

/// A JSON document of at least `len` bytes whose `email` field comes first.
fn json_of_len(len: usize) -> Vec<u8> {
    let head = br#"{"email":"someone@example.test","pad":""#;
    let mut v = head.to_vec();
    let mut i = 0u32;
    while v.len() + 2 < len {
        v.push(b'a' + (i % 26) as u8);
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
    }
    v.extend_from_slice(b"\"}");
    v
}

#[tokio::test]
async fn json_probe_passes_a_small_body_byte_identical() {
    let body = br#"{"email":"someone@example.test","name":"\u00e9l\u00e8ve"}"#;
    let seen = through_probe(16 * 1024, Chunks::new(body, body.len())).await;
    assert_eq!(seen.data, body);
    assert_eq!(seen.error, None);
    // Empty and not-JSON bodies too.
    let seen = through_probe(16 * 1024, Chunks::new(b"", 1)).await;
    assert!(seen.data.is_empty());
    let seen = through_probe(16 * 1024, Chunks::new(b"\x00\xffnot json", 3)).await;
    assert_eq!(seen.data, b"\x00\xffnot json");
}

#[tokio::test]
async fn json_probe_passes_a_multi_frame_body_byte_identical() {
    let body = json_of_len(10_000);
    for chunk in [1, 7, 100, 4096] {
        let seen = through_probe(16 * 1024, Chunks::new(&body, chunk)).await;
        assert_eq!(seen.data.len(), body.len(), "chunk {chunk}");
        assert!(seen.data == body, "chunk {chunk}: bytes differ");
        assert_eq!(seen.error, None);
    }
}

#[tokio::test]
async fn json_probe_passes_a_body_larger_than_its_limit_byte_identical() {
    let body = json_of_len(300_000);
    // One frame far over the limit; frames that cross the limit mid-frame;
    // a limit that falls exactly on a frame boundary.
    for (limit, chunk) in [(1024, body.len()), (1000, 300), (1024, 512), (4096, 8192)] {
        let seen = through_probe(limit, Chunks::new(&body, chunk)).await;
        assert_eq!(seen.data.len(), body.len(), "limit {limit} chunk {chunk}");
        assert!(
            seen.data == body,
            "limit {limit} chunk {chunk}: bytes differ"
        );
        assert_eq!(seen.error, None);
    }
}

#[tokio::test]
async fn json_probe_passes_trailers_and_errors_through() {
    let body = json_of_len(3000);
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    // Trailers after a body under the limit and over it.
    for limit in [16 * 1024, 1000] {
        let chunks = Chunks::new(&body, 512).then(Ok(Frame::trailers(trailers.clone())));
        let seen = through_probe(limit, chunks).await;
        assert!(seen.data == body, "limit {limit}");
        assert_eq!(seen.trailers.as_ref(), Some(&trailers), "limit {limit}");
    }
    // A read error reaches the inner service after the bytes before it.
    for limit in [16 * 1024, 1000] {
        let chunks = Chunks::new(&body[..1500], 500).then(Err(BodyError("connection reset")));
        let seen = through_probe(limit, chunks).await;
        assert!(seen.data == body[..1500], "limit {limit}");
        assert_eq!(
            seen.error.as_deref(),
            Some("connection reset"),
            "limit {limit}"
        );
    }
}

#[tokio::test]
async fn json_probe_reads_the_target_from_a_multi_frame_body() {
    // Guessing emails through password reset, every guess a miss, each body
    // split into many frames: the guard reads the target and blocks the
    // guesser before the inner service sees every guess.
    let clock = ManualClock::new();
    let layer = reset_layer(16 * 1024, &clock);
    let handle = layer.handle();
    let seen = Arc::new(Mutex::new(None));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(recording(
        seen.clone(),
        calls.clone(),
        StatusCode::NOT_FOUND,
    ));

    let mut refused_at = None;
    for i in 0..100u32 {
        clock.advance(Duration::from_secs(7));
        let body = format!(r#"{{"email":"guess{i}@example.test"}}"#);
        let res = svc
            .clone()
            .oneshot(reset_request("192.0.2.66", Chunks::new(body.as_bytes(), 5)))
            .await
            .unwrap();
        if let Some(r) = res.extensions().get::<Refusal>() {
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            assert!(
                matches!(r.kind(), RefusalKind::Blocked | RefusalKind::Throttled),
                "{r:?}"
            );
            assert_eq!(r.probe(), Some("reset"));
            refused_at = Some(i);
            break;
        }
        assert_eq!(
            seen.lock().unwrap().take().unwrap().data,
            body.as_bytes(),
            "guess {i}"
        );
    }
    let at = refused_at.expect("the guesser is refused");
    assert!((5..60).contains(&at), "refused at guess {at}");
    assert_eq!(calls.load(Ordering::SeqCst), at as usize);
    assert!(!matches!(
        handle.verdict(&Actor::ip(ip("192.0.2.66"))),
        Verdict::Allow
    ));

    // The same guesses with the body over the limit (passed on, as
    // `oversized = "pass"` says) are still counted, each as a new target:
    // padding hides the target, never the request.
    let layer = reset_layer(8, &clock);
    let handle = layer.handle();
    let before = calls.load(Ordering::SeqCst);
    let svc = layer.layer(recording(
        seen.clone(),
        calls.clone(),
        StatusCode::NOT_FOUND,
    ));
    let mut refused_at = None;
    for i in 0..100u32 {
        clock.advance(Duration::from_secs(7));
        let body = format!(r#"{{"email":"guess{i}@example.test"}}"#);
        let res = svc
            .clone()
            .oneshot(reset_request("192.0.2.67", Chunks::new(body.as_bytes(), 5)))
            .await
            .unwrap();
        if res.extensions().get::<Refusal>().is_some() {
            refused_at = Some(i);
            break;
        }
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "guess {i}");
        assert_eq!(seen.lock().unwrap().take().unwrap().data, body.as_bytes());
    }
    let at = refused_at.expect("the padded guesser is refused too");
    assert!((5..60).contains(&at), "refused at guess {at}");
    assert_eq!(calls.load(Ordering::SeqCst) - before, at as usize);
    assert!(!matches!(
        handle.verdict(&Actor::ip(ip("192.0.2.67"))),
        Verdict::Allow
    ));
}

#[tokio::test]
async fn json_probe_oversized_refuse_gives_413_without_calling_inner() {
    let layer = GuardLayer::builder()
        .probe(
            ProbeConfig::identities(
                "reset",
                "POST",
                "/api/password-reset",
                TargetConfig::json("email"),
            )
            .body_limit(1024, Oversized::Refuse),
        )
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(None));
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = layer.layer(recording(seen.clone(), calls.clone(), StatusCode::OK));
    let body = json_of_len(5000);
    let res = svc
        .clone()
        .oneshot(reset_request("192.0.2.1", Chunks::new(&body, 700)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        res.extensions().get::<Refusal>().map(Refusal::kind),
        Some(RefusalKind::BodyTooLarge)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Under the limit it passes.
    let body = json_of_len(1000);
    let res = svc
        .oneshot(reset_request("192.0.2.1", Chunks::new(&body, 700)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(seen.lock().unwrap().take().unwrap().data == body);
}

#[tokio::test]
async fn json_probe_body_keeps_its_size_hint() {
    // An inner service that trusts `size_hint` (like a `Limited` body or a
    // proxy writing Content-Length) sees the full length.
    let clock = ManualClock::new();
    let layer = reset_layer(1000, &clock);
    let hints = Arc::new(Mutex::new(Vec::new()));
    let h = hints.clone();
    let svc = layer.layer(service_fn(move |req: Request<GuardBody<Chunks>>| {
        let hints = h.clone();
        async move {
            let hint = req.body().size_hint();
            hints.lock().unwrap().push((hint.lower(), hint.upper()));
            let seen = drain(Box::pin(req.into_body())).await;
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(seen.data))))
        }
    }));
    for len in [500, 5000] {
        let body = json_of_len(len);
        let res = svc
            .clone()
            .oneshot(reset_request("192.0.2.1", Chunks::new(&body, 300)))
            .await
            .unwrap();
        let got = res.into_body().collect().await.unwrap().to_bytes();
        assert!(got == body);
    }
    let hints = hints.lock().unwrap().clone();
    assert_eq!(hints.len(), 2);
    for ((lower, upper), len) in hints.into_iter().zip([500u64, 5000]) {
        let len = json_of_len(len as usize).len() as u64;
        assert!(lower <= len, "lower {lower} > {len}");
        assert!(upper.is_none_or(|u| u >= len), "upper {upper:?} < {len}");
    }
}

/// An operator's ban of an address holds for every request from it.
///
/// Fails today: `Shared::gate` (src/service.rs) lets a request through a
/// blocked `ip`/`subnet` verdict when its account is "established" (a record
/// on some probe that is not new, no strikes, low score). That exemption is
/// meant for addresses shared with an enumerator (NAT); applied to a
/// `VerdictReason::Manual` ban it means any account warmed up with five
/// reads of its own objects walks through the operator's ban, contrary to
/// `GuardHandle::ban` ("refused at once, the inner service is not called").
#[tokio::test]
async fn manual_ip_ban_holds_for_an_established_account() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(ProbeConfig::objects(
            "book",
            "GET",
            "/api/accounts/{id}/addressbook",
            TargetConfig::path("id"),
        ))
        .account(common::account_from_header)
        .clock(clock.clone())
        .build()
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let own = |path: &str| {
        let req = Request::get(path).body(Full::new(Bytes::new())).unwrap();
        let mut req = with_header(req, "x-account", "42");
        req.extensions_mut()
            .insert(SocketAddr::new(ip("192.0.2.1"), 1));
        req
    };
    // Account 42 reads its own address book a few times: it is established.
    for _ in 0..6 {
        clock.advance(Duration::from_secs(60));
        let (res, _) = call(&layer, &calls, own("/api/accounts/42/addressbook")).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    layer
        .handle()
        .ban(&Actor::ip(ip("192.0.2.1")), Duration::from_secs(600));
    let (res, refusal) = call(&layer, &calls, own("/hello")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refusal.unwrap().actor_kind(), Some(ActorKind::Ip));
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

/// Records keep coarse times as 32-bit seconds of the clock: a clock too far
/// from its origin is refused at build, naming the clock, not silently
/// saturated.
#[test]
fn a_clock_too_far_from_its_origin_is_refused() {
    struct Far;
    impl enumguard::Clock for Far {
        fn now_nanos(&self) -> u64 {
            // 137 years.
            137 * 365 * 86_400 * 1_000_000_000
        }
    }
    let e = GuardLayer::builder().clock(Far).build().unwrap_err();
    assert_eq!(e.field(), Some("clock"));
    assert!(e.to_string().contains("origin"), "{e}");
    assert!(
        GuardLayer::builder()
            .clock(ManualClock::new())
            .build()
            .is_ok()
    );
}

/// A detected block on an account refuses that account's requests to any
/// path (the no-probe fast path shuts while it is held); a block on the
/// address alone covers probe requests only; once every such block has
/// ended, requests pass and the table is cleared of them.
#[tokio::test]
async fn detected_account_block_covers_every_path_until_it_ends() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(common::addressbook())
        .account(common::account_from_header)
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    let req = |path: &str, account: &str| {
        with_header(
            {
                let mut r = get_from("198.51.100.7");
                *r.uri_mut() = path.parse().unwrap();
                r
            },
            "x-account",
            account,
        )
    };
    // Account 7 walks other accounts' books until it is blocked.
    let mut blocked_after = None;
    for id in 1000..1100 {
        clock.advance(Duration::from_millis(200));
        let (_, refusal) = call(
            &layer,
            &calls,
            req(&format!("/api/accounts/{id}/addressbook"), "7"),
        )
        .await;
        if refusal.is_some() {
            blocked_after = Some(id - 1000);
            break;
        }
    }
    assert!(blocked_after.is_some_and(|n| n <= 20), "{blocked_after:?}");
    let account = Actor::account("7");
    assert!(matches!(
        handle.verdict(&account),
        Verdict::Block {
            reason: VerdictReason::Detected,
            ..
        }
    ));
    // Its other requests are refused too; another account on the same
    // address is not.
    let (res, refusal) = call(&layer, &calls, req("/api/accounts/7/profile", "7")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        refusal.map(|r| r.actor_kind()),
        Some(Some(ActorKind::Account))
    );
    let (res, refusal) = call(&layer, &calls, req("/api/accounts/8/profile", "8")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(refusal.is_none());
    // A day later every block has ended: the account's requests pass, and
    // the ended verdicts are gone from the table.
    clock.advance(Duration::from_secs(86_400 + 1));
    assert_eq!(handle.verdict(&account), Verdict::Allow);
    let (res, refusal) = call(&layer, &calls, req("/api/accounts/7/profile", "7")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(refusal.is_none());
    assert_eq!(handle.verdict_count(), 0);
}
