//! `cargo bench -p auth-kit --bench tokens`: the cost of issuing a token, of
//! verifying it with the scope check, and of jsonwebtoken's bare `decode` of
//! the same token with the same validation (so the wrapper's overhead reads
//! as a ratio), plus one Argon2id hash through the hashing pool.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_kit::Clock;
use auth_kit::password::{PasswordHasher, PoolSize};
use auth_kit::token::{
    AccessClaims, AccessGrant, AccessTokenVerifier, ClaimRules, Leeway, SigningAlgorithm,
    SigningKeys, TokenIssuer,
};
use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn tokens(c: &mut Criterion) {
    let keys = Arc::new(SigningKeys::hmac(SigningAlgorithm::HS256, SECRET).unwrap());
    let rules = ClaimRules::new("bench", "bench", Leeway::seconds(30).unwrap());
    let issuer = TokenIssuer::new(
        keys.clone(),
        rules.clone(),
        Duration::from_secs(1800),
        Clock::System,
    );
    let verifier = AccessTokenVerifier::new(&keys, rules);
    let grant = AccessGrant {
        user_id: 42,
        scope: Some("me items items:write"),
        login_id: Some("0123456789abcdef0123456789abcdef"),
    };
    let token = issuer.issue(&grant).unwrap().into_string();

    // jsonwebtoken on its own, configured as the wrapper configures it.
    let bare_key = DecodingKey::from_secret(SECRET).unwrap();
    let mut bare = Validation::new(Algorithm::HS256);
    bare.leeway = 30;
    bare.validate_nbf = true;
    bare.set_issuer(&["bench"]);
    bare.set_audience(&["bench"]);
    bare.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);

    let mut group = c.benchmark_group("access_token");
    group.bench_function("issue", |b| {
        b.iter(|| issuer.issue(black_box(&grant)).unwrap())
    });
    group.bench_function("verify_and_scope_check", |b| {
        b.iter(|| {
            let access = verifier.verify(black_box(&token)).unwrap();
            assert!(access.has_scopes(&["items:write"]));
        })
    });
    group.bench_function("bare_jsonwebtoken_decode", |b| {
        b.iter(|| {
            jsonwebtoken::decode::<AccessClaims>(black_box(&token), &bare_key, &bare).unwrap()
        })
    });
    group.finish();
}

fn argon2id(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let hasher = PasswordHasher::new(PoolSize {
        workers: 1,
        queue: 4,
    });
    let mut group = c.benchmark_group("password");
    group.sample_size(20);
    group.bench_function("argon2id_hash_owasp", |b| {
        b.iter(|| {
            rt.block_on(hasher.hash(black_box("correct horse battery")))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, tokens, argon2id);
criterion_main!(benches);
