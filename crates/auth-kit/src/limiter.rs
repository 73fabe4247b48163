//! The login and signup limiter.
//!
//! - `LOGIN_MAX_FAILURES` failed logins for one username (compared as
//!   [`crate::username::fold`] decides) within `LOGIN_LOCKOUT_SECONDS` lock
//!   that username for `LOGIN_LOCKOUT_SECONDS`; `LOGIN_MAX_FAILURES_PER_IP`
//!   from one client address lock that address.
//! - `SIGNUP_MAX_PER_IP` signups (successful or not) from one client address
//!   within an hour lock that address's signups for the rest of it.
//! - A locked key answers 429 with `Retry-After` = the seconds left.
//!
//! The limiter is consulted *before* the password is checked, so a locked
//! account cannot be probed even with the right password, and unknown
//! usernames are counted exactly like real ones, so a 429 tells nothing about
//! which accounts exist. A success clears its username's count, never its
//! address's (else one valid account would reset an attacker's budget).
//! Failed refreshes are not logins and never count.
//!
//! Checking and reserving are one step ([`RateLimiter::begin_login`]):
//! attempts still being checked count together with recorded failures, so a
//! burst of concurrent guesses cannot all pass before the first failure
//! lands. An IPv6 client is keyed by its /64 (one host usually holds a whole
//! /64); an IPv4 client seen through an IPv6 socket is the IPv4 client.
//!
//! # Where the counters live
//! - In the process (RATE_LIMIT_URL unset): bounded tables. A refused request
//!   never adds an entry; a locked key is kept apart from the open ones, so a
//!   flood of new keys evicts only unlocked windows, never a lock; usernames
//!   are keyed by 16 bytes of SHA-256 of their fold, so long names cost no
//!   more than short ones.
//! - In Redis (`RATE_LIMIT_URL=redis://host:port[/db]`): shared by every
//!   instance. Each step of an attempt is one Lua script (atomic), each key
//!   expires with its window and starts with the service name. When Redis
//!   cannot be reached within [`REDIS_TIMEOUT`], the limiter answers
//!   [`LimitError::Unavailable`] (503): logins and signups fail closed, and
//!   recover by themselves when Redis is back.
//!
//! Why not `governor`: its GCRA limiter consumes a cell on every check and
//! has no way to ask "is this key locked?" without spending, and its
//! semantics (a steady refill) differ from the lockout with `Retry-After =
//! seconds left` this limiter documents. The bounded map is the `lru` crate.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use auth_kit::config::{LoginLimits, SignupLimits};
//! use auth_kit::limiter::{LimitError, RateLimiter};
//! use auth_kit::Clock;
//!
//! let clock = Clock::manual(0);
//! let limiter = RateLimiter::in_process(LoginLimits::STANDARD, SignupLimits::STANDARD, clock.clone());
//! for _ in 0..5 {
//!     let attempt = limiter.begin_login("ann", None).await.expect("not locked yet");
//!     // ... the password turned out wrong:
//!     attempt.failed().await;
//! }
//! assert!(matches!(limiter.begin_login("ANN", None).await, Err(LimitError::TooMany { retry_after: 300 })));
//! clock.advance(300);
//! assert!(limiter.begin_login("ann", None).await.is_ok());
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{LoginLimits, MailLimits, SignupLimits, TrafficSettings};
use crate::error::{ApiError, OAuthError};

/// How long one Redis round trip may take before the limiter gives up and
/// answers [`LimitError::Unavailable`].
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an attempt may not go ahead.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The username or address is locked: 429 with `Retry-After`.
    #[error("too many attempts; retry in {retry_after} s")]
    TooMany {
        /// Seconds left on the lock.
        retry_after: u64,
    },
    /// The shared counters cannot be reached: 503 (fail closed).
    #[error("the rate limiter's store cannot be reached: {0}")]
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
}

impl From<LimitError> for OAuthError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::TooMany { retry_after } => OAuthError::TooManyRequests { retry_after },
            LimitError::Unavailable(cause) => OAuthError::Unavailable(Some(cause)),
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        match e {
            LimitError::TooMany { retry_after } => ApiError::TooManyRequests { retry_after },
            LimitError::Unavailable(cause) => ApiError::Unavailable(Some(cause)),
        }
    }
}

/// Failed logins per username and per client address, and signups per
/// client address. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct RateLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    counters: Counters,
    login: LoginLimits,
    signup: SignupLimits,
    clock: Clock,
}

