//! What a stub instance is started with.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// How the stub signs access tokens. There is no default: a test says which
/// kind of Supabase project it stands in for.
#[derive(Clone, PartialEq, Eq)]
pub enum Signing {
    /// ES256 with a P-256 key generated at start, published in the JWKS with
    /// a `kid` (what new Supabase projects do).
    Es256,
    /// HS256 with a shared secret of at least 32 bytes (a legacy project's
    /// JWT secret). The JWKS is `{"keys":[]}`.
    Hs256 {
        /// The secret, used as its UTF-8 bytes.
        secret: String,
    },
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signing::Es256 => f.write_str("Es256"),
            Signing::Hs256 { .. } => f.write_str("Hs256 { secret: <redacted> }"),
        }
    }
}

/// A rate limit: at most `requests` in each fixed window of `per`.
///
/// Per client IP on `POST /auth/v1/token` and `POST /auth/v1/recover`
/// (beyond it, 429 `over_request_rate_limit`); for the whole project on the
/// mails it writes (429 `over_email_send_rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub per: Duration,
}

/// How to start a stub: [`StubConfig::new`] with the signing mode, then the
/// `#[must_use]` builder methods for anything that differs from upstream's
/// defaults.
///
/// Defaults: loopback on a random port, email autoconfirm on, signups
/// allowed, minimum password length 6, access tokens valid 3600 s, no
/// per-IP rate limit; mails kept in memory only (no outbox folder), site
/// URL `http://127.0.0.1:3000`, one-time tokens valid 86400 s, at most one
/// mail of a kind per address per 60 s, and (with autoconfirm off) at most
/// 30 mails per hour for the project.
#[derive(Debug, Clone)]
pub struct StubConfig {
    pub(crate) signing: Signing,
    pub(crate) host: IpAddr,
    pub(crate) port: u16,
    pub(crate) public_url: Option<String>,
    pub(crate) autoconfirm: bool,
    pub(crate) disable_signup: bool,
    pub(crate) password_min_length: usize,
    pub(crate) access_token_ttl: Duration,
    pub(crate) token_rate_limit: Option<RateLimit>,
    pub(crate) anon_key: Option<String>,
    pub(crate) outbox: Option<PathBuf>,
    pub(crate) site_url: String,
    pub(crate) redirect_allow_list: Vec<String>,
    pub(crate) otp_expiry: Duration,
    pub(crate) email_max_frequency: Duration,
    pub(crate) email_rate_limit: Option<RateLimit>,
    pub(crate) recover_rate_limit: Option<RateLimit>,
}

impl StubConfig {
    /// A stub signing with `signing`, everything else as upstream's defaults.
    pub fn new(signing: Signing) -> Self {
        Self {
            signing,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            public_url: None,
            autoconfirm: true,
            disable_signup: false,
            password_min_length: 6,
            access_token_ttl: Duration::from_secs(3600),
            token_rate_limit: None,
            anon_key: None,
            outbox: None,
            site_url: DEFAULT_SITE_URL.to_owned(),
            redirect_allow_list: Vec::new(),
            otp_expiry: Duration::from_secs(86_400),
            email_max_frequency: Duration::from_secs(60),
            email_rate_limit: Some(RateLimit {
                requests: 30,
                per: Duration::from_secs(3600),
            }),
            recover_rate_limit: None,
        }
    }

    /// Accept this string as the project's anon key instead of minting one,
    /// so a service's `.env` and the stub agree across restarts (the stamped
    /// supabase project writes one into its `.env`).
    #[must_use]
    pub fn anon_key(mut self, key: impl Into<String>) -> Self {
        self.anon_key = Some(key.into());
        self
    }

    /// An ES256 stub (a new Supabase project).
    pub fn es256() -> Self {
        Self::new(Signing::Es256)
    }

    /// An HS256 stub with `secret` (a legacy Supabase project).
    pub fn hs256(secret: impl Into<String>) -> Self {
        Self::new(Signing::Hs256 {
            secret: secret.into(),
        })
    }

    /// Listen on `host` (default 127.0.0.1).
    #[must_use]
    pub fn host(mut self, host: IpAddr) -> Self {
        self.host = host;
        self
    }

