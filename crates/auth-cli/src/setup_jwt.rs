//! `cargo auth setup-jwt [--env-file PATH] [--force] [--algorithm ALG]`
//! `cargo auth setup-jwt --rotate [--env-file PATH] [--force]`
//!
//! Writes the signing settings into an env file (default `.env`):
//! - HS256, HS384, HS512: a fresh SECRET_KEY of 256 bits from the operating
//!   system (64 hex characters), ALGORITHM, ACCESS_TOKEN_EXPIRE_MINUTES;
//! - RS256, ES256, EdDSA: a fresh key pair (PKCS#8 private key, SPKI public
//!   key, PEM) in files next to the env file, checked to load with
//!   `SigningKeys::from_pem`, and ALGORITHM, JWT_PRIVATE_KEY_FILE,
//!   JWT_PUBLIC_KEY_FILE, ACCESS_TOKEN_EXPIRE_MINUTES.
//!
//! Every other line of the env file is kept byte for byte: settings are
//! replaced in place and missing ones appended. An env file that already
//! holds a signing key (SECRET_KEY or JWT_PRIVATE_KEY_FILE) is only changed
//! with `--force`, since tokens signed with the old key stop working. Files
//! are written atomically (a temporary file in the same folder, fsync,
//! rename) with mode 0600. Keys are never printed.
//!
//! `--rotate` changes the key without logging anyone out: the current key
//! moves to the previous slot, where it still verifies but never signs
//! (SECRET_KEY_PREVIOUS; for key pairs, the public key file goes to
//! JWT_PREVIOUS_PUBLIC_KEY_FILES and the fresh pair gets new, dated file
//! names, so no file the running service reads is overwritten), a fresh
//! current key is written, and JWT_KEY_ROTATED_AT records when, so
//! `cargo auth validate` can say when the previous key may be dropped
//! (once every token it signed has expired). The env file changes in one
//! atomic rename. A previous key that may still verify live tokens is only
//! dropped by a second rotation with `--force`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use auth_kit::config::catalog;
use auth_kit::token::{SigningAlgorithm, SigningKeys};
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use zeroize::Zeroizing;

/// Arguments of `cargo auth setup-jwt`.
#[derive(clap::Args, Debug)]
pub struct SetupJwtArgs {
    /// The env file to write; created (mode 0600) if missing.
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Replace an existing signing key (SECRET_KEY, or the key files); with
    /// --rotate, drop a previous key that may still verify live tokens.
    #[arg(long)]
    pub force: bool,
    /// HS256, HS384, HS512 (a SECRET_KEY), or RS256, ES256, EdDSA (a key
    /// pair). Default HS256; with --rotate, the env file's ALGORITHM.
    #[arg(long, value_enum, ignore_case = true)]
    pub algorithm: Option<AlgorithmArg>,
    /// Rotate: the current key moves to the previous slot (it keeps
    /// verifying the tokens it signed, never signs again) and a fresh key
    /// signs from the next restart on. Nobody is logged out.
    #[arg(long)]
    pub rotate: bool,
}

/// The variable holding the signing secret (a `match` pattern needs a constant).
const CURRENT_SECRET: &str = catalog::SECRET_KEY.name;
/// The variables holding a retired key, and when it was retired.
const PREVIOUS_SECRET: &str = catalog::SECRET_KEY_PREVIOUS.name;
const PREVIOUS_PUBLIC_KEYS: &str = catalog::JWT_PREVIOUS_PUBLIC_KEY_FILES.name;
const ROTATED_AT: &str = catalog::JWT_KEY_ROTATED_AT.name;

/// The access-token lifetime written when the env file sets none (the contract's default).
const DEFAULT_EXPIRE_MINUTES: &str = catalog::ACCESS_TOKEN_EXPIRE_MINUTES.default;

/// RSA modulus size: 3072 bits is 128-bit security (NIST SP 800-57).
pub const RSA_BITS: usize = 3072;

