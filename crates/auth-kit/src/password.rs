//! Password hashing and verification (docs/contract.md, "Passwords").
//!
//! - New hashes are Argon2id with OWASP's parameters (m=19456 KiB, t=2,
//!   p=1), in PHC strings.
//! - Older hashes still verify and are re-hashed on success
//!   ([`Verification::Match::rehashed`]): Argon2 with other variants or
//!   parameters, bcrypt (`$2a$ $2b$ $2y$`, first 72 bytes), sha256-crypt
//!   (`$5$`) and sha512-crypt (`$6$`) through `pwhash`.
//! - A missing (unknown user), corrupt or unknown hash costs the same Argon2
//!   work as a real verification and fails: timing and answers do not tell
//!   unknown users from wrong passwords.
//!
//! # Bounded resources
//! Hashing never runs on the async runtime. A fixed set of worker threads
//! (one per core) takes jobs from a bounded queue; each worker allocates its
//! Argon2 memory (19 MiB) once and reuses it for every job, so a login
//! flood costs `workers x 19 MiB` however many requests wait. When the queue
//! is full, [`PasswordHasher::verify`] answers [`PasswordError::Busy`] at
//! once (503 with `Retry-After: 1`): no unbounded waiting, no unbounded
//! memory. (A thread per request, as `spawn_blocking` gives, grew a
//! prototype to gigabytes: every thread gets its own allocator arena.)
//!
//! The hashing threads run at a lower scheduling priority than everything
//! else in the process (on Linux: `SCHED_BATCH` at nice 10, which any
//! process may choose for its own threads): when a login flood keeps them
//! busy, a request thread that wakes up still gets a core at once, so the
//! flood costs login latency, not the latency of the other routes. When
//! nothing else runs they get the whole machine, as before.
//! (`thread-priority` makes the two system calls; this workspace forbids
//! `unsafe` code.)
//!
//! Signups cannot take the pool from logins: [`PasswordHasher::hash_for_signup`]
//! has a queue of its own, a quarter of the size, and a free worker always
//! takes a waiting login (or any other job) before a waiting signup. A
//! signup flood therefore gets at most a quarter of the places and never
//! delays a login by more than the jobs already running. A job whose caller
//! went away is skipped.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use auth_kit::password::{PasswordHasher, PoolSize, Verification};
//!
//! let hasher = PasswordHasher::new(PoolSize { workers: 1, queue: 8 });
//! let hash = hasher.hash("correct horse battery").await.unwrap();
//! assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//! assert!(matches!(hasher.verify("correct horse battery", Some(&hash)).await, Ok(Verification::Match { rehashed: None })));
//! assert!(matches!(hasher.verify("wrong", Some(&hash)).await, Ok(Verification::Mismatch)));
//! assert!(matches!(hasher.verify("anything", None).await, Ok(Verification::Mismatch)));
//! # });
//! ```

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use subtle::ConstantTimeEq;
use tokio::sync::oneshot;
use zeroize::Zeroizing;

/// Shortest password accepted at signup, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted at signup, in UTF-8 bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Largest Argon2 memory cost (KiB) a stored hash may ask for. A hash
/// asking for more is treated as corrupt rather than allocating gigabytes
/// because a row said so.
const MAX_STORED_ARGON2_M_KIB: u32 = 256 * 1024;
/// Largest Argon2 time cost a stored hash may ask for.
const MAX_STORED_ARGON2_T: u32 = 16;
/// Largest Argon2 parallelism a stored hash may ask for.
const MAX_STORED_ARGON2_P: u32 = 16;
/// Largest bcrypt cost verified (2^14 rounds is about a second).
const MAX_BCRYPT_COST: u32 = 14;
/// Largest sha-crypt rounds verified (passlib's defaults are under 700 000).
const MAX_SHA_CRYPT_ROUNDS: u32 = 1_000_000;
/// Longest password verified against a sha-crypt hash: its work grows with
/// the password's length times the rounds (and the length squared), so a
/// long password against a migrated `$6$` hash would pin a worker.
const MAX_SHA_CRYPT_PASSWORD_BYTES: usize = 256;

/// The parameters of every new hash: argon2's defaults, which are OWASP's.
fn current_params() -> Params {
    Params::DEFAULT
}

/// How many hashing threads, and how many jobs may wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    /// Worker threads (each holds 19 MiB of Argon2 memory).
    pub workers: usize,
    /// Jobs that may wait; beyond this, callers get [`PasswordError::Busy`].
    pub queue: usize,
}

