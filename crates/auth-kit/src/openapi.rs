//! OpenAPI 3.1 and Swagger UI for a service's routes: FastAPI's
//! `OAuth2PasswordBearer(tokenUrl="/token", scopes=...)`, the Rust way.
//!
//! A service documents each handler with `#[utoipa::path(...)]`, collects
//! them in a `utoipa_axum::router::OpenApiRouter`, and calls [`document`],
//! which declares the `oauth2` security scheme (password flow, `tokenUrl`
//! `/token`, the policy's scopes), serves the document at `/openapi.json`
//! and Swagger UI at `/docs` (assets vendored in the binary, nothing
//! fetched at build or run time, served with headers that forbid anything
//! else).
//!
//! A protected handler takes its guard (an extractor of [`crate::extract`])
//! as its first argument and is registered with [`guarded_route!`], which
//! writes the route's security requirement and its 401, 403 and 503
//! answers from the guard's type: the document says what the code checks.
//!
//! Request schemas carry the rules the validators enforce, from the same
//! constants ([`schemas`]), and [`JsonBodyErrors`] / [`InvalidInput`]
//! document what the kit's extractors refuse.

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::content::Content;
use utoipa::openapi::info::{Contact, Info, License};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{
    Flow, OAuth2, Password, Scopes, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ComponentsBuilder, OpenApi, Ref, RefOr};
use utoipa::{IntoResponses, PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, ErrorBody};
use crate::extract::RouteGuard;
use crate::login::ScopeMode;
use crate::policy::{AccessPolicy, GuardNames, PolicyError};
use crate::store::Store;

pub mod meta;

/// The name of the security scheme handlers refer to in `security(...)`.
pub const SECURITY_SCHEME: &str = "oauth2";
/// Where the token endpoint lives: exactly `/token`.
pub const TOKEN_URL: &str = "/token";

/// What the document says about the service itself: its own name,
/// version and description, and a contact and license only when the
/// project sets them (never a dependency's metadata).
///
/// A service fills it from its own manifest:
///
/// ```
/// use auth_kit::openapi::ApiInfo;
///
/// let info = ApiInfo {
///     title: env!("CARGO_PKG_NAME"),
///     version: env!("CARGO_PKG_VERSION"),
///     description: "What it does.",
///     authors: env!("CARGO_PKG_AUTHORS"),
///     license: env!("CARGO_PKG_LICENSE"),
/// };
/// # let _ = info;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ApiInfo<'a> {
    /// The service's name.
    pub title: &'a str,
    /// Its version.
    pub version: &'a str,
    /// One paragraph for humans.
    pub description: &'a str,
    /// The package's `authors` as cargo passes them (`CARGO_PKG_AUTHORS`,
    /// `:`-separated `Name <email>`): the first is the contact. Empty: no
    /// contact.
    pub authors: &'a str,
    /// The package's SPDX `license` (`CARGO_PKG_LICENSE`). Empty: no
    /// license.
    pub license: &'a str,
}

impl ApiInfo<'_> {
    /// The OpenAPI `info` object: nothing that the service did not set.
    pub fn to_info(&self) -> Info {
        let mut info = Info::new(self.title, self.version);
        info.description = Some(self.description.to_owned()).filter(|d| !d.is_empty());
        info.contact = self
            .authors
            .split(':')
            .map(str::trim)
            .find(|a| !a.is_empty())
            .map(|author| {
                let mut contact = Contact::new();
                match author.split_once('<') {
                    Some((name, email)) => {
                        contact.name = Some(name.trim().to_owned()).filter(|n| !n.is_empty());
                        contact.email = Some(email.trim_end_matches('>').trim().to_owned());
                    }
                    None => contact.name = Some(author.to_owned()),
                }
                contact
            });
        info.license = Some(self.license.trim())
            .filter(|l| !l.is_empty())
            .map(|spdx| {
                let mut license = License::new(spdx);
                license.identifier = Some(spdx.to_owned());
                license
            });
        info
    }
}

/// The OAuth2 password-flow scheme: `tokenUrl` `/token`, and the policy's
/// scopes when tokens carry scopes (none otherwise).
pub fn password_flow_scheme(policy: &AccessPolicy, scopes: ScopeMode) -> SecurityScheme {
    let scopes = match scopes {
        ScopeMode::Scoped => {
            Scopes::from_iter(policy.scopes().iter().map(|s| (s.name, s.description)))
        }
        ScopeMode::Unscoped => Scopes::new(),
    };
    SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
        TOKEN_URL, scopes,
    ))]))
}

