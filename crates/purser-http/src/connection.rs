//! The socket under one HTTP connection, watched.
//!
//! [`Watched`] wraps the connection's socket for two jobs that only the byte stream can do:
//!
//! - **Activity.** Every read and write that moves bytes stamps the connection's
//!   [`Activity`], so the server can close a connection on which nothing has moved for its idle
//!   timeout (a client that stopped reading its response, an HTTP/2 connection left open).
//! - **Envelopes for hyper's own refusals.** A request hyper cannot parse (a malformed request
//!   line or header, a URL over its 64 KiB limit, a head larger than its read buffer) never
//!   reaches a service: hyper answers it itself, with a status and an empty body. Those answers
//!   are recognised on their way out and replaced by the platform's error envelope with the
//!   matching code, so that every refusal a client sees carries one. They are recognised by
//!   shape: a status of 400, 414 or 431, `content-length: 0`, and no `x-request-id` (every
//!   answer of Purser's own layers carries one), with the whole head in one write, as hyper
//!   writes it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use purser_domain::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a connection last moved a byte, as milliseconds since it was opened.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    has_read: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            has_read: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(elapsed, Ordering::Relaxed);
    }

    /// Resolves when `within` passed since the connection opened without the client sending
    /// a byte (before its first byte, not even the protocol is known, so hyper's header
    /// timeout has not started); never resolves once it has.
    pub async fn silent_for(&self, within: Duration) {
        tokio::time::sleep_until(self.opened + within).await;
        if self.has_read.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// When the connection last moved a byte.
    pub fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Resolves once nothing has moved for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let deadline = self.last() + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket whose activity is recorded and whose hyper-made refusals get the envelope.
#[derive(Debug)]
pub struct Watched<IO> {
    inner: IO,
    activity: Arc<Activity>,
    /// A replacement answer still to be written, and how much of it was.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<IO> Watched<IO> {
    pub fn new(inner: IO, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            replacement: None,
        }
    }
}

impl<IO: AsyncWrite + Unpin> Watched<IO> {
    /// Writes what is left of a replacement answer. Ready once all of it is written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.replacement {
            if *written >= bytes.len() {
                self.replacement = None;
                break;
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *written += n;
                    self.activity.touch();
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// When `head` is a refusal hyper made itself, queues the envelope in its place and
    /// answers that all of `head` was written.
    fn intercept(&mut self, head: &[u8]) -> Option<usize> {
        let code = hyper_refusal(head)?;
        self.replacement = Some((envelope_answer(code), 0));
        Some(head.len())
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
            self.activity.has_read.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_replacement(cx))?;
        if let Some(consumed) = this.intercept(buf) {
            return Poll::Ready(Ok(consumed));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.activity.touch();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_replacement(cx))?;
        // hyper writes a head as the first slice of its own.
        if let Some(first) = bufs.iter().find(|b| !b.is_empty())
            && let Some(consumed) = this.intercept(first)
        {
            return Poll::Ready(Ok(consumed));
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.activity.touch();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_replacement(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The code for a head that hyper wrote to refuse a request it could not parse, or `None`
/// for anything else (every other answer went through Purser's layers).
fn hyper_refusal(head: &[u8]) -> Option<ErrorCode> {
    let code = match head.get(..13)? {
        b"HTTP/1.1 400 " | b"HTTP/1.0 400 " => ErrorCode::MalformedHttp,
        b"HTTP/1.1 414 " | b"HTTP/1.0 414 " => ErrorCode::UriTooLong,
        b"HTTP/1.1 431 " | b"HTTP/1.0 431 " => ErrorCode::HeadersTooLarge,
        _ => return None,
    };
    if !head.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(head).ok()?;
    let mut empty = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-request-id") {
            return None;
        }
        if name.eq_ignore_ascii_case("content-length") {
            empty = value.trim() == "0";
        }
    }
    empty.then_some(code)
}

/// A complete HTTP/1.1 answer carrying the envelope for `code`; the connection closes after it.
pub(crate) fn envelope_answer(code: ErrorCode) -> Vec<u8> {
    envelope_answer_with(code, code.description(), &[])
}

/// [`envelope_answer`] with a message and extra headers (such as `retry-after`).
pub(crate) fn envelope_answer_with(
    code: ErrorCode,
    message: &str,
    headers: &[(&str, &str)],
) -> Vec<u8> {
    let body =
        serde_json::json!({ "error": { "code": code.as_str(), "message": message } }).to_string();
    let status = http::StatusCode::from_u16(code.http_status())
        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in headers {
        answer.push_str(name);
        answer.push_str(": ");
        answer.push_str(value);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    answer.push_str(&body);
    answer.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_refusals_are_recognised_by_shape() {
        let hyper = |status: &str| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\n"
            )
        };
        assert_eq!(
            hyper_refusal(hyper("414 URI Too Long").as_bytes()),
            Some(ErrorCode::UriTooLong)
        );
        assert_eq!(
            hyper_refusal(hyper("431 Request Header Fields Too Large").as_bytes()),
            Some(ErrorCode::HeadersTooLarge)
        );
        assert_eq!(
            hyper_refusal(hyper("400 Bad Request").as_bytes()),
            Some(ErrorCode::MalformedHttp)
        );
        // Answers of Purser's layers carry a request id, or a body.
        let ours = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nx-request-id: abc\r\n\r\n";
        assert_eq!(hyper_refusal(ours.as_bytes()), None);
        let with_body = "HTTP/1.1 400 Bad Request\r\ncontent-length: 52\r\n\r\n";
        assert_eq!(hyper_refusal(with_body.as_bytes()), None);
        // Other statuses, partial heads and bodies are left alone.
        assert_eq!(hyper_refusal(hyper("404 Not Found").as_bytes()), None);
        assert_eq!(
            hyper_refusal(b"HTTP/1.1 400 Bad Request\r\ncontent-len"),
            None
        );
        assert_eq!(hyper_refusal(b"{\"error\":1}"), None);
    }

    #[test]
    fn the_envelope_answer_is_complete_http() {
        let answer = String::from_utf8(envelope_answer_with(
            ErrorCode::Overloaded,
            "busy",
            &[("retry-after", "1")],
        ))
        .unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
    }
}
