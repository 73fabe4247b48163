//! `cargo run -p gotrue-stub -- --port 9999`: the stub as a local server
//! for offline development. It is not Supabase, and says so.

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gotrue_stub::{RateLimit, StubConfig, StubError};

/// An offline stand-in for Supabase Auth (GoTrue), for development and
/// tests. NOT Supabase: in memory, no persistence; mails are written to a
/// folder, never sent.
#[derive(Debug, Parser)]
#[command(name = "gotrue-stub", version)]
struct Args {
    /// Port to listen on.
    #[arg(long, default_value_t = 9999)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Sign with HS256 and this secret (at least 32 bytes), like a legacy
    /// project, instead of a fresh ES256 key.
    #[arg(long, value_name = "SECRET")]
    hs256_secret: Option<String>,
    /// Turn email autoconfirm off: signups must be confirmed before sign-in,
    /// with the token of the confirmation mail written to the outbox.
    #[arg(long)]
    no_autoconfirm: bool,
    /// Folder the mails (signup confirmation, password recovery) are
    /// written to, one RFC 5322 .eml file each. Nothing is ever sent.
    #[arg(long, value_name = "DIR", default_value = "gotrue-outbox")]
    outbox: std::path::PathBuf,
    /// The app's URL: where the links in mails redirect after verifying,
    /// unless they name another allowed redirect_to.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    site_url: String,
    /// Also allow redirects to URLs starting with this (repeatable; end it
    /// with a slash).
    #[arg(long = "allow-redirect", value_name = "URL_PREFIX")]
    allow_redirect: Vec<String>,
    /// How long a mailed token is valid, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    otp_exp: u64,
    /// The shortest interval between two mails of one kind to one address,
    /// in seconds (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    max_frequency: u64,
    /// Project-wide mails per hour while autoconfirm is off (0: none).
    #[arg(long, value_name = "N", default_value_t = 30)]
    email_rate_limit: u32,
    /// Limit password recovery requests per client IP to this many per
    /// 5 minutes.
    #[arg(long, value_name = "N")]
    recover_rate_limit: Option<u32>,
    /// Refuse every signup (422 signup_disabled).
    #[arg(long)]
    disable_signup: bool,
    /// Minimum password length.
    #[arg(long, default_value_t = 6)]
    password_min_length: usize,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    jwt_exp: u64,
    /// Limit token requests per client IP to this many per 5 minutes.
    #[arg(long, value_name = "N")]
    token_rate_limit: Option<u32>,
    /// The URL clients use, when it is not http://HOST:PORT.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// Accept the SUPABASE_KEY found in this env file as the anon key, so
    /// the service reading that file needs no change (`--env-file .env`).
    #[arg(long, value_name = "PATH")]
    env_file: Option<std::path::PathBuf>,
}

/// The SUPABASE_KEY line of an env file, if it has a value.
fn anon_key_from(path: &std::path::Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("SUPABASE_KEY="))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .find(|value| !value.is_empty()))
}

fn banner(stub: &gotrue_stub::StubHandle, args: &Args) -> String {
    let rule = "=".repeat(76);
    let signing = if args.hs256_secret.is_some() {
        "HS256 with the secret given (JWKS is empty)".to_owned()
    } else {
        format!(
            "ES256, kid {}",
            stub.current_kid().unwrap_or_else(|| "-".to_owned())
        )
    };
    format!(
        "{rule}
  gotrue-stub: a DEVELOPMENT STAND-IN for Supabase Auth. THIS IS NOT SUPABASE.
  Users live in memory and vanish when it stops; no email is ever sent:
  mails are written to the outbox folder instead.
  Never point real users or production services at it.
{rule}
  signing:     {signing}
  autoconfirm: {autoconfirm}
  outbox:      {outbox}
  site URL:    {site_url}

  Configure the service under development with:
    SUPABASE_URL={url}
    SUPABASE_KEY={anon}

  Admin API (PUT {url}/auth/v1/admin/users/<id>) only, never in a service:
    service role key: {service}
{rule}",
        autoconfirm = if args.no_autoconfirm { "off" } else { "on" },
        outbox = stub
            .outbox_dir()
            .map_or_else(|| "-".to_owned(), |dir| dir.display().to_string()),
        site_url = args.site_url,
        url = stub.url(),
        anon = stub.anon_key(),
        service = stub.service_role_key(),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    let args = Args::parse();
    let mut config = stub_config(&args);
    if let Some(path) = &args.env_file {
        match anon_key_from(path) {
            Ok(Some(key)) => config = config.anon_key(key),
            Ok(None) => {
                eprintln!(
                    "gotrue-stub: {} has no SUPABASE_KEY; set one (any string) or drop --env-file",
                    path.display()
                );
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("gotrue-stub: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let stub = match gotrue_stub::spawn(config).await {
        Ok(stub) => stub,
        Err(e @ (StubError::Outbox { .. } | StubError::SiteUrl(_))) => {
            eprintln!("gotrue-stub: {e}; fix --outbox or --site-url");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("gotrue-stub: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", banner(&stub, &args));
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("gotrue-stub: cannot wait for Ctrl-C ({e}); stopping");
    }
    stub.shutdown().await;
    ExitCode::SUCCESS
}

/// Logs to standard error (standard output carries the banner), at
/// RUST_LOG's level or the stub's info.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("gotrue_stub=info")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// The stub's settings from the command line (the anon key of
/// `--env-file` aside).
fn stub_config(args: &Args) -> StubConfig {
    let mut config = match &args.hs256_secret {
        Some(secret) => StubConfig::hs256(secret.clone()),
        None => StubConfig::es256(),
    }
    .host(args.host)
    .port(args.port)
    .password_min_length(args.password_min_length)
    .access_token_ttl(Duration::from_secs(args.jwt_exp))
    .outbox(args.outbox.clone())
    .site_url(args.site_url.clone())
    .otp_expiry(Duration::from_secs(args.otp_exp))
    .email_max_frequency(Duration::from_secs(args.max_frequency))
    .email_rate_limit((args.email_rate_limit > 0).then_some(RateLimit {
        requests: args.email_rate_limit,
        per: Duration::from_secs(3600),
    }));
    for prefix in &args.allow_redirect {
        config = config.allow_redirect(prefix.clone());
    }
    if let Some(requests) = args.recover_rate_limit {
        config = config.recover_rate_limit(RateLimit {
            requests,
            per: Duration::from_secs(300),
        });
    }
    if args.no_autoconfirm {
        config = config.require_email_confirmation();
    }
    if args.disable_signup {
        config = config.disable_signup();
    }
    if let Some(requests) = args.token_rate_limit {
        config = config.token_rate_limit(RateLimit {
            requests,
            per: Duration::from_secs(300),
        });
    }
    if let Some(url) = &args.public_url {
        config = config.public_url(url.clone());
    }
    config
}
