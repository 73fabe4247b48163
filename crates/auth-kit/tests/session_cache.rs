//! The session cache (SESSION_CACHE_SECONDS) kept true by every write:
//!
//! - every statement of the store that writes `users` or `logins` is
//!   listed here (found by scanning the kit's SQL, so a new one fails
//!   `every_write_to_users_and_logins_is_listed` until it is added), and each
//!   is checked behaviourally: after it, the instance that made it reads
//!   the database at once, and a second instance within [`DELIVERY_LIMIT`]
//!   (PostgreSQL LISTEN/NOTIFY, or Redis pub/sub with SQLite), each delay
//!   printed;
//! - a channel that drops (its connection killed, or silent) makes the
//!   cache step aside until it is back, and empties it;
//! - an entry is never served once SESSION_CACHE_SECONDS old (manual clock).
//!
//! "Behind the back" changes are raw SQL on a connection of the test's own:
//! they notify nobody, so only the cache's own rules decide whether a store
//! sees them. Run with `--nocapture` to see the delays.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use auth_kit::Clock;
use auth_kit::config::{Environment, RateLimitUrl, SessionCacheSettings, TrafficSettings};
use auth_kit::extract::Lookup;
use auth_kit::session_cache::{ANSWER_LIMIT, QUIET_CHECK};
use auth_kit::store::{
    AccountTokenHash, NewUser, RefreshTokenHash, Store, TokenPurpose, User, UserUpdate,
};
use auth_kit::testing::TestDatabase;
use sqlx::{PgPool, SqlitePool};

use common::RedisServer;

/// How long a change may take to reach the second instance. Expected:
/// milliseconds; this bound only says "not SESSION_CACHE_SECONDS".
const DELIVERY_LIMIT: Duration = Duration::from_secs(1);
/// The TTL of these tests' caches: far longer than any test, so only an
/// invalidation can make a store read again.
const LONG_TTL: Duration = Duration::from_secs(300);

/// Every statement in the kit that writes `users` or `logins`, by the
/// function it is in. Each one is checked in `each_write_invalidates_*`.
const WRITES: &[(&str, &str)] = &[
    ("fill_username_keys", "update users"),
    ("create_user", "insert into users"),
    ("set_password_hash", "update users"),
    ("update_user", "update users"),
    ("delete_user", "delete from users"),
    ("start_login", "insert into logins"),
    ("revoke_login", "update logins"),
    ("purge_expired", "delete from logins"),
    ("reset_password", "update users"),
    ("reset_password", "update logins"),
    ("verify_email", "update users"),
    ("change_password", "update users"),
    ("change_password", "update logins"),
];

/// Statements that match the scan but change no user or login, so no cache
/// entry: each with why.
const NOT_CHANGES: &[(&str, &str)] = &[
    // SQL printed for the operator in a start-up warning, never executed.
    ("promote_hint", "update users"),
    // A no-op UPDATE that locks a user's row for a service's own
    // transaction (an item quota): it changes no column.
    ("lock_user_row", "update users"),
];

#[test]
fn every_write_to_users_and_logins_is_listed() {
    let mut found = BTreeSet::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    let listed: BTreeSet<(String, String)> = WRITES
        .iter()
        .chain(NOT_CHANGES)
        .map(|(f, s)| ((*f).to_owned(), (*s).to_owned()))
        .collect();
    let unlisted: Vec<_> = found.difference(&listed).collect();
    let gone: Vec<_> = listed.difference(&found).collect();
    assert!(
        unlisted.is_empty(),
        "writes to users or logins not listed in WRITES (list them, commit them through \
         Store::commit, and check them below): {unlisted:?}"
    );
    assert!(
        gone.is_empty(),
        "listed writes no longer in the code: {gone:?}"
    );
}

