//! Request parsing that answers in the contract's shape, and the small
//! pieces every service router needs.
//!
//! axum's own `Json` and `Form` reject with plain-text bodies; these
//! extractors reject with [`ApiError`] / [`OAuthError`] JSON instead:
//! - [`JsonBody`]: 415 for a non-JSON media type, 413 over the body limit,
//!   400 for an empty body or broken JSON, 422 `<field>: <problem>` for
//!   JSON of the wrong shape (never a Rust type's name, never the input).
//! - [`TokenRequest`]: the RFC 6749 token request, form-encoded only; a
//!   repeated parameter or a JSON body is `invalid_request`.
//! - [`ResourceId`]: a positive 64-bit id from the path, else 422.
//! - [`ClientIp`]: the client's address, as [`serve`] resolved it.
//!
//! [`serve`] runs a router the way a service should face the network: a
//! header-read timeout, a request timeout, the client's address resolved
//! once per request (behind [`TrustedProxies`]), and graceful shutdown.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::client_ip::TrustedProxies;

mod unread_body;
use crate::config::TrafficSettings;
use crate::error::{ApiError, OAuthError, ServerErrorDetail};
pub use unread_body::DRAIN_TIMEOUT;

/// Largest request body accepted (docs/contract.md, "Input rules"). Services
/// apply it with `axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

fn media_type(parts_or_req: &axum::http::HeaderMap) -> Option<String> {
    let raw = parts_or_req.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        raw.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// Reads the body, mapping axum's failures to the contract's answers.
async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: MAX_BODY_BYTES,
            }
        } else {
            ApiError::InvalidRequest(Cow::Borrowed("The request body could not be read"))
        }
    })
}

/// A JSON request body of type `T`.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !media_type(req.headers()).is_some_and(|m| is_json(&m)) {
            return Err(ApiError::UnsupportedMediaType(Cow::Borrowed(
                "The request body must be application/json",
            )));
        }
        let bytes = read_body(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::InvalidRequest(Cow::Borrowed(
                "The request body is empty; send a JSON object",
            )));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses `bytes`, a JSON object, as `T`: syntax errors are 400, anything
/// but an object and shape errors 422 naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first: broken JSON is 400 even when its first values already
    // have the wrong shape (`[1,` would otherwise be reported as a type error).
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(ApiError::InvalidRequest(Cow::Borrowed(
            "The request body is not valid JSON",
        )));
    }
    // Every request body of the contract is an object (serde would also
    // read a struct from an array, by position).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::validation("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de);
    value.map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !matches!(inner.classify(), serde_json::error::Category::Data) {
            return ApiError::InvalidRequest(Cow::Borrowed("The request body is not valid JSON"));
        }
        let message = inner.to_string();
        // serde_json appends " at line 1 column 42"; the field name says where.
        let message = message.split(" at line ").next().unwrap_or(&message);
        let field = if path == "." { "body".to_owned() } else { path };
        let (field, problem) = field_problem(field, message);
        ApiError::validation(field, problem)
    })
}

/// serde's message for a field, in the contract's words: which field, and
/// what it must be. serde names Rust types (`expected struct
/// SignupRequest`, `expected u8`) and echoes the input; neither reaches the
/// client. An unrecognised message becomes a generic one.
fn field_problem(field: String, message: &str) -> (String, Cow<'static, str>) {
    let quoted = |rest: &str| rest.split('`').nth(1).map(str::to_owned);
    if let Some(name) = message.strip_prefix("missing field ").and_then(quoted) {
        let name = if field == "body" {
            name
        } else {
            format!("{field}.{name}")
        };
        return (name, Cow::Borrowed("field required"));
    }
    if message.starts_with("duplicate field ") {
        let name = quoted(message).unwrap_or_default();
        let name = if field == "body" {
            name
        } else {
            format!("{field}.{name}")
        };
        return (name, Cow::Borrowed("given more than once"));
    }
    if let Some(expected) = message.split_once(", expected ").map(|(_, e)| e) {
        let problem = if message.starts_with("invalid type: ") {
            expected_type(expected)
        } else if message.starts_with("invalid value: ") {
            integer_range(expected).map_or(Cow::Borrowed("has an invalid value"), Cow::Owned)
        } else if message.starts_with("invalid length ") {
            Cow::Borrowed("has the wrong number of elements")
        } else if message.starts_with("unknown variant ") {
            // The variants are API values (`one of `a`, `b``), not Rust names.
            let values: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            Cow::Owned(format!("must be one of {}", values.join(", ")))
        } else {
            Cow::Borrowed("has the wrong type or value")
        };
        return (field, problem);
    }
    (field, Cow::Borrowed("has the wrong type or value"))
}

