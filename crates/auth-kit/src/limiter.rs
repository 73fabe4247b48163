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
//! Checking and reserving are one step ([`LoginLimiter::begin`]): attempts
//! still being checked count together with recorded failures, so a burst
//! of concurrent guesses cannot all pass before the first failure lands.
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
//!     let attempt = limiter.begin("ann", None).expect("not locked yet");
//!     // ... the password turned out wrong:
//!     attempt.failed();
//! }
//! assert_eq!(limiter.begin("ANN", None).unwrap_err(), 300);
//! clock.advance(300);
//! assert!(limiter.begin("ann", None).is_ok());
//! ```

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use crate::clock::Clock;
use crate::config::LoginLimits;

/// Failures of one key within its window, and the attempts still being
/// checked.
#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    in_flight: u32,
    started: i64,
    locked_until: i64,
}

impl Window {
    fn fresh(now: i64, in_flight: u32) -> Self {
        Self {
            failures: 0,
            in_flight,
            started: now,
            locked_until: 0,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Failed,
    Succeeded,
    /// The request went away before its password was judged.
    Abandoned,
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

    /// The window as it stands at `now` (a served lock or an elapsed window
    /// starts afresh; attempts in flight carry over).
    fn current(&self, window: Option<Window>, now: i64) -> Window {
        match window {
            Some(w) if w.locked_until > now => w,
            Some(w) if w.locked_until != 0 || now - w.started >= self.window => {
                Window::fresh(now, w.in_flight)
            }
            Some(w) => w,
            None => Window::fresh(now, 0),
        }
    }

    fn retry_after(&self, key: &K, now: i64) -> Option<u64> {
        let window = self.current(self.entries().peek(key).copied(), now);
        (window.locked_until > now)
            .then(|| u64::try_from(window.locked_until - now).unwrap_or(u64::MAX))
    }

    /// Reserves an attempt, or says how long to wait. Failures so far and
    /// attempts still being checked count together, so concurrent guesses
    /// cannot all slip in before the first failure is recorded.
    fn begin(&self, key: &K, now: i64) -> Result<(), u64> {
        let mut entries = self.entries();
        let mut window = self.current(entries.get(key).copied(), now);
        if window.locked_until > now {
            return Err(u64::try_from(window.locked_until - now).unwrap_or(u64::MAX));
        }
        if window.failures.saturating_add(window.in_flight) >= self.max {
            // Not locked yet, but the attempts in flight could lock it.
            return Err(1);
        }
        window.in_flight += 1;
        entries.put(key.clone(), window);
        Ok(())
    }

    /// Ends a reserved attempt. A success clears the key only when `clears`.
    fn end(&self, key: &K, now: i64, outcome: Outcome, clears: bool) {
        let mut entries = self.entries();
        // Evicted meanwhile (a flood of other keys): nothing left to update.
        let Some(stored) = entries.get(key).copied() else {
            return;
        };
        let mut window = self.current(Some(stored), now);
        window.in_flight = window.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Failed => {
                window.failures = window.failures.saturating_add(1);
                if window.failures >= self.max {
                    window.locked_until = now + self.window;
                }
            }
            Outcome::Succeeded if clears => {
                window = Window::fresh(now, window.in_flight);
            }
            Outcome::Succeeded | Outcome::Abandoned => {}
        }
        entries.put(key.clone(), window);
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

    /// An IPv6 client is keyed by its /64 network: one host usually holds a
    /// whole /64, and keying single addresses would give it 2^64 budgets.
    fn ip_key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        }
    }

    /// Seconds left on the longer of the username's and the IP's lock, or
    /// `None` when they are not locked. (A peek: [`LoginLimiter::begin`] is
    /// what the token endpoint uses.)
    pub fn retry_after(&self, username: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = self.clock.now();
        let by_user = self.by_username.retry_after(&Self::key(username), now);
        let by_ip = ip.and_then(|ip| self.by_ip.retry_after(&Self::ip_key(ip), now));
        by_user.max(by_ip)
    }

    /// Reserves a login attempt for `username` from `ip` before the
    /// password is checked, or answers the seconds to wait (429). Report
    /// how it ended on the returned attempt; dropping it unreported (the
    /// client went away) releases the reservation without counting.
    pub fn begin(&self, username: &str, ip: Option<IpAddr>) -> Result<LoginAttempt<'_>, u64> {
        let now = self.clock.now();
        let key = Self::key(username);
        let ip = ip.map(Self::ip_key);
        self.by_username.begin(&key, now)?;
        if let Some(ip) = ip
            && let Err(wait) = self.by_ip.begin(&ip, now)
        {
            self.by_username.end(&key, now, Outcome::Abandoned, false);
            return Err(wait);
        }
        Ok(LoginAttempt {
            limiter: self,
            username: key,
            ip,
            reported: false,
        })
    }

    /// Counts a failed login at once (an attempt that failed).
    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        if let Ok(attempt) = self.begin(username, ip) {
            attempt.failed();
        }
    }

    /// How many usernames and IPs are tracked (bounded by `MAX_KEYS` each).
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_username.len(), self.by_ip.len())
    }

    fn end(&self, username: &str, ip: Option<IpAddr>, outcome: Outcome) {
        let now = self.clock.now();
        // A success clears its username's failures, never its IP's (else one
        // valid account would reset an attacker's IP budget).
        self.by_username
            .end(&username.to_owned(), now, outcome, true);
        if let Some(ip) = ip {
            self.by_ip.end(&ip, now, outcome, false);
        }
    }
}