enum Counters {
    Memory(Box<Mutex<MemoryTables>>),
    Redis(RedisCounters),
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.inner.counters {
            Counters::Memory(_) => "memory",
            Counters::Redis(_) => "redis",
        };
        f.debug_struct("RateLimiter")
            .field("backend", &backend)
            .field("login", &self.inner.login)
            .field("signup", &self.inner.signup)
            .finish_non_exhaustive()
    }
}

/// RATE_LIMIT_URL could not be used.
#[derive(Debug, thiserror::Error)]
#[error("RATE_LIMIT_URL cannot be used: {0}")]
pub struct RedisUrlError(String);

impl RedisUrlError {
    /// An error saying what is wrong with the URL (never the URL itself: it
    /// may hold a password).
    pub(crate) fn new(problem: &str) -> Self {
        Self(problem.to_owned())
    }
}

impl RateLimiter {
    /// Keys each in-process table keeps before it evicts the least recently
    /// touched unlocked window (and as many locks again).
    pub const MAX_KEYS: usize = 100_000;

    /// Counters in this process, at most [`RateLimiter::MAX_KEYS`] per table.
    pub fn in_process(login: LoginLimits, signup: SignupLimits, clock: Clock) -> Self {
        let capacity = NonZeroUsize::new(Self::MAX_KEYS).unwrap_or(NonZeroUsize::MIN);
        Self::in_process_with_capacity(login, signup, clock, capacity)
    }

    /// Counters in this process, at most `capacity` keys per table (tests).
    pub fn in_process_with_capacity(
        login: LoginLimits,
        signup: SignupLimits,
        clock: Clock,
        capacity: NonZeroUsize,
    ) -> Self {
        let tables = MemoryTables {
            usernames: Table::new(capacity, login.max_failures_per_username, login.lockout),
            ips: Table::new(capacity, login.max_failures_per_ip, login.lockout),
            signups: Table::new(capacity, signup.max_per_ip, signup.window),
        };
        Self::with_counters(
            Counters::Memory(Box::new(Mutex::new(tables))),
            login,
            signup,
            clock,
        )
    }

    /// Counters in Redis at `url` (`redis://host:port[/db]`), every key
    /// prefixed with `service_name`. Connects on first use and reconnects by
    /// itself; must be called inside a Tokio runtime.
    pub fn redis(
        url: &str,
        service_name: &str,
        login: LoginLimits,
        signup: SignupLimits,
        clock: Clock,
    ) -> Result<Self, RedisUrlError> {
        let counters = RedisCounters::connect_lazily(url, service_name)?;
        Ok(Self::with_counters(
            Counters::Redis(counters),
            login,
            signup,
            clock,
        ))
    }

    /// The limiter a service's settings ask for: in Redis when
    /// RATE_LIMIT_URL is set (keys prefixed with `service_name`), else in
    /// this process. Must be called inside a Tokio runtime.
    pub fn from_settings(
        traffic: &TrafficSettings,
        service_name: &str,
        clock: Clock,
    ) -> Result<Self, RedisUrlError> {
        match &traffic.rate_limit_url {
            Some(url) => Self::redis(
                url.expose(),
                service_name,
                traffic.login_limits,
                traffic.signup_limits,
                clock,
            ),
            None => Ok(Self::in_process(
                traffic.login_limits,
                traffic.signup_limits,
                clock,
            )),
        }
    }

