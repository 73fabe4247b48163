//! auth-kit-supabase against gotrue-stub on loopback: the client's
//! round trip, every mapped error (including 503 when Supabase is slow,
//! down or broken), JWKS caching and rotation, roles from `app_metadata`
//! only, the legacy HS256 and remote modes.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{Duration, Instant};

use auth_kit::config::Environment;
use auth_kit::error::ServerErrorDetail;
use auth_kit::extract::PermissionRequirement;
use auth_kit::extract::standard::Admin;
use auth_kit::policy::{AccessPolicy, PolicySpec, RoleSpec};
use auth_kit::token::InvalidToken;
use auth_kit::{ApiError, AuthError, Clock, OAuthError};
use auth_kit_supabase::{
    CurrentSupabaseUser, JwksTiming, LogoutScope, RequireSupabasePermission, RequireSupabaseRole,
    Session, SignUpOutcome, SupabaseAuth, SupabaseClient, SupabaseError, SupabaseSettings,
    SupabaseVerifier, VerifyMode,
};
use axum::extract::FromRef;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use gotrue_stub::{Fault, Kid, RateLimit, StubConfig, StubHandle};
use serde_json::{Value, json};

/// The roles and the permission these tests check; Supabase tokens carry
/// no scopes.
const POLICY: PolicySpec = PolicySpec {
    scopes: &[],
    permissions: &["items:delete"],
    roles: &[RoleSpec::new("user"), RoleSpec::holding_everything("admin")],
    signup_role: "user",
};

/// The permission `items:delete`.
struct DeleteItems;
impl PermissionRequirement for DeleteItems {
    const PERMISSION: &'static str = "items:delete";
    const SCOPES: &'static [&'static str] = &[];
}

const PASSWORD: &str = "correct horse battery";
const HS_SECRET: &str = "super-secret-jwt-token-with-at-least-32-characters-long";

/// A stub project and auth-kit configured for it.
struct Project {
    stub: StubHandle,
    settings: SupabaseSettings,
    client: SupabaseClient,
}

impl Project {
    async fn start(config: StubConfig, extra: &[(&str, &str)]) -> Self {
        let stub = gotrue_stub::spawn(config).await.unwrap();
        let mut pairs = vec![
            ("SUPABASE_URL".to_owned(), stub.url().to_owned()),
            ("SUPABASE_KEY".to_owned(), stub.anon_key().to_owned()),
        ];
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let settings = SupabaseSettings::from_env(&Environment::from_pairs(pairs)).unwrap();
        let client = SupabaseClient::new(&settings).unwrap();
        Self {
            stub,
            settings,
            client,
        }
    }

    async fn es256() -> Self {
        Self::start(StubConfig::es256(), &[]).await
    }

    /// A local verifier on a manual clock.
    fn verifier(&self, clock: &Clock) -> SupabaseVerifier {
        SupabaseVerifier::with_timing(
            &self.settings,
            self.client.clone(),
            JwksTiming::STANDARD,
            clock.clone(),
        )
    }

    async fn session(&self, email: &str) -> Session {
        match self.client.sign_up(email, PASSWORD, None).await.unwrap() {
            SignUpOutcome::Session(session) => session,
            other => panic!("expected a session, got {other:?}"),
        }
    }
}

