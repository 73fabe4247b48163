//! `cargo auth validate [--env-file PATH] [--json]`: every configuration
//! check, PASS / WARN / FAIL with the fix.
//!
//! `cargo auth validate --url URL [--env-file PATH] [--username U] [--json]`:
//! probes a running service over HTTP against the contract (see
//! [`probe`]). The password of `--username` comes from VALIDATE_PASSWORD or
//! a prompt, never from the command line (where `ps` and the shell's
//! history would show it).
//!
//! The configuration checks are auth-kit's own ([`check_service`], and
//! auth-kit-supabase's when SUPABASE_URL is set), the very code the service
//! runs at start-up, plus what needs I/O: the database answers, Supabase
//! answers, and the env and key files are private. The env file is read as
//! the service reads it: the process environment wins, and relative paths
//! (SQLite files, key files) are relative to the env file's folder, which is
//! the service's working directory (it reads `./.env`).
//!
//! Exit status 1 on any FAIL; an env file that is missing or cannot be
//! parsed is one line and exit status 1.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use auth_kit::config::{Environment, Finding, Status, catalog, check_service};
use auth_kit::mail::{MailTransportSettings, SmtpSettings};
use serde::Serialize;
use zeroize::Zeroizing;

mod probe;
// The supabase service's checks: a stamp of another template has the
// feature off and not the file (an inline module stands in for it).
#[cfg(feature = "supabase")]
mod supabase;

/// The settings that mark a Supabase service. Spelled here, not taken from
/// auth-kit-supabase's catalogue entries: without the `supabase` feature
/// (in jwt and oauth2 stamps) auth-cli does not link that crate.
const SUPABASE_URL: &str = "SUPABASE_URL";
const SUPABASE_KEY: &str = "SUPABASE_KEY";

/// Arguments of `cargo auth validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The service's env file (default: .env). The process environment
    /// overrides it, as it does for the service.
    #[arg(long)]
    pub env_file: Option<PathBuf>,
    /// Print the findings (or, with --url, the probes) as JSON.
    #[arg(long)]
    pub json: bool,
    /// Probe the running service at this base URL over HTTP against the contract
    /// instead of checking the configuration; --env-file then supplies the
    /// key for forging test tokens.
    #[arg(long)]
    pub url: Option<String>,
    /// With --url: log in as this user (default: sign up a throwaway
    /// user). Its password is read from VALIDATE_PASSWORD, or asked for on
    /// the terminal.
    #[arg(long, requires = "url")]
    pub username: Option<String>,
    /// Refused: a password on the command line is visible to every user
    /// of the machine (`ps`) and stays in the shell's history.
    #[arg(long, hide = true)]
    pub password: Option<String>,
}

/// Where `--username`'s password comes from.
pub const PASSWORD_VARIABLE: &str = "VALIDATE_PASSWORD";

/// How long the database and Supabase get to answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(args: &ValidateArgs) -> Result<()> {
    if args.password.is_some() {
        bail!(
            "--password is not accepted: a password on the command line shows in `ps` and the shell's history; set {PASSWORD_VARIABLE} in the environment (or leave it unset to be asked) and pass --username alone"
        );
    }
    // reqwest is built with `rustls-no-provider`: *ring* becomes the process's
    // rustls provider before any client exists, so https:// URLs work. Err
    // only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    auth_kit::token::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match &args.url {
        Some(url) => {
            let env = match &args.env_file {
                Some(path) => Some(load_env(path)?),
                // Without --env-file the probes run without the service's key.
                None if Path::new(".env").is_file() => Some(load_env(Path::new(".env"))?),
                None => None,
            };
            let credentials = match &args.username {
                Some(username) => Some((username.clone(), probe_password(username)?)),
                None => None,
            };
            runtime.block_on(probe::run(url, env.as_ref(), credentials, args.json))
        }
        None => {
            let env = load_env(args.env_file.as_deref().unwrap_or(Path::new(".env")))?;
            runtime.block_on(check_configuration(&env, args.json))
        }
    }
}

