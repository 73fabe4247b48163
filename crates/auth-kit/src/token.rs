//! Access tokens: signing keys, issuing, and verification with the algorithm
//! pinned (RFC 8725, RFC 9068).
//!
//! Everything that decides whether a token is acceptable is a constructor
//! argument (key, issuer, audience, leeway); there is no `Default` to forget
//! one. Verification
//! - accepts exactly the configured algorithm (never `none`, never another
//!   family: an HMAC service cannot be fooled with its public key and an
//!   RSA service cannot be fooled into HMAC);
//! - requires `exp`, `iat`, `iss`, `aud` and `sub`, honours `nbf`, and allows
//!   at most 60 s of clock leeway ([`Leeway`]);
//! - requires the RFC 9068 type `at+jwt`, so an ID token or any other JWT
//!   signed with the same key is not an access token;
//! - never consults `jku`, `x5u`, `jwk` or `x5c` headers;
//! - rejects tokens over 8 KiB before parsing them.
//!
//! ```
//! use std::sync::Arc;
//! use auth_kit::token::{AccessGrant, AccessTokenVerifier, ClaimRules, Leeway, SigningAlgorithm, SigningKeys, TokenIssuer};
//! use auth_kit::Clock;
//!
//! let keys = Arc::new(SigningKeys::hmac(SigningAlgorithm::HS256, b"a-32-byte-or-longer-secret-key!!xyz").unwrap());
//! let rules = ClaimRules::new("my-api", "my-api", Leeway::seconds(30).unwrap());
//! let issuer = TokenIssuer::new(keys.clone(), rules.clone(), std::time::Duration::from_secs(1800), Clock::System);
//! let token = issuer.issue(&AccessGrant { user_id: 7, scope: Some("me items"), login_id: None }).unwrap();
//!
//! let verifier = AccessTokenVerifier::new(&keys, rules);
//! let access = verifier.verify(token.as_str()).unwrap();
//! assert_eq!(access.user_id, 7);
//! assert!(access.has_scopes(&["items"]));
//! assert!(verifier.verify("not-a-token").is_err());
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Once};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::clock::Clock;
use crate::policy::claim_holds_all;

/// Longest bearer token accepted: anything longer is
/// rejected before any decoding work.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A JWKS document (`{"keys": [...]}`), as published and as fetched.
pub use jsonwebtoken::jwk::JwkSet;

/// The RFC 9068 `typ` of our access tokens.
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Installs jsonwebtoken's RustCrypto backend as the process's JWT crypto
/// provider. Called by every key constructor; idempotent. Only this backend
/// is compiled in (no C build), and installing it explicitly means a build
/// that accidentally enables a second backend still uses this one.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed: the only one compiled
        // in is this one, so there is nothing to do.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

/// The signing algorithms a service may be configured with (ALGORITHM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 with SECRET_KEY.
    HS256,
    /// HMAC-SHA384 with SECRET_KEY.
    HS384,
    /// HMAC-SHA512 with SECRET_KEY.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256, key pair from PEM files.
    RS256,
    /// ECDSA P-256 with SHA-256, key pair from PEM files.
    ES256,
    /// Ed25519, key pair from PEM files.
    EdDSA,
}

impl SigningAlgorithm {
    /// Every supported algorithm, in the order error messages list them.
    pub const ALL: [SigningAlgorithm; 6] = [
        Self::HS256,
        Self::HS384,
        Self::HS512,
        Self::RS256,
        Self::ES256,
        Self::EdDSA,
    ];

