//! The session cache: a verified token's user and login served from memory
//! for at most SESSION_CACHE_SECONDS, so a protected request need not read
//! the database, without making revocation wait for the cache.
//!
//! - **What is kept.** Per user: the user as the per-request lookup read it,
//!   and which of its logins were live, each with the time it was read. An
//!   answer is served only while every part of it is younger than the TTL
//!   (by the store's clock, whole seconds: an entry read at 10.9 s with a
//!   30 s TTL is last served before 40 s). Only found, live sessions are
//!   kept; a refused token is read again every time. At most
//!   [`CAPACITY`] users (least recently used first out) and
//!   [`MAX_LOGINS_PER_USER`] logins each.
//! - **One way in for changes.** Every store method that writes `users` or
//!   `logins` commits through `Store::commit`, which names the user it
//!   changed (or everyone). That one function drops the user here, right
//!   after the commit, and tells the other instances: on PostgreSQL with
//!   `NOTIFY` inside the writing transaction (PostgreSQL delivers it on
//!   commit, and never for a rolled-back write), with SQLite and
//!   RATE_LIMIT_URL by Redis `PUBLISH` after the commit (retried until it
//!   gets through or the TTL has passed, when every entry it concerns has
//!   expired anyway). With SQLite alone there is no channel: one instance is
//!   assumed.
//! - **A read racing a write.** A lookup notes the cache's generation before
//!   it reads the database and keeps its answer only if no change arrived
//!   meanwhile, so an answer read before a commit cannot be stored after
//!   the commit's invalidation.
//! - **A channel that is down is not trusted.** Each instance listens on
//!   one connection; when it fails, or, after [`QUIET_CHECK`] without a
//!   message, a round trip does not come back within [`ANSWER_LIMIT`], the
//!   cache is emptied and bypassed: every request reads the database until
//!   the channel is back, and the cache is emptied again then, because
//!   messages may have been missed. On PostgreSQL the round trip is a
//!   notification of its own, sent through the pool the way changes are
//!   and heard on the listening connection (also before the cache first
//!   serves): a connection that answers queries but never hears
//!   notifications (a network dropping packets, a pooler in transaction
//!   mode) is caught. On Redis it is a `PING` on the subscription.
//! - **Writes made outside the service** (an operator's `UPDATE users ...`
//!   in psql) send no message: they are seen by every instance within
//!   SESSION_CACHE_SECONDS. Send `NOTIFY` yourself (see the deployment
//!   docs) or set SESSION_CACHE_SECONDS=0 if that is too long.
//!
//! The table is an [`lru::LruCache`] (already used by the limiter) behind a
//! `std` mutex held for a lookup and a clone of the user: a concurrent map
//! with expiry (`moka`) would bring a large dependency tree for a critical
//! section of well under a microsecond on a handful of cores.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::StreamExt as _;
use lru::LruCache;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

use crate::config::{RateLimitUrl, SessionCacheSettings};
use crate::limiter::{REDIS_TIMEOUT, RedisUrlError};
use crate::store::User;

/// Users the cache holds at most (about 1 KiB each with their logins).
pub const CAPACITY: usize = 10_000;
/// Logins remembered per user; a user with more is read again for the
/// least recently read ones.
pub const MAX_LOGINS_PER_USER: usize = 8;
/// After this long without a message, the channel is asked for a round
/// trip (a notification of its own on PostgreSQL, `PING` on Redis).
pub const QUIET_CHECK: Duration = Duration::from_secs(1);
/// How long a round trip (or connecting and subscribing) may take before
/// the channel is considered down.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(2);
/// Pause between two attempts to reach a channel that is down.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);
/// Changes waiting to be published to Redis; beyond this, the next message
/// published empties every instance's cache instead.
const PUBLISH_QUEUE: usize = 1024;

/// What a committed write changed, as far as sessions are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing was written after all (a conditional write matched no row).
    Nothing,
    /// This user's row or one of its logins.
    User(i64),
    /// Rows of many users at once (a purge).
    Everyone,
}

