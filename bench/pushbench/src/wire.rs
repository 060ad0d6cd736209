//! The generator's own clients, built for cost rather than generality: a WebSocket client
//! ([`ws`]) and an HTTP/1.1 keep-alive client ([`http`]). Each turns one read syscall into as
//! many parsed frames or responses as it holds, and answers with one write.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};

pub mod http;
pub mod ws;

/// Why a connection or a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket upgrade refused: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("bad HTTP response: {0}")]
    BadResponse(String),
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
    #[error("the server closed the connection")]
    Eof,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A TCP connection to `dst`, from `src` (an ephemeral port of that address) when given: each
/// loopback source address has its own ephemeral port range, so many sources get past the
/// ~28,000 ports of one.
pub async fn connect(src: Option<IpAddr>, dst: SocketAddr) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if let Some(ip) = src {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(dst).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The length of an HTTP response head in `buf` and its status and `content-length`, once
/// the head is complete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Error::BadResponse(e.to_string())),
    };
    let mut head = Head {
        len,
        status: resp.code.unwrap_or(0),
        content_length: None,
        close: false,
        accept: None,
    };
    for h in resp.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(
                value
                    .parse()
                    .map_err(|_| Error::BadResponse(format!("content-length {value:?}")))?,
            );
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Error::BadResponse(format!(
                "transfer-encoding {value} is not supported"
            )));
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            head.accept = Some(value.to_owned());
        }
    }
    Ok(Some(head))
}

struct Head {
    len: usize,
    status: u16,
    content_length: Option<usize>,
    close: bool,
    accept: Option<String>,
}
