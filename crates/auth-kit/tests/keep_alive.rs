//! Keep-alive after an early refusal: a handler that answers before reading
//! the body (415, 413, 401) must not leave the connection unusable. The
//! client here sends the headers, waits, then sends the body, the way a
//! slow network delivers it, and then reuses the connection.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use auth_kit::config::LoginLimits;
use auth_kit::login::ScopeMode;
use auth_kit::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use common::{harness, options, serve};

/// One answer read off the connection: status, headers (lower-cased names).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn read_answer(reader: &mut BufReader<TcpStream>) -> Option<Answer> {
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).await.ok()? == 0 {
        return None; // the server closed the connection
    }
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let answer = Answer { status, headers };
    let length: usize = answer.header("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(answer)
}

/// Sends a request with its body in a second write, 50 ms after the
/// headers; then a plain GET / on the same connection. Returns both answers
/// (the second `None` when the connection was closed).
async fn refused_then_reused(base: &str, head: &str, body: &[u8]) -> (Answer, Option<Answer>) {
    let addr = base.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut reader = BufReader::new(stream);
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The server may already have answered and be reading away the body.
    let _ = reader.get_mut().write_all(body).await;
    let first = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut reader))
        .await
        .unwrap()
        .expect("an answer to the first request");
    let again = format!("GET /no-such-route HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let second = match reader.get_mut().write_all(again.as_bytes()).await {
        Ok(()) => tokio::time::timeout(Duration::from_secs(10), read_answer(&mut reader))
            .await
            .unwrap(),
        Err(_) => None,
    };
    (first, second)
}

#[tokio::test]
async fn an_early_refusal_leaves_the_connection_usable() {
    for db in TestDatabase::all("keep_alive").await {
        let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
        let base = serve(&h, options("")).await;
        let form = b"grant_type=password&username=ann&password=secret".to_vec();
        let json = br#"{"username":"ann","password":"correct horse"}"#.to_vec();
        let cases: [(&str, &str, Vec<u8>, u16); 4] = [
            (
                "415: a form where JSON belongs",
                "POST /auth/signup HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
                form.clone(),
                415,
            ),
            (
                "400: JSON where the token form belongs",
                "POST /token HTTP/1.1\r\nContent-Type: application/json",
                json.clone(),
                400,
            ),
            (
                "401: a body on a protected route without a token",
                "GET /me HTTP/1.1\r\nContent-Type: application/json",
                json,
                401,
            ),
            (
                "413: a body over the limit by a little",
                "POST /auth/signup HTTP/1.1\r\nContent-Type: application/json",
                vec![b' '; 70 * 1024],
                413,
            ),
        ];
        for (case, head, body, status) in cases {
            let (first, second) = refused_then_reused(&base, head, &body).await;
            assert_eq!(first.status, status, "{case}: {first:?}");
            match first.header("connection") {
                // Told to go: fine, as long as it was said.
                Some(value) if value.eq_ignore_ascii_case("close") => {}
                _ => {
                    let second = second.unwrap_or_else(|| {
                        panic!("{case}: the connection was closed without `Connection: close`")
                    });
                    assert_eq!(second.status, 404, "{case}: {second:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_body_far_over_the_limit_closes_the_connection_and_says_so() {
    let db = TestDatabase::sqlite();
    let h = harness(db.url(), ScopeMode::Scoped, LoginLimits::STANDARD).await;
    let base = serve(&h, options("")).await;
    let (first, _) = refused_then_reused(
        &base,
        "POST /auth/signup HTTP/1.1\r\nContent-Type: application/json",
        &vec![b' '; 1024 * 1024],
    )
    .await;
    assert_eq!(first.status, 413);
    assert_eq!(first.header("connection"), Some("close"), "{first:?}");
}
