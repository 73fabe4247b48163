//! What a stub instance is started with.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
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

/// A per-client-IP limit on `POST /auth/v1/token`: at most `requests` in
/// each fixed window of `per`; beyond it, 429 `over_request_rate_limit`.
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
/// allowed, minimum password length 6, access tokens valid 3600 s, no rate
/// limit.
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
    /// carrying `confirmation_sent_at`, and password sign-in fails with
    /// `email_not_confirmed` until [`crate::StubHandle::confirm_email`].
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
}
