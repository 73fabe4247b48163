//! `cargo run -p permission-system`: starts the demo on HOST:PORT
//! (default 127.0.0.1:8000; PORT=0 picks a free port) and prints the curl
//! commands that show every route's answers.

use std::process::ExitCode;

use permission_system::{Demo, walkthrough};

#[tokio::main]
async fn main() -> ExitCode {
    auth_kit::run::init_logs();
    let addr = match demo_walkthrough::listen_addr() {
        Ok(addr) => addr,
        Err(problem) => return auth_kit::run::settings_refused(&problem),
    };
    let demo = Demo::start().await;
    let served = demo_walkthrough::serve(addr, demo.router.clone(), walkthrough::banner).await;
    // Closing removes the temporary database, so nothing is left behind.
    demo.close().await;
    served
}
