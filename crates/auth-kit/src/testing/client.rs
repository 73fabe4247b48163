//! A service under test on a real loopback socket, and a small HTTP client
//! for it: tests see what a client sees (status, headers, body), through
//! the same `serve` a service runs in production.
//!
//! ```no_run
//! # async fn demo(router: axum::Router, options: auth_kit::http::ServeOptions) {
//! use auth_kit::testing::{TestClient, serve_on_loopback};
//!
//! let client = TestClient::new(serve_on_loopback(router, options).await);
//! let reply = client.get("/health", None).await;
//! assert_eq!(reply.status, 200, "{reply:?}");
//! let reply = client.form("/token", "grant_type=password&username=a&password=b").await;
//! assert_eq!(reply.error().0, "invalid_grant");
//! # }
//! ```

use std::net::SocketAddr;

use axum::http::HeaderMap;
use serde_json::Value;

use crate::http::ServeOptions;

/// Serves `router` with `options` on 127.0.0.1, on a free port, for as long
/// as the test's runtime lives; the base URL (`http://127.0.0.1:<port>`).
///
/// # Panics
/// When no loopback port can be bound.
pub async fn serve_on_loopback(router: axum::Router, options: ServeOptions) -> String {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("cannot bind a port on 127.0.0.1");
    let address = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(crate::http::serve(
        listener,
        router,
        options,
        std::future::pending(),
    ));
    format!("http://{address}")
}

/// What came back: status, headers, and the body as JSON (or, when it is
/// not JSON, as a JSON string; `null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body: JSON, a JSON string, or `null`.
    pub body: Value,
}

impl Reply {
    /// The header `name`, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The target of this page's `Link: <target>; rel="next"` (RFC 8288),
    /// or `None` on the last page.
    ///
    /// # Panics
    /// When a `Link` header is there but not of that form.
    pub fn next_page(&self) -> Option<&str> {
        let link = self.header("link")?;
        link.strip_prefix('<')
            .and_then(|rest| rest.strip_suffix(r#">; rel="next""#))
            .filter(|target| !target.contains('>'))
            .map(Some)
            .unwrap_or_else(|| panic!("not a next-page link: {link}"))
    }

    /// The `{"error", "error_description"}` body as a pair (empty strings
    /// for what is missing).
    pub fn error(&self) -> (&str, &str) {
        (
            self.body["error"].as_str().unwrap_or(""),
            self.body["error_description"].as_str().unwrap_or(""),
        )
    }
}

/// An HTTP client for one service: paths are joined to its base URL, and
/// every answer is read into a [`Reply`].
///
/// The methods panic when the request cannot be sent or its answer read:
/// in a test that is a failure.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// The service's base URL, `http://host:port` (no trailing slash).
    pub base: String,
    client: reqwest::Client,
}

impl TestClient {
    /// A client for the service at `base`.
    ///
    /// Installs the *ring* provider as the process's rustls default first
    /// (if none is), which the TLS-agnostic HTTP client requires.
    pub fn new(base: impl Into<String>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            base: base.into(),
            client: reqwest::Client::new(),
        }
    }

    /// `method path` with an optional bearer `token`, `content_type` and `body`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.send_forwarded(None, method, path, token, content_type, body)
            .await
    }

    /// [`send`](Self::send), as a proxy forwarding the request of `client`
    /// in `X-Forwarded-For` (the tests' requests come from 127.0.0.1).
    ///
    /// # Panics
    /// When `method` is not an HTTP method, or the request fails.
    pub async fn send_forwarded(
        &self,
        client: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let method = method
            .parse()
            .unwrap_or_else(|_| panic!("{method:?} is not an HTTP method"));
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client);
        }
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: the request failed: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{path}: the answer cannot be read: {e}"));
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, None, Vec::new()).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("DELETE", path, token, None, Vec::new()).await
    }

    /// `method path` with `body` as `application/json`.
    pub async fn json(&self, method: &str, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.json_from(None, method, path, token, body).await
    }

    /// `POST path` with `form` (already encoded) as
    /// `application/x-www-form-urlencoded`, without a token.
    pub async fn form(&self, path: &str, form: &str) -> Reply {
        self.form_from(None, path, form).await
    }

    /// [`json`](Self::json), as a proxy forwarding the request of `client`.
    pub async fn json_forwarded(
        &self,
        client: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        self.json_from(Some(client), method, path, token, body)
            .await
    }

    /// [`form`](Self::form), as a proxy forwarding the request of `client`.
    pub async fn form_forwarded(&self, client: &str, path: &str, form: &str) -> Reply {
        self.form_from(Some(client), path, form).await
    }

    /// `GET first`, then every page its `Link: rel="next"` leads to, in
    /// order: the whole list, a page a reply.
    ///
    /// # Panics
    /// When a page is not 200, or after 1000 pages (a link that loops).
    pub async fn pages(&self, first: &str, token: Option<&str>) -> Vec<Reply> {
        let mut pages: Vec<Reply> = Vec::new();
        let mut next = Some(first.to_owned());
        while let Some(path) = next.take() {
            assert!(pages.len() < 1000, "{first}: 1000 pages and more");
            let page = self.get(&path, token).await;
            assert_eq!(page.status, 200, "{path}: {page:?}");
            next = page.next_page().map(str::to_owned);
            pages.push(page);
        }
        pages
    }

    async fn json_from(
        &self,
        client: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Reply {
        let body = body.to_string().into_bytes();
        self.send_forwarded(client, method, path, token, Some("application/json"), body)
            .await
    }

    async fn form_from(&self, client: Option<&str>, path: &str, form: &str) -> Reply {
        self.send_forwarded(
            client,
            "POST",
            path,
            None,
            Some("application/x-www-form-urlencoded"),
            form.as_bytes().to_vec(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_link(link: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert("link", link.parse().unwrap());
        Reply {
            status: 200,
            headers,
            body: Value::Null,
        }
    }

    #[test]
    fn the_next_page_is_the_links_target() {
        let page = with_link(r#"</items?after=7&limit=2>; rel="next""#);
        assert_eq!(page.next_page(), Some("/items?after=7&limit=2"));
        let last = Reply {
            status: 200,
            headers: HeaderMap::new(),
            body: Value::Null,
        };
        assert_eq!(last.next_page(), None);
    }

    #[test]
    #[should_panic(expected = "not a next-page link")]
    fn another_relation_is_not_a_next_page() {
        with_link(r#"</items?after=7>; rel="prev""#).next_page();
    }

    #[test]
    #[should_panic(expected = "not a next-page link")]
    fn two_links_are_not_a_next_page() {
        with_link(r#"</a>; rel="next", </b>; rel="next""#).next_page();
    }
}
