//! The timing of forgot-password, in a test binary of its own so that no
//! other test (hashing passwords) runs beside it and skews the figures.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Instant;

use common::{password_of, servers_with};
use serde_json::json;

/// forgot-password takes the same time for a known and an unknown address
/// (the lookup, the token and the mail happen off the request path):
/// medians of 20 requests each, interleaved, over HTTP, and the median of
/// the 20 paired ratios (each known request against the unknown one next
/// to it, so a load burst on a shared machine hits both sides). The paired
/// ratio is asserted within 25%; the figures are printed (`cargo test
/// --test timing -- --nocapture`). On a multi-threaded runtime, as the service runs: on one
/// thread, the mail worker's work would be timed as the client's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_password_timing() {
    let generous = [
        ("MAIL_MAX_PER_ADDRESS", "1000"),
        ("MAIL_MAX_PER_IP", "100000"),
    ];
    for s in servers_with("forgot_password_timing", &generous).await {
        let body = json!({"username": "timed", "password": password_of("timed"), "email": "timed@example.com"});
        assert_eq!(s.json("POST", "/auth/signup", None, body).await.status, 201);
        let mut samples: [Vec<f64>; 2] = Default::default();
        let mut ratios = Vec::new();
        for round in 0..21 {
            let mut pair = [
                (0, "timed@example.com".to_owned()),
                (1, format!("ghost-{round}@example.com")),
            ];
            // Alternate which goes first, so neither always follows the other's mail work.
            if round % 2 == 1 {
                pair.reverse();
            }
            let mut took = [0.0; 2];
            for (k, email) in pair {
                let started = Instant::now();
                let reply = s
                    .json(
                        "POST",
                        "/auth/forgot-password",
                        None,
                        json!({"email": email}),
                    )
                    .await;
                let elapsed = started.elapsed().as_secs_f64() * 1000.0;
                assert_eq!(reply.status, 202, "{reply:?}");
                took[k] = elapsed;
            }
            if round > 0 {
                // The first round warms up.
                samples[0].push(took[0]);
                samples[1].push(took[1]);
                ratios.push(took[0] / took[1]);
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [known, unknown] = samples.each_mut().map(median);
        let ratio = median(&mut ratios);
        eprintln!(
            "{}: forgot-password medians over 20: known address {known:.3} ms, unknown address {unknown:.3} ms ({:.3}); median of the paired known/unknown ratios {ratio:.3}",
            s.backend,
            known / unknown
        );
        assert!((0.75..=1.25).contains(&ratio), "known/unknown = {ratio:.3}");
    }
}
