//! The failed-login limiter (SPEC section 9).
//!
//! `LOGIN_MAX_FAILURES` failed logins for one username (ignoring case) within
//! `LOGIN_LOCKOUT_SECONDS` lock that username for `LOGIN_LOCKOUT_SECONDS`;
//! 50 from one client IP lock that IP. The limiter is consulted *before* the
//! password is checked, so a locked account cannot be probed even with the
//! right password, and unknown usernames are counted exactly like real ones,
//! so a 429 tells nothing about which accounts exist. A success clears its
//! username's count, never its IP's (else one valid account would reset an
//! attacker's IP budget). Failed refreshes are not logins and never count.
//!
//! State is in memory, per process, and bounded: each table keeps at most
//! [`LoginLimiter::MAX_KEYS`] keys and evicts the least recently touched.
//!
//! Why not `governor`: its GCRA limiter consumes a cell on every check and
//! has no way to ask "is this key locked?" without spending, and its
//! semantics (a steady refill) differ from the lockout with `Retry-After =
//! seconds left` the SPEC asks for. The bounded map is the `lru` crate.
//!
//! ```
//! use auth_kit::{Clock, config::LoginLimits, limiter::LoginLimiter};
//!
//! let clock = Clock::manual(0);
//! let limiter = LoginLimiter::new(LoginLimits::STANDARD, clock.clone());
//! for _ in 0..5 {
//!     assert_eq!(limiter.retry_after("ann", None), None);
//!     limiter.record_failure("ann", None);
//! }
//! assert_eq!(limiter.retry_after("ANN", None), Some(300));
//! clock.advance(300);
//! assert_eq!(limiter.retry_after("ann", None), None);
//! ```

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::clock::Clock;
use crate::config::LoginLimits;

/// Failures of one key within its window.
#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    started: i64,
    locked_until: i64,
}

/// Failures per key in a fixed window; `max` of them lock the key.
struct FailureCounter<K: Hash + Eq> {
    entries: Mutex<LruCache<K, Window>>,
    max: u32,
    window: i64,
}

impl<K: Hash + Eq + Clone> FailureCounter<K> {
    fn new(max: u32, window: i64, capacity: NonZeroUsize) -> Self {
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
            max,
            window,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, LruCache<K, Window>> {
        // A panic while holding this lock cannot leave a window half-updated
        // in a harmful way: recover the data instead of failing every login.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn retry_after(&self, key: &K, now: i64) -> Option<u64> {
        let mut entries = self.entries();
        let window = *entries.peek(key)?;
        if window.locked_until > now {
            return u64::try_from(window.locked_until - now).ok();
        }
        if window.locked_until != 0 || now - window.started >= self.window {
            entries.pop(key); // lock served or window over: start afresh
        }
        None
    }

    fn record_failure(&self, key: K, now: i64) {
        let mut entries = self.entries();
        let mut window = match entries.get(&key) {
            Some(w) if now - w.started < self.window && w.locked_until <= now => *w,
            _ => Window {
                failures: 0,
                started: now,
                locked_until: 0,
            },
        };
        window.failures = window.failures.saturating_add(1);
        if window.failures >= self.max {
            window.locked_until = now + self.window;
        }
        entries.put(key, window);
    }

    fn reset(&self, key: &K) {
        self.entries().pop(key);
    }

    fn len(&self) -> usize {
        self.entries().len()
    }
}

/// Failed logins per username and per client IP.
pub struct LoginLimiter {
    by_username: FailureCounter<String>,
    by_ip: FailureCounter<IpAddr>,
    clock: Clock,
}

impl fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginLimiter")
            .field("usernames", &self.by_username.len())
            .field("ips", &self.by_ip.len())
            .finish_non_exhaustive()
    }
}

impl LoginLimiter {
    /// Keys each table keeps before evicting the least recently touched.
    pub const MAX_KEYS: usize = 100_000;

