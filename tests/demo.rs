//! The demo, short: every scenario of `examples/demo.rs` at its quick size,
//! over real HTTP on loopback, so CI keeps the README's first command
//! working. And the mailroom's interface, which outside tools drive.
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