pub fn run(args: &SetupJwtArgs) -> Result<()> {
    if args.rotate {
        return rotate(args);
    }
    let algorithm = args
        .algorithm
        .map_or(SigningAlgorithm::HS256, |asked| asked.0);
    let env_file = resolve_env_file(&args.env_file)?;
    let display = args.env_file.display().to_string();
    let text = read_env_text(&env_file, &display)?.unwrap_or_default();
    let existing = signing_key_in(&text);
    if let Some(variable) = existing
        && !args.force
    {
        bail!(
            "{display} already has a signing key ({variable} is set): left unchanged. Pass --force to replace it; tokens signed with the old key then stop working and every user must log in again"
        );
    }

    let mut settings = if algorithm.is_hmac() {
        vec![Setting::replace(
            catalog::SECRET_KEY.name,
            auth_kit::random::secret_hex(),
        )]
    } else {
        write_key_pair_files(algorithm, &env_file, args.force)?
    };
    settings.push(Setting::replace(
        catalog::ALGORITHM.name,
        algorithm.as_str(),
    ));
    settings.push(Setting::keep(
        catalog::ACCESS_TOKEN_EXPIRE_MINUTES.name,
        DEFAULT_EXPIRE_MINUTES,
    ));
    settings.extend(clear_other_kind(&text, algorithm));

    let (updated, outcomes) = apply(&text, &settings);
    write_private_file(&env_file, updated.as_bytes())?;

    report(&display, &settings, &outcomes);
    if let Some(variable) = existing {
        println!(
            "The signing key changed (it was {variable}): access tokens signed with the old key stop working at once, so every user must log in again (or refresh, where the client holds a refresh token)."
        );
    }
    note_unused_keys(&updated, algorithm, &display);
    println!("Check it: cargo auth validate --env-file {display}");
    Ok(())
}

/// The env file's text; `None` when it does not exist.
fn read_env_text(env_file: &Path, display: &str) -> Result<Option<String>> {
    match fs::read(env_file) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{display} is not UTF-8 text: fix or remove it")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => bail!("cannot read {display}: {e}"),
    }
}

/// Writes a fresh key pair of `algorithm` next to `env_file` (refusing to
/// replace existing files without `force`), checked to load as the service
/// loads it; the settings naming the files.
fn write_key_pair_files(
    algorithm: SigningAlgorithm,
    env_file: &Path,
    force: bool,
) -> Result<Vec<Setting>> {
    let (private_name, public_name) = key_file_names(algorithm);
    let folder = env_file.parent().unwrap_or(Path::new("."));
    let (private_path, public_path) = (folder.join(&private_name), folder.join(&public_name));
    for path in [&private_path, &public_path] {
        if path.exists() && !force {
            bail!(
                "{} already exists: left unchanged. Pass --force to replace it; tokens signed with the old key then stop working",
                path.display()
            );
        }
    }
    let pair = generate_key_pair(algorithm)?;
    // Checked before anything is written: the service must be able to load it.
    SigningKeys::from_pem(
        algorithm,
        pair.private_pem.as_bytes(),
        pair.public_pem.as_bytes(),
    )
    .with_context(|| format!("the generated {algorithm} key pair does not load"))?;
    write_private_file(&private_path, pair.private_pem.as_bytes())?;
    write_private_file(&public_path, pair.public_pem.as_bytes())?;
    // And once more from the files, exactly as the service will read them.
    let private = Zeroizing::new(fs::read(&private_path)?);
    let keys = SigningKeys::from_pem(algorithm, &private, &fs::read(&public_path)?).with_context(
        || {
            format!(
                "the key files {} and {} do not load",
                private_path.display(),
                public_path.display()
            )
        },
    )?;
    println!(
        "Wrote a fresh {algorithm} key pair (mode 0600): {} and {} (kid {}).",
        private_path.display(),
        public_path.display(),
        keys.kid()
    );
    // Relative to the env file's folder, which is the service's working
    // directory: it reads `./.env` from there.
    Ok(vec![
        Setting::replace(catalog::JWT_PRIVATE_KEY_FILE.name, private_name),
        Setting::replace(catalog::JWT_PUBLIC_KEY_FILE.name, public_name),
    ])
}