    /// The JOSE name (`HS256`, ..., `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Whether this is a shared-secret (HMAC) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Self::HS256 | Self::HS384 | Self::HS512)
    }

    /// The shortest HMAC secret this algorithm accepts, in bytes: at least
    /// [`MIN_SECRET_BYTES`], and never shorter than the hash's output (RFC
    /// 7518 section 3.2: 32, 48 and 64 bytes for HS256, HS384 and HS512).
    /// `None` for the asymmetric algorithms.
    ///
    /// ```
    /// use auth_kit::token::SigningAlgorithm;
    /// assert_eq!(SigningAlgorithm::HS512.min_secret_bytes(), Some(64));
    /// assert_eq!(SigningAlgorithm::ES256.min_secret_bytes(), None);
    /// ```
    pub fn min_secret_bytes(self) -> Option<usize> {
        let hash_bytes = match self {
            Self::HS256 => 32,
            Self::HS384 => 48,
            Self::HS512 => 64,
            Self::RS256 | Self::ES256 | Self::EdDSA => return None,
        };
        Some(usize::max(hash_bytes, MIN_SECRET_BYTES))
    }

    fn jwt(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
            Self::RS256 => Algorithm::RS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    fn from_jwt(alg: Algorithm) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.jwt() == alg)
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `ALGORITHM` value that is not one of [`SigningAlgorithm::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a supported algorithm")]
pub struct UnknownAlgorithm(pub String);

impl FromStr for SigningAlgorithm {
    type Err = UnknownAlgorithm;

    /// Exact JOSE names only: `none`, `None`, `hs256` and friends are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm(s.chars().take(32).collect()))
    }
}

/// Why key material was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An HMAC constructor was given an asymmetric algorithm, or the reverse.
    #[error("{0} does not use this kind of key")]
    WrongKind(SigningAlgorithm),
    /// The HMAC secret is shorter than 32 bytes.
    #[error("the secret is {0} bytes; at least 32 are required")]
    SecretTooShort(usize),
    /// The HMAC secret is shorter than its algorithm's hash output
    /// ([`SigningAlgorithm::min_secret_bytes`]).
    #[error("the secret is {1} bytes; {0} needs at least {min} (RFC 7518 section 3.2)", min = .0.min_secret_bytes().unwrap_or(MIN_SECRET_BYTES))]
    SecretTooShortFor(SigningAlgorithm, usize),
    /// The private key PEM could not be read as a key for the algorithm.
    #[error("the private key is not a PEM {0} private key")]
    PrivateKey(SigningAlgorithm),
    /// The public key PEM could not be read as a key for the algorithm.
    #[error("the public key is not a PEM {0} public key")]
    PublicKey(SigningAlgorithm),
    /// The public key is not the private key's other half.
    #[error("the public key does not match the private key")]
    Mismatch,
    /// RSA keys under 2048 bits are refused.
    #[error("the RSA key has {0} bits; at least 2048 are required")]
    RsaTooSmall(usize),
    /// The EC key is not on P-256.
    #[error("ES256 needs a P-256 key")]
    WrongCurve,
    /// A previous (verify-only) key is the current key.
    #[error("the previous key is the current key")]
    SameAsCurrent,
    /// The same previous key was given twice.
    #[error("the same previous key is listed twice")]
    DuplicatePrevious,
}

/// The key material of a service: how it signs and how it verifies.
///
/// One current key signs; previous keys (after a key rotation) only verify,
/// so the tokens they signed keep working until they expire. Every key has
/// a `kid`, which tokens carry in their header: for asymmetric keys the
/// RFC 7638 thumbprint of the public key, published in the JWKS; for HMAC
/// secrets an identifier derived with HKDF-SHA256, which reveals nothing
/// about the secret. Its `Debug` output names the algorithm and kids, never
/// key bytes.
///
/// ```
/// use auth_kit::token::{SigningAlgorithm, SigningKeys};
///
/// let retired = b"the-retired-secret-key-0123456789abcdef";
/// let keys = SigningKeys::hmac(SigningAlgorithm::HS256, b"the-current-secret-key-0123456789abcdef")
///     .unwrap()
///     .with_previous_hmac(retired)
///     .unwrap();
/// assert_eq!(keys.previous_kids().count(), 1);
/// assert_ne!(keys.kid(), keys.previous_kids().next().unwrap());
/// // The same key cannot be both.
/// assert!(SigningKeys::hmac(SigningAlgorithm::HS256, retired).unwrap().with_previous_hmac(retired).is_err());
/// ```
#[derive(Clone)]
pub struct SigningKeys {
    algorithm: SigningAlgorithm,
    encoding: EncodingKey,
    current: VerificationKey,
    previous: Vec<VerificationKey>,
}

/// A key that verifies: its id, the key, and (asymmetric) its public JWK.
#[derive(Clone)]
struct VerificationKey {
    kid: String,
    decoding: DecodingKey,
    public_jwk: Option<Jwk>,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("algorithm", &self.algorithm)
            .field("kid", &self.kid())
            .field("previous_kids", &self.previous_kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The shortest HMAC secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

impl SigningKeys {
    /// HMAC keys from a shared secret of at least 32 bytes, and at least
    /// the algorithm's hash size ([`SigningAlgorithm::min_secret_bytes`]).
    pub fn hmac(algorithm: SigningAlgorithm, secret: &[u8]) -> Result<Self, KeyError> {
        install_crypto_provider();
        if !algorithm.is_hmac() {
            return Err(KeyError::WrongKind(algorithm));
        }
        let current = hmac_verification_key(secret)?;
        check_hmac_length(algorithm, secret)?;
        let encoding =
            EncodingKey::from_secret(secret).map_err(|_| KeyError::SecretTooShort(secret.len()))?;
        Ok(Self {
            algorithm,
            encoding,
            current,
            previous: Vec::new(),
        })
    }

    /// HS256 keys from 256 fresh bits of OS randomness: for examples and
    /// tests that need a key for one run only.
    pub fn random_hmac() -> Self {
        let secret = hex::encode(crate::random::bytes::<32>());
        Self::hmac(SigningAlgorithm::HS256, secret.as_bytes())
            .expect("64 hex characters make a valid HMAC secret")
    }

    /// An asymmetric key pair from PEM (PKCS#8 or the algorithm's
    /// traditional form). The pair is checked to belong together by signing
    /// and verifying a probe, RSA keys must have at least 2048 bits, and ES256
    /// keys must be on P-256.
    pub fn from_pem(
        algorithm: SigningAlgorithm,
        private_pem: &[u8],
        public_pem: &[u8],
    ) -> Result<Self, KeyError> {
        install_crypto_provider();
        let encoding = match algorithm {
            SigningAlgorithm::RS256 => EncodingKey::from_rsa_pem(private_pem),
            SigningAlgorithm::ES256 => EncodingKey::from_ec_pem(private_pem),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_pem(private_pem),
            hmac => return Err(KeyError::WrongKind(hmac)),
        }
        .map_err(|_| KeyError::PrivateKey(algorithm))?;
        let current = public_verification_key(algorithm, public_pem)?;
        // The probe: a signature by the private key must verify with the public key.
        let probe = b"auth-kit key pair probe";
        let signature = jsonwebtoken::crypto::sign(probe, &encoding, algorithm.jwt())
            .map_err(|_| KeyError::PrivateKey(algorithm))?;
        if !jsonwebtoken::crypto::verify(&signature, probe, &current.decoding, algorithm.jwt())
            .unwrap_or(false)
        {
            return Err(KeyError::Mismatch);
        }
        Ok(Self {
            algorithm,
            encoding,
            current,
            previous: Vec::new(),
        })
    }

    /// Adds a retired HMAC secret (SECRET_KEY_PREVIOUS) that verifies tokens
    /// but never signs. The same rules as for the current secret apply; the
    /// current secret itself, or one added already, is refused.
    pub fn with_previous_hmac(self, secret: &[u8]) -> Result<Self, KeyError> {
        if !self.algorithm.is_hmac() {
            return Err(KeyError::WrongKind(self.algorithm));
        }
        let key = hmac_verification_key(secret)?;
        check_hmac_length(self.algorithm, secret)?;
        self.with_previous(key)
    }

    /// Adds a retired public key (one of JWT_PREVIOUS_PUBLIC_KEY_FILES, PEM)
    /// that verifies tokens but never signs, and is published in the JWKS.
    /// It must be a key for the configured algorithm, held to the same rules
    /// as the current one (RSA 2048 bits or more, ES256 on P-256), and not
    /// the current key.
    pub fn with_previous_public_pem(self, public_pem: &[u8]) -> Result<Self, KeyError> {
        if self.algorithm.is_hmac() {
            return Err(KeyError::WrongKind(self.algorithm));
        }
        let key = public_verification_key(self.algorithm, public_pem)?;
        self.with_previous(key)
    }

    fn with_previous(mut self, key: VerificationKey) -> Result<Self, KeyError> {
        if key.kid == self.current.kid {
            return Err(KeyError::SameAsCurrent);
        }
        if self.previous.iter().any(|p| p.kid == key.kid) {
            return Err(KeyError::DuplicatePrevious);
        }
        self.previous.push(key);
        Ok(self)
    }

    /// The configured algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The current (signing) key's id: the RFC 7638 thumbprint of the
    /// public key, or for HMAC an identifier derived from the secret.
    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The previous (verify-only) keys' ids.
    pub fn previous_kids(&self) -> impl Iterator<Item = &str> {
        self.previous.iter().map(|k| k.kid.as_str())
    }

    /// The JWKS document a service publishes at `/.well-known/jwks.json`:
    /// the current public key, then the previous ones. `None` for HMAC (a
    /// secret is never published).
    pub fn jwks(&self) -> Option<JwkSet> {
        let keys: Vec<Jwk> = std::iter::once(&self.current)
            .chain(&self.previous)
            .filter_map(|k| k.public_jwk.clone())
            .collect();
        (!keys.is_empty()).then_some(JwkSet { keys })
    }

    /// Every key that verifies, the current one first.
    fn verification_keys(&self) -> impl Iterator<Item = &VerificationKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

/// A verify-only HMAC key: at least 32 bytes, with its derived `kid`.
/// RFC 7518 section 3.2: an HMAC key at least as long as the hash (32, 48
/// and 64 bytes for HS256, HS384 and HS512).
fn check_hmac_length(algorithm: SigningAlgorithm, secret: &[u8]) -> Result<(), KeyError> {
    match algorithm.min_secret_bytes() {
        Some(min) if secret.len() < min => {
            Err(KeyError::SecretTooShortFor(algorithm, secret.len()))
        }
        _ => Ok(()),
    }
}

fn hmac_verification_key(secret: &[u8]) -> Result<VerificationKey, KeyError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeyError::SecretTooShort(secret.len()));
    }
    let decoding =
        DecodingKey::from_secret(secret).map_err(|_| KeyError::SecretTooShort(secret.len()))?;
    Ok(VerificationKey {
        kid: hmac_kid(secret),
        decoding,
        public_jwk: None,
    })
}

/// The `kid` of an HMAC secret: 128 bits of HKDF-SHA256 output under a
/// label of its own, base64url. A one-way function of the secret, so it
/// names the key without revealing anything about it (a token's own HMAC
/// already says more), and the same secret always gets the same id.
fn hmac_kid(secret: &[u8]) -> String {
    use base64::Engine as _;
    let mut id = [0u8; 16];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"auth-kit hmac key id"), secret)
        .expand(b"v1", &mut id)
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// A public key for `algorithm` from PEM, checked like a signing key's
/// (RSA size, curve), with its JWK and RFC 7638 thumbprint as `kid`.
fn public_verification_key(
    algorithm: SigningAlgorithm,
    public_pem: &[u8],
) -> Result<VerificationKey, KeyError> {
    let decoding = match algorithm {
        SigningAlgorithm::RS256 => DecodingKey::from_rsa_pem(public_pem),
        SigningAlgorithm::ES256 => DecodingKey::from_ec_pem(public_pem),
        SigningAlgorithm::EdDSA => DecodingKey::from_ed_pem(public_pem),
        hmac => return Err(KeyError::WrongKind(hmac)),
    }
    .map_err(|_| KeyError::PublicKey(algorithm))?;
    let mut jwk = Jwk::from_decoding_key(&decoding, Some(algorithm.jwt()))
        .map_err(|_| KeyError::PublicKey(algorithm))?;
    match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(rsa) => {
            let bits = base64_len(&rsa.n) * 8;
            if bits < 2048 {
                return Err(KeyError::RsaTooSmall(bits));
            }
        }
        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(ec)
            if ec.curve != jsonwebtoken::jwk::EllipticCurve::P256 =>
        {
            return Err(KeyError::WrongCurve);
        }
        _ => {}
    }
    let kid = jwk
        .thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| KeyError::PublicKey(algorithm))?;
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(VerificationKey {
        kid,
        decoding,
        public_jwk: Some(jwk),
    })
}

