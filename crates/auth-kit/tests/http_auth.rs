//! The extractors behind a real axum server on loopback: the exact 401/403
//! statuses, `WWW-Authenticate` challenges and JSON bodies of docs/contract.md.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "common/policy.rs"]
mod policy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use auth_kit::extract::standard::Admin;
use auth_kit::extract::{
    Authenticator, CurrentUser, RequirePermission, RequireRole, RequireScopes, ScopeRequirement,
};
use auth_kit::http::ResourceId;
use auth_kit::store::{NewUser, RefreshTokenHash, Store, User, UserUpdate};
use auth_kit::testing::TestDatabase;
use auth_kit::token::{
    AccessGrant, AccessTokenVerifier, ClaimRules, Leeway, SigningKeys, TokenIssuer,
};
use auth_kit::{Clock, ScopeMode};
use axum::Router;
use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use policy::{DeleteItems, ReadItems};
use serde_json::{Value, json};

#[derive(Clone, FromRef)]
struct AppState {
    auth: Authenticator<User>,
}

struct ItemsAndWrite;
impl ScopeRequirement for ItemsAndWrite {
    const SCOPES: &'static [&'static str] = &["items", "items:write"];
}

fn app(auth: Authenticator<User>) -> Router {
    Router::new()
        .route("/public", get(|| async { "hello" }))
        .route("/me", get(|c: CurrentUser| async move { c.user.username }))
        .route(
            "/maybe",
            get(|c: Option<CurrentUser>| async move {
                c.map_or_else(|| "anonymous".to_owned(), |c| c.user.username)
            }),
        )
        .route(
            "/items",
            get(|c: RequireScopes<ReadItems>| async move { c.user.username }),
        )
        .route(
            "/both",
            get(|c: RequireScopes<ItemsAndWrite>| async move { c.user.username }),
        )
        .route(
            "/items/{id}",
            delete(
                |_: RequirePermission<DeleteItems>, ResourceId(id): ResourceId| async move {
                    if id == 1 {
                        Ok(StatusCode::NO_CONTENT)
                    } else {
                        Err(auth_kit::ApiError::not_found("Item not found"))
                    }
                },
            ),
        )
        .route(
            "/admin",
            get(|c: RequireRole<Admin>| async move { c.user.username }),
        )
        .fallback(auth_kit::http::not_found)
        .method_not_allowed_fallback(auth_kit::http::method_not_allowed)
        .with_state(AppState { auth })
}

struct Fixture {
    base: String,
    client: reqwest::Client,
    issuer: TokenIssuer,
    expired_issuer: TokenIssuer,
    foreign_issuer: TokenIssuer,
    store: Store,
    _db: TestDatabase,
}

impl Fixture {
    async fn start() -> Self {
        Self::start_with(ScopeMode::Scoped).await
    }

    async fn start_with(scopes: ScopeMode) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = TestDatabase::sqlite();
        let store = Store::connect(db.url()).await.unwrap();
        let keys = Arc::new(SigningKeys::random_hmac());
        let rules = ClaimRules::new("svc", "svc", Leeway::seconds(30).unwrap());
        let issuer = TokenIssuer::new(
            keys.clone(),
            rules.clone(),
            Duration::from_secs(600),
            Clock::System,
        );
        let expired_issuer = TokenIssuer::new(
            keys.clone(),
            rules.clone(),
            Duration::from_secs(600),
            Clock::manual(Clock::System.now() - 3600),
        );
        let foreign_issuer = TokenIssuer::new(
            keys.clone(),
            ClaimRules::new("other", "other", Leeway::seconds(0).unwrap()),
            Duration::from_secs(600),
            Clock::System,
        );
        let auth = Authenticator::new(
            AccessTokenVerifier::new(&keys, rules),
            store.clone(),
            policy::policy(),
            scopes,
        );
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app(auth)).await.unwrap() });
        Self {
            base,
            client: reqwest::Client::new(),
            issuer,
            expired_issuer,
            foreign_issuer,
            store,
            _db: db,
        }
    }

    async fn user(&self, name: &str, role: &str) -> User {
        let new = NewUser {
            username: name,
            email: None,
            full_name: None,
            password_hash: "x",
            role,
        };
        self.store.create_user(&new).await.unwrap()
    }

    async fn login(&self, user: &User) -> String {
        self.store
            .start_login(
                user.id,
                "x",
                "",
                &RefreshTokenHash::of(name_of(user)),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
            .unwrap()
    }

    fn token(&self, user: &User, scope: &str, login: Option<&str>) -> String {
        self.issuer
            .issue(&AccessGrant {
                user_id: user.id,
                scope: Some(scope),
                login_id: login,
            })
            .unwrap()
            .into_string()
    }

    /// (status, WWW-Authenticate, body)
    async fn call(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
    ) -> (u16, Option<String>, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, challenge, body)
    }
}

fn name_of(user: &User) -> &str {
    &user.username
}

fn error(code: &str, description: &str) -> Value {
    json!({"error": code, "error_description": description})
}

