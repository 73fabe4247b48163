//! Deployed behind a proxy, under floods, against slow clients: the kit's
//! `serve`, client address and limiters over real HTTP on loopback, on
//! SQLite and (with TEST_DATABASE_URL) PostgreSQL.
//!
//! The first three tests are the exploits of the security review; each
//! failed against the code before trusted proxies, the limiter's memory
//! fixes and the signup limits existed.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use auth_kit::Clock;
use auth_kit::config::{LoginLimits, SignupLimits};
use auth_kit::limiter::{LimitError, RateLimiter};
use auth_kit::login::ScopeMode;
use auth_kit::password::PoolSize;
use auth_kit::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{client_from, harness, harness_with, http_signup, login, options, serve};

const PROXY: [u8; 4] = [127, 0, 0, 1];
const DIRECT: [u8; 4] = [127, 0, 0, 2];

/// Exploit (a): behind a proxy, 50 failures from one forwarded client used
/// to lock out every client (they all had the proxy's address). Now the
/// per-address lock follows the forwarded client, and a client that talks
/// to the service directly cannot pick its address with the header.
#[tokio::test]
async fn proxy_lockout_follows_the_forwarded_client() {
    for db in TestDatabase::all("proxy_lockout").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        h.logins
            .signup(&common::signup("alice", "correct horse"), None)
            .await
            .unwrap();
        let base = serve(&h, options("127.0.0.1")).await;
        let proxy = client_from(PROXY);
        for i in 0..50 {
            let r = login(
                &proxy,
                &base,
                Some("203.0.113.5"),
                &format!("guess{i}"),
                "wrong",
            )
            .await;
            assert_eq!(r.status(), 400, "{db:?}");
        }
        let r = login(&proxy, &base, Some("203.0.113.5"), "alice", "correct+horse").await;
        assert_eq!(r.status(), 429, "{db:?}: the flooding client is locked");
        let r = login(&proxy, &base, Some("203.0.113.6"), "alice", "correct+horse").await;
        assert_eq!(r.status(), 200, "{db:?}: another forwarded client is not");

        // A direct client rotating the header still spends its own budget.
        let direct = client_from(DIRECT);
        for i in 0..50 {
            let spoofed = format!("198.51.100.{i}");
            let r = login(
                &direct,
                &base,
                Some(&spoofed),
                &format!("other{i}"),
                "wrong",
            )
            .await;
            assert_eq!(r.status(), 400, "{db:?}");
        }
        let r = login(
            &direct,
            &base,
            Some("198.51.100.200"),
            "alice",
            "correct+horse",
        )
        .await;
        assert_eq!(
            r.status(),
            429,
            "{db:?}: the header from an untrusted peer is ignored"
        );
        assert_eq!(
            r.headers()["retry-after"],
            "300",
            "{db:?}: Retry-After is the lock's seconds left"
        );
        let r = login(
            &proxy,
            &base,
            Some("198.51.100.7"),
            "alice",
            "correct+horse",
        )
        .await;
        assert_eq!(
            r.status(),
            200,
            "{db:?}: the spoofed addresses were never charged"
        );
    }
}