fn token(session: &Session) -> String {
    session.access_token.expose().to_owned()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

/// Status and JSON body of an error answer.
async fn answer(response: Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn check_answer(response: impl IntoResponse, status: u16, code: &str) -> Value {
    let (got, body) = answer(response.into_response()).await;
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    body
}

fn invalid_token(e: AuthError) -> InvalidToken {
    match e {
        AuthError::InvalidToken(reason) => reason,
        other => panic!("expected invalid_token, got {other:?}"),
    }
}

#[tokio::test]
async fn round_trip_signup_login_user_refresh_logout() {
    let p = Project::es256().await;
    let data = json!({"name": "Ann"}).as_object().unwrap().clone();
    let first = match p
        .client
        .sign_up("ann@example.com", PASSWORD, Some(data))
        .await
        .unwrap()
    {
        SignUpOutcome::Session(s) => s,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.token_type, "bearer");
    assert_eq!(first.expires_in, 3600);
    assert_eq!(first.user.email.as_deref(), Some("ann@example.com"));
    assert_eq!(first.user.user_metadata["name"], "Ann");
    assert!(!format!("{first:?}").contains(first.access_token.expose()));

    let second = p
        .client
        .sign_in_with_password("ann@example.com", PASSWORD)
        .await
        .unwrap();
    let user = p.client.get_user(&token(&second)).await.unwrap();
    assert_eq!(user.id, first.user.id);
    assert_eq!(user.app_metadata["provider"], "email");

    let third = p
        .client
        .refresh_session(second.refresh_token.expose())
        .await
        .unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
    assert_eq!(p.client.get_user(&token(&third)).await.unwrap().id, user.id);

    p.client
        .logout(&token(&third), LogoutScope::Local)
        .await
        .unwrap();
    let after = p.client.get_user(&token(&third)).await.unwrap_err();
    assert_eq!(invalid_token(AuthError::from(after)), InvalidToken::Revoked);
    // The spent refresh token of that login is refused.
    let reused = p
        .client
        .refresh_session(second.refresh_token.expose())
        .await
        .unwrap_err();
    check_answer(OAuthError::from(reused), 400, "invalid_grant").await;
    // The other login is untouched by a local logout.
    assert!(p.client.get_user(&token(&first)).await.is_ok());
}

#[tokio::test]
async fn signup_without_autoconfirm_needs_confirmation() {
    let p = Project::start(StubConfig::es256().require_email_confirmation(), &[]).await;
    let user = match p
        .client
        .sign_up("bob@example.com", PASSWORD, None)
        .await
        .unwrap()
    {
        SignUpOutcome::ConfirmationRequired(user) => user,
        other => panic!("{other:?}"),
    };
    assert!(user.confirmation_sent_at.is_some());
    let refused = p
        .client
        .sign_in_with_password("bob@example.com", PASSWORD)
        .await
        .unwrap_err();
    let body = check_answer(OAuthError::from(refused), 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not confirmed")
    );
    p.stub.confirm_email("bob@example.com").unwrap();
    assert!(
        p.client
            .sign_in_with_password("bob@example.com", PASSWORD)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_mapped_error() {
    let p = Project::es256().await;
    let s = p.session("carol@example.com").await;

    // Email taken: 409 email_taken.
    let taken = p
        .client
        .sign_up("carol@example.com", PASSWORD, None)
        .await
        .unwrap_err();
    assert!(matches!(taken, SupabaseError::EmailTaken));
    check_answer(ApiError::from(taken), 409, "email_taken").await;

    // Weak password: 422 with the reasons.
    let weak = p
        .client
        .sign_up("dan@example.com", "abc", None)
        .await
        .unwrap_err();
    let body = check_answer(weak, 422, "validation_failed").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with("password: "), "{description}");
    assert!(description.contains("length"), "{description}");

    // Refused before any call: a bad email, an over-long password.
    let bad = p
        .client
        .sign_up("not-an-email", PASSWORD, None)
        .await
        .unwrap_err();
    let body = check_answer(bad, 422, "validation_failed").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("email: ")
    );
    let long = p
        .client
        .sign_up("dan@example.com", &"x".repeat(73), None)
        .await
        .unwrap_err();
    check_answer(long, 422, "validation_failed").await;

    // Bad credentials: one answer for a wrong password and an unknown user.
    let wrong = p
        .client
        .sign_in_with_password("carol@example.com", "wrong password")
        .await
        .unwrap_err();
    let unknown = p
        .client
        .sign_in_with_password("nobody@example.com", PASSWORD)
        .await
        .unwrap_err();
    let wrong = check_answer(OAuthError::from(wrong), 400, "invalid_grant").await;
    let unknown = check_answer(OAuthError::from(unknown), 400, "invalid_grant").await;
    assert_eq!(wrong, unknown);

    // Refresh tokens: unknown, spent.
    let unknown = p
        .client
        .refresh_session("abcdefghijklmnopqrstuv")
        .await
        .unwrap_err();
    check_answer(OAuthError::from(unknown), 400, "invalid_grant").await;
    p.client
        .refresh_session(s.refresh_token.expose())
        .await
        .unwrap();
    let spent = p
        .client
        .refresh_session(s.refresh_token.expose())
        .await
        .unwrap_err();
    check_answer(OAuthError::from(spent), 400, "invalid_grant").await;

    // Rate limited: 429 too_many_requests.
    p.stub.set_token_rate_limit(Some(RateLimit {
        requests: 1,
        per: Duration::from_secs(60),
    }));
    let _ = p
        .client
        .sign_in_with_password("carol@example.com", PASSWORD)
        .await;
    let limited = p
        .client
        .sign_in_with_password("carol@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(limited, SupabaseError::RateLimited { .. }));
    let response = OAuthError::from(limited).into_response();
    assert!(response.headers().contains_key("retry-after"));
    check_answer(response, 429, "too_many_requests").await;

    // Signups disabled: 403.
    p.stub.set_signup_disabled(true);
    let disabled = p
        .client
        .sign_up("erin@example.com", PASSWORD, None)
        .await
        .unwrap_err();
    check_answer(disabled, 403, "forbidden").await;
}

/// Asserts a 503 `supabase_unavailable` with a generic body and the cause
/// kept for the log.
async fn check_unavailable(response: Response) {
    assert!(response.extensions().get::<ServerErrorDetail>().is_some());
    let body = check_answer(response, 503, "supabase_unavailable").await;
    let text = body.to_string();
    assert!(!text.contains("upstream-debug-marker"), "{text}");
    assert!(!text.contains("html"), "{text}");
}

#[tokio::test]
async fn unavailable_supabase_is_503_within_the_timeout() {
    let p = Project::start(StubConfig::es256(), &[("SUPABASE_TIMEOUT_SECONDS", "1")]).await;
    let s = p.session("fay@example.com").await;
    let access = token(&s);
    let limit = Duration::from_millis(2500);

    p.stub.set_fault(Fault::Slow(Duration::from_secs(5))).await;
    let started = Instant::now();
    let slow = p
        .client
        .sign_in_with_password("fay@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    check_unavailable(OAuthError::from(slow).into_response()).await;
    let started = Instant::now();
    let slow = p.client.get_user(&access).await.unwrap_err();
    assert!(started.elapsed() < limit, "{:?}", started.elapsed());
    check_unavailable(AuthError::from(slow).into_response()).await;

    p.stub.set_fault(Fault::RefuseConnections).await;
    let started = Instant::now();
    let down = p
        .client
        .sign_in_with_password("fay@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(started.elapsed() < limit);
    check_unavailable(OAuthError::from(down).into_response()).await;
    let down = p.client.get_user(&access).await.unwrap_err();
    check_unavailable(AuthError::from(down).into_response()).await;

    p.stub.set_fault(Fault::ServerErrorHtml).await;
    let html = p
        .client
        .sign_up("gus@example.com", PASSWORD, None)
        .await
        .unwrap_err();
    check_unavailable(html.into_response()).await;

    p.stub.set_fault(Fault::DropConnection).await;
    let dropped = p
        .client
        .sign_in_with_password("fay@example.com", PASSWORD)
        .await
        .unwrap_err();
    check_unavailable(OAuthError::from(dropped).into_response()).await;
    let dropped = p
        .client
        .logout(&access, LogoutScope::Local)
        .await
        .unwrap_err();
    check_unavailable(ApiError::from(dropped).into_response()).await;

    p.stub.set_fault(Fault::NotJson).await;
    let plain = p.client.get_user(&access).await.unwrap_err();
    check_unavailable(AuthError::from(plain).into_response()).await;

    // Without a cached key set, local verification cannot work either.
    p.stub.set_fault(Fault::RefuseConnections).await;
    let verifier = p.verifier(&Clock::System);
    let e = verifier.verify(&access).await.unwrap_err();
    check_unavailable(e.into_response()).await;

    p.stub.set_fault(Fault::None).await;
    assert!(p.client.get_user(&access).await.is_ok());

    // https:// to a server that does not speak TLS: the handshake (rustls
    // with ring, configured by the client itself) fails, quickly.
    let tls = SupabaseSettings::from_env(&Environment::from_pairs([
        ("SUPABASE_URL", format!("https://{}", p.stub.addr())),
        ("SUPABASE_KEY", p.stub.anon_key().to_owned()),
        ("SUPABASE_TIMEOUT_SECONDS", "1".to_owned()),
    ]))
    .unwrap();
    let started = Instant::now();
    let e = SupabaseClient::new(&tls)
        .unwrap()
        .get_user(&access)
        .await
        .unwrap_err();
    assert!(started.elapsed() < limit);
    check_unavailable(AuthError::from(e).into_response()).await;
}

#[tokio::test]
async fn key_rotation_needs_exactly_one_refetch() {
    let p = Project::es256().await;
    let clock = Clock::manual(Clock::System.now());
    let verifier = p.verifier(&clock);
    let s = p.session("hal@example.com").await;
    let old = token(&s);
    verifier.verify(&old).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 1);

    let new_kid = p.stub.rotate_signing_key().unwrap();
    let new = token(
        &p.client
            .refresh_session(s.refresh_token.expose())
            .await
            .unwrap(),
    );
    assert_eq!(header_of(&new)["kid"], new_kid.as_str());
    // Within 30 s of the last fetch an unknown kid is refused, unfetched.
    let early = verifier.verify(&new).await.unwrap_err();
    assert_eq!(invalid_token(early), InvalidToken::UnknownKey);
    assert_eq!(p.stub.jwks_fetches(), 1);

    clock.advance(31);
    let claims = verifier.verify(&new).await.unwrap();
    assert_eq!(claims.sub, s.user.id);
    assert_eq!(p.stub.jwks_fetches(), 2, "exactly one refetch");
    // Both keys are now known: no further fetches.
    verifier.verify(&new).await.unwrap();
    verifier.verify(&old).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 2);

    // After 10 minutes the cache is stale: still used, and refreshed once
    // in the background.
    clock.advance(600);
    verifier.verify(&new).await.unwrap();
    verifier.verify(&new).await.unwrap();
    wait_for_fetches(&verifier, &p.stub, 3).await;
    verifier.verify(&new).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 3);
}

#[tokio::test]
async fn hundred_concurrent_unknown_kids_cause_one_fetch() {
    let p = Project::es256().await;
    let clock = Clock::manual(Clock::System.now());
    let verifier = p.verifier(&clock);
    let s = p.session("ida@example.com").await;
    verifier.verify(&token(&s)).await.unwrap();
    p.stub.rotate_signing_key().unwrap();
    let new = token(
        &p.client
            .refresh_session(s.refresh_token.expose())
            .await
            .unwrap(),
    );
    clock.advance(31);
    // A slow JWKS answer, so that all 100 arrive while the fetch is out.
    p.stub
        .set_fault(Fault::Slow(Duration::from_millis(300)))
        .await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let verifier = verifier.clone();
        let new = new.clone();
        tasks.spawn(async move { verifier.verify(&new).await.map(|c| c.sub) });
    }
    let mut verified = 0;
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.unwrap().unwrap(), s.user.id);
        verified += 1;
    }
    assert_eq!(verified, 100);
    assert_eq!(
        p.stub.jwks_fetches(),
        2,
        "1 initial fetch + 1 refetch, not 100"
    );
}

