//! `cargo xtask load`: load figures for a stamped oauth2 service, side by
//! side in one run, measured with wrk (Debian's `wrk` package).
//!
//! Default: one instance (release build, SQLite) and the FastAPI peer
//! (`--peer DIR`, its `run.sh`; skipped when not given), each alone:
//! - GET / (no database) and GET /users/me with the session cache on and
//!   off: requests per second and p99;
//! - /users/me's ratio to GET / on the same binary, and to the peer;
//! - a login flood (256 connections, distinct users) alone: logins per
//!   second against the machine's limit measured in the same run (cores /
//!   one login's time at rest);
//! - the same flood next to 8 clients on /users/me: /users/me's p99
//!   meanwhile (the hashing threads run at a lower priority);
//! - the service's peak RSS;
//! - the cross-instance revocation delay: two instances sharing a session
//!   cache channel (PostgreSQL LISTEN/NOTIFY with TEST_DATABASE_URL; Redis
//!   pub/sub on one SQLite file with `redis-server`), 100 logouts at one,
//!   each timed until the other answers 401: median and maximum.
//!
//! `--fleet`: two instances behind nginx on PostgreSQL and Redis next to
//! one instance reached directly (the same database and Redis), with the
//! same routes and flood: what the proxy and the shared limits cost.
//!
//! The machine is shared and noisy: compare figures from one run only.
//! Nothing here is a pass/fail test; CI does not run it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::fleet::{self, Database, Instance, Nginx, Process, Redis, Tools};
use crate::repo;

/// Arguments of `cargo xtask load`.
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The FastAPI peer's folder (holding run.sh) to measure beside the service.
    #[arg(long)]
    pub peer: Option<PathBuf>,
    /// Two instances behind nginx on PostgreSQL and Redis, next to one direct.
    #[arg(long)]
    pub fleet: bool,
}

/// Users of the login flood, one per connection, so the per-username limit
/// (which counts attempts in flight) never refuses the flood.
const FLOOD_CONNECTIONS: usize = 256;
const PASSWORD: &str = "load-password-1";

pub fn run(args: &LoadArgs) -> Result<()> {
    let wrk = fleet::find_program("wrk", &["/usr/bin/wrk"])
        .context("wrk is needed for load figures: apt-get install wrk")?;
    if let Some(peer) = &args.peer {
        ensure!(
            peer.join("run.sh").is_file(),
            "--peer {} has no run.sh: point it at the FastAPI peer's folder",
            peer.display()
        );
    }
    let tools = if args.fleet {
        Some(Tools::find()?.context("--fleet needs nginx, redis-server and TEST_DATABASE_URL")?)
    } else {
        None
    };
    let binary = fleet::build_stamped("load-api", true)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let scratch = tempfile::Builder::new()
        .prefix("load-")
        .tempdir_in(repo::root().join("target"))?;
    let wrk = Wrk {
        binary: wrk,
        seconds: args.seconds,
        dir: scratch.path().to_owned(),
    };
    let report = runtime.block_on(async {
        match &tools {
            Some(tools) => fleet_figures(tools, &binary, &wrk).await,
            None => single_figures(&binary, args.peer.as_deref(), &wrk).await,
        }
    })?;
    println!("{report}");
    Ok(())
}

/// A wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    requests_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non_2xx: u64,
}

struct Wrk {
    binary: PathBuf,
    seconds: u64,
    dir: PathBuf,
}

impl Wrk {
    fn command(
        &self,
        url: &str,
        connections: usize,
        token: Option<&str>,
        script: Option<&Path>,
    ) -> Command {
        let mut command = Command::new(&self.binary);
        command.args([
            "-t1".to_owned(),
            format!("-c{connections}"),
            format!("-d{}s", self.seconds),
            "--latency".to_owned(),
        ]);
        if let Some(token) = token {
            command
                .arg("-H")
                .arg(format!("Authorization: Bearer {token}"));
        }
        if let Some(script) = script {
            command.arg("-s").arg(script);
        }
        command.arg(url);
        command
    }

    fn run(&self, url: &str, connections: usize, token: Option<&str>) -> Result<Figures> {
        let output = self.command(url, connections, token, None).output()?;
        parse_wrk(&String::from_utf8_lossy(&output.stdout))
    }

