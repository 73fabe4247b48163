//! `cargo bench -p auth-kit --bench signup_flood`: what a signup flood does
//! to logins sharing the hashing pool. 300 clients hash signup passwords
//! without pause (retrying at once when refused) while one client logs in
//! 40 times in a row; the pool is the services' own (one worker per core,
//! 256 places).
//!
//! - `shared`: the flood hashes through `PasswordHasher::hash`, the queue
//!   logins use (how signups hashed before they had a share of their own);
//! - `split`: the flood hashes through `PasswordHasher::hash_for_signup`.
//!
//! Prints, per mode, the logins refused as busy (503) and the latency of
//! those that got through (median and p99), and the signup hashes done.

#![allow(clippy::unwrap_used)] // bench code: a failed unwrap is a failed run

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use auth_kit::password::{PasswordError, PasswordHasher, PoolSize};

const FLOODERS: usize = 300;
const LOGINS: usize = 40;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pool = PoolSize::for_this_machine();
    println!(
        "{FLOODERS} signup flooders, {LOGINS} logins in a row, {} workers, {} places",
        pool.workers, pool.queue
    );
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>14}",
        "mode", "logins 503", "p50 ms", "p99 ms", "signups hashed"
    );
    for split in [false, true] {
        rt.block_on(run(pool, split));
    }
}

async fn run(pool: PoolSize, split: bool) {
    let hasher = PasswordHasher::new(pool);
    let stored = hasher.hash("login-password").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let hashed = Arc::new(AtomicUsize::new(0));
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let (hasher, stop, hashed) = (hasher.clone(), stop.clone(), hashed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let result = if split {
                        hasher.hash_for_signup("signup-password").await
                    } else {
                        hasher.hash("signup-password").await
                    };
                    match result {
                        Ok(_) => {
                            hashed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(PasswordError::Busy) => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    // Let the flood fill the queue first.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut busy, mut latencies) = (0, Vec::new());
    for _ in 0..LOGINS {
        let started = Instant::now();
        match hasher.verify("login-password", Some(&stored)).await {
            Ok(_) => latencies.push(started.elapsed().as_secs_f64() * 1000.0),
            Err(PasswordError::Busy) => busy += 1,
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for flooder in flooders {
        flooder.await.unwrap();
    }
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or("-".to_owned(), |v| format!("{v:.0}"))
    };
    println!(
        "{:<8} {:>12} {:>10} {:>10} {:>14}",
        if split { "split" } else { "shared" },
        format!("{busy}/{LOGINS}"),
        pick(0.5),
        pick(0.99),
        hashed.load(Ordering::Relaxed)
    );
}
