//! Mailed one-time tokens: `POST /recover`, `GET` and `POST /verify`, and
//! the mails themselves (upstream's `recover.go`, `verify.go`, `mail.go`).
//!
//! As upstream: a mail carries a 6-digit code (`token`) and a token hash,
//! SHA-224 of the email and the code, in hex (`token_hash`, also the link's
//! `token`). `POST /verify` takes `{type, token_hash}` or
//! `{type, email, token}`; `GET /verify` is the link and redirects. A token
//! is single-use, expires after the OTP expiry, and a new one of the same
//! kind voids the one before. The stub stores only the SHA-256 of the token
//! hash.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{LOCATION, REFERER};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha224};
use time::OffsetDateTime;
use url::Url;

use crate::api::{
    AppState, Limited, Shared, lock, nullable, query_param, read_params, unexpected, validate_email,
};
use crate::errors::GoTrueError;
use crate::mail::{Letter, MailKind};
use crate::net::ConnInfo;
use crate::store::{AuthMethod, OtpKind, Store};

/// Upstream's default OTP length for mails.
const OTP_DIGITS: u32 = 6;
/// Longest `redirect_to` honoured (it goes into the mail, one line).
const MAX_REDIRECT_BYTES: usize = 512;

/// Where `GET /verify` may send the browser (upstream's `SITE_URL` and
/// `URI_ALLOW_LIST`).
#[derive(Debug, Clone)]
pub(crate) struct Redirects {
    site_url: Url,
    allow_list: Vec<String>,
}

impl Redirects {
    /// `site_url` must be an absolute http(s) URL.
    pub(crate) fn new(site_url: &str, allow_list: Vec<String>) -> Result<Self, String> {
        let parsed = Url::parse(site_url).map_err(|e| format!("site URL {site_url:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!("site URL {site_url:?} must be an http(s) URL"));
        }
        Ok(Self {
            site_url: parsed,
            allow_list,
        })
    }

    /// Upstream's `GetReferrer`: the `redirect_to` header or query
    /// parameter, else the `Referer`, if allowed; else the site URL.
    pub(crate) fn target(&self, headers: &HeaderMap, uri: &Uri) -> String {
        let header = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let asked = header("redirect_to").or_else(|| query_param(uri, "redirect_to"));
        [asked, header(REFERER.as_str())]
            .into_iter()
            .flatten()
            .find_map(|url| self.allowed(&url))
            .unwrap_or_else(|| self.site_url.to_string())
    }

    /// `candidate`, normalised (ASCII, percent-encoded), if upstream's
    /// `IsRedirectURLValid` would allow it.
    fn allowed(&self, candidate: &str) -> Option<String> {
        if candidate.len() > MAX_REDIRECT_BYTES {
            return None;
        }
        let url = Url::parse(candidate).ok()?;
        (self.allows(candidate, &url) && url.as_str().len() <= MAX_REDIRECT_BYTES)
            .then(|| url.to_string())
    }

    /// The site's scheme and host (any port on localhost), a loopback IP,
    /// or an allow-list entry.
    fn allows(&self, candidate: &str, url: &Url) -> bool {
        let site = &self.site_url;
        let host = url.host_str().unwrap_or_default();
        if url.scheme() == site.scheme()
            && host == site.host_str().unwrap_or_default()
            && (url.port_or_known_default() == site.port_or_known_default() || host == "localhost")
        {
            return true;
        }
        if let Some(url::Host::Ipv4(ip)) = url.host() {
            return ip.is_loopback();
        }
        if let Some(url::Host::Ipv6(ip)) = url.host() {
            return ip.is_loopback();
        }
        let without_fragment = candidate.split('#').next().unwrap_or_default();
        self.allow_list
            .iter()
            .any(|prefix| without_fragment.starts_with(prefix.as_str()))
    }
}

/// A fresh one-time code: `OTP_DIGITS` uniformly random decimal digits.
fn new_otp() -> String {
    let modulus = 10u32.pow(OTP_DIGITS);
    // The largest multiple of `modulus` that fits: rejecting values at or
    // above it keeps every code equally likely.
    let bound = u32::MAX - u32::MAX % modulus;
    loop {
        let n = u32::from_le_bytes(auth_kit::random::bytes::<4>());
        if n < bound {
            return format!("{:0width$}", n % modulus, width = OTP_DIGITS as usize);
        }
    }
}

/// Upstream's `GenerateTokenHash`: hex SHA-224 of the address and the code.
fn token_hash(email: &str, otp: &str) -> String {
    hex::encode(Sha224::digest(format!("{email}{otp}").as_bytes()))
}

fn too_many(message: impl Into<String>) -> GoTrueError {
    GoTrueError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "over_email_send_rate_limit",
        message,
    )
}

