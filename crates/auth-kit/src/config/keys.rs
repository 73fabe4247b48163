//! Signing keys and secrets: SECRET_KEY (and its previous value during a
//! rotation), the key files of the asymmetric algorithms, ALGORITHM,
//! TOKEN_LEEWAY_SECONDS and REFRESH_TOKEN_REUSE_SECONDS.

use std::collections::BTreeSet;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::refresh::ReuseWindow;
use crate::token::{KeyError, Leeway, MIN_SECRET_BYTES, SigningAlgorithm, SigningKeys};

use super::{ConfigError, ConfigErrorKind, Environment, Finding, Report, catalog, truncate};

/// Placeholders refused as SECRET_KEY, compared ignoring
/// case and surrounding space.
pub const PLACEHOLDER_SECRETS: &[&str] = &[
    "your_secret_key_here",
    "your-secret-key",
    "changeme",
    "change-me",
    "secret",
    "secret_key",
    "supersecret",
    "password",
];

/// Keys printed in widely copied documentation, refused like the
/// placeholders: they pass every length and variety rule, yet anyone can
/// sign tokens with them. Each with where it comes from.
pub const PUBLISHED_SECRETS: &[(&str, &str)] = &[
    (
        "09d25e094faa6ca2556c818166b7a9563b93f7099f6f0f4caa6cf63b88e8d3e7",
        "the example key of FastAPI's JWT tutorial",
    ),
    (
        "a-string-secret-at-least-256-bits-long",
        "the example key of the jwt.io debugger",
    ),
];

/// Fewest distinct characters a SECRET_KEY must have.
pub const MIN_SECRET_DISTINCT_CHARS: usize = 8;

/// How to get a good key, quoted by every SECRET_KEY error.
pub const SECRET_KEY_FIX: &str = "generate one with `cargo auth setup-jwt` (or `openssl rand -hex 32`) and set SECRET_KEY to it in the environment or .env";

/// REFRESH_TOKEN_REUSE_SECONDS: 0 (off) to 60, default 10.
pub(super) fn refresh_reuse(env: &Environment) -> Result<ReuseWindow, ConfigError> {
    let seconds = catalog::REFRESH_TOKEN_REUSE_SECONDS.number(env)?;
    ReuseWindow::seconds(seconds).ok_or_else(|| {
        ConfigError::new(
            catalog::REFRESH_TOKEN_REUSE_SECONDS.name,
            ConfigErrorKind::OutOfRange,
            "REFRESH_TOKEN_REUSE_SECONDS is out of range",
            "set it from 0 (off) to 60",
        )
    })
}

/// JWT_LEEWAY_SECONDS: 0 to 60, default 30.
pub fn leeway(env: &Environment) -> Result<Leeway, ConfigError> {
    let seconds = catalog::JWT_LEEWAY_SECONDS.number(env)?;
    Leeway::seconds(seconds).ok_or_else(|| {
        ConfigError::new(
            catalog::JWT_LEEWAY_SECONDS.name,
            ConfigErrorKind::OutOfRange,
            "JWT_LEEWAY_SECONDS is out of range",
            "set it from 0 to 60",
        )
    })
}

/// The configured algorithm (default HS256).
pub fn algorithm(env: &Environment) -> Result<SigningAlgorithm, ConfigError> {
    let Some(raw) = env.get(catalog::ALGORITHM.name) else {
        return Ok(SigningAlgorithm::HS256);
    };
    raw.trim().parse::<SigningAlgorithm>().map_err(|e| {
        let choices: Vec<&str> = SigningAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
        ConfigError::new(
            catalog::ALGORITHM.name,
            ConfigErrorKind::Invalid,
            format!("ALGORITHM={} is not supported", e.0),
            format!("set ALGORITHM to one of {}", choices.join(", ")),
        )
    })
}

/// What a SECRET_KEY that passed the checks looks like (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretStrength {
    /// Length in bytes.
    pub bytes: usize,
    /// A rough estimate: length times log2 of the distinct characters used.
    pub entropy_bits: u32,
}

/// The rules for SECRET_KEY, which is used as its UTF-8 bytes.
pub fn secret_key(raw: Option<&str>) -> Result<SecretStrength, ConfigError> {
    check_secret(catalog::SECRET_KEY.name, raw)
}

