//! Password recovery and email confirmation through Supabase Auth, over real
//! HTTP on loopback against gotrue-stub, reading the mails from the stub's
//! outbox folder as a user would read their inbox.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use auth_kit::testing::{TestDatabase, contract};
use common::{TestServer, password_of};
use gotrue_stub::{Fault, RateLimit, StubConfig};
use serde_json::{Value, json};

/// The service in front of a stub that writes its mails into a folder of
/// `dir`.
async fn server(dir: &Path, stub: StubConfig) -> TestServer {
    TestServer::start_with(TestDatabase::sqlite(), stub.outbox(dir.join("outbox")), &[]).await
}

/// The `.eml` files in the stub's outbox, oldest first.
fn outbox(s: &TestServer) -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir(s.stub.outbox_dir().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect()
}

/// The value of the mail's `<prefix>` line.
fn line<'a>(mail: &'a str, prefix: &str) -> &'a str {
    mail.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {mail}"))
        .trim()
}

/// A call straight to the stub's Supabase Auth API (what a browser or a
/// mobile app does with the link or code from the mail).
async fn supabase(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("{}/auth/v1{path}", s.stub.url()),
        )
        .header("apikey", s.stub.anon_key())
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn forgot_password(s: &TestServer, email: &str) -> common::Reply {
    s.json(
        "POST",
        "/auth/forgot-password",
        None,
        json!({ "email": email }),
    )
    .await
}

#[tokio::test]
async fn forgot_password_answers_alike_and_the_mailed_token_resets_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), StubConfig::es256()).await;
    s.signup("ann@example.com", json!({})).await;

    let known = forgot_password(&s, "ann@example.com").await;
    let unknown = forgot_password(&s, "nobody@example.com").await;
    assert_eq!(known.status, 202, "{known:?}");
    assert_eq!(
        (unknown.status, &unknown.body),
        (known.status, &known.body),
        "the same answer whether or not the address has an account"
    );
    assert!(known.body["message"].is_string());

    let mails = outbox(&s);
    assert_eq!(mails.len(), 1, "one mail, to the registered address only");
    assert!(mails[0].contains("\r\nTo: ann@example.com\r\n"));
    let token_hash = line(&mails[0], "token_hash: ");

    // Within a minute Supabase declines to mail again (429
    // over_email_send_rate_limit, only ever for a registered address): the
    // service still answers as for anyone.
    let again = forgot_password(&s, "ann@example.com").await;
    assert_eq!((again.status, &again.body), (202, &known.body), "{again:?}");
    assert_eq!(outbox(&s).len(), 1);

    // The user follows the mail: the token signs them in at Supabase, once,
    // and they choose a new password there.
    let (status, session) = supabase(
        &s,
        "POST",
        "/verify",
        None,
        json!({"type": "recovery", "token_hash": token_hash}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    let access = session["access_token"].as_str().unwrap();
    let (status, _) = supabase(
        &s,
        "POST",
        "/verify",
        None,
        json!({"type": "recovery", "token_hash": token_hash}),
    )
    .await;
    assert_eq!(status, 403, "a token works once");
    let (status, user) = supabase(
        &s,
        "PUT",
        "/user",
        Some(access),
        json!({"password": "a brand new password"}),
    )
    .await;
    assert_eq!(status, 200, "{user}");

    let old = s
        .login("ann@example.com", &password_of("ann@example.com"))
        .await;
    assert_eq!((old.status, old.error().0), (400, "invalid_grant"));
    let new = s.login("ann@example.com", "a brand new password").await;
    assert_eq!(new.status, 200, "{new:?}");
}

#[tokio::test]
async fn forgot_password_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), StubConfig::es256()).await;
    let doc = s.get("/openapi.json", None).await.body;
    let operation = &doc["paths"]["/auth/forgot-password"]["post"];
    for status in ["202", "400", "403", "413", "415", "422", "429", "503"] {
        assert!(
            operation["responses"][status].is_object(),
            "{status}: {operation}"
        );
    }
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"]["$ref"];
    assert!(
        schema.as_str().unwrap().ends_with("/ForgotPasswordRequest"),
        "{operation}"
    );
    for body in [
        json!({"email": "not-an-email"}),
        json!({"email": ""}),
        json!({}),
    ] {
        let reply = s
            .json("POST", "/auth/forgot-password", None, body.clone())
            .await;
        assert_eq!(
            (reply.status, reply.error().0),
            (422, "validation_failed"),
            "{body}: {reply:?}"
        );
        assert!(reply.error().1.starts_with("email"), "{reply:?}");
    }
    let long = format!("{}@example.com", "a".repeat(250));
    assert_eq!(forgot_password(&s, &long).await.status, 422);
    contract::assert_json_bodies_refused(&s, "POST", "/auth/forgot-password", None).await;
    let form = s
        .form("/auth/forgot-password", "email=ann@example.com")
        .await;
    assert_eq!(form.status, 415);
    assert!(outbox(&s).is_empty());

    // Supabase's per-client limit is the caller's: 429 with Retry-After.
    s.stub.set_recover_rate_limit(Some(RateLimit {
        requests: 1,
        per: Duration::from_secs(60),
    }));
    assert_eq!(forgot_password(&s, "bo@example.com").await.status, 202);
    let limited = forgot_password(&s, "bo@example.com").await;
    assert_eq!(
        (limited.status, limited.error().0),
        (429, "too_many_requests"),
        "{limited:?}"
    );
    assert!(limited.header("retry-after").is_some(), "{limited:?}");
}