    fn with_counters(
        counters: Counters,
        login: LoginLimits,
        signup: SignupLimits,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                counters,
                login,
                signup,
                clock,
            }),
        }
    }

    /// Reserves a login attempt for `username` from `ip` before the password
    /// is checked, or says why not. Report how it ended on the returned
    /// attempt; dropping it unreported (the client went away) releases the
    /// reservation without counting.
    pub async fn begin_login(
        &self,
        username: &str,
        ip: Option<IpAddr>,
    ) -> Result<LoginAttempt, LimitError> {
        let keys = AttemptKeys {
            username: username_key(username),
            ip: ip.map(ip_key),
        };
        let now = self.inner.clock.now();
        match &self.inner.counters {
            Counters::Memory(tables) => lock(tables).begin_login(&keys, now)?,
            Counters::Redis(redis) => redis.begin_login(&keys, &self.inner.login, now).await?,
        }
        Ok(LoginAttempt {
            limiter: self.clone(),
            keys,
            reported: false,
        })
    }

    /// Runs `grant`, a password check done elsewhere (a hosted identity provider), under
    /// the login limits of `username` from `ip`: refused while either is
    /// locked; an `invalid_grant` answer counts as a failure, a success
    /// clears the username, and any other answer (the upstream unreachable,
    /// a malformed request) counts as neither.
    pub async fn password_grant<T>(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        grant: impl std::future::Future<Output = Result<T, OAuthError>>,
    ) -> Result<T, OAuthError> {
        let attempt = self.begin_login(username, ip).await?;
        let outcome = grant.await;
        match &outcome {
            Ok(_) => attempt.succeeded().await,
            Err(OAuthError::InvalidGrant(_)) => attempt.failed().await,
            Err(_) => drop(attempt),
        }
        outcome
    }

    /// Counts a signup from `ip`, or says why it may not go ahead. Without
    /// an address (no connect info) nothing is counted.
    pub async fn count_signup(&self, ip: Option<IpAddr>) -> Result<(), LimitError> {
        let Some(ip) = ip.map(ip_key) else {
            return Ok(());
        };
        let now = self.inner.clock.now();
        match &self.inner.counters {
            Counters::Memory(tables) => lock(tables)
                .signups
                .hit(&ip, now)
                .map_err(|retry_after| LimitError::TooMany { retry_after }),
            Counters::Redis(redis) => redis.count_signup(ip, &self.inner.signup, now).await,
        }
    }

    /// How many usernames and addresses the in-process tables track, open
    /// and locked together (`None` with Redis).
    pub fn tracked(&self) -> Option<(usize, usize)> {
        match &self.inner.counters {
            Counters::Memory(tables) => {
                let tables = lock(tables);
                Some((tables.usernames.len(), tables.ips.len()))
            }
            Counters::Redis(_) => None,
        }
    }

    async fn end(&self, keys: &AttemptKeys, outcome: Outcome) {
        let now = self.inner.clock.now();
        match &self.inner.counters {
            Counters::Memory(tables) => lock(tables).end_login(keys, outcome, now),
            Counters::Redis(redis) => {
                if let Err(e) = redis.end_login(keys, outcome, &self.inner.login, now).await {
                    // The attempt's reservation lapses with its key; a lost
                    // failure is one guess the counters did not see.
                    tracing::warn!(error = %e, ?outcome, "could not record a login attempt in Redis");
                }
            }
        }
    }
}

/// A login attempt reserved with [`RateLimiter::begin_login`].
#[must_use = "report how the attempt ended: failed() or succeeded()"]
pub struct LoginAttempt {
    limiter: RateLimiter,
    keys: AttemptKeys,
    reported: bool,
}

impl fmt::Debug for LoginAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("ip", &self.keys.ip)
            .finish_non_exhaustive()
    }
}

impl LoginAttempt {
    /// Unknown user, wrong password, or disabled user: counts as a failure.
    pub async fn failed(mut self) {
        self.reported = true;
        self.limiter.end(&self.keys, Outcome::Failed).await;
    }

    /// The password checked out: clears the username's failures.
    pub async fn succeeded(mut self) {
        self.reported = true;
        self.limiter.end(&self.keys, Outcome::Succeeded).await;
    }

    /// The service could not judge the password (its database or hashing
    /// pool was unavailable): frees the place without counting anything,
    /// so an outage locks nobody out.
    pub async fn released(mut self) {
        self.reported = true;
        self.limiter.end(&self.keys, Outcome::Released).await;
    }
}

/// Dropped without a report, the request was cancelled: its client hung up
/// while the password was being checked. That counts as a failure of the
/// client's address (else hanging up before the answer would be a way to
/// guess, and to keep the hashing pool busy, with no limit), not of the
/// username (the client learnt nothing about its password).
impl Drop for LoginAttempt {
    fn drop(&mut self) {
        if self.reported {
            return;
        }
        let now = self.limiter.inner.clock.now();
        match &self.limiter.inner.counters {
            Counters::Memory(tables) => lock(tables).end_login(&self.keys, Outcome::Abandoned, now),
            Counters::Redis(_) => {
                // Releasing needs a round trip: done in the background. Without
                // a runtime (shutting down) the reservation lapses by itself.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let limiter = self.limiter.clone();
                    let keys = self.keys;
                    runtime.spawn(async move { limiter.end(&keys, Outcome::Abandoned).await });
                }
            }
        }
    }
}