impl PoolSize {
    /// One worker per core, 256 waiting jobs.
    pub fn for_this_machine() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Self {
            workers,
            queue: 256,
        }
    }
}

/// Why a password operation did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The queue is full: answer 503 and let the client retry.
    #[error("password hashing is at capacity")]
    Busy,
    /// The worker pool is gone (the process is shutting down).
    #[error("password hashing is not running")]
    Stopped,
}

/// The outcome of a verification.
#[derive(Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password matches.
    Match {
        /// A fresh Argon2id hash to store when the stored one is obsolete
        /// (other algorithm or parameters).
        rehashed: Option<String>,
    },
    /// Wrong password, no such user, or an unusable stored hash.
    Mismatch,
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verification::Match { rehashed } => f
                .debug_struct("Match")
                .field("rehashed", &rehashed.as_ref().map(|_| "<hash>"))
                .finish(),
            Verification::Mismatch => f.write_str("Mismatch"),
        }
    }
}

enum Job {
    Hash {
        password: Zeroizing<Vec<u8>>,
        reply: oneshot::Sender<String>,
    },
    Verify {
        password: Zeroizing<Vec<u8>>,
        stored: Option<String>,
        reply: oneshot::Sender<Verification>,
    },
}

/// A handle to the hashing pool. Cheap to clone; the worker threads stop
/// when the last handle is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: Sender<Job>,
    signups: Sender<Job>,
    size: PoolSize,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("size", &self.size)
            .field("waiting", &self.jobs.len())
            .field("signups_waiting", &self.signups.len())
            .finish()
    }
}

impl PasswordHasher {
    /// Starts `size.workers` hashing threads behind a queue of `size.queue`.
    ///
    /// # Panics
    /// If the operating system refuses to start a thread (start-up only).
    pub fn new(size: PoolSize) -> Self {
        let workers = size.workers.max(1);
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(size.queue);
        let (signups, signup_queue) =
            crossbeam_channel::bounded::<Job>(Self::signup_places(size.queue));
        for n in 0..workers {
            let queue = queue.clone();
            let signup_queue = signup_queue.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    give_way_to_requests();
                    Worker::new().run(&queue, &signup_queue)
                })
                .expect("could not start a password hashing thread");
        }
        Self {
            jobs,
            signups,
            size: PoolSize {
                workers,
                queue: size.queue,
            },
        }
    }

    /// Places in the signup queue for a pool of `queue`: a quarter, at least one.
    pub fn signup_places(queue: usize) -> usize {
        (queue / 4).max(1)
    }

    /// Hashes a new password with Argon2id (OWASP parameters), with the
    /// priority of a login (admin bootstrap, password changes).
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let (reply, answer) = oneshot::channel();
        submit(
            &self.jobs,
            Job::Hash {
                password: Zeroizing::new(password.as_bytes().to_vec()),
                reply,
            },
        )?;
        answer.await.map_err(|_| PasswordError::Stopped)
    }

    /// Hashes a signup's password in the signups' own, smaller queue, which
    /// workers serve only when no other job waits: [`PasswordError::Busy`]
    /// once a quarter of the pool's places hold signups.
    pub async fn hash_for_signup(&self, password: &str) -> Result<String, PasswordError> {
        let (reply, answer) = oneshot::channel();
        submit(
            &self.signups,
            Job::Hash {
                password: Zeroizing::new(password.as_bytes().to_vec()),
                reply,
            },
        )?;
        answer.await.map_err(|_| PasswordError::Stopped)
    }

    /// Verifies `password` against `stored`; `None` (unknown user) does the
    /// same work and fails.
    pub async fn verify(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<Verification, PasswordError> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Verify {
            password: Zeroizing::new(password.as_bytes().to_vec()),
            stored: stored.map(str::to_owned),
            reply,
        };
        submit(&self.jobs, job)?;
        answer.await.map_err(|_| PasswordError::Stopped)
    }

    /// Jobs waiting for a worker right now (signups included).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.jobs.len() + self.signups.len()
    }
}