/// Writes a mail of `kind` with a fresh token to `user_id` (upstream's
/// `sendConfirmation` / `sendPasswordRecovery`): refused with 429
/// `over_email_send_rate_limit` within the per-address interval or over the
/// project's quota; a mail that cannot be written is upstream's 500 and
/// changes nothing.
pub(crate) async fn send_mail(
    state: &Shared,
    user_id: &str,
    kind: OtpKind,
    redirect_to: &str,
) -> Result<(), GoTrueError> {
    let runtime = state.runtime();
    let now = OffsetDateTime::now_utc();
    // Reserve the slot first, so two requests at once send one mail.
    let (email, previous) =
        reserve_mail_slot(state, user_id, kind, runtime.email_max_frequency, now)?;
    // Upstream counts its quota only while autoconfirm is off.
    if let (false, Some(limit)) = (runtime.autoconfirm, runtime.email_rate_limit)
        && !lock(&state.mails_sent).admit(limit, Instant::now())
    {
        release_mail_slot(state, user_id, kind, previous);
        return Err(too_many("email rate limit exceeded"));
    }
    let mail_kind = match kind {
        OtpKind::Confirmation => MailKind::Confirmation,
        OtpKind::Recovery => MailKind::Recovery,
    };
    let otp = new_otp();
    let hash = token_hash(&email, &otp);
    let link = mail_link(&state.issuer, &hash, mail_kind, redirect_to);
    let letter = Letter {
        to: &email,
        kind: mail_kind,
        link: &link,
        otp: &otp,
        token_hash: &hash,
    };
    match state.outbox.deliver(&letter).await {
        Ok(mail) => {
            if let Some(path) = &mail.path {
                tracing::info!(kind = mail_kind.verify_type(), path = %path.display(), "mail written");
            }
            lock(&state.store).put_one_time_token(user_id, kind, &hash, now);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "the mail could not be written");
            release_mail_slot(state, user_id, kind, previous);
            Err(GoTrueError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "unexpected_failure",
                match kind {
                    OtpKind::Confirmation => "Error sending confirmation email",
                    OtpKind::Recovery => "Error sending recovery email",
                },
            ))
        }
    }
}

/// Marks a mail of `kind` to `user_id` as sent at `now`, unless one went
/// out less than `interval` ago (429); the user's address, and the time
/// the mark replaced (for [`release_mail_slot`]).
fn reserve_mail_slot(
    state: &Shared,
    user_id: &str,
    kind: OtpKind,
    interval: Duration,
    now: OffsetDateTime,
) -> Result<(String, Option<OffsetDateTime>), GoTrueError> {
    let mut store = lock(&state.store);
    let user = store.user_mut(user_id).ok_or_else(unexpected)?;
    let email = user.email.clone();
    let sent_at = user.sent_at(kind);
    let interval = time::Duration::try_from(interval).unwrap_or(time::Duration::MAX);
    if let Some(sent) = *sent_at
        && sent + interval > now
    {
        let left = (sent + interval - now).whole_seconds();
        return Err(too_many(format!(
            "For security purposes, you can only request this after {left} seconds."
        )));
    }
    let previous = sent_at.replace(now);
    Ok((email, previous))
}

