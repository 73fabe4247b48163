//! Signing-key rotation: tokens carry `kid`; previous keys verify but never
//! sign; a kid we do not know is refused; the algorithm stays pinned.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use auth_kit::Clock;
use auth_kit::token::{
    AccessGrant, AccessTokenVerifier, ClaimRules, InvalidToken, KeyError, Leeway, SigningAlgorithm,
    SigningKeys, TokenIssuer,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const OLD: &[u8] = b"the-secret-that-signed-until-today-0123";
const NEW: &[u8] = b"the-secret-that-signs-from-today-456789";
const STRANGER: &[u8] = b"a-secret-this-service-never-had-abcdef";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn rules() -> ClaimRules {
    ClaimRules::new("svc", "svc", Leeway::seconds(30).unwrap())
}

fn issue(keys: &SigningKeys) -> String {
    TokenIssuer::new(
        Arc::new(keys.clone()),
        rules(),
        Duration::from_secs(600),
        Clock::System,
    )
    .issue(&AccessGrant {
        user_id: 7,
        scope: None,
        login_id: Some("login"),
    })
    .unwrap()
    .into_string()
}

fn header_of(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

/// A token of ours signed with `key` under `alg`, with `kid` (or none).
fn forge(alg: Algorithm, kid: Option<&str>, key: &EncodingKey) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".to_owned());
    header.kid = kid.map(str::to_owned);
    let claims =
        json!({"sub": "7", "iss": "svc", "aud": "svc", "iat": now, "exp": now + 600, "jti": "j"});
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn hmac(secret: &[u8]) -> SigningKeys {
    SigningKeys::hmac(SigningAlgorithm::HS256, secret).unwrap()
}

#[test]
fn hmac_tokens_of_the_previous_key_keep_verifying() {
    let before = hmac(OLD);
    let old_token = issue(&before);
    assert_eq!(header_of(&old_token)["kid"], json!(before.kid()));

    let after = hmac(NEW).with_previous_hmac(OLD).unwrap();
    let verifier = AccessTokenVerifier::new(&after, rules());
    assert_eq!(verifier.verify(&old_token).unwrap().user_id, 7);
    // The previous key never signs: new tokens carry the new kid.
    let new_token = issue(&after);
    assert_eq!(header_of(&new_token)["kid"], json!(hmac(NEW).kid()));
    assert_ne!(before.kid(), after.kid());
    assert_eq!(after.previous_kids().collect::<Vec<_>>(), [before.kid()]);
    verifier.verify(&new_token).unwrap();
    // The old configuration does not know the new key.
    assert_eq!(
        AccessTokenVerifier::new(&before, rules())
            .verify(&new_token)
            .unwrap_err(),
        InvalidToken::UnknownKey
    );

    let stranger = EncodingKey::from_secret(STRANGER).unwrap();
    for (what, token, refused) in [
        (
            "a key that is neither current nor previous, its own kid",
            forge(Algorithm::HS256, Some(hmac(STRANGER).kid()), &stranger),
            InvalidToken::UnknownKey,
        ),
        (
            "a stranger's key claiming the previous key's kid",
            forge(Algorithm::HS256, Some(before.kid()), &stranger),
            InvalidToken::BadSignature,
        ),
        (
            "a stranger's key, no kid",
            forge(Algorithm::HS256, None, &stranger),
            InvalidToken::BadSignature,
        ),
        (
            // Tokens without kid predate kids: only the current key verifies them.
            "the previous key, no kid",
            forge(
                Algorithm::HS256,
                None,
                &EncodingKey::from_secret(OLD).unwrap(),
            ),
            InvalidToken::BadSignature,
        ),
        (
            "the previous key under another HMAC algorithm",
            forge(
                Algorithm::HS384,
                Some(before.kid()),
                &EncodingKey::from_secret(OLD).unwrap(),
            ),
            InvalidToken::WrongAlgorithm,
        ),
    ] {
        assert_eq!(verifier.verify(&token).unwrap_err(), refused, "{what}");
    }
    // A token issued before tokens carried a kid verifies with the current key.
    let legacy = forge(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(NEW).unwrap(),
    );
    assert_eq!(verifier.verify(&legacy).unwrap().user_id, 7);
}

#[test]
fn hmac_kids_name_the_key_and_reveal_nothing() {
    let kid = hmac(OLD).kid().to_owned();
    assert_eq!(
        kid,
        hmac(OLD).kid(),
        "stable: the same secret, the same kid"
    );
    // The same secret names the same key under every HMAC algorithm (one
    // long enough for HS512: RFC 7518 section 3.2).
    let long = [OLD, NEW].concat();
    assert_eq!(
        SigningKeys::hmac(SigningAlgorithm::HS256, &long)
            .unwrap()
            .kid(),
        SigningKeys::hmac(SigningAlgorithm::HS512, &long)
            .unwrap()
            .kid()
    );
    assert_ne!(kid, hmac(NEW).kid());
    assert_eq!(B64.decode(&kid).unwrap().len(), 16, "128 bits, base64url");
    let secret = String::from_utf8(OLD.to_vec()).unwrap();
    for window in secret.as_bytes().windows(4) {
        assert!(
            !kid.as_bytes().windows(4).any(|w| w == window),
            "no piece of the secret in its kid"
        );
    }
    assert!(!B64.encode(OLD).contains(&kid) && !hex::encode(OLD).contains(&kid.to_lowercase()));
}

#[test]
fn asymmetric_tokens_of_the_previous_key_keep_verifying() {
    let before = SigningKeys::from_pem(
        SigningAlgorithm::ES256,
        &fixture("es256-private.pem"),
        &fixture("es256-public.pem"),
    )
    .unwrap();
    let old_token = issue(&before);
    let after = SigningKeys::from_pem(
        SigningAlgorithm::ES256,
        &fixture("es256-other-private.pem"),
        &fixture("es256-other-public.pem"),
    )
    .unwrap()
    .with_previous_public_pem(&fixture("es256-public.pem"))
    .unwrap();
    let verifier = AccessTokenVerifier::new(&after, rules());
    assert_eq!(verifier.verify(&old_token).unwrap().user_id, 7);
    let new_token = issue(&after);
    assert_eq!(header_of(&new_token)["kid"], json!(after.kid()));
    verifier.verify(&new_token).unwrap();

    // Both public keys are published, the current one first, never a private part.
    let jwks = serde_json::to_value(after.jwks().unwrap()).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [after.kid(), before.kid()]);
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("d").is_none())
    );

    // Without the previous key, its tokens are refused by kid.
    let only_new = SigningKeys::from_pem(
        SigningAlgorithm::ES256,
        &fixture("es256-other-private.pem"),
        &fixture("es256-other-public.pem"),
    )
    .unwrap();
    assert_eq!(
        AccessTokenVerifier::new(&only_new, rules())
            .verify(&old_token)
            .unwrap_err(),
        InvalidToken::UnknownKey
    );
    // The new key claiming the previous key's kid does not pass for it.
    let other = EncodingKey::from_ec_pem(&fixture("es256-other-private.pem")).unwrap();
    assert_eq!(
        verifier
            .verify(&forge(Algorithm::ES256, Some(before.kid()), &other))
            .unwrap_err(),
        InvalidToken::BadSignature
    );
}