/// Lowers the calling thread's priority below the request threads':
/// `SCHED_BATCH` (never preempts another thread on waking) at nice 10
/// (about a tenth of a normal thread's share of a busy
/// core). Elsewhere than Linux the thread keeps its priority.
fn give_way_to_requests() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
        };
        // thread-priority spreads its 0..=99 over nice 19..=-20: 21 is nice 10.
        let lowered = ThreadPriorityValue::try_from(21u8)
            .map_err(|e| e.to_string())
            .and_then(|value| {
                thread_priority::set_thread_priority_and_policy(
                    thread_priority::thread_native_id(),
                    ThreadPriority::Crossplatform(value),
                    ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
                )
                .map_err(|e| format!("{e:?}"))
            });
        if let Err(e) = lowered {
            tracing::warn!(error = %e, "could not lower the priority of a password hashing thread; a login flood may slow other requests");
        }
    }
}

fn submit(queue: &Sender<Job>, job: Job) -> Result<(), PasswordError> {
    queue.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => PasswordError::Busy,
        TrySendError::Disconnected(_) => PasswordError::Stopped,
    })
}

/// One hashing thread and the Argon2 memory it reuses.
struct Worker {
    current: Argon2<'static>,
    memory: Vec<Block>,
    /// Salt for dummy verifications (unknown users, unusable hashes).
    dummy_salt: [u8; 16],
}

impl Worker {
    fn new() -> Self {
        let params = current_params();
        Self {
            memory: vec![Block::new(); params.block_count()],
            current: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            dummy_salt: crate::random::bytes::<16>(),
        }
    }

    /// Serves `queue` first and `signups` only when `queue` is empty, until
    /// the pool is dropped.
    fn run(mut self, queue: &Receiver<Job>, signups: &Receiver<Job>) {
        loop {
            let job = match queue.try_recv() {
                Ok(job) => Ok(job),
                Err(_) => crossbeam_channel::select_biased! {
                    recv(queue) -> job => job,
                    recv(signups) -> job => job,
                },
            };
            let Ok(job) = job else {
                return;
            };
            self.run_job(job);
        }
    }

    fn run_job(&mut self, job: Job) {
        match job {
            // The caller went away (timed out, disconnected): skip the work.
            Job::Hash { reply, .. } if reply.is_closed() => {}
            Job::Verify { reply, .. } if reply.is_closed() => {}
            Job::Hash { password, reply } => {
                // A dropped receiver means the request went away: nothing to do.
                let _ = reply.send(self.hash_new(&password));
            }
            Job::Verify {
                password,
                stored,
                reply,
            } => {
                // A panic inside a legacy-format parser must not kill the worker.
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    self.verify(&password, stored.as_deref())
                }))
                .unwrap_or(Verification::Mismatch);
                let _ = reply.send(outcome);
            }
        }
    }

    fn hash_new(&mut self, password: &[u8]) -> String {
        let salt = crate::random::bytes::<16>();
        let mut out = [0u8; 32];
        self.current
            .hash_password_into_with_memory(password, &salt, &mut out, &mut self.memory)
            .expect("OWASP parameters, a 16-byte salt and a 32-byte output are valid");
        let params = self.current.params();
        format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        )
    }

    fn verify(&mut self, password: &[u8], stored: Option<&str>) -> Verification {
        let Some(stored) = stored else {
            self.dummy_verify(password);
            return Verification::Mismatch;
        };
        let matched = if stored.starts_with("$argon2") {
            self.verify_argon2(password, stored)
        } else if ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| stored.starts_with(p))
        {
            bcrypt_cost(stored)
                .filter(|c| *c <= MAX_BCRYPT_COST)
                .map(|_| {
                    Upgrade::from(pwhash::bcrypt::verify(
                        &password[..password.len().min(72)],
                        stored,
                    ))
                })
        } else if (stored.starts_with("$5$") || stored.starts_with("$6$"))
            && password.len() > MAX_SHA_CRYPT_PASSWORD_BYTES
        {
            // sha-crypt's cost grows with length x rounds: refuse long inputs.
            None
        } else if stored.starts_with("$5$") {
            sha_crypt_rounds(stored)
                .map(|_| Upgrade::from(pwhash::sha256_crypt::verify(password, stored)))
        } else if stored.starts_with("$6$") {
            sha_crypt_rounds(stored)
                .map(|_| Upgrade::from(pwhash::sha512_crypt::verify(password, stored)))
        } else {
            None
        };
        match matched {
            Some(Upgrade::Current) => Verification::Match { rehashed: None },
            Some(Upgrade::Needed) => Verification::Match {
                rehashed: Some(self.hash_new(password)),
            },
            Some(Upgrade::Mismatch) => Verification::Mismatch,
            None => {
                // Corrupt, unknown or absurdly expensive: fail at the cost of a real check.
                self.dummy_verify(password);
                Verification::Mismatch
            }
        }
    }

    /// The cost of a verification with today's parameters, for nothing.
    fn dummy_verify(&mut self, password: &[u8]) {
        let mut out = [0u8; 32];
        let _ = self.current.hash_password_into_with_memory(
            password,
            &self.dummy_salt,
            &mut out,
            &mut self.memory,
        );
    }

    /// `None` when the string is not a usable Argon2 PHC hash.
    fn verify_argon2(&mut self, password: &[u8], stored: &str) -> Option<Upgrade> {
        let phc = argon2::PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(phc.algorithm.as_str()).ok()?;
        let version = match phc.version {
            Some(v) => Version::try_from(v).ok()?,
            None => Version::V0x10,
        };
        let params = Params::try_from(&phc).ok()?;
        if params.m_cost() > MAX_STORED_ARGON2_M_KIB
            || params.t_cost() > MAX_STORED_ARGON2_T
            || params.p_cost() > MAX_STORED_ARGON2_P
        {
            return None;
        }
        let salt = phc.salt.as_ref()?;
        let expected = phc.hash.as_ref()?;
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        let argon = Argon2::new(algorithm, version, params.clone());
        let blocks = params.block_count();
        if blocks <= self.memory.len() {
            argon
                .hash_password_into_with_memory(
                    password,
                    salt,
                    &mut out,
                    &mut self.memory[..blocks],
                )
                .ok()?;
        } else {
            // An older, more expensive hash: borrow memory for this one job.
            let mut memory = vec![Block::new(); blocks];
            argon
                .hash_password_into_with_memory(password, salt, &mut out, &mut memory)
                .ok()?;
        }
        if !bool::from(out.as_slice().ct_eq(expected.as_bytes())) {
            return Some(Upgrade::Mismatch);
        }
        let current = current_params();
        let is_current = algorithm == Algorithm::Argon2id
            && version == Version::V0x13
            && params.m_cost() == current.m_cost()
            && params.t_cost() == current.t_cost()
            && params.p_cost() == current.p_cost()
            && expected.len() == 32;
        Some(if is_current {
            Upgrade::Current
        } else {
            Upgrade::Needed
        })
    }
}

