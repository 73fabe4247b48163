//! Signing keys: an ES256 key ring (current key plus the one it replaced,
//! like a real rotation) or a legacy HS256 secret.

use std::fmt;

use jsonwebtoken::jwk::{Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use p256::pkcs8::EncodePrivateKey;
use serde_json::{Value, json};

use crate::StubError;
use crate::config::Signing;

/// Which `kid` a token minted with [`crate::StubHandle::sign_claims`] names
/// in its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kid {
    /// The current signing key's id (what the stub's own tokens carry; no
    /// `kid` in HS256 mode).
    Current,
    /// Any id, e.g. one the JWKS has never listed. The signature is still
    /// made with the current key.
    Named(String),
    /// No `kid` header at all.
    Omitted,
}

/// One ES256 key pair. `Debug` shows the id only.
struct EcKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// The public half as published in the JWKS.
    jwk: Value,
}

impl EcKey {
    fn generate() -> Result<Self, StubError> {
        auth_kit::token::install_crypto_provider();
        // A uniformly random 256-bit string is a valid scalar except with
        // negligible probability; try again in that case.
        let secret = loop {
            if let Ok(key) = p256::SecretKey::from_slice(&auth_kit::random::bytes::<32>()) {
                break key;
            }
        };
        let der = secret
            .to_pkcs8_der()
            .map_err(|e| StubError::Key(e.to_string()))?;
        let encoding = EncodingKey::from_ec_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|e| StubError::Key(e.to_string()))?;
        let kid = crate::uuid_v4();
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_operations = Some(vec![KeyOperations::Verify]);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| StubError::Key(e.to_string()))?;
        let mut published =
            serde_json::to_value(&jwk).map_err(|e| StubError::Key(e.to_string()))?;
        // Supabase publishes WebCrypto-exported keys, which carry `ext`.
        published["ext"] = Value::Bool(true);
        Ok(Self {
            kid,
            encoding,
            decoding,
            jwk: published,
        })
    }
}

enum Mode {
    Es256 {
        current: EcKey,
        /// The key `current` replaced: still published and still accepted,
        /// so tokens signed before a rotation stay valid until they expire.
        previous: Option<EcKey>,
    },
    Hs256 {
        encoding: EncodingKey,
        decoding: DecodingKey,
    },
}

/// The stub's signing keys.
pub(crate) struct KeyRing {
    mode: Mode,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.mode {
            Mode::Es256 { current, previous } => f
                .debug_struct("KeyRing::Es256")
                .field("current", &current.kid)
                .field("previous", &previous.as_ref().map(|k| &k.kid))
                .finish(),
            Mode::Hs256 { .. } => f.write_str("KeyRing::Hs256"),
        }
    }
}

/// Shortest HS256 secret accepted (Supabase's are longer).
pub(crate) const MIN_SECRET_BYTES: usize = 32;