/// The password of `username`: VALIDATE_PASSWORD, or a prompt (no echo)
/// when the terminal can ask; otherwise one line saying how to give it.
fn probe_password(username: &str) -> Result<Zeroizing<String>> {
    if let Some(password) = std::env::var_os(PASSWORD_VARIABLE) {
        return password
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("{PASSWORD_VARIABLE} is not valid UTF-8"));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "--username {username} needs its password: set {PASSWORD_VARIABLE} (there is no terminal to ask on)"
        );
    }
    dialoguer::Password::new()
        .with_prompt(format!("Password of {username}"))
        .interact()
        .map(Zeroizing::new)
        .context("cannot read the password from the terminal")
}

/// An env file, read as the service reads it.
#[derive(Debug)]
pub struct LoadedEnv {
    pub env: Environment,
    /// The env file, absolute.
    pub path: PathBuf,
    /// The service's name: the package next to the env file, or its folder's name.
    pub service_name: String,
}

/// Reads `path` over the process environment, and moves into its folder
/// so relative paths resolve as they do for the service.
pub(crate) fn load_env(path: &Path) -> Result<LoadedEnv> {
    if path.is_dir() {
        bail!(
            "{} is a folder: pass the env file itself, e.g. --env-file {}/.env",
            path.display(),
            path.display()
        );
    }
    if !path.exists() {
        bail!(
            "the env file {} does not exist: pass --env-file PATH, or create it with `cargo auth setup-jwt --env-file {}`",
            path.display(),
            path.display()
        );
    }
    let path = path
        .canonicalize()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let env = Environment::load_with_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let folder = path.parent().unwrap_or(Path::new("/")).to_owned();
    std::env::set_current_dir(&folder)
        .with_context(|| format!("cannot enter {}", folder.display()))?;
    Ok(LoadedEnv {
        env,
        service_name: service_name(&folder),
        path,
    })
}

/// A stamped project's name is its package's name (the default issuer,
/// audience and SQLite file); otherwise the folder's name.
pub(crate) fn service_name(folder: &Path) -> String {
    let from_manifest = std::fs::read_to_string(folder.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|manifest| {
            manifest
                .get("package")?
                .get("name")?
                .as_str()
                .map(str::to_owned)
        });
    from_manifest
        .or_else(|| {
            folder
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "service".to_owned())
}

/// The subjects of the findings that decide which I/O checks run (a
/// setting that failed its static check is not tried), and of the findings
/// those checks add. Printed as the variable's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    /// The env file itself.
    EnvFile,
    JwtPrivateKeyFile,
    DatabaseUrl,
    AdminUsername,
    MailUrl,
    SupabaseUrl,
}

impl Subject {
    const ALL: [Subject; 6] = [
        Subject::EnvFile,
        Subject::JwtPrivateKeyFile,
        Subject::DatabaseUrl,
        Subject::AdminUsername,
        Subject::MailUrl,
        Subject::SupabaseUrl,
    ];

    /// The name a finding carries (the variable's).
    fn name(self) -> &'static str {
        match self {
            Subject::EnvFile => "ENV_FILE",
            Subject::JwtPrivateKeyFile => catalog::JWT_PRIVATE_KEY_FILE.name,
            Subject::DatabaseUrl => catalog::DATABASE_URL.name,
            Subject::AdminUsername => catalog::ADMIN_USERNAME.name,
            Subject::MailUrl => catalog::MAIL_URL.name,
            Subject::SupabaseUrl => SUPABASE_URL,
        }
    }

    /// The subject of `finding`, when it is one of these.
    fn of(finding: &Finding) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == finding.subject)
    }
}

impl From<Subject> for String {
    fn from(subject: Subject) -> Self {
        subject.name().to_owned()
    }
}