/// (function, statement) for every SQL string literal in `dir` that
/// writes `users` or `logins`.
fn scan(dir: &Path, found: &mut BTreeSet<(String, String)>) {
    const STATEMENTS: &[&str] = &[
        "insert into users",
        "insert into logins",
        "update users",
        "update logins",
        "delete from users",
        "delete from logins",
    ];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scan(&path, found);
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let mut function = String::from("<outside any function>");
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if let Some(rest) = code.split("fn ").nth(1).filter(|_| code.contains("fn "))
                && let Some(name) = rest.split(['(', '<']).next()
                && !name.is_empty()
                && name.chars().all(|c| c.is_alphanumeric() || c == '_')
            {
                function = name.to_owned();
            }
            let normalized = code
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            for statement in STATEMENTS {
                if let Some(at) = normalized.find(statement)
                    && normalized[..at].contains('"')
                {
                    found.insert((function.clone(), (*statement).to_owned()));
                }
            }
        }
    }
}

// -- the behavioural checks ------------------------------------------------------

/// What a store answers for a session, reduced to what the checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Found {
        full_name: Option<String>,
        role: String,
        disabled: bool,
        email_verified: bool,
    },
    RevokedLogin,
    UnknownUser,
}

impl From<Lookup<User>> for Seen {
    fn from(lookup: Lookup<User>) -> Self {
        match lookup {
            Lookup::Found(u) => Seen::Found {
                full_name: u.full_name,
                role: u.role,
                disabled: u.disabled,
                email_verified: u.email_verified,
            },
            Lookup::RevokedLogin => Seen::RevokedLogin,
            Lookup::UnknownUser => Seen::UnknownUser,
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    user_id: i64,
    username: String,
    login_id: String,
}

async fn seen(store: &Store, s: &Session) -> Seen {
    store
        .user_for_access(s.user_id, Some(&s.login_id))
        .await
        .unwrap()
        .into()
}

/// A connection of the test's own: its writes notify nobody.
enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    async fn open(db: &TestDatabase) -> Self {
        match db.backend_name() {
            "sqlite" => Raw::Sqlite(SqlitePool::connect(db.url()).await.unwrap()),
            _ => Raw::Postgres(PgPool::connect(db.url()).await.unwrap()),
        }
    }

    /// `sql` with `$1` bound to `text` and `$2` to `id`.
    async fn run(&self, sql: &str, text: &str, id: i64) {
        match self {
            Raw::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(text)
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            Raw::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(text)
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }

    async fn rename(&self, user_id: i64, full_name: &str) {
        self.run(
            "UPDATE users SET full_name = $1 WHERE id = $2",
            full_name,
            user_id,
        )
        .await;
    }
}

/// One place the checks run: a database, the store that writes, and the
/// second instance when there is a channel to reach it.
struct Deployment {
    name: &'static str,
    db: TestDatabase,
    writer: Store,
    other: Option<Store>,
    /// The truth: a store without a cache.
    plain: Store,
    raw: Raw,
    _redis: Option<RedisServer>,
}

fn settings(ttl: Duration, redis: Option<&RedisServer>) -> SessionCacheSettings {
    let redis: Option<RateLimitUrl> = redis.and_then(|r| {
        TrafficSettings::from_env(&Environment::from_pairs([("RATE_LIMIT_URL", r.url())]))
            .unwrap()
            .rate_limit_url
    });
    SessionCacheSettings { ttl, redis }
}

async fn cached_store(db: &TestDatabase, redis: Option<&RedisServer>) -> Store {
    Store::connect(db.url())
        .await
        .unwrap()
        .with_session_cache(&settings(LONG_TTL, redis), "cache-test")
        .unwrap()
}

async fn deployments(test: &str) -> Vec<Deployment> {
    let mut out = Vec::new();
    let db = TestDatabase::sqlite();
    out.push(Deployment {
        name: "sqlite, one instance",
        writer: cached_store(&db, None).await,
        other: None,
        plain: Store::connect(db.url()).await.unwrap(),
        raw: Raw::open(&db).await,
        db,
        _redis: None,
    });
    if let Some(redis) = RedisServer::start(test) {
        let db = TestDatabase::sqlite();
        out.push(Deployment {
            name: "sqlite, two instances, Redis pub/sub",
            writer: cached_store(&db, Some(&redis)).await,
            other: Some(cached_store(&db, Some(&redis)).await),
            plain: Store::connect(db.url()).await.unwrap(),
            raw: Raw::open(&db).await,
            db,
            _redis: Some(redis),
        });
    }
    if let Some(db) = TestDatabase::postgres(test).await {
        out.push(Deployment {
            name: "postgres, two instances, LISTEN/NOTIFY",
            writer: cached_store(&db, None).await,
            other: Some(cached_store(&db, None).await),
            plain: Store::connect(db.url()).await.unwrap(),
            raw: Raw::open(&db).await,
            db,
            _redis: None,
        });
    }
    for d in &out {
        serving(&d.writer, &d.raw, d.name).await;
        if let Some(other) = &d.other {
            serving(other, &d.raw, d.name).await;
        }
    }
    out
}

/// Waits until `store`'s cache serves (its channel is up), on a session
/// of its own.
async fn serving(store: &Store, raw: &Raw, what: &str) {
    let name = format!("probe-{}", auth_kit::random::secret_hex());
    let s = session(store, &name[..20], None).await;
    cached_everywhere(&[store], raw, &s, what).await;
}

/// Whether `store` answers `s` from its cache: a rename behind its back
/// between two lookups goes unseen.
async fn serves_from_cache(store: &Store, raw: &Raw, s: &Session) -> bool {
    let before = seen(store, s).await;
    raw.rename(s.user_id, &auth_kit::random::secret_hex()).await;
    seen(store, s).await == before
}

/// Waits until every one of `stores` answers `s` from its cache. (A
/// store's own writes come back to it through the channel a moment later
/// and drop the entry once more: wait for those echoes to land.)
async fn cached_everywhere(stores: &[&Store], raw: &Raw, s: &Session, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = lookups(stores, s).await;
        assert!(
            before.iter().all(|b| matches!(b, Seen::Found { .. })),
            "{what}: {before:?}"
        );
        raw.rename(s.user_id, &auth_kit::random::secret_hex()).await;
        if lookups(stores, s).await == before {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: the cache never served");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn lookups(stores: &[&Store], s: &Session) -> Vec<Seen> {
    let mut out = Vec::new();
    for store in stores {
        out.push(seen(store, s).await);
    }
    out
}

async fn session(store: &Store, username: &str, email: Option<&str>) -> Session {
    let user = store
        .create_user(&NewUser {
            username,
            email,
            full_name: Some("before"),
            password_hash: "$argon2id$v=19$x",
            role: "user",
        })
        .await
        .unwrap();
    let login_id = store
        .start_login(
            user.id,
            "$argon2id$v=19$x",
            "me",
            &RefreshTokenHash::of(&auth_kit::random::secret_hex()),
            Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .unwrap();
    Session {
        user_id: user.id,
        username: username.to_owned(),
        login_id,
    }
}

/// The write paths, each run the same way (see `check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    FillUsernameKeys,
    SetPasswordHash,
    UpdateUserRole,
    UpdateUserDisabled,
    UpdateUserPermissions,
    DeleteUser,
    StartLogin,
    Logout,
    RevokeForReuse,
    PurgeExpired,
    ResetPassword,
    VerifyEmail,
    ChangePasswordKeepingThisLogin,
    ChangePasswordEverywhere,
}

const ALL_WRITES: &[Write] = &[
    Write::FillUsernameKeys,
    Write::SetPasswordHash,
    Write::UpdateUserRole,
    Write::UpdateUserDisabled,
    Write::UpdateUserPermissions,
    Write::DeleteUser,
    Write::StartLogin,
    Write::Logout,
    Write::RevokeForReuse,
    Write::PurgeExpired,
    Write::ResetPassword,
    Write::VerifyEmail,
    Write::ChangePasswordKeepingThisLogin,
    Write::ChangePasswordEverywhere,
];

/// Runs `write` on a fresh session after both instances cached it and the
/// user was renamed behind their backs: the writer must then answer what
/// the database holds at once, the other instance within the limit.
/// Returns the other instance's delay.
async fn check(d: &Deployment, write: Write, n: usize) -> Option<Duration> {
    let email = format!("w{n}@example.com");
    let s = session(&d.writer, &format!("writer-{n}"), Some(&email)).await;
    let token = auth_kit::random::secret_hex();
    match write {
        Write::ResetPassword | Write::VerifyEmail => {
            let purpose = if write == Write::ResetPassword {
                TokenPurpose::ResetPassword
            } else {
                TokenPurpose::VerifyEmail
            };
            let issued = d
                .writer
                .issue_account_token(
                    s.user_id,
                    purpose,
                    &AccountTokenHash::of(&token),
                    Duration::from_secs(600),
                )
                .await
                .unwrap();
            assert!(issued);
        }
        Write::PurgeExpired => {
            d.raw
                .run(
                    "DELETE FROM refresh_tokens WHERE login_id = $1 AND $2 = $2",
                    &s.login_id,
                    0,
                )
                .await;
        }
        Write::FillUsernameKeys => {
            d.raw
                .run(
                    "UPDATE users SET username_key = NULL WHERE id = $2 AND $1 = $1",
                    "",
                    s.user_id,
                )
                .await;
        }
        _ => {}
    }
    let stores: Vec<&Store> = std::iter::once(&d.writer).chain(&d.other).collect();
    // Both serve the session from their caches, and the database holds
    // another name: only an invalidation makes them read it.
    let what = format!(
        "{}: {write:?}: the cache does not serve, so this check proves nothing",
        d.name
    );
    cached_everywhere(&stores, &d.raw, &s, &what).await;

    match write {
        // Runs while a store opens, before it serves: a store opening on
        // this database now announces what it fills in.
        Write::FillUsernameKeys => {
            let opened = Store::connect(d.db.url()).await.unwrap();
            opened.close().await;
        }
        Write::SetPasswordHash => d
            .writer
            .set_password_hash(s.user_id, "$argon2id$v=19$x", "$argon2id$v=19$y")
            .await
            .map(|replaced| assert!(replaced))
            .unwrap(),
        Write::UpdateUserRole | Write::UpdateUserDisabled | Write::UpdateUserPermissions => {
            let update = match write {
                Write::UpdateUserRole => UserUpdate {
                    role: Some("guest".to_owned()),
                    ..UserUpdate::default()
                },
                Write::UpdateUserDisabled => UserUpdate {
                    disabled: Some(true),
                    ..UserUpdate::default()
                },
                _ => UserUpdate {
                    permissions: Some(vec!["items:delete".to_owned()]),
                    ..UserUpdate::default()
                },
            };
            assert!(
                d.writer
                    .update_user(s.user_id, &update)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        Write::DeleteUser => assert!(d.writer.delete_user(s.user_id).await.unwrap()),
        Write::StartLogin => {
            let hash = RefreshTokenHash::of(&token);
            let started = d
                .writer
                .start_login(
                    s.user_id,
                    "$argon2id$v=19$x",
                    "me",
                    &hash,
                    Duration::from_secs(60),
                )
                .await;
            assert!(started.unwrap().is_some());
        }
        Write::Logout => assert!(
            d.writer
                .revoke_login(&s.login_id, Some(s.user_id))
                .await
                .unwrap()
        ),
        Write::RevokeForReuse => assert!(d.writer.revoke_login(&s.login_id, None).await.unwrap()),
        Write::PurgeExpired => assert!(d.writer.purge_expired().await.is_ok()),
        Write::ResetPassword => {
            let reset = d
                .writer
                .reset_password(&AccountTokenHash::of(&token), "$argon2id$v=19$z")
                .await;
            assert!(reset.unwrap().is_some());
        }
        Write::VerifyEmail => assert!(
            d.writer
                .verify_email(&AccountTokenHash::of(&token))
                .await
                .unwrap()
                .is_some()
        ),
        Write::ChangePasswordKeepingThisLogin => {
            d.writer
                .change_password(
                    s.user_id,
                    "$argon2id$v=19$x",
                    "$argon2id$v=19$z",
                    Some(&s.login_id),
                )
                .await
                .unwrap()
                .unwrap();
        }
        Write::ChangePasswordEverywhere => {
            assert_eq!(
                d.writer
                    .change_password(s.user_id, "$argon2id$v=19$x", "$argon2id$v=19$z", None)
                    .await
                    .unwrap(),
                Some(1)
            );
        }
    }
    let written = Instant::now();
    let truth = seen(&d.plain, &s).await;
    if write == Write::FillUsernameKeys {
        // The fill itself: the username can log in again.
        assert!(d.plain.credentials(&s.username).await.unwrap().is_some());
    }
    // The opening store is the writer here, and it had nothing cached.
    if write != Write::FillUsernameKeys {
        assert_eq!(
            seen(&d.writer, &s).await,
            truth,
            "{}: {write:?} at the writer",
            d.name
        );
    }
    let mut delay: Option<Duration> = None;
    for other in stores
        .iter()
        .skip(usize::from(write != Write::FillUsernameKeys))
    {
        let deadline = written + DELIVERY_LIMIT;
        loop {
            let now = seen(other, &s).await;
            if now == truth {
                delay = Some(delay.unwrap_or_default().max(written.elapsed()));
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {write:?}: another instance still answers {now:?} after {DELIVERY_LIMIT:?} (the database holds {truth:?})",
                d.name
            );
            tokio::task::yield_now().await;
        }
    }
    delay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_write_invalidates_here_at_once_and_elsewhere_within_the_limit() {
    for d in deployments("each_write_invalidates").await {
        let mut delays = Vec::new();
        for (n, write) in ALL_WRITES.iter().enumerate() {
            // The fill runs inside `Store::connect`, before a cache or a
            // Redis channel can be attached, and writes only `username_key`,
            // which no cached answer holds: only PostgreSQL, whose every
            // store announces in its transactions, can show it reaching others.
            if *write == Write::FillUsernameKeys && !d.name.starts_with("postgres") {
                continue;
            }
            if let Some(delay) = check(&d, *write, n).await {
                delays.push(format!("{write:?} {:.2} ms", delay.as_secs_f64() * 1000.0));
            }
        }
        println!(
            "{}: every write seen at once by its instance{}",
            d.name,
            if delays.is_empty() {
                String::new()
            } else {
                format!("; by the other after: {}", delays.join(", "))
            }
        );
    }
}

// -- channels that drop ------------------------------------------------------------

/// Polls until `store` stops answering `s` from its cache.
async fn bypassed_within(store: &Store, raw: &Raw, s: &Session, limit: Duration) -> Duration {
    let started = Instant::now();
    while serves_from_cache(store, raw, s).await {
        assert!(started.elapsed() < limit, "the cache kept serving");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// Asserts that, for `period`, `store` never answers `s` from its cache.
async fn stays_bypassed(store: &Store, raw: &Raw, s: &Session, period: Duration) {
    let until = Instant::now() + period;
    while Instant::now() < until {
        assert!(
            !serves_from_cache(store, raw, s).await,
            "served from the cache while its channel is down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_bypasses_the_cache_until_it_is_back() {
    let Some(mut redis) = RedisServer::start("redis_down_bypasses_the_cache") else {
        return;
    };
    let db = TestDatabase::sqlite();
    let raw = Raw::open(&db).await;
    let store = cached_store(&db, Some(&redis)).await;
    serving(&store, &raw, "redis").await;
    let s = session(&store, "outage", None).await;
    cached_everywhere(&[&store], &raw, &s, "before the outage").await;

    redis.kill();
    let noticed = bypassed_within(&store, &raw, &s, Duration::from_secs(5)).await;
    stays_bypassed(&store, &raw, &s, Duration::from_secs(2)).await;

    assert!(redis.restart());
    serving(&store, &raw, "redis back").await;
    println!(
        "redis killed: the cache stepped aside within {:.0} ms and stayed aside; back: serving again",
        noticed.as_secs_f64() * 1000.0
    );
}

/// A Redis that stops answering without closing its connections (SIGSTOP)
/// is noticed: a quiet subscription gets a PING, which goes unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_redis_is_noticed_by_an_unanswered_ping() {
    let Some(redis) = RedisServer::start("silent_redis_is_noticed") else {
        return;
    };
    let db = TestDatabase::sqlite();
    let raw = Raw::open(&db).await;
    let store = cached_store(&db, Some(&redis)).await;
    serving(&store, &raw, "redis").await;
    let s = session(&store, "silence", None).await;
    cached_everywhere(&[&store], &raw, &s, "before the silence").await;
    let pid = redis_pid(redis.port);
    signal("-STOP", &pid);
    let noticed = bypassed_within(&store, &raw, &s, (QUIET_CHECK + ANSWER_LIMIT) * 3).await;
    signal("-CONT", &pid);
    serving(&store, &raw, "redis resumed").await;
    println!(
        "redis stopped (SIGSTOP): the cache stepped aside after {:.1} s (a quiet second, then an unanswered PING); resumed: serving again",
        noticed.as_secs_f64()
    );
}

fn redis_pid(port: u16) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "info", "server"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .unwrap()
        .trim()
        .to_owned()
}

fn signal(which: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([which, pid])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_listener_killed_empties_the_cache_and_it_comes_back() {
    let Some(db) = TestDatabase::postgres("postgres_listener_killed").await else {
        return;
    };
    let raw = Raw::open(&db).await;
    let store = cached_store(&db, None).await;
    serving(&store, &raw, "postgres").await;
    let s = session(&store, "killed", None).await;
    cached_everywhere(&[&store], &raw, &s, "before the kill").await;
    raw.rename(s.user_id, "while the cache served").await;
    assert!(
        !matches!(seen(&store, &s).await, Seen::Found { full_name: Some(n), .. } if n == "while the cache served")
    );
    let Raw::Postgres(pool) = &raw else {
        unreachable!()
    };
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query = 'LISTEN \"sessions.' || current_schema() || '\"' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(killed, [true], "exactly the one listener was terminated");
    let started = Instant::now();
    // Nothing but the lost channel can empty the cache (no write, TTL 300 s).
    loop {
        let now = seen(&store, &s).await;
        if matches!(&now, Seen::Found { full_name: Some(n), .. } if n == "while the cache served") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still served from the cache: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let emptied = started.elapsed();
    serving(&store, &raw, "postgres, listening again").await;
    println!(
        "postgres listener terminated: the cache was emptied within {:.0} ms; listening again, it serves",
        emptied.as_secs_f64() * 1000.0
    );
}

/// Resumes a stopped process when dropped, so a failed assertion cannot
/// leave a database backend stopped.
struct Stopped(String);

impl Stopped {
    fn stop(pid: String) -> Self {
        signal("-STOP", &pid);
        Self(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", &self.0);
    }
}

/// The PostgreSQL backend that stops answering without closing its
/// connection (SIGSTOP on the listener's backend process): the quiet
/// listener's `SELECT 1` goes unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_postgres_listener_is_noticed_by_an_unanswered_round_trip() {
    let Some(db) = TestDatabase::postgres("silent_postgres_listener").await else {
        return;
    };
    let raw = Raw::open(&db).await;
    let store = cached_store(&db, None).await;
    serving(&store, &raw, "postgres").await;
    let s = session(&store, "silent", None).await;
    cached_everywhere(&[&store], &raw, &s, "before the silence").await;
    let Raw::Postgres(pool) = &raw else {
        unreachable!()
    };
    let pids: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE query = 'LISTEN \"sessions.' || current_schema() || '\"' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(pids.len(), 1, "one listener: {pids:?}");
    raw.rename(s.user_id, "while the cache served").await;
    assert!(
        !matches!(seen(&store, &s).await, Seen::Found { full_name: Some(n), .. } if n == "while the cache served")
    );
    let stopped = Stopped::stop(pids[0].to_string());
    // The instance gives up on the silent connection, empties its cache and
    // listens again on another connection of its pool (the server itself
    // is fine), so the gap may be too short to observe: what must be seen
    // is the emptied cache. Nothing else can empty it (no write, TTL 300 s).
    let started = Instant::now();
    loop {
        let now = seen(&store, &s).await;
        if matches!(&now, Seen::Found { full_name: Some(n), .. } if n == "while the cache served") {
            break;
        }
        assert!(
            started.elapsed() < (QUIET_CHECK + ANSWER_LIMIT) * 3,
            "still served from the cache: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let noticed = started.elapsed();
    serving(&store, &raw, "postgres, listening on another connection").await;
    drop(stopped);
    println!(
        "postgres listener's backend stopped (SIGSTOP): the cache was emptied after {:.1} s (a quiet second, then an unanswered SELECT 1) and serves again from a new connection",
        noticed.as_secs_f64()
    );
}

// -- the TTL -----------------------------------------------------------------------

#[tokio::test]
async fn an_entry_is_never_served_once_the_ttl_has_passed() {
    let db = TestDatabase::sqlite();
    let raw = Raw::open(&db).await;
    let clock = Clock::manual(1_000_000);
    let store = Store::connect(db.url())
        .await
        .unwrap()
        .with_session_cache(&settings(Duration::from_secs(30), None), "ttl-test")
        .unwrap()
        .with_clock(clock.clone());
    let s = session(&store, "ttl", None).await;
    seen(&store, &s).await;
    raw.rename(s.user_id, "changed").await;
    raw.run(
        "UPDATE logins SET revoked_at = 1 WHERE id = $1 AND $2 = $2",
        &s.login_id,
        0,
    )
    .await;
    clock.advance(29);
    assert!(
        matches!(seen(&store, &s).await, Seen::Found { full_name: Some(n), .. } if n == "before"),
        "29 s old: still served"
    );
    clock.advance(1);
    assert_eq!(
        seen(&store, &s).await,
        Seen::RevokedLogin,
        "30 s old: read again"
    );

    // The user part alone ages the same way (a token without a login).
    let fresh = store.user_for_access(s.user_id, None).await.unwrap();
    assert!(matches!(fresh, Lookup::Found(u) if u.full_name.as_deref() == Some("changed")));
    raw.rename(s.user_id, "changed again").await;
    clock.advance(29);
    let cached = store.user_for_access(s.user_id, None).await.unwrap();
    assert!(matches!(cached, Lookup::Found(u) if u.full_name.as_deref() == Some("changed")));
    clock.advance(1);
    let read = store.user_for_access(s.user_id, None).await.unwrap();
    assert!(matches!(read, Lookup::Found(u) if u.full_name.as_deref() == Some("changed again")));
}

#[tokio::test]
async fn zero_seconds_reads_every_time() {
    let db = TestDatabase::sqlite();
    let raw = Raw::open(&db).await;
    let store = Store::connect(db.url())
        .await
        .unwrap()
        .with_session_cache(&settings(Duration::ZERO, None), "off")
        .unwrap();
    let s = session(&store, "nocache", None).await;
    seen(&store, &s).await;
    raw.rename(s.user_id, "changed").await;
    assert!(
        matches!(seen(&store, &s).await, Seen::Found { full_name: Some(n), .. } if n == "changed")
    );
}