    /// A login flood on `base`, nothing else.
    fn flood_alone(&self, base: &str) -> Result<Figures> {
        let script = self.dir.join("logins.lua");
        fs::write(&script, login_script(FLOOD_CONNECTIONS))?;
        let flood = self
            .command(
                &format!("{base}/token"),
                FLOOD_CONNECTIONS,
                None,
                Some(&script),
            )
            .output()?;
        parse_wrk(&String::from_utf8_lossy(&flood.stdout))
    }

    /// A login flood on `base` and, at the same time, 8 clients on /users/me.
    fn flood(&self, base: &str, token: &str) -> Result<(Figures, Figures)> {
        let script = self.dir.join("logins.lua");
        fs::write(&script, login_script(FLOOD_CONNECTIONS))?;
        let flood = self
            .command(
                &format!("{base}/token"),
                FLOOD_CONNECTIONS,
                None,
                Some(&script),
            )
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let readers = self
            .command(&format!("{base}/users/me"), 8, Some(token), None)
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let flood = flood.wait_with_output()?;
        let readers = readers.wait_with_output()?;
        Ok((
            parse_wrk(&String::from_utf8_lossy(&flood.stdout))?,
            parse_wrk(&String::from_utf8_lossy(&readers.stdout))?,
        ))
    }
}

/// Each request logs in as the next of `users` users.
fn login_script(users: usize) -> String {
    format!(
        r#"local n = 0
request = function()
  n = n + 1
  local body = "grant_type=password&username=flood-" .. (n % {users}) .. "&password={PASSWORD}"
  return wrk.format("POST", nil, {{["Content-Type"] = "application/x-www-form-urlencoded"}}, body)
end
"#
    )
}

fn parse_wrk(output: &str) -> Result<Figures> {
    let mut figures = Figures::default();
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            figures.requests_per_second = rest.trim().parse()?;
        } else if let Some(rest) = line.strip_prefix("50%") {
            figures.p50_ms = duration_ms(rest.trim())?;
        } else if let Some(rest) = line.strip_prefix("99%") {
            figures.p99_ms = duration_ms(rest.trim())?;
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            figures.non_2xx = rest.trim().parse()?;
        } else if line.contains(" requests in ") {
            figures.requests = line.split_whitespace().next().unwrap_or("0").parse()?;
        }
    }
    ensure!(
        figures.requests_per_second > 0.0,
        "wrk printed no figures:\n{output}"
    );
    Ok(figures)
}

fn duration_ms(text: &str) -> Result<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .context("a wrk latency without a unit")?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse()?;
    Ok(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        other => bail!("unknown wrk latency unit {other}"),
    })
}