#[tokio::test]
async fn forgot_password_when_supabase_is_down_is_503_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Eleven requests for one address: above the default per-address limit.
    let s = TestServer::start_with(
        TestDatabase::sqlite(),
        StubConfig::es256().outbox(dir.path().join("outbox")),
        &[("MAIL_MAX_PER_ADDRESS", "100")],
    )
    .await;
    s.signup("cy@example.com", json!({})).await;
    for fault in [
        Fault::Slow(Duration::from_secs(10)),
        Fault::ServerErrorHtml,
        Fault::NotJson,
        Fault::DropConnection,
        Fault::RefuseConnections,
    ] {
        s.stub.set_fault(fault).await;
        for email in ["cy@example.com", "nobody@example.com"] {
            let started = Instant::now();
            let reply = forgot_password(&s, email).await;
            let took = started.elapsed();
            assert_eq!(
                (reply.status, reply.error().0),
                (503, "supabase_unavailable"),
                "{fault:?} {email}: {reply:?}"
            );
            assert!(
                took < Duration::from_secs(4),
                "{fault:?} took {took:?} with a 2 s timeout"
            );
            let text = reply.body.to_string();
            assert!(
                !text.contains("<html") && !text.contains("upstream-debug-marker"),
                "{fault:?}: the upstream body leaked: {text}"
            );
        }
    }
    s.stub.set_fault(Fault::None).await;
    assert_eq!(forgot_password(&s, "cy@example.com").await.status, 202);
}

#[tokio::test]
async fn signup_confirmation_by_mail_when_autoconfirm_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), StubConfig::es256().require_email_confirmation()).await;
    let created = s
        .post_signup("dee@example.com", &password_of("dee@example.com"))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["session"], Value::Null);
    let early = s
        .login("dee@example.com", &password_of("dee@example.com"))
        .await;
    assert_eq!((early.status, early.error().0), (400, "invalid_grant"));
    assert!(early.error().1.contains("not confirmed"), "{early:?}");

    let mails = outbox(&s);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("\r\nSubject: Confirm your email address\r\n"));
    let (status, session) = supabase(
        &s,
        "POST",
        "/verify",
        None,
        json!({"type": "signup", "email": "dee@example.com", "token": line(&mails[0], "token: ")}),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert!(session["user"]["email_confirmed_at"].is_string());
    assert!(!s.token("dee@example.com").await.is_empty());
}

/// The service counts recovery requests itself, per address and per client
/// address, before Supabase (which sees only this service's address).
#[tokio::test]
async fn forgot_password_is_limited_per_address_before_supabase() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(
        TestDatabase::sqlite(),
        StubConfig::es256().outbox(dir.path().join("outbox")),
        &[("MAIL_MAX_PER_ADDRESS", "2")],
    )
    .await;
    for _ in 0..2 {
        assert_eq!(forgot_password(&s, "di@example.com").await.status, 202);
    }
    let limited = forgot_password(&s, "DI@example.com").await;
    contract::assert_too_many_requests(&limited, 3590..=3600);
    assert_eq!(forgot_password(&s, "ed@example.com").await.status, 202);
}
