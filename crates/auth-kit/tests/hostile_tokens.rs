//! A table of hostile access tokens, each refused with the right reason and
//! never a panic (RFC 8725's attacks and the classic JWT mistakes).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::time::{SystemTime, UNIX_EPOCH};

use auth_kit::token::{
    AccessTokenVerifier, ClaimRules, InvalidToken, Leeway, SigningAlgorithm, SigningKeys,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

const SECRET: &[u8] = b"k3y-for-hostile-token-tests-0123456789";
const OTHER_SECRET: &[u8] = b"an-attackers-own-secret-key-0123456789";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rules() -> ClaimRules {
    ClaimRules::new("svc", "svc", Leeway::seconds(30).unwrap())
}

fn hs256_verifier() -> AccessTokenVerifier {
    AccessTokenVerifier::new(
        &SigningKeys::hmac(SigningAlgorithm::HS256, SECRET).unwrap(),
        rules(),
    )
}

fn asymmetric_verifier(alg: SigningAlgorithm, name: &str) -> AccessTokenVerifier {
    let keys = SigningKeys::from_pem(
        alg,
        &fixture(&format!("{name}-private.pem")),
        &fixture(&format!("{name}-public.pem")),
    )
    .unwrap();
    AccessTokenVerifier::new(&keys, rules())
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "typ": "at+jwt"})
}

fn claims() -> Value {
    let now = now();
    json!({"sub": "42", "iss": "svc", "aud": "svc", "iat": now, "exp": now + 600, "jti": "j", "scope": "me items", "sid": "s"})
}

fn with(mut value: Value, key: &str, field: Value) -> Value {
    value[key] = field;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

fn segment(value: &Value) -> String {
    B64.encode(serde_json::to_vec(value).unwrap())
}

/// Signs any header and payload bytes with `key` under `alg`, whatever the header says.
fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    sign_raw(&segment(header), &segment(claims), key, alg)
}

fn hs256(header: &Value, claims: &Value) -> String {
    sign(
        header,
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
        Algorithm::HS256,
    )
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", segment(header), segment(claims))
}