/// A retired key of the other kind cannot verify this algorithm's
/// tokens, and the service refuses it: the settings clearing it (the line
/// stays, empty), and its rotation time when no retired key is left.
fn clear_other_kind(text: &str, algorithm: SigningAlgorithm) -> Vec<Setting> {
    let other_kind = if algorithm.is_hmac() {
        PREVIOUS_PUBLIC_KEYS
    } else {
        PREVIOUS_SECRET
    };
    let mut settings = Vec::new();
    if is_set(text, other_kind) {
        settings.push(Setting::replace(other_kind, ""));
        if !is_set(text, PREVIOUS_SECRET) || !is_set(text, PREVIOUS_PUBLIC_KEYS) {
            settings.push(Setting::replace(ROTATED_AT, ""));
        }
    }
    settings
}

/// Notes on keys of the other kind still set in the written env file.
fn note_unused_keys(updated: &str, algorithm: SigningAlgorithm, display: &str) {
    if !algorithm.is_hmac()
        && current_value(updated, catalog::SECRET_KEY.name).is_some_and(|v| !v.is_empty())
    {
        println!(
            "SECRET_KEY is still set but {algorithm} does not use it: remove it from {display} (`cargo auth validate` warns about it)."
        );
    }
    if algorithm.is_hmac()
        && (current_value(updated, catalog::JWT_PRIVATE_KEY_FILE.name)
            .is_some_and(|v| !v.is_empty())
            || current_value(updated, catalog::JWT_PUBLIC_KEY_FILE.name)
                .is_some_and(|v| !v.is_empty()))
    {
        println!(
            "JWT_PRIVATE_KEY_FILE / JWT_PUBLIC_KEY_FILE are still set but {algorithm} does not use them: remove them from {display}."
        );
    }
}

/// What happened to each setting, secrets never shown.
fn report(display: &str, settings: &[Setting], outcomes: &[Outcome]) {
    for (setting, outcome) in settings.iter().zip(outcomes) {
        let shown = match setting.key {
            CURRENT_SECRET => "a fresh 256-bit key from the operating system's random number generator (64 hex characters, not shown)".to_owned(),
            PREVIOUS_SECRET if !setting.value.is_empty() => "the key SECRET_KEY had until now (not shown)".to_owned(),
            _ if setting.value.is_empty() => "(cleared)".to_owned(),
            _ => setting.value.to_string(),
        };
        match outcome {
            Outcome::Replaced => println!("{display}: {} replaced: {shown}", setting.key),
            Outcome::Added => println!("{display}: {} added: {shown}", setting.key),
            Outcome::Kept(value) => println!("{display}: {} kept: {value}", setting.key),
        }
    }
    println!("{display} written atomically, mode 0600; every other line is unchanged.");
}

/// `--rotate`: a fresh current key; the current one verifies on as the
/// previous key; nobody is logged out.
fn rotate(args: &SetupJwtArgs) -> Result<()> {
    let env_file = resolve_env_file(&args.env_file)?;
    let display = args.env_file.display().to_string();
    let Some(text) = read_env_text(&env_file, &display)? else {
        bail!(
            "{display} does not exist, so there is no key to rotate: write one with `cargo auth setup-jwt --env-file {display}`"
        );
    };
    let configured = configured_algorithm(&text, &display)?;
    if let Some(AlgorithmArg(asked)) = args.algorithm
        && asked != configured
    {
        bail!(
            "--rotate keeps the algorithm ({configured}): a token is only verified with its own algorithm, so moving to {asked} logs everyone out; do that with `cargo auth setup-jwt --algorithm {asked} --force`"
        );
    }
    let now = auth_kit::Clock::System.now();
    check_previous_key_expired(&text, &display, now, args.force)?;

    let folder = env_file.parent().unwrap_or(Path::new(".")).to_owned();
    let rotated_at = auth_kit::clock::rfc3339(now);
    let Rotation {
        mut settings,
        old_kid,
        new_kid,
    } = if configured.is_hmac() {
        rotate_secret(&text, configured, &display)?
    } else {
        rotate_key_pair(&text, configured, &display, &folder, &rotated_at)?
    };
    settings.push(Setting::replace(ROTATED_AT, rotated_at.as_str()));
    settings.push(Setting::replace(
        catalog::ALGORITHM.name,
        configured.as_str(),
    ));
    let (updated, outcomes) = apply(&text, &settings);
    write_private_file(&env_file, updated.as_bytes())?;
    report(&display, &settings, &outcomes);

    let lifetime = token_lifetime(&updated);
    println!(
        "Rotated {configured}: kid {old_kid} now only verifies, kid {new_kid} signs from the next restart. Restart every instance with this configuration: nobody is logged out, tokens signed with the old key keep working until they expire."
    );
    println!(
        "Drop the previous key after {} (the access-token lifetime and leeway after the last instance restarted); `cargo auth validate --env-file {display}` says when.",
        auth_kit::clock::rfc3339(now.saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)))
    );
    Ok(())
}

