//! `cargo bench -p auth-kit --bench login_flood`: 256 concurrent logins
//! (password verifications) against three ways of running Argon2 off the
//! async runtime, each in a process of its own so peak RSS is its own:
//!
//! - `pool`: auth-kit's `PasswordHasher` (one thread per core, memory
//!   reused, bounded queue);
//! - `spawn_blocking`: `tokio::task::spawn_blocking` per verification;
//! - `semaphore`: the same behind a semaphore of one permit per core.
//!
//! Prints logins per second, latency percentiles and peak RSS (VmHWM).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordVerifier};
use auth_kit::password::{PasswordHasher, PoolSize};

const CONCURRENT: usize = 256;
const ROUNDS: usize = 3;
const PASSWORD: &str = "correct horse battery staple";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--mode") {
        let mode = args[pos + 1].clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(run(&mode));
        return;
    }
    println!(
        "{CONCURRENT} concurrent logins x {ROUNDS} rounds, {} cores",
        cores()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>14}",
        "mode", "logins/s", "p50 ms", "p99 ms", "peak RSS MiB"
    );
    for mode in ["pool", "semaphore", "spawn_blocking"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--mode", mode])
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            eprintln!("{mode} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

async fn run(mode: &str) {
    let stored = {
        let hasher = PasswordHasher::new(PoolSize {
            workers: 1,
            queue: 1,
        });
        hasher.hash(PASSWORD).await.unwrap()
    };
    let pool = PasswordHasher::new(PoolSize {
        workers: cores(),
        queue: CONCURRENT,
    });
    let semaphore = Arc::new(tokio::sync::Semaphore::new(cores()));
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(CONCURRENT * ROUNDS);
    for _ in 0..ROUNDS {
        let tasks: Vec<_> = (0..CONCURRENT)
            .map(|_| {
                let (pool, stored, semaphore, mode) = (
                    pool.clone(),
                    stored.clone(),
                    semaphore.clone(),
                    mode.to_owned(),
                );
                tokio::spawn(async move {
                    let t = Instant::now();
                    let ok = match mode.as_str() {
                        "pool" => matches!(
                            pool.verify(PASSWORD, Some(&stored)).await,
                            Ok(auth_kit::password::Verification::Match { .. })
                        ),
                        "semaphore" => {
                            let _permit = semaphore.acquire().await.unwrap();
                            tokio::task::spawn_blocking(move || verify_fresh(&stored))
                                .await
                                .unwrap()
                        }
                        _ => tokio::task::spawn_blocking(move || verify_fresh(&stored))
                            .await
                            .unwrap(),
                    };
                    assert!(ok);
                    t.elapsed()
                })
            })
            .collect();
        for t in tasks {
            latencies.push(t.await.unwrap());
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{mode:<16} {:>10.1} {:>10.0} {:>10.0} {:>14.1}",
        (CONCURRENT * ROUNDS) as f64 / elapsed.as_secs_f64(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        peak_rss_mib()
    );
}

/// Argon2 as most services call it: a fresh allocation per verification.
fn verify_fresh(stored: &str) -> bool {
    let hash = argon2::PasswordHash::new(stored).unwrap();
    Argon2::default()
        .verify_password(PASSWORD.as_bytes(), &hash)
        .is_ok()
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
