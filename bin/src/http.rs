//! The smallest HTTP/1.1 server that Prometheus can scrape: `GET /metrics` (and `HEAD`), one
//! response per connection, then close.
//!
//! The metrics endpoint does not justify an HTTP stack (and its async runtime) in a daemon
//! built on async-std: a scrape is one short request. This reads the request head (bounded in
//! size and time), answers from the current state and closes, so a slow or hostile client can
//! hold one task for a few seconds at most and never the daemon.

use std::sync::Arc;
use std::time::Duration;

use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use log::{debug, warn};

use crate::metrics::CONTENT_TYPE;

/// The longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request and read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after a failed accept (for example when out of file descriptors).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What produces the body of `GET /metrics`.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves `listener` forever.
pub async fn serve(listener: TcpListener, render: Render) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let render = Arc::clone(&render);
                async_std::task::spawn(async move {
                    let answered =
                        async_std::future::timeout(CLIENT_TIMEOUT, answer(stream, &render)).await;
                    match answered {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => debug!("metrics: client {peer}: {e}"),
                        Err(_) => debug!("metrics: client {peer} timed out"),
                    }
                });
            }
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                async_std::task::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// A response: status line, content type and body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
    head_only: bool,
    allow: bool,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            head_only: false,
            allow: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// The response to a request whose head is `head`.
fn respond(head: &str, render: &Render) -> Response {
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::text("400 Bad Request", "malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::text("505 HTTP Version Not Supported", "HTTP/1.x only");
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Response::text("404 Not Found", "colo-compare serves /metrics only");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            body: render(),
            head_only: method == "HEAD",
            allow: false,
        },
        _ => Response {
            allow: true,
            ..Response::text("405 Method Not Allowed", "GET or HEAD only")
        },
    }
}

async fn answer(mut stream: TcpStream, render: &Render) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let response = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break respond(&String::from_utf8_lossy(&head[..end]), render);
        }
        if head.len() > MAX_HEAD {
            break Response::text(
                "431 Request Header Fields Too Large",
                "request head too large",
            );
        }
    };
    stream.write_all(&response.bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod test {
    use super::*;

    fn render() -> Render {
        Arc::new(|| "colo_up 1\n".to_string())
    }

    fn status(head: &str) -> &'static str {
        respond(head, &render()).status
    }

    #[test]
    fn only_get_and_head_of_metrics_are_served() {
        assert_eq!(status("GET /metrics HTTP/1.1\r\nHost: x"), "200 OK");
        assert_eq!(status("GET /metrics?x=1 HTTP/1.0"), "200 OK");
        assert_eq!(status("GET / HTTP/1.1"), "404 Not Found");
        assert_eq!(status("POST /metrics HTTP/1.1"), "405 Method Not Allowed");
        assert_eq!(status("GET /metrics"), "400 Bad Request");
        assert_eq!(
            status("GET /metrics SPDY/3"),
            "505 HTTP Version Not Supported"
        );
        let head = respond("HEAD /metrics HTTP/1.1", &render()).bytes();
        let text = String::from_utf8(head).expect("ascii");
        assert!(text.contains("Content-Length: 10\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