/// Decoded length of an unpadded base64url string.
fn base64_len(b64: &str) -> usize {
    b64.trim_end_matches('=').len() * 3 / 4
}

/// The clock leeway allowed on `exp` and `nbf`: at most 60 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leeway(u64);

impl Leeway {
    /// The largest leeway accepted.
    pub const MAX_SECONDS: u64 = 60;

    /// `None` above [`Leeway::MAX_SECONDS`].
    pub fn seconds(seconds: u64) -> Option<Self> {
        (seconds <= Self::MAX_SECONDS).then_some(Self(seconds))
    }

    /// The leeway in seconds.
    pub fn as_secs(self) -> u64 {
        self.0
    }
}

/// Who tokens are issued by and for, and how much clock skew is tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    issuer: String,
    audience: String,
    leeway: Leeway,
}

impl ClaimRules {
    /// `iss` and `aud` are always issued and always checked.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, leeway: Leeway) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway,
        }
    }

    /// The `iss` value.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` value.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// jsonwebtoken's validation for exactly one algorithm with these rules.
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        v.validate_aud = true;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v
    }
}

/// What an access token grants.
#[derive(Debug, Clone, Copy)]
pub struct AccessGrant<'a> {
    /// The user's id (`sub`, as a decimal string).
    pub user_id: i64,
    /// The space-separated scopes (RFC 9068); `None` issues no `scope` claim
    /// (services without scopes).
    pub scope: Option<&'a str>,
    /// The login (session) the token belongs to (`sid`).
    pub login_id: Option<&'a str>,
}