impl Change {
    /// The message other instances receive; `None` for [`Change::Nothing`].
    pub(crate) fn payload(self) -> Option<String> {
        match self {
            Change::Nothing => None,
            Change::User(id) => Some(format!("user:{id}")),
            Change::Everyone => Some(EVERYONE.to_owned()),
        }
    }
}

const EVERYONE: &str = "all";
/// A listener's round-trip message (`ping:` and a nonce): changes nothing.
const PING_PREFIX: &str = "ping:";

/// A store's session cache and the channel its changes travel on. Cheap to
/// clone; a store without a cache (SESSION_CACHE_SECONDS=0, or never
/// configured) still announces its changes, so instances that do cache
/// hear them.
#[derive(Clone)]
pub(crate) struct Sessions {
    shared: Arc<Shared>,
}

struct Shared {
    cache: Option<Cache>,
    /// PostgreSQL: the channel the writing transactions `NOTIFY`.
    postgres_channel: Option<String>,
    /// SQLite with RATE_LIMIT_URL: changes waiting to be published.
    redis: Option<RedisOutbox>,
}

struct RedisOutbox {
    queue: mpsc::Sender<Change>,
    /// A change could not be queued: publish "everyone" next.
    overflowed: std::sync::atomic::AtomicBool,
    /// Changes queued and not yet published or given up on.
    unpublished: std::sync::atomic::AtomicUsize,
    /// A change was given up on (Redis did not take it in time).
    gave_up: std::sync::atomic::AtomicBool,
}

impl RedisOutbox {
    /// The outbox, and the publisher that empties it.
    fn new(
        client: &redis::Client,
        channel: &str,
    ) -> Result<(Self, (RedisPublisher, mpsc::Receiver<Change>)), RedisUrlError> {
        let (queue, outbox) = mpsc::channel(PUBLISH_QUEUE);
        let publisher = RedisPublisher::new(client.clone(), channel.to_owned())?;
        Ok((
            Self {
                queue,
                overflowed: std::sync::atomic::AtomicBool::new(false),
                unpublished: std::sync::atomic::AtomicUsize::new(0),
                gave_up: std::sync::atomic::AtomicBool::new(false),
            },
            (publisher, outbox),
        ))
    }
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl_seconds", &self.shared.cache.as_ref().map(|c| c.ttl))
            .field("postgres_channel", &self.shared.postgres_channel)
            .field("redis", &self.shared.redis.is_some())
            .finish()
    }
}

