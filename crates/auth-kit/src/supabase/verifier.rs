//! Access-token verification for a Supabase project.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::config::{SupabaseSettings, VerifyMode};
use crate::error::AuthError;
use crate::supabase::claims::SupabaseClaims;
use crate::supabase::client::SupabaseClient;
use crate::supabase::error::{SupabaseError, Unavailable};
use crate::token::{
    ClaimRules, InvalidToken, KeySet, KeySetError, MAX_TOKEN_BYTES, SigningAlgorithm,
};

/// The audience of every Supabase user access token.
pub const SUPABASE_AUDIENCE: &str = "authenticated";

/// The algorithms accepted from a project's JWKS.
const JWKS_ALGORITHMS: [SigningAlgorithm; 2] = [SigningAlgorithm::ES256, SigningAlgorithm::RS256];

/// When the JWKS is fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// The longest a fetched key set is used without refetching; at most 10
    /// minutes (longer values are cut to 10 minutes).
    pub max_age: Duration,
    /// The shortest interval between two fetches once a key set is known
    /// (an unknown `kid`, or an expired cache); at least 1 s.
    pub refetch_interval: Duration,
    /// The shortest interval between two attempts while no key set has
    /// ever been fetched (Supabase unreachable at start-up).
    pub retry_after_failure: Duration,
}

impl JwksTiming {
    /// SPEC section 5: cached up to 10 minutes, refetched at most once per
    /// 30 s; without any key set, a new attempt after 5 s.
    pub const STANDARD: JwksTiming = JwksTiming {
        max_age: Duration::from_secs(600),
        refetch_interval: Duration::from_secs(30),
        retry_after_failure: Duration::from_secs(5),
    };

    fn max_age_secs(&self) -> i64 {
        secs(self.max_age.min(Self::STANDARD.max_age))
    }

    fn refetch_secs(&self) -> i64 {
        secs(self.refetch_interval).max(1)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Verifies a project's access tokens. Cheap to clone; clones share the
/// JWKS cache.
///
/// Local mode checks the signature here:
/// - ES256 / RS256 tokens against the project's JWKS through
///   [`crate::token::KeySet`] (each key pinned to its algorithm). The key
///   set is cached for at most 10 minutes (less if the JWKS answer's
///   `Cache-Control` says so); a token naming an unknown `kid` triggers a
///   refetch at most once per 30 s; only one fetch is ever in flight while
///   other requests wait for its result; a failed refetch keeps the last
///   good key set.
/// - HS256 tokens with SUPABASE_JWT_SECRET through
///   [`crate::token::verify_hs256`]. Without the secret, an HS256 project
///   (its JWKS lists no keys) is asked with `GET /auth/v1/user`; in a
///   project that publishes keys, an HS256 token is refused.
///
/// Either way `aud` must be `authenticated`, `iss` must be
/// `<SUPABASE_URL>/auth/v1`, `exp` is required and at most 60 s of leeway is
/// allowed ([`crate::token::ClaimRules`]).
///
/// Remote mode asks `GET /auth/v1/user` for every token: a logout or a ban
/// takes effect at once.
#[derive(Clone)]
pub struct SupabaseVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: SupabaseClient,
    rules: ClaimRules,
    mode: VerifyMode,
    secret: Option<Zeroizing<Vec<u8>>>,
    jwks: JwksCache,
}

impl fmt::Debug for SupabaseVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupabaseVerifier")
            .field("mode", &self.inner.mode)
            .field("issuer", &self.inner.rules.issuer())
            .field(
                "hs256_secret",
                &self.inner.secret.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

impl SupabaseVerifier {
    /// A verifier for the project in `settings` that fetches through
    /// `client`, with [`JwksTiming::STANDARD`] and the system clock.
    pub fn new(settings: &SupabaseSettings, client: SupabaseClient) -> Self {
        Self::with_timing(settings, client, JwksTiming::STANDARD, Clock::System)
    }

    /// The same with other JWKS timings and clock (tests move a manual
    /// clock instead of sleeping 30 s).
    pub fn with_timing(
        settings: &SupabaseSettings,
        client: SupabaseClient,
        timing: JwksTiming,
        clock: Clock,
    ) -> Self {
        crate::token::install_crypto_provider();
        Self {
            inner: Arc::new(Inner {
                client,
                rules: ClaimRules::new(settings.auth_url(), SUPABASE_AUDIENCE, settings.leeway),
                mode: settings.verify,
                secret: settings
                    .jwt_secret
                    .as_ref()
                    .map(|s| Zeroizing::new(s.expose().as_bytes().to_vec())),
                jwks: JwksCache {
                    state: Mutex::new(CacheState::default()),
                    fetch: tokio::sync::Mutex::new(()),
                    timing,
                    clock,
                },
            }),
        }
    }

    /// Local or remote.
    pub fn mode(&self) -> VerifyMode {
        self.inner.mode
    }

    /// Fetches the JWKS now (at start-up, say) unless a fresh one is
    /// cached; returns how many usable keys it holds.
    pub async fn prefetch_keys(&self) -> Result<usize, AuthError> {
        self.inner
            .jwks
            .keys(None, &self.inner.client)
            .await
            .map(|k| k.len())
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<SupabaseClaims, AuthError> {
        if token.is_empty() {
            return Err(InvalidToken::Malformed.into());
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::TooLong.into());
        }
        if self.inner.mode == VerifyMode::Remote {
            return self.verify_remote(token).await;
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| crate::token::classify(token, e.kind()))?;
        if header.alg == Algorithm::HS256 {
            if let Some(secret) = &self.inner.secret {
                return Ok(crate::token::verify_hs256(
                    token,
                    secret,
                    &self.inner.rules,
                )?);
            }
            // No secret: ask Supabase, but only in a project that signs
            // with HS256 (no published keys), so forged HS256 tokens cannot
            // turn every request into a remote call elsewhere.
            let keys = self.inner.jwks.keys(None, &self.inner.client).await?;
            if keys.is_empty() {
                return self.verify_remote(token).await;
            }
            return Err(InvalidToken::WrongAlgorithm.into());
        }
        let kid = header.kid.ok_or(InvalidToken::UnknownKey)?;
        let keys = self.inner.jwks.keys(Some(&kid), &self.inner.client).await?;
        match keys.verify::<SupabaseClaims>(token, &self.inner.rules) {
            Ok(claims) => Ok(claims),
            Err(KeySetError::UnknownKid) => Err(InvalidToken::UnknownKey.into()),
            Err(KeySetError::Invalid(reason)) => Err(reason.into()),
        }
    }

    async fn verify_remote(&self, token: &str) -> Result<SupabaseClaims, AuthError> {
        // Only something shaped like a JWT is worth a round trip.
        if token.split('.').count() != 3 {
            return Err(InvalidToken::Malformed.into());
        }
        let user = self.inner.client.get_user(token).await?;
        Ok(SupabaseClaims::from_record(user))
    }
}

/// The cached key set and when it was (or was tried to be) fetched, in
/// the clock's seconds.
#[derive(Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    fetched_at: i64,
    max_age: i64,
    last_attempt: Option<i64>,
}

impl CacheState {
    /// The cached keys, if fresh and (when a `kid` is given) holding it.
    fn usable(&self, kid: Option<&str>, now: i64) -> Option<Arc<KeySet>> {
        let keys = self.keys.as_ref()?;
        let fresh = now.saturating_sub(self.fetched_at) < self.max_age;
        (fresh && kid.is_none_or(|k| keys.contains(k))).then(|| keys.clone())
    }