/// The rules for an HMAC secret in `var` (SECRET_KEY, or the retired key in
/// SECRET_KEY_PREVIOUS: a weak key must not verify tokens either).
pub(super) fn check_secret(var: &str, raw: Option<&str>) -> Result<SecretStrength, ConfigError> {
    let fix = if var == catalog::SECRET_KEY.name {
        SECRET_KEY_FIX
    } else {
        PREVIOUS_SECRET_FIX
    };
    let weak = |problem: String| ConfigError::new(var, ConfigErrorKind::WeakSecret, problem, fix);
    let Some(raw) = raw else {
        return Err(ConfigError::new(
            var,
            ConfigErrorKind::Missing,
            format!("{var} is not set"),
            fix,
        ));
    };
    let normalized = raw.trim().to_ascii_lowercase();
    if PLACEHOLDER_SECRETS.contains(&normalized.as_str()) {
        return Err(weak(format!("{var} is a known placeholder value")));
    }
    if let Some((_, source)) = PUBLISHED_SECRETS.iter().find(|(key, _)| *key == normalized) {
        return Err(weak(format!(
            "{var} is {source}: it is published, so anyone can sign tokens with it"
        )));
    }
    if raw.len() < MIN_SECRET_BYTES {
        return Err(weak(format!(
            "{var} is only {} bytes, at least {MIN_SECRET_BYTES} are required",
            raw.len()
        )));
    }
    let distinct: BTreeSet<char> = raw.chars().collect();
    if distinct.len() < MIN_SECRET_DISTINCT_CHARS {
        return Err(weak(format!(
            "{var} has only {} distinct characters, at least {MIN_SECRET_DISTINCT_CHARS} are required",
            distinct.len()
        )));
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let entropy_bits = (raw.chars().count() as f64 * (distinct.len() as f64).log2()) as u32;
    Ok(SecretStrength {
        bytes: raw.len(),
        entropy_bits,
    })
}

/// How to fix a refused SECRET_KEY_PREVIOUS.
const PREVIOUS_SECRET_FIX: &str = "SECRET_KEY_PREVIOUS is the key SECRET_KEY had before `cargo auth setup-jwt --rotate`; a weak key must not verify tokens either: remove SECRET_KEY_PREVIOUS (tokens it signed stop working, their users log in again)";

/// A previous key refused by [`SigningKeys`], as the variable's error.
pub(super) fn previous_key_error(var: &str, current: &str, e: &KeyError) -> ConfigError {
    let problem = match e {
        KeyError::SameAsCurrent => format!("{var} is the current key ({current})"),
        KeyError::DuplicatePrevious => format!("{var} lists the same key twice"),
        other => format!("{var}: {other}"),
    };
    ConfigError::new(
        var,
        ConfigErrorKind::KeyFile,
        problem,
        format!(
            "{var} holds the key {current} had before `cargo auth setup-jwt --rotate`: remove it, or set it to the retired key"
        ),
    )
}

/// Adds the public keys listed in JWT_PREVIOUS_PUBLIC_KEY_FILES (comma-separated PEM files).
pub(super) fn previous_key_files(
    mut keys: SigningKeys,
    alg: SigningAlgorithm,
    files: &str,
) -> Result<SigningKeys, ConfigError> {
    const VAR: &str = catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name;
    let fix = format!(
        "list the {alg} public key files retired by `cargo auth setup-jwt --rotate`, comma-separated, or remove {VAR}"
    );
    for path in files.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let pem = std::fs::read(path).map_err(|e| {
            ConfigError::new(
                VAR,
                ConfigErrorKind::KeyFile,
                format!("{VAR}: {path} cannot be read ({e})"),
                fix.clone(),
            )
        })?;
        keys = keys.with_previous_public_pem(&pem).map_err(|e| match e {
            KeyError::SameAsCurrent | KeyError::DuplicatePrevious => {
                let mut error = previous_key_error(VAR, catalog::JWT_PUBLIC_KEY_FILE.name, &e);
                error.problem = format!("{VAR}: {path} is the current public key or listed twice");
                error
            }
            other => ConfigError::new(
                VAR,
                ConfigErrorKind::KeyFile,
                format!("{VAR}: {path}: {other}"),
                fix.clone(),
            ),
        })?;
    }
    Ok(keys)
}