/// Undoes [`reserve_mail_slot`] for a mail that was not written.
fn release_mail_slot(
    state: &Shared,
    user_id: &str,
    kind: OtpKind,
    previous: Option<OffsetDateTime>,
) {
    if let Some(user) = lock(&state.store).user_mut(user_id) {
        *user.sent_at(kind) = previous;
    }
}

/// The mail's link: `GET /verify` with the token hash, its type and where
/// to go after.
fn mail_link(issuer: &str, token_hash: &str, kind: MailKind, redirect_to: &str) -> String {
    format!(
        "{issuer}/verify?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token_hash)
            .append_pair("type", kind.verify_type())
            .append_pair("redirect_to", redirect_to)
            .finish()
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RecoverParams {
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    code_challenge: String,
    #[serde(deserialize_with = "nullable")]
    code_challenge_method: String,
}

/// `POST /recover`: `{}` whether or not the address is registered; a
/// recovery mail when it is.
pub(crate) async fn recover(
    State(state): State<AppState>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    state.check_rate_limit(Limited::Recover, conn.peer.ip())?;
    let redirect_to = state.redirects.target(request.headers(), request.uri());
    let params: RecoverParams = read_params(request.into_body()).await?;
    if params.email.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "Password recovery requires an email",
        ));
    }
    let email = validate_email(&params.email)?;
    if !params.code_challenge.is_empty() || !params.code_challenge_method.is_empty() {
        return Err(GoTrueError::bad_request(
            "validation_failed",
            "gotrue-stub does not support the PKCE flow",
        ));
    }
    let user_id = lock(&state.store)
        .user_by_email(&email)
        .map(|u| u.id.clone());
    if let Some(user_id) = user_id {
        send_mail(&state, &user_id, OtpKind::Recovery, &redirect_to).await?;
    }
    Ok(Json(json!({})))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct VerifyParams {
    #[serde(rename = "type", deserialize_with = "nullable")]
    kind: String,
    #[serde(deserialize_with = "nullable")]
    token: String,
    #[serde(deserialize_with = "nullable")]
    token_hash: String,
    #[serde(deserialize_with = "nullable")]
    email: String,
    #[serde(deserialize_with = "nullable")]
    phone: String,
    #[serde(deserialize_with = "nullable")]
    redirect_to: String,
}

fn validation(message: &'static str) -> GoTrueError {
    GoTrueError::bad_request("validation_failed", message)
}

fn otp_expired(message: &'static str) -> GoTrueError {
    GoTrueError::forbidden("otp_expired", message)
}

const LINK_EXPIRED: &str = "Email link is invalid or has expired";
const CODE_EXPIRED: &str = "Token has expired or is invalid";

/// The token kinds a verification `type` may use, and the type it acts as
/// once the token is found (`email` is either).
fn kinds_of(kind: &str) -> Option<&'static [OtpKind]> {
    match kind {
        "email" => Some(&[OtpKind::Confirmation, OtpKind::Recovery]),
        "signup" | "invite" => Some(&[OtpKind::Confirmation]),
        "recovery" | "magiclink" => Some(&[OtpKind::Recovery]),
        // The stub never mails an email-change token: nothing matches.
        "email_change" => Some(&[]),
        _ => None,
    }
}

/// Upstream's `verifyTokenHash`: the user whose live token this is.
fn find_by_token_hash(
    store: &Store,
    kind: &str,
    hash: &str,
    expiry: Duration,
) -> Result<(String, OtpKind), GoTrueError> {
    let kinds = kinds_of(kind).ok_or_else(|| validation("Invalid email verification type"))?;
    let token = store
        .one_time_token(hash, kinds)
        .ok_or_else(|| otp_expired(LINK_EXPIRED))?;
    if is_expired(token.sent_at, expiry) {
        return Err(otp_expired(LINK_EXPIRED));
    }
    Ok((token.user_id.clone(), token.kind))
}

