//! A minimal keep-alive HTTP/1.1 client for load on small, fast endpoints, as `wrk` does it:
//! each load worker owns one connection, writes each request pre-encoded in one write, and reads
//! the answer by its `Content-Length`. Per request it costs the shared cores a fraction of what a
//! general client does (reqwest: a pool behind a lock, a header map, a task hop per request).
//!
//! It handles what Purser answers (a status line, headers, a `Content-Length` body) and refuses
//! the rest as errors rather than guessing: chunked bodies, interim (1xx) answers, more bytes
//! than were asked for.

use std::net::SocketAddr;
use std::ops::Range;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most header bytes an answer may have.
const MAX_HEAD: usize = 16 * 1024;

/// `method path` with `headers` and `body`, encoded once, sent as is.
pub fn encode(
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n");
    for (name, value) in headers {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    if !body.is_empty() || method != "GET" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// What the head of an answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Where the body is in the buffer that holds the answer.
    pub body: Range<usize>,
    /// The server will close the connection after this answer.
    pub close: bool,
}

/// Parses the head at the start of `buf`: `Ok(None)` while it is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(format!("no end of the head in {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "a head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1 answer: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {status_line:?}"))?;
    if (100..200).contains(&status) {
        return Err(format!("an interim answer ({status}), not handled"));
    }
    let mut close = version == "HTTP/1.0";
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("a header line without a colon: {line:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("Transfer-Encoding {value:?}, not handled"));
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let length = match (length, status) {
        (Some(length), _) => length,
        (None, 204 | 304) => 0,
        (None, _) => return Err(format!("HTTP {status} without Content-Length")),
    };
    let start = end + 4;
    Ok(Some(Head {
        status,
        body: start..start + length,
        close,
    }))
}

/// One keep-alive connection, opened on first use and again after a failure or a `close`.
pub struct Connection {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            stream: None,
            buf: Vec::with_capacity(8 * 1024),
        }
    }

    /// Opens the connection now, so that no measured request pays for it.
    pub async fn connect(&mut self) -> Result<(), String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
            stream
                .set_nodelay(true)
                .map_err(|e| format!("setting TCP_NODELAY: {e}"))?;
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Sends `request` (from [`encode`]) and reads the whole answer: its status and body.
    pub async fn send(&mut self, request: &[u8]) -> Result<(u16, &[u8]), String> {
        match self.exchange(request).await {
            Ok(head) => {
                if head.close {
                    self.stream = None;
                }
                Ok((head.status, &self.buf[head.body]))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> Result<Head, String> {
        self.connect().await?;
        let Self { stream, buf, .. } = self;
        let stream = stream.as_mut().expect("connected above");
        stream
            .write_all(request)
            .await
            .map_err(|e| format!("writing the request: {e}"))?;
        buf.clear();
        loop {
            if let Some(head) = parse_head(buf)? {
                while buf.len() < head.body.end {
                    read_more(stream, buf).await?;
                }
                if buf.len() > head.body.end {
                    return Err(format!(
                        "{} bytes after the answer",
                        buf.len() - head.body.end
                    ));
                }
                return Ok(head);
            }
            read_more(stream, buf).await?;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(), String> {
    buf.reserve(4 * 1024);
    match stream.read_buf(buf).await {
        Ok(0) => Err("the server closed the connection".to_owned()),
        Ok(_) => Ok(()),
        Err(e) => Err(format!("reading the answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_encoded_once_with_its_length() {
        let wire = encode(
            "POST",
            "/v1/x",
            "127.0.0.1:9",
            &[("authorization", "Bearer k")],
            b"{}",
        );
        assert_eq!(
            wire,
            b"POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1:9\r\nauthorization: Bearer k\r\ncontent-length: 2\r\n\r\n{}"
        );
        let get = encode("GET", "/healthz", "h", &[], b"");
        assert_eq!(get, b"GET /healthz HTTP/1.1\r\nhost: h\r\n\r\n");
    }

    #[test]
    fn a_head_gives_the_status_and_where_the_body_is() {
        let answer =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let head = parse_head(answer).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(&answer[head.body.clone()], b"{}");
        assert!(!head.close);
        // Incomplete: wait for more.
        assert_eq!(parse_head(&answer[..20]).unwrap(), None);
        let closing =
            b"HTTP/1.1 402 Payment Required\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        let head = parse_head(closing).unwrap().unwrap();
        assert_eq!((head.status, head.close, head.body.len()), (402, true, 0));
        let old = b"HTTP/1.0 204 No Content\r\n\r\n";
        let head = parse_head(old).unwrap().unwrap();
        assert_eq!((head.status, head.close, head.body.len()), (204, true, 0));
    }

    #[test]
    fn what_it_does_not_handle_is_an_error() {
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 100 Continue\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(parse_head(&vec![b'a'; MAX_HEAD + 1]).is_err());
    }

    #[tokio::test]
    async fn a_connection_is_kept_alive_across_requests() {
        let app = axum::Router::new().route(
            "/echo",
            axum::routing::post(|body: String| async move { body }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut connection = Connection::new(addr);
        for text in ["one", "two", "three"] {
            let request = encode("POST", "/echo", "x", &[], text.as_bytes());
            let (status, body) = connection.send(&request).await.unwrap();
            assert_eq!((status, body), (200, text.as_bytes()));
        }
        let missing = encode("GET", "/nowhere", "x", &[], b"");
        assert_eq!(connection.send(&missing).await.unwrap().0, 404);
    }
}