#[tokio::test]
async fn a_random_kid_causes_no_refetch_storm() {
    let p = Project::es256().await;
    let clock = Clock::manual(Clock::System.now());
    let verifier = p.verifier(&clock);
    let s = p.session("jo@example.com").await;
    verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 1);
    let forged = p
        .stub
        .sign_claims(
            Kid::Named("kid-the-jwks-never-lists".into()),
            &claims_of(&token(&s)),
        )
        .unwrap();

    clock.advance(31);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let verifier = verifier.clone();
        let forged = forged.clone();
        tasks.spawn(async move { verifier.verify(&forged).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(
            invalid_token(result.unwrap().unwrap_err()),
            InvalidToken::UnknownKey
        );
    }
    assert_eq!(p.stub.jwks_fetches(), 2, "one refetch for the whole window");
    for _ in 0..20 {
        clock.advance(1);
        assert!(verifier.verify(&forged).await.is_err());
    }
    assert_eq!(p.stub.jwks_fetches(), 2, "at most one fetch per 30 s");
    clock.advance(30);
    assert!(verifier.verify(&forged).await.is_err());
    assert!(verifier.verify(&forged).await.is_err());
    assert_eq!(p.stub.jwks_fetches(), 3);
    // The genuine token still verifies throughout.
    verifier.verify(&token(&s)).await.unwrap();
}

