//! Access-token verification for a Supabase project.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use crate::claims::SupabaseClaims;
use crate::client::SupabaseClient;
use crate::config::{SupabaseSettings, VerifyMode};
use crate::error::{SupabaseError, Unavailable};
use auth_kit::clock::Clock;
use auth_kit::error::AuthError;
use auth_kit::token::{
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
    /// The contract's timing: cached up to 10 minutes, refetched at most once per
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
///   [`auth_kit::token::KeySet`] (each key pinned to its algorithm). The key
///   set is cached for at most 10 minutes (less if the JWKS answer's
///   `Cache-Control` says so). Once it is stale, requests are still
///   answered from it at once while one background task refreshes it
///   (stale-while-revalidate), so a slow or unreachable Supabase delays no
///   request whose key is known. Only a token naming a `kid` the set lacks
///   (or a verifier without any set yet) waits for a fetch: at most one per
///   30 s, one in flight at a time. A failed refetch keeps the last good
///   key set.
/// - HS256 tokens with SUPABASE_JWT_SECRET through
///   [`auth_kit::token::verify_hs256`]. Without the secret, an HS256 project
///   (its JWKS lists no keys) is asked with `GET /auth/v1/user`; in a
///   project that publishes keys, an HS256 token is refused.
///
/// Either way `aud` must be `authenticated`, `iss` must be
/// `<SUPABASE_URL>/auth/v1`, `exp` is required and at most 60 s of leeway is
/// allowed ([`auth_kit::token::ClaimRules`]).
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
    jwks: Arc<JwksCache>,
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
        auth_kit::token::install_crypto_provider();
        Self {
            inner: Arc::new(Inner {
                client,
                rules: ClaimRules::new(settings.auth_url(), SUPABASE_AUDIENCE, settings.leeway),
                mode: settings.verify,
                secret: settings
                    .jwt_secret
                    .as_ref()
                    .map(|s| Zeroizing::new(s.expose().as_bytes().to_vec())),
                jwks: Arc::new(JwksCache {
                    state: Mutex::new(CacheState::default()),
                    fetch: Arc::new(tokio::sync::Mutex::new(())),
                    timing,
                    clock,
                }),
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

    /// Returns once no JWKS fetch is in flight, the background refresh of
    /// a stale key set included (tests use it to observe the refresh).
    pub async fn settle_key_refresh(&self) {
        drop(self.inner.jwks.fetch.lock().await);
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
            .map_err(|e| auth_kit::token::classify(token, e.kind()))?;
        if header.alg == Algorithm::HS256 {
            if let Some(secret) = &self.inner.secret {
                return Ok(auth_kit::token::verify_hs256(
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
    /// The cached keys, if they hold `kid` (any key set when `kid` is
    /// `None`), fresh or not.
    fn known(&self, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let keys = self.keys.as_ref()?;
        kid.is_none_or(|k| keys.contains(k)).then(|| keys.clone())
    }

    /// Whether the cached keys are past their age.
    fn is_stale(&self, now: i64) -> bool {
        now.saturating_sub(self.fetched_at) >= self.max_age
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
    /// Held while a fetch is in flight (by the request that fetches, or
    /// by the background refresh): one at a time.
    fetch: Arc<tokio::sync::Mutex<()>>,
    timing: JwksTiming,
    clock: Clock,
}

impl JwksCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // The state is replaced whole; a panic cannot leave it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A key set to verify with. The cached one whenever it knows `kid`,
    /// even stale (then a refresh starts in the background, when one is
    /// due and none is in flight). Otherwise this request waits: for the
    /// fetch in flight, or for one of its own when one is due; failing
    /// that, the last good set.
    async fn keys(
        self: &Arc<Self>,
        kid: Option<&str>,
        client: &SupabaseClient,
    ) -> Result<Arc<KeySet>, AuthError> {
        let now = self.clock.now();
        {
            let mut state = self.state();
            if let Some(keys) = state.known(kid) {
                if state.is_stale(now)
                    && state.may_fetch(now, &self.timing)
                    && let Ok(in_flight) = self.fetch.clone().try_lock_owned()
                {
                    state.last_attempt = Some(now);
                    drop(state);
                    let (cache, client) = (self.clone(), client.clone());
                    tokio::spawn(async move {
                        let _in_flight = in_flight;
                        // A failure is logged and the cached set kept.
                        let _ = cache.fetch(&client, now).await;
                    });
                }
                return Ok(keys);
            }
        }
        let _in_flight = self.fetch.lock().await;
        let now = self.clock.now();
        {
            let state = self.state();
            // Fetched while this request waited?
            if let Some(keys) = state.known(kid) {
                return Ok(keys);
            }
            if !state.may_fetch(now, &self.timing) {
                return state.keys.clone().ok_or_else(|| {
                    AuthError::ProviderUnavailable(
                        SupabaseError::from(Unavailable::KeysUnavailable).into_outage(),
                    )
                });
            }
        }
        self.state().last_attempt = Some(now);
        self.fetch(client, now).await
    }

    /// Fetches the JWKS and caches it; on failure, the last good set. The
    /// caller holds `self.fetch`.
    async fn fetch(&self, client: &SupabaseClient, now: i64) -> Result<Arc<KeySet>, AuthError> {
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
                    .ok_or_else(|| AuthError::ProviderUnavailable(e.into_outage()))
            }
        }
    }
}