/// Mail requests (forgot-password, request-verify) per email address and
/// per client address: every request counts, and the limit-th of a window
/// locks the address, or the client address, for the rest of it (429).
/// Kept where the login counters are (in Redis with RATE_LIMIT_URL, under
/// `<service>:mail`), so a fleet shares them.
#[derive(Debug, Clone)]
pub struct MailRequestLimiter(RateLimiter);

impl MailRequestLimiter {
    /// The limiter a service's settings ask for (see [`RateLimiter::from_settings`]).
    /// Must be called inside a Tokio runtime.
    pub fn from_settings(
        traffic: &TrafficSettings,
        limits: MailLimits,
        service_name: &str,
        clock: Clock,
    ) -> Result<Self, RedisUrlError> {
        let mail_traffic = TrafficSettings {
            login_limits: mail_counts(limits),
            ..traffic.clone()
        };
        RateLimiter::from_settings(&mail_traffic, &format!("{service_name}:mail"), clock).map(Self)
    }

    /// Counters in this process (tests, one instance).
    pub fn in_process(limits: MailLimits, clock: Clock) -> Self {
        Self(RateLimiter::in_process(
            mail_counts(limits),
            SignupLimits::STANDARD,
            clock,
        ))
    }

    /// Counts one request for `email` from `ip`, or says why it may not go
    /// ahead.
    pub async fn admit(&self, email: &str, ip: Option<IpAddr>) -> Result<(), LimitError> {
        self.0.begin_login(email, ip).await?.failed().await;
        Ok(())
    }
}

