//! `cargo auth admin` on a SQLite database that a fleet shares through
//! RATE_LIMIT_URL: the change reaches the instances' channel on Redis
//! before the command returns (their session caches drop the user at once
//! instead of serving them for up to SESSION_CACHE_SECONDS).
//!
//! Starts its own `redis-server` on a free port; skips, saying so, when
//! there is none (fails instead when REQUIRE_REDIS is set, as in CI).
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use auth_cli::admin::{AdminAction, AdminArgs, UserArgs};
use auth_kit::store::{NewUser, Store};
use futures_util::StreamExt as _;

struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn promote_is_published_on_redis_before_the_command_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let Ok(child) = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        assert!(
            std::env::var_os("REQUIRE_REDIS").is_none(),
            "REQUIRE_REDIS is set but redis-server is not installed"
        );
        eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
        return;
    };
    let _server = RedisServer(child);
    let redis_url = format!("redis://127.0.0.1:{port}");

    // A service folder: its name is the service's name, so the channel is
    // "<folder>:sessions".
    let folder = tempfile::Builder::new()
        .prefix("admin-publishes-")
        .tempdir()
        .unwrap();
    let service = folder
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let database = folder.path().join("service.db");
    let database_url = format!("sqlite://{}?mode=rwc", database.display());
    let env_file = folder.path().join(".env");
    std::fs::write(
        &env_file,
        format!("DATABASE_URL={database_url}\nRATE_LIMIT_URL={redis_url}\n"),
    )
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (user_id, mut messages) = runtime.block_on(async {
        // The service migrated the database and someone signed up.
        let store = Store::connect(&database_url).await.unwrap();
        let user = store
            .create_user(&NewUser {
                username: "ops-lead",
                email: None,
                full_name: None,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA",
                role: "user",
            })
            .await
            .unwrap();
        store.close().await;
        // An instance listening (redis-server may still be starting).
        let client = redis::Client::open(redis_url.as_str()).unwrap();
        let mut pubsub = loop {
            match client.get_async_pubsub().await {
                Ok(pubsub) => break pubsub,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        pubsub
            .subscribe(format!("{service}:sessions"))
            .await
            .unwrap();
        (user.id, pubsub.into_on_message())
    });

    // The command, as `cargo auth admin promote --username OPS-LEAD --env-file ...`
    // runs it (its own runtime, on this thread).
    let args = AdminArgs {
        action: AdminAction::Promote(UserArgs {
            username: "OPS-LEAD".to_owned(),
        }),
        env_file: Some(env_file),
    };
    std::thread::spawn(move || auth_cli::admin::run(&args))
        .join()
        .unwrap()
        .unwrap();

    // Published before it returned: the message is already there.
    let message = runtime
        .block_on(async { tokio::time::timeout(Duration::from_millis(500), messages.next()).await })
        .expect("the change was published before the command returned")
        .unwrap();
    assert_eq!(
        message.get_payload::<String>().unwrap(),
        format!("user:{user_id}")
    );
}