/// A signed access token. `Debug` hides the token.
#[derive(Clone)]
pub struct AccessToken {
    token: String,
    /// Seconds until it expires.
    pub expires_in: u64,
}

impl AccessToken {
    /// The compact JWT.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// The compact JWT, by value.
    pub fn into_string(self) -> String {
        self.token
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// The claims of our access tokens (docs/contract.md, "Tokens"; RFC 9068).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user id, as a decimal string.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience: one string, or a list containing ours.
    pub aud: Audience,
    /// Expiry (NumericDate).
    #[serde(deserialize_with = "numeric_date")]
    pub exp: u64,
    /// Issued at (NumericDate).
    #[serde(deserialize_with = "numeric_date")]
    pub iat: u64,
    /// Not before (NumericDate), honoured when present.
    #[serde(
        default,
        deserialize_with = "optional_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<u64>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Space-separated scopes; absent means no scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The login (session) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// The `aud` claim: a string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

/// A NumericDate: a JSON number (RFC 7519 section 2), never a string.
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-negative number of seconds")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("negative NumericDate"))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            if v.is_finite() && (0.0..9.0e15).contains(&v) {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(v.floor() as u64)
            } else {
                Err(E::custom("NumericDate out of range"))
            }
        }
    }
    d.deserialize_any(Visitor)
}