/// A note of the cache's generation taken before a database read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl Sessions {
    /// No cache; changes announced on `postgres_channel` when on PostgreSQL.
    pub(crate) fn uncached(postgres_channel: Option<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                cache: None,
                postgres_channel,
                redis: None,
            }),
        }
    }

    /// The channel writing transactions `NOTIFY` (PostgreSQL only).
    pub(crate) fn postgres_channel(&self) -> Option<&str> {
        self.shared.postgres_channel.as_deref()
    }

    /// A cache of `settings.ttl` on `pool` (PostgreSQL) or on
    /// `settings.redis` (SQLite), with the tasks that listen and publish.
    /// Must be called inside a Tokio runtime.
    pub(crate) fn start(
        settings: &SessionCacheSettings,
        postgres: Option<PgPool>,
        postgres_channel: Option<String>,
        service_name: &str,
    ) -> Result<Self, RedisUrlError> {
        let ttl = i64::try_from(settings.ttl.as_secs()).unwrap_or(i64::MAX);
        let channel = match (&postgres, &postgres_channel, &settings.redis) {
            (Some(pool), Some(name), _) => Some(Listen::Postgres {
                pool: pool.clone(),
                channel: name.clone(),
            }),
            (None, _, Some(url)) => Some(Listen::Redis {
                client: redis::Client::open(url.expose())
                    .map_err(|_| RedisUrlError::new("it is not a redis://host:port[/db] URL"))?,
                channel: format!("{service_name}:sessions"),
            }),
            _ => None,
        };
        let cache = (ttl > 0).then(|| Cache::new(ttl, channel.is_none()));
        let (redis, outbox) = match &channel {
            Some(Listen::Redis { client, channel }) => {
                let (redis, outbox) = RedisOutbox::new(client, channel)?;
                (Some(redis), Some(outbox))
            }
            _ => (None, None),
        };
        let shared = Arc::new(Shared {
            cache,
            postgres_channel,
            redis,
        });
        let weak = Arc::downgrade(&shared);
        if let Some((publisher, outbox)) = outbox {
            tokio::spawn(publisher.run(weak.clone(), outbox, settings.ttl));
        }
        match channel {
            // Nobody to listen for: another instance that caches listens itself.
            _ if shared.cache.is_none() => {}
            Some(Listen::Postgres { pool, channel }) => {
                tokio::spawn(listen_postgres(weak, pool, channel));
            }
            Some(Listen::Redis { client, channel }) => {
                tokio::spawn(listen_redis(weak, client, channel));
            }
            None => {}
        }
        Ok(Self { shared })
    }

    /// No cache; changes published on `redis` (a SQLite database shared
    /// through RATE_LIMIT_URL), each retried for up to `retry_for`: for a
    /// process that writes but serves nobody (the operator tools). Must be
    /// called inside a Tokio runtime.
    pub(crate) fn publishing(
        redis: &RateLimitUrl,
        service_name: &str,
        retry_for: Duration,
    ) -> Result<Self, RedisUrlError> {
        let client = redis::Client::open(redis.expose())
            .map_err(|_| RedisUrlError::new("it is not a redis://host:port[/db] URL"))?;
        let (outbox, (publisher, queue)) =
            RedisOutbox::new(&client, &format!("{service_name}:sessions"))?;
        let shared = Arc::new(Shared {
            cache: None,
            postgres_channel: None,
            redis: Some(outbox),
        });
        tokio::spawn(publisher.run(Arc::downgrade(&shared), queue, retry_for));
        Ok(Self { shared })
    }

    /// Waits, for at most `limit`, until every change so far is published
    /// on Redis; `true` when none is left or given up on (at once when
    /// changes do not go through Redis).
    pub(crate) async fn published(&self, limit: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let Some(redis) = &self.shared.redis else {
            return true;
        };
        let deadline = tokio::time::Instant::now() + limit;
        while redis.unpublished.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        !redis.gave_up.load(Ordering::SeqCst)
    }

    /// The cached user for this token, if every part of it is fresh.
    pub(crate) fn cached(&self, user_id: i64, login_id: Option<&str>, now: i64) -> Option<User> {
        self.shared.cache.as_ref()?.get(user_id, login_id, now)
    }

    /// Taken before a database read whose answer may be kept; `None` when
    /// nothing may be kept (no cache, or its channel is down).
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        self.shared.cache.as_ref()?.ticket()
    }

    /// Keeps a found user read at `read_at` after `ticket` was taken,
    /// unless a change arrived in between.
    pub(crate) fn remember(
        &self,
        ticket: Option<Ticket>,
        user: &User,
        login_id: Option<&str>,
        read_at: i64,
    ) {
        if let (Some(cache), Some(ticket)) = (&self.shared.cache, ticket) {
            cache.put(ticket, user, login_id, read_at);
        }
    }

    /// A write committed: drop what it changed here, and queue it for Redis
    /// (on PostgreSQL the transaction has already sent its `NOTIFY`).
    pub(crate) fn changed(&self, change: Change) {
        if change == Change::Nothing {
            return;
        }
        self.shared.apply(change);
        if let Some(redis) = &self.shared.redis {
            use std::sync::atomic::Ordering;
            redis.unpublished.fetch_add(1, Ordering::SeqCst);
            if redis.queue.try_send(change).is_err() {
                // Published as "everyone" with the next change (the queue
                // is full, so one follows).
                redis.unpublished.fetch_sub(1, Ordering::SeqCst);
                redis.overflowed.store(true, Ordering::SeqCst);
            }
        }
    }
}

