//! `cargo auth admin create | reset-password | promote --username U`: the
//! way back in when every admin is locked out, straight on DATABASE_URL.
//!
//! The settings are read as the service reads them: the process
//! environment over `./.env` (or `--env-file`), relative SQLite paths from
//! the env file's folder. The writes go through the kit's store, so they
//! follow its rules (the username and password rules of signup, Argon2id
//! hashes) and tell every running instance's session cache what changed:
//! on PostgreSQL in the writing transaction, on SQLite with RATE_LIMIT_URL
//! on Redis before the command exits (on SQLite alone the service sees the
//! change within SESSION_CACHE_SECONDS). A new password is asked for twice with echo
//! off, or read from standard input with `--password-stdin`; passwords and
//! hashes are never printed.
//!
//! A database the service has not migrated to this kit's schema is
//! refused: the tools never create or migrate it.

use std::io::{BufRead as _, IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_kit::config::{
    Environment, database_url, describe_database, is_valid_username, rate_limit_url,
};
use auth_kit::password::{PasswordHasher, PoolSize, check_new_password};
use auth_kit::session_cache::Delivery;
use auth_kit::store::{CreateUserError, NewUser, Store, UserChangeError, UserUpdate};
use zeroize::Zeroizing;

/// Arguments of `cargo auth admin`.
#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub action: AdminAction,
    /// The service's env file (default: ./.env when it exists). The
    /// process environment overrides it, as it does for the service.
    #[arg(long, global = true)]
    pub env_file: Option<PathBuf>,
}

/// What to do.
#[derive(clap::Subcommand, Debug)]
pub enum AdminAction {
    /// Create an enabled admin with a new password.
    Create(PasswordArgs),
    /// Set a user's password; every login of theirs is revoked.
    ResetPassword(PasswordArgs),
    /// Make a user an enabled admin (re-enabling a disabled one).
    Promote(UserArgs),
}

/// A user, by name.
#[derive(clap::Args, Debug)]
pub struct UserArgs {
    /// The username (compared ignoring case, as logins compare it).
    #[arg(long)]
    pub username: String,
}

/// A user and their new password.
#[derive(clap::Args, Debug)]
pub struct PasswordArgs {
    /// The username (compared ignoring case, as logins compare it).
    #[arg(long)]
    pub username: String,
    /// Read the new password from the first line of standard input (for
    /// scripts) instead of asking twice on the terminal.
    #[arg(long)]
    pub password_stdin: bool,
}