/// Which service the configuration belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum ServiceKind {
    /// The jwt and oauth2 templates: SECRET_KEY or a key pair.
    Jwt,
    /// The supabase template: SUPABASE_URL and SUPABASE_KEY, no signing key.
    Supabase,
}

impl ServiceKind {
    fn of(env: &Environment) -> Self {
        let supabase = env.get(SUPABASE_URL).is_some() || env.get(SUPABASE_KEY).is_some();
        let signs = env.get(catalog::SECRET_KEY.name).is_some()
            || env.get(catalog::JWT_PRIVATE_KEY_FILE.name).is_some();
        if supabase && !signs {
            ServiceKind::Supabase
        } else {
            ServiceKind::Jwt
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ServiceKind::Jwt => "a jwt/oauth2 service",
            ServiceKind::Supabase => "a supabase service",
        }
    }
}

#[derive(Serialize)]
struct ConfigReport<'a> {
    env_file: &'a Path,
    service: &'a str,
    kind: ServiceKind,
    findings: &'a [Finding],
    pass: usize,
    warn: usize,
    fail: usize,
}

async fn check_configuration(loaded: &LoadedEnv, json: bool) -> Result<()> {
    let env = &loaded.env;
    let kind = ServiceKind::of(env);
    let mut findings = match kind {
        ServiceKind::Jwt => check_service(env, &loaded.service_name),
        ServiceKind::Supabase => {
            vec![
                match auth_kit::config::database_url(env, &loaded.service_name) {
                    Ok(url) => Finding::pass(
                        Subject::DatabaseUrl,
                        auth_kit::config::describe_database(&url),
                    ),
                    Err(e) => Finding::from(&e),
                },
            ]
            .into_iter()
            .chain(auth_kit::config::check_traffic(env))
            .collect()
        }
    };
    #[cfg(feature = "supabase")]
    if kind == ServiceKind::Supabase || env.get(SUPABASE_URL).is_some() {
        supabase::static_checks(env, &mut findings);
    }
    #[cfg(not(feature = "supabase"))]
    if kind == ServiceKind::Supabase {
        bail!(
            "{} configures a service of the supabase template, and this `cargo auth` has no checks for it: run the `cargo auth` of that service's own project",
            loaded.path.display()
        );
    }
    findings.extend(io_checks(loaded, &findings).await);

    let count = |status| findings.iter().filter(|f| f.status == status).count();
    let (pass, warn, fail) = (
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail),
    );
    if json {
        let report = ConfigReport {
            env_file: &loaded.path,
            service: &loaded.service_name,
            kind,
            findings: &findings,
            pass,
            warn,
            fail,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "Configuration of {} from {} ({}; the process environment overrides the file, as it does for the service)\n",
            loaded.service_name,
            loaded.path.display(),
            kind.describe()
        );
        print!("{}", table(&findings));
        println!(
            "\n{} checks: {pass} PASS, {warn} WARN, {fail} FAIL",
            findings.len()
        );
    }
    if fail > 0 {
        bail!(
            "{fail} configuration check{} FAILED: fix the FAIL lines (each says how)",
            if fail == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// The findings as an aligned table, the fix under each WARN and FAIL.
fn table(findings: &[Finding]) -> String {
    let width = findings
        .iter()
        .map(|f| f.subject.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:<6}  {:<width$}  DETAIL\n", "STATUS", "WHAT");
    for f in findings {
        out.push_str(&format!(
            "{:<6}  {:<width$}  {}\n",
            f.status.to_string(),
            f.subject,
            f.message
        ));
        if f.status != Status::Pass && !f.fix.is_empty() {
            out.push_str(&format!("{:<6}  {:<width$}  fix: {}\n", "", "", f.fix));
        }
    }
    out
}

/// The checks that need I/O, for settings that passed the static checks.
async fn io_checks(loaded: &LoadedEnv, static_findings: &[Finding]) -> Vec<Finding> {
    let env = &loaded.env;
    let failed = |subject: Subject| {
        static_findings
            .iter()
            .any(|f| f.status == Status::Fail && Subject::of(f) == Some(subject))
    };
    let mut findings = Vec::new();
    findings.extend(private_file(Subject::EnvFile, &loaded.path));
    if let Some(key_file) = env.get(catalog::JWT_PRIVATE_KEY_FILE.name)
        && !failed(Subject::JwtPrivateKeyFile)
        && ServiceKind::of(env) == ServiceKind::Jwt
    {
        findings.extend(private_file(
            Subject::JwtPrivateKeyFile,
            Path::new(key_file.trim()),
        ));
    }
    if !failed(Subject::DatabaseUrl)
        && let Ok(url) = auth_kit::config::database_url(env, &loaded.service_name)
    {
        let (finding, answered) = database_reachable(&url).await;
        findings.push(finding);
        if answered
            && !failed(Subject::AdminUsername)
            && let Some(username) = env
                .get(catalog::ADMIN_USERNAME.name)
                .filter(|_| env.get(catalog::ADMIN_PASSWORD.name).is_some())
        {
            findings.push(admin_account(&url, username.trim()).await);
        }
    }
    if ServiceKind::of(env) == ServiceKind::Jwt && !failed(Subject::MailUrl) {
        match auth_kit::config::mail_transport(env) {
            Ok(MailTransportSettings::Smtp(smtp)) => findings.push(smtp_reachable(&smtp).await),
            Ok(MailTransportSettings::Outbox { dir }) => findings.extend(outbox_usable(&dir)),
            Err(_) => {}
        }
    }
    #[cfg(feature = "supabase")]
    if !failed(Subject::SupabaseUrl) {
        findings.extend(supabase::reachable(env).await);
    }
    findings
}

/// A file holding secrets should be readable by its owner only.
fn private_file(subject: Subject, path: &Path) -> Option<Finding> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        Some(if mode & 0o077 == 0 {
            Finding::pass(
                subject,
                format!("{} is private (mode {mode:04o})", path.display()),
            )
        } else {
            Finding::warn(
                subject,
                format!(
                    "{} can be read by other users (mode {mode:04o}) and holds a secret",
                    path.display()
                ),
                format!("chmod 600 {}", path.display()),
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (subject, path);
        None
    }
}

/// Who ADMIN_USERNAME belongs to in the database (read only). A user of
/// that name who is not an enabled admin is a FAIL: the service starts, but
/// without that admin, and ADMIN_PASSWORD does nothing.
async fn admin_account(url: &str, username: &str) -> Finding {
    use auth_kit::store::{AdminBootstrapOutcome, inspect_admin};
    match inspect_admin(url, username, IO_TIMEOUT).await {
        Ok(None) => Finding::pass(
            Subject::AdminUsername,
            format!(
                "no user is called '{username}' yet: the service creates the admin at start-up"
            ),
        ),
        Ok(Some(AdminBootstrapOutcome::NotAnAdmin { role, disabled })) => Finding::fail(
            Subject::AdminUsername,
            format!(
                "'{username}' belongs to a user who is not an enabled admin (role '{role}', {}): the service starts without that admin and ignores ADMIN_PASSWORD",
                if disabled { "disabled" } else { "enabled" }
            ),
            AdminBootstrapOutcome::promote_hint(username),
        ),
        Ok(Some(_)) => Finding::pass(
            Subject::AdminUsername,
            format!("'{username}' is an enabled admin in the database"),
        ),
        Err(e) => Finding::warn(
            Subject::AdminUsername,
            format!(
                "cannot tell who '{username}' is in the database: {}",
                redact_password(url, &e)
            ),
            "check that DATABASE_URL is the service's database",
        ),
    }
}

/// DATABASE_URL answers `SELECT 1` within [`IO_TIMEOUT`] (and whether it
/// did, so later checks may read it). A SQLite file that does not exist yet
/// is not created here: the service creates it.
async fn database_reachable(url: &str) -> (Finding, bool) {
    let seconds = IO_TIMEOUT.as_secs();
    let described = auth_kit::config::describe_database(url);
    if let Some(rest) = url.strip_prefix("sqlite:")
        && let Some(finding) = sqlite_file(rest)
    {
        return (finding, false);
    }
    match auth_kit::store::check_database(url, IO_TIMEOUT).await {
        Ok(_) => (
            Finding::pass(
                Subject::DatabaseUrl,
                format!("reachable: {described} answered SELECT 1 (timeout {seconds} s)"),
            ),
            true,
        ),
        Err(e) => (
            Finding::fail(
                Subject::DatabaseUrl,
                format!(
                    "unreachable: {described}: {} (timeout {seconds} s)",
                    redact_password(url, &e)
                ),
                "start the database, or fix the host, port, user, password or file in DATABASE_URL",
            ),
            false,
        ),
    }
}

/// What a SQLite URL (after `sqlite:`) says before it is opened: in
/// memory, a file that does not exist yet, or one that is not a SQLite
/// database. `None` when it is a database file to open.
fn sqlite_file(rest: &str) -> Option<Finding> {
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let file = location.strip_prefix("//").unwrap_or(location);
    if file.is_empty() || file == ":memory:" {
        return Some(Finding::warn(
            Subject::DatabaseUrl,
            "SQLite in memory: every restart loses all users, logins and items",
            "use a file (sqlite://<name>.db?mode=rwc) or PostgreSQL outside tests",
        ));
    }
    let path = Path::new(file);
    if !path.exists() {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let creates = query.split('&').any(|p| p == "mode=rwc");
        return Some(if !folder.is_dir() {
            Finding::fail(
                Subject::DatabaseUrl,
                format!("the folder of the SQLite file {file} does not exist"),
                "create the folder, or point DATABASE_URL at an existing one",
            )
        } else if creates {
            Finding::pass(
                Subject::DatabaseUrl,
                format!("{file} does not exist yet: the service creates it at start-up (mode=rwc)"),
            )
        } else {
            Finding::fail(
                Subject::DatabaseUrl,
                format!(
                    "the SQLite file {file} does not exist, and without mode=rwc the service will not create it"
                ),
                format!("add ?mode=rwc (sqlite://{file}?mode=rwc), or create the database"),
            )
        });
    }
    // SQLite reads a file's header lazily (even `SELECT 1` passes on a
    // text file): check it here. An empty file is an empty database.
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut header));
    if let Ok(n) = read
        && n > 0
        && &header != b"SQLite format 3\0"
    {
        return Some(Finding::fail(
            Subject::DatabaseUrl,
            format!("unreachable: {file} is not a SQLite database"),
            "point DATABASE_URL at the service's database file, or move this file away",
        ));
    }
    None
}

/// The SMTP server of MAIL_URL answers, speaks TLS as configured and
/// accepts the credentials, within [`IO_TIMEOUT`]: what the service does
/// before each mail, without sending one.
async fn smtp_reachable(smtp: &SmtpSettings) -> Finding {
    let seconds = IO_TIMEOUT.as_secs();
    let described = smtp.describe();
    match auth_kit::mail::check_smtp(smtp, IO_TIMEOUT).await {
        Ok(()) => Finding::pass(
            Subject::MailUrl,
            format!(
                "reachable: mail is {described}; the server accepted the connection{} (timeout {seconds} s)",
                if smtp.credentials.is_some() {
                    " and the credentials"
                } else {
                    ""
                }
            ),
        ),
        Err(e) => {
            let e = match &smtp.credentials {
                Some(c) => e.replace(c.password.as_str(), "***"),
                None => e,
            };
            Finding::fail(
                Subject::MailUrl,
                format!("unreachable: mail is {described}: {e} (timeout {seconds} s)"),
                "check the host, port, TLS mode (smtp:// is STARTTLS, smtps:// is TLS), user and password in MAIL_URL, and that the server lets this machine in",
            )
        }
    }
}

/// The outbox folder of a `file://` MAIL_URL can be used (the service
/// creates it when missing).
fn outbox_usable(dir: &Path) -> Option<Finding> {
    if dir.is_dir() {
        return None;
    }
    Some(if dir.exists() {
        Finding::fail(
            Subject::MailUrl,
            format!("the outbox {} exists and is not a folder", dir.display()),
            "point MAIL_URL at a folder (file://./outbox), or move that file away",
        )
    } else {
        Finding::pass(
            Subject::MailUrl,
            format!(
                "the outbox {} does not exist yet: the service creates it at start-up (mode 0700)",
                dir.display()
            ),
        )
    })
}

/// `message` with the URL's password, should a driver quote it, masked.
pub(crate) fn redact_password(url: &str, message: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "***"),
        None => message.to_owned(),
    }
}