#[tokio::test]
async fn a_failed_refetch_keeps_the_last_good_keys() {
    let p = Project::es256().await;
    let clock = Clock::manual(Clock::System.now());
    let verifier = p.verifier(&clock);
    assert_eq!(verifier.prefetch_keys().await.unwrap(), 1);
    let s = p.session("kay@example.com").await;
    p.stub.set_fault(Fault::RefuseConnections).await;
    clock.advance(700); // the cache is stale: a refetch is due and fails (in the background)
    let claims = verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(claims.sub, s.user.id);
    verifier.settle_key_refresh().await;
    p.stub.set_fault(Fault::None).await;
    verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 1, "no new attempt within 30 s");
    clock.advance(31);
    verifier.verify(&token(&s)).await.unwrap();
    wait_for_fetches(&verifier, &p.stub, 2).await;
}

/// Waits for the background refresh of a stale key set, then checks the
/// stub has answered `n` JWKS fetches.
async fn wait_for_fetches(verifier: &SupabaseVerifier, stub: &StubHandle, n: u64) {
    verifier.settle_key_refresh().await;
    assert_eq!(stub.jwks_fetches(), n);
}

/// Stale-while-revalidate: while the key set is stale and Supabase answers
/// slowly, tokens with a known kid are verified from the cached set at once;
/// one background refresh goes out, and only a kid never seen waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_kids_do_not_wait_for_a_slow_refresh() {
    let p = Project::es256().await;
    let clock = Clock::manual(Clock::System.now());
    let verifier = p.verifier(&clock);
    let s = p.session("lou@example.com").await;
    let known = token(&s);
    verifier.verify(&known).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 1);
    let new_kid = p.stub.rotate_signing_key().unwrap();
    let unseen = token(
        &p.client
            .refresh_session(s.refresh_token.expose())
            .await
            .unwrap(),
    );
    assert_eq!(header_of(&unseen)["kid"], new_kid.as_str());

    // Ten minutes on, the cached set is stale; Supabase now takes 3 s.
    p.stub.set_fault(Fault::Slow(Duration::from_secs(3))).await;
    clock.advance(601);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (verifier, known) = (verifier.clone(), known.clone());
        tasks.spawn(async move {
            tokio::time::timeout(Duration::from_secs(1), verifier.verify(&known)).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        let verified = result.unwrap().expect("a known kid waited for the refresh");
        assert_eq!(verified.unwrap().sub, s.user.id);
    }
    // The never-seen kid waits for that one refresh, which brings its key.
    let claims = verifier.verify(&unseen).await.unwrap();
    assert_eq!(claims.sub, s.user.id);
    wait_for_fetches(&verifier, &p.stub, 2).await;
    p.stub.set_fault(Fault::None).await;
    verifier.verify(&unseen).await.unwrap();
    assert_eq!(p.stub.jwks_fetches(), 2, "one refresh for all of them");
}