/// Upstream's `verifyUserAndToken` for email codes: the address's user, if
/// the code is its live token of the right kind.
fn find_by_email_and_code(
    store: &Store,
    kind: &str,
    email: &str,
    hash: &str,
    expiry: Duration,
) -> Result<(String, OtpKind), GoTrueError> {
    let user = store
        .user_by_email(email)
        .ok_or_else(|| otp_expired(CODE_EXPIRED))?;
    let kinds = kinds_of(kind).unwrap_or(&[]);
    store
        .one_time_token(hash, kinds)
        .filter(|t| t.user_id == user.id && !is_expired(t.sent_at, expiry))
        .map(|t| (t.user_id.clone(), t.kind))
        .ok_or_else(|| otp_expired(CODE_EXPIRED))
}

fn is_expired(sent_at: OffsetDateTime, expiry: Duration) -> bool {
    let expiry = time::Duration::try_from(expiry).unwrap_or(time::Duration::MAX);
    OffsetDateTime::now_utc() >= sent_at.saturating_add(expiry)
}

/// Spends the token: a confirmation confirms the email; a recovery (which
/// also confirms an unconfirmed email, as upstream) lets the user in. Every
/// mailed token of the user is void afterwards. Then a new session.
fn redeem(
    state: &Shared,
    store: &mut Store,
    user_id: &str,
    kind: OtpKind,
) -> Result<Value, GoTrueError> {
    let user = store.user_mut(user_id).ok_or_else(unexpected)?;
    let now = OffsetDateTime::now_utc();
    if kind == OtpKind::Confirmation || !user.is_confirmed() {
        user.email_confirmed_at = Some(now);
    }
    user.updated_at = now;
    store.clear_one_time_tokens(user_id);
    state.sign_in(store, user_id, AuthMethod::Otp, None)
}