    /// Listen on `port` (default 0: any free port).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The URL clients use (the `SUPABASE_URL`, also the base of `iss`),
    /// when it is not `http://<listen address>` (behind a proxy, say).
    #[must_use]
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Turn email autoconfirm off: signup answers with a user object
    /// carrying `confirmation_sent_at` and writes a confirmation mail, and
    /// password sign-in fails with `email_not_confirmed` until the mail's
    /// token is verified (or [`crate::StubHandle::confirm_email`]).
    #[must_use]
    pub fn require_email_confirmation(mut self) -> Self {
        self.autoconfirm = false;
        self
    }

    /// Refuse every signup with 422 `signup_disabled`.
    #[must_use]
    pub fn disable_signup(mut self) -> Self {
        self.disable_signup = true;
        self
    }

    /// Passwords shorter than `chars` bytes are `weak_password` (reason
    /// `length`). Upstream's default is 6.
    #[must_use]
    pub fn password_min_length(mut self, chars: usize) -> Self {
        self.password_min_length = chars;
        self
    }

    /// How long access tokens live (upstream default 3600 s).
    #[must_use]
    pub fn access_token_ttl(mut self, ttl: Duration) -> Self {
        self.access_token_ttl = ttl;
        self
    }

    /// Rate-limit the token endpoint per client IP.
    #[must_use]
    pub fn token_rate_limit(mut self, limit: RateLimit) -> Self {
        self.token_rate_limit = Some(limit);
        self
    }

    /// Also write every mail as an RFC 5322 `.eml` file into `dir` (created
    /// at start if missing). Mails are kept in memory either way
    /// ([`crate::StubHandle::mails`]); nothing is ever sent.
    #[must_use]
    pub fn outbox(mut self, dir: impl Into<PathBuf>) -> Self {
        self.outbox = Some(dir.into());
        self
    }

    /// The app's URL (upstream's `SITE_URL`): where `GET /verify` redirects
    /// when the link's `redirect_to` is missing or not allowed. Default
    /// `http://127.0.0.1:3000`, the Supabase CLI's.
    #[must_use]
    pub fn site_url(mut self, url: impl Into<String>) -> Self {
        self.site_url = url.into();
        self
    }

    /// Also allow redirects to URLs starting with `prefix` (upstream's
    /// `URI_ALLOW_LIST`, which takes glob patterns; the stub takes
    /// prefixes). End it with `/`: `https://app.example.com` would also
    /// allow `https://app.example.com.evil.net`.
    #[must_use]
    pub fn allow_redirect(mut self, prefix: impl Into<String>) -> Self {
        self.redirect_allow_list.push(prefix.into());
        self
    }

    /// How long a mailed one-time token stays valid (upstream's
    /// `MAILER_OTP_EXP`, default 86400 s).
    #[must_use]
    pub fn otp_expiry(mut self, expiry: Duration) -> Self {
        self.otp_expiry = expiry;
        self
    }

    /// The shortest interval between two mails of one kind to one address
    /// (upstream's `SMTP_MAX_FREQUENCY`, default 60 s); sooner, 429
    /// `over_email_send_rate_limit`. Zero lifts it.
    #[must_use]
    pub fn email_max_frequency(mut self, interval: Duration) -> Self {
        self.email_max_frequency = interval;
        self
    }

    /// The project's mail quota (upstream's `RATE_LIMIT_EMAIL_SENT`,
    /// default 30 per hour), applied like upstream only while autoconfirm
    /// is off; `None` lifts it.
    #[must_use]
    pub fn email_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.email_rate_limit = limit;
        self
    }

    /// Rate-limit `POST /recover` per client IP (upstream's
    /// `RATE_LIMIT_OTP`, which only applies behind its proxy).
    #[must_use]
    pub fn recover_rate_limit(mut self, limit: RateLimit) -> Self {
        self.recover_rate_limit = Some(limit);
        self
    }
}

/// The Supabase CLI's default `site_url`.
const DEFAULT_SITE_URL: &str = "http://127.0.0.1:3000";
