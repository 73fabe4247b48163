//! The supabase service's configuration checks (the `supabase` feature):
//! auth-kit's own, the code the service runs at start-up, and whether the
//! Supabase project answers.

use auth_kit::config::{Environment, Finding};
use auth_kit_supabase::config::{check_supabase, classify_key};

use super::{IO_TIMEOUT, Subject, error_chain, http_client};

/// The static checks of SUPABASE_URL, SUPABASE_KEY and the rest, added to
/// `findings` (JWT_LEEWAY_SECONDS, checked by both, is reported once).
pub fn static_checks(env: &Environment, findings: &mut Vec<Finding>) {
    for finding in check_supabase(env) {
        if !findings.contains(&finding) {
            findings.push(finding);
        }
    }
}

/// Whether the project of SUPABASE_URL answers, when it is set.
pub async fn reachable(env: &Environment) -> Option<Finding> {
    let url = env.get(auth_kit_supabase::settings::SUPABASE_URL.name)?;
    let key = env
        .get(auth_kit_supabase::settings::SUPABASE_KEY.name)
        .filter(|k| classify_key(k).is_public());
    Some(supabase_reachable(url.trim().trim_end_matches('/'), key).await)
}

/// `GET <SUPABASE_URL>/auth/v1/health` answers 2xx within [`IO_TIMEOUT`].
async fn supabase_reachable(url: &str, key: Option<&str>) -> Finding {
    let seconds = IO_TIMEOUT.as_secs();
    let health = format!("{url}/auth/v1/health");
    let fix = "check SUPABASE_URL (the project URL, without a path) and the network; for offline development run `cargo run -p gotrue-stub` and use the URL it prints";
    let client = match http_client() {
        Ok(c) => c,
        Err(e) => {
            return Finding::fail(
                Subject::SupabaseUrl,
                format!("cannot build an HTTP client: {e}"),
                fix,
            );
        }
    };
    let mut request = client.get(&health);
    if let Some(key) = key {
        // Hosted projects answer only requests carrying the project's public key.
        request = request.header("apikey", key.trim());
    }
    match request.send().await {
        Ok(answer) if answer.status().is_success() => Finding::pass(
            Subject::SupabaseUrl,
            format!(
                "reachable: GET {health} answered {} (timeout {seconds} s)",
                answer.status().as_u16()
            ),
        ),
        Ok(answer) => Finding::fail(
            Subject::SupabaseUrl,
            format!(
                "GET {health} answered {} (timeout {seconds} s): not a Supabase Auth server, or SUPABASE_KEY is refused",
                answer.status()
            ),
            fix,
        ),
        Err(e) => Finding::fail(
            Subject::SupabaseUrl,
            format!(
                "unreachable: GET {health} failed: {} (timeout {seconds} s)",
                error_chain(&e)
            ),
            fix,
        ),
    }
}