impl Shared {
    fn apply(&self, change: Change) {
        if let Some(cache) = &self.cache {
            match change {
                Change::Nothing => {}
                Change::User(id) => cache.forget(id),
                Change::Everyone => cache.forget_everyone(),
            }
        }
    }

    /// A message from the channel.
    fn receive(&self, payload: &str) {
        match payload {
            EVERYONE => self.apply(Change::Everyone),
            // Some instance's round trip.
            ping if ping.starts_with(PING_PREFIX) => {}
            other => match other.strip_prefix("user:").map(str::parse::<i64>) {
                Some(Ok(id)) => self.apply(Change::User(id)),
                // Not ours to understand: the safe reading is "everything changed".
                _ => self.apply(Change::Everyone),
            },
        }
    }

    fn set_serving(&self, serving: bool) {
        if let Some(cache) = &self.cache {
            cache.set_serving(serving);
        }
    }
}

// -- the table -----------------------------------------------------------------

struct Cache {
    /// SESSION_CACHE_SECONDS, at least 1.
    ttl: i64,
    state: Mutex<CacheState>,
}

struct CacheState {
    users: LruCache<i64, Entry>,
    /// Moves on every change and every channel transition.
    generation: u64,
    /// Whether answers may be served and kept: always without a channel,
    /// only while it is up with one.
    serving: bool,
}

struct Entry {
    user: User,
    user_read_at: i64,
    /// Live logins, each with when it was read.
    logins: Vec<(Box<str>, i64)>,
}