    /// A limiter with `limits`, reading time from `clock`.
    pub fn new(limits: LoginLimits, clock: Clock) -> Self {
        Self::with_capacity(
            limits,
            clock,
            NonZeroUsize::new(Self::MAX_KEYS).unwrap_or(NonZeroUsize::MIN),
        )
    }

    /// A limiter keeping at most `capacity` keys per table (tests).
    pub fn with_capacity(limits: LoginLimits, clock: Clock, capacity: NonZeroUsize) -> Self {
        let window = i64::try_from(limits.lockout.as_secs()).unwrap_or(i64::MAX);
        Self {
            by_username: FailureCounter::new(limits.max_failures_per_username, window, capacity),
            by_ip: FailureCounter::new(limits.max_failures_per_ip, window, capacity),
            clock,
        }
    }

    /// Usernames are compared ignoring case; absurd lengths are cut so a key
    /// costs bounded memory.
    fn key(username: &str) -> String {
        username
            .trim()
            .chars()
            .take(256)
            .flat_map(char::to_lowercase)
            .collect()
    }

    /// Seconds left on the longer of the username's and the IP's lock, or
    /// `None` when a login may be tried now.
    pub fn retry_after(&self, username: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = self.clock.now();
        let by_user = self.by_username.retry_after(&Self::key(username), now);
        let by_ip = ip.and_then(|ip| self.by_ip.retry_after(&ip, now));
        by_user.max(by_ip)
    }

    /// Counts a failed login (unknown user, wrong password, disabled user).
    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        let now = self.clock.now();
        self.by_username.record_failure(Self::key(username), now);
        if let Some(ip) = ip {
            self.by_ip.record_failure(ip, now);
        }
    }

    /// A successful login clears its username's failures (not its IP's).
    pub fn record_success(&self, username: &str) {
        self.by_username.reset(&Self::key(username));
    }

    /// How many usernames and IPs are tracked (bounded by `MAX_KEYS` each).
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_username.len(), self.by_ip.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limiter(clock: &Clock) -> LoginLimiter {
        let limits = LoginLimits {
            max_failures_per_username: 3,
            max_failures_per_ip: 5,
            lockout: Duration::from_secs(60),
        };
        LoginLimiter::with_capacity(limits, clock.clone(), NonZeroUsize::new(4).unwrap())
    }

    #[test]
    fn username_lock_counts_down_and_ends() {
        let clock = Clock::manual(1_000);
        let l = limiter(&clock);
        for _ in 0..3 {
            assert_eq!(l.retry_after("Ann", None), None);
            l.record_failure("Ann", None);
        }
        assert_eq!(l.retry_after("ann", None), Some(60));
        clock.advance(45);
        assert_eq!(l.retry_after("ANN", None), Some(15));
        clock.advance(15);
        assert_eq!(l.retry_after("ann", None), None);
        l.record_failure("ann", None);
        assert_eq!(
            l.retry_after("ann", None),
            None,
            "a served lock starts a fresh window"
        );
    }

    #[test]
    fn window_expires_without_lock() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        l.record_failure("bob", None);
        l.record_failure("bob", None);
        clock.advance(61);
        l.record_failure("bob", None);
        assert_eq!(
            l.retry_after("bob", None),
            None,
            "old failures fell out of the window"
        );
    }

    #[test]
    fn success_resets_username_not_ip() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        l.record_failure("cat", ip);
        l.record_failure("cat", ip);
        l.record_success("cat");
        l.record_failure("cat", ip);
        assert_eq!(l.retry_after("cat", None), None);
        l.record_failure("dog", ip);
        l.record_failure("eel", ip);
        // Five failures from the IP across usernames lock the IP for everyone.
        assert_eq!(l.retry_after("someone-else", ip), Some(60));
        assert_eq!(
            l.retry_after("someone-else", Some(IpAddr::from([10, 0, 0, 2]))),
            None
        );
    }

    #[test]
    fn memory_is_bounded() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        for i in 0..1000 {
            l.record_failure(
                &format!("user{i}"),
                Some(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8])),
            );
        }
        assert_eq!(l.tracked(), (4, 4));
    }
}