impl KeyRing {
    pub(crate) fn new(signing: &Signing) -> Result<Self, StubError> {
        auth_kit::token::install_crypto_provider();
        let mode = match signing {
            Signing::Es256 => Mode::Es256 {
                current: EcKey::generate()?,
                previous: None,
            },
            Signing::Hs256 { secret } => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(StubError::WeakSecret);
                }
                let encoding = EncodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| StubError::Key(e.to_string()))?;
                let decoding = DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| StubError::Key(e.to_string()))?;
                Mode::Hs256 { encoding, decoding }
            }
        };
        Ok(Self { mode })
    }

    /// The current key's id; `None` in HS256 mode.
    pub(crate) fn current_kid(&self) -> Option<&str> {
        match &self.mode {
            Mode::Es256 { current, .. } => Some(&current.kid),
            Mode::Hs256 { .. } => None,
        }
    }

    /// A new current key; the old current one stays published as the
    /// previous key, the one before it is dropped.
    pub(crate) fn rotate(&mut self) -> Result<String, StubError> {
        match &mut self.mode {
            Mode::Es256 { current, previous } => {
                let fresh = EcKey::generate()?;
                let kid = fresh.kid.clone();
                *previous = Some(std::mem::replace(current, fresh));
                Ok(kid)
            }
            Mode::Hs256 { .. } => Err(StubError::NotAsymmetric),
        }
    }

    /// The JWKS document: public keys only, newest first; `{"keys":[]}` in
    /// HS256 mode (the secret is never published).
    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<&Value> = match &self.mode {
            Mode::Es256 { current, previous } => std::iter::once(current)
                .chain(previous.as_ref())
                .map(|k| &k.jwk)
                .collect(),
            Mode::Hs256 { .. } => Vec::new(),
        };
        json!({ "keys": keys })
    }

    /// Signs `claims` with the current key; the header is
    /// `{alg, kid, typ: "JWT"}` with the `kid` chosen by `kid`.
    pub(crate) fn sign(&self, kid: &Kid, claims: &Value) -> Result<String, StubError> {
        let (algorithm, key, current_kid) = match &self.mode {
            Mode::Es256 { current, .. } => (
                Algorithm::ES256,
                &current.encoding,
                Some(current.kid.as_str()),
            ),
            Mode::Hs256 { encoding, .. } => (Algorithm::HS256, encoding, None),
        };
        let mut header = Header::new(algorithm);
        header.typ = Some("JWT".to_owned());
        header.kid = match kid {
            Kid::Current => current_kid.map(str::to_owned),
            Kid::Named(name) => Some(name.clone()),
            Kid::Omitted => None,
        };
        jsonwebtoken::encode(&header, claims, key).map_err(|e| StubError::Sign(e.to_string()))
    }

    /// Verifies a token the way GoTrue does: the key its `kid` names (or the
    /// HS256 secret), the algorithm pinned to that key, `exp` required and
    /// checked without leeway. The audience is checked by the caller. `Err`
    /// carries the reason GoTrue would put in its `bad_jwt` message.
    pub(crate) fn verify(&self, token: &str) -> Result<Value, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
        let found = match (&self.mode, header.kid.as_deref()) {
            (Mode::Es256 { current, .. }, Some(kid)) if kid == current.kid => {
                Some((&current.decoding, Algorithm::ES256))
            }
            (
                Mode::Es256 {
                    previous: Some(previous),
                    ..
                },
                Some(kid),
            ) if kid == previous.kid => Some((&previous.decoding, Algorithm::ES256)),
            (Mode::Hs256 { decoding, .. }, _) if header.alg == Algorithm::HS256 => {
                Some((decoding, Algorithm::HS256))
            }
            _ => None,
        };
        let Some((key, algorithm)) = found else {
            return Err(format!(
                "unrecognized JWT kid {} for algorithm {:?}",
                header.kid.as_deref().unwrap_or("<nil>"),
                header.alg
            ));
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Value>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn claims() -> Value {
        json!({"sub": "x", "exp": auth_kit::Clock::System.now() + 60})
    }

    #[test]
    fn rotation_keeps_the_previous_key() {
        let mut ring = KeyRing::new(&Signing::Es256).unwrap();
        let first = ring.current_kid().unwrap().to_owned();
        let old = ring.sign(&Kid::Current, &claims()).unwrap();
        let second = ring.rotate().unwrap();
        assert_ne!(first, second);
        let kids: Vec<String> = ring.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kids, [second.clone(), first]);
        assert!(ring.verify(&old).is_ok());
        ring.rotate().unwrap();
        assert!(
            ring.verify(&old)
                .unwrap_err()
                .contains("unrecognized JWT kid")
        );
    }

    #[test]
    fn jwks_has_public_parts_only() {
        let ring = KeyRing::new(&Signing::Es256).unwrap();
        let jwks = ring.jwks();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert!(key.get("d").is_none());
    }

    #[test]
    fn hs256_mode() {
        assert!(matches!(
            KeyRing::new(&Signing::Hs256 {
                secret: "short".into()
            }),
            Err(StubError::WeakSecret)
        ));
        let ring = KeyRing::new(&Signing::Hs256 {
            secret: "x".repeat(40),
        })
        .unwrap();
        assert_eq!(ring.jwks(), json!({"keys": []}));
        let token = ring.sign(&Kid::Current, &claims()).unwrap();
        assert!(ring.verify(&token).is_ok());
    }

    #[test]
    fn foreign_kid_is_refused() {
        let ring = KeyRing::new(&Signing::Es256).unwrap();
        let token = ring
            .sign(&Kid::Named("not-a-key".into()), &claims())
            .unwrap();
        assert!(ring.verify(&token).unwrap_err().contains("not-a-key"));
    }
}