/// The env file's ALGORITHM (HS256 when unset), refused when the service
/// would refuse it.
fn configured_algorithm(text: &str, display: &str) -> Result<SigningAlgorithm> {
    match current_value(text, catalog::ALGORITHM.name).filter(|a| !a.is_empty()) {
        Some(name) => name.parse::<SigningAlgorithm>().map_err(|_| {
            anyhow::anyhow!(
                "{display} sets ALGORITHM={} which the service refuses: fix it before rotating",
                name.chars().take(32).collect::<String>()
            )
        }),
        None => Ok(SigningAlgorithm::HS256),
    }
}

/// A rotation's settings for the key itself, and the key ids retired and
/// fresh.
struct Rotation {
    settings: Vec<Setting>,
    old_kid: String,
    new_kid: String,
}

/// SECRET_KEY moves to SECRET_KEY_PREVIOUS and a fresh one takes its place.
fn rotate_secret(text: &str, configured: SigningAlgorithm, display: &str) -> Result<Rotation> {
    let current = current_value(text, catalog::SECRET_KEY.name).filter(|v| !v.is_empty()).with_context(|| {
        format!("{display} has no SECRET_KEY to rotate: write one with `cargo auth setup-jwt --env-file {display}`")
    })?;
    let current = Zeroizing::new(current);
    if let Err(e) = auth_kit::config::secret_key(Some(&current)) {
        bail!(
            "{display}: {}, and a weak key must not keep verifying tokens: replace it with `cargo auth setup-jwt --env-file {display} --force` instead (everyone logs in again)",
            e.problem()
        );
    }
    let fresh = Zeroizing::new(auth_kit::random::secret_hex());
    let keys = SigningKeys::hmac(configured, fresh.as_bytes())?
        .with_previous_hmac(current.as_bytes())
        .context("the fresh key does not combine with the current one")?;
    Ok(Rotation {
        settings: vec![
            Setting::replace(PREVIOUS_SECRET, current.as_str()),
            Setting::replace(catalog::SECRET_KEY.name, fresh.as_str()),
        ],
        old_kid: keys.previous_kids().next().unwrap_or("-").to_owned(),
        new_kid: keys.kid().to_owned(),
    })
}

/// A fresh key pair in new, dated files; the current public key file moves
/// to JWT_PREVIOUS_PUBLIC_KEY_FILES. No file the running service reads is
/// overwritten.
fn rotate_key_pair(
    text: &str,
    configured: SigningAlgorithm,
    display: &str,
    folder: &Path,
    rotated_at: &str,
) -> Result<Rotation> {
    let setting = |var: &str| {
        current_value(text, var).filter(|v| !v.is_empty()).with_context(|| {
            format!("{display} has no {var} to rotate: write a key pair with `cargo auth setup-jwt --env-file {display} --algorithm {configured}`")
        })
    };
    let (private_file, public_file) = (
        setting(catalog::JWT_PRIVATE_KEY_FILE.name)?,
        setting(catalog::JWT_PUBLIC_KEY_FILE.name)?,
    );
    let read = |file: &str| {
        fs::read(folder.join(file))
            .with_context(|| format!("cannot read {file} (named in {display})"))
    };
    let (private, public) = (Zeroizing::new(read(&private_file)?), read(&public_file)?);
    let current = SigningKeys::from_pem(configured, &private, &public).with_context(|| {
        format!("{private_file} and {public_file} are not a working {configured} key pair: fix them before rotating")
    })?;
    let (new_private, new_public) = dated_key_file_names(configured, rotated_at, folder)?;
    let pair = generate_key_pair(configured)?;
    let keys = SigningKeys::from_pem(
        configured,
        pair.private_pem.as_bytes(),
        pair.public_pem.as_bytes(),
    )
    .and_then(|k| k.with_previous_public_pem(&public))
    .with_context(|| format!("the generated {configured} key pair does not load"))?;
    write_private_file(&folder.join(&new_private), pair.private_pem.as_bytes())?;
    write_private_file(&folder.join(&new_public), pair.public_pem.as_bytes())?;
    println!(
        "Wrote a fresh {configured} key pair (mode 0600): {} and {} (kid {}).",
        folder.join(&new_private).display(),
        folder.join(&new_public).display(),
        keys.kid()
    );
    println!(
        "{private_file} no longer signs anything: delete it once the new configuration runs everywhere."
    );
    Ok(Rotation {
        settings: vec![
            Setting::replace(catalog::JWT_PRIVATE_KEY_FILE.name, new_private),
            Setting::replace(catalog::JWT_PUBLIC_KEY_FILE.name, new_public),
            Setting::replace(PREVIOUS_PUBLIC_KEYS, public_file),
        ],
        old_kid: current.kid().to_owned(),
        new_kid: keys.kid().to_owned(),
    })
}

