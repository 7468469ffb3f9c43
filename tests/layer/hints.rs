//! What the application can vouch for (`Standing`, `Known`): prior trust
//! through the layer, and what it cannot be made to do.

use super::*;
use enumguard::{Known, Standing};

const KNOWN_TO_ALL: &str = "friend";

/// A lookup service: `name@here.example` is registered when `name` starts
/// with `user`; the handler says `Known` for addresses whose name starts
/// with `friend` (the caller's contacts), found or not.
#[allow(clippy::type_complexity)]
fn lookups() -> impl Service<
    Request<GuardBody<Full<Bytes>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = std::future::Ready<Result<Response<Full<Bytes>>, Infallible>>,
> + Clone {
    service_fn(|req: Request<GuardBody<Full<Bytes>>>| {
        let q = req.uri().query().unwrap_or("").to_owned();
        let name = q.strip_prefix("email=").unwrap_or("");
        let mut res = Response::new(Full::new(Bytes::from_static(b"{}")));
        if !name.starts_with("user") {
            *res.status_mut() = StatusCode::NOT_FOUND;
        }
        if name.starts_with(KNOWN_TO_ALL) {
            res.extensions_mut().insert(Known);
        }
        std::future::ready(Ok(res))
    })
}

fn layer(clock: &ManualClock) -> GuardLayer {
    GuardLayer::builder()
        .probe(ProbeConfig::identities(
            "lookup",
            "GET",
            "/lookup",
            TargetConfig::query("email"),
        ))
        .account(common::account_from_header)
        .clock(clock.clone())
        // The same keys on every run: the distinct-target sketch's count
        // moves by a target or two with its key.
        .seed(7)
        .build()
        .unwrap()
}

/// Sends `n` lookups of distinct unregistered addresses named `prefix{i}`
/// for `account` (one a second), with `standing` put into the request
/// extensions (as an authentication layer would); returns how many were
/// answered before the first refusal.
async fn misses_answered(
    layer: &GuardLayer,
    clock: &ManualClock,
    account: &str,
    prefix: &str,
    standing: Option<Standing>,
    n: usize,
) -> usize {
    let svc = layer.layer(lookups());
    for i in 0..n {
        clock.advance(Duration::from_secs(1));
        let mut req = Request::get(format!("/lookup?email={prefix}{i}@here.example"))
            .header(common::X_ACCOUNT, account)
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut()
            .insert(SocketAddr::new(ip("203.0.113.9"), 40000));
        if let Some(s) = standing {
            req.extensions_mut().insert(s);
        }
        let res = svc.clone().oneshot(req).await.unwrap();
        if res.extensions().get::<Refusal>().is_some() {
            return i;
        }
    }
    n
}

/// A caller's own contacts, said `Known` by the handler, never count, found
/// or not: 200 of them are all answered, where 200 addresses it does not
/// know stop at the miss threshold (20).
#[tokio::test]
async fn known_targets_are_no_guesses() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let known = misses_answered(&layer, &clock, "7", KNOWN_TO_ALL, None, 200).await;
    assert_eq!(known, 200, "known contacts refused at {known}");
    let guessed = misses_answered(&layer, &clock, "8", "nobody", None, 200).await;
    assert!((15..=25).contains(&guessed), "guesses answered: {guessed}");
}

/// An established account (the standing an authentication layer put into
/// the request extensions) gets twice the room of one the guard knows
/// nothing of; a new one gets no more than that.
#[tokio::test]
async fn an_established_account_gets_twice_the_room() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let plain = misses_answered(&layer, &clock, "11", "a", None, 200).await;
    let new = misses_answered(&layer, &clock, "12", "b", Some(Standing::New), 200).await;
    let old = misses_answered(&layer, &clock, "13", "c", Some(Standing::Established), 200).await;
    assert!(old >= plain * 3 / 2, "established {old}, unknown {plain}");
    assert!(new <= plain, "new {new}, unknown {plain}");
}

/// The attacker cannot vouch for itself: the standing is read from the
/// request's extensions (put there by the server's own layers), never from
/// anything the client sends.
#[tokio::test]
async fn a_client_cannot_claim_a_standing() {
    let clock = ManualClock::new();
    let layer = layer(&clock);
    let svc = layer.layer(lookups());
    let mut answered = 0;
    for i in 0..200 {
        clock.advance(Duration::from_secs(1));
        let mut req = Request::get(format!("/lookup?email=x{i}@here.example"))
            .header(common::X_ACCOUNT, "21")
            .header("standing", "established")
            .header("x-standing", "Established")
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut()
            .insert(SocketAddr::new(ip("203.0.113.10"), 40000));
        let res = svc.clone().oneshot(req).await.unwrap();
        if res.extensions().get::<Refusal>().is_some() {
            break;
        }
        answered += 1;
    }
    assert!(answered <= 25, "{answered}");
}

/// A contact that people look up as theirs (`Known`) is a target people
/// share, not a stranger's guess: a person who mistyped two addresses is
/// not held on it as a possible third miss, even with thresholds as tight
/// as the README's example of going too far (`miss_block = 3`).
#[tokio::test]
async fn a_contact_others_know_is_no_novel_guess() {
    let clock = ManualClock::new();
    let mut t = enumguard::Thresholds::identities();
    t.baseline_miss_ratio = 0.25;
    t.miss_block = 3;
    t.hit_block = 10;
    t.min_targets = 3;
    let layer = GuardLayer::builder()
        .probe(
            ProbeConfig::identities("lookup", "GET", "/lookup", TargetConfig::query("email"))
                .thresholds(t),
        )
        .account(common::account_from_header)
        .clock(clock.clone())
        .seed(7)
        .build()
        .unwrap();
    let svc = layer.layer(lookups());
    let lookup = |account: &str, email: &str, peer: &str| {
        let mut req = Request::get(format!("/lookup?email={email}"))
            .header(common::X_ACCOUNT, account)
            .body(Full::new(Bytes::new()))
            .unwrap();
        req.extensions_mut()
            .insert(SocketAddr::new(ip(peer), 40000));
        let svc = svc.clone();
        async move { svc.oneshot(req).await.unwrap() }
    };
    // Ten people look up the same contact, theirs (not registered: the
    // handler answers 404 and says `Known`).
    for i in 0..10 {
        clock.advance(Duration::from_secs(30));
        let res = lookup(
            &format!("{}", 100 + i),
            "friend1@here.example",
            &format!("10.0.0.{i}"),
        )
        .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    // A person mistypes twice, then looks up that contact.
    for email in [
        "nobdy1@here.example",
        "nbody2@here.example",
        "friend1@here.example",
    ] {
        clock.advance(Duration::from_secs(60));
        let res = lookup("9", email, "10.0.1.9").await;
        assert!(
            res.extensions().get::<Refusal>().is_none(),
            "{email} refused: {:?}",
            res.extensions().get::<Refusal>()
        );
    }
}