fn optional_numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d).map(Some)
}

/// Why a bearer token was refused. `Display` is the `error_description`
/// sent to the client: specific enough to act on, never key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidToken {
    /// Not three base64url segments of JSON, or an empty token.
    #[error("The access token is malformed")]
    Malformed,
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("The access token is too long")]
    TooLong,
    /// `exp` is past (beyond the leeway).
    #[error("The access token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("The access token is not valid yet")]
    NotYetValid,
    /// The signature does not verify with our key.
    #[error("The access token signature is invalid")]
    BadSignature,
    /// The header names an algorithm other than the configured one.
    #[error("The access token algorithm is not accepted")]
    WrongAlgorithm,
    /// `iss` or `aud` name another service.
    #[error("The access token was issued for another service")]
    WrongIssuerOrAudience,
    /// The header `typ` is not `at+jwt`.
    #[error("The token is not an access token")]
    WrongType,
    /// A required claim is missing or has the wrong type.
    #[error("The access token claims are invalid")]
    InvalidClaims,
    /// The `kid` names no key we know.
    #[error("The access token was signed with an unknown key")]
    UnknownKey,
    /// The user it was issued to no longer exists.
    #[error("The access token's user does not exist")]
    UnknownUser,
    /// Its login was logged out or revoked.
    #[error("The access token has been revoked")]
    Revoked,
    /// The identity provider that issued it refused it when asked (remote
    /// verification with a hosted identity provider: expired, revoked,
    /// malformed, ...).
    #[error("The access token was rejected by its issuer")]
    RejectedByIssuer,
}

