//! `cargo xtask fleet-test`: a stamped oauth2 service deployed the way
//! services are deployed, and checked there.
//!
//! Two instances of the service run behind nginx (round robin, nginx sets
//! `X-Forwarded-For`, the instances trust it through TRUSTED_PROXIES), on
//! one PostgreSQL database (a fresh one, dropped at the end) and one Redis
//! (RATE_LIMIT_URL) that this command starts itself on a free port, so it
//! can kill it. Test clients bind distinct loopback addresses (127.0.0.x),
//! so nginx and the instances see them as distinct clients.
//!
//! What it shows, one line each:
//! - failed logins spread over both instances lock a username after
//!   exactly LOGIN_MAX_FAILURES;
//! - the per-IP limit follows the forwarded client: one client locked out
//!   through the proxy does not lock out the others;
//! - a client talking to an instance directly cannot choose its address
//!   with `X-Forwarded-For`;
//! - a logout through one instance is refused by the other within 1 s (the
//!   other serves the token from its session cache until PostgreSQL's
//!   notification arrives; the delay is printed);
//! - an instance SIGKILLed under a signup load loses no acknowledged user,
//!   and the other keeps serving;
//! - Redis killed: password logins and signups answer 503 while tokens keep
//!   working; Redis back: logins work again, without a restart.
//!
//! It needs nginx (`apt-get install nginx-light`), `redis-server` and a
//! PostgreSQL server (TEST_DATABASE_URL). Without them it says what is
//! missing and skips, unless REQUIRE_FLEET_TEST=1 (CI), where a missing
//! piece is an error.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sqlx::Connection as _;

use crate::new::{self, Strategy};
use crate::repo;

/// Arguments of `cargo xtask fleet-test`.
#[derive(clap::Args, Debug)]
pub struct FleetTestArgs {
    /// Keep the scratch folder (configuration, logs) instead of removing it.
    #[arg(long)]
    pub keep: bool,
}

/// The limits the instances run with: small, so the checks stay quick.
const MAX_FAILURES_PER_USERNAME: usize = 5;
const MAX_FAILURES_PER_IP: usize = 10;
/// Each request's time limit: a hung instance fails the check, not the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &FleetTestArgs) -> Result<()> {
    let Some(tools) = Tools::find()? else {
        return Ok(());
    };
    let binary = build_service()?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let scratch = tempfile::Builder::new()
        .prefix("fleet-test-")
        .tempdir_in(repo::root().join("target"))
        .context("cannot create a scratch folder under target/")?;
    let outcome = runtime.block_on(async {
        let mut fleet = Fleet::start(&tools, &binary, scratch.path()).await?;
        let result = fleet.check_all().await;
        fleet.stop().await;
        result
    });
    if args.keep || outcome.is_err() {
        let kept = scratch.keep();
        eprintln!(
            "fleet test: configuration and logs kept in {}",
            kept.display()
        );
    }
    outcome
}

/// The programs and services the fleet test needs.
pub(crate) struct Tools {
    pub nginx: PathBuf,
    pub redis_server: PathBuf,
    pub database_url: String,
}

impl Tools {
    /// `None` (after saying why) when something is missing and the test is
    /// not required.
    pub fn find() -> Result<Option<Self>> {
        let required = std::env::var("REQUIRE_FLEET_TEST").is_ok_and(|v| v == "1");
        let nginx = find_program("nginx", &["/usr/sbin/nginx"]);
        let redis_server = find_program("redis-server", &["/usr/bin/redis-server"]);
        let database_url = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"));
        let mut missing = Vec::new();
        if nginx.is_none() {
            missing.push("nginx (apt-get install nginx-light)");
        }
        if redis_server.is_none() {
            missing.push("redis-server (apt-get install redis-server)");
        }
        if database_url.is_none() {
            missing.push("a PostgreSQL server (set TEST_DATABASE_URL=postgres://...)");
        }
        match (nginx, redis_server, database_url) {
            (Some(nginx), Some(redis_server), Some(database_url)) => Ok(Some(Self {
                nginx,
                redis_server,
                database_url,
            })),
            _ if required => bail!(
                "the fleet test is required (REQUIRE_FLEET_TEST=1) but needs {}",
                missing.join(", ")
            ),
            _ => {
                println!("== fleet test: skipped; it needs {}", missing.join(", "));
                Ok(None)
            }
        }
    }
}