#[tokio::test]
async fn local_verification_checks_the_claims() {
    let p = Project::es256().await;
    let clock = Clock::System;
    let verifier = p.verifier(&clock);
    let s = p.session("lee@example.com").await;
    let claims = verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(claims.email.as_deref(), Some("lee@example.com"));
    assert_eq!(claims.role.as_deref(), Some("authenticated"));
    assert_eq!(claims.aal.as_deref(), Some("aal1"));
    assert!(claims.session_id.is_some());
    assert_eq!(verifier.mode(), VerifyMode::Local);

    let base = claims_of(&token(&s));
    let now = Clock::System.now();
    let variant = |change: &dyn Fn(&mut Value)| {
        let mut c = base.clone();
        change(&mut c);
        p.stub.sign_claims(Kid::Current, &c).unwrap()
    };
    let check = |token: String, expected: Option<InvalidToken>| {
        let verifier = verifier.clone();
        async move {
            let got = verifier.verify(&token).await.err().map(invalid_token);
            assert_eq!(got, expected);
        }
    };
    check(
        variant(&|c| c["exp"] = json!(now - 120)),
        Some(InvalidToken::Expired),
    )
    .await;
    // Within the 30 s leeway.
    check(variant(&|c| c["exp"] = json!(now - 10)), None).await;
    check(
        variant(&|c| c["iss"] = json!("https://elsewhere.supabase.co/auth/v1")),
        Some(InvalidToken::WrongIssuerOrAudience),
    )
    .await;
    check(
        variant(&|c| c["aud"] = json!("anon")),
        Some(InvalidToken::WrongIssuerOrAudience),
    )
    .await;
    check(
        variant(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }),
        Some(InvalidToken::InvalidClaims),
    )
    .await;
    let no_kid = p.stub.sign_claims(Kid::Omitted, &base).unwrap();
    check(no_kid, Some(InvalidToken::UnknownKey)).await;
    // The project's API key is a valid JWT of the project, not a user's
    // token: no `sub`, another issuer, no audience.
    check(
        p.stub.anon_key().to_owned(),
        Some(InvalidToken::InvalidClaims),
    )
    .await;
    check("not.a.token".to_owned(), Some(InvalidToken::Malformed)).await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let unsigned = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&base.to_string())
    );
    check(unsigned, Some(InvalidToken::WrongAlgorithm)).await;
    // An HS256 token in a project that publishes keys: refused, not asked.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &base,
        &jsonwebtoken::EncodingKey::from_secret(HS_SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    check(hs, Some(InvalidToken::WrongAlgorithm)).await;
}

