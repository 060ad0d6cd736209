//! An HTTP/1.1 client on one keep-alive connection: a request is one write, its response
//! usually one read. Responses must carry `content-length` (pushd's do).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Error, Result, parse_head};

/// A response: status and body.
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

/// Requests to one server, one at a time, on a connection opened on first use and again
/// after the server closed it.
pub struct HttpClient {
    addr: SocketAddr,
    /// `host` and fixed headers, each line ending in CRLF.
    headers: String,
    stream: Option<TcpStream>,
    req: Vec<u8>,
    buf: Vec<u8>,
}

impl HttpClient {
    /// A client for `addr` that sends `Authorization: Bearer {api_key}` with every request.
    pub fn new(addr: SocketAddr, api_key: &str) -> HttpClient {
        HttpClient {
            addr,
            headers: format!(
                "host: {addr}\r\nauthorization: Bearer {api_key}\r\ncontent-type: application/json\r\n"
            ),
            stream: None,
            req: Vec::with_capacity(1024),
            buf: vec![0; 4096],
        }
    }

    /// Sends `method path` with `body` and reads the whole response. A request is never
    /// retried (a POST may have been taken): on an error the connection is dropped.
    pub async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response<'_>> {
        let result = self.exchange(method, path, body).await;
        match result {
            Ok((status, body_at, body_len, close)) => {
                if close {
                    self.stream = None;
                }
                Ok(Response {
                    status,
                    body: &self.buf[body_at..body_at + body_len],
                })
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, usize, usize, bool)> {
        use std::io::Write;
        self.req.clear();
        write!(
            self.req,
            "{method} {path} HTTP/1.1\r\n{}content-length: {}\r\n\r\n",
            self.headers,
            body.len()
        )?;
        self.req.extend_from_slice(body);
        if self.stream.is_none() {
            self.stream = Some(super::connect(None, self.addr).await?);
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(&self.req).await?;
        let mut end = 0;
        loop {
            if end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = stream.read(&mut self.buf[end..]).await?;
            if n == 0 {
                return Err(Error::Eof);
            }
            end += n;
            let Some(head) = parse_head(&self.buf[..end])? else {
                continue;
            };
            let len = head
                .content_length
                .ok_or_else(|| Error::BadResponse("no content-length".into()))?;
            let total = head.len + len;
            if self.buf.len() < total {
                self.buf.resize(total, 0);
            }
            while end < total {
                let n = stream.read(&mut self.buf[end..total]).await?;
                if n == 0 {
                    return Err(Error::Eof);
                }
                end += n;
            }
            return Ok((head.status, head.len, len, head.close));
        }
    }
}
