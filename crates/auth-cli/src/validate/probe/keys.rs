//! What the env file says about the service's keys: to forge tokens the
//! service should accept but for one property, and to verify its own.

use auth_kit::config::catalog;
use auth_kit::token::SigningAlgorithm;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use zeroize::Zeroizing;

/// What the env file says about the service's keys.
pub(super) struct ServiceKeys {
    pub(super) algorithm: Option<Algorithm>,
    /// To forge tokens the service should find valid but for one property.
    pub(super) encoding: Option<EncodingKey>,
    /// To verify the service's own tokens.
    pub(super) decoding: Option<DecodingKey>,
    /// Why a key is missing, when it is.
    pub(super) problem: Option<String>,
}

impl ServiceKeys {
    pub(super) fn from_env(env: &auth_kit::config::Environment) -> Self {
        let mut keys = ServiceKeys {
            algorithm: None,
            encoding: None,
            decoding: None,
            problem: None,
        };
        let alg = match auth_kit::config::algorithm(env) {
            Ok(alg) => alg,
            Err(e) => {
                keys.problem = Some(e.problem().to_owned());
                return keys;
            }
        };
        keys.algorithm = Some(jwt_algorithm(alg));
        if alg.is_hmac() {
            match env.get(catalog::SECRET_KEY.name) {
                // Used as its UTF-8 bytes, as written (docs/contract.md, Tokens).
                Some(secret) => {
                    keys.encoding = EncodingKey::from_secret(secret.as_bytes()).ok();
                    keys.decoding = DecodingKey::from_secret(secret.as_bytes()).ok();
                }
                None => keys.problem = Some("the env file sets no SECRET_KEY".to_owned()),
            }
            return keys;
        }
        let read = |var: &str| -> Result<Zeroizing<Vec<u8>>, String> {
            let path = env
                .get(var)
                .ok_or_else(|| format!("the env file sets no {var}"))?;
            std::fs::read(path.trim())
                .map(Zeroizing::new)
                .map_err(|e| format!("{var} cannot be read ({e})"))
        };
        match read(catalog::JWT_PRIVATE_KEY_FILE.name) {
            Ok(pem) => {
                keys.encoding = match alg {
                    SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                    SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(&pem),
                    _ => EncodingKey::from_ed_pem(&pem),
                }
                .ok();
            }
            Err(problem) => keys.problem = Some(problem),
        }
        if let Ok(pem) = read(catalog::JWT_PUBLIC_KEY_FILE.name) {
            keys.decoding = match alg {
                SigningAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                SigningAlgorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                _ => DecodingKey::from_ed_pem(&pem),
            }
            .ok();
        }
        if keys.encoding.is_none() && keys.problem.is_none() {
            keys.problem = Some(format!(
                "JWT_PRIVATE_KEY_FILE is not a PEM {alg} private key"
            ));
        }
        keys
    }
}

fn jwt_algorithm(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::HS256 => Algorithm::HS256,
        SigningAlgorithm::HS384 => Algorithm::HS384,
        SigningAlgorithm::HS512 => Algorithm::HS512,
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}