/// What a value must be, from serde's `expected ...` (a JSON type, never
/// a Rust type's name).
fn expected_type(expected: &str) -> Cow<'static, str> {
    if let Some(range) = integer_range(expected) {
        return Cow::Owned(range);
    }
    Cow::Borrowed(match expected {
        e if e.contains("string") || e == "a character" => "must be a string",
        "a boolean" => "must be true or false",
        "a sequence" => "must be an array",
        "f32" | "f64" => "must be a number",
        e if e.starts_with("struct ") || e.starts_with("a map") || e.starts_with("map") => {
            "must be a JSON object"
        }
        _ => "has the wrong type",
    })
}

/// `must be an integer from A to B` for serde's names of integer types.
fn integer_range(expected: &str) -> Option<String> {
    let (lo, hi): (i128, i128) = match expected {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" | "usize" => (0, u64::MAX.into()),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => (i64::MIN.into(), i64::MAX.into()),
        _ => return None,
    };
    Some(format!("must be an integer from {lo} to {hi}"))
}

/// A secret form value: wiped on drop, hidden from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret itself; keep it out of logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An OAuth2 token request (RFC 6749 sections 4.3 and 6), read from an
/// `application/x-www-form-urlencoded` body. `client_id` and
/// `client_secret` (sent by Swagger UI's Authorize dialog) are ignored, as
/// are unknown parameters (RFC 6749 section 3.2).
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    pub grant_type: Option<String>,
    /// The username (password grant).
    pub username: Option<String>,
    /// The password (password grant).
    pub password: Option<SecretString>,
    /// Space-separated scopes requested.
    pub scope: Option<String>,
    /// The refresh token (refresh grant).
    pub refresh_token: Option<SecretString>,
}

/// The parameters whose repetition is an error (RFC 6749 section 3.2).
const TOKEN_PARAMETERS: [&str; 5] = [
    "grant_type",
    "username",
    "password",
    "scope",
    "refresh_token",
];

impl TokenRequest {
    /// Parses a form body.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        let mut request = TokenRequest::default();
        let mut seen = [false; TOKEN_PARAMETERS.len()];
        for (name, value) in form_urlencoded::parse(body) {
            let Some(index) = TOKEN_PARAMETERS.iter().position(|p| *p == name) else {
                continue;
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(OAuthError::InvalidRequest(Cow::Owned(format!(
                    "The parameter '{}' is repeated",
                    TOKEN_PARAMETERS[index]
                ))));
            }
            let value = value.into_owned();
            match index {
                0 => request.grant_type = Some(value),
                1 => request.username = Some(value),
                2 => request.password = Some(SecretString::new(value)),
                3 => request.scope = Some(value),
                _ => request.refresh_token = Some(SecretString::new(value)),
            }
        }
        Ok(request)
    }
}

impl<S: Send + Sync> FromRequest<S> for TokenRequest {
    type Rejection = OAuthError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if media_type(req.headers()).as_deref() != Some("application/x-www-form-urlencoded") {
            return Err(OAuthError::InvalidRequest(Cow::Borrowed(
                "The token request must be an application/x-www-form-urlencoded form",
            )));
        }
        let bytes = read_body(req).await.map_err(|e| match e {
            ApiError::PayloadTooLarge { limit } => OAuthError::RequestTooLarge { limit },
            other => OAuthError::InvalidRequest(Cow::Owned(other.to_string())),
        })?;
        Self::parse(&bytes)
    }
}

/// The client's IP address, resolved once per request by [`serve`]: the
/// socket peer, or behind a trusted proxy the address it forwarded
/// ([`crate::client_ip`]). Without [`serve`], the socket peer from axum's
/// connect info; `None` when there is neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    fn of(extensions: &axum::http::Extensions) -> Self {
        extensions.get::<ClientIp>().copied().unwrap_or_else(|| {
            ClientIp(
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_canonical()),
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp::of(&parts.extensions))
    }
}