/// Signs access tokens. Holds the private key; keep it out of handlers that
/// only verify.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    keys: Arc<SigningKeys>,
    header: Header,
    rules: ClaimRules,
    ttl_seconds: u64,
    clock: Clock,
}

/// Signing failed (only possible with a broken key).
#[derive(Debug, thiserror::Error)]
#[error("could not sign the access token")]
pub struct SignError(#[source] jsonwebtoken::errors::Error);

impl TokenIssuer {
    /// Issues tokens valid for `ttl`, with `iss`/`aud` from `rules`.
    pub fn new(keys: Arc<SigningKeys>, rules: ClaimRules, ttl: Duration, clock: Clock) -> Self {
        let mut header = Header::new(keys.algorithm.jwt());
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(keys.kid().to_owned());
        Self {
            keys,
            header,
            rules,
            ttl_seconds: ttl.as_secs(),
            clock,
        }
    }

    /// Seconds an access token lives.
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// Signs a token for `grant`, with a fresh `jti`.
    pub fn issue(&self, grant: &AccessGrant<'_>) -> Result<AccessToken, SignError> {
        let now = u64::try_from(self.clock.now()).unwrap_or(0);
        let claims = AccessClaims {
            sub: grant.user_id.to_string(),
            iss: self.rules.issuer.clone(),
            aud: Audience::One(self.rules.audience.clone()),
            exp: now + self.ttl_seconds,
            iat: now,
            nbf: None,
            jti: Some(hex::encode(crate::random::bytes::<16>())),
            scope: grant.scope.map(str::to_owned),
            sid: grant.login_id.map(str::to_owned),
        };
        let token =
            jsonwebtoken::encode(&self.header, &claims, &self.keys.encoding).map_err(SignError)?;
        Ok(AccessToken {
            token,
            expires_in: self.ttl_seconds,
        })
    }
}

/// A verified access token: who it is for and what it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccess {
    /// The user id from `sub`.
    pub user_id: i64,
    scope: String,
    login_id: Option<String>,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

impl VerifiedAccess {
    /// The `scope` claim (empty when absent).
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The login (`sid`) the token belongs to, if it names one.
    pub fn login_id(&self) -> Option<&str> {
        self.login_id.as_deref()
    }

    /// Whether the token's scope claim holds every scope in `required`.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        claim_holds_all(&self.scope, required)
    }
}

/// Verifies our access tokens: one algorithm, fixed claim rules, and the
/// key the token's `kid` names (the current key, or a previous one after a
/// rotation). A token without `kid`, as issued before tokens carried one,
/// is verified with the current key; a `kid` we do not know is refused
/// without trying any key.
#[derive(Clone)]
pub struct AccessTokenVerifier {
    algorithm: Algorithm,
    /// `(kid, key)`, the current key first.
    keys: Vec<(String, DecodingKey)>,
    validation: Validation,
}