#[test]
fn previous_keys_are_checked_like_current_ones() {
    let es256 = || {
        SigningKeys::from_pem(
            SigningAlgorithm::ES256,
            &fixture("es256-private.pem"),
            &fixture("es256-public.pem"),
        )
        .unwrap()
    };
    let rs256 = SigningKeys::from_pem(
        SigningAlgorithm::RS256,
        &fixture("rs256-private.pem"),
        &fixture("rs256-public.pem"),
    )
    .unwrap();
    let check = |result: Result<SigningKeys, KeyError>, expected: KeyError| {
        assert_eq!(result.unwrap_err(), expected);
    };
    check(
        es256().with_previous_public_pem(&fixture("es256-public.pem")),
        KeyError::SameAsCurrent,
    );
    check(
        es256()
            .with_previous_public_pem(&fixture("es256-other-public.pem"))
            .unwrap()
            .with_previous_public_pem(&fixture("es256-other-public.pem")),
        KeyError::DuplicatePrevious,
    );
    check(
        es256().with_previous_public_pem(&fixture("eddsa-public.pem")),
        KeyError::PublicKey(SigningAlgorithm::ES256),
    );
    check(
        es256().with_previous_public_pem(&fixture("es384-public.pem")),
        KeyError::WrongCurve,
    );
    check(
        rs256.with_previous_public_pem(&fixture("rs1024-public.pem")),
        KeyError::RsaTooSmall(1024),
    );
    check(
        es256().with_previous_hmac(OLD),
        KeyError::WrongKind(SigningAlgorithm::ES256),
    );
    check(
        hmac(NEW).with_previous_public_pem(&fixture("es256-public.pem")),
        KeyError::WrongKind(SigningAlgorithm::HS256),
    );
    check(hmac(NEW).with_previous_hmac(NEW), KeyError::SameAsCurrent);
    check(
        hmac(NEW).with_previous_hmac(b"short"),
        KeyError::SecretTooShort(5),
    );
}