/// A positive 64-bit id from a one-segment path (`/items/{id}`), written
/// as plain decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ResourceId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::validation("id", "must be a positive integer"))?;
        Self::parse(&raw)
    }
}

impl ResourceId {
    /// A path segment (already percent-decoded) as an id: plain decimal
    /// digits of a positive 64-bit integer (`+2`, ` 2` and `02x` are not
    /// ids), else 422 `id: must be a positive integer`.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        crate::page::parse_positive(raw)
            .map(ResourceId)
            .ok_or_else(|| ApiError::validation("id", "must be a positive integer"))
    }
}

/// The router fallback: 404 in the contract's shape.
pub async fn not_found() -> ApiError {
    ApiError::not_found("No route matches this path")
}

/// The method-not-allowed fallback: 405 in the contract's shape.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Middleware that logs the cause of every 5xx answer (carried in the
/// response's extensions), so handlers and `IntoResponse` stay free of
/// side effects and clients never see internals.
pub async fn log_server_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(detail) = response.extensions().get::<ServerErrorDetail>() {
        tracing::error!(status = response.status().as_u16(), error = %detail.0, "request failed");
    }
    response
}

/// The layers every service wants, in one place:
/// - JSON 404 / 405 fallbacks;
/// - request spans with method, *path* and client address only: the query
///   string (where a careless client may put a token or password) and
///   headers never reach the logs;
/// - one line per answer at INFO, except refused requests (4xx), which are
///   logged at DEBUG so a flood of them does not flood the log;
/// - the cause of every 5xx logged at ERROR, never sent;
/// - the body limit ([`MAX_BODY_BYTES`]), answered by the extractors as 413;
/// - a panicking handler answered with a generic 500.
pub fn with_service_layers<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
) -> axum::Router<S> {
    use tower_http::catch_panic::CatchPanicLayer;
    use tower_http::trace::TraceLayer;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(log_server_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let client = ClientIp::of(request.extensions()).0;
                    tracing::info_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        client = client.map(tracing::field::display),
                    )
                })
                .on_response(log_response),
        )
}

/// The access-log line of an answer: DEBUG for a refused request (4xx),
/// INFO otherwise (a 5xx's cause has its own ERROR line).
fn log_response<B>(response: &Response<B>, latency: Duration, _span: &tracing::Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_millis();
    if response.status().is_client_error() {
        tracing::debug!(status, latency_ms, "refused");
    } else {
        tracing::info!(status, latency_ms, "answered");
    }
}

/// How long request headers may take to arrive before the connection is
/// closed (slow-client protection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`serve`] faces the network.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Whose forwarding headers name the client.
    pub trusted_proxies: TrustedProxies,
    /// A request not answered in time gets 503 `temporarily_unavailable`.
    pub request_timeout: Duration,
    /// Headers not complete in time: the connection is closed.
    pub header_read_timeout: Duration,
}