/// The HTTP client of every check and probe: a timeout on each request, no
/// redirects followed (a probe reports what the service itself answered).
pub fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(IO_TIMEOUT)
        .timeout(IO_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("auth-cli-validate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The innermost causes of an error, which say what actually happened.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    let mut current = e.source();
    while let Some(cause) = current {
        parts.push(cause.to_string());
        current = cause.source();
    }
    match parts.last() {
        Some(last) => last.clone(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_password("postgres://u:hunter2@db/app", "auth failed: hunter2"),
            "auth failed: ***"
        );
        assert_eq!(
            redact_password("sqlite://x.db", "no such file"),
            "no such file"
        );
    }

    #[test]
    fn kinds() {
        let env = |pairs: &[(&str, &str)]| Environment::from_pairs(pairs.iter().copied());
        assert_eq!(
            ServiceKind::of(&env(&[("SECRET_KEY", "x")])),
            ServiceKind::Jwt
        );
        assert_eq!(
            ServiceKind::of(&env(&[("SUPABASE_URL", "https://x.supabase.co")])),
            ServiceKind::Supabase
        );
        assert_eq!(
            ServiceKind::of(&env(&[("SUPABASE_URL", "https://x"), ("SECRET_KEY", "x")])),
            ServiceKind::Jwt
        );
        assert_eq!(ServiceKind::of(&env(&[])), ServiceKind::Jwt);
    }

    #[test]
    fn subjects_are_the_variables_names() {
        for subject in Subject::ALL {
            assert_eq!(Subject::of(&Finding::pass(subject, "x")), Some(subject));
        }
        assert_eq!(Subject::of(&Finding::pass("SECRET_KEY", "x")), None);
        assert_eq!(String::from(Subject::DatabaseUrl), "DATABASE_URL");
    }

    #[test]
    fn sqlite_files_are_checked_before_opening() {
        let memory = sqlite_file(":memory:").unwrap();
        assert_eq!(
            (memory.status, memory.subject.as_str()),
            (Status::Warn, "DATABASE_URL")
        );
        let nowhere = sqlite_file("//no-such-folder-here/x.db?mode=rwc").unwrap();
        assert_eq!(nowhere.status, Status::Fail);
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.db");
        std::fs::write(&text, "not a database").unwrap();
        let path = text.to_str().unwrap();
        assert_eq!(
            sqlite_file(&format!("//{path}")).unwrap().status,
            Status::Fail
        );
        std::fs::write(&text, "").unwrap();
        assert!(
            sqlite_file(&format!("//{path}")).is_none(),
            "an empty file is an empty database"
        );
    }

    #[test]
    fn table_aligns_and_shows_fixes() {
        let findings = [
            Finding::pass("ALGORITHM", "HS256"),
            Finding::fail("SECRET_KEY", "SECRET_KEY is not set", "run setup-jwt"),
        ];
        assert_eq!(
            table(&findings),
            "STATUS  WHAT        DETAIL\nPASS    ALGORITHM   HS256\nFAIL    SECRET_KEY  SECRET_KEY is not set\n                    fix: run setup-jwt\n"
        );
    }
}