fn invalid_token(description: &str) -> Option<String> {
    Some(format!(
        r#"Bearer error="invalid_token", error_description="{description}""#
    ))
}

#[tokio::test]
async fn unauthenticated_and_invalid_tokens_get_401() {
    let f = Fixture::start().await;
    let ann = f.user("ann", "user").await;
    let bearer = |t: &str| format!("Bearer {t}");

    assert_eq!(f.call("GET", "/public", None).await.0, 200);
    let missing = (
        401,
        Some("Bearer".to_owned()),
        error("unauthorized", "Authentication required"),
    );
    assert_eq!(f.call("GET", "/me", None).await, missing);
    assert_eq!(
        f.call("GET", "/me", Some("Basic YW5uOnB3")).await,
        missing,
        "another scheme is no credentials"
    );
    assert_eq!(f.call("GET", "/maybe", None).await.2, json!("anonymous"));

    for (auth, description) in [
        (bearer("garbage"), "The access token is malformed"),
        ("Bearer ".to_owned(), "The access token is malformed"),
        (
            bearer(&"a".repeat(9 * 1024)),
            "The access token is too long",
        ),
        (
            bearer(
                &f.expired_issuer
                    .issue(&AccessGrant {
                        user_id: ann.id,
                        scope: None,
                        login_id: None,
                    })
                    .unwrap()
                    .into_string(),
            ),
            "The access token expired",
        ),
        (
            bearer(
                &f.foreign_issuer
                    .issue(&AccessGrant {
                        user_id: ann.id,
                        scope: None,
                        login_id: None,
                    })
                    .unwrap()
                    .into_string(),
            ),
            "The access token was issued for another service",
        ),
        (
            bearer(&f.token(&ann, "me", Some("no-such-login"))),
            "The access token has been revoked",
        ),
        (
            // Another service's key: its kid names no key of ours.
            bearer(&signed_with_another_key(ann.id)),
            "The access token was signed with an unknown key",
        ),
    ] {
        let (status, challenge, body) = f.call("GET", "/me", Some(&auth)).await;
        assert_eq!(
            (status, challenge, body),
            (
                401,
                invalid_token(description),
                error("invalid_token", description)
            ),
            "{description}"
        );
        // A bad token is still refused where the token is optional.
        assert_eq!(f.call("GET", "/maybe", Some(&auth)).await.0, 401);
    }

    // A deleted user's token and a logged-out login's token stop working at once.
    let login = f.login(&ann).await;
    let token = f.token(&ann, "me", Some(&login));
    assert_eq!(
        f.call("GET", "/me", Some(&bearer(&token))).await.2,
        json!("ann")
    );
    assert_eq!(
        f.call("GET", "/me", Some(&format!("bEaReR {token}")))
            .await
            .0,
        200,
        "the scheme ignores case"
    );
    f.store.revoke_login(&login, Some(ann.id)).await.unwrap();
    assert_eq!(
        f.call("GET", "/me", Some(&bearer(&token))).await.1,
        invalid_token("The access token has been revoked")
    );
    let unscoped = f.token(&ann, "", None);
    f.store.delete_user(ann.id).await.unwrap();
    assert_eq!(
        f.call("GET", "/me", Some(&bearer(&unscoped))).await.1,
        invalid_token("The access token's user does not exist")
    );
}