#[derive(Clone, FromRef)]
struct AppState {
    auth: SupabaseAuth,
}

/// A service with the Supabase extractors, on loopback.
async fn serve(auth: SupabaseAuth) -> String {
    let app = Router::new()
        .route(
            "/users/me",
            get(|c: CurrentSupabaseUser| async move { Json(c.user.profile()) }),
        )
        .route(
            "/maybe",
            get(|c: Option<CurrentSupabaseUser>| async move {
                c.map_or_else(|| "anonymous".to_owned(), |c| c.user.id().to_owned())
            }),
        )
        .route(
            "/admin",
            get(|_: RequireSupabaseRole<Admin>| async { "admin" }),
        )
        .route(
            "/items/delete",
            get(|_: RequireSupabasePermission<DeleteItems>| async { "deleted" }),
        )
        .with_state(AppState { auth });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Option<String>, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            response.status().as_u16(),
            challenge,
            response.text().await.unwrap(),
        )
    }
}

#[tokio::test]
async fn roles_come_from_app_metadata_never_user_metadata() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let p = Project::es256().await;
    let verifier = p.verifier(&Clock::System);
    let http = Http {
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: serve(SupabaseAuth::new(
            verifier,
            AccessPolicy::new(&POLICY).unwrap(),
        ))
        .await,
    };

    // Users write user_metadata themselves, at signup for instance.
    let data = json!({"role": "admin", "permissions": ["items:delete"]});
    let mallory = match p
        .client
        .sign_up("mallory@example.com", PASSWORD, data.as_object().cloned())
        .await
        .unwrap()
    {
        SignUpOutcome::Session(s) => s,
        other => panic!("{other:?}"),
    };
    let t = token(&mallory);
    let (status, _, body) = http.get("/users/me", Some(&t)).await;
    assert_eq!(status, 200);
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["role"], "user");
    assert_eq!(me["user_metadata"]["role"], "admin");
    assert_eq!(me["id"], mallory.user.id.as_str());
    assert_eq!(http.get("/admin", Some(&t)).await.0, 403);
    let (status, _, body) = http.get("/items/delete", Some(&t)).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("Permission 'items:delete' required"),
        "{body}"
    );

    // The same keys in app_metadata (set by an admin) do grant.
    p.stub
        .set_app_metadata(&mallory.user.id, json!({"role": "admin"}))
        .unwrap();
    let promoted = token(
        &p.client
            .refresh_session(mallory.refresh_token.expose())
            .await
            .unwrap(),
    );
    assert_eq!(http.get("/admin", Some(&promoted)).await.0, 200);
    assert_eq!(http.get("/items/delete", Some(&promoted)).await.0, 200);

    // A permission alone grants that permission, not the role.
    let ned = p.session("ned@example.com").await;
    p.stub
        .set_app_metadata(&ned.user.id, json!({"permissions": ["items:delete"]}))
        .unwrap();
    let ned_token = token(
        &p.client
            .refresh_session(ned.refresh_token.expose())
            .await
            .unwrap(),
    );
    assert_eq!(http.get("/items/delete", Some(&ned_token)).await.0, 200);
    assert_eq!(http.get("/admin", Some(&ned_token)).await.0, 403);

    // Bearer failures in the contract's shape.
    let (status, challenge, _) = http.get("/users/me", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    let (status, challenge, _) = http.get("/users/me", Some("garbage")).await;
    assert_eq!(status, 401);
    assert!(
        challenge
            .unwrap()
            .starts_with(r#"Bearer error="invalid_token""#)
    );
    assert_eq!(http.get("/maybe", None).await.2, "anonymous");
    assert_eq!(http.get("/maybe", Some("garbage")).await.0, 401);
    assert_eq!(http.get("/maybe", Some(&ned_token)).await.2, ned.user.id);
}

#[tokio::test]
async fn legacy_hs256_project_with_its_secret() {
    let p = Project::start(
        StubConfig::hs256(HS_SECRET),
        &[("SUPABASE_JWT_SECRET", HS_SECRET)],
    )
    .await;
    let verifier = p.verifier(&Clock::System);
    let s = p.session("olga@example.com").await;
    assert_eq!(header_of(&token(&s))["alg"], "HS256");
    let claims = verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(claims.sub, s.user.id);
    assert_eq!(
        p.stub.jwks_fetches(),
        0,
        "HS256 with the secret needs no JWKS"
    );

    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims_of(&token(&s)),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!").unwrap(),
    )
    .unwrap();
    assert_eq!(
        invalid_token(verifier.verify(&forged).await.unwrap_err()),
        InvalidToken::BadSignature
    );
    let mut expired = claims_of(&token(&s));
    expired["exp"] = json!(Clock::System.now() - 3600);
    let expired = p.stub.sign_claims(Kid::Current, &expired).unwrap();
    assert_eq!(
        invalid_token(verifier.verify(&expired).await.unwrap_err()),
        InvalidToken::Expired
    );
    // The anon key is signed with the same secret, but it is no user token.
    assert!(verifier.verify(p.stub.anon_key()).await.is_err());
}