/// Exploit (b): once an address was locked, its instant 429s for new
/// usernames still inserted entries and evicted a locked username. Now a
/// refused attempt adds nothing, and locks are never evicted for open windows.
#[tokio::test]
async fn a_locked_address_cannot_flush_a_locked_username() {
    let limiter = RateLimiter::in_process_with_capacity(
        LoginLimits::STANDARD,
        SignupLimits::STANDARD,
        Clock::manual(0),
        NonZeroUsize::new(100).unwrap(),
    );
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    for _ in 0..5 {
        let attempt = limiter
            .begin_login("victim", ip("192.0.2.1"))
            .await
            .unwrap();
        attempt.failed().await;
    }
    for i in 0..50 {
        let attempt = limiter
            .begin_login(&format!("t{i}"), ip("192.0.2.2"))
            .await
            .unwrap();
        attempt.failed().await;
    }
    // The locked address floods new usernames: every one refused at once.
    for i in 0..1000 {
        let refused = limiter.begin_login(&format!("u{i}"), ip("192.0.2.2")).await;
        assert!(matches!(refused, Err(LimitError::TooMany { .. })));
    }
    // An unlocked address floods new usernames too: only open windows go.
    for i in 0..1000 {
        let from = ip(&format!("10.0.{}.{}", i / 250, i % 250));
        let attempt = limiter.begin_login(&format!("w{i}"), from).await.unwrap();
        attempt.failed().await;
    }
    assert!(
        matches!(
            limiter.begin_login("victim", ip("192.0.2.3")).await,
            Err(LimitError::TooMany { retry_after: 300 })
        ),
        "the victim is still locked"
    );
    let (usernames, ips) = limiter.tracked().unwrap();
    assert!(usernames <= 200 && ips <= 200, "bounded: {usernames} {ips}");
}

