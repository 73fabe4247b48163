//! `cargo bench -p auth-kit --features supabase --bench supabase_verify`:
//! verifying one Supabase access token locally (ES256 against the cached
//! JWKS) versus remotely (`GET /auth/v1/user` per request), both against
//! gotrue-stub on loopback. Loopback is the best case for remote mode: a
//! real project adds a network round trip on top.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;

use auth_kit::config::Environment;
use auth_kit_supabase::{SignUpOutcome, SupabaseClient, SupabaseSettings, SupabaseVerifier};
use criterion::{Criterion, criterion_group, criterion_main};
use gotrue_stub::StubConfig;

fn verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let stub = runtime
        .block_on(gotrue_stub::spawn(StubConfig::es256()))
        .unwrap();
    let settings = |mode: &str| {
        SupabaseSettings::from_env(&Environment::from_pairs([
            ("SUPABASE_URL", stub.url()),
            ("SUPABASE_KEY", stub.anon_key()),
            ("SUPABASE_VERIFY", mode),
        ]))
        .unwrap()
    };
    let local_settings = settings("local");
    let remote_settings = settings("remote");
    let client = SupabaseClient::new(&local_settings).unwrap();
    let local = SupabaseVerifier::new(&local_settings, client.clone());
    let remote = SupabaseVerifier::new(
        &remote_settings,
        SupabaseClient::new(&remote_settings).unwrap(),
    );
    let token = runtime.block_on(async {
        match client
            .sign_up("bench@example.com", "correct horse battery", None)
            .await
            .unwrap()
        {
            SignUpOutcome::Session(s) => s.access_token.expose().to_owned(),
            SignUpOutcome::ConfirmationRequired(_) => panic!("autoconfirm is on"),
        }
    });
    // Both paths warm: the JWKS cached, the HTTP connection pooled.
    runtime.block_on(local.prefetch_keys()).unwrap();
    runtime.block_on(local.verify(&token)).unwrap();
    runtime.block_on(remote.verify(&token)).unwrap();

    let mut group = c.benchmark_group("supabase_verify");
    group.bench_function("local_es256_jwks", |b| {
        b.iter(|| runtime.block_on(local.verify(black_box(&token))).unwrap())
    });
    // jsonwebtoken on its own with the same key and rules, so the
    // wrapper's share of the local figure reads as a ratio.
    let jwks = runtime.block_on(fetch_jwks_directly(&stub));
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    let bare_key = jsonwebtoken::DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut bare = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    bare.leeway = 30;
    bare.set_issuer(&[stub.issuer()]);
    bare.set_audience(&["authenticated"]);
    bare.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    group.bench_function("bare_jsonwebtoken_es256_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &bare_key, &bare).unwrap()
        })
    });
    group.bench_function("remote_get_user", |b| {
        b.iter(|| runtime.block_on(remote.verify(black_box(&token))).unwrap())
    });
    group.finish();
    assert_eq!(stub.jwks_fetches(), 2, "the local path never refetched");
}

/// The stub's JWKS, fetched apart from the code under test.
async fn fetch_jwks_directly(stub: &gotrue_stub::StubHandle) -> jsonwebtoken::jwk::JwkSet {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(format!("{}/auth/v1/.well-known/jwks.json", stub.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

criterion_group!(benches, verify);
criterion_main!(benches);