impl fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessTokenVerifier")
            .field("algorithms", &self.validation.algorithms)
            .field(
                "kids",
                &self.keys.iter().map(|(kid, _)| kid).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AccessTokenVerifier {
    /// A verifier pinned to `keys`' algorithm, with its current and previous keys.
    pub fn new(keys: &SigningKeys, rules: ClaimRules) -> Self {
        install_crypto_provider();
        Self {
            algorithm: keys.algorithm.jwt(),
            keys: keys
                .verification_keys()
                .map(|k| (k.kid.clone(), k.decoding.clone()))
                .collect(),
            validation: rules.validation(keys.algorithm.jwt()),
        }
    }

    /// Verifies signature, algorithm, type and claims.
    pub fn verify(&self, token: &str) -> Result<VerifiedAccess, InvalidToken> {
        if token.is_empty() {
            return Err(InvalidToken::Malformed);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::TooLong);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| classify(token, e.kind()))?;
        if header.alg != self.algorithm {
            return Err(InvalidToken::WrongAlgorithm);
        }
        let key = match header.kid.as_deref() {
            None => &self.keys[0].1,
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k == kid)
                .map(|(_, key)| key)
                .ok_or(InvalidToken::UnknownKey)?,
        };
        let (header, claims) = decode_checked::<AccessClaims>(token, key, &self.validation)?;
        if !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(InvalidToken::WrongType);
        }
        let user_id = parse_user_id(&claims.sub).ok_or(InvalidToken::InvalidClaims)?;
        Ok(VerifiedAccess {
            user_id,
            scope: claims.scope.unwrap_or_default(),
            login_id: claims.sid,
            expires_at: claims.exp,
        })
    }
}

/// RFC 9068 section 4: `at+jwt`, or its full media type, ignoring case.
fn is_access_token_type(typ: &str) -> bool {
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE) || typ.eq_ignore_ascii_case("application/at+jwt")
}

/// `sub` must be a positive decimal id that fits in an i64.
fn parse_user_id(sub: &str) -> Option<i64> {
    if sub.is_empty() || sub.len() > 18 || !sub.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    sub.parse::<i64>().ok().filter(|id| *id > 0)
}

/// jsonwebtoken's `decode` with our length limit and error mapping.
fn decode_checked<C: DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    validation: &Validation,
) -> Result<(Header, C), InvalidToken> {
    if token.is_empty() {
        return Err(InvalidToken::Malformed);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(InvalidToken::TooLong);
    }
    match jsonwebtoken::decode::<C>(token, key, validation) {
        Ok(data) => Ok((data.header, data.claims)),
        Err(e) => Err(classify(token, e.kind())),
    }
}

/// Maps a jsonwebtoken failure to the reason we report. Runs only on the
/// failure path, so the extra header look for JSON errors costs valid
/// tokens nothing.
pub fn classify(token: &str, kind: &ErrorKind) -> InvalidToken {
    match kind {
        ErrorKind::ExpiredSignature => InvalidToken::Expired,
        ErrorKind::ImmatureSignature => InvalidToken::NotYetValid,
        ErrorKind::InvalidSignature => InvalidToken::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => InvalidToken::WrongAlgorithm,
        ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
            InvalidToken::WrongIssuerOrAudience
        }
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => InvalidToken::InvalidClaims,
        ErrorKind::Json(_) => json_failure(token),
        _ => InvalidToken::Malformed,
    }
}

/// A JSON failure is in the header (an algorithm jsonwebtoken does not know,
/// such as `none`, or a broken header) or in the claims (a wrong type).
fn json_failure(token: &str) -> InvalidToken {
    use base64::Engine as _;
    let header_json = token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
    match header_json {
        Some(header) => match header.get("alg").and_then(|a| a.as_str()) {
            Some(alg) if alg.parse::<Algorithm>().is_ok() => InvalidToken::InvalidClaims,
            Some(_) => InvalidToken::WrongAlgorithm,
            None => InvalidToken::Malformed,
        },
        None => InvalidToken::Malformed,
    }
}

