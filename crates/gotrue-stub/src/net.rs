//! The listener and the fault switches.
//!
//! [`StubListener`] can close its socket and reopen it on the same address,
//! so "refusing connections" is real (`ECONNREFUSED`), and every connection
//! it hands out is a [`StubIo`] that can be cut: when refusing starts, open
//! keep-alive connections die too, and [`Fault::DropConnection`] cuts the
//! connection a request came on without an answer.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::api::AppState;

/// A failure the stub imitates, switched at run time with
/// [`crate::StubHandle::set_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Behave normally.
    #[default]
    None,
    /// Wait this long before handling each request (a slow or hung
    /// upstream; clients should time out).
    Slow(Duration),
    /// Answer every request with 500 and an HTML page, as a proxy in front
    /// of Supabase might.
    ServerErrorHtml,
    /// Answer every request with 200 and a `text/plain` body: a success
    /// status that is not JSON.
    NotJson,
    /// Read each request, then close the connection without answering.
    DropConnection,
    /// Close the listening socket (connects are refused) and cut open
    /// connections. Switching to another fault reopens it on the same port.
    RefuseConnections,
}

/// The HTML a misbehaving proxy answers with. The marker lets tests check
/// that clients never pass this body on.
pub const HTML_ERROR_BODY: &str = "<!DOCTYPE html><html><head><title>500 Internal Server Error</title></head><body><h1>500 Internal Server Error</h1><p>upstream-debug-marker: gotrue-stub</p></body></html>";

/// Per-connection data every request sees (as `ConnectInfo<ConnInfo>`).
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    kill: Arc<AtomicBool>,
}

impl Connected<IncomingStream<'_, StubListener>> for ConnInfo {
    fn connect_info(stream: IncomingStream<'_, StubListener>) -> Self {
        Self {
            peer: *stream.remote_addr(),
            kill: stream.io().kill.clone(),
        }
    }
}

/// A TCP connection that fails every read and write once it is cut.
#[derive(Debug)]
pub(crate) struct StubIo {
    stream: TcpStream,
    /// The listener's epoch when this connection was accepted.
    born: u64,
    epoch: Arc<AtomicU64>,
    kill: Arc<AtomicBool>,
}

impl StubIo {
    fn is_cut(&self) -> bool {
        self.kill.load(Ordering::SeqCst) || self.epoch.load(Ordering::SeqCst) != self.born
    }
}

fn cut() -> io::Error {
    io::Error::from(io::ErrorKind::ConnectionReset)
}

impl AsyncRead for StubIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_cut() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StubIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.is_cut() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut this.stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_cut() {
            return Poll::Ready(Err(cut()));
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A listener that closes and reopens its socket on command.
#[derive(Debug)]
pub(crate) struct StubListener {
    addr: SocketAddr,
    socket: Option<TcpListener>,
    /// Whether to accept connections (the handle's wish).
    accepting: watch::Receiver<bool>,
    /// Whether the socket is open (reported back to the handle).
    listening: watch::Sender<bool>,
    /// Bumped when refusing starts: cuts every older connection.
    epoch: Arc<AtomicU64>,
}

impl StubListener {
    pub(crate) fn new(
        socket: TcpListener,
        addr: SocketAddr,
        accepting: watch::Receiver<bool>,
        listening: watch::Sender<bool>,
    ) -> Self {
        Self {
            addr,
            socket: Some(socket),
            accepting,
            listening,
            epoch: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Waits for the handle's next wish; never returns once the handle is gone
/// (the server task is aborted then anyway).
async fn wish_changed(accepting: &mut watch::Receiver<bool>) {
    if accepting.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Listener for StubListener {
    type Io = StubIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (StubIo, SocketAddr) {
        loop {
            let accepting = *self.accepting.borrow_and_update();
            if !accepting {
                if self.socket.take().is_some() {
                    self.epoch.fetch_add(1, Ordering::SeqCst);
                }
                self.listening.send_replace(false);
                wish_changed(&mut self.accepting).await;
                continue;
            }
            if self.socket.is_none() {
                match TcpListener::bind(self.addr).await {
                    Ok(socket) => self.socket = Some(socket),
                    Err(e) => {
                        tracing::warn!(addr = %self.addr, error = %e, "cannot reopen the listener yet");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            self.listening.send_replace(true);
            let Some(socket) = &self.socket else {
                continue;
            };
            let accepted = tokio::select! {
                accepted = socket.accept() => accepted,
                () = wish_changed(&mut self.accepting) => continue,
            };
            match accepted {
                Ok((stream, peer)) => {
                    // Small JSON answers: do not wait for Nagle.
                    let _ = stream.set_nodelay(true);
                    let io = StubIo {
                        stream,
                        born: self.epoch.load(Ordering::SeqCst),
                        epoch: self.epoch.clone(),
                        kill: Arc::new(AtomicBool::new(false)),
                    };
                    return (io, peer);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, retry.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// Middleware: applies the current [`Fault`] before the request reaches
/// the API.
pub(crate) async fn apply_fault(
    State(state): State<AppState>,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    request: Request,
    next: Next,
) -> Response {
    match state.fault() {
        Fault::None | Fault::RefuseConnections => next.run(request).await,
        Fault::Slow(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Fault::ServerErrorHtml => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            HTML_ERROR_BODY,
        )
            .into_response(),
        Fault::NotJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "OK",
        )
            .into_response(),
        Fault::DropConnection => {
            // The answer below is never delivered: writing it fails and
            // hyper drops the connection.
            conn.kill.store(true, Ordering::SeqCst);
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