pub(crate) fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        fallbacks
            .iter()
            .map(PathBuf::from)
            .find(|candidate| candidate.is_file())
    })
}

/// Stamps the oauth2 template as `fleet-api` and builds it; returns the binary.
fn build_service() -> Result<PathBuf> {
    build_stamped("fleet-api", false)
}

/// Stamps the oauth2 template as `name` under target/fleet-test and builds
/// it (optimised when `release`); returns the binary.
pub(crate) fn build_stamped(name: &str, release: bool) -> Result<PathBuf> {
    let dest = repo::root().join("target").join("fleet-test").join(name);
    new::stamp(Strategy::Oauth2, name, &dest, true)?;
    let mut args = vec!["build", "--quiet"];
    if release {
        args.push("--release");
    }
    println!("--> cargo {} (in {})", args.join(" "), dest.display());
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(&args)
        .current_dir(&dest)
        .env("CARGO_TARGET_DIR", repo::stamped_target_dir())
        .status()
        .context("cannot run cargo")?;
    ensure!(status.success(), "building the stamped {name} failed");
    let profile = if release { "release" } else { "debug" };
    Ok(repo::stamped_target_dir().join(profile).join(name))
}

/// A child process, killed (SIGKILL) when dropped.
pub(crate) struct Process {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Self> {
        let out =
            fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log,
        })
    }

    /// The operating system's id of the process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the log when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                log_tail(&self.log)
            );
        }
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A Redis server of our own, on a fixed port so it can come back there.
pub(crate) struct Redis {
    pub binary: PathBuf,
    pub port: u16,
    pub dir: PathBuf,
    pub process: Option<Process>,
}

