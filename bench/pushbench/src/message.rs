//! What the generator sends and how it reads it back. The payload carries the phase, the
//! message's index and the sender's timestamp (`{"b":PHASE,"m":INDEX,"t":MICROS,"p":"…"}`);
//! pushd embeds the payload verbatim in its `message` frame, so the receiver finds those
//! fields, the message id and the seq by position, without a JSON parse. A frame of another
//! shape falls back to a full parse (and is counted, see [`Scanned::Message`]).

use std::borrow::Cow;
use std::io::Write;

/// Where a message came from and when it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub phase: u32,
    /// The message's index in its phase, from 1 (0: not tracked per message).
    pub msg: u64,
    /// The sender's wall clock, microseconds since the Unix epoch.
    pub sent_us: u64,
}

/// A server frame, as far as the generator cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Scanned<'a> {
    Message {
        id: Cow<'a, str>,
        seq: u64,
        tag: Tag,
        /// True when the frame needed the slow path (a full JSON parse).
        slow: bool,
    },
    Welcome,
    /// An `error` frame (the whole frame).
    Error(&'a [u8]),
    /// A message frame without our tag, or a frame type we do not know.
    Other,
}

/// Appends the payload JSON for `tag`, padded to `size` bytes (when `size` leaves room for
/// the fixed part).
pub fn write_payload(buf: &mut Vec<u8>, tag: &Tag, size: usize) {
    let start = buf.len();
    write!(
        buf,
        r#"{{"b":{},"m":{},"t":{},"p":""#,
        tag.phase, tag.msg, tag.sent_us
    )
    .expect("writing to a Vec cannot fail");
    let fixed = buf.len() - start + 2;
    buf.resize(buf.len() + size.saturating_sub(fixed), b'x');
    buf.extend_from_slice(b"\"}");
}

/// The parts of an ack frame for message `id` (to be concatenated).
pub fn ack_parts(id: &[u8]) -> [&[u8]; 3] {
    [br#"{"type":"ack","id":""#, id, br#""}"#]
}

/// The cumulative ack of everything up to `seq`, written into `buf` (cleared first).
pub fn ack_seq(buf: &mut Vec<u8>, seq: u64) {
    buf.clear();
    write!(buf, r#"{{"type":"ack","seq":{seq}}}"#).expect("writing to a Vec cannot fail");
}

/// Classifies a server text frame.
pub fn scan(frame: &[u8]) -> Scanned<'_> {
    scan_fast(frame).unwrap_or_else(|| scan_slow(frame))
}

const MESSAGE: &[u8] = br#"{"type":"message","id":""#;

fn scan_fast(frame: &[u8]) -> Option<Scanned<'_>> {
    let rest = frame.strip_prefix(MESSAGE)?;
    let quote = memchr::memchr(b'"', rest)?;
    let (id, rest) = rest.split_at(quote);
    let rest = rest.strip_prefix(br#"","seq":"#)?;
    let (seq, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","payload":{"b":"#)?;
    let (phase, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","m":"#)?;
    let (msg, rest) = number(rest)?;
    let rest = rest.strip_prefix(br#","t":"#)?;
    let (sent_us, _) = number(rest)?;
    Some(Scanned::Message {
        id: Cow::Borrowed(std::str::from_utf8(id).ok()?),
        seq,
        tag: Tag {
            phase: u32::try_from(phase).ok()?,
            msg,
            sent_us,
        },
        slow: false,
    })
}

/// Leading decimal digits of `s` and what follows them.
fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let mut v = 0u64;
    for b in &s[..digits] {
        v = v * 10 + u64::from(b - b'0');
    }
    Some((v, &s[digits..]))
}

/// Any frame the fast path does not know, by a full parse (welcome and error frames are
/// rare; messages land here only if the frame's shape changed).
fn scan_slow(frame: &[u8]) -> Scanned<'_> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(frame) else {
        return Scanned::Other;
    };
    let field = |k: &str| v["payload"][k].as_u64();
    match v["type"].as_str() {
        Some("welcome") => return Scanned::Welcome,
        Some("error") => return Scanned::Error(frame),
        _ => {}
    }
    match (
        v["type"].as_str(),
        v["id"].as_str(),
        v["seq"].as_u64(),
        field("b").and_then(|b| u32::try_from(b).ok()),
        field("m"),
        field("t"),
    ) {
        (Some("message"), Some(id), Some(seq), Some(phase), Some(msg), Some(sent_us)) => {
            Scanned::Message {
                id: Cow::Owned(id.to_owned()),
                seq,
                tag: Tag {
                    phase,
                    msg,
                    sent_us,
                },
                slow: true,
            }
        }
        _ => Scanned::Other,
    }
}

/// Microseconds since the Unix epoch (the wall clock every process of the machine shares).
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests;