/// The rotated key pair's file names, stamped with the rotation time;
/// refused when one exists already (a second rotation within the second).
fn dated_key_file_names(
    algorithm: SigningAlgorithm,
    rotated_at: &str,
    folder: &Path,
) -> Result<(String, String)> {
    let stamp: String = rotated_at
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let alg = algorithm.as_str().to_ascii_lowercase();
    let (new_private, new_public) = (
        format!("jwt-{alg}-{stamp}-private.pem"),
        format!("jwt-{alg}-{stamp}-public.pem"),
    );
    for name in [&new_private, &new_public] {
        if folder.join(name).exists() {
            bail!(
                "{} already exists: left unchanged; rotate again in a second",
                folder.join(name).display()
            );
        }
    }
    Ok((new_private, new_public))
}

/// Refuses (without `force`) to push out a previous key that may still
/// verify live tokens: one retired less than a token lifetime ago, or at
/// an unknown time.
fn check_previous_key_expired(text: &str, display: &str, now: i64, force: bool) -> Result<()> {
    let Some(previous) = [PREVIOUS_SECRET, PREVIOUS_PUBLIC_KEYS]
        .into_iter()
        .find(|v| is_set(text, v))
    else {
        return Ok(());
    };
    if force {
        return Ok(());
    }
    let rotated_at =
        current_value(text, ROTATED_AT).and_then(|v| auth_kit::clock::parse_rfc3339(&v));
    let lifetime = i64::try_from(token_lifetime(text)).unwrap_or(i64::MAX);
    match rotated_at {
        Some(at) if now >= at.saturating_add(lifetime) => Ok(()),
        Some(at) => bail!(
            "{display}: {previous} was retired at {} and may verify live tokens until {}; rotating again now drops it and logs those users out. Wait until then, or pass --force",
            auth_kit::clock::rfc3339(at),
            auth_kit::clock::rfc3339(at.saturating_add(lifetime))
        ),
        None => bail!(
            "{display}: {previous} is set but {ROTATED_AT} is not, so it may still verify live tokens; rotating drops it. Pass --force once every token it signed has expired"
        ),
    }
}

/// The longest an access token of this configuration lives, leeway
/// included, in seconds (the service's defaults where unset).
fn token_lifetime(text: &str) -> u64 {
    let number = |setting: catalog::Setting| {
        current_value(text, setting.name)
            .and_then(|v| v.parse::<u64>().ok())
            .or(setting.range.map(|r| r.default))
            .unwrap_or_default()
    };
    number(catalog::ACCESS_TOKEN_EXPIRE_MINUTES) * 60 + number(catalog::JWT_LEEWAY_SECONDS)
}

/// Whether `key` has an active, non-empty value.
fn is_set(text: &str, key: &str) -> bool {
    current_value(text, key).is_some_and(|v| !v.is_empty())
}

/// `--algorithm`: one of [`SigningAlgorithm::ALL`] by its JOSE name (any
/// case on the command line; the env file gets the exact name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmArg(pub SigningAlgorithm);