/// JWT_KEY_ROTATED_AT, written by `cargo auth setup-jwt --rotate`: when
/// the previous key stopped signing. With it, the report says when the
/// previous key may be dropped: once every token it signed has expired,
/// `lifetime` (the access-token lifetime and the leeway) after the rotation.
pub(super) fn check_key_rotation(
    env: &Environment,
    report: &mut Report,
    lifetime: Duration,
    now: i64,
) -> Result<(), ConfigError> {
    const VAR: &str = catalog::JWT_KEY_ROTATED_AT.name;
    let previous = [
        catalog::SECRET_KEY_PREVIOUS.name,
        catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name,
    ]
    .into_iter()
    .find(|v| env.get(v).is_some());
    let rotated_at = match env.get(VAR) {
        None => None,
        Some(raw) => Some(crate::clock::parse_rfc3339(raw.trim()).ok_or_else(|| {
            ConfigError::new(
                VAR,
                ConfigErrorKind::Invalid,
                format!("{VAR}={:?} is not an RFC 3339 time", truncate(raw)),
                "set it to when the key was rotated, e.g. 2026-12-01T10:00:00Z (`cargo auth setup-jwt --rotate` writes it), or remove it",
            )
        })?),
    };
    let minutes = lifetime.as_secs().div_ceil(60);
    match (previous, rotated_at) {
        (None, None) => {}
        (None, Some(_)) => report.push(Finding::warn(
            VAR,
            "set, but no previous key is (SECRET_KEY_PREVIOUS, JWT_PREVIOUS_PUBLIC_KEY_FILES)",
            format!("remove {VAR}: it dates the previous key, which is gone"),
        )),
        (Some(var), None) => report.push(Finding::warn(
            var,
            format!("when the key was retired is unknown ({VAR} unset): validate cannot tell when {var} may be dropped"),
            format!(
                "drop {var} once every token it signed has expired: {minutes} minutes (the access-token lifetime and leeway) after every instance runs the new key; set {VAR} to that moment, as `cargo auth setup-jwt --rotate` does"
            ),
        )),
        (Some(var), Some(at)) => {
            let until = at.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
            if now >= until {
                report.push(Finding::warn(
                    var,
                    format!(
                        "can be dropped: retired at {} ({VAR}), more than the access-token lifetime and leeway ({minutes} minutes) ago, so every token it signed has expired (if every instance has run the new key since then)",
                        crate::clock::rfc3339(at)
                    ),
                    format!("remove {var} and {VAR} from the configuration, then restart"),
                ));
            } else {
                report.push(Finding::pass(
                    VAR,
                    format!(
                        "{var} retired at {}; the tokens it signed expire by {}: keep it until then",
                        crate::clock::rfc3339(at),
                        crate::clock::rfc3339(until)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The one length rule an HMAC secret in `variable` (SECRET_KEY, or a
/// retired key kept for verification) must meet for `alg` on top of
/// [`secret_key`]'s: at least the hash's output size (RFC 7518 section 3.2:
/// 32, 48 and 64 bytes for HS256, HS384 and HS512). Asymmetric algorithms
/// take no secret: always `Ok`.
pub fn secret_length_for(
    variable: &str,
    alg: SigningAlgorithm,
    raw: &str,
) -> Result<(), ConfigError> {
    match alg.min_secret_bytes() {
        Some(min) if raw.len() < min => Err(ConfigError::new(
            variable,
            ConfigErrorKind::WeakSecret,
            format!(
                "{variable} is {} bytes, but ALGORITHM={alg} needs at least {min} (RFC 7518 section 3.2: a key as long as the hash)",
                raw.len()
            ),
            format!(
                "generate a longer key with `cargo auth setup-jwt --force` (64 characters) or `openssl rand -hex {}`, or set ALGORITHM=HS256",
                min.div_ceil(2)
            ),
        )),
        _ => Ok(()),
    }
}

/// Reads and checks JWT_PRIVATE_KEY_FILE / JWT_PUBLIC_KEY_FILE for `alg`.
pub fn key_files(env: &Environment, alg: SigningAlgorithm) -> Result<SigningKeys, ConfigError> {
    let fix = format!(
        "generate a key pair with `cargo auth setup-jwt --algorithm {alg}` and set JWT_PRIVATE_KEY_FILE and JWT_PUBLIC_KEY_FILE, or use ALGORITHM=HS256"
    );
    let read = |var: &str| -> Result<Vec<u8>, ConfigError> {
        let path = env.get(var).ok_or_else(|| {
            ConfigError::new(
                var,
                ConfigErrorKind::Missing,
                format!("ALGORITHM={alg} needs {var} (a PEM file)"),
                fix.clone(),
            )
        })?;
        std::fs::read(path).map_err(|e| {
            ConfigError::new(
                var,
                ConfigErrorKind::KeyFile,
                format!("{var}={path} cannot be read ({e})"),
                fix.clone(),
            )
        })
    };
    let private = Zeroizing::new(read(catalog::JWT_PRIVATE_KEY_FILE.name)?);
    let public = read(catalog::JWT_PUBLIC_KEY_FILE.name)?;
    SigningKeys::from_pem(alg, &private, &public).map_err(|e| {
        let var = if matches!(e, KeyError::PublicKey(_)) {
            catalog::JWT_PUBLIC_KEY_FILE.name
        } else {
            catalog::JWT_PRIVATE_KEY_FILE.name
        };
        ConfigError::new(
            var,
            ConfigErrorKind::KeyFile,
            format!("{var}: {e}"),
            fix.clone(),
        )
    })
}

/// The signing and verification keys ALGORITHM calls for, each setting
/// reported: SECRET_KEY (and SECRET_KEY_PREVIOUS) for HMAC, the key files
/// (and JWT_PREVIOUS_PUBLIC_KEY_FILES) otherwise.
pub(super) fn read_signing_keys(
    env: &Environment,
    alg: SigningAlgorithm,
    report: &mut Report,
) -> Option<SigningKeys> {
    if alg.is_hmac() {
        read_hmac_keys(env, alg, report)
    } else {
        read_key_pair(env, alg, report)
    }
}

fn read_hmac_keys(
    env: &Environment,
    alg: SigningAlgorithm,
    report: &mut Report,
) -> Option<SigningKeys> {
    if env.get(catalog::JWT_PRIVATE_KEY_FILE.name).is_some()
        || env.get(catalog::JWT_PUBLIC_KEY_FILE.name).is_some()
    {
        report.push(Finding::warn(
            catalog::JWT_PRIVATE_KEY_FILE.name,
            format!(
                "key files are set but ALGORITHM={alg} signs with SECRET_KEY; they are ignored"
            ),
            "remove the key file settings, or set ALGORITHM to RS256, ES256 or EdDSA",
        ));
    }
    let raw = env.get(catalog::SECRET_KEY.name);
    let checked = secret_key(raw).and_then(|strength| {
        secret_length_for(catalog::SECRET_KEY.name, alg, raw.unwrap_or_default()).map(|()| strength)
    });
    let secret = report.take(checked, |s| {
        Finding::pass(
            catalog::SECRET_KEY.name,
            format!(
                "{} bytes, about {} bits of entropy",
                s.bytes, s.entropy_bits
            ),
        )
    });
    if let Some(strength) = &secret
        && strength.entropy_bits < 128
    {
        report.push(Finding::warn(
            catalog::SECRET_KEY.name,
            format!(
                "only about {} bits of entropy (repetitive characters)",
                strength.entropy_bits
            ),
            SECRET_KEY_FIX,
        ));
    }
    if env
        .get(catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name)
        .is_some()
    {
        report.refuse(ConfigError::new(
            catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name,
            ConfigErrorKind::Invalid,
            format!(
                "JWT_PREVIOUS_PUBLIC_KEY_FILES is set but ALGORITHM={alg} verifies with SECRET_KEY and SECRET_KEY_PREVIOUS"
            ),
            "remove JWT_PREVIOUS_PUBLIC_KEY_FILES: keys rotate within one algorithm (changing the algorithm logs everyone out)",
        ));
    }
    let current = secret.and_then(|_| {
        let raw = env.get(catalog::SECRET_KEY.name).unwrap_or_default();
        // The checks above make this succeed; should they ever miss a case,
        // the key's own refusal is reported, not dropped.
        let keys = SigningKeys::hmac(alg, raw.as_bytes()).map_err(|e| {
            ConfigError::new(
                catalog::SECRET_KEY.name,
                ConfigErrorKind::Invalid,
                format!("SECRET_KEY cannot sign {alg} tokens: {e}"),
                SECRET_KEY_FIX,
            )
        });
        keys.map_err(|e| report.refuse(e)).ok()
    });
    match env.get(catalog::SECRET_KEY_PREVIOUS.name) {
        None => current,
        Some(raw) => read_previous_secret(alg, raw, current, report),
    }
}

/// SECRET_KEY_PREVIOUS, held to SECRET_KEY's rules, then added to the
/// current keys (when there are any) to verify what they signed before.
fn read_previous_secret(
    alg: SigningAlgorithm,
    raw: &str,
    current: Option<SigningKeys>,
    report: &mut Report,
) -> Option<SigningKeys> {
    let checked = check_secret(catalog::SECRET_KEY_PREVIOUS.name, Some(raw))
        .and_then(|strength| {
            secret_length_for(catalog::SECRET_KEY_PREVIOUS.name, alg, raw).map(|()| strength)
        })
        .and_then(|strength| match current {
            Some(keys) => keys
                .with_previous_hmac(raw.as_bytes())
                .map(|keys| (strength, Some(keys)))
                .map_err(|e| {
                    previous_key_error(
                        catalog::SECRET_KEY_PREVIOUS.name,
                        catalog::SECRET_KEY.name,
                        &e,
                    )
                }),
            None => Ok((strength, None)),
        });
    report
        .take(checked, |(strength, keys)| {
            let kid = keys
                .as_ref()
                .and_then(|k| k.previous_kids().next())
                .map(|kid| format!(", kid {kid}"))
                .unwrap_or_default();
            Finding::pass(
                catalog::SECRET_KEY_PREVIOUS.name,
                format!(
                    "{} bytes, about {} bits of entropy{kid}: verifies tokens signed before the rotation, never signs",
                    strength.bytes, strength.entropy_bits
                ),
            )
        })
        .and_then(|(_, keys)| keys)
}

fn read_key_pair(
    env: &Environment,
    alg: SigningAlgorithm,
    report: &mut Report,
) -> Option<SigningKeys> {
    if env.get(catalog::SECRET_KEY.name).is_some() {
        report.push(Finding::warn(
            catalog::SECRET_KEY.name,
            format!("set but not used: ALGORITHM={alg} signs with JWT_PRIVATE_KEY_FILE"),
            "remove SECRET_KEY, so nobody mistakes it for the signing key",
        ));
    }
    if env.get(catalog::SECRET_KEY_PREVIOUS.name).is_some() {
        report.refuse(ConfigError::new(
            catalog::SECRET_KEY_PREVIOUS.name,
            ConfigErrorKind::Invalid,
            format!(
                "SECRET_KEY_PREVIOUS is set but ALGORITHM={alg} verifies with public keys (JWT_PREVIOUS_PUBLIC_KEY_FILES)"
            ),
            "remove SECRET_KEY_PREVIOUS: keys rotate within one algorithm (changing the algorithm logs everyone out)",
        ));
    }
    let keys = report.take(key_files(env, alg), |k| {
        Finding::pass(
            catalog::JWT_PRIVATE_KEY_FILE.name,
            format!("{alg} key pair, kid {}", k.kid()),
        )
    });
    match env.get(catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name) {
        Some(files) => keys.and_then(|keys| {
            report.take(previous_key_files(keys, alg, files), |k| {
                let kids: Vec<&str> = k.previous_kids().collect();
                Finding::pass(
                    catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name,
                    format!(
                        "{} previous {alg} public key(s), kid {}: verify tokens signed before the rotation, never sign; published in the JWKS",
                        kids.len(),
                        kids.join(", ")
                    ),
                )
            })
        }),
        None => keys,
    }
}
