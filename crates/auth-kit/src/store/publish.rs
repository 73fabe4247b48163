//! Telling other instances' session caches what a write changed: every
//! write to `users` or `logins` commits through `Store::commit`.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::PgPool;

use super::{Pool, Store};
use crate::config::{RateLimitUrl, SessionCacheSettings};
use crate::limiter::RedisUrlError;
use crate::session_cache::{Change, Delivery, Sessions};

impl Store {
    /// The same store serving verified sessions from memory for at most
    /// `settings.ttl` (SESSION_CACHE_SECONDS; zero keeps reading the
    /// database on every request), as [`crate::session_cache`] describes:
    /// on PostgreSQL, other instances' changes arrive by LISTEN/NOTIFY; on
    /// SQLite, through `settings.redis` (RATE_LIMIT_URL) when set, else
    /// this is assumed to be the only instance. `service_name` names the
    /// Redis channel. Starts background tasks: call it inside a Tokio
    /// runtime, once, at start-up.
    pub fn with_session_cache(
        mut self,
        settings: &SessionCacheSettings,
        service_name: &str,
    ) -> Result<Self, RedisUrlError> {
        let postgres = match &self.pool {
            Pool::Postgres(pool) => Some(pool.clone()),
            Pool::Sqlite(_) => None,
        };
        let channel = self.sessions.postgres_channel().map(str::to_owned);
        self.sessions = Sessions::start(settings, postgres, channel, service_name)?;
        Ok(self)
    }

    /// Publishes this store's changes on `redis` without caching anything:
    /// for a process that writes a SQLite database a service fleet shares
    /// through RATE_LIMIT_URL but serves no requests itself (the operator
    /// tools). Each change is retried for up to `retry_for`; wait for them
    /// with [`Store::published`] before exiting. On PostgreSQL the store
    /// already announces its changes itself, and this changes nothing.
    pub fn publishing_on(
        mut self,
        redis: &RateLimitUrl,
        service_name: &str,
        retry_for: Duration,
    ) -> Result<Self, RedisUrlError> {
        if let Pool::Sqlite(_) = self.pool {
            self.sessions = Sessions::publishing(redis, service_name, retry_for)?;
        }
        Ok(self)
    }

    /// Waits, for at most `limit`, until every change this store made has
    /// reached the other instances' channel, and says how that went (see
    /// [`Delivery`]). At once on PostgreSQL, whose transactions carried
    /// their own notifications.
    pub async fn published(&self, limit: Duration) -> Delivery {
        self.sessions.published(limit).await
    }

    /// Commits a transaction that wrote `users` or `logins`, and tells every
    /// session cache what it changed: on PostgreSQL with a `NOTIFY` in the
    /// transaction (delivered on commit only), here right after the commit
    /// (also when the commit reports an error: it may have happened), and
    /// on Redis after that. Every such write ends here.
    pub(super) async fn commit<DB: Announce>(
        &self,
        mut tx: sqlx::Transaction<'_, DB>,
        change: Change,
    ) -> Result<(), sqlx::Error> {
        if let (Some(channel), Some(payload)) = (self.sessions.postgres_channel(), change.payload())
        {
            DB::announce(&mut tx, channel, &payload).await?;
        }
        let committed = tx.commit().await;
        self.sessions.changed(change);
        committed
    }
}

/// How a transaction tells other instances what it changed: PostgreSQL
/// sends a `NOTIFY`, delivered when (and only if) the transaction commits.
/// SQLite has no such thing (its changes go through Redis, after the commit).
pub(super) trait Announce: sqlx::Database {
    fn announce<'c>(
        connection: &'c mut Self::Connection,
        channel: &'c str,
        payload: &'c str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;
}

impl Announce for sqlx::Postgres {
    fn announce<'c>(
        connection: &'c mut Self::Connection,
        channel: &'c str,
        payload: &'c str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>
    {
        Box::pin(async move {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(connection)
                .await
                .map(|_| ())
        })
    }
}

impl Announce for sqlx::Sqlite {
    fn announce<'c>(
        _connection: &'c mut Self::Connection,
        _channel: &'c str,
        _payload: &'c str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>
    {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The PostgreSQL channel of this database schema's session changes:
/// stores of other schemas on the same server (other services, tests) do
/// not hear them. A channel name is at most 63 bytes.
pub(super) async fn postgres_channel(pool: &PgPool) -> Result<String, sqlx::Error> {
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(pool)
        .await?;
    let name = format!("sessions.{schema}");
    Ok(if name.len() <= 63 {
        name
    } else {
        format!(
            "sessions.{}",
            &hex::encode(Sha256::digest(schema.as_bytes()))[..32]
        )
    })
}
