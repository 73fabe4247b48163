//! `cargo xtask demo`: the README's first command. Stamps the oauth2
//! template as `demo-api` under target/demo (replacing the previous demo),
//! adds a demo admin to its `.env`, prints a walkthrough, and runs it.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::new::{self, Strategy};
use crate::repo;

/// Arguments of `cargo xtask demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let dest = repo::root().join("target").join("demo").join("demo-api");
    new::stamp(Strategy::Oauth2, "demo-api", &dest, true)?;
    let admin_password = format!("demo-{}", &auth_kit::random::secret_hex()[..12]);
    let mut env = OpenOptions::new()
        .append(true)
        .open(dest.join(".env"))
        .context("cannot open the demo's .env")?;
    writeln!(
        env,
        "\n# Added by `cargo xtask demo`.\nADMIN_USERNAME=admin\nADMIN_PASSWORD={admin_password}\nPORT={}",
        args.port
    )?;
    let base = format!("http://127.0.0.1:{}", args.port);
    println!(
        r#"
demo-api: the oauth2 template, stamped into {dest}
It runs on its embedded defaults: SQLite (demo-api.db there) and a fresh SECRET_KEY in its .env.
Admin: admin / {admin_password}

Once it says "listening" (the first build takes a few minutes), try:
  curl -s -X POST {base}/auth/signup -H 'content-type: application/json' -d '{{"username":"ann","password":"correct horse"}}'
  TOKEN=$(curl -s -X POST {base}/token -d 'grant_type=password&username=ann&password=correct horse' | sed -E 's/.*"access_token":"([^"]+)".*/\1/')
  curl -s {base}/users/me -H "authorization: Bearer $TOKEN"
  curl -si {base}/users/me                      # 401 with WWW-Authenticate: Bearer
  curl -si -X DELETE {base}/items/1 -H "authorization: Bearer $TOKEN"   # 403 Permission 'items:delete' required
Swagger UI: {base}/docs   (Authorize with a username and password)
Stop with Ctrl-C.
"#,
        dest = dest.display()
    );
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .arg("run")
        .current_dir(&dest)
        .env("CARGO_TARGET_DIR", repo::stamped_target_dir())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("demo-api exited with {status}");
    }
    Ok(())
}
