//! The limiter's counters in a real Redis (RATE_LIMIT_URL): shared by every
//! instance, atomic, expiring, and failing closed while Redis is away. Each
//! test starts its own `redis-server` on a free port (and skips, saying so,
//! when it is not installed).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use auth_kit::Clock;
use auth_kit::config::{LoginLimits, SignupLimits};
use auth_kit::limiter::{LimitError, REDIS_TIMEOUT, RateLimiter};
use auth_kit::login::ScopeMode;
use auth_kit::password::PoolSize;
use auth_kit::testing::TestDatabase;

use common::{RedisServer, client_from, harness_with, http_signup, login, options, serve};

fn redis_limiter(server: &RedisServer, service: &str, clock: &Clock) -> RateLimiter {
    let signups = SignupLimits {
        max_per_ip: 3,
        window: Duration::from_secs(3600),
    };
    RateLimiter::redis(
        &server.url(),
        service,
        LoginLimits::STANDARD,
        signups,
        clock.clone(),
    )
    .unwrap()
}

/// Seconds to wait, `None` when the attempt may go ahead (and then fails).
async fn fail(limiter: &RateLimiter, user: &str, ip: Option<IpAddr>) -> Option<u64> {
    match limiter.begin_login(user, ip).await {
        Ok(attempt) => {
            attempt.failed().await;
            None
        }
        Err(LimitError::TooMany { retry_after }) => Some(retry_after),
        Err(e) => panic!("{e}"),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

async fn keys(server: &RedisServer, pattern: &str) -> Vec<(String, i64)> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let names: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut out = Vec::new();
    for name in names {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&name)
            .query_async(&mut connection)
            .await
            .unwrap();
        out.push((name, ttl));
    }
    out.sort();
    out
}

#[tokio::test]
async fn counters_are_shared_by_every_instance() {
    let Some(server) = RedisServer::start("counters_are_shared_by_every_instance") else {
        return;
    };
    let clock = Clock::manual(1_000_000);
    let (a, b) = (
        redis_limiter(&server, "svc", &clock),
        redis_limiter(&server, "svc", &clock),
    );
    // Failures spread over two instances lock the name after exactly five.
    for n in 0..5 {
        let instance = if n % 2 == 0 { &a } else { &b };
        assert_eq!(fail(instance, "Victim", ip("192.0.2.1")).await, None);
    }
    assert_eq!(fail(&a, "victim", ip("192.0.2.2")).await, Some(300));
    assert_eq!(
        fail(&b, "ＶＩＣＴＩＭ", None).await,
        Some(300),
        "the folded name"
    );
    // Another service on the same Redis counts apart.
    let other = redis_limiter(&server, "other-svc", &clock);
    assert_eq!(fail(&other, "victim", None).await, None);

    // Keys carry the service name, hash the username, and expire; the
    // refused attempt from 192.0.2.2 left no key.
    let stored = keys(&server, "svc:*").await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    for (name, ttl) in &stored {
        assert!(name.starts_with("svc:login:"), "{name}");
        assert!(!name.to_lowercase().contains("victim"), "{name}");
        assert!((1..=300).contains(ttl), "{name} expires in {ttl}");
    }

    // Per address across instances; a locked address's refusals add no key.
    for n in 0..50 {
        let instance = if n % 2 == 0 { &a } else { &b };
        assert_eq!(
            fail(instance, &format!("t{n}"), ip("198.51.100.1")).await,
            None
        );
    }
    let before = keys(&server, "svc:*").await.len();
    for n in 0..100 {
        let refused = fail(&b, &format!("u{n}"), ip("198.51.100.1")).await;
        assert_eq!(refused, Some(300));
    }
    assert_eq!(keys(&server, "svc:*").await.len(), before);

    // A success clears the username, never the address.
    let c = ip("198.51.100.2");
    for _ in 0..4 {
        fail(&a, "cat", c).await;
    }
    a.begin_login("cat", c).await.unwrap().succeeded().await;
    for _ in 0..4 {
        assert_eq!(
            fail(&b, "cat", c).await,
            None,
            "the name's count was cleared"
        );
    }
    // Attempts in flight on one instance count on the other.
    let in_flight: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(a.begin_login("dan", None).await.unwrap());
        }
        v
    };
    assert_eq!(fail(&b, "dan", None).await, Some(1));
    drop(in_flight); // abandoned: released in the background
    let deadline = Instant::now() + Duration::from_secs(5);
    while fail(&b, "dan", None).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "abandoned attempts were not released"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The lock ends after LOGIN_LOCKOUT_SECONDS.
    clock.advance(300);
    assert_eq!(fail(&a, "victim", None).await, None);
}

