//! A WebSocket client (RFC 6455) for many connections at little cost: server frames are parsed
//! in place from one read buffer, and the replies they call for (acks, pongs) are masked into
//! one write buffer, flushed once per read.
//!
//! Only what pushd speaks: unfragmented text frames, ping, pong and close; no extensions.

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Error, Result, parse_head};

/// Read buffer of an idle connection; grown for a larger frame, shrunk back once it is read.
const READ_BUFFER: usize = 2048;
/// Largest frame accepted from the server (pushd's payloads are at most 64 KiB by default).
const MAX_FRAME: usize = 16 << 20;
/// The handshake key; any 16 bytes in base64 will do for a server that checks the format.
const KEY: &str = "cHVzaGJlbmNoLWtleS0wMQ==";
static ACCEPT: LazyLock<String> =
    LazyLock::new(|| tokio_tungstenite::tungstenite::handshake::derive_accept_key(KEY.as_bytes()));

const OP_TEXT: u8 = 1;
const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
const OP_PONG: u8 = 10;

/// A frame the server sent, borrowed from the read buffer.
pub enum Frame<'a> {
    Text(&'a [u8]),
    /// Close code (1005 when the frame has none) and reason.
    Close(u16, &'a [u8]),
}

/// Where replies go: masked client frames, written by the next [`WsClient::flush`].
pub struct Out<'a> {
    buf: &'a mut Vec<u8>,
    mask: [u8; 4],
}

impl Out<'_> {
    /// Appends a text frame whose payload is the concatenation of `parts`.
    pub fn text(&mut self, parts: &[&[u8]]) {
        self.frame(OP_TEXT, parts);
    }

    fn frame(&mut self, opcode: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.buf.push(0x80 | opcode);
        if len < 126 {
            self.buf.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            self.buf.push(0x80 | 126);
            self.buf.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.buf.push(0x80 | 127);
            self.buf.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.buf.extend_from_slice(&self.mask);
        let mut i = 0;
        for part in parts {
            for b in *part {
                self.buf.push(b ^ self.mask[i & 3]);
                i += 1;
            }
        }
    }
}

/// One client connection.
pub struct WsClient {
    stream: TcpStream,
    rbuf: Vec<u8>,
    /// Unparsed bytes are `rbuf[start..end]`.
    start: usize,
    end: usize,
    wbuf: Vec<u8>,
    mask: [u8; 4],
}

impl WsClient {
    /// Connects from `src` to `dst` and upgrades `GET {path}` (which carries the token).
    /// Frames the server sent right after the upgrade stay buffered for [`Self::process`].
    pub async fn connect(src: Option<IpAddr>, dst: SocketAddr, path: &str) -> Result<WsClient> {
        let mut stream = super::connect(src, dst).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: {dst}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
             sec-websocket-key: {KEY}\r\nsec-websocket-version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await?;
        let mut rbuf = vec![0; READ_BUFFER];
        let mut end = 0;
        let head = loop {
            if end == rbuf.len() {
                rbuf.resize(rbuf.len() * 2, 0);
            }
            let n = stream.read(&mut rbuf[end..]).await?;
            if n == 0 {
                return Err(Error::Eof);
            }
            end += n;
            if let Some(head) = parse_head(&rbuf[..end])? {
                break head;
            }
        };
        if head.status != 101 {
            let body = String::from_utf8_lossy(&rbuf[head.len..end]).into_owned();
            return Err(Error::Refused {
                status: head.status,
                body,
            });
        }
        if head.accept.as_deref() != Some(ACCEPT.as_str()) {
            return Err(Error::BadResponse(format!(
                "sec-websocket-accept {:?}",
                head.accept
            )));
        }
        // A mask per connection, from its local port: masking is for proxies, not secrecy.
        let port = stream.local_addr()?.port();
        let mask = [0x5a, (port >> 8) as u8, port as u8, 0xa5];
        Ok(WsClient {
            stream,
            rbuf,
            start: head.len,
            end,
            wbuf: Vec::new(),
            mask,
        })
    }

    /// Reads what the kernel holds (at least one byte) into the buffer.
    pub async fn read(&mut self) -> Result<()> {
        if self.end == self.rbuf.len() {
            self.rbuf.resize(self.rbuf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.rbuf[self.end..]).await?;
        if n == 0 {
            return Err(Error::Eof);
        }
        self.end += n;
        Ok(())
    }

    /// Hands every complete text and close frame to `f` (pings are answered here), then
    /// compacts the buffer. Replies written to the [`Out`] go out with [`Self::flush`].
    pub fn process<F>(&mut self, mut f: F) -> Result<()>
    where
        F: FnMut(Frame<'_>, &mut Out<'_>),
    {
        let mut out = Out {
            buf: &mut self.wbuf,
            mask: self.mask,
        };
        loop {
            let buf = &self.rbuf[self.start..self.end];
            let Some((header, len)) = frame_len(buf)? else {
                break;
            };
            if buf.len() < header + len {
                let need = header + len;
                if need > self.rbuf.len() {
                    // Make room for the whole frame at the start of the buffer.
                    self.rbuf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                    self.rbuf.resize(need, 0);
                }
                break;
            }
            let opcode = buf[0] & 0x0f;
            let payload = &buf[header..header + len];
            match opcode {
                OP_TEXT => f(Frame::Text(payload), &mut out),
                OP_PING => out.frame(OP_PONG, &[payload]),
                OP_PONG => {}
                OP_CLOSE => {
                    let code = match payload {
                        [a, b, ..] => u16::from_be_bytes([*a, *b]),
                        _ => 1005,
                    };
                    f(
                        Frame::Close(code, payload.get(2..).unwrap_or(&[])),
                        &mut out,
                    );
                }
                other => return Err(Error::Protocol(format!("unexpected opcode {other}"))),
            }
            self.start += header + len;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.rbuf.len() > READ_BUFFER {
                self.rbuf = vec![0; READ_BUFFER];
            }
        } else if self.end == self.rbuf.len() && self.start > 0 {
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        Ok(())
    }

    /// Queues a text frame (written by the next [`Self::flush`]).
    pub fn text(&mut self, parts: &[&[u8]]) {
        Out {
            buf: &mut self.wbuf,
            mask: self.mask,
        }
        .text(parts);
    }

    /// Writes the queued replies, if any, in one write.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            if self.wbuf.capacity() > READ_BUFFER {
                self.wbuf.shrink_to(READ_BUFFER);
            }
        }
        Ok(())
    }
}

/// The header length and payload length of the frame at the start of `buf`, once its header
/// is complete.
fn frame_len(buf: &[u8]) -> Result<Option<(usize, usize)>> {
    let [b0, b1, rest @ ..] = buf else {
        return Ok(None);
    };
    if b0 & 0x80 == 0 || b0 & 0x0f == 0 {
        return Err(Error::Protocol(
            "fragmented frames are not supported".into(),
        ));
    }
    if b1 & 0x80 != 0 {
        return Err(Error::Protocol("the server masked a frame".into()));
    }
    let (header, len) = match b1 & 0x7f {
        126 => match rest {
            [a, b, ..] => (4, usize::from(u16::from_be_bytes([*a, *b]))),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(b) => (
                10,
                u64::from_be_bytes(b.try_into().expect("8 bytes")) as usize,
            ),
            None => return Ok(None),
        },
        n => (2, usize::from(n)),
    };
    if len > MAX_FRAME {
        return Err(Error::Protocol(format!("frame of {len} bytes")));
    }
    Ok(Some((header, len)))
}

#[cfg(test)]
mod tests;