    /// Whether a fetch may start now.
    fn may_fetch(&self, now: i64, timing: &JwksTiming) -> bool {
        let Some(last) = self.last_attempt else {
            return true;
        };
        let interval = if self.keys.is_some() {
            timing.refetch_secs()
        } else {
            secs(timing.retry_after_failure)
        };
        now.saturating_sub(last) >= interval
    }
}

struct JwksCache {
    state: Mutex<CacheState>,
    /// Held while a fetch is in flight: one at a time, the others wait.
    fetch: tokio::sync::Mutex<()>,
    timing: JwksTiming,
    clock: Clock,
}

impl JwksCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state is replaced whole; a panic cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A key set to verify with: the cached one when it is fresh and knows
    /// `kid`, else the result of a refetch when one is due, else the last
    /// good one.
    async fn keys(
        &self,
        kid: Option<&str>,
        client: &SupabaseClient,
    ) -> Result<Arc<KeySet>, AuthError> {
        if let Some(keys) = self.state().usable(kid, self.clock.now()) {
            return Ok(keys);
        }
        let _in_flight = self.fetch.lock().await;
        let now = self.clock.now();
        {
            let state = self.state();
            // Fetched while this request waited?
            if let Some(keys) = state.usable(kid, now) {
                return Ok(keys);
            }
            if !state.may_fetch(now, &self.timing) {
                return state.keys.clone().ok_or_else(|| {
                    AuthError::SupabaseUnavailable(Arc::new(SupabaseError::from(
                        Unavailable::KeysUnavailable,
                    )))
                });
            }
        }
        self.state().last_attempt = Some(now);
        match client.fetch_jwks().await {
            Ok(fetched) => {
                let keys = Arc::new(KeySet::from_jwks(&fetched.keys, &JWKS_ALGORITHMS));
                let announced = fetched
                    .max_age
                    .map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
                // Never longer than 10 minutes, never shorter than the
                // refetch interval (a `no-store` must not mean a fetch per
                // request).
                let max_age = announced
                    .min(self.timing.max_age_secs())
                    .max(self.timing.refetch_secs());
                let mut state = self.state();
                state.keys = Some(keys.clone());
                state.fetched_at = now;
                state.max_age = max_age;
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "fetching the Supabase JWKS failed; keeping the last good key set");
                self.state()
                    .keys
                    .clone()
                    .ok_or_else(|| AuthError::SupabaseUnavailable(Arc::new(e)))
            }
        }
    }
}
