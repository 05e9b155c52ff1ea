//! Helpers shared by the integration tests.

// `allow`, not `expect`: each test binary uses a different subset of these helpers.
#![allow(dead_code, unreachable_pub)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A receiver answering each request with the next of `statuses`; returns the requests as
/// received (head and body).
pub async fn receiver(statuses: &'static [&'static str]) -> (String, tokio::task::JoinHandle<Vec<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for status in statuses {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0_u8; 65536];
            let mut len = 0;
            loop {
                let n = socket.read(&mut buf[len..]).await.unwrap();
                len += n;
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let content_length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if len >= head_end + 4 + content_length {
                        seen.push(text);
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            socket.write_all(reply.as_bytes()).await.unwrap();
        }
        seen
    });
    (url, server)
}