/// Splits `router` into routes and document, adds the security scheme and
/// `info`, and returns the routes plus `/openapi.json` and `/docs` (with
/// [`docs_headers`] and a JSON 404 for unknown paths under `/docs`).
///
/// Every route's guard is held to `policy` here: a marker naming a scope,
/// permission or role the policy does not declare is the error (start-up
/// fails on the typo instead of every request being refused).
pub fn document<S>(
    router: OpenApiRouter<S>,
    info: ApiInfo<'_>,
    policy: &AccessPolicy,
    scopes: ScopeMode,
) -> Result<axum::Router<S>, PolicyError>
where
    S: Clone + Send + Sync + 'static,
{
    let (routes, mut openapi) = router.split_for_parts();
    check_guards(&mut openapi, policy)?;
    describe(&mut openapi, info, policy, scopes);
    let oauth = utoipa_swagger_ui::oauth::Config::new()
        .scope_separator(" ")
        .app_name(info.title);
    let docs: axum::Router<S> = SwaggerUi::new("/docs")
        .url("/openapi.json", openapi)
        .oauth(oauth)
        .into();
    Ok(routes.merge(docs.layer(axum::middleware::map_response(docs_response))))
}

/// A service's whole router, without its state: the routes in `api`,
/// [`meta::routes`] (`/` and `/health`), the document ([`document`]:
/// `/openapi.json` and `/docs`, every guard held to `policy`), and the
/// standard layers ([`crate::http::with_service_layers`]). The service
/// then gives it its state (`.with_state(state)`).
///
/// ```
/// use auth_kit::ScopeMode;
/// use auth_kit::policy::{AccessPolicy, PolicyError, PolicySpec, RoleSpec};
/// use auth_kit::store::Store;
/// use utoipa_axum::router::OpenApiRouter;
///
/// const POLICY: PolicySpec = PolicySpec {
///     scopes: &[],
///     permissions: &[],
///     roles: &[RoleSpec::new("user")],
///     signup_role: "user",
/// };
///
/// # fn main() -> Result<(), PolicyError> {
/// let policy = AccessPolicy::new(&POLICY)?;
/// let info = auth_kit::api_info!(description: "What it does.");
/// let router: axum::Router<Store> =
///     auth_kit::openapi::service_router(OpenApiRouter::new(), info, &policy, ScopeMode::Unscoped)?;
/// # drop(router);
/// # Ok(())
/// # }
/// ```
pub fn service_router<S>(
    api: OpenApiRouter<S>,
    info: ApiInfo<'_>,
    policy: &AccessPolicy,
    scopes: ScopeMode,
) -> Result<axum::Router<S>, PolicyError>
where
    S: Clone + Send + Sync + 'static,
    Store: axum::extract::FromRef<S>,
{
    let router = document(meta::routes(&info).merge(api), info, policy, scopes)?;
    Ok(crate::http::with_service_layers(router))
}

/// An [`ApiInfo`] from the calling crate's own manifest: its name and
/// version, and its `authors` and `license` (contact and license only if
/// its Cargo.toml sets them), with `description`.
///
/// ```
/// let info = auth_kit::api_info!(description: "What it does.");
/// assert_eq!(info.title, env!("CARGO_PKG_NAME"));
/// ```
#[macro_export]
macro_rules! api_info {
    (description: $description:expr $(,)?) => {
        $crate::openapi::ApiInfo {
            title: env!("CARGO_PKG_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            description: $description,
            authors: env!("CARGO_PKG_AUTHORS"),
            license: env!("CARGO_PKG_LICENSE"),
        }
    };
}

/// Fills in `info`, the security scheme and the error schema (also usable
/// without axum).
pub fn describe(
    openapi: &mut OpenApi,
    info: ApiInfo<'_>,
    policy: &AccessPolicy,
    scopes: ScopeMode,
) {
    // Built from scratch: `OpenApiRouter::new()` starts from utoipa-axum's
    // own package metadata (its authors and license), which is not ours.
    openapi.info = info.to_info();
    let mut components = openapi
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    components.add_security_scheme(SECURITY_SCHEME, password_flow_scheme(policy, scopes));
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    openapi.components = Some(components);
    constrain_user_update(openapi, policy);
    describe_every_response(openapi);
}

/// OpenAPI requires a description on every response: one left empty in a
/// `#[utoipa::path]` gets the status's reason phrase (`OK`, `Created`).
fn describe_every_response(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        for operation in operations(item) {
            for (status, response) in &mut operation.responses.responses {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = status
                        .parse::<u16>()
                        .ok()
                        .and_then(|code| StatusCode::from_u16(code).ok())
                        .and_then(|code| code.canonical_reason())
                        .unwrap_or("Response")
                        .to_owned();
                }
            }
        }
    }
}