#[tokio::test]
async fn scopes_permissions_and_roles_get_403() {
    let f = Fixture::start().await;
    let bob = f.user("bob", "user").await;
    let root = f.user("root", "admin").await;
    let bearer = |t: String| format!("Bearer {t}");

    let me_only = bearer(f.token(&bob, "me", None));
    assert_eq!(
        f.call("GET", "/items", Some(&me_only)).await,
        (
            403,
            Some(r#"Bearer error="insufficient_scope", scope="items", error_description="The access token lacks the scope 'items'""#.to_owned()),
            error("insufficient_scope", "The access token lacks the scope 'items'")
        )
    );
    let items_only = bearer(f.token(&bob, "me items", None));
    assert_eq!(f.call("GET", "/items", Some(&items_only)).await.0, 200);
    let (status, challenge, _) = f.call("GET", "/both", Some(&items_only)).await;
    assert_eq!(status, 403);
    assert!(
        challenge.unwrap().contains(r#"scope="items items:write""#),
        "the challenge lists every scope the route needs"
    );
    // A demoted user's token loses the scopes the new role lacks, at once.
    f.store
        .update_user(
            bob.id,
            &UserUpdate {
                role: Some("guest".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.call("GET", "/items", Some(&items_only)).await.0, 403);
    f.store
        .update_user(
            bob.id,
            &UserUpdate {
                role: Some("user".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(f.call("GET", "/items", Some(&items_only)).await.0, 200);
    // A token without any scope claim has no scopes.
    let no_claim = bearer(
        f.issuer
            .issue(&AccessGrant {
                user_id: bob.id,
                scope: None,
                login_id: None,
            })
            .unwrap()
            .into_string(),
    );
    assert_eq!(f.call("GET", "/items", Some(&no_claim)).await.0, 403);

    // Permissions are decided before scopes, and before existence (403
    // before 404).
    let forbidden = (
        403,
        None,
        error("forbidden", "Permission 'items:delete' required"),
    );
    assert_eq!(
        f.call("DELETE", "/items/1", Some(&me_only)).await,
        forbidden
    );
    assert_eq!(
        f.call("DELETE", "/items/999", Some(&me_only)).await,
        forbidden
    );
    f.store
        .update_user(
            bob.id,
            &UserUpdate {
                permissions: Some(vec!["items:delete".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The grant alone is not enough: a token asked for `me` only cannot
    // use it (least privilege), and the scope is named.
    assert_eq!(
        f.call("DELETE", "/items/1", Some(&me_only)).await,
        (
            403,
            Some(r#"Bearer error="insufficient_scope", scope="items:write", error_description="The access token lacks the scope 'items:write'""#.to_owned()),
            error("insufficient_scope", "The access token lacks the scope 'items:write'")
        )
    );
    let writer = bearer(f.token(&bob, "me items:write", None));
    assert_eq!(
        f.call("DELETE", "/items/1", Some(&writer)).await.0,
        204,
        "a per-user grant"
    );
    assert_eq!(
        f.call("DELETE", "/items/999", Some(&writer)).await,
        (404, None, error("not_found", "Item not found"))
    );
    assert_eq!(
        f.call("DELETE", "/items/abc", Some(&writer)).await.2,
        error("validation_failed", "id: must be a positive integer")
    );

    assert_eq!(
        f.call("GET", "/admin", Some(&me_only)).await,
        (403, None, error("forbidden", "Role 'admin' required"))
    );
    // The role first, then the scope: an admin's token asked for `me` only
    // cannot administer.
    let admin_me_only = bearer(f.token(&root, "me", None));
    assert_eq!(
        f.call("GET", "/admin", Some(&admin_me_only)).await,
        (
            403,
            Some(r#"Bearer error="insufficient_scope", scope="admin", error_description="The access token lacks the scope 'admin'""#.to_owned()),
            error("insufficient_scope", "The access token lacks the scope 'admin'")
        )
    );
    assert_eq!(
        f.call("DELETE", "/items/1", Some(&admin_me_only)).await.2["error"],
        "insufficient_scope"
    );
    let admin = bearer(f.token(&root, "admin items:write", None));
    assert_eq!(f.call("GET", "/admin", Some(&admin)).await.0, 200);
    assert_eq!(
        f.call("DELETE", "/items/1", Some(&admin)).await.0,
        204,
        "admin holds every permission"
    );

    // A disabled user's valid token gets 403 everywhere.
    f.store
        .update_user(
            bob.id,
            &UserUpdate {
                disabled: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        f.call("GET", "/me", Some(&items_only)).await,
        (403, None, error("forbidden", "The user is disabled"))
    );
}

/// Without scopes (the jwt service) roles and permissions alone decide,
/// and a scope route needs only a valid token.
#[tokio::test]
async fn without_scopes_roles_and_permissions_alone_decide() {
    let f = Fixture::start_with(ScopeMode::Unscoped).await;
    let bob = f.user("bob", "user").await;
    let root = f.user("root", "admin").await;
    let unscoped = |user: &User| {
        format!(
            "Bearer {}",
            f.issuer
                .issue(&AccessGrant {
                    user_id: user.id,
                    scope: None,
                    login_id: None,
                })
                .unwrap()
                .into_string()
        )
    };
    let (bob_token, root_token) = (unscoped(&bob), unscoped(&root));
    assert_eq!(f.call("GET", "/both", Some(&bob_token)).await.0, 200);
    assert_eq!(
        f.call("GET", "/admin", Some(&bob_token)).await,
        (403, None, error("forbidden", "Role 'admin' required"))
    );
    assert_eq!(
        f.call("DELETE", "/items/1", Some(&bob_token)).await,
        (
            403,
            None,
            error("forbidden", "Permission 'items:delete' required")
        )
    );
    assert_eq!(f.call("GET", "/admin", Some(&root_token)).await.0, 200);
    assert_eq!(f.call("DELETE", "/items/1", Some(&root_token)).await.0, 204);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let f = Fixture::start().await;
    assert_eq!(
        f.call("GET", "/nope", None).await,
        (404, None, error("not_found", "No route matches this path"))
    );
    assert_eq!(
        f.call("POST", "/public", None).await.2["error"],
        json!("method_not_allowed")
    );
}

/// A well-formed token for `user_id` signed with a key the service does not have.
fn signed_with_another_key(user_id: i64) -> String {
    let rules = ClaimRules::new("svc", "svc", Leeway::seconds(0).unwrap());
    TokenIssuer::new(
        Arc::new(SigningKeys::random_hmac()),
        rules,
        Duration::from_secs(60),
        Clock::System,
    )
    .issue(&AccessGrant {
        user_id,
        scope: None,
        login_id: None,
    })
    .unwrap()
    .into_string()
}
