//! The guard's state under pressure: a record store full of suspects, and
//! an operator's ban over a detected block.

use super::*;

/// The lookup probe: `GET /api/lookup?email=...`, an identities probe.
fn lookup() -> ProbeConfig {
    ProbeConfig::identities("lookup", "GET", "/api/lookup", TargetConfig::query("email"))
}

/// An inner service that knows no email at all: every lookup is a miss
/// (404); anything else is 200.
#[allow(clippy::type_complexity)]
fn no_such_account(
    calls: Arc<AtomicUsize>,
) -> impl Service<
    Request<GuardBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    service_fn(move |req: Request<GuardBody<Full<Bytes>>>| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
        if req.uri().path() == "/api/lookup" {
            *res.status_mut() = StatusCode::NOT_FOUND;
        }
        std::future::ready(Ok(res))
    })
}

/// One request from `peer` (with `account`, if any) for `uri`: whether the
/// guard refused it.
async fn refused(layer: &GuardLayer, peer: &str, account: Option<&str>, uri: &str) -> bool {
    let mut req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
    req.extensions_mut()
        .insert(SocketAddr::new(ip(peer), 40000));
    if let Some(a) = account {
        req = with_header(req, "x-account", a);
    }
    let svc = layer.layer(no_such_account(Arc::new(AtomicUsize::new(0))));
    let res = svc.oneshot(req).await.unwrap();
    res.extensions().get::<Refusal>().is_some()
}

/// `peer` guesses emails (all misses), one every 2 seconds, until its
/// address is blocked: how many guesses it sent (`None`: never blocked
/// within `max`; a throttle's refusals count as guesses sent). After each
/// request, the store is within its capacity.
async fn enumerate(
    layer: &GuardLayer,
    clock: &ManualClock,
    peer: &str,
    max: usize,
) -> Option<usize> {
    let handle = layer.handle();
    let who = Actor::ip(ip(peer));
    for i in 0..max {
        clock.advance(Duration::from_secs(2));
        let uri = format!(
            "/api/lookup?email=user{i}%40{}.example",
            peer.replace('.', "-")
        );
        refused(layer, peer, None, &uri).await;
        assert!(
            handle.tracked() <= handle.capacity(),
            "{} records, cap {}",
            handle.tracked(),
            handle.capacity()
        );
        if matches!(handle.verdict(&who), Verdict::Block { .. }) {
            return Some(i + 1);
        }
    }
    None
}

/// The attack: fill the record store with suspects (addresses that
/// enumerated until blocked: each holds an ip and a subnet record, all
/// current suspects), then a fresh address enumerates. It must still be
/// counted and blocked, as soon as the first ones were, and the store stays
/// within its cap. (Before, a store full of suspects tracked no new key: the
/// fresh address was never blocked.)
#[tokio::test]
async fn a_fresh_enumerator_is_blocked_when_the_store_is_full_of_suspects() {
    let clock = ManualClock::new();
    let layer = GuardLayer::builder()
        .probe(lookup())
        .max_actors(16)
        .clock(clock.clone())
        // Fixed sketch keys: the same figures every run.
        .seed(21)
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut took = Vec::new();
    for n in 0..12 {
        let peer = format!("198.51.{n}.7");
        let guesses = enumerate(&layer, &clock, &peer, 500).await;
        took.push(guesses.unwrap_or_else(|| panic!("attacker {n} was never refused")));
    }
    assert_eq!(handle.tracked(), handle.capacity(), "the store is full");
    // Of suspects: the blocked addresses (12 records; their subnets carry
    // suspicion from them).
    let suspects = handle.suspects(0.6);
    assert!(suspects.len() >= 12, "{suspects:#?}");

    let fresh = enumerate(&layer, &clock, "203.0.113.50", 500).await;
    let fresh = fresh.expect("the fresh enumerator was never refused");
    let first = took[0];
    // Within a quarter of the first attacker's count: its records may be
    // evicted once or twice while it builds up (the store holds 16).
    assert!(
        fresh <= first + first / 4,
        "the fresh enumerator got {fresh} guesses, the first attacker {first}"
    );
    assert!(handle.tracked() <= handle.capacity());
    assert!(matches!(
        handle.verdict(&Actor::ip(ip("203.0.113.50"))),
        Verdict::Block { .. }
    ));
    // The attackers whose records made room are still refused: their
    // blocks are in the verdict table.
    for n in 0..12 {
        let peer = format!("198.51.{n}.7");
        assert!(
            refused(&layer, &peer, None, "/api/lookup?email=x%40y.example").await,
            "attacker {n} is no longer refused"
        );
    }
}

/// An operator bans for an hour an address that holds a four-hour detected
/// block (which refuses only anonymous requests to the probe it was caught
/// on): the ban takes effect, refusing requests with an account and other
/// paths too; the detected block does not keep it narrower.
#[tokio::test]
async fn a_ban_over_a_longer_detected_probe_block_refuses_everything() {
    let clock = ManualClock::new();
    let config = enumguard::Config::from_toml_str("[blocks]\nbase_secs = 14400").unwrap();
    let layer = GuardLayer::builder()
        .config(config)
        .probe(lookup())
        .probe(common::addressbook())
        .account(common::account_from_header)
        .clock(clock.clone())
        .build()
        .unwrap();
    let handle = layer.handle();
    let peer = "192.0.2.80";
    let who = Actor::ip(ip(peer));
    enumerate(&layer, &clock, peer, 500)
        .await
        .expect("the enumerator was blocked");
    match handle.verdict(&who) {
        Verdict::Block {
            reason, remaining, ..
        } => {
            assert_eq!(reason, VerdictReason::Detected);
            assert!(remaining > Duration::from_secs(3 * 3600), "{remaining:?}");
        }
        v => panic!("{v:?}"),
    }
    // The detected block refuses lookups, not the rest.
    assert!(!refused(&layer, peer, None, "/hello").await);
    assert!(!refused(&layer, peer, Some("42"), "/hello").await);
    assert!(!refused(&layer, peer, None, "/api/accounts/9/addressbook").await);

    handle.ban(&who, Duration::from_secs(3600));
    // (The address's /24 may hold a longer linked block of its own, which
    // the handle reports as the stronger: the refusals below are what the
    // ban changes.)
    assert!(matches!(handle.verdict(&who), Verdict::Block { .. }));
    clock.advance(Duration::from_secs(60));
    assert!(refused(&layer, peer, Some("42"), "/api/lookup?email=c%40d.example").await);
    assert!(refused(&layer, peer, Some("42"), "/hello").await);
    assert!(refused(&layer, peer, None, "/hello").await);
    assert!(refused(&layer, peer, None, "/api/lookup?email=e%40f.example").await);
    assert!(refused(&layer, peer, None, "/api/accounts/9/addressbook").await);
    assert!(refused(&layer, peer, Some("42"), "/api/accounts/9/addressbook").await);
    // The ban ends when it said: an hour.
    clock.advance(Duration::from_secs(3600));
    assert!(!refused(&layer, peer, Some("42"), "/hello").await);
}