/// The headers of `/docs` and `/openapi.json`: a Content-Security-Policy
/// that lets the page load only its own (vendored) Swagger UI files and
/// call only this origin, never be framed (clickjacking of the Authorize
/// dialog), and no MIME sniffing or referrer leaks.
pub fn docs_headers() -> [(HeaderName, HeaderValue); 4] {
    [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ]
}

/// Swagger UI's needs and nothing more: its scripts and styles from this
/// origin (it sets some styles inline), its icons as data: URIs, requests
/// to this origin only (the document and `/token`).
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds [`docs_headers`]; an unknown file under `/docs` (answered by
/// Swagger UI with an empty 404) becomes the contract's JSON 404.
async fn docs_response(response: Response) -> Response {
    let mut response = if response.status() == StatusCode::NOT_FOUND {
        ApiError::not_found("No documentation page matches this path").into_response()
    } else {
        response
    };
    response.headers_mut().extend(docs_headers());
    response
}

/// A handler whose first argument is a guard ([`RouteGuard`]): how
/// [`guarded`] finds the guard in the handler's signature.
pub trait GuardedHandler<Args> {
    /// The first argument's type.
    type Guard: RouteGuard;
}

macro_rules! guarded_handler {
    ($($arg:ident),*) => {
        impl<F, Fut, G: RouteGuard, $($arg,)*> GuardedHandler<(G, $($arg,)*)> for F
        where
            F: FnOnce(G, $($arg,)*) -> Fut,
        {
            type Guard = G;
        }
    };
}
guarded_handler!();
guarded_handler!(A1);
guarded_handler!(A1, A2);
guarded_handler!(A1, A2, A3);
guarded_handler!(A1, A2, A3, A4);
guarded_handler!(A1, A2, A3, A4, A5);
guarded_handler!(A1, A2, A3, A4, A5, A6);

/// Documents the route of `handler` (as `utoipa_axum::routes!` made it)
/// from its guard: the `oauth2` security requirement with the scopes the
/// guard checks (none without scopes), and the 401, 403 and 503 answers.
/// [`guarded_route!`] calls it with the handler's own path, so use that.
pub fn guarded<S, H, Args>(
    mut routes: UtoipaMethodRouter<S>,
    _handler: H,
    scopes: ScopeMode,
) -> UtoipaMethodRouter<S>
where
    H: GuardedHandler<Args>,
{
    let names = H::Guard::names();
    let required: &[&str] = match scopes {
        ScopeMode::Scoped => names.scopes,
        ScopeMode::Unscoped => &[],
    };
    let needs = match (names.permission, names.role) {
        (Some(permission), _) => Some(format!("Permission '{permission}' required")),
        (None, Some(role)) => Some(format!("Role '{role}' required")),
        (None, None) => None,
    };
    let forbidden = forbidden_description(required, needs, H::Guard::account_refusal());
    let stored = StoredGuard::from(&names);
    for item in routes.1.paths.values_mut() {
        for operation in operations(item) {
            // What the guard names, for `document` to hold to the policy
            // (and remove: it is not part of the published document).
            if let Ok(value) = serde_json::to_value(&stored) {
                operation
                    .extensions
                    .get_or_insert_with(Default::default)
                    .insert(GUARD_EXTENSION.to_owned(), value);
            }
            operation.security = Some(vec![SecurityRequirement::new(
                SECURITY_SCHEME,
                required.iter().copied(),
            )]);
            let responses = &mut operation.responses.responses;
            responses.insert(
                "401".to_owned(),
                error_response(
                    "`unauthorized`: no bearer token, or `invalid_token`: a malformed, forged, expired or revoked one (see `WWW-Authenticate`)",
                )
                .into(),
            );
            responses.insert("403".to_owned(), error_response(&forbidden).into());
            responses.insert(
                "503".to_owned(),
                error_response(H::Guard::unavailable()).into(),
            );
        }
    }
    routes
}

/// The operation extension [`guarded`] records a guard's names in, until
/// [`document`] has checked them against the policy and removed them.
const GUARD_EXTENSION: &str = "x-auth-kit-guard";

/// A guard's names as an operation extension carries them.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredGuard {
    scopes: Vec<String>,
    permission: Option<String>,
    role: Option<String>,
}