/// The settings every measured instance runs with. The limits are raised
/// so they do not decide the figures: the flood comes from one address.
fn base_env(database_url: &str, cache_seconds: u64) -> Vec<(String, String)> {
    [
        ("SECRET_KEY", auth_kit::random::secret_hex()),
        ("DATABASE_URL", database_url.to_owned()),
        ("HOST", "127.0.0.1".to_owned()),
        ("SESSION_CACHE_SECONDS", cache_seconds.to_string()),
        ("LOGIN_MAX_FAILURES_PER_IP", "100000".to_owned()),
        ("SIGNUP_MAX_PER_IP", "100000".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn start_instance(
    name: &str,
    binary: &Path,
    dir: &Path,
    env: Vec<(String, String)>,
) -> Result<Instance> {
    let mut instance = Instance {
        name: name.to_owned(),
        port: fleet::free_port()?,
        binary: binary.to_owned(),
        dir: dir.to_owned(),
        env,
        process: None,
    };
    instance.start().await?;
    Ok(instance)
}

/// Signs up the flood's users and one reader; returns the reader's token.
async fn prepare_users(base: &str) -> Result<String> {
    let client = fleet::client(None)?;
    let signup = |name: String| {
        let client = client.clone();
        let base = base.to_owned();
        async move {
            let response = client
                .post(format!("{base}/auth/signup"))
                .json(&serde_json::json!({"username": name, "password": PASSWORD}))
                .send()
                .await?;
            // 409: created by an earlier run on the same database.
            ensure!(
                response.status() == 201 || response.status() == 409,
                "signup of {name} answered {}",
                response.status()
            );
            anyhow::Ok(())
        }
    };
    let names: Vec<String> = (0..FLOOD_CONNECTIONS)
        .map(|n| format!("flood-{n}"))
        .chain(["reader".to_owned()])
        .collect();
    for chunk in names.chunks(8) {
        futures_join(chunk.iter().cloned().map(&signup).collect()).await?;
    }
    let answer = fleet::login(&client, base, "reader", PASSWORD).await?;
    ensure!(
        answer.status == 200,
        "the reader's login answered {}",
        answer.status
    );
    Ok(answer.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn futures_join<F: std::future::Future<Output = Result<()>> + Send + 'static>(
    futures: Vec<F>,
) -> Result<()> {
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    for handle in handles {
        handle.await??;
    }
    Ok(())
}

/// The median time of one login at rest: one password hash, plus a few
/// hundred microseconds of HTTP and database work.
async fn one_login_ms(base: &str) -> Result<f64> {
    let client = fleet::client(None)?;
    let mut times = Vec::new();
    for n in 0..20 {
        let started = Instant::now();
        let answer = fleet::login(&client, base, &format!("flood-{n}"), PASSWORD).await?;
        ensure!(answer.status == 200, "a login answered {}", answer.status);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Peak resident memory of a process (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/<pid>/status")?;
    Ok(kib / 1024.0)
}

fn pid_of(instance: &Instance) -> Result<u32> {
    instance
        .process
        .as_ref()
        .map(Process::pid)
        .context("the instance is not running")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The figures of one instance with the session cache on.
struct CacheOnFigures {
    root: Figures,
    me: Figures,
    one_login_ms: f64,
    flood: Figures,
    flood_with_readers: Figures,
    readers: Figures,
    peak_rss_mib: f64,
}

async fn single_figures(binary: &Path, peer: Option<&Path>, wrk: &Wrk) -> Result<String> {
    let dir = &wrk.dir;
    let database = format!("sqlite://{}/load.db?mode=rwc", dir.display());
    let mut out = String::new();
    writeln!(
        out,
        "\n== load: stamped oauth2 service (release, SQLite), wrk -t1 -c32 -d{}s; {} cores",
        wrk.seconds,
        cores()
    )?;
    writeln!(
        out,
        "{:<48} {:>10} {:>9} {:>9}",
        "", "req/s", "p50 ms", "p99 ms"
    )?;
    let load_before = load_average();
    let cached = cache_on_figures(binary, &database, wrk).await?;
    let me_uncached = cache_off_figures(binary, &database, wrk).await?;
    let peer = match peer {
        Some(peer) => Some(peer_figures(peer, wrk).await?),
        None => None,
    };
    let mut rows = vec![
        ("GET /", cached.root),
        ("GET /users/me (session cache on)", cached.me),
        ("POST /token: login flood alone (256 conn.)", cached.flood),
        (
            "POST /token: the flood next to 8 readers",
            cached.flood_with_readers,
        ),
        ("GET /users/me: 8 readers during the flood", cached.readers),
        ("GET /users/me (session cache off)", me_uncached),
    ];
    if let Some((peer_root, peer_me)) = peer {
        rows.extend([("peer GET /", peer_root), ("peer GET /users/me", peer_me)]);
    }
    for (name, figures) in rows {
        write_row(&mut out, name, figures)?;
    }
    writeln!(out)?;
    write_single_summary(&mut out, &cached, me_uncached, peer.map(|p| p.1), wrk)?;
    writeln!(out)?;
    revocation_figures(&mut out, binary, dir).await?;
    writeln!(
        out,
        "\nload average (1, 5, 15 min): {load_before} at the start, {} at the end",
        load_average()
    )?;
    Ok(out)
}

/// One row of the single-instance table.
fn write_row(out: &mut String, name: &str, f: Figures) -> std::fmt::Result {
    writeln!(
        out,
        "{name:<48} {:>10.0} {:>9.2} {:>9.2}{}",
        f.requests_per_second,
        f.p50_ms,
        f.p99_ms,
        if f.non_2xx > 0 {
            format!("  ({} non-2xx)", f.non_2xx)
        } else {
            String::new()
        }
    )
}

/// An instance with the session cache on: its routes, one login at rest,
/// the login flood alone and next to readers, and its peak memory. The
/// flood's users and the reader are signed up here, for the later runs too.
async fn cache_on_figures(binary: &Path, database: &str, wrk: &Wrk) -> Result<CacheOnFigures> {
    let cached =
        start_instance("service-cache-on", binary, &wrk.dir, base_env(database, 30)).await?;
    let token = prepare_users(&cached.url()).await?;
    let root = wrk.run(&format!("{}/", cached.url()), 32, None)?;
    let me = wrk.run(&format!("{}/users/me", cached.url()), 32, Some(&token))?;
    let one_login_ms = one_login_ms(&cached.url()).await?;
    let flood = wrk.flood_alone(&cached.url())?;
    let (flood_with_readers, readers) = wrk.flood(&cached.url(), &token)?;
    let peak_rss_mib = peak_rss_mib(pid_of(&cached)?)?;
    Ok(CacheOnFigures {
        root,
        me,
        one_login_ms,
        flood,
        flood_with_readers,
        readers,
        peak_rss_mib,
    })
}

/// GET /users/me on an instance with the session cache off.
async fn cache_off_figures(binary: &Path, database: &str, wrk: &Wrk) -> Result<Figures> {
    let uncached =
        start_instance("service-cache-off", binary, &wrk.dir, base_env(database, 0)).await?;
    let token_uncached = {
        let answer =
            fleet::login(&fleet::client(None)?, &uncached.url(), "reader", PASSWORD).await?;
        answer.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    wrk.run(
        &format!("{}/users/me", uncached.url()),
        32,
        Some(&token_uncached),
    )
}

/// The ratios and the flood's figures below the single-instance table.
fn write_single_summary(
    out: &mut String,
    cached: &CacheOnFigures,
    me_uncached: Figures,
    peer_me: Option<Figures>,
    wrk: &Wrk,
) -> Result<()> {
    let CacheOnFigures {
        root,
        me: me_cached,
        one_login_ms: hash_ms,
        flood,
        flood_with_readers,
        readers,
        peak_rss_mib: rss,
    } = *cached;
    let logins = (flood.requests - flood.non_2xx) as f64 / wrk.seconds as f64;
    let limit = cores() as f64 * 1000.0 / hash_ms;
    writeln!(
        out,
        "/users/me (cache on) / GET /:        {:.2}",
        me_cached.requests_per_second / root.requests_per_second
    )?;
    writeln!(
        out,
        "/users/me cache on / cache off:      {:.2}",
        me_cached.requests_per_second / me_uncached.requests_per_second
    )?;
    if let Some(peer_me) = peer_me {
        writeln!(
            out,
            "/users/me (cache on) / peer:         {:.1}x",
            me_cached.requests_per_second / peer_me.requests_per_second
        )?;
    }
    writeln!(
        out,
        "login flood alone ({FLOOD_CONNECTIONS} connections): {logins:.1} logins/s ({} refused); one login at rest {hash_ms:.1} ms, so the limit is {} cores / {hash_ms:.1} ms = {limit:.1}/s: {:.0}%",
        flood.non_2xx,
        cores(),
        100.0 * logins / limit
    )?;
    writeln!(
        out,
        "/users/me during the flood (8 connections): {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms ({:.1} logins/s meanwhile)",
        readers.requests_per_second,
        readers.p50_ms,
        readers.p99_ms,
        (flood_with_readers.requests - flood_with_readers.non_2xx) as f64 / wrk.seconds as f64
    )?;
    writeln!(
        out,
        "peak RSS of the service (cache on, both floods included): {rss:.1} MiB"
    )?;
    Ok(())
}

/// The machine's load average, as /proc/loadavg gives it.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Logouts measured by [`revocation_delays`].
const REVOCATIONS: usize = 100;

/// Two instances sharing a session-cache channel, for each channel this
/// machine has: the delays of [`REVOCATIONS`] logouts.
async fn revocation_figures(out: &mut String, binary: &Path, dir: &Path) -> Result<()> {
    writeln!(
        out,
        "cross-instance revocation ({REVOCATIONS} logouts at instance 1, each timed from the logout's answer until instance 2 answers 401 on /users/me, polled over HTTP):"
    )?;
    match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
    {
        Some(server) => {
            let database = Database::create(&server).await?;
            let delays = revocation_delays(binary, dir, base_env(&database.url, 30)).await;
            database.drop_database().await;
            writeln!(
                out,
                "  PostgreSQL LISTEN/NOTIFY: {}",
                describe_delays(&delays?)
            )?;
        }
        None => writeln!(
            out,
            "  PostgreSQL LISTEN/NOTIFY: skipped (set TEST_DATABASE_URL=postgres://...)"
        )?,
    }
    match fleet::find_program("redis-server", &["/usr/bin/redis-server"]) {
        Some(binary_of_redis) => {
            let mut redis = Redis {
                binary: binary_of_redis,
                port: fleet::free_port()?,
                dir: dir.to_owned(),
                process: None,
            };
            redis.start().await?;
            let database = format!("sqlite://{}/revocations.db?mode=rwc", dir.display());
            let mut env = base_env(&database, 30);
            env.push(("RATE_LIMIT_URL".to_owned(), redis.url()));
            let delays = revocation_delays(binary, dir, env).await?;
            writeln!(
                out,
                "  Redis pub/sub (two instances on one SQLite file): {}",
                describe_delays(&delays)
            )?;
        }
        None => writeln!(
            out,
            "  Redis pub/sub: skipped (apt-get install redis-server)"
        )?,
    }
    Ok(())
}

fn describe_delays(delays: &[f64]) -> String {
    let mut sorted = delays.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    format!(
        "median {median:.2} ms, maximum {max:.2} ms over {} revocations",
        sorted.len()
    )
}

/// Starts two instances with `env`, then [`REVOCATIONS`] times: logs in at
/// the first, has the second serve the token (so its cache holds it), logs
/// out at the first, and polls the second until it answers 401. A poll
/// beyond one second fails the run: the cache would be serving a revoked
/// token.
async fn revocation_delays(
    binary: &Path,
    dir: &Path,
    env: Vec<(String, String)>,
) -> Result<Vec<f64>> {
    let first = start_instance("revoke-1", binary, dir, env.clone()).await?;
    let second = start_instance("revoke-2", binary, dir, env).await?;
    let client = fleet::client(None)?;
    let signup = client
        .post(format!("{}/auth/signup", first.url()))
        .json(&serde_json::json!({"username": "revoker", "password": PASSWORD}))
        .send()
        .await?;
    ensure!(
        signup.status() == 201,
        "signup answered {}",
        signup.status()
    );
    let me = |base: String, token: String| {
        let client = client.clone();
        async move {
            anyhow::Ok(
                client
                    .get(format!("{base}/users/me"))
                    .bearer_auth(token)
                    .send()
                    .await?
                    .status()
                    .as_u16(),
            )
        }
    };
    let mut delays = Vec::with_capacity(REVOCATIONS);
    for _ in 0..REVOCATIONS {
        let answer = fleet::login(&client, &first.url(), "revoker", PASSWORD).await?;
        ensure!(answer.status == 200, "login answered {}", answer.status);
        let token = answer.body["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for base in [first.url(), second.url()] {
            ensure!(
                me(base.clone(), token.clone()).await? == 200,
                "the fresh token was refused at {base}"
            );
        }
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
        let revoked = Instant::now();
        loop {
            let status = me(second.url(), token.clone()).await?;
            if status == 401 {
                break;
            }
            ensure!(
                status == 200 && revoked.elapsed() < Duration::from_secs(1),
                "instance 2 still answered {status} {:.0} ms after the logout",
                revoked.elapsed().as_secs_f64() * 1000.0
            );
        }
        delays.push(revoked.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(delays)
}

/// The FastAPI peer: one uvicorn worker, SQLite, the same contract.
async fn peer_figures(peer: &Path, wrk: &Wrk) -> Result<(Figures, Figures)> {
    let port = fleet::free_port()?;
    let mut command = Command::new("bash");
    command
        .arg(peer.join("run.sh"))
        .arg(port.to_string())
        .current_dir(&wrk.dir)
        .env("SECRET_KEY", auth_kit::random::secret_hex())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/peer.db?mode=rwc", wrk.dir.display()),
        );
    let mut process = Process::spawn("fastapi peer", command, wrk.dir.join("peer.log"))?;
    let base = format!("http://127.0.0.1:{port}");
    let client = fleet::client(None)?;
    // The first start may build its virtualenv.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        process.check_alive()?;
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the peer did not start within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let signup = client
        .post(format!("{base}/auth/signup"))
        .json(&serde_json::json!({"username": "reader", "password": PASSWORD}))
        .send()
        .await?;
    ensure!(
        signup.status() == 201,
        "the peer's signup answered {}",
        signup.status()
    );
    let answer = fleet::login(&client, &base, "reader", PASSWORD).await?;
    ensure!(
        answer.status == 200,
        "the peer's login answered {}",
        answer.status
    );
    let token = answer.body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let root = wrk.run(&format!("{base}/"), 32, None)?;
    let me = wrk.run(&format!("{base}/users/me"), 32, Some(&token))?;
    Ok((root, me))
}

async fn fleet_figures(tools: &Tools, binary: &Path, wrk: &Wrk) -> Result<String> {
    let dir = &wrk.dir;
    let database = Database::create(&tools.database_url).await?;
    let result = async {
        let mut redis = Redis {
            binary: tools.redis_server.clone(),
            port: fleet::free_port()?,
            dir: dir.clone(),
            process: None,
        };
        redis.start().await?;
        let mut env = base_env(&database.url, 30);
        env.push(("RATE_LIMIT_URL".to_owned(), redis.url()));
        env.push(("TRUSTED_PROXIES".to_owned(), "127.0.0.1".to_owned()));
        let first = start_instance("instance-1", binary, dir, env.clone()).await?;
        let second = start_instance("instance-2", binary, dir, env).await?;
        let nginx = Nginx::start(&tools.nginx, dir, &[first.port, second.port]).await?;
        let token = prepare_users(&nginx.url()).await?;

        let mut out = String::new();
        writeln!(
            out,
            "\n== load (fleet): 2 instances behind nginx vs 1 instance direct; PostgreSQL, Redis; wrk -t1 -d{}s; {} cores (all processes share them: this shows cost, not scaling)",
            wrk.seconds,
            cores()
        )?;
        writeln!(out, "{:<52} {:>10} {:>9} {:>9}", "", "req/s", "p50 ms", "p99 ms")?;
        for (name, base) in [("direct, 1 instance", first.url()), ("nginx, 2 instances", nginx.url())] {
            let me = wrk.run(&format!("{base}/users/me"), 32, Some(&token))?;
            let (flood, readers) = wrk.flood(&base, &token)?;
            writeln!(out, "{:<52} {:>10.0} {:>9.2} {:>9.2}", format!("{name}: GET /users/me (32 conn.)"), me.requests_per_second, me.p50_ms, me.p99_ms)?;
            writeln!(
                out,
                "{:<52} {:>10.1} {:>9.2} {:>9.2}  ({} refused)",
                format!("{name}: login flood ({FLOOD_CONNECTIONS} conn.), logins/s"),
                (flood.requests - flood.non_2xx) as f64 / wrk.seconds as f64,
                flood.p50_ms,
                flood.p99_ms,
                flood.non_2xx
            )?;
            writeln!(out, "{:<52} {:>10.0} {:>9.2} {:>9.2}", format!("{name}: /users/me during the flood (8 conn.)"), readers.requests_per_second, readers.p50_ms, readers.p99_ms)?;
        }
        writeln!(
            out,
            "peak RSS: instance-1 {:.1} MiB, instance-2 {:.1} MiB",
            peak_rss_mib(pid_of(&first)?)?,
            peak_rss_mib(pid_of(&second)?)?
        )?;
        drop(nginx);
        anyhow::Ok(out)
    }
    .await;
    database.drop_database().await;
    result
}
