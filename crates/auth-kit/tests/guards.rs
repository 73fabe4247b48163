//! Route guards are held to the access policy when the routes are
//! documented: a marker naming a scope, permission or role the policy does
//! not declare fails `openapi::document` (so start-up), naming it; the
//! published document does not carry the names it was checked with.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use auth_kit::extract::{
    Authenticator, Lookup, LookupError, PermissionRequirement, RoleRequirement, ScopeRequirement,
    UserDirectory,
};
use auth_kit::login::ScopeMode;
use auth_kit::openapi::{ApiInfo, document};
use auth_kit::policy::{AccessPolicy, PolicySpec, RoleSpec, ScopeSpec};
use auth_kit::store::User;
use auth_kit::token::{
    AccessTokenVerifier, ClaimRules, Leeway, SigningAlgorithm, SigningKeys, VerifiedAccess,
};
use auth_kit::{RequirePermission, RequireRole, RequireScopes, guarded_route};
use axum::extract::FromRef;
use utoipa_axum::router::OpenApiRouter;

const POLICY: PolicySpec = PolicySpec {
    scopes: &[ScopeSpec {
        name: "notes",
        description: "Read your notes.",
    }],
    permissions: &["notes:delete"],
    roles: &[RoleSpec::new("editor")
        .scopes(&["notes"])
        .permissions(&["notes:delete"])],
    signup_role: "editor",
};

#[derive(Clone, FromRef)]
struct AppState {
    auth: Authenticator<User>,
}

/// Nobody: these routes are documented, never called with a token.
struct NoUsers;

impl UserDirectory for NoUsers {
    type User = User;

    async fn find(&self, _: &VerifiedAccess) -> Result<Lookup<User>, LookupError> {
        Ok(Lookup::UnknownUser)
    }
}

macro_rules! scope_marker {
    ($name:ident, $scope:literal) => {
        struct $name;
        impl ScopeRequirement for $name {
            const SCOPES: &'static [&'static str] = &[$scope];
        }
    };
}
scope_marker!(ReadNotes, "notes");
scope_marker!(ReadNotsTypo, "nots");

struct DeleteNotesTypo;
impl PermissionRequirement for DeleteNotesTypo {
    const PERMISSION: &'static str = "note:delete";
    const SCOPES: &'static [&'static str] = &["notes"];
}

struct Editr;
impl RoleRequirement for Editr {
    const ROLE: &'static str = "editr";
    const SCOPES: &'static [&'static str] = &[];
}

#[utoipa::path(get, path = "/notes", responses((status = 200)))]
async fn notes(_: RequireScopes<ReadNotes>) -> &'static str {
    "notes"
}

#[utoipa::path(get, path = "/typo-scope", responses((status = 200)))]
async fn typo_scope(_: RequireScopes<ReadNotsTypo>) -> &'static str {
    ""
}

#[utoipa::path(delete, path = "/typo-permission", responses((status = 204)))]
async fn typo_permission(_: RequirePermission<DeleteNotesTypo>) -> &'static str {
    ""
}

#[utoipa::path(get, path = "/typo-role", responses((status = 200)))]
async fn typo_role(_: RequireRole<Editr>) -> &'static str {
    ""
}

const INFO: ApiInfo<'static> = ApiInfo {
    title: "guards",
    version: "0",
    description: "",
    authors: "",
    license: "",
};

fn documented(router: OpenApiRouter<AppState>) -> Result<(), String> {
    let policy = AccessPolicy::new(&POLICY).unwrap();
    document(router, INFO, &policy, ScopeMode::Scoped)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn a_guard_naming_what_the_policy_does_not_declare_fails_documenting() {
    let base = || OpenApiRouter::<AppState>::new().routes(guarded_route!(ScopeMode::Scoped, notes));
    assert_eq!(documented(base()), Ok(()));
    for (router, name) in [
        (
            base().routes(guarded_route!(ScopeMode::Scoped, typo_scope)),
            "the scope 'nots'",
        ),
        (
            base().routes(guarded_route!(ScopeMode::Scoped, typo_permission)),
            "the permission 'note:delete'",
        ),
        (
            base().routes(guarded_route!(ScopeMode::Unscoped, typo_role)),
            "the role 'editr'",
        ),
    ] {
        let err = documented(router).unwrap_err();
        assert!(err.contains(name), "{err}");
        assert!(err.contains("typo_"), "names the route: {err}");
    }
}

#[test]
fn the_published_document_does_not_carry_the_checked_names() {
    let policy = AccessPolicy::new(&POLICY).unwrap();
    let router = OpenApiRouter::<AppState>::new().routes(guarded_route!(ScopeMode::Scoped, notes));
    let (_, mut openapi) = router.split_for_parts();
    auth_kit::openapi::describe(&mut openapi, INFO, &policy, ScopeMode::Scoped);
    // Before `document` checks them, the names ride on the operation...
    let json = serde_json::to_string(&openapi).unwrap();
    assert!(json.contains("x-auth-kit-guard"), "{json}");
    // ...and `document` removes them from what it publishes.
    let router = OpenApiRouter::<AppState>::new().routes(guarded_route!(ScopeMode::Scoped, notes));
    let app = document(router, INFO, &policy, ScopeMode::Scoped).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body = runtime.block_on(async {
        use tower::ServiceExt as _;
        let state = AppState {
            auth: Authenticator::new(
                AccessTokenVerifier::new(
                    &SigningKeys::hmac(
                        SigningAlgorithm::HS256,
                        b"guards-test-secret-0123456789abcdef",
                    )
                    .unwrap(),
                    ClaimRules::new("guards", "guards", Leeway::seconds(0).unwrap()),
                ),
                NoUsers,
                policy.clone(),
                ScopeMode::Scoped,
            ),
        };
        let reply = app
            .with_state(state)
            .oneshot(
                axum::http::Request::get("/openapi.json")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        axum::body::to_bytes(reply.into_body(), 1 << 20)
            .await
            .unwrap()
    });
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("\"/notes\""), "{text}");
    assert!(!text.contains("x-auth-kit-guard"), "{text}");
}