#[tokio::test]
async fn hs256_project_without_its_secret_is_asked_remotely() {
    let p = Project::start(StubConfig::hs256(HS_SECRET), &[]).await;
    let verifier = p.verifier(&Clock::System);
    let s = p.session("pia@example.com").await;
    let claims = verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(claims.sub, s.user.id);
    assert_eq!(p.stub.jwks_fetches(), 1, "the JWKS told: an HS256 project");
    p.client
        .logout(&token(&s), LogoutScope::Global)
        .await
        .unwrap();
    assert_eq!(
        invalid_token(verifier.verify(&token(&s)).await.unwrap_err()),
        InvalidToken::Revoked
    );
}

#[tokio::test]
async fn remote_mode_revokes_at_once() {
    let p = Project::start(StubConfig::es256(), &[("SUPABASE_VERIFY", "remote")]).await;
    let verifier = SupabaseVerifier::new(&p.settings, p.client.clone());
    assert_eq!(verifier.mode(), VerifyMode::Remote);
    let s = p.session("quinn@example.com").await;
    let claims = verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(claims.sub, s.user.id);
    assert_eq!(claims.email.as_deref(), Some("quinn@example.com"));
    p.stub
        .set_app_metadata(&s.user.id, json!({"role": "admin"}))
        .unwrap();
    // Remote answers carry today's app_metadata, not the token's.
    let claims = verifier.verify(&token(&s)).await.unwrap();
    assert_eq!(claims.app_metadata["role"], "admin");

    p.client
        .logout(&token(&s), LogoutScope::Global)
        .await
        .unwrap();
    assert_eq!(
        invalid_token(verifier.verify(&token(&s)).await.unwrap_err()),
        InvalidToken::Revoked
    );
    assert!(verifier.verify("garbage").await.is_err());
    assert_eq!(p.stub.jwks_fetches(), 0);
}