/// How long the database gets to answer the migration check.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a change may take to reach Redis before the command gives up
/// telling the running instances (they then see it within
/// SESSION_CACHE_SECONDS).
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &AdminArgs) -> Result<()> {
    let (env, service_name) = load_settings(args.env_file.as_deref())?;
    let url = database_url(&env, &service_name).map_err(|e| anyhow::anyhow!("{e}"))?;
    // With SQLite, the running instances hear of the change through the
    // Redis they share (RATE_LIMIT_URL); PostgreSQL carries it itself.
    let redis = if url.starts_with("sqlite:") {
        rate_limit_url(&env).map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        None
    };
    // Read before the runtime starts: the prompt blocks.
    let password = match &args.action {
        AdminAction::Create(a) | AdminAction::ResetPassword(a) => {
            if matches!(args.action, AdminAction::Create(_)) && !is_valid_username(&a.username) {
                bail!(
                    "'{}' is not a valid username: use 3 to 64 of A-Z a-z 0-9 _ . -",
                    a.username
                );
            }
            Some(new_password(&a.username, a.password_stdin)?)
        }
        AdminAction::Promote(_) => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let done = runtime.block_on(async {
        let mut store = open_store(&url).await?;
        if let Some(redis) = &redis {
            store = store
                .publishing_on(redis, &service_name, ANNOUNCE_TIMEOUT)
                .map_err(|e| anyhow::anyhow!("RATE_LIMIT_URL cannot be used: {e}"))?;
        }
        let outcome = apply(
            &store,
            &args.action,
            password.as_deref().map(|p| p.as_str()),
        )
        .await;
        // Also after a failure: a write may have committed before it.
        if let Some(redis) = &redis {
            match store.published(ANNOUNCE_TIMEOUT).await {
                Delivery::Delivered => {}
                Delivery::Unheard => eprintln!(
                    "note: no running instance listens for changes on {redis} (channel '{service_name}:sessions'): none caches sessions, or the service has another name (run this in the service's folder, next to its Cargo.toml); instances under another name see the change within SESSION_CACHE_SECONDS"
                ),
                Delivery::NotDelivered => eprintln!(
                    "warning: the change could not be published on {redis} (RATE_LIMIT_URL): running instances see it within SESSION_CACHE_SECONDS"
                ),
            }
        }
        store.close().await;
        println!("{}", outcome?);
        Ok(())
    });
    // Whatever is still resolving or connecting (Redis) does not hold up
    // the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    done
}

/// The environment as the service reads it, and the service's name (its
/// default SQLite file is named after it).
fn load_settings(env_file: Option<&Path>) -> Result<(Environment, String)> {
    let path = match env_file {
        Some(path) => Some(path.to_owned()),
        None if Path::new(".env").is_file() => Some(PathBuf::from(".env")),
        None => None,
    };
    match path {
        Some(path) => {
            let loaded = crate::validate::load_env(&path)?;
            Ok((loaded.env, loaded.service_name))
        }
        None => {
            let env = Environment::load().map_err(|e| anyhow::anyhow!("{e}"))?;
            let folder = std::env::current_dir().context("cannot read the current folder")?;
            Ok((env, crate::validate::service_name(&folder)))
        }
    }
}

/// The new password: the first line of standard input, or asked twice on
/// the terminal; checked against the kit's rule for new passwords.
fn new_password(username: &str, from_stdin: bool) -> Result<Zeroizing<String>> {
    let password = if from_stdin {
        if std::io::stdin().is_terminal() {
            bail!(
                "--password-stdin reads a pipe, and standard input is a terminal (it would show the password): leave out --password-stdin to be asked with echo off"
            );
        }
        let mut line = Zeroizing::new(String::new());
        // A line longer than any acceptable password is not read in full.
        std::io::stdin()
            .lock()
            .take(1024)
            .read_line(&mut line)
            .context("cannot read the password from standard input (one line of UTF-8)")?;
        Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        if !std::io::stdin().is_terminal() {
            bail!(
                "there is no terminal to ask for the password of {username} on: pass --password-stdin and write the password to standard input"
            );
        }
        dialoguer::Password::new()
            .with_prompt(format!("New password of {username}"))
            .with_confirmation("Again", "the two passwords differ")
            .interact()
            .map(Zeroizing::new)
            .context("cannot read the password from the terminal")?
    };
    if let Err(problem) = check_new_password(&password) {
        bail!("the password {problem}: choose another");
    }
    Ok(password)
}

/// The service's database, refused unless the service migrated it to this
/// kit's schema.
async fn open_store(url: &str) -> Result<Store> {
    let described = describe_database(url);
    let state = auth_kit::store::migration_state(url, DATABASE_TIMEOUT)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {described}: {}", redact(url, &e)))?;
    if !state.unknown.is_empty() {
        bail!(
            "{described} was migrated by a newer auth kit (migrations {:?} are unknown here): run the tools of the project that migrated it, or upgrade this project's kit",
            state.unknown
        );
    }
    if let Some((version, description)) = state.pending.first() {
        bail!(
            "{described} lacks {} of the kit's migrations (the first: {version} {description}): start the service once on this DATABASE_URL (it applies them at start-up), then run this again",
            state.pending.len()
        );
    }
    // Opened as it is: the check above found it migrated, and the tools
    // never migrate a database under a running service.
    Store::connect_migrated(url)
        .await
        .map_err(|e| anyhow::anyhow!("{}", redact(url, &e.to_string())))
}

/// Does it; the line to print.
async fn apply(store: &Store, action: &AdminAction, password: Option<&str>) -> Result<String> {
    match action {
        AdminAction::Create(a) => {
            create_admin(store, &a.username, password.unwrap_or_default()).await
        }
        AdminAction::ResetPassword(a) => {
            reset_password(store, &a.username, password.unwrap_or_default()).await
        }
        AdminAction::Promote(a) => promote(store, &a.username).await,
    }
}

/// The Argon2id hash of `password`, on a pool of one: the command hashes
/// once.
async fn hash_password(password: &str) -> Result<String> {
    let hasher = PasswordHasher::new(PoolSize {
        workers: 1,
        queue: 1,
    });
    hasher
        .hash(password)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

/// `admin create`: a new enabled admin.
async fn create_admin(store: &Store, username: &str, password: &str) -> Result<String> {
    let password_hash = hash_password(password).await?;
    let new = NewUser {
        username,
        email: None,
        full_name: None,
        password_hash: &password_hash,
        role: ADMIN_ROLE,
    };
    match store.create_user(&new).await {
        Ok(user) => Ok(format!(
            "Created the admin '{}' (id {}). Log in with the new password.",
            user.username, user.id
        )),
        Err(CreateUserError::Taken(_)) => bail!(
            "a user called '{username}' exists already: make them an admin with `cargo auth admin promote --username {username}`, or set their password with `cargo auth admin reset-password --username {username}`"
        ),
        Err(CreateUserError::Store(e)) => Err(e.into()),
    }
}

/// `admin reset-password`: a new password, every login revoked.
async fn reset_password(store: &Store, username: &str, password: &str) -> Result<String> {
    let user = find_user(store, username).await?;
    let password_hash = hash_password(password).await?;
    // Conditional on the hash read just before: a password set
    // meanwhile (a reset link, the user's own change) is not
    // overwritten unseen.
    let current = store
        .password_hash(user.id)
        .await?
        .with_context(|| format!("user '{username}' was deleted meanwhile"))?;
    let revoked = store
        .change_password(user.id, &current, &password_hash, None)
        .await?
        .with_context(|| {
            format!("the password of '{username}' changed while this ran; run the command again")
        })?;
    let state = if user.disabled {
        format!(
            "; the user is disabled: `cargo auth admin promote --username {}` re-enables an admin",
            user.username
        )
    } else {
        String::new()
    };
    Ok(format!(
        "Set a new password for '{}' (id {}, role {}); revoked {revoked} login{}{state}.",
        user.username,
        user.id,
        user.role,
        if revoked == 1 { "" } else { "s" }
    ))
}

/// `admin promote`: an enabled admin, re-enabled if disabled.
async fn promote(store: &Store, username: &str) -> Result<String> {
    let user = find_user(store, username).await?;
    let update = UserUpdate {
        role: Some(ADMIN_ROLE.to_owned()),
        disabled: Some(false),
        permissions: None,
    };
    match store.update_user(user.id, &update).await {
        Ok(Some(user)) => Ok(format!(
            "'{}' (id {}) is an enabled admin.",
            user.username, user.id
        )),
        Ok(None) => bail!("'{username}' was deleted meanwhile"),
        Err(UserChangeError::LastAdmin) => {
            bail!("the change was refused: it would leave no enabled admin")
        }
        Err(e) => Err(e.into()),
    }
}

/// The role admin bootstrap gives, and the admin routes require.
const ADMIN_ROLE: &str = "admin";

async fn find_user(store: &Store, username: &str) -> Result<auth_kit::store::User> {
    match store.credentials(username).await? {
        Some((user, _hash)) => Ok(user),
        None => bail!(
            "no user is called '{username}': check the name (case is ignored), or create an admin with `cargo auth admin create --username {username}`"
        ),
    }
}

/// `message` with the URL's password, should a driver quote it, masked.
fn redact(url: &str, message: &str) -> String {
    crate::validate::redact_password(url, message)
}