impl Redis {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self) -> Result<()> {
        let mut command = Command::new(&self.binary);
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        command.current_dir(&self.dir);
        let mut process = Process::spawn("redis-server", command, self.dir.join("redis.log"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_answers(self.port) {
            process.check_alive()?;
            ensure!(
                Instant::now() < deadline,
                "redis-server did not answer PING within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.process = Some(process);
        Ok(())
    }

    pub fn kill(&mut self) {
        self.process = None;
    }
}

fn redis_answers(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}

/// One instance of the service.
pub(crate) struct Instance {
    pub name: String,
    pub port: u16,
    pub binary: PathBuf,
    pub dir: PathBuf,
    pub env: Vec<(String, String)>,
    pub process: Option<Process>,
}

impl Instance {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self) -> Result<()> {
        let mut command = Command::new(&self.binary);
        // Only the settings given here: nothing from this shell's environment
        // or a stray .env (the working directory is the scratch folder).
        command.env_clear().current_dir(&self.dir);
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.env("PORT", self.port.to_string());
        let log = self.dir.join(format!("{}.log", self.name));
        let mut process = Process::spawn(&self.name, command, log)?;
        let client = client(None)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            process.check_alive()?;
            let health = client.get(format!("{}/health", self.url())).send().await;
            if health.is_ok_and(|r| r.status() == 200) {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "{} did not become healthy within 60 s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.process = Some(process);
        Ok(())
    }

    /// SIGKILL: no graceful shutdown, nothing flushed.
    pub fn kill(&mut self) {
        self.process = None;
    }
}

/// nginx in front of the instances.
pub(crate) struct Nginx {
    pub port: u16,
    _process: Process,
}

impl Nginx {
    pub async fn start(binary: &Path, dir: &Path, upstreams: &[u16]) -> Result<Self> {
        let port = free_port()?;
        let conf = nginx_conf(dir, port, upstreams);
        let conf_path = dir.join("nginx.conf");
        fs::write(&conf_path, conf)?;
        let mut command = Command::new(binary);
        command
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("nginx-error.log"));
        let mut process = Process::spawn("nginx", command, dir.join("nginx.log"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            process.check_alive()?;
            ensure!(
                Instant::now() < deadline,
                "nginx did not listen within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            port,
            _process: process,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The configuration docs/deployment.md shows, with this run's ports and
/// folders. nginx connects to the instances from 127.0.0.1 (`proxy_bind`),
/// the one address the instances trust.
fn nginx_conf(dir: &Path, port: u16, upstreams: &[u16]) -> String {
    let dir = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        r#"daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream auth_service {{
{servers}        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64k;

        location / {{
            proxy_pass http://auth_service;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            # Appends the address nginx sees; the service takes the rightmost
            # address it does not trust, so a client cannot choose its own.
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_bind 127.0.0.1;
            proxy_connect_timeout 2s;
            # A refused connection is retried on the other instance; a request
            # already sent (a POST in flight) is never replayed.
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#
    )
}

/// A fresh PostgreSQL database, dropped when the test ends.
pub(crate) struct Database {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl Database {
    pub async fn create(server_url: &str) -> Result<Self> {
        let name = format!(
            "fleet_{}_{}",
            std::process::id(),
            &auth_kit::random::secret_hex()[..8]
        );
        let mut admin = sqlx::PgConnection::connect(server_url)
            .await
            .context("cannot connect to TEST_DATABASE_URL")?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .context("cannot create the fleet test's database")?;
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(server_url).context("TEST_DATABASE_URL is not a URL")?;
        url.set_path(&name);
        Ok(Self {
            admin_url: server_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }

    async fn usernames(&self) -> Result<BTreeSet<String>> {
        let mut connection = sqlx::PgConnection::connect(&self.url).await?;
        let names: Vec<String> = sqlx::query_scalar("SELECT username FROM users")
            .fetch_all(&mut connection)
            .await?;
        let _ = connection.close().await;
        Ok(names.into_iter().collect())
    }

    pub async fn drop_database(&self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let dropped = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin)
            .await;
            if let Err(e) = dropped {
                eprintln!("fleet test: could not drop database {}: {e}", self.name);
            }
            let _ = admin.close().await;
        }
    }
}

/// The whole deployment.
struct Fleet {
    database: Database,
    redis: Redis,
    instances: [Instance; 2],
    nginx: Nginx,
}

impl Fleet {
    async fn start(tools: &Tools, binary: &Path, dir: &Path) -> Result<Self> {
        let database = Database::create(&tools.database_url).await?;
        let mut redis = Redis {
            binary: tools.redis_server.clone(),
            port: free_port()?,
            dir: dir.to_owned(),
            process: None,
        };
        redis.start().await?;
        // Both instances bootstrap the same admin at once: creation is idempotent.
        let admin_password = auth_kit::random::secret_hex()[..20].to_owned();
        let env: Vec<(String, String)> = [
            ("SECRET_KEY", auth_kit::random::secret_hex()),
            ("DATABASE_URL", database.url.clone()),
            ("RATE_LIMIT_URL", redis.url()),
            ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            ("HOST", "127.0.0.1".to_owned()),
            ("LOGIN_MAX_FAILURES", MAX_FAILURES_PER_USERNAME.to_string()),
            ("LOGIN_MAX_FAILURES_PER_IP", MAX_FAILURES_PER_IP.to_string()),
            ("SIGNUP_MAX_PER_IP", "1000".to_owned()),
            ("ADMIN_USERNAME", "fleet-admin".to_owned()),
            ("ADMIN_PASSWORD", admin_password),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut instances = [0, 1].map(|i| Instance {
            name: format!("instance-{}", i + 1),
            port: 0,
            binary: binary.to_owned(),
            dir: dir.to_owned(),
            env: env.clone(),
            process: None,
        });
        for instance in &mut instances {
            instance.port = free_port()?;
            instance.start().await?;
        }
        let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
        let nginx = Nginx::start(&tools.nginx, dir, &ports).await?;
        Ok(Self {
            database,
            redis,
            instances,
            nginx,
        })
    }

    async fn stop(&mut self) {
        for instance in &mut self.instances {
            instance.kill();
        }
        self.redis.kill();
        self.database.drop_database().await;
    }

    async fn check_all(&mut self) -> Result<()> {
        println!(
            "== fleet test: 2 instances (:{}, :{}) behind nginx (:{}), PostgreSQL database {}, Redis :{}",
            self.instances[0].port,
            self.instances[1].port,
            self.nginx.port,
            self.database.name,
            self.redis.port
        );
        let started = Instant::now();
        let mut failures = 0;
        macro_rules! check {
            ($name:expr, $check:expr) => {
                match $check.await {
                    Ok(detail) => println!("PASS  {:<58} {detail}", $name),
                    Err(e) => {
                        failures += 1;
                        println!("FAIL  {:<58} {e:#}", $name);
                    }
                }
            };
        }
        check!(
            "username lock spans both instances",
            self.username_lock_spans_instances()
        );
        check!(
            "per-IP limit follows the forwarded client",
            self.ip_limit_follows_forwarded_client()
        );
        check!(
            "direct client cannot choose its address",
            self.direct_client_cannot_spoof()
        );
        check!(
            "logout through one instance, refused by the other",
            self.logout_seen_by_other_instance()
        );
        check!(
            "instance SIGKILLed under signup load",
            self.kill_instance_under_signup_load()
        );
        check!(
            "Redis down: logins 503, tokens work; back: logins 200",
            self.redis_outage()
        );
        println!(
            "== fleet test: {} in {:.1}s",
            if failures == 0 {
                "passed".to_owned()
            } else {
                format!("{failures} check(s) failed")
            },
            started.elapsed().as_secs_f64()
        );
        ensure!(failures == 0, "the fleet test failed");
        Ok(())
    }

    async fn signup(
        &self,
        client: &reqwest::Client,
        base: &str,
        username: &str,
        password: &str,
    ) -> Result<()> {
        let response = client
            .post(format!("{base}/auth/signup"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await?;
        ensure!(
            response.status() == 201,
            "signup of {username} answered {}",
            response.status()
        );
        Ok(())
    }

    /// Failures alternate between the instances, talked to directly.
    async fn username_lock_spans_instances(&self) -> Result<String> {
        let client = client(Some([127, 0, 0, 11]))?;
        let password = "fleet victim one";
        self.signup(&client, &self.nginx.url(), "victim-one", password)
            .await?;
        for attempt in 0..MAX_FAILURES_PER_USERNAME {
            let instance = &self.instances[attempt % 2];
            let answer = login(&client, &instance.url(), "victim-one", "wrong password").await?;
            ensure!(
                answer.status == 400,
                "failure {} at {} answered {} (expected 400 invalid_grant)",
                attempt + 1,
                instance.name,
                answer.status
            );
        }
        let mut retry_after = Vec::new();
        for instance in &self.instances {
            let answer = login(&client, &instance.url(), "victim-one", password).await?;
            ensure!(
                answer.status == 429,
                "after {MAX_FAILURES_PER_USERNAME} failures spread over both instances, the right password at {} answered {} (expected 429)",
                instance.name,
                answer.status
            );
            retry_after.push(answer.retry_after.unwrap_or_default());
        }
        Ok(format!(
            "{MAX_FAILURES_PER_USERNAME} failures alternating between instances; then 429 at both (Retry-After {})",
            retry_after.join(", ")
        ))
    }

    /// Through nginx: one client exhausts its per-IP budget; another is unaffected.
    async fn ip_limit_follows_forwarded_client(&self) -> Result<String> {
        let base = self.nginx.url();
        let attacker = client(Some([127, 0, 0, 20]))?;
        let neighbour = client(Some([127, 0, 0, 21]))?;
        self.signup(&neighbour, &base, "neighbour", "fleet neighbour pw")
            .await?;
        for attempt in 0..MAX_FAILURES_PER_IP {
            let answer = login(&attacker, &base, &format!("nobody-{attempt}"), "guess").await?;
            ensure!(
                answer.status == 400,
                "failure {} answered {}",
                attempt + 1,
                answer.status
            );
        }
        let locked = login(&attacker, &base, "nobody-extra", "guess").await?;
        ensure!(
            locked.status == 429,
            "after {MAX_FAILURES_PER_IP} failures the client answered {}, expected 429",
            locked.status
        );
        // Its own X-Forwarded-For does not free it: nginx appends the real address.
        let spoofed = attacker
            .post(format!("{base}/token"))
            .header("x-forwarded-for", "203.0.113.7")
            .form(&[
                ("grant_type", "password"),
                ("username", "nobody-x"),
                ("password", "guess"),
            ])
            .send()
            .await?;
        ensure!(
            spoofed.status() == 429,
            "a locked client sending its own X-Forwarded-For answered {}",
            spoofed.status()
        );
        let other = login(&neighbour, &base, "neighbour", "fleet neighbour pw").await?;
        ensure!(
            other.status == 200,
            "another client behind the same proxy answered {} (expected 200): the per-IP lock hit everyone",
            other.status
        );
        Ok(format!(
            "127.0.0.20 locked after {MAX_FAILURES_PER_IP} failures (also with a forged header); 127.0.0.21 logs in (200)"
        ))
    }

    /// An untrusted peer's X-Forwarded-For is ignored.
    async fn direct_client_cannot_spoof(&self) -> Result<String> {
        let direct = client(Some([127, 0, 0, 30]))?;
        let base = self.instances[0].url();
        for attempt in 0..MAX_FAILURES_PER_IP {
            let answer = direct
                .post(format!("{base}/token"))
                .header("x-forwarded-for", format!("198.51.100.{attempt}"))
                .form(&[
                    ("grant_type", "password"),
                    ("username", &format!("ghost-{attempt}")),
                    ("password", "guess"),
                ])
                .send()
                .await?;
            ensure!(
                answer.status() == 400,
                "failure {} answered {}",
                attempt + 1,
                answer.status()
            );
        }
        let answer = direct
            .post(format!("{base}/token"))
            .header("x-forwarded-for", "198.51.100.250")
            .form(&[
                ("grant_type", "password"),
                ("username", "ghost-x"),
                ("password", "guess"),
            ])
            .send()
            .await?;
        ensure!(
            answer.status() == 429,
            "a direct client changing X-Forwarded-For on every request was not limited (answered {})",
            answer.status()
        );
        Ok(format!(
            "{MAX_FAILURES_PER_IP} failures with {MAX_FAILURES_PER_IP} forged addresses count as one client: 429"
        ))
    }

    async fn logout_seen_by_other_instance(&self) -> Result<String> {
        let client = client(Some([127, 0, 0, 12]))?;
        let (first, second) = (&self.instances[0], &self.instances[1]);
        self.signup(&client, &first.url(), "leaver", "fleet leaver pw")
            .await?;
        let answer = login(&client, &first.url(), "leaver", "fleet leaver pw").await?;
        ensure!(answer.status == 200, "login answered {}", answer.status);
        let token = answer.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let me = |base: String| {
            let client = client.clone();
            let token = token.clone();
            async move {
                client
                    .get(format!("{base}/users/me"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        };
        ensure!(
            me(second.url()).await? == 200,
            "the token did not work at the other instance"
        );
        let logout = client
            .post(format!("{}/auth/logout", first.url()))
            .bearer_auth(&token)
            .send()
            .await?;
        ensure!(
            logout.status() == 204,
            "logout answered {}",
            logout.status()
        );
        // The other instance served the token from its session cache; the
        // logout reaches it through PostgreSQL LISTEN/NOTIFY.
        let revoked_at = Instant::now();
        let mut polls = 0;
        loop {
            polls += 1;
            let status = me(second.url()).await?;
            if status == 401 {
                break;
            }
            ensure!(
                status == 200 && revoked_at.elapsed() < Duration::from_secs(1),
                "{:.0} ms after the logout at {}, {} still answered {status}",
                revoked_at.elapsed().as_secs_f64() * 1000.0,
                first.name,
                second.name
            );
        }
        Ok(format!(
            "401 at {} {:.1} ms after the logout at {} answered (request {polls})",
            second.name,
            revoked_at.elapsed().as_secs_f64() * 1000.0,
            first.name,
        ))
    }

    async fn kill_instance_under_signup_load(&mut self) -> Result<String> {
        const SIGNUPS: usize = 240;
        const CONCURRENCY: usize = 12;
        let base = self.nginx.url();
        let client = client(Some([127, 0, 0, 40]))?;
        let (sender, mut acknowledged) = tokio::sync::mpsc::unbounded_channel::<(usize, bool)>();
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut tasks = Vec::new();
        for n in 0..SIGNUPS {
            let permit = semaphore.clone().acquire_owned().await?;
            let client = client.clone();
            let base = base.clone();
            let sender = sender.clone();
            tasks.push(tokio::spawn(async move {
                let response = client
                    .post(format!("{base}/auth/signup"))
                    .json(&serde_json::json!({"username": format!("load-{n}"), "password": "fleet load pw"}))
                    .send()
                    .await;
                let created = response.is_ok_and(|r| r.status() == 201);
                let _ = sender.send((n, created));
                drop(permit);
            }));
            if n == SIGNUPS / 4 {
                // A quarter in: the first instance dies without warning.
                self.instances[0].kill();
            }
        }
        drop(sender);
        for task in tasks {
            task.await?;
        }
        let mut created = BTreeSet::new();
        let mut refused = 0;
        let mut after_kill = 0;
        while let Some((n, ok)) = acknowledged.recv().await {
            if ok {
                created.insert(format!("load-{n}"));
                if n > SIGNUPS / 4 + CONCURRENCY {
                    after_kill += 1;
                }
            } else {
                refused += 1;
            }
        }
        let stored = self.database.usernames().await?;
        let lost: Vec<&String> = created.difference(&stored).collect();
        ensure!(
            lost.is_empty(),
            "{} acknowledged signups are missing from the database: {lost:?}",
            lost.len()
        );
        ensure!(
            after_kill > 0,
            "no signup succeeded after the kill: the other instance did not keep serving"
        );
        let health = reqwest_status(&client, &format!("{base}/health")).await?;
        ensure!(
            health == 200,
            "after the kill, /health through nginx answered {health}"
        );
        // Back to two instances for the checks that follow.
        self.instances[0].start().await?;
        Ok(format!(
            "{} acknowledged, all stored; {refused} not acknowledged (in flight at the kill); {after_kill} served after the kill",
            created.len()
        ))
    }

    async fn redis_outage(&mut self) -> Result<String> {
        let base = self.nginx.url();
        let client = client(Some([127, 0, 0, 50]))?;
        self.signup(&client, &base, "outage", "fleet outage pw")
            .await?;
        let answer = login(&client, &base, "outage", "fleet outage pw").await?;
        ensure!(
            answer.status == 200,
            "login before the outage answered {}",
            answer.status
        );
        let token = answer.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();

        self.redis.kill();
        let during = login(&client, &base, "outage", "fleet outage pw").await?;
        ensure!(
            during.status == 503
                && during.body["error"] == "temporarily_unavailable"
                && during.retry_after.is_some(),
            "with Redis down a login answered {} {} (expected 503 temporarily_unavailable with Retry-After)",
            during.status,
            // Never the whole body: it may hold tokens.
            during.body["error"]
        );
        let signup = client
            .post(format!("{base}/auth/signup"))
            .json(&serde_json::json!({"username": "outage-new", "password": "fleet outage pw"}))
            .send()
            .await?;
        ensure!(
            signup.status() == 503,
            "with Redis down a signup answered {}",
            signup.status()
        );
        for instance in &self.instances {
            let me = client
                .get(format!("{}/users/me", instance.url()))
                .bearer_auth(&token)
                .send()
                .await?;
            ensure!(
                me.status() == 200,
                "with Redis down, /users/me at {} answered {}",
                instance.name,
                me.status()
            );
        }

        self.redis.start().await?;
        let back = Instant::now();
        let deadline = back + Duration::from_secs(30);
        loop {
            let answer = login(&client, &base, "outage", "fleet outage pw").await?;
            if answer.status == 200 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "30 s after Redis came back, logins still answer {}",
                answer.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(format!(
            "down: login 503 (Retry-After {}), signup 503, /users/me 200 at both; back: login 200 after {:.1} s",
            during.retry_after.unwrap_or_default(),
            back.elapsed().as_secs_f64()
        ))
    }
}

/// A client whose connections come from `source` (a loopback address),
/// so nginx and the instances see it as its own client.
pub(crate) fn client(source: Option<[u8; 4]>) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(ip) = source {
        builder = builder.local_address(IpAddr::V4(Ipv4Addr::from(ip)));
    }
    builder.build().context("cannot build an HTTP client")
}

pub(crate) struct Answer {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

pub(crate) async fn login(
    client: &reqwest::Client,
    base: &str,
    username: &str,
    password: &str,
) -> Result<Answer> {
    let response = client
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ])
        .send()
        .await
        .with_context(|| format!("POST {base}/token"))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

async fn reqwest_status(client: &reqwest::Client, url: &str) -> Result<u16> {
    Ok(client.get(url).send().await?.status().as_u16())
}