/// A client that hangs up while its password is checked still spends its
/// address's budget (not the username's); an outage releases for nobody.
#[tokio::test]
async fn abandoned_attempts_count_for_the_address_in_redis() {
    let Some(server) = RedisServer::start("abandoned_attempts_count_for_the_address_in_redis")
    else {
        return;
    };
    let clock = Clock::manual(1_000_000);
    let limiter = redis_limiter(&server, "svc", &clock);
    for _ in 0..60 {
        limiter
            .begin_login("hal", ip("192.0.2.7"))
            .await
            .unwrap()
            .released()
            .await;
    }
    for n in 0..50 {
        drop(
            limiter
                .begin_login(&format!("ivy{n}"), ip("192.0.2.7"))
                .await
                .unwrap(),
        );
    }
    // Dropped attempts are ended in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match limiter.begin_login("zed", ip("192.0.2.7")).await {
            // Locked for LOGIN_LOCKOUT_SECONDS.
            Err(LimitError::TooMany { retry_after: 300 }) => break,
            // Not yet: the hang-ups still in flight fill the budget, or
            // have not all been counted.
            Err(LimitError::TooMany { .. }) => {
                assert!(
                    Instant::now() < deadline,
                    "50 hang-ups did not lock the address"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(attempt) => {
                attempt.released().await;
                assert!(
                    Instant::now() < deadline,
                    "50 hang-ups did not lock the address"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(
        fail(&limiter, "ivy0", None).await,
        None,
        "not the usernames"
    );
}

#[tokio::test]
async fn signups_per_address_in_redis() {
    let Some(server) = RedisServer::start("signups_per_address_in_redis") else {
        return;
    };
    let clock = Clock::manual(1_000_000);
    let (a, b) = (
        redis_limiter(&server, "svc", &clock),
        redis_limiter(&server, "svc", &clock),
    );
    a.count_signup(ip("192.0.2.1")).await.unwrap();
    b.count_signup(ip("192.0.2.1")).await.unwrap();
    a.count_signup(ip("192.0.2.1")).await.unwrap();
    let refused = b.count_signup(ip("192.0.2.1")).await;
    assert!(
        matches!(refused, Err(LimitError::TooMany { retry_after: 3600 })),
        "{refused:?}"
    );
    b.count_signup(ip("192.0.2.2")).await.unwrap();
    let stored = keys(&server, "svc:signup:*").await;
    assert_eq!(stored.len(), 2);
    assert!(
        stored.iter().all(|(_, ttl)| (1..=3600).contains(ttl)),
        "{stored:?}"
    );
    clock.advance(3600);
    a.count_signup(ip("192.0.2.1")).await.unwrap();
}

#[tokio::test]
async fn redis_away_fails_closed_and_recovers_by_itself() {
    let Some(mut server) = RedisServer::start("redis_away_fails_closed_and_recovers_by_itself")
    else {
        return;
    };
    let clock = Clock::System;
    let limiter = redis_limiter(&server, "svc", &clock);
    assert_eq!(fail(&limiter, "ann", None).await, None);

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let answer = limiter.begin_login("ann", ip("192.0.2.1")).await;
        assert!(
            matches!(answer, Err(LimitError::Unavailable(_))),
            "{answer:?}"
        );
        assert!(started.elapsed() <= REDIS_TIMEOUT + Duration::from_millis(500));
        let signup = limiter.count_signup(ip("192.0.2.1")).await;
        assert!(
            matches!(signup, Err(LimitError::Unavailable(_))),
            "{signup:?}"
        );
    }

    // Back (empty: its counters are gone, as after any Redis restart).
    assert!(server.restart());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match limiter.begin_login("ann", None).await {
            Ok(attempt) => {
                attempt.failed().await;
                break;
            }
            Err(LimitError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("did not recover: {e}"),
        }
    }
}

/// Over HTTP: while Redis is away the password grant and signup answer 503
/// `temporarily_unavailable` with Retry-After, and a token still opens
/// `/me`; once it is back, logins work again without a restart.
#[tokio::test]
async fn over_http_logins_503_while_tokens_keep_working() {
    for db in TestDatabase::all("redis_over_http").await {
        let Some(mut server) = RedisServer::start("over_http_logins_503_while_tokens_keep_working")
        else {
            return;
        };
        let clock = Clock::manual(Clock::System.now());
        let limiter = redis_limiter(&server, "svc", &clock);
        let pool = PoolSize {
            workers: 1,
            queue: 16,
        };
        let h = harness_with(db.url(), ScopeMode::Scoped, limiter, pool, clock).await;
        let base = serve(&h, options("127.0.0.1")).await;
        let proxy = client_from([127, 0, 0, 1]);
        assert_eq!(http_signup(&proxy, &base, None, "ann").await.status(), 201);
        let r = login(&proxy, &base, None, "ann", "correct+horse").await;
        assert_eq!(r.status(), 200, "{db:?}");
        let token: serde_json::Value = r.json().await.unwrap();
        let token = token["access_token"].as_str().unwrap().to_owned();

        server.kill();
        let r = login(&proxy, &base, None, "ann", "correct+horse").await;
        assert_eq!(r.status(), 503, "{db:?}");
        assert_eq!(r.headers()["retry-after"], "1");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        let r = http_signup(&proxy, &base, None, "bea").await;
        assert_eq!(r.status(), 503, "{db:?}");
        let me = proxy
            .get(format!("{base}/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            me.status(),
            200,
            "{db:?}: token verification needs no Redis"
        );

        assert!(server.restart());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = login(&proxy, &base, None, "ann", "correct+horse")
                .await
                .status();
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{db:?}: still {status}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