/// Mail requests counted as login failures: the limit-th locks the key.
fn mail_counts(limits: MailLimits) -> LoginLimits {
    LoginLimits {
        max_failures_per_username: limits.max_per_address,
        max_failures_per_ip: limits.max_per_ip,
        lockout: limits.window,
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    /// The client went away before its password was judged: a failure of
    /// the address, nothing for the username.
    Abandoned,
    /// The service could not judge the password: counts for nobody.
    Released,
}

/// 16 bytes of SHA-256 of the folded username: fixed size, whatever the name.
type UsernameKey = [u8; 16];

#[derive(Debug, Clone, Copy)]
struct AttemptKeys {
    username: UsernameKey,
    ip: Option<IpAddr>,
}

fn username_key(username: &str) -> UsernameKey {
    let digest = Sha256::digest(crate::username::fold(username).as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// An IPv6 client is keyed by its /64 network: one host usually holds a
/// whole /64, and keying single addresses would give it 2^64 budgets.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

fn lock(tables: &Mutex<MemoryTables>) -> std::sync::MutexGuard<'_, MemoryTables> {
    // A panic while holding this lock cannot leave a window half-updated in
    // a harmful way: recover the data instead of failing every login.
    tables
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

// -- in process ----------------------------------------------------------------

struct MemoryTables {
    usernames: Table<UsernameKey>,
    ips: Table<IpAddr>,
    signups: Table<IpAddr>,
}

impl MemoryTables {
    /// Checks the address, then the username, and reserves both only when
    /// neither is locked: a refused attempt leaves no trace.
    fn begin_login(&mut self, keys: &AttemptKeys, now: i64) -> Result<(), LimitError> {
        let too_many = |retry_after| LimitError::TooMany { retry_after };
        if let Some(ip) = &keys.ip {
            self.ips.check(ip, now).map_err(too_many)?;
        }
        self.usernames
            .check(&keys.username, now)
            .map_err(too_many)?;
        if let Some(ip) = &keys.ip {
            self.ips.reserve(ip, now);
        }
        self.usernames.reserve(&keys.username, now);
        Ok(())
    }

    fn end_login(&mut self, keys: &AttemptKeys, outcome: Outcome, now: i64) {
        // A success clears its username's failures, never its address's.
        self.usernames.end(&keys.username, outcome, true, now);
        if let Some(ip) = &keys.ip {
            let outcome = match outcome {
                Outcome::Abandoned => Outcome::Failed,
                other => other,
            };
            self.ips.end(ip, outcome, false, now);
        }
    }
}

/// Failures of one key within its window, and the attempts still being
/// checked.
#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    in_flight: u32,
    started: i64,
}

/// Failures per key in a fixed window; `max` of them lock the key for
/// `window` seconds. Open windows live in an LRU map; locks live apart, so
/// evicting open windows to make room never lifts a lock.
struct Table<K: Hash + Eq> {
    open: LruCache<K, Window>,
    locked: HashMap<K, i64>,
    capacity: usize,
    max: u32,
    window: i64,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(capacity: NonZeroUsize, max: u32, window: Duration) -> Self {
        Self {
            open: LruCache::new(capacity),
            locked: HashMap::new(),
            capacity: capacity.get(),
            max,
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
        }
    }

    fn len(&self) -> usize {
        self.open.len() + self.locked.len()
    }

    /// The key's open window at `now`: an elapsed window starts afresh
    /// (attempts in flight carry over).
    fn current(&self, key: &K, now: i64) -> Option<Window> {
        self.open.peek(key).map(|w| {
            if now - w.started >= self.window {
                Window {
                    failures: 0,
                    in_flight: w.in_flight,
                    started: now,
                }
            } else {
                *w
            }
        })
    }

    /// Seconds to wait, or `Ok` when an attempt may go ahead. Adds nothing.
    fn check(&mut self, key: &K, now: i64) -> Result<(), u64> {
        if let Some(&until) = self.locked.get(key) {
            if until > now {
                return Err(seconds(until - now));
            }
            // A served lock: the next window starts afresh.
            self.locked.remove(key);
        }
        match self.current(key, now) {
            // Not locked yet, but the attempts in flight could lock it.
            Some(w) if w.failures.saturating_add(w.in_flight) >= self.max => Err(1),
            _ => Ok(()),
        }
    }

    fn reserve(&mut self, key: &K, now: i64) {
        let mut window = self.current(key, now).unwrap_or(Window {
            failures: 0,
            in_flight: 0,
            started: now,
        });
        window.in_flight = window.in_flight.saturating_add(1);
        self.open.put(key.clone(), window);
    }

    /// Checks and counts at once (signups).
    fn hit(&mut self, key: &K, now: i64) -> Result<(), u64> {
        self.check(key, now)?;
        self.reserve(key, now);
        self.end(key, Outcome::Failed, false, now);
        Ok(())
    }

    /// Ends a reserved attempt. A success clears the key only when `clears`.
    fn end(&mut self, key: &K, outcome: Outcome, clears: bool, now: i64) {
        // Evicted meanwhile (a flood of other keys): a failure still counts.
        let mut window = self.current(key, now).unwrap_or(Window {
            failures: 0,
            in_flight: 1,
            started: now,
        });
        window.in_flight = window.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Failed => window.failures = window.failures.saturating_add(1),
            Outcome::Succeeded if clears => window.failures = 0,
            Outcome::Succeeded | Outcome::Abandoned | Outcome::Released => {}
        }
        if window.failures >= self.max && self.lock(key, now + self.window, now) {
            // Attempts of this key still in flight end on a missing window,
            // which counts their failures into a fresh one after the lock.
            self.open.pop(key);
        } else if window.failures == 0 && window.in_flight == 0 {
            self.open.pop(key);
        } else {
            self.open.put(key.clone(), window);
        }
    }

    /// Records a lock; `false` when the lock table is full of live locks
    /// (the window then stays open, at its maximum, so it still refuses).
    fn lock(&mut self, key: &K, until: i64, now: i64) -> bool {
        if self.locked.len() >= self.capacity && !self.locked.contains_key(key) {
            self.locked.retain(|_, until| *until > now);
            if self.locked.len() >= self.capacity {
                tracing::warn!(
                    "the limiter's lock table is full; a new lock is kept as an open window"
                );
                return false;
            }
        }
        self.locked.insert(key.clone(), until);
        true
    }
}

fn seconds(delta: i64) -> u64 {
    u64::try_from(delta).unwrap_or(0)
}

// -- Redis ---------------------------------------------------------------------

/// Reservations older than this are forgotten (an instance died mid-attempt),
/// so a crashed instance cannot hold a username's budget for long.
const STALE_IN_FLIGHT_SECONDS: i64 = 120;

struct RedisCounters {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

/// Checks every key (KEYS), in order, then reserves an attempt in each, or
/// counts one at once when ARGV[2] is `count`. ARGV[1] is now; then, per key,
/// its maximum and window. Answers {1, 0}, or {0, seconds to wait}.
/// A key is a hash: f failures, i attempts in flight, s window start,
/// l locked until, t last reservation.
const BEGIN_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local count_now = ARGV[2] == 'count'
local stale = tonumber(ARGV[3])
local state = {}
for n, key in ipairs(KEYS) do
  local max = tonumber(ARGV[2 + 2 * n])
  local window = tonumber(ARGV[3 + 2 * n])
  local h = redis.call('HMGET', key, 'f', 'i', 's', 'l', 't')
  local f, i = tonumber(h[1]) or 0, tonumber(h[2]) or 0
  local s, l, t = tonumber(h[3]) or now, tonumber(h[4]) or 0, tonumber(h[5]) or 0
  if now - t >= stale then i = 0 end
  if l > now then return {0, l - now} end
  if l ~= 0 or now - s >= window then f = 0; s = now; l = 0 end
  if f + i >= max then return {0, 1} end
  state[n] = {f, i, s, max, window}
end
for n, key in ipairs(KEYS) do
  local f, i, s, max, window = unpack(state[n])
  local l = 0
  if count_now then
    f = f + 1
    if f >= max then l = now + window end
  else
    i = i + 1
  end
  redis.call('HSET', key, 'f', f, 'i', i, 's', s, 'l', l, 't', now)
  local ttl = math.max(s + window - now, stale)
  if l > 0 then ttl = window end
  redis.call('EXPIRE', key, math.max(ttl, 1))
end
return {1, 0}
";

/// Ends a reserved attempt in each key (KEYS). ARGV[1] is now, ARGV[2] the
/// outcome (`failed`, `succeeded`, `abandoned`, `released`); then, per key,
/// its maximum, its window, whether a success clears it (1 or 0) and
/// whether an abandoned attempt counts as a failure (1 or 0).
const END_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local outcome = ARGV[2]
local stale = tonumber(ARGV[3])
for n, key in ipairs(KEYS) do
  local max = tonumber(ARGV[4 * n])
  local window = tonumber(ARGV[1 + 4 * n])
  local clears = ARGV[2 + 4 * n] == '1'
  local counts_abandoned = ARGV[3 + 4 * n] == '1'
  local h = redis.call('HMGET', key, 'f', 'i', 's', 'l', 't')
  local f, i = tonumber(h[1]) or 0, tonumber(h[2]) or 1
  local s, l, t = tonumber(h[3]) or now, tonumber(h[4]) or 0, tonumber(h[5]) or now
  if i > 0 then i = i - 1 end
  if l ~= 0 and l <= now then f = 0; s = now; l = 0 end
  if l == 0 and now - s >= window then f = 0; s = now end
  if outcome == 'failed' or (outcome == 'abandoned' and counts_abandoned) then
    f = f + 1
    if f >= max and l == 0 then l = now + window end
  elseif outcome == 'succeeded' and clears then
    f = 0; s = now; l = 0
  end
  if f == 0 and i == 0 and l == 0 then
    redis.call('DEL', key)
  else
    redis.call('HSET', key, 'f', f, 'i', i, 's', s, 'l', l, 't', t)
    local ttl = math.max(s + window - now, stale)
    if l > now then ttl = l - now end
    redis.call('EXPIRE', key, math.max(ttl, 1))
  end
end
return 1
";

impl RedisCounters {
    fn connect_lazily(url: &str, service_name: &str) -> Result<Self, RedisUrlError> {
        let client = redis::Client::open(url)
            // The parser's message may quote the URL, password included.
            .map_err(|_| RedisUrlError("it is not a redis://host:port[/db] URL".to_owned()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            // One quick attempt per request: the limiter answers 503 rather
            // than hold the request while Redis is away.
            .set_number_of_retries(0);
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisUrlError(e.to_string()))?;
        Ok(Self {
            connection,
            prefix: format!("{service_name}:"),
        })
    }

    fn username_key(&self, key: &UsernameKey) -> String {
        format!("{}login:user:{}", self.prefix, hex::encode(key))
    }

    fn ip_key(&self, kind: &str, ip: IpAddr) -> String {
        format!("{}{kind}:ip:{ip}", self.prefix)
    }

    async fn run(&self, invocation: &redis::ScriptInvocation<'_>) -> Result<Vec<i64>, LimitError> {
        let mut connection = self.connection.clone();
        let unavailable = |e: redis::RedisError| LimitError::Unavailable(Arc::new(e));
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no answer in time",
            )))),
        }
    }

    async fn begin_login(
        &self,
        keys: &AttemptKeys,
        limits: &LoginLimits,
        now: i64,
    ) -> Result<(), LimitError> {
        let script = begin_script();
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(now)
            .arg("reserve")
            .arg(STALE_IN_FLIGHT_SECONDS);
        let lockout = limits.lockout.as_secs();
        // The address first, as in process: a locked address is refused
        // before its username is read.
        if let Some(ip) = keys.ip {
            invocation.key(self.ip_key("login", ip));
            invocation.arg(limits.max_failures_per_ip).arg(lockout);
        }
        invocation.key(self.username_key(&keys.username));
        invocation
            .arg(limits.max_failures_per_username)
            .arg(lockout);
        verdict(&self.run(&invocation).await?)
    }

    async fn end_login(
        &self,
        keys: &AttemptKeys,
        outcome: Outcome,
        limits: &LoginLimits,
        now: i64,
    ) -> Result<(), LimitError> {
        let script = end_script();
        let mut invocation = script.prepare_invoke();
        let outcome = match outcome {
            Outcome::Failed => "failed",
            Outcome::Succeeded => "succeeded",
            Outcome::Abandoned => "abandoned",
            Outcome::Released => "released",
        };
        invocation
            .arg(now)
            .arg(outcome)
            .arg(STALE_IN_FLIGHT_SECONDS);
        let lockout = limits.lockout.as_secs();
        invocation.key(self.username_key(&keys.username));
        invocation
            .arg(limits.max_failures_per_username)
            .arg(lockout)
            .arg(1)
            .arg(0);
        if let Some(ip) = keys.ip {
            invocation.key(self.ip_key("login", ip));
            invocation
                .arg(limits.max_failures_per_ip)
                .arg(lockout)
                .arg(0)
                .arg(1);
        }
        self.run(&invocation).await.map(|_| ())
    }

    async fn count_signup(
        &self,
        ip: IpAddr,
        limits: &SignupLimits,
        now: i64,
    ) -> Result<(), LimitError> {
        let script = begin_script();
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(now)
            .arg("count")
            .arg(STALE_IN_FLIGHT_SECONDS);
        invocation.key(self.ip_key("signup", ip));
        invocation
            .arg(limits.max_per_ip)
            .arg(limits.window.as_secs());
        verdict(&self.run(&invocation).await?)
    }
}

