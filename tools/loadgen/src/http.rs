//! The tool's HTTP/1.1 client: one request per connection (`Connection: close`), enough for
//! the few REST calls that set the event up.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, IoContext, Result};

/// A response: status code and body.
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// `Ok(self)` if the status is `want`, else an error naming `what`.
    pub fn expect(self, want: u16, what: &str) -> Result<Response> {
        if self.status == want {
            Ok(self)
        } else {
            Err(Error::Status {
                what: what.to_owned(),
                status: self.status,
                body: self.body,
            })
        }
    }
}

/// One request; the response is read to the end (the server closes), at most 60 s.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response> {
    let what = format!("{method} {path}");
    let mut sock = TcpStream::connect(addr).await.io(&what)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.io(&what)?;
    sock.write_all(body).await.io(&what)?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), sock.read_to_end(&mut resp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))
        .io(&what)?
        .io(&what)?;
    Ok(parse_response(&resp))
}

/// Status (0 if the status line is unreadable) and body of a whole response.
fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Response { status, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_body() {
        let r = parse_response(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!((r.status, r.body.as_str()), (201, "{}"));
        let r = parse_response(b"nonsense");
        assert_eq!((r.status, r.body.as_str()), (0, ""));
    }
}
