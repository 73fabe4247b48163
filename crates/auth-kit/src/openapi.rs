//! OpenAPI 3.1 and Swagger UI for a service's routes: FastAPI's
//! `OAuth2PasswordBearer(tokenUrl="/token", scopes=...)`, the Rust way.
//!
//! A service documents each handler with `#[utoipa::path(...,
//! security(("oauth2" = ["items"])))]`, collects them in a
//! `utoipa_axum::router::OpenApiRouter`, and calls [`document`], which
//! declares the `oauth2` security scheme (password flow, `tokenUrl` `/token`,
//! the policy's scopes), serves the document at `/openapi.json` and Swagger
//! UI at `/docs` (assets vendored in the binary, nothing fetched at build or
//! run time).

use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::login::ScopeMode;
use crate::policy::AccessPolicy;

/// The name of the security scheme handlers refer to in `security(...)`.
pub const SECURITY_SCHEME: &str = "oauth2";
/// Where the token endpoint lives (SPEC section 9: exactly `/token`).
pub const TOKEN_URL: &str = "/token";

/// Title, version and description of the API.
#[derive(Debug, Clone, Copy)]
pub struct ApiInfo<'a> {
    /// The service's name.
    pub title: &'a str,
    /// Its version.
    pub version: &'a str,
    /// One paragraph for humans.
    pub description: &'a str,
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
/// `info`, and returns the routes plus `/openapi.json` and `/docs`.
pub fn document<S>(
    router: OpenApiRouter<S>,
    info: ApiInfo<'_>,
    policy: &AccessPolicy,
    scopes: ScopeMode,
) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let (routes, mut openapi) = router.split_for_parts();
    describe(&mut openapi, info, policy, scopes);
    let oauth = utoipa_swagger_ui::oauth::Config::new()
        .scope_separator(" ")
        .app_name(info.title);
    routes.merge(
        SwaggerUi::new("/docs")
            .url("/openapi.json", openapi)
            .oauth(oauth),
    )
}

/// Fills in `info` and the security scheme (also usable without axum).
pub fn describe(
    openapi: &mut OpenApi,
    info: ApiInfo<'_>,
    policy: &AccessPolicy,
    scopes: ScopeMode,
) {
    openapi.info.title = info.title.to_owned();
    openapi.info.version = info.version.to_owned();
    openapi.info.description = Some(info.description.to_owned());
    let mut components = openapi
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    components.add_security_scheme(SECURITY_SCHEME, password_flow_scheme(policy, scopes));
    openapi.components = Some(components);
}

/// The token request as OpenAPI shows it (RFC 6749 sections 4.3 and 6):
/// document `/token` with `request_body(content = TokenForm, content_type =
/// "application/x-www-form-urlencoded")`. The handler reads it with
/// [`crate::http::TokenRequest`].
#[derive(Debug, utoipa::ToSchema)]
pub struct TokenForm {
    /// `password` or `refresh_token`.
    pub grant_type: String,
    /// For `password`.
    pub username: Option<String>,
    /// For `password`.
    #[schema(format = Password)]
    pub password: Option<String>,
    /// Space-separated scopes; omit for everything the user holds.
    pub scope: Option<String>,
    /// For `refresh_token`.
    pub refresh_token: Option<String>,
}
