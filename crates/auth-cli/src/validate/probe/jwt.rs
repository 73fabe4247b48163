//! Reading and forging JWTs: the header and claims of a token, decoded
//! without verifying, and tokens re-signed (or unsigned) to differ from a
//! real one in one property.

use std::time::{SystemTime, UNIX_EPOCH};

use auth_kit::token::SigningAlgorithm;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// The header and claims of a JWT, decoded without verifying.
pub(super) fn jwt_parts(token: &str) -> Option<(Map<String, Value>, Map<String, Value>)> {
    let mut parts = token.split('.');
    let (header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let decode = |part: &str| -> Option<Map<String, Value>> {
        let bytes = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).ok()?;
        match serde_json::from_slice(&bytes).ok()? {
            Value::Object(map) => Some(map),
            _ => None,
        }
    };
    Some((decode(header)?, decode(payload)?))
}

/// The current time, as Unix seconds.
pub(super) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A NumericDate claim as whole seconds.
pub(super) fn seconds(value: Option<&Value>) -> Option<i64> {
    #[allow(clippy::cast_possible_truncation)] // NumericDates are far inside i64
    value.and_then(Value::as_f64).map(|f| f as i64)
}

/// Signs `claims` with `header`'s algorithm, type and key id.
pub(super) fn forge(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    key: &EncodingKey,
) -> Result<String, String> {
    let alg: Algorithm = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| a.parse().ok())
        .ok_or("the token's alg is not one jsonwebtoken signs")?;
    let mut forged = Header::new(alg);
    forged.typ = header.get("typ").and_then(Value::as_str).map(str::to_owned);
    forged.kid = header.get("kid").and_then(Value::as_str).map(str::to_owned);
    jsonwebtoken::encode(&forged, claims, key).map_err(|e| e.to_string())
}

/// The same claims with `alg: none` and no signature.
pub(super) fn alg_none(header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    let mut header = header.clone();
    header.insert("alg".to_owned(), json!("none"));
    let encode =
        |map: &Map<String, Value>| URL_SAFE_NO_PAD.encode(Value::Object(map.clone()).to_string());
    format!("{}.{}.", encode(&header), encode(claims))
}

/// A fresh key of `alg`'s kind, which the service has never seen.
pub(super) fn other_key(alg: Algorithm) -> Result<EncodingKey, String> {
    let pair = |alg| crate::setup_jwt::generate_key_pair(alg).map_err(|e| e.to_string());
    match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(auth_kit::random::secret_hex().as_bytes())
                .map_err(|e| e.to_string())
        }
        Algorithm::ES256 => {
            EncodingKey::from_ec_pem(pair(SigningAlgorithm::ES256)?.private_pem.as_bytes())
                .map_err(|e| e.to_string())
        }
        Algorithm::EdDSA => {
            EncodingKey::from_ed_pem(pair(SigningAlgorithm::EdDSA)?.private_pem.as_bytes())
                .map_err(|e| e.to_string())
        }
        Algorithm::RS256 => {
            EncodingKey::from_rsa_pem(pair(SigningAlgorithm::RS256)?.private_pem.as_bytes())
                .map_err(|e| e.to_string())
        }
        other => Err(format!("{other:?} is not an algorithm of the contract")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_none_tokens_have_no_signature() {
        let (header, claims) = (
            Map::from_iter([("alg".to_owned(), json!("HS256"))]),
            Map::from_iter([("sub".to_owned(), json!("1"))]),
        );
        let token = alg_none(&header, &claims);
        assert!(token.ends_with('.'));
        let (h, c) = jwt_parts(&token).unwrap();
        assert_eq!(h["alg"], "none");
        assert_eq!(c["sub"], "1");
    }
}
