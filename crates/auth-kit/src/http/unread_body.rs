//! Keep-alive after an early refusal.
//!
//! A handler may answer before it reads the request body: 415 for the wrong
//! media type, 401 or 403 before the body matters, 413 past the limit. Over
//! HTTP/1.1 the next request on the connection starts where this body ends,
//! so a body left unread must be read away before the connection can serve
//! another request; hyper gives up on a body that has not fully arrived
//! and closes the connection after the answer, without saying so, and a
//! client that reuses it gets no answer. [`serve`](super::serve) therefore
//! reads away what the handler left, up to [`MAX_BODY_BYTES`] more and for at most
//! [`DRAIN_TIMEOUT`], and otherwise answers with `Connection: close`, so the
//! client knows to open a new connection.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use axum::response::Response;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::MAX_BODY_BYTES;

/// How long an unread body may take to arrive before the connection is
/// closed instead.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a body dropped before its end is left for [`finish`].
#[derive(Debug, Clone, Default)]
pub(super) struct Leftover(Arc<Mutex<Option<Incoming>>>);

impl Leftover {
    fn take(&self) -> Option<Incoming> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The request body as the router sees it; when dropped before its end,
/// it leaves the rest in its [`Leftover`].
#[derive(Debug)]
pub(super) struct TrackedBody {
    inner: Option<Incoming>,
    leftover: Leftover,
}

impl TrackedBody {
    pub(super) fn new(inner: Incoming) -> (Self, Leftover) {
        let leftover = Leftover::default();
        let body = Self {
            inner: Some(inner),
            leftover: leftover.clone(),
        };
        (body, leftover)
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !inner.is_end_stream()
        {
            *self
                .leftover
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(inner);
        }
    }
}

/// After the router answered: reads away the body it left unread, or marks
/// the answer `Connection: close` when that is too much or too slow.
pub(super) async fn finish(response: Response, leftover: &Leftover) -> Response {
    let Some(rest) = leftover.take() else {
        return response;
    };
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, read_away(rest, MAX_BODY_BYTES)).await;
    if matches!(drained, Ok(true)) {
        response
    } else {
        closing(response)
    }
}

/// The answer, marked `Connection: close`: the connection serves no other
/// request after it.
pub(super) fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Reads `body` to its end; `false` past `limit` bytes or on an error.
async fn read_away(mut body: Incoming, limit: usize) -> bool {
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                read = read.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                if read > limit {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}