/// [`SigningAlgorithm::ALL`], in its order, as command-line values.
const ALGORITHM_ARGS: [AlgorithmArg; SigningAlgorithm::ALL.len()] = {
    let mut args = [AlgorithmArg(SigningAlgorithm::HS256); SigningAlgorithm::ALL.len()];
    let mut i = 0;
    while i < args.len() {
        args[i] = AlgorithmArg(SigningAlgorithm::ALL[i]);
        i += 1;
    }
    args
};

impl clap::ValueEnum for AlgorithmArg {
    fn value_variants<'a>() -> &'a [Self] {
        &ALGORITHM_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.as_str()))
    }
}

/// The key files' names, next to the env file.
pub fn key_file_names(algorithm: SigningAlgorithm) -> (String, String) {
    let alg = algorithm.as_str().to_ascii_lowercase();
    (
        format!("jwt-{alg}-private.pem"),
        format!("jwt-{alg}-public.pem"),
    )
}

/// A PEM key pair: PKCS#8 private key, SPKI public key.
pub struct KeyPair {
    pub private_pem: Zeroizing<String>,
    pub public_pem: String,
}

// The private key never reaches a log or a panic message.
impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public_pem", &self.public_pem)
            .finish_non_exhaustive()
    }
}

/// A fresh key pair for an asymmetric algorithm, from OS randomness.
pub fn generate_key_pair(algorithm: SigningAlgorithm) -> Result<KeyPair> {
    let encode_error =
        |e: p256::pkcs8::Error| anyhow::anyhow!("cannot encode the {algorithm} private key: {e}");
    let public_error = |e: p256::pkcs8::spki::Error| {
        anyhow::anyhow!("cannot encode the {algorithm} public key: {e}")
    };
    match algorithm {
        SigningAlgorithm::ES256 => {
            // 256 random bits are a valid P-256 scalar except with probability
            // about 2^-32; a draw outside the range is an error, not a loop.
            let secret =
                p256::SecretKey::from_slice(&auth_kit::random::bytes::<32>()).map_err(|_| {
                    anyhow::anyhow!(
                        "the random number generator gave an invalid P-256 scalar: run again"
                    )
                })?;
            Ok(KeyPair {
                private_pem: secret.to_pkcs8_pem(LineEnding::LF).map_err(encode_error)?,
                public_pem: secret
                    .public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(public_error)?,
            })
        }
        SigningAlgorithm::EdDSA => {
            let secret = ed25519_dalek::SigningKey::from_bytes(&auth_kit::random::bytes::<32>());
            Ok(KeyPair {
                private_pem: secret.to_pkcs8_pem(LineEnding::LF).map_err(encode_error)?,
                public_pem: secret
                    .verifying_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(public_error)?,
            })
        }
        SigningAlgorithm::RS256 => {
            let secret =
                rsa::PrivateKey::new(&mut OsRng, RSA_BITS).context("cannot generate an RSA key")?;
            Ok(KeyPair {
                private_pem: secret.to_pkcs8_pem(LineEnding::LF).map_err(encode_error)?,
                public_pem: secret
                    .to_public_key()
                    .to_public_key_pem(LineEnding::LF)
                    .map_err(public_error)?,
            })
        }
        hmac => bail!("{hmac} uses SECRET_KEY, not a key pair"),
    }
}

/// The operating system's random number generator for RSA's prime search,
/// in the `rand_core` version the `rsa` crate speaks.
struct OsRng;

impl rsa::rand_core::TryRng for OsRng {
    type Error = getrandom::Error;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        getrandom::u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        getrandom::u64()
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        getrandom::fill(dest)
    }
}

impl rsa::rand_core::TryCryptoRng for OsRng {}

/// The env file's real path (through a symlink, so the link survives), its
/// folder checked to exist.
fn resolve_env_file(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        bail!(
            "{} is a folder: give the env file's path, e.g. --env-file {}/.env",
            path.display(),
            path.display()
        );
    }
    if path.exists() {
        return fs::canonicalize(path)
            .with_context(|| format!("cannot resolve {}", path.display()));
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !folder.is_dir() {
        bail!(
            "the folder {} does not exist: create it first, or choose another --env-file",
            folder.display()
        );
    }
    Ok(path.to_owned())
}