/// `POST /verify`: a session, or 403 `otp_expired` for a token that is
/// unknown, spent, expired or of another type.
pub(crate) async fn verify(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<Value>, GoTrueError> {
    let mut params: VerifyParams = read_params(request.into_body()).await?;
    if params.kind.is_empty() {
        return Err(validation("Verify requires a verification type"));
    }
    if params.token.is_empty() == params.token_hash.is_empty() {
        return Err(validation("Verify requires either a token or a token hash"));
    }
    let expiry = state.runtime().otp_expiry;
    let mut store = lock(&state.store);
    let (user_id, kind) = if params.token.is_empty() {
        if !params.email.is_empty() || !params.phone.is_empty() || !params.redirect_to.is_empty() {
            return Err(validation(
                "Only the token_hash and type should be provided",
            ));
        }
        find_by_token_hash(&store, &params.kind, &params.token_hash, expiry)?
    } else if !params.phone.is_empty() && params.email.is_empty() {
        // No stub user has a phone number.
        return Err(otp_expired(CODE_EXPIRED));
    } else if params.phone.is_empty() && !params.email.is_empty() {
        params.email = validate_email(&params.email)
            .map_err(|_| GoTrueError::unprocessable("validation_failed", "Invalid email format"))?;
        let hash = token_hash(&params.email, &params.token);
        find_by_email_and_code(&store, &params.kind, &params.email, &hash, expiry)?
    } else {
        return Err(validation(
            "Only an email address or phone number should be provided on verify",
        ));
    };
    redeem(&state, &mut store, &user_id, kind).map(Json)
}

/// `GET /verify?token=<token hash>&type=...&redirect_to=...`, the link in
/// a mail: 303 to `redirect_to` (if allowed, else the site URL) with the
/// session in the fragment, or with `error`, `error_code` and
/// `error_description` there.
pub(crate) async fn verify_link(State(state): State<AppState>, request: Request) -> Response {
    let uri = request.uri();
    let token = query_param(uri, "token").unwrap_or_default();
    let kind = query_param(uri, "type").unwrap_or_default();
    if kind.is_empty() {
        return validation("Verify requires a verification type").into_response();
    }
    if token.is_empty() {
        return validation("Verify requires a token or a token hash").into_response();
    }
    let redirect_to = state.redirects.target(request.headers(), uri);
    let expiry = state.runtime().otp_expiry;
    let outcome = {
        let mut store = lock(&state.store);
        find_by_token_hash(&store, &kind, &token, expiry)
            .and_then(|(user_id, found)| redeem(&state, &mut store, &user_id, found))
    };
    let fragment = match outcome {
        Ok(session) => {
            let field = |name: &str| match &session[name] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", &field("access_token"))
                .append_pair("expires_at", &field("expires_at"))
                .append_pair("expires_in", &field("expires_in"))
                .append_pair("refresh_token", &field("refresh_token"))
                .append_pair("sb", "")
                .append_pair("token_type", &field("token_type"))
                .append_pair("type", &kind)
                .finish()
        }
        Err(error) => {
            let (status, code, message) = error.parts();
            let mut fragment = form_urlencoded::Serializer::new(String::new());
            if let Some(oauth) = oauth_error(status) {
                fragment.append_pair("error", oauth);
            }
            fragment
                .append_pair("error_code", code)
                .append_pair("error_description", message)
                .append_pair("sb", "")
                .finish()
        }
    };
    let mut location = redirect_to;
    if let Some(at) = location.find('#') {
        location.truncate(at);
    }
    location.push('#');
    location.push_str(&fragment);
    match HeaderValue::try_from(location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        Err(_) => unexpected().into_response(),
    }
}

/// Upstream's `oauthErrorMap`.
fn oauth_error(status: StatusCode) -> Option<&'static str> {
    match status.as_u16() {
        400 => Some("invalid_request"),
        401 => Some("unauthorized_client"),
        403 => Some("access_denied"),
        500 => Some("server_error"),
        503 => Some("temporarily_unavailable"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn otps_are_six_digits() {
        for _ in 0..200 {
            let otp = new_otp();
            assert_eq!(otp.len(), 6, "{otp}");
            assert!(otp.bytes().all(|b| b.is_ascii_digit()), "{otp}");
        }
    }

    #[test]
    fn token_hash_is_upstreams() {
        // hex(SHA-224("ann@example.com123456")), as upstream's
        // crypto.GenerateTokenHash computes it.
        let hash = token_hash("ann@example.com", "123456");
        assert_eq!(hash.len(), 56);
        assert_eq!(hash, hex::encode(Sha224::digest(b"ann@example.com123456")));
    }

    #[test]
    fn redirects_follow_upstreams_rules() {
        let redirects = Redirects::new(
            "https://app.example.com",
            vec!["myapp://callback".to_owned()],
        )
        .unwrap();
        let check = |candidate: &str, expected: bool| {
            assert_eq!(
                redirects.allowed(candidate).is_some(),
                expected,
                "{candidate}"
            );
        };
        check("https://app.example.com/reset", true);
        check("https://app.example.com:8443/reset", false);
        check("http://app.example.com/reset", false);
        check("https://evil.example.net/", false);
        check("http://127.0.0.1:5173/", true);
        check("http://[::1]:5173/", true);
        check("myapp://callback/reset", true);
        check("not a url", false);
        assert_eq!(
            redirects.allowed("http://127.0.0.1/caf\u{e9}").as_deref(),
            Some("http://127.0.0.1/caf%C3%A9"),
            "normalised to ASCII: it goes into a Location header"
        );
        assert!(Redirects::new("ftp://x", Vec::new()).is_err());
        assert!(Redirects::new("nope", Vec::new()).is_err());
        let headers = HeaderMap::new();
        let uri: Uri = "/recover?redirect_to=https%3A%2F%2Fevil.example.net%2F"
            .parse()
            .unwrap();
        assert_eq!(
            redirects.target(&headers, &uri),
            "https://app.example.com/",
            "a foreign redirect falls back to the site URL"
        );
    }
}