impl From<&GuardNames<'_>> for StoredGuard {
    fn from(names: &GuardNames<'_>) -> Self {
        Self {
            scopes: names.scopes.iter().map(|s| (*s).to_owned()).collect(),
            permission: names.permission.map(str::to_owned),
            role: names.role.map(str::to_owned),
        }
    }
}

/// Holds every guarded route's names to `policy`, and removes them from
/// the document: the first route naming an undeclared scope, permission
/// or role is the error.
fn check_guards(openapi: &mut OpenApi, policy: &AccessPolicy) -> Result<(), PolicyError> {
    for (path, item) in openapi.paths.paths.iter_mut() {
        for operation in operations(item) {
            let Some(extensions) = operation.extensions.as_mut() else {
                continue;
            };
            let stored = extensions.remove(GUARD_EXTENSION);
            if extensions.is_empty() {
                operation.extensions = None;
            }
            let Some(stored) = stored.and_then(|v| serde_json::from_value::<StoredGuard>(v).ok())
            else {
                continue;
            };
            let scopes: Vec<&str> = stored.scopes.iter().map(String::as_str).collect();
            let names = GuardNames {
                scopes: &scopes,
                permission: stored.permission.as_deref(),
                role: stored.role.as_deref(),
            };
            let route = match operation.operation_id.as_deref() {
                Some(id) => format!("{id} ({path})"),
                None => path.clone(),
            };
            policy.check_guard(&route, &names)?;
        }
    }
    Ok(())
}

/// The 403 answers a guard can give, for its response description.
fn forbidden_description(
    scopes: &[&str],
    role_or_permission: Option<String>,
    account_refusal: &str,
) -> String {
    let mut reasons = Vec::new();
    if let Some(needs) = role_or_permission {
        reasons.push(format!("`forbidden`: {needs}"));
    }
    if !scopes.is_empty() {
        reasons.push(format!(
            "`insufficient_scope`: the token lacks the scope '{}' (named in `WWW-Authenticate`)",
            scopes.join(" ")
        ));
    }
    reasons.push(format!("`forbidden`: {account_refusal}"));
    reasons.join("; ")
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// `utoipa_axum::routes!` for one handler whose first argument is a guard,
/// documented from that guard ([`openapi::guarded`](crate::openapi::guarded)):
/// `.routes(guarded_route!(SCOPES, users::list_users))`.
#[macro_export]
macro_rules! guarded_route {
    ($scopes:expr, $handler:path) => {
        $crate::openapi::guarded(::utoipa_axum::routes!($handler), $handler, $scopes)
    };
}

/// A JSON error answer with `description`, in the contract's shape.
pub fn error_response(description: &str) -> ApiResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name(ErrorBody::name()))),
        )
        .build()
}

/// What [`crate::http::JsonBody`] refuses, for `responses(...)`: 400
/// broken JSON, 413 over the body limit, 415 not JSON, 422 a field is
/// invalid.
#[derive(Debug)]
pub struct JsonBodyErrors;

impl IntoResponses for JsonBodyErrors {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        let mut responses = InvalidInput::responses();
        for (status, description) in [
            (
                "400",
                "`invalid_request`: the body is empty or not valid JSON",
            ),
            ("413", "`request_too_large`: the body is over 64 KiB"),
            (
                "415",
                "`unsupported_media_type`: the body is not `application/json`",
            ),
        ] {
            responses.insert(status.to_owned(), error_response(description).into());
        }
        responses
    }
}

/// A 422 for input the schema allows to be wrong in ways it cannot say,
/// for `responses(...)`: a path id, a list parameter, a field.
#[derive(Debug)]
pub struct InvalidInput;

impl IntoResponses for InvalidInput {
    fn responses() -> BTreeMap<String, RefOr<ApiResponse>> {
        BTreeMap::from([(
            "422".to_owned(),
            error_response(
                "`validation_failed`: a value is invalid; `error_description` starts with its name (`<field>: `)",
            )
            .into(),
        )])
    }
}

/// The token request as OpenAPI shows it (RFC 6749 sections 4.3 and 6):
/// a password grant or a refresh grant (`oneOf`, told apart by
/// `grant_type`). Document `/token` with `request_body(content = TokenForm,
/// content_type = "application/x-www-form-urlencoded")`; the handler reads
/// the form with [`crate::http::TokenRequest`].
#[derive(Debug)]
pub struct TokenForm;