/// Which signing key the env file holds already, if any.
fn signing_key_in(text: &str) -> Option<&'static str> {
    [catalog::SECRET_KEY.name, catalog::JWT_PRIVATE_KEY_FILE.name]
        .into_iter()
        .find(|key| current_value(text, key).is_some_and(|v| !v.is_empty()))
}

/// One setting to write.
struct Setting {
    key: &'static str,
    value: Zeroizing<String>,
    /// Keep an existing non-empty value instead of replacing it.
    keep_existing: bool,
}

impl Setting {
    fn replace(key: &'static str, value: impl Into<String>) -> Self {
        Self {
            key,
            value: Zeroizing::new(value.into()),
            keep_existing: false,
        }
    }

    fn keep(key: &'static str, value: impl Into<String>) -> Self {
        Self {
            key,
            value: Zeroizing::new(value.into()),
            keep_existing: true,
        }
    }
}

/// What happened to a setting.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Replaced,
    Added,
    Kept(String),
}

/// `text` with `settings` applied: active `KEY=` lines (also `export KEY=`)
/// replaced in place, keeping their line ending; missing keys appended;
/// comments (`# KEY=...`) and every other line untouched.
fn apply(text: &str, settings: &[Setting]) -> (String, Vec<Outcome>) {
    let mut outcomes: Vec<Option<Outcome>> = settings.iter().map(|_| None).collect();
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.split_inclusive('\n') {
        let found = assigned_key(line).and_then(|key| settings.iter().position(|s| s.key == key));
        let Some(index) = found else {
            out.push_str(line);
            continue;
        };
        let setting = &settings[index];
        let existing = line_value(line);
        if setting.keep_existing && !existing.is_empty() {
            outcomes[index] = Some(Outcome::Kept(existing));
            out.push_str(line);
            continue;
        }
        let (body, ending) = split_line_ending(line);
        let export = if body.trim_start().starts_with("export ") {
            "export "
        } else {
            ""
        };
        out.push_str(&format!(
            "{export}{}={}{ending}",
            setting.key,
            setting.value.as_str()
        ));
        outcomes[index].get_or_insert(Outcome::Replaced);
    }
    let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
    for (setting, outcome) in settings.iter().zip(outcomes.iter_mut()) {
        if outcome.is_none() {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(newline);
            }
            out.push_str(&format!(
                "{}={}{newline}",
                setting.key,
                setting.value.as_str()
            ));
            *outcome = Some(Outcome::Added);
        }
    }
    (
        out,
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::Added))
            .collect(),
    )
}

/// The key an active assignment line sets (`KEY=...` or `export KEY=...`);
/// `None` for comments, blank lines and anything else.
fn assigned_key(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").map_or(line, str::trim_start);
    let (key, _) = line.split_once('=')?;
    let key = key.trim_end();
    let valid = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then_some(key)
}

/// The value of an assignment line, unquoted, without a trailing ` # comment`.
fn line_value(line: &str) -> String {
    let value = line.split_once('=').map_or("", |(_, v)| v).trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.split_once(quote)) {
            return inner.0.to_owned();
        }
    }
    let comment = if value.starts_with('#') {
        Some(0)
    } else {
        value.find(" #")
    };
    value[..comment.unwrap_or(value.len())].trim().to_owned()
}

/// The value of the last active `key=` line (the one dotenv keeps).
fn current_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .find(|line| assigned_key(line) == Some(key))
        .map(line_value)
}

