//! The demo, short: every scenario of `examples/demo.rs` at its quick size,
//! over real HTTP on loopback, so CI keeps the README's first command
//! working. And the mailroom's interface, which outside tools drive, and
//! the access log its `--access-log` writes.
// Served by axum, whose `ConnectInfo` the guard reads with the `axum` feature.
#![cfg(feature = "axum")]

#[allow(dead_code)]
#[path = "../examples/mailroom/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/mailroom/client.rs"]
mod client;
#[allow(dead_code)]
#[path = "../examples/mailroom/scenarios.rs"]
mod scenarios;
// The command line itself, for its access log. It brings its own copy of
// `app`, which its functions take (the tests above use the one above).
#[cfg(feature = "admin")]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/mailroom.rs"]
mod mailroom;

use std::net::Ipv4Addr;

use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn quick_demo_stops_attacks_and_refuses_no_ordinary_user() {
    let size = scenarios::Size::quick();
    let progress = |piece: &str| eprint!("{piece}");
    let rows = runtime()
        .block_on(scenarios::run_all(
            &size,
            &app::default_config(),
            None,
            &progress,
        ))
        .expect("the demo runs");
    eprintln!("\n{}", scenarios::table(&rows, size.nat_users));
    assert_eq!(rows.len(), 11, "every scenario has its row");
    for row in &rows {
        assert_eq!(
            row.on.ordinary_refused_users(),
            0,
            "{}: ordinary users refused",
            row.name
        );
        assert!(
            row.on.ordinary_users() > 0,
            "{}: no ordinary users",
            row.name
        );
        assert_eq!(
            row.off.ordinary_refused_users(),
            0,
            "{}: refused without a guard",
            row.name
        );
        if row.unit.is_some() {
            let (off, on) = (row.off.leaked(), row.on.leaked());
            assert_eq!(
                row.off.refused(),
                0,
                "{}: refusals without a guard",
                row.name
            );
            assert!(
                off >= 40,
                "{}: the attack must work unprotected ({off})",
                row.name
            );
            assert!(
                row.on.refused() > 0,
                "{}: the attacker was never refused",
                row.name
            );
            assert!(
                on * 10 <= off,
                "{}: {on} leaked protected vs {off} unprotected",
                row.name
            );
        }
    }
    let failures: Vec<String> = rows.iter().flat_map(scenarios::Row::failures).collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn mailroom_answers_per_its_interface() {
    runtime().block_on(async {
        for patched in [false, true] {
            let opts = app::Options {
                accounts: 50,
                patched,
                ..app::Options::new()
            };
            let server = scenarios::start(&opts).await.expect("mailroom starts");
            let mut c = client::Client::new(server.addr, Ipv4Addr::new(127, 9, 0, 1));
            let status = |r: client::Resp| r.status;

            assert_eq!(status(c.get("/healthz").await.unwrap()), 200);
            // Not logged in.
            assert_eq!(
                status(c.get("/api/accounts/1/addressbook").await.unwrap()),
                401
            );
            assert_eq!(
                status(
                    c.get("/api/recipients/lookup?email=user1%40mailroom.test")
                        .await
                        .unwrap()
                ),
                401
            );
            // Register.
            let new = json!({ "email": "new@example.test", "password": "secret" });
            let r = c.post("/api/register", &new).await.unwrap();
            assert_eq!(r.status, 201);
            assert_eq!(r.json()["id"], 51);
            assert_eq!(status(c.post("/api/register", &new).await.unwrap()), 409);
            let taken = json!({ "email": "user7@mailroom.test", "password": "whatever" });
            assert_eq!(status(c.post("/api/register", &taken).await.unwrap()), 409);
            let bad = json!({ "email": "not-an-email", "password": "secret" });
            assert_eq!(status(c.post("/api/register", &bad).await.unwrap()), 400);
            assert_eq!(
                status(c.post("/api/register", &json!({})).await.unwrap()),
                400
            );
            // Password reset.
            let r = c
                .post(
                    "/api/password-reset",
                    &json!({ "email": "user3@mailroom.test" }),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 202);
            let r = c
                .post(
                    "/api/password-reset",
                    &json!({ "email": "nobody@mailroom.test" }),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 404);
            // Login.
            assert_eq!(
                status(c.login("user5@mailroom.test", "wrong").await.unwrap()),
                401
            );
            assert_eq!(
                status(c.login("nobody@mailroom.test", "pass-5").await.unwrap()),
                401
            );
            let r = c.login("user5@mailroom.test", "pass-5").await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.json()["id"], 5);
            assert!(r.json()["token"].as_str().is_some_and(|t| t.len() >= 32));
            // Own address book.
            let r = c.get("/api/accounts/5/addressbook").await.unwrap();
            assert_eq!(r.status, 200);
            let book = r.json();
            assert_eq!(book["owner"], 5);
            let contacts = book["contacts"].as_array().expect("contacts");
            assert!((5..=40).contains(&contacts.len()), "{}", contacts.len());
            for k in ["name", "email", "phone", "address"] {
                assert!(contacts[0][k].is_string(), "{k}");
            }
            // The same seed gives the same book.
            assert_eq!(
                serde_json::to_value(server_contacts(5)).unwrap(),
                book["contacts"]
            );
            // A foreign one: the flaw, or 403 when patched.
            let r = c.get("/api/accounts/6/addressbook").await.unwrap();
            assert_eq!(r.status, if patched { 403 } else { 200 });
            assert_eq!(
                status(c.get("/api/accounts/999/addressbook").await.unwrap()),
                if patched { 403 } else { 404 }
            );
            // Lookup.
            let r = c
                .get("/api/recipients/lookup?email=user9%40mailroom.test")
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.json(), json!({ "exists": true, "id": 9 }));
            let r = c
                .get("/api/recipients/lookup?email=nobody%40mailroom.test")
                .await
                .unwrap();
            assert_eq!(r.status, 404);
            assert_eq!(r.json(), json!({ "exists": false }));
            // The registered account logs in and has an empty book.
            let r = c.login("new@example.test", "secret").await.unwrap();
            assert_eq!(r.status, 200);
            let r = c.get("/api/accounts/51/addressbook").await.unwrap();
            assert_eq!(r.json()["contacts"], json!([]));
        }
    });
}