impl PartialSchema for TokenForm {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .description(Some(description))
        };
        let scope = || {
            ObjectBuilder::new().schema_type(Type::String).description(Some(
            "Space-separated scopes: for a password grant, omit for everything the user holds; \
             for a refresh grant, a subset of the original grant. A service without scopes ignores it.",
        ))
        };
        let grant = |name: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([name]))
        };
        let password = ObjectBuilder::new()
            .title(Some("password grant"))
            .property("grant_type", grant("password"))
            .required("grant_type")
            .property("username", text("The username"))
            .required("username")
            .property(
                "password",
                text("The password").format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Password,
                ))),
            )
            .required("password")
            .property("scope", scope());
        let refresh = ObjectBuilder::new()
            .title(Some("refresh grant"))
            .property("grant_type", grant("refresh_token"))
            .required("grant_type")
            .property(
                "refresh_token",
                text("The refresh token of the last answer (single use)"),
            )
            .required("refresh_token")
            .property("scope", scope());
        OneOfBuilder::new().item(password).item(refresh).into()
    }
}

impl ToSchema for TokenForm {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("TokenForm")
    }
}

/// Schemas of constrained request fields, built from the constants the
/// validators use, so the document and the checks cannot drift apart
/// (`#[schema(schema_with = ...)]`).
pub mod schemas {
    use utoipa::openapi::schema::{
        KnownFormat, Object, ObjectBuilder, SchemaFormat, SchemaType, Type,
    };

    use crate::config::{USERNAME_MAX_CHARS, USERNAME_MIN_CHARS, USERNAME_PATTERN};
    use crate::login::{EMAIL_MAX_CHARS, FULL_NAME_MAX_CHARS};
    use crate::password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS};

    fn string() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String)
    }

    fn nullable_string() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
    }

    /// 3 to 64 of `A-Z a-z 0-9 _ . -`.
    pub fn username() -> Object {
        string()
            .min_length(Some(USERNAME_MIN_CHARS))
            .max_length(Some(USERNAME_MAX_CHARS))
            .pattern(Some(USERNAME_PATTERN))
            .description(Some(format!(
                "{USERNAME_MIN_CHARS} to {USERNAME_MAX_CHARS} of A-Z a-z 0-9 _ . -, unique ignoring case"
            )))
            .build()
    }

    /// At least 8 characters, at most 1024 UTF-8 bytes. JSON Schema counts
    /// characters only: `maxLength` is the byte limit, which a password of
    /// ASCII characters reaches first; the description says the rest.
    pub fn password() -> Object {
        string()
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
            .min_length(Some(MIN_PASSWORD_CHARS))
            .max_length(Some(MAX_PASSWORD_BYTES))
            .description(Some(format!(
                "At least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes in UTF-8"
            )))
            .build()
    }

    /// An email address, or null.
    pub fn email() -> Object {
        nullable_string()
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(EMAIL_MAX_CHARS))
            .description(Some("Optional; unique ignoring case"))
            .build()
    }

    /// Up to 256 characters, or null.
    pub fn full_name() -> Object {
        nullable_string()
            .max_length(Some(FULL_NAME_MAX_CHARS))
            .description(Some(format!(
                "Optional, up to {FULL_NAME_MAX_CHARS} characters"
            )))
            .build()
    }
}

/// The role and permission names of `UserUpdate`, which only the policy
/// knows: `role` one of its roles, `permissions` at most
/// [`MAX_PERMISSION_GRANTS`](crate::store::MAX_PERMISSION_GRANTS) of its
/// permissions (the validator refuses anything else).
fn constrain_user_update(openapi: &mut OpenApi, policy: &AccessPolicy) {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let Some(RefOr::T(Schema::Object(update))) = openapi
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("UserUpdate"))
    else {
        return;
    };
    let roles = policy
        .roles()
        .iter()
        .map(|r| serde_json::Value::from(r.name));
    update.properties.insert(
        "role".to_owned(),
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .enum_values(Some(roles.chain([serde_json::Value::Null])))
            .description(Some("A role of the policy; absent or null: unchanged"))
            .into(),
    );
    update.properties.insert(
        "permissions".to_owned(),
        ArrayBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
            .items(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(policy.permissions().iter().copied())),
            )
            .max_items(Some(crate::store::MAX_PERMISSION_GRANTS))
            .description(Some(
                "Replaces the per-user grants (`[]` revokes them all); absent or null: unchanged",
            ))
            .into(),
    );
}