fn split_line_ending(line: &str) -> (&str, &str) {
    if let Some(body) = line.strip_suffix("\r\n") {
        (body, "\r\n")
    } else if let Some(body) = line.strip_suffix('\n') {
        (body, "\n")
    } else {
        (line, "")
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// folder (created 0600), fsync, rename over `path`, fsync the folder. A
/// file replaced keeps its owner and group (so the service's user still
/// owns it); the mode is always 0600.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".setup-jwt-")
        .tempfile_in(folder)
        .with_context(|| format!("cannot write in {}", folder.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // tempfile creates 0600 already; said explicitly because it matters.
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
        if let Ok(current) = fs::metadata(path) {
            use std::os::unix::fs::MetadataExt as _;
            if let Err(e) =
                std::os::unix::fs::fchown(temp.as_file(), Some(current.uid()), Some(current.gid()))
            {
                eprintln!(
                    "note: {} now belongs to you, not to uid {} gid {} as before ({e}): give it back with chown if the service runs as that user",
                    path.display(),
                    current.uid(),
                    current.gid()
                );
            }
        }
    }
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    temp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot replace {}: {}", path.display(), e.error))?;
    #[cfg(unix)]
    if let Ok(dir) = fs::File::open(folder) {
        // The rename itself survives a crash only once the folder is synced.
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, settings: &[Setting], expected: &str, outcomes: &[Outcome]) {
        let (out, got) = apply(input, settings);
        assert_eq!(out, expected);
        assert_eq!(got, outcomes);
    }

    #[test]
    fn replaces_in_place_and_appends() {
        use Outcome::*;
        let settings = [
            Setting::replace(catalog::SECRET_KEY.name, "new"),
            Setting::keep(catalog::ACCESS_TOKEN_EXPIRE_MINUTES.name, "30"),
        ];
        check(
            "",
            &settings,
            "SECRET_KEY=new\nACCESS_TOKEN_EXPIRE_MINUTES=30\n",
            &[Added, Added],
        );
        check(
            "# top\nA=1\n  SECRET_KEY = old # c\nB=2",
            &settings,
            "# top\nA=1\nSECRET_KEY=new\nB=2\nACCESS_TOKEN_EXPIRE_MINUTES=30\n",
            &[Replaced, Added],
        );
        check(
            "# SECRET_KEY=commented\r\nexport SECRET_KEY=old\r\nACCESS_TOKEN_EXPIRE_MINUTES=15\r\n",
            &settings,
            "# SECRET_KEY=commented\r\nexport SECRET_KEY=new\r\nACCESS_TOKEN_EXPIRE_MINUTES=15\r\n",
            &[Replaced, Kept("15".to_owned())],
        );
        check(
            "ACCESS_TOKEN_EXPIRE_MINUTES=\n",
            &settings[1..],
            "ACCESS_TOKEN_EXPIRE_MINUTES=30\n",
            &[Replaced],
        );
    }

    #[test]
    fn reads_values_like_dotenv() {
        assert_eq!(
            current_value("SECRET_KEY=\"a b\"\n", catalog::SECRET_KEY.name).as_deref(),
            Some("a b")
        );
        assert_eq!(
            current_value("SECRET_KEY=  # later\n", catalog::SECRET_KEY.name).as_deref(),
            Some("")
        );
        assert_eq!(
            current_value("# SECRET_KEY=x\n", catalog::SECRET_KEY.name),
            None
        );
        assert_eq!(
            current_value("SECRET_KEY=a\nSECRET_KEY=b\n", catalog::SECRET_KEY.name).as_deref(),
            Some("b")
        );
        assert_eq!(
            signing_key_in("SECRET_KEY=\nJWT_PRIVATE_KEY_FILE=k.pem\n"),
            Some(catalog::JWT_PRIVATE_KEY_FILE.name)
        );
        assert_eq!(signing_key_in("# SECRET_KEY=abc\n"), None);
    }

    #[test]
    fn algorithms() {
        use clap::ValueEnum as _;
        let parse = |raw: &str| AlgorithmArg::from_str(raw, true).map(|arg| arg.0);
        assert_eq!(parse("es256").unwrap(), SigningAlgorithm::ES256);
        assert_eq!(parse("EdDSA").unwrap(), SigningAlgorithm::EdDSA);
        assert!(parse("none").is_err());
        let names: Vec<String> = AlgorithmArg::value_variants()
            .iter()
            .filter_map(|arg| arg.to_possible_value())
            .map(|value| value.get_name().to_owned())
            .collect();
        assert_eq!(names.join(", "), "HS256, HS384, HS512, RS256, ES256, EdDSA");
    }

    #[test]
    fn generated_pairs_load() {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let pair = generate_key_pair(alg).unwrap();
            assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
            SigningKeys::from_pem(alg, pair.private_pem.as_bytes(), pair.public_pem.as_bytes())
                .unwrap();
        }
    }
}