/// Exploit (c): 300 concurrent signups from one address created 262 users
/// and pushed a concurrent login to 503. Now the address gets
/// SIGNUP_MAX_PER_IP, and signups from many addresses fill only the
/// signups' share of the hashing pool: a login from elsewhere gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_flood_is_capped_and_cannot_starve_logins() {
    for db in TestDatabase::all("signup_flood").await {
        let clock = Clock::manual(Clock::System.now());
        let limiter =
            RateLimiter::in_process(LoginLimits::STANDARD, SignupLimits::STANDARD, clock.clone());
        let pool = PoolSize {
            workers: 1,
            queue: 16,
        };
        let h = harness_with(db.url(), ScopeMode::Scoped, limiter, pool, clock).await;
        h.logins
            .signup(&common::signup("bob-the-user", "correct horse"), None)
            .await
            .unwrap();
        let base = serve(&h, options("127.0.0.1")).await;
        let proxy = client_from(PROXY);

        // One address, 300 at once.
        let requests: Vec<_> = (0..300)
            .map(|i| {
                let (proxy, base) = (proxy.clone(), base.clone());
                tokio::spawn(async move {
                    let name = format!("flood-{i}");
                    let r = http_signup(&proxy, &base, Some("203.0.113.7"), &name).await;
                    r.status().as_u16()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = login(
            &proxy,
            &base,
            Some("203.0.113.8"),
            "bob-the-user",
            "correct+horse",
        )
        .await
        .status();
        let mut answers = std::collections::BTreeMap::<u16, usize>::new();
        for request in requests {
            *answers.entry(request.await.unwrap()).or_default() += 1;
        }
        assert_eq!(during, 200, "{db:?}: login during the flood ({answers:?})");
        let created = answers.get(&201).copied().unwrap_or(0);
        assert!(created <= 20, "{db:?}: {created} signups from one address");
        assert!(
            answers.get(&429).copied().unwrap_or(0) >= 280,
            "{db:?}: {answers:?}"
        );

        // Many addresses, each retrying at once on 503 until its budget is
        // spent: the signups keep their share of the pool full, and logins
        // from elsewhere still find room.
        let flooders: Vec<_> = (0..60)
            .map(|i| {
                let (proxy, base) = (proxy.clone(), base.clone());
                tokio::spawn(async move {
                    let from = format!("198.51.100.{i}");
                    for n in 0.. {
                        let name = format!("many-{i}-{n}");
                        let r = http_signup(&proxy, &base, Some(&from), &name).await;
                        if r.status() == 429 {
                            break;
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(300)).await;
        for n in 0..5 {
            let from = format!("203.0.113.{}", 20 + n);
            let r = login(&proxy, &base, Some(&from), "bob-the-user", "correct+horse").await;
            assert_eq!(
                r.status(),
                200,
                "{db:?}: login {n} during a flood from many addresses"
            );
        }
        for flooder in flooders {
            flooder.await.unwrap();
        }
    }
}

#[tokio::test]
async fn signups_per_address_and_taken_names_before_hashing() {
    for db in TestDatabase::all("signup_limits").await {
        let clock = Clock::manual(Clock::System.now());
        let signups = SignupLimits {
            max_per_ip: 3,
            window: Duration::from_secs(3600),
        };
        let limiter = RateLimiter::in_process(LoginLimits::STANDARD, signups, clock.clone());
        let pool = PoolSize {
            workers: 1,
            queue: 4,
        };
        let h = harness_with(db.url(), ScopeMode::Scoped, limiter, pool, clock.clone()).await;
        let base = serve(&h, options("127.0.0.1")).await;
        let proxy = client_from(PROXY);
        let from = Some("203.0.113.9");
        assert_eq!(
            http_signup(&proxy, &base, from, "carol").await.status(),
            201
        );
        // Taken, ignoring case: 409, and it counts as a signup.
        let r = http_signup(&proxy, &base, from, "CAROL").await;
        assert_eq!(r.status(), 409, "{db:?}");
        assert_eq!(http_signup(&proxy, &base, from, "dave").await.status(), 201);
        let r = http_signup(&proxy, &base, from, "erin").await;
        assert_eq!(r.status(), 429, "{db:?}");
        assert_eq!(r.headers()["retry-after"], "3600");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "too_many_requests");
        assert_eq!(
            http_signup(&proxy, &base, Some("203.0.113.10"), "erin")
                .await
                .status(),
            201,
            "{db:?}: another address"
        );
        clock.advance(3600);
        assert_eq!(http_signup(&proxy, &base, from, "fred").await.status(), 201);
    }
    // A taken name costs no hash: while new names fill the signups' one
    // place in the hashing queue (others get 503), a taken one is still 409.
    let db = TestDatabase::sqlite();
    let clock = Clock::manual(Clock::System.now());
    let limiter =
        RateLimiter::in_process(LoginLimits::STANDARD, SignupLimits::STANDARD, clock.clone());
    let pool = PoolSize {
        workers: 1,
        queue: 4,
    };
    let h = harness_with(db.url(), ScopeMode::Scoped, limiter, pool, clock).await;
    h.logins
        .signup(&common::signup("gina", "correct horse"), None)
        .await
        .unwrap();
    let base = serve(&h, options("127.0.0.1")).await;
    let proxy = client_from(PROXY);
    let flood: Vec<_> = (0..30)
        .map(|i| {
            let (proxy, base) = (proxy.clone(), base.clone());
            tokio::spawn(async move {
                let from = format!("198.51.100.{i}");
                http_signup(&proxy, &base, Some(&from), &format!("new{i}"))
                    .await
                    .status()
                    .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..5 {
        let from = format!("203.0.113.{i}");
        let r = http_signup(&proxy, &base, Some(&from), "GINA").await;
        assert_eq!(r.status(), 409);
    }
    let mut busy = 0;
    for request in flood {
        busy += usize::from(request.await.unwrap() == 503);
    }
    assert!(
        busy > 0,
        "the signups' share of the pool was full meanwhile"
    );
}

/// Headers trickled past the header-read timeout: the connection is closed.
/// A body trickled past the request timeout: 503 in the JSON shape.
#[tokio::test]
async fn slow_clients_are_cut_off() {
    let db = TestDatabase::sqlite();
    let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
    let mut opts = options("");
    opts.header_read_timeout = Duration::from_secs(1);
    opts.request_timeout = Duration::from_secs(2);
    let base = serve(&h, opts).await;
    let addr = base.trim_start_matches("http://").to_owned();

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"POST /token HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was not closed");

    let mut trickle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    trickle
        .write_all(
            b"POST /auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("temporarily_unavailable") {
        let n = tokio::time::timeout(Duration::from_secs(5), trickle.read(&mut buf))
            .await
            .expect("an answer within the request timeout")
            .unwrap();
        assert!(
            n > 0,
            "closed without an answer: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // A prompt client is served as usual.
    let r = login(&client_from(PROXY), &base, None, "nobody", "wrong").await;
    assert_eq!(r.status(), 400);
}