/// Account `id`'s address book as a 50-account mailroom seeds it.
fn server_contacts(id: u64) -> Vec<app::Contact> {
    app::Mailroom::seeded(50, false).contacts(id)
}

#[test]
fn built_in_config_is_the_documented_file() {
    let from_file = enumguard::Config::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/mailroom.toml"
    ))
    .expect("examples/mailroom.toml is valid");
    assert_eq!(from_file, app::default_config());
    assert_eq!(from_file.probes.len(), 4);
}

/// `--access-log`: the mailroom's guard with the log's hook, as the command
/// line builds it, over real HTTP; once closed, the file holds one JSON
/// line per request, in order, with what the guard saw and what the
/// handlers said (the account's standing, `Known`).
#[cfg(feature = "admin")]
#[test]
fn mailroom_access_log_has_a_line_per_request() {
    use serde_json::Value;

    let path = std::env::temp_dir().join(format!(
        "enumguard-mailroom-access-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    let log = mailroom::AccessLog::open(&path).expect("the access log opens");
    // A contact of account 5 that is registered here.
    let state = std::sync::Arc::new(mailroom::app::Mailroom::seeded(50, false));
    let contact = state
        .contacts(5)
        .into_iter()
        .map(|c| c.email)
        .find(|e| state.id_of(e).is_some())
        .expect("account 5 knows a mailroom account");
    // (method, uri, status) of each request sent.
    let sent = runtime().block_on(async {
        let opts = mailroom::app::Options {
            accounts: 50,
            ..mailroom::app::Options::new()
        };
        let app = mailroom::replica(&opts, state, Some(&log)).expect("mailroom builds");
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(mailroom::app::serve(listener, app.router));
        let mut c = client::Client::new(addr, Ipv4Addr::new(127, 9, 0, 2));
        let mut sent = Vec::new();
        let get = async |c: &mut client::Client, uri: String, sent: &mut Vec<_>| {
            let r = c.get(&uri).await.unwrap();
            sent.push(("GET", uri, r.status));
        };
        get(&mut c, "/healthz".into(), &mut sent).await;
        for (uri, body) in [
            (
                "/api/register",
                json!({ "email": "new@example.test", "password": "secret" }),
            ),
            (
                "/api/password-reset",
                json!({ "email": "user3@mailroom.test" }),
            ),
        ] {
            let r = c.post(uri, &body).await.unwrap();
            sent.push(("POST", uri.to_owned(), r.status));
        }
        let r = c.login("user5@mailroom.test", "pass-5").await.unwrap();
        sent.push(("POST", "/api/login".into(), r.status));
        for id in [5, 6, 999] {
            get(&mut c, format!("/api/accounts/{id}/addressbook"), &mut sent).await;
        }
        for email in [contact.as_str(), "nobody@mailroom.test"] {
            let uri = format!("/api/recipients/lookup?email={}", client::encode(email));
            get(&mut c, uri, &mut sent).await;
        }
        // The account registered above: new.
        let r = c.login("new@example.test", "secret").await.unwrap();
        sent.push(("POST", "/api/login".into(), r.status));
        let uri = "/api/recipients/lookup?email=user9%40mailroom.test".to_owned();
        get(&mut c, uri, &mut sent).await;
        server.abort();
        sent
    });
    // Closing writes out what is queued: nothing is lost on a clean stop.
    let summary = log.close();
    assert!(summary.error.is_none(), "{:?}", summary.error);
    assert_eq!(summary.dropped, 0);
    assert_eq!(summary.written, sent.len() as u64);
    let text = std::fs::read_to_string(&path).expect("the log was written");
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), sent.len(), "{text}");
    for (line, (method, uri, status)) in lines.iter().zip(&sent) {
        assert_eq!(line["method"], *method, "{line}");
        assert_eq!(line["uri"], uri.as_str(), "{line}");
        assert_eq!(line["status"], *status, "{line}");
        assert_eq!(line["remote_addr"], "127.9.0.2", "{line}");
        assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(line.get("refused").is_none(), "{line}");
    }
    let statuses: Vec<u16> = sent.iter().map(|s| s.2).collect();
    assert_eq!(
        statuses,
        [200, 201, 202, 200, 200, 200, 404, 200, 404, 200, 200]
    );
    let field = |i: usize, k: &str| lines[i].get(k).cloned().unwrap_or(Value::Null);
    // No probe, no login.
    assert_eq!(field(0, "probe"), Value::Null);
    assert_eq!(field(0, "account"), Value::Null);
    // The JSON body's email, which the URI does not hold.
    for (i, probe, target, outcome) in [
        (1, "register", "new@example.test", "miss"),
        (2, "password-reset", "user3@mailroom.test", "hit"),
    ] {
        assert_eq!(field(i, "probe"), probe);
        assert_eq!(field(i, "target"), target);
        assert_eq!(field(i, "outcome"), outcome);
        assert_eq!(field(i, "account"), Value::Null);
    }
    // Logged in as account 5, seeded: established, with its session's hash.
    for (i, probe, outcome) in [
        (4, "addressbook", "hit"),
        (5, "addressbook", "hit"),
        (6, "addressbook", "miss"),
        (7, "lookup", "hit"),
        (8, "lookup", "miss"),
    ] {
        assert_eq!(field(i, "probe"), probe, "{}", lines[i]);
        assert_eq!(field(i, "outcome"), outcome, "{}", lines[i]);
        assert_eq!(field(i, "account"), "5", "{}", lines[i]);
        assert_eq!(field(i, "standing"), "established", "{}", lines[i]);
        assert!(
            field(i, "session")
                .as_str()
                .is_some_and(|s| s.starts_with('#'))
        );
        // A target in the URI is not repeated.
        assert_eq!(field(i, "target"), Value::Null);
    }
    // Its own address book is `own` (mailroom gives no `Owner`: book
    // `{id}` is account `{id}`'s, which the guard reads from the path).
    assert_eq!(field(4, "own"), true);
    assert_eq!(field(5, "own"), Value::Null);
    // The lookup of a contact in 5's book is Known; the other is not.
    assert_eq!(field(7, "known"), true);
    assert_eq!(field(8, "known"), Value::Null);
    // The account registered while it runs: new.
    assert_eq!(field(10, "account"), "51");
    assert_eq!(field(10, "standing"), "new");
}