/// A set of verification keys published as a JWKS, looked up by `kid`.
///
/// Only asymmetric keys with a `kid` are kept: an `oct` (shared secret) key
/// in a JWKS would let anyone who can read the JWKS sign tokens, so it is
/// ignored. Each key is pinned to one algorithm (its `alg`, or the one its
/// type implies), and a token must name that algorithm.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<(String, SigningAlgorithm, DecodingKey)>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(kid, alg, _)| (kid, alg)))
            .finish()
    }
}

/// Why a token did not verify against a [`KeySet`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySetError {
    /// The token's `kid` is not in the set: the caller may refetch the JWKS.
    #[error("unknown key id")]
    UnknownKid,
    /// Any other failure.
    #[error(transparent)]
    Invalid(#[from] InvalidToken),
}

impl KeySet {
    /// The usable keys of `jwks` among `allowed` algorithms.
    pub fn from_jwks(jwks: &JwkSet, allowed: &[SigningAlgorithm]) -> Self {
        install_crypto_provider();
        let keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| {
                let kid = jwk.common.key_id.clone()?;
                let algorithm = jwk_algorithm(jwk)?;
                if !allowed.contains(&algorithm) || algorithm.is_hmac() {
                    return None;
                }
                let key = DecodingKey::from_jwk(jwk).ok()?;
                Some((kid, algorithm, key))
            })
            .collect();
        Self { keys }
    }

    /// How many usable keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no usable key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the set has a key with this id.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _, _)| k == kid)
    }

    /// Verifies `token` with the key its `kid` names, pinned to that key's
    /// algorithm, and checks the claims against `rules`.
    pub fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
        rules: &ClaimRules,
    ) -> Result<C, KeySetError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(InvalidToken::TooLong.into());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| classify(token, e.kind()))?;
        let kid = header.kid.as_deref().ok_or(InvalidToken::UnknownKey)?;
        let (_, algorithm, key) = self
            .keys
            .iter()
            .find(|(k, _, _)| k == kid)
            .ok_or(KeySetError::UnknownKid)?;
        if SigningAlgorithm::from_jwt(header.alg) != Some(*algorithm) {
            return Err(InvalidToken::WrongAlgorithm.into());
        }
        let (_, claims) = decode_checked::<C>(token, key, &rules.validation(algorithm.jwt()))?;
        Ok(claims)
    }
}

/// Verifies a token with a shared HMAC secret (an identity provider's legacy HS256 tokens):
/// the algorithm is pinned to HS256 and the claims checked against `rules`.
pub fn verify_hs256<C: DeserializeOwned>(
    token: &str,
    secret: &[u8],
    rules: &ClaimRules,
) -> Result<C, InvalidToken> {
    install_crypto_provider();
    let key = DecodingKey::from_secret(secret).map_err(|_| InvalidToken::BadSignature)?;
    decode_checked::<C>(token, &key, &rules.validation(Algorithm::HS256)).map(|(_, c)| c)
}

/// The algorithm a JWK is for: its `alg`, or the one its key type implies.
fn jwk_algorithm(jwk: &Jwk) -> Option<SigningAlgorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters as P, EllipticCurve, KeyAlgorithm as K};
    let implied = match &jwk.algorithm {
        P::RSA(_) => SigningAlgorithm::RS256,
        P::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => SigningAlgorithm::ES256,
        P::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => SigningAlgorithm::EdDSA,
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        Some(K::RS256) if implied == SigningAlgorithm::RS256 => Some(implied),
        Some(K::ES256) if implied == SigningAlgorithm::ES256 => Some(implied),
        Some(K::EdDSA) if implied == SigningAlgorithm::EdDSA => Some(implied),
        Some(_) => None,
    }
}