/// Rewrites a token's signature bytes and re-encodes them canonically, so
/// the tampering is a bad signature and never a base64 accident (a changed
/// last character can leave non-canonical trailing bits, which would read
/// as "malformed" for some random tokens and "bad signature" for others).
fn with_signature(token: &str, change: impl FnOnce(&mut Vec<u8>)) -> String {
    let (message, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = B64.decode(signature).unwrap();
    change(&mut bytes);
    format!("{message}.{}", B64.encode(bytes))
}

#[test]
fn positive_controls() {
    let v = hs256_verifier();
    let access = v.verify(&hs256(&header("HS256"), &claims())).unwrap();
    assert_eq!(
        (access.user_id, access.scope(), access.login_id()),
        (42, "me items", Some("s"))
    );
    // Expired 10 s ago: inside the 30 s leeway.
    assert!(
        v.verify(&hs256(
            &header("HS256"),
            &with(claims(), "exp", json!(now() - 10))
        ))
        .is_ok()
    );
    // `aud` as a list containing ours, `typ` in its media-type form, no `sid`.
    let relaxed = without(with(claims(), "aud", json!(["other", "svc"])), "sid");
    assert!(
        v.verify(&hs256(
            &json!({"alg": "HS256", "typ": "application/at+jwt"}),
            &relaxed
        ))
        .is_ok()
    );
}

#[test]
fn hostile_tokens_are_refused_with_the_right_reason() {
    use InvalidToken::*;
    let hs = hs256_verifier();
    let rs = asymmetric_verifier(SigningAlgorithm::RS256, "rs256");
    let es = asymmetric_verifier(SigningAlgorithm::ES256, "es256");
    let good = hs256(&header("HS256"), &claims());
    let rsa_private = EncodingKey::from_rsa_pem(&fixture("rs256-private.pem")).unwrap();
    let attacker_ec = EncodingKey::from_ec_pem(&fixture("es256-other-private.pem")).unwrap();
    let attacker_hmac = EncodingKey::from_secret(OTHER_SECRET).unwrap();
    let attacker_rsa = EncodingKey::from_rsa_pem(&fixture("rs1024-private.pem")).unwrap();
    let (header_b64, payload_b64, _) = {
        let mut parts = good.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let attacker_jwk = json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});

    let cases: Vec<(&str, &AccessTokenVerifier, String, InvalidToken)> = vec![
        (
            "alg none",
            &hs,
            unsigned(&header("none"), &claims()),
            WrongAlgorithm,
        ),
        (
            "alg None",
            &hs,
            unsigned(&header("None"), &claims()),
            WrongAlgorithm,
        ),
        (
            "alg NONE",
            &hs,
            unsigned(&header("NONE"), &claims()),
            WrongAlgorithm,
        ),
        (
            "alg nOnE",
            &hs,
            unsigned(&header("nOnE"), &claims()),
            WrongAlgorithm,
        ),
        (
            "alg none with a signature",
            &hs,
            format!(
                "{}.{}.{}",
                segment(&header("none")),
                payload_b64,
                good.rsplit('.').next().unwrap()
            ),
            WrongAlgorithm,
        ),
        (
            "alg none on an RS256 service",
            &rs,
            unsigned(&header("none"), &claims()),
            WrongAlgorithm,
        ),
        (
            "HS256 signed with the service's RSA public key (key confusion)",
            &rs,
            sign(
                &header("HS256"),
                &claims(),
                &EncodingKey::from_secret(&fixture("rs256-public.pem")).unwrap(),
                Algorithm::HS256,
            ),
            WrongAlgorithm,
        ),
        (
            "HS512 on an HS256 service, same secret",
            &hs,
            sign(
                &header("HS512"),
                &claims(),
                &EncodingKey::from_secret(SECRET).unwrap(),
                Algorithm::HS512,
            ),
            WrongAlgorithm,
        ),
        (
            "RS256 on an HS256 service",
            &hs,
            sign(&header("RS256"), &claims(), &rsa_private, Algorithm::RS256),
            WrongAlgorithm,
        ),
        (
            "ES384 header on an ES256 service",
            &es,
            sign_raw(
                &segment(&header("ES384")),
                &payload_b64,
                &attacker_ec,
                Algorithm::ES256,
            ),
            WrongAlgorithm,
        ),
        (
            "unknown alg",
            &hs,
            unsigned(&header("HS1024"), &claims()),
            WrongAlgorithm,
        ),
        (
            "wrong HMAC key",
            &hs,
            sign(
                &header("HS256"),
                &claims(),
                &attacker_hmac,
                Algorithm::HS256,
            ),
            BadSignature,
        ),
        (
            "ES256 by another key",
            &es,
            sign(&header("ES256"), &claims(), &attacker_ec, Algorithm::ES256),
            BadSignature,
        ),
        (
            "tampered payload (sub 42 -> 1)",
            &hs,
            format!(
                "{header_b64}.{}.{}",
                segment(&with(claims(), "sub", json!("1"))),
                good.rsplit('.').next().unwrap()
            ),
            BadSignature,
        ),
        (
            "tampered header (extra field)",
            &hs,
            format!(
                "{}.{payload_b64}.{}",
                segment(&with(header("HS256"), "x5t", json!("x"))),
                good.rsplit('.').next().unwrap()
            ),
            BadSignature,
        ),
        (
            "tampered header (a kid we do not know)",
            &hs,
            format!(
                "{}.{payload_b64}.{}",
                segment(&with(header("HS256"), "kid", json!("x"))),
                good.rsplit('.').next().unwrap()
            ),
            UnknownKey,
        ),
        (
            "tampered signature",
            &hs,
            with_signature(&good, |sig| sig[0] ^= 0x01),
            BadSignature,
        ),
        (
            "truncated signature",
            &hs,
            with_signature(&good, |sig| sig.truncate(29)),
            BadSignature,
        ),
        (
            "signature with non-canonical base64 trailing bits",
            &hs,
            {
                // 32 bytes are 43 characters whose last one carries 2 unused
                // bits; 'B' sets one of them.
                let mut t = good.clone();
                t.pop();
                t.push('B');
                t
            },
            Malformed,
        ),
        (
            "empty signature",
            &hs,
            format!("{header_b64}.{payload_b64}."),
            BadSignature,
        ),
        (
            "expired beyond the leeway",
            &hs,
            hs256(&header("HS256"), &with(claims(), "exp", json!(now() - 120))),
            Expired,
        ),
        (
            "nbf in the future",
            &hs,
            hs256(&header("HS256"), &with(claims(), "nbf", json!(now() + 600))),
            NotYetValid,
        ),
        (
            "missing exp",
            &hs,
            hs256(&header("HS256"), &without(claims(), "exp")),
            InvalidClaims,
        ),
        (
            "missing iat",
            &hs,
            hs256(&header("HS256"), &without(claims(), "iat")),
            InvalidClaims,
        ),
        (
            "missing sub",
            &hs,
            hs256(&header("HS256"), &without(claims(), "sub")),
            InvalidClaims,
        ),
        (
            "string-typed exp",
            &hs,
            hs256(
                &header("HS256"),
                &with(claims(), "exp", json!((now() + 600).to_string())),
            ),
            InvalidClaims,
        ),
        (
            "string-typed iat",
            &hs,
            hs256(
                &header("HS256"),
                &with(claims(), "iat", json!(now().to_string())),
            ),
            InvalidClaims,
        ),
        (
            "negative exp",
            &hs,
            hs256(&header("HS256"), &with(claims(), "exp", json!(-1))),
            InvalidClaims,
        ),
        (
            "non-numeric sub",
            &hs,
            hs256(&header("HS256"), &with(claims(), "sub", json!("admin"))),
            InvalidClaims,
        ),
        (
            "sub zero",
            &hs,
            hs256(&header("HS256"), &with(claims(), "sub", json!("0"))),
            InvalidClaims,
        ),
        (
            "scope as a list",
            &hs,
            hs256(
                &header("HS256"),
                &with(claims(), "scope", json!(["me", "items"])),
            ),
            InvalidClaims,
        ),
        (
            "wrong iss",
            &hs,
            hs256(&header("HS256"), &with(claims(), "iss", json!("evil"))),
            WrongIssuerOrAudience,
        ),
        (
            "missing iss",
            &hs,
            hs256(&header("HS256"), &without(claims(), "iss")),
            InvalidClaims,
        ),
        (
            "wrong aud",
            &hs,
            hs256(
                &header("HS256"),
                &with(claims(), "aud", json!("other-service")),
            ),
            WrongIssuerOrAudience,
        ),
        (
            "aud list without ours",
            &hs,
            hs256(&header("HS256"), &with(claims(), "aud", json!(["a", "b"]))),
            WrongIssuerOrAudience,
        ),
        (
            "typ JWT (not an access token)",
            &hs,
            hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims()),
            WrongType,
        ),
        (
            "no typ",
            &hs,
            hs256(&json!({"alg": "HS256"}), &claims()),
            WrongType,
        ),
        (
            "unknown crit header",
            &hs,
            hs256(&with(header("HS256"), "crit", json!(["exp"])), &claims()),
            Malformed,
        ),
        (
            "jku pointing elsewhere",
            &hs,
            sign(
                &with(
                    header("HS256"),
                    "jku",
                    json!("https://evil.example/jwks.json"),
                ),
                &claims(),
                &attacker_hmac,
                Algorithm::HS256,
            ),
            BadSignature,
        ),
        (
            "x5u pointing elsewhere",
            &rs,
            sign(
                &with(
                    header("RS256"),
                    "x5u",
                    json!("https://evil.example/cert.pem"),
                ),
                &claims(),
                &attacker_rsa,
                Algorithm::RS256,
            ),
            BadSignature,
        ),
        (
            "embedded jwk of the attacker's key",
            &es,
            sign(
                &with(header("ES256"), "jwk", attacker_jwk),
                &claims(),
                &attacker_ec,
                Algorithm::ES256,
            ),
            BadSignature,
        ),
        (
            "kid with a path",
            &hs,
            sign(
                &with(header("HS256"), "kid", json!("../../../../dev/null")),
                &claims(),
                &attacker_hmac,
                Algorithm::HS256,
            ),
            UnknownKey,
        ),
        (
            "huge token",
            &hs,
            format!("{header_b64}.{}.sig", "A".repeat(9000)),
            TooLong,
        ),
        (
            "bad base64 in the payload",
            &hs,
            format!(
                "{header_b64}.!!!not-base64!!!.{}",
                good.rsplit('.').next().unwrap()
            ),
            BadSignature,
        ),
        (
            "bad base64 in the header",
            &hs,
            format!("%%%.{payload_b64}.sig"),
            Malformed,
        ),
        (
            "non-JSON header",
            &hs,
            format!("{}.{payload_b64}.sig", B64.encode("hello")),
            Malformed,
        ),
        (
            "non-JSON payload, validly signed",
            &hs,
            sign_raw(
                &header_b64,
                &B64.encode("hello"),
                &EncodingKey::from_secret(SECRET).unwrap(),
                Algorithm::HS256,
            ),
            InvalidClaims,
        ),
        (
            "two segments",
            &hs,
            format!("{header_b64}.{payload_b64}"),
            Malformed,
        ),
        ("four segments", &hs, format!("{good}.extra"), Malformed),
        (
            "duplicate dots: an empty payload segment",
            &hs,
            format!("{header_b64}..{payload_b64}"),
            BadSignature,
        ),
        ("empty segments", &hs, "..".to_owned(), Malformed),
        ("empty token", &hs, String::new(), Malformed),
        (
            "a refresh token presented as a bearer",
            &hs,
            B64.encode([7u8; 32]),
            Malformed,
        ),
    ];
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for (name, verifier, token, expected) in &cases {
        let outcome = std::panic::catch_unwind(|| verifier.verify(token));
        match outcome {
            Ok(Err(got)) if got == *expected => {}
            Ok(other) => failures.push(format!("{name}: expected {expected:?}, got {other:?}")),
            Err(_) => failures.push(format!("{name}: PANICKED")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn key_material_is_checked() {
    use auth_kit::token::KeyError;
    let f = fixture;
    assert_eq!(
        SigningKeys::hmac(SigningAlgorithm::HS256, b"short").unwrap_err(),
        KeyError::SecretTooShort(5)
    );
    assert_eq!(
        SigningKeys::hmac(SigningAlgorithm::RS256, SECRET).unwrap_err(),
        KeyError::WrongKind(SigningAlgorithm::RS256)
    );
    assert_eq!(
        SigningKeys::from_pem(
            SigningAlgorithm::ES256,
            &f("es256-private.pem"),
            &f("es256-other-public.pem")
        )
        .unwrap_err(),
        KeyError::Mismatch
    );
    assert_eq!(
        SigningKeys::from_pem(
            SigningAlgorithm::RS256,
            &f("rs1024-private.pem"),
            &f("rs1024-public.pem")
        )
        .unwrap_err(),
        KeyError::RsaTooSmall(1024)
    );
    assert!(
        SigningKeys::from_pem(
            SigningAlgorithm::ES256,
            &f("es384-private.pem"),
            &f("es384-public.pem")
        )
        .is_err()
    );
    assert!(
        SigningKeys::from_pem(
            SigningAlgorithm::ES256,
            &f("rs256-private.pem"),
            &f("rs256-public.pem")
        )
        .is_err()
    );
    assert!(
        SigningKeys::from_pem(
            SigningAlgorithm::EdDSA,
            b"not a pem",
            &f("eddsa-public.pem")
        )
        .is_err()
    );
}

#[test]
fn jwks_kid_is_the_rfc7638_thumbprint() {
    for (alg, name) in [
        (SigningAlgorithm::RS256, "rs256"),
        (SigningAlgorithm::ES256, "es256"),
        (SigningAlgorithm::EdDSA, "eddsa"),
    ] {
        let keys = SigningKeys::from_pem(
            alg,
            &fixture(&format!("{name}-private.pem")),
            &fixture(&format!("{name}-public.pem")),
        )
        .unwrap();
        let jwks = serde_json::to_value(keys.jwks().unwrap()).unwrap();
        let jwk = &jwks["keys"][0];
        // Recompute RFC 7638 independently: the required members, sorted, no spaces.
        let members: &[&str] = match jwk["kty"].as_str().unwrap() {
            "RSA" => &["e", "kty", "n"],
            "EC" => &["crv", "kty", "x", "y"],
            _ => &["crv", "kty", "x"],
        };
        let canonical = format!(
            "{{{}}}",
            members
                .iter()
                .map(|m| format!("\"{m}\":{}", jwk[m]))
                .collect::<Vec<_>>()
                .join(",")
        );
        use sha2::Digest;
        let expected = B64.encode(sha2::Sha256::digest(canonical.as_bytes()));
        assert_eq!(jwk["kid"], json!(expected), "{name}");
        assert_eq!(keys.kid(), expected);
        assert!(
            jwk.get("d").is_none(),
            "{name}: the private key must not be published"
        );
        assert_eq!(jwk["use"], json!("sig"));
    }
    assert!(
        SigningKeys::hmac(SigningAlgorithm::HS256, SECRET)
            .unwrap()
            .jwks()
            .is_none()
    );
}

#[test]
fn key_set_verification_by_kid() {
    use auth_kit::token::{KeySet, KeySetError};
    let keys = SigningKeys::from_pem(
        SigningAlgorithm::ES256,
        &fixture("es256-private.pem"),
        &fixture("es256-public.pem"),
    )
    .unwrap();
    let mut jwks = keys.jwks().unwrap();
    // An `oct` key in a JWKS would let readers of the JWKS sign tokens: it must be ignored.
    jwks.keys.push(
        serde_json::from_value(
            json!({"kty": "oct", "kid": "shared", "k": B64.encode(SECRET), "alg": "HS256"}),
        )
        .unwrap(),
    );
    let set = KeySet::from_jwks(&jwks, &[SigningAlgorithm::ES256, SigningAlgorithm::RS256]);
    assert_eq!(set.len(), 1);
    let kid = keys.kid();
    let ec = EncodingKey::from_ec_pem(&fixture("es256-private.pem")).unwrap();
    let token = sign(
        &json!({"alg": "ES256", "kid": kid}),
        &claims(),
        &ec,
        Algorithm::ES256,
    );
    let verified: Value = set.verify(&token, &rules()).unwrap();
    assert_eq!(verified["sub"], json!("42"));
    let unknown = sign(
        &json!({"alg": "ES256", "kid": "nope"}),
        &claims(),
        &ec,
        Algorithm::ES256,
    );
    assert_eq!(
        set.verify::<Value>(&unknown, &rules()).unwrap_err(),
        KeySetError::UnknownKid
    );
    let hmac = hs256(&json!({"alg": "HS256", "kid": "shared"}), &claims());
    assert_eq!(
        set.verify::<Value>(&hmac, &rules()).unwrap_err(),
        KeySetError::UnknownKid
    );
    let no_kid = sign(&json!({"alg": "ES256"}), &claims(), &ec, Algorithm::ES256);
    assert_eq!(
        set.verify::<Value>(&no_kid, &rules()).unwrap_err(),
        KeySetError::Invalid(InvalidToken::UnknownKey)
    );
    let wrong_alg = sign_raw(
        &segment(&json!({"alg": "RS256", "kid": kid})),
        &segment(&claims()),
        &ec,
        Algorithm::ES256,
    );
    assert_eq!(
        set.verify::<Value>(&wrong_alg, &rules()).unwrap_err(),
        KeySetError::Invalid(InvalidToken::WrongAlgorithm)
    );
}