impl Cache {
    fn new(ttl: i64, serving: bool) -> Self {
        let capacity = NonZeroUsize::new(CAPACITY).unwrap_or(NonZeroUsize::MIN);
        Self {
            ttl,
            state: Mutex::new(CacheState {
                users: LruCache::new(capacity),
                generation: 0,
                serving,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic while holding the lock cannot leave the table torn (every
        // update is a single insert or removal): keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Read at `read_at`, still younger than the TTL at `now` (a clock
    /// that went back counts as expired).
    fn fresh(&self, read_at: i64, now: i64) -> bool {
        now >= read_at && now - read_at < self.ttl
    }

    fn get(&self, user_id: i64, login_id: Option<&str>, now: i64) -> Option<User> {
        let mut state = self.lock();
        if !state.serving {
            return None;
        }
        let entry = state.users.get(&user_id)?;
        if !self.fresh(entry.user_read_at, now) {
            return None;
        }
        if let Some(login_id) = login_id {
            let (_, read_at) = entry.logins.iter().find(|(id, _)| &**id == login_id)?;
            if !self.fresh(*read_at, now) {
                return None;
            }
        }
        Some(entry.user.clone())
    }

    fn ticket(&self) -> Option<Ticket> {
        let state = self.lock();
        state.serving.then_some(Ticket(state.generation))
    }

    fn put(&self, ticket: Ticket, user: &User, login_id: Option<&str>, read_at: i64) {
        let mut state = self.lock();
        if !state.serving || state.generation != ticket.0 {
            return;
        }
        let entry = state.users.get_or_insert_mut(user.id, || Entry {
            user: user.clone(),
            user_read_at: read_at,
            logins: Vec::new(),
        });
        // Nothing changed since the ticket: this read is at least as new.
        entry.user = user.clone();
        entry.user_read_at = read_at;
        if let Some(login_id) = login_id {
            if let Some(known) = entry.logins.iter_mut().find(|(id, _)| &**id == login_id) {
                known.1 = read_at;
            } else {
                if entry.logins.len() >= MAX_LOGINS_PER_USER
                    && let Some(oldest) = entry
                        .logins
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, (_, at))| *at)
                        .map(|(i, _)| i)
                {
                    entry.logins.swap_remove(oldest);
                }
                entry.logins.push((login_id.into(), read_at));
            }
        }
    }

    fn forget(&self, user_id: i64) {
        let mut state = self.lock();
        state.users.pop(&user_id);
        state.generation = state.generation.wrapping_add(1);
    }

    fn forget_everyone(&self) {
        let mut state = self.lock();
        state.users.clear();
        state.generation = state.generation.wrapping_add(1);
    }

    fn set_serving(&self, serving: bool) {
        let mut state = self.lock();
        state.users.clear();
        state.generation = state.generation.wrapping_add(1);
        state.serving = serving;
    }
}

// -- the channels ----------------------------------------------------------------

enum Listen {
    Postgres {
        pool: PgPool,
        channel: String,
    },
    Redis {
        client: redis::Client,
        channel: String,
    },
}

/// Why a listening connection stopped serving.
fn lost_because(quiet: bool, error: Option<String>) -> String {
    match (quiet, error) {
        (_, Some(e)) => e,
        (true, None) => format!(
            "quiet for {} s, then no answer within {} s",
            QUIET_CHECK.as_secs(),
            ANSWER_LIMIT.as_secs()
        ),
        (false, None) => "the connection was lost".to_owned(),
    }
}

/// Listens on PostgreSQL until the store is closed or dropped; serves the
/// cache only while listening works.
async fn listen_postgres(shared: Weak<Shared>, pool: PgPool, channel: String) {
    let mut outage_logged = false;
    loop {
        let connected = tokio::time::timeout(ANSWER_LIMIT, async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // Report a lost connection at once instead of reconnecting
            // first: the cache must stop serving before anything is missed.
            listener.eager_reconnect(false);
            listener.listen(&channel).await?;
            Ok::<_, sqlx::Error>(listener)
        })
        .await;
        let mut listener = match connected {
            Ok(Ok(listener)) => listener,
            Ok(Err(sqlx::Error::PoolClosed)) => return,
            failed => {
                if !outage_logged {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".to_owned(),
                    };
                    tracing::warn!(%error, "session cache: cannot listen for changes on PostgreSQL; every request reads the database until it can");
                    outage_logged = true;
                }
                if shared.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        // Serve only once a notification has been heard on this connection.
        if let Err(why) = round_trip(&mut listener, &pool, &channel, &strong).await {
            drop(strong);
            if !outage_logged {
                tracing::warn!(error = %why, "session cache: cannot hear changes on PostgreSQL; every request reads the database until it can");
                outage_logged = true;
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        }
        strong.set_serving(true);
        drop(strong);
        if outage_logged {
            tracing::info!("session cache: listening for changes on PostgreSQL again");
        }
        let lost = loop {
            // Waiting is cancel-safe in sqlx: a quiet second costs nothing.
            let next = tokio::time::timeout(QUIET_CHECK, listener.try_recv()).await;
            let Some(strong) = shared.upgrade() else {
                return;
            };
            match next {
                Ok(Ok(Some(notification))) => strong.receive(notification.payload()),
                Ok(Err(sqlx::Error::PoolClosed)) => {
                    strong.set_serving(false);
                    return;
                }
                Ok(Ok(None)) => break lost_because(false, None),
                Ok(Err(e)) => break lost_because(false, Some(e.to_string())),
                // Quiet: a notification of our own, heard back, proves
                // changes still reach this connection.
                Err(_) => {
                    if let Err(why) = round_trip(&mut listener, &pool, &channel, &strong).await {
                        break why;
                    }
                }
            }
        };
        if let Some(strong) = shared.upgrade() {
            strong.set_serving(false);
        }
        tracing::warn!(error = %lost, "session cache: stopped listening for changes on PostgreSQL; every request reads the database until it listens again");
        outage_logged = true;
    }
}

/// Sends a notification with a fresh nonce through the pool (the way every
/// change is announced) and waits, within [`ANSWER_LIMIT`], to hear it on
/// `listener`; changes heard meanwhile are applied.
async fn round_trip(
    listener: &mut PgListener,
    pool: &PgPool,
    channel: &str,
    shared: &Shared,
) -> Result<(), String> {
    let ping = format!("{PING_PREFIX}{}", hex::encode(crate::random::bytes::<8>()));
    let heard = tokio::time::timeout(ANSWER_LIMIT, async {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(&ping)
            .execute(pool)
            .await
            .map_err(|e| e.to_string())?;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.payload() == ping => return Ok(()),
                Ok(Some(notification)) => shared.receive(notification.payload()),
                Ok(None) => return Err(lost_because(false, None)),
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await;
    heard.unwrap_or_else(|_| Err(lost_because(true, None)))
}

/// Listens on Redis; serves the cache only while subscribed and answering.
async fn listen_redis(shared: Weak<Shared>, client: redis::Client, channel: String) {
    let mut outage_logged = false;
    loop {
        let subscribed = tokio::time::timeout(ANSWER_LIMIT, async {
            let (mut sink, messages) = client.get_async_pubsub().await?.split();
            sink.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>((sink, messages))
        })
        .await;
        let (mut sink, mut messages) = match subscribed {
            Ok(Ok(subscription)) => subscription,
            failed => {
                if !outage_logged {
                    let error = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "no answer in time".to_owned(),
                    };
                    tracing::warn!(%error, "session cache: cannot subscribe to changes on Redis; every request reads the database until it can");
                    outage_logged = true;
                }
                if shared.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        let Some(strong) = shared.upgrade() else {
            return;
        };
        strong.set_serving(true);
        drop(strong);
        if outage_logged {
            tracing::info!("session cache: subscribed to changes on Redis again");
        }
        let lost = loop {
            let next = tokio::time::timeout(QUIET_CHECK, messages.next()).await;
            let Some(strong) = shared.upgrade() else {
                return;
            };
            match next {
                Ok(Some(message)) => {
                    strong.receive(&message.get_payload::<String>().unwrap_or_default());
                }
                Ok(None) => break lost_because(false, None),
                // Quiet: a PING on the subscribed connection itself proves
                // it still receives.
                Err(_) => {
                    let answer =
                        tokio::time::timeout(ANSWER_LIMIT, sink.ping::<redis::Value>()).await;
                    match answer {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => break lost_because(true, Some(e.to_string())),
                        Err(_) => break lost_because(true, None),
                    }
                }
            }
        };
        if let Some(strong) = shared.upgrade() {
            strong.set_serving(false);
        }
        tracing::warn!(error = %lost, "session cache: stopped hearing changes on Redis; every request reads the database until it hears them again");
        outage_logged = true;
    }
}

/// Publishes this instance's changes on Redis.
struct RedisPublisher {
    connection: redis::aio::ConnectionManager,
    channel: String,
}

impl RedisPublisher {
    fn new(client: redis::Client, channel: String) -> Result<Self, RedisUrlError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(0);
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisUrlError::new(&e.to_string()))?;
        Ok(Self {
            connection,
            channel,
        })
    }

    async fn publish(&self, payload: &str) -> bool {
        let mut connection = self.connection.clone();
        let sent = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .query_async::<i64>(&mut connection),
        )
        .await;
        matches!(sent, Ok(Ok(_)))
    }

    /// Publishes each change, retried until it gets through or `ttl` has
    /// passed (then every entry it concerned has expired everywhere).
    async fn run(self, shared: Weak<Shared>, mut queue: mpsc::Receiver<Change>, ttl: Duration) {
        use std::sync::atomic::Ordering;
        // `None`: every store handle is gone.
        while let Some(change) = queue.recv().await {
            let Some(strong) = shared.upgrade() else {
                return;
            };
            let overflowed = strong
                .redis
                .as_ref()
                .is_some_and(|r| r.overflowed.swap(false, Ordering::SeqCst));
            drop(strong);
            let change = if overflowed { Change::Everyone } else { change };
            let published = match change.payload() {
                Some(payload) => self.publish_until(&shared, &payload, ttl).await,
                None => true,
            };
            let Some(strong) = shared.upgrade() else {
                return;
            };
            if let Some(redis) = &strong.redis {
                if !published {
                    redis.gave_up.store(true, Ordering::SeqCst);
                }
                redis.unpublished.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Publishes one change, retried until it gets through or `ttl` has
    /// passed; whether it got through.
    async fn publish_until(&self, shared: &Weak<Shared>, payload: &str, ttl: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + ttl;
        let mut failures = 0u32;
        while !self.publish(payload).await {
            failures += 1;
            if failures == 1 {
                tracing::warn!("session cache: a change could not be published on Redis; retrying");
            }
            if tokio::time::Instant::now() >= deadline || shared.strong_count() == 0 {
                tracing::warn!(
                    "session cache: gave up publishing a change on Redis; other instances see it within SESSION_CACHE_SECONDS"
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64, name: &str) -> User {
        User {
            id,
            username: name.to_owned(),
            email: None,
            full_name: None,
            role: "user".to_owned(),
            disabled: false,
            email_verified: false,
            created_at: "1970-01-01T00:00:00Z".to_owned(),
            permissions: Vec::new(),
        }
    }

    #[test]
    fn served_while_younger_than_the_ttl() {
        let cache = Cache::new(30, true);
        let ticket = cache.ticket().unwrap();
        cache.put(ticket, &user(1, "ann"), Some("l1"), 100);
        assert!(cache.get(1, Some("l1"), 129).is_some());
        assert!(cache.get(1, Some("l1"), 130).is_none(), "30 s old");
        assert!(cache.get(1, Some("l1"), 99).is_none(), "clock went back");
        assert!(cache.get(1, Some("l2"), 100).is_none(), "another login");
        assert!(cache.get(1, None, 100).is_some(), "no login named");
    }

    #[test]
    fn a_change_during_a_read_keeps_the_read_out() {
        let cache = Cache::new(30, true);
        let ticket = cache.ticket().unwrap();
        cache.forget(2);
        cache.put(ticket, &user(1, "ann"), Some("l1"), 100);
        assert!(cache.get(1, Some("l1"), 100).is_none());
    }

    #[test]
    fn a_channel_down_serves_and_keeps_nothing() {
        let cache = Cache::new(30, true);
        cache.put(cache.ticket().unwrap(), &user(1, "ann"), None, 100);
        let ticket = cache.ticket().unwrap();
        cache.set_serving(false);
        assert!(cache.get(1, None, 100).is_none());
        assert!(cache.ticket().is_none());
        cache.put(ticket, &user(1, "ann"), None, 100);
        cache.set_serving(true);
        assert!(cache.get(1, None, 100).is_none(), "emptied on both edges");
    }

    #[test]
    fn logins_per_user_are_bounded() {
        let cache = Cache::new(30, true);
        for n in 0..=MAX_LOGINS_PER_USER {
            let ticket = cache.ticket().unwrap();
            cache.put(
                ticket,
                &user(1, "ann"),
                Some(&format!("l{n}")),
                100 + n as i64,
            );
        }
        let now = 100 + MAX_LOGINS_PER_USER as i64;
        assert!(cache.get(1, Some("l0"), now).is_none(), "the oldest went");
        assert!(
            cache
                .get(1, Some(&format!("l{MAX_LOGINS_PER_USER}")), now)
                .is_some()
        );
    }

    #[test]
    fn messages() {
        for (payload, dropped) in [
            ("user:1", true),
            ("user:2", false),
            ("all", true),
            ("user:x", true),
            ("?", true),
        ] {
            let shared = Shared {
                cache: Some(Cache::new(30, true)),
                postgres_channel: None,
                redis: None,
            };
            let cache = shared.cache.as_ref().unwrap();
            cache.put(cache.ticket().unwrap(), &user(1, "ann"), None, 100);
            shared.receive(payload);
            assert_eq!(cache.get(1, None, 100).is_none(), dropped, "{payload}");
        }
    }
}