/// {1, 0}: go ahead; {0, n}: wait n seconds.
fn verdict(answer: &[i64]) -> Result<(), LimitError> {
    match answer {
        [1, ..] => Ok(()),
        [_, wait, ..] => Err(LimitError::TooMany {
            retry_after: seconds(*wait).max(1),
        }),
        _ => Err(LimitError::Unavailable(Arc::new(std::io::Error::other(
            "unexpected answer from the limiter script",
        )))),
    }
}

fn begin_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(BEGIN_SCRIPT))
}

fn end_script() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(END_SCRIPT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(clock: &Clock) -> RateLimiter {
        let login = LoginLimits {
            max_failures_per_username: 3,
            max_failures_per_ip: 5,
            lockout: Duration::from_secs(60),
        };
        let signup = SignupLimits {
            max_per_ip: 2,
            window: Duration::from_secs(3600),
        };
        RateLimiter::in_process_with_capacity(
            login,
            signup,
            clock.clone(),
            NonZeroUsize::new(4).unwrap(),
        )
    }

    async fn fail(l: &RateLimiter, user: &str, ip: Option<IpAddr>) {
        l.begin_login(user, ip).await.unwrap().failed().await;
    }

    async fn wait(l: &RateLimiter, user: &str, ip: Option<IpAddr>) -> Option<u64> {
        match l.begin_login(user, ip).await {
            Ok(attempt) => {
                attempt.released().await;
                None
            }
            Err(LimitError::TooMany { retry_after }) => Some(retry_after),
            Err(e) => panic!("{e}"),
        }
    }

    #[tokio::test]
    async fn username_lock_counts_down_and_ends() {
        let clock = Clock::manual(1_000);
        let l = limiter(&clock);
        for _ in 0..3 {
            fail(&l, "Ann", None).await;
        }
        assert_eq!(wait(&l, "ann", None).await, Some(60));
        clock.advance(45);
        assert_eq!(wait(&l, "ＡＮＮ", None).await, Some(15));
        clock.advance(15);
        fail(&l, "ann", None).await;
        assert_eq!(
            wait(&l, "ann", None).await,
            None,
            "a served lock starts a fresh window"
        );
    }

    #[tokio::test]
    async fn window_expires_without_lock() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        fail(&l, "bob", None).await;
        fail(&l, "bob", None).await;
        clock.advance(61);
        fail(&l, "bob", None).await;
        assert_eq!(
            wait(&l, "bob", None).await,
            None,
            "old failures fell out of the window"
        );
    }

    #[tokio::test]
    async fn concurrent_attempts_count_before_they_fail() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let mut in_flight = Vec::new();
        for _ in 0..3 {
            in_flight.push(l.begin_login("dan", None).await.unwrap());
        }
        assert_eq!(
            wait(&l, "dan", None).await,
            Some(1),
            "three guesses in flight fill the budget"
        );
        for attempt in in_flight {
            attempt.failed().await;
        }
        assert_eq!(wait(&l, "dan", None).await, Some(60));
        // An abandoned attempt (the client went away) frees its place
        // without counting for the username.
        drop(l.begin_login("eve", None).await.unwrap());
        fail(&l, "eve", None).await;
        fail(&l, "eve", None).await;
        assert_eq!(wait(&l, "eve", None).await, None);
    }

    /// Hanging up while the password is checked is no way around the
    /// address's limit, and an outage (released) locks nobody out.
    #[tokio::test]
    async fn abandoned_attempts_count_for_the_address_only() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let ip = Some(IpAddr::from([10, 0, 0, 9]));
        for _ in 0..10 {
            l.begin_login("fay", ip).await.unwrap().released().await;
        }
        assert_eq!(
            wait(&l, "fay", ip).await,
            None,
            "released counts for nobody"
        );
        for n in 0..5 {
            drop(l.begin_login(&format!("gus{n}"), ip).await.unwrap());
        }
        assert_eq!(
            wait(&l, "someone-else", ip).await,
            Some(60),
            "five hang-ups lock the address"
        );
        assert_eq!(wait(&l, "gus0", None).await, None, "not the usernames");
    }

    #[tokio::test]
    async fn success_resets_username_not_ip() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        fail(&l, "cat", ip).await;
        fail(&l, "cat", ip).await;
        l.begin_login("cat", ip).await.unwrap().succeeded().await;
        fail(&l, "cat", ip).await;
        assert_eq!(wait(&l, "cat", None).await, None);
        fail(&l, "dog", ip).await;
        fail(&l, "eel", ip).await;
        // Five failures from the address across usernames lock it for everyone.
        assert_eq!(wait(&l, "someone-else", ip).await, Some(60));
        assert_eq!(
            wait(&l, "someone-else", Some(IpAddr::from([10, 0, 0, 2]))).await,
            None
        );
    }

    #[tokio::test]
    async fn ipv6_clients_are_keyed_by_their_64() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        for host in 1..=5u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
            fail(&l, &format!("user{host}"), Some(ip)).await;
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(wait(&l, "new", Some(same_64)).await, Some(60));
        assert_eq!(wait(&l, "new", Some(other_64)).await, None);
        // An IPv4 client seen through an IPv6 socket is the same IPv4 client.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        for n in 0..5 {
            fail(&l, &format!("v4-{n}"), Some(mapped)).await;
        }
        assert!(
            wait(&l, "x", Some(IpAddr::from([192, 0, 2, 7])))
                .await
                .is_some()
        );
    }

    #[tokio::test]
    async fn memory_is_bounded_and_refusals_add_nothing() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        for i in 0..1000u32 {
            let ip = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            fail(&l, &format!("user{i}"), Some(ip)).await;
        }
        assert_eq!(l.tracked(), Some((4, 4)));
        // A locked address's refused attempts add no username.
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let ip = Some(IpAddr::from([10, 9, 9, 9]));
        for i in 0..5 {
            fail(&l, &format!("t{i}"), ip).await;
        }
        let before = l.tracked();
        for i in 0..100 {
            assert!(wait(&l, &format!("u{i}"), ip).await.is_some());
        }
        assert_eq!(l.tracked(), before);
        // A name of 100 000 characters is one 16-byte key like any other.
        let long = "𝔞".repeat(100_000);
        fail(&l, &long, None).await;
        fail(&l, &long, None).await;
        fail(&l, &long, None).await;
        assert_eq!(wait(&l, &long, None).await, Some(60));
    }

    #[tokio::test]
    async fn signups_per_address() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let ip = Some(IpAddr::from([192, 0, 2, 1]));
        l.count_signup(ip).await.unwrap();
        l.count_signup(ip).await.unwrap();
        let Err(LimitError::TooMany { retry_after }) = l.count_signup(ip).await else {
            panic!("the third signup within the hour is refused");
        };
        assert_eq!(retry_after, 3600);
        l.count_signup(Some(IpAddr::from([192, 0, 2, 2])))
            .await
            .unwrap();
        l.count_signup(None).await.unwrap();
        clock.advance(3600);
        l.count_signup(ip).await.unwrap();
    }
}
