//! Replaying a walkthrough against a running server (the examples' tests).

use std::collections::HashMap;

use serde_json::Value;

use crate::{Call, curl};

/// Sends every call in order, filling in the variables earlier calls saved,
/// and checks each answer's status and `error` code, and that `banner`
/// prints each call. `Err` names the first call that differs.
pub async fn replay(base_url: &str, calls: &[Call], banner: &str) -> Result<(), String> {
    let client = client();
    let mut saved: HashMap<&str, String> = HashMap::new();
    for call in calls {
        if !banner.contains(&curl(base_url, call)) {
            return Err(format!("{call:?} is not printed"));
        }
        let method = call
            .method
            .parse()
            .map_err(|_| format!("{call:?}: bad method"))?;
        let mut request = client.request(method, format!("{base_url}{}", fill(call.path, &saved)?));
        if let Some(variable) = call.bearer {
            request = request.bearer_auth(fill(&format!("${variable}"), &saved)?);
        }
        if let Some((content_type, text)) = call.body.content() {
            request = request
                .header("content-type", content_type)
                .body(fill(&text, &saved)?);
        }
        let (status, body) = send(request).await?;
        if status != call.status || body["error"].as_str() != call.error {
            return Err(format!("{call:?} got {status} {body}"));
        }
        if let Some((variable, field)) = call.saves {
            let value = match &body[field] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            saved.insert(variable, value);
        }
    }
    Ok(())
}

/// Every `curl` line of `banner` names a route the server has (not the 404
/// fallback, not a 405), and there are `expected` of them.
pub async fn check_routes_exist(
    base_url: &str,
    banner: &str,
    expected: usize,
) -> Result<(), String> {
    let client = client();
    let mut commands = 0;
    for line in banner.lines().filter(|l| l.contains("curl ")) {
        commands += 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let url = words
            .iter()
            .find(|w| w.starts_with(base_url))
            .ok_or_else(|| format!("no URL in {line}"))?;
        let method = match words.iter().position(|w| *w == "-X") {
            Some(i) => words.get(i + 1).copied().unwrap_or("GET"),
            None if words.contains(&"-d") => "POST",
            None => "GET",
        };
        // Any id will do: the question is only whether the route exists.
        let path: Vec<&str> = url[base_url.len()..]
            .split('/')
            .map(|segment| {
                if segment.starts_with('$') {
                    "1"
                } else {
                    segment
                }
            })
            .collect();
        let method = method
            .parse()
            .map_err(|_| format!("bad method in {line}"))?;
        let (status, body) =
            send(client.request(method, format!("{base_url}{}", path.join("/")))).await?;
        if status == 405
            || (status == 404 && body["error_description"] == "No route matches this path")
        {
            return Err(format!("{line}: no such route ({status})"));
        }
    }
    if commands != expected {
        return Err(format!(
            "{commands} curl commands printed, {expected} calls listed"
        ));
    }
    Ok(())
}

/// Replaces `$NAME` with the saved values, longest names first.
fn fill(text: &str, saved: &HashMap<&str, String>) -> Result<String, String> {
    let mut names: Vec<&&str> = saved.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let mut out = text.to_owned();
    for name in names {
        out = out.replace(&format!("${name}"), &saved[*name]);
    }
    if out.contains('$') {
        return Err(format!("{text} uses a variable no earlier call saved"));
    }
    Ok(out)
}

fn client() -> reqwest::Client {
    // reqwest is built without a default TLS provider; loopback HTTP needs none,
    // but building the client does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}