/// A login attempt reserved with [`LoginLimiter::begin`].
#[must_use = "report how the attempt ended: failed() or succeeded()"]
pub struct LoginAttempt<'a> {
    limiter: &'a LoginLimiter,
    username: String,
    ip: Option<IpAddr>,
    reported: bool,
}

impl fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAttempt")
            .field("username", &self.username)
            .field("ip", &self.ip)
            .finish()
    }
}

impl LoginAttempt<'_> {
    /// Unknown user, wrong password, or disabled user: counts as a failure.
    pub fn failed(mut self) {
        self.reported = true;
        self.limiter.end(&self.username, self.ip, Outcome::Failed);
    }

    /// The password checked out: clears the username's failures.
    pub fn succeeded(mut self) {
        self.reported = true;
        self.limiter
            .end(&self.username, self.ip, Outcome::Succeeded);
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.limiter
                .end(&self.username, self.ip, Outcome::Abandoned);
        }
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

    fn fail(l: &LoginLimiter, user: &str, ip: Option<IpAddr>) {
        l.begin(user, ip).unwrap().failed();
    }

    #[test]
    fn username_lock_counts_down_and_ends() {
        let clock = Clock::manual(1_000);
        let l = limiter(&clock);
        for _ in 0..3 {
            fail(&l, "Ann", None);
        }
        assert_eq!(l.begin("ann", None).unwrap_err(), 60);
        assert_eq!(l.retry_after("ann", None), Some(60));
        clock.advance(45);
        assert_eq!(l.begin("ANN", None).unwrap_err(), 15);
        clock.advance(15);
        assert_eq!(l.retry_after("ann", None), None);
        fail(&l, "ann", None);
        assert!(
            l.begin("ann", None).is_ok(),
            "a served lock starts a fresh window"
        );
    }

    #[test]
    fn window_expires_without_lock() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        fail(&l, "bob", None);
        fail(&l, "bob", None);
        clock.advance(61);
        fail(&l, "bob", None);
        assert!(
            l.begin("bob", None).is_ok(),
            "old failures fell out of the window"
        );
    }

    #[test]
    fn concurrent_attempts_count_before_they_fail() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let in_flight: Vec<_> = (0..3).map(|_| l.begin("dan", None).unwrap()).collect();
        assert_eq!(
            l.begin("dan", None).unwrap_err(),
            1,
            "three guesses in flight fill the budget"
        );
        for attempt in in_flight {
            attempt.failed();
        }
        assert_eq!(l.begin("dan", None).unwrap_err(), 60);
        // An abandoned attempt (the client went away) frees its place without counting.
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        drop(l.begin("eve", None).unwrap());
        fail(&l, "eve", None);
        fail(&l, "eve", None);
        assert!(l.begin("eve", None).is_ok());
    }

    #[test]
    fn success_resets_username_not_ip() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        fail(&l, "cat", ip);
        fail(&l, "cat", ip);
        l.begin("cat", ip).unwrap().succeeded();
        fail(&l, "cat", ip);
        assert!(l.begin("cat", None).is_ok());
        fail(&l, "dog", ip);
        fail(&l, "eel", ip);
        // Five failures from the IP across usernames lock the IP for everyone.
        assert_eq!(l.begin("someone-else", ip).unwrap_err(), 60);
        assert!(
            l.begin("someone-else", Some(IpAddr::from([10, 0, 0, 2])))
                .is_ok()
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        for host in 1..=5u16 {
            let ip: IpAddr = format!("2001:db8:1:2::{host:x}").parse().unwrap();
            fail(&l, &format!("user{host}"), Some(ip));
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(l.begin("new", Some(same_64)).unwrap_err(), 60);
        assert!(l.begin("new", Some(other_64)).is_ok());
        // An IPv4 client seen through an IPv6 socket is the same IPv4 client.
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        for n in 0..5 {
            fail(&l, &format!("v4-{n}"), Some(mapped));
        }
        assert!(l.begin("x", Some(IpAddr::from([192, 0, 2, 7]))).is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let clock = Clock::manual(0);
        let l = limiter(&clock);
        for i in 0..1000u32 {
            fail(
                &l,
                &format!("user{i}"),
                Some(IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8])),
            );
        }
        assert_eq!(l.tracked(), (4, 4));
    }
}