impl ServeOptions {
    /// The options a service's [`TrafficSettings`] ask for, with
    /// [`HEADER_READ_TIMEOUT`].
    pub fn from_settings(traffic: &TrafficSettings) -> Self {
        Self {
            trusted_proxies: traffic.trusted_proxies.clone(),
            request_timeout: traffic.request_timeout,
            header_read_timeout: HEADER_READ_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (each is bounded by the request timeout).
///
/// Unlike `axum::serve`, it closes connections whose headers do not arrive
/// within `header_read_timeout`, answers requests not done within
/// `request_timeout` with 503, and stores each request's [`ClientIp`]
/// (resolved through `trusted_proxies`) and axum's
/// `ConnectInfo<SocketAddr>` in its extensions.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let options = Arc::new(options);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was
                    // accepted: keep serving the others.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let options = options.clone();
        let service = hyper::service::service_fn(move |request| {
            answer(router.clone(), options.clone(), peer, request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that hangs up or times out is not the service's error.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One request: its client address, then the router within the timeout.
async fn answer(
    router: axum::Router,
    options: Arc<ServeOptions>,
    peer: SocketAddr,
    request: axum::http::Request<hyper::body::Incoming>,
) -> Result<Response, Infallible> {
    use tower::ServiceExt as _;

    // A body the router leaves unread is read away afterwards (or the
    // connection closed), so the connection can serve the next request.
    let (parts, incoming) = request.into_parts();
    let (body, leftover) = unread_body::TrackedBody::new(incoming);
    let mut request = Request::from_parts(parts, axum::body::Body::new(body));
    let client = options
        .trusted_proxies
        .client_address(peer.ip(), request.headers());
    request.extensions_mut().insert(ConnectInfo(peer));
    request.extensions_mut().insert(ClientIp(Some(client)));
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    match tokio::time::timeout(options.request_timeout, router.oneshot(request)).await {
        Ok(Ok(response)) => Ok(unread_body::finish(response, &leftover).await),
        Ok(Err(never)) => match never {},
        Err(_) => {
            tracing::warn!(%method, %path, %client, "request not answered in time");
            // Whatever is left of a body that took this long is not waited for.
            Ok(unread_body::closing(
                ApiError::Unavailable(None).into_response(),
            ))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM: pass it to [`serve`] (or
/// `axum::serve(..).with_graceful_shutdown(..)`) so in-flight requests finish.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The answer for a panicking handler (with tower-http's `CatchPanicLayer`):
/// a generic 500; the panic message is logged, never sent.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal(std::sync::Arc::new(std::io::Error::other(
        "handler panicked",
    )))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Signup {
        username: String,
        age: Option<u8>,
    }

    fn describe(body: &str) -> String {
        match parse_json::<Signup>(body.as_bytes()) {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("{} {e}", e.clone().into_response().status().as_u16()),
        }
    }

    #[test]
    fn json_errors() {
        assert_eq!(describe(r#"{"username":"ann"}"#), "ok");
        assert_eq!(describe(r#"{"username":"ann","role":"admin"}"#), "ok");
        assert_eq!(
            describe(r#"{"username":"ann"#),
            "400 The request body is not valid JSON"
        );
        assert_eq!(
            describe(r#"{"username":"ann"} trailing"#),
            "400 The request body is not valid JSON"
        );
        assert_eq!(describe(r#"[1,"#), "400 The request body is not valid JSON");
        assert_eq!(describe(r#"{}"#), "422 username: field required");
        assert_eq!(
            describe(r#"{"username":null}"#),
            "422 username: must be a string"
        );
        assert_eq!(
            describe(r#"{"username":"a","age":300}"#),
            "422 age: must be an integer from 0 to 255"
        );
        assert_eq!(
            describe(r#"{"username":"a","age":"old"}"#),
            "422 age: must be an integer from 0 to 255"
        );
        assert_eq!(describe(r#""ann""#), "422 body: must be a JSON object");
        assert_eq!(describe(r#"[1]"#), "422 body: must be a JSON object");
        assert_eq!(
            describe(r#"{"username":"a","username":"b"}"#),
            "422 username: given more than once"
        );
    }

    /// The level of every event, in order.
    #[derive(Default, Clone)]
    struct Levels(Arc<std::sync::Mutex<Vec<tracing::Level>>>);

    impl tracing::Subscriber for Levels {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            self.0.lock().unwrap().push(*event.metadata().level());
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn refused_requests_are_logged_below_info() {
        let levels = Levels::default();
        tracing::subscriber::with_default(levels.clone(), || {
            for status in [200, 204, 400, 401, 404, 429, 503] {
                let response = Response::builder()
                    .status(status)
                    .body(axum::body::Body::empty())
                    .unwrap();
                log_response(&response, Duration::from_millis(3), &tracing::Span::none());
            }
        });
        use tracing::Level;
        assert_eq!(
            *levels.0.lock().unwrap(),
            [
                Level::INFO,
                Level::INFO,
                Level::DEBUG,
                Level::DEBUG,
                Level::DEBUG,
                Level::DEBUG,
                Level::INFO
            ]
        );
    }

    #[test]
    fn token_forms() {
        let r = TokenRequest::parse(
            b"grant_type=password&username=ann&password=p%40ss+word&scope=me+items&client_id=x",
        )
        .unwrap();
        assert_eq!(r.grant_type.as_deref(), Some("password"));
        assert_eq!(
            r.password.as_ref().map(SecretString::expose),
            Some("p@ss word")
        );
        assert_eq!(r.scope.as_deref(), Some("me items"));
        assert!(!format!("{r:?}").contains("p@ss"));
        let e = TokenRequest::parse(b"grant_type=password&username=a&username=b").unwrap_err();
        assert_eq!(e.to_string(), "The parameter 'username' is repeated");
        assert!(TokenRequest::parse(b"client_id=a&client_id=b").is_ok());
    }
}