/// Whether a verified hash must be replaced.
enum Upgrade {
    Current,
    Needed,
    Mismatch,
}

impl From<bool> for Upgrade {
    /// Legacy formats: any match needs an upgrade to Argon2id.
    fn from(matched: bool) -> Self {
        if matched {
            Upgrade::Needed
        } else {
            Upgrade::Mismatch
        }
    }
}

/// `$2b$12$...` -> 12
fn bcrypt_cost(stored: &str) -> Option<u32> {
    stored.get(4..6)?.parse().ok()
}

/// `$6$rounds=N$...` -> N (5000 when absent), `None` above the ceiling.
fn sha_crypt_rounds(stored: &str) -> Option<u32> {
    let rest = stored.get(3..)?;
    let rounds = match rest.strip_prefix("rounds=") {
        Some(r) => r.split('$').next()?.parse().ok()?,
        None => 5000,
    };
    (rounds <= MAX_SHA_CRYPT_ROUNDS).then_some(rounds)
}

/// The password rule for new passwords: at least 8 characters,
/// at most 1024 UTF-8 bytes. `Err` is the message after `password: `.
pub fn check_new_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err("must be at least 8 characters long");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err("must be at most 1024 bytes long");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher() -> PasswordHasher {
        PasswordHasher::new(PoolSize {
            workers: 1,
            queue: 16,
        })
    }

    async fn check(stored: &str, password: &str, expected: &str) {
        let outcome = hasher().verify(password, Some(stored)).await.unwrap();
        let got = match &outcome {
            Verification::Match { rehashed: None } => "match",
            Verification::Match { rehashed: Some(h) } => {
                assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
                "match+rehash"
            }
            Verification::Mismatch => "mismatch",
        };
        assert_eq!(got, expected, "{stored} with {password:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signups_get_a_share_and_logins_go_first() {
        let h = PasswordHasher::new(PoolSize {
            workers: 1,
            queue: 8,
        });
        assert_eq!(PasswordHasher::signup_places(8), 2);
        let stored = h.hash("login-password").await.unwrap();
        // A slow legacy verification (bcrypt cost 12, about 0.2 s) holds the
        // one worker while the flood arrives, so no job finishes and frees a
        // place meanwhile, however busy the machine is.
        let slow = pwhash::bcrypt::hash_with(
            pwhash::bcrypt::BcryptSetup {
                cost: Some(12),
                variant: Some(pwhash::bcrypt::BcryptVariant::V2b),
                salt: None,
            },
            "blocker",
        )
        .unwrap();
        // Polled once here, so the blocker is in the queue before we wait for
        // the worker to take it: a fixed sleep lost that race on a loaded
        // machine, leaving the logins seven places.
        let mut blocker = Box::pin(h.verify("blocker", Some(&slow)));
        std::future::poll_fn(|cx| {
            assert!(blocker.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while h.waiting() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the worker never started"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let started = std::time::Instant::now();
        let flood: Vec<_> = (0..20)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move {
                    let r = h.hash_for_signup("flood-password").await;
                    (r.is_ok(), started.elapsed())
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        // The logins' eight places are all free: none is refused.
        let logins: Vec<_> = (0..8)
            .map(|_| {
                let (h, stored) = (h.clone(), stored.clone());
                tokio::spawn(async move {
                    let r = h.verify("login-password", Some(&stored)).await;
                    (r, started.elapsed())
                })
            })
            .collect();
        let mut last_login = std::time::Duration::ZERO;
        for login in logins {
            let (verdict, done) = login.await.unwrap();
            assert!(
                matches!(verdict, Ok(Verification::Match { .. })),
                "{verdict:?}"
            );
            last_login = last_login.max(done);
        }
        let (mut hashed, mut last_signup) = (0, std::time::Duration::ZERO);
        for signup in flood {
            let (ok, done) = signup.await.unwrap();
            if ok {
                hashed += 1;
                last_signup = last_signup.max(done);
            }
        }
        assert!(blocker.await.is_ok());
        // The signups' two places; the other eighteen were refused at once.
        assert_eq!(hashed, 2, "signups admitted");
        assert!(
            last_login < last_signup,
            "waiting signups run after waiting logins ({last_login:?} vs {last_signup:?})"
        );
    }

    #[tokio::test]
    async fn current_hashes_round_trip() {
        let h = hasher();
        let a = h.hash("pässwörd-1").await.unwrap();
        let b = h.hash("pässwörd-1").await.unwrap();
        assert_ne!(a, b, "fresh salt each time");
        check(&a, "pässwörd-1", "match").await;
        check(&a, "pässwörd-2", "mismatch").await;
        check(&a, "", "mismatch").await;
    }

    #[tokio::test]
    async fn legacy_formats_verify_and_upgrade() {
        // Obsolete argon2 variants and parameters, bcrypt 2a/2b/2y, sha256/512-crypt.
        let pw = "password";
        let argon2i = argon2_phc(Algorithm::Argon2i, Version::V0x13, 4096, 3, 1, pw);
        let argon2id_weak = argon2_phc(Algorithm::Argon2id, Version::V0x13, 4096, 1, 1, pw);
        let argon2id_v10 = argon2_phc(Algorithm::Argon2id, Version::V0x10, 19456, 2, 1, pw);
        for stored in [&argon2i, &argon2id_weak, &argon2id_v10] {
            check(stored, pw, "match+rehash").await;
            check(stored, "Password", "mismatch").await;
        }
        let bcrypt_2b = pwhash::bcrypt::hash_with(
            pwhash::bcrypt::BcryptSetup {
                cost: Some(5),
                variant: Some(pwhash::bcrypt::BcryptVariant::V2b),
                salt: None,
            },
            pw,
        )
        .unwrap();
        // pwhash's own test vector for "password", as $2y$ (PHP) and $2a$ (OpenBSD).
        let bcrypt_2y = "$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe";
        let bcrypt_2a = "$2a$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe";
        for stored in [bcrypt_2b.as_str(), bcrypt_2y, bcrypt_2a] {
            check(stored, pw, "match+rehash").await;
            check(stored, "passw0rd", "mismatch").await;
        }
        // glibc crypt(3), via Python's `crypt` module: an independent implementation.
        let sha256 = "$5$saltstring$OH4IDuTlsuTYPdED1gsuiRMyTAwNlRWyA6Xr3I4/dQ5";
        let sha512 = "$6$rounds=10000$saltstring$t8jRkZue4ZqkvRTF6Ly63E8QTtoCevHn5vWVdXcomlAvhV8iTse.xlPFOmGov1eQRZLufNVYaEFrHVyRed8gC/";
        for stored in [sha256, sha512] {
            check(stored, pw, "match+rehash").await;
            check(stored, "wrong", "mismatch").await;
        }
    }

    #[tokio::test]
    async fn bcrypt_uses_the_first_72_bytes() {
        let long = "x".repeat(72);
        let stored = pwhash::bcrypt::hash_with(
            pwhash::bcrypt::BcryptSetup {
                cost: Some(4),
                variant: Some(pwhash::bcrypt::BcryptVariant::V2b),
                salt: None,
            },
            &long,
        )
        .unwrap();
        check(&stored, &format!("{long}and-more"), "match+rehash").await;
    }

    #[tokio::test]
    async fn corrupt_unknown_and_absurd_hashes_fail_closed() {
        let absurd_argon2 =
            "$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        for stored in [
            "",
            "plaintext-password",
            "$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtaGFzaA",
            "$argon2id$v=19$m=19456,t=2,p=1$$",
            "$argon2xx$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA",
            absurd_argon2,
            "$2b$31$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe",
            "$2b$xx$garbage",
            "$6$rounds=999999999$saltstring$abc",
            "$1$md5crypt$isnotaccepted",
        ] {
            check(stored, "password", "mismatch").await;
        }
        // A long password never reaches sha-crypt (its cost is length x rounds).
        let sha512 = "$6$rounds=10000$saltstring$t8jRkZue4ZqkvRTF6Ly63E8QTtoCevHn5vWVdXcomlAvhV8iTse.xlPFOmGov1eQRZLufNVYaEFrHVyRed8gC/";
        check(sha512, &"p".repeat(257), "mismatch").await;
    }

    #[tokio::test]
    async fn full_queue_answers_busy() {
        let h = PasswordHasher::new(PoolSize {
            workers: 1,
            queue: 1,
        });
        let mut waiting = Vec::new();
        for _ in 0..8 {
            let h = h.clone();
            waiting.push(tokio::spawn(
                async move { h.verify("password", None).await },
            ));
        }
        let mut busy = 0;
        for w in waiting {
            if w.await.unwrap() == Err(PasswordError::Busy) {
                busy += 1;
            }
        }
        assert!(
            busy >= 1,
            "8 jobs on 1 worker and a queue of 1 must overflow"
        );
    }

    /// What the kernel says about the hashing threads: their nice value and
    /// scheduling policy (fields 19 and 41 of `/proc/<pid>/task/<tid>/stat`;
    /// SCHED_BATCH is 3).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority() {
        let h = PasswordHasher::new(PoolSize {
            workers: 2,
            queue: 4,
        });
        // The threads lower themselves first thing; a job done proves they ran.
        h.hash("priority-check").await.unwrap();
        h.hash("priority-check").await.unwrap();
        let mut seen = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.join("stat")).unwrap_or_default();
            // Fields after the parenthesised name, which may hold spaces.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (nice, policy) = (fields[19 - 3], fields[41 - 3]);
            if comm.starts_with("password-hash-") {
                assert_eq!((nice, policy), ("10", "3"), "{}", comm.trim());
                seen += 1;
            } else if comm.starts_with("tokio-runtime") {
                assert_eq!((nice, policy), ("0", "0"), "{}", comm.trim());
            }
        }
        assert!(seen >= 2, "found {seen} hashing threads");
    }

    #[test]
    fn new_password_rule() {
        assert!(check_new_password("1234567").is_err());
        assert!(check_new_password("12345678").is_ok());
        assert!(check_new_password("ééééééé").is_err());
        assert!(check_new_password("éééééééé").is_ok());
        assert!(check_new_password(&"x".repeat(1024)).is_ok());
        assert!(check_new_password(&"x".repeat(1025)).is_err());
    }

    fn argon2_phc(
        alg: Algorithm,
        version: Version,
        m: u32,
        t: u32,
        p: u32,
        password: &str,
    ) -> String {
        use argon2::PasswordHasher as _;
        let params = Params::new(m, t, p, None).unwrap();
        Argon2::new(alg, version, params)
            .hash_password_with_salt(password.as_bytes(), b"somesaltsomesalt")
            .unwrap()
            .to_string()
    }
}
