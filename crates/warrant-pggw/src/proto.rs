//! The PostgreSQL wire protocol (version 3.0) as far as the gateway needs it: the start-up
//! packets, message frames, the few messages it writes itself, and the client messages it reads
//! to log statements.
//!
//! Written here rather than with `pgwire` (DEPENDENCIES.md): pgwire is a framework for
//! *serving* queries, which decodes every message into a struct and encodes it again. The
//! gateway is a relay: it passes the bytes through untouched, reads only the frame headers and
//! the handful of client messages it logs (`Query`, `Parse`, `Bind`, `Execute`, `Close`,
//! `FunctionCall`, COPY), so that nothing it does not understand is altered and bulk results
//! cost one copy. Logging in to the target uses `postgres-protocol` (message builders, the
//! SCRAM-SHA-256 client) in [`crate::upstream`].

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `SSLRequest`'s code.
pub(crate) const SSL_REQUEST: i32 = 80_877_103;
/// `GSSENCRequest`'s code.
pub(crate) const GSSENC_REQUEST: i32 = 80_877_104;
/// `CancelRequest`'s code.
pub(crate) const CANCEL_REQUEST: i32 = 80_877_102;
/// The largest start-up packet accepted (PostgreSQL's own limit).
const MAX_STARTUP: usize = 10_000;
/// The largest message accepted from a client before it is logged in.
const MAX_AUTH_MESSAGE: usize = 10_000;
/// The largest message a client may send (each is held whole until it is logged): 64 MiB,
/// below PostgreSQL's own 1 GB so that one session cannot take the server's memory. A larger
/// one ends the session with a protocol error. The target's messages are not held, whatever
/// their size.
pub(crate) const MAX_MESSAGE: usize = 64 << 20;

/// A protocol violation or a closed connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtoError {
    /// The peer closed the connection.
    #[error("the connection closed")]
    Closed,
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not follow the protocol.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(what: impl Into<String>) -> ProtoError {
    ProtoError::Invalid(what.into())
}

/// The first packet of a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Startup {
    /// The client asks for TLS.
    Ssl,
    /// The client asks for GSSAPI encryption (refused: answered `N`).
    GssEnc,
    /// Cancel the query running on the connection with this key.
    Cancel {
        /// The process id the gateway gave the connection.
        pid: i32,
        /// Its secret key.
        key: Vec<u8>,
    },
    /// A start-up message.
    Start {
        /// The minor protocol version asked for (0 for 3.0).
        minor: u16,
        /// The parameters, in order (`user`, `database`, `application_name`, …).
        params: Vec<(String, String)>,
    },
}

/// Reads the first packet (`SSLRequest`, `GSSENCRequest`, `CancelRequest` or a start-up
/// message).
pub(crate) async fn read_startup<R: AsyncRead + Unpin>(r: &mut R) -> Result<Startup, ProtoError> {
    let len = match r.read_i32().await {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtoError::Closed);
        }
        Err(e) => return Err(e.into()),
    };
    let len = usize::try_from(len).map_err(|_| invalid("a negative start-up packet length"))?;
    if !(8..=MAX_STARTUP).contains(&len) {
        return Err(invalid(format!("a start-up packet of {len} bytes")));
    }
    let mut body = vec![0; len - 4];
    r.read_exact(&mut body).await?;
    parse_startup(&body)
}

/// Parses a start-up packet's body (after its length).
pub(crate) fn parse_startup(body: &[u8]) -> Result<Startup, ProtoError> {
    let mut b = body;
    if b.len() < 4 {
        return Err(invalid("a start-up packet without a code"));
    }
    let code = b.get_i32();
    match code {
        SSL_REQUEST if b.is_empty() => Ok(Startup::Ssl),
        GSSENC_REQUEST if b.is_empty() => Ok(Startup::GssEnc),
        CANCEL_REQUEST if b.len() >= 8 => {
            let pid = b.get_i32();
            Ok(Startup::Cancel {
                pid,
                key: b.to_vec(),
            })
        }
        _ if code >> 16 == 3 => {
            let minor = u16::try_from(code & 0xffff).unwrap_or(0);
            let mut params = Vec::new();
            loop {
                let name = cstr(&mut b)?;
                if name.is_empty() {
                    break;
                }
                let value = cstr(&mut b)?;
                params.push((name, value));
            }
            Ok(Startup::Start { minor, params })
        }
        _ => Err(invalid(format!(
            "protocol {}.{} (only 3.0 is spoken)",
            code >> 16,
            code & 0xffff
        ))),
    }
}

/// Reads a NUL-terminated string (UTF-8, lossily) and advances past it.
pub(crate) fn cstr(b: &mut &[u8]) -> Result<String, ProtoError> {
    let end = b
        .iter()
        .position(|&c| c == 0)
        .ok_or_else(|| invalid("a string without its terminator"))?;
    let s = String::from_utf8_lossy(&b[..end]).into_owned();
    *b = &b[end + 1..];
    Ok(s)
}

/// Reads one whole message (`tag`, body) during start-up, when messages are small.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<(u8, Vec<u8>), ProtoError> {
    let tag = match r.read_u8().await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtoError::Closed);
        }
        Err(e) => return Err(e.into()),
    };
    let len = r.read_i32().await?;
    let len = usize::try_from(len).map_err(|_| invalid("a negative message length"))?;
    if !(4..=MAX_AUTH_MESSAGE).contains(&len) {
        return Err(invalid(format!("a message of {len} bytes during start-up")));
    }
    let mut body = vec![0; len - 4];
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// Appends a message `tag` with `body` to `out`.
pub(crate) fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32(i32::try_from(body.len() + 4).unwrap_or(i32::MAX));
    out.put_slice(body);
}

/// `AuthenticationCleartextPassword`.
pub(crate) fn auth_cleartext(out: &mut BytesMut) {
    put_message(out, b'R', &3_i32.to_be_bytes());
}

/// `AuthenticationOk`.
pub(crate) fn auth_ok(out: &mut BytesMut) {
    put_message(out, b'R', &0_i32.to_be_bytes());
}

/// `BackendKeyData`: the process id and secret key the client cancels with.
pub(crate) fn backend_key_data(out: &mut BytesMut, pid: i32, key: [u8; 4]) {
    let mut body = Vec::with_capacity(8);
    body.extend_from_slice(&pid.to_be_bytes());
    body.extend_from_slice(&key);
    put_message(out, b'K', &body);
}

/// `NegotiateProtocolVersion`: the newest minor version spoken (0) and the protocol options
/// (`_pq_.…`) not understood.
pub(crate) fn negotiate_protocol_version(out: &mut BytesMut, unknown: &[String]) {
    let mut body = Vec::new();
    body.extend_from_slice(&0_i32.to_be_bytes());
    body.extend_from_slice(&i32::try_from(unknown.len()).unwrap_or(0).to_be_bytes());
    for name in unknown {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
    }
    put_message(out, b'v', &body);
}

/// An `ErrorResponse` (`FATAL` or `ERROR`) with an SQLSTATE, a message and maybe a hint.
pub(crate) fn error_response(
    out: &mut BytesMut,
    severity: &str,
    sqlstate: &str,
    message: &str,
    hint: Option<&str>,
) {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', sqlstate),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.replace('\0', " ").as_bytes());
        body.push(0);
    }
    if let Some(hint) = hint {
        body.push(b'H');
        body.extend_from_slice(hint.replace('\0', " ").as_bytes());
        body.push(0);
    }
    body.push(0);
    put_message(out, b'E', &body);
}

/// The SQLSTATE and message of an `ErrorResponse` body.
pub(crate) fn parse_error(body: &[u8]) -> (String, String) {
    let mut code = String::new();
    let mut message = String::new();
    let mut b = body;
    while let Some((&field, rest)) = b.split_first() {
        if field == 0 {
            break;
        }
        b = rest;
        let Ok(value) = cstr(&mut b) else { break };
        match field {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
    }
    (code, message)
}

/// Writes `buf` and clears it.
pub(crate) async fn flush<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &mut BytesMut,
) -> Result<(), ProtoError> {
    w.write_all(buf).await?;
    w.flush().await?;
    buf.clear();
    Ok(())
}

/// The protocol options (`_pq_.…`) among start-up parameters, which the gateway does not
/// understand and reports back in `NegotiateProtocolVersion`.
pub(crate) fn protocol_options(params: &[(String, String)]) -> Vec<String> {
    params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Finds the message boundaries in a stream of server messages that is relayed in arbitrary
/// chunks, so that the gateway can put a message of its own between two (an error before it
/// closes a session) without cutting one in half.
#[derive(Debug, Default)]
pub(crate) struct Boundaries {
    header: [u8; 5],
    have: usize,
    remaining: usize,
}

impl Boundaries {
    /// Follows `data`, the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = self.remaining.min(data.len());
                self.remaining -= n;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                let len = i32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                self.remaining = usize::try_from(len).unwrap_or(4).saturating_sub(4);
                self.have = 0;
            }
        }
    }

    /// Whether the bytes so far end on a message boundary.
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }
}

/// The length of the first whole message in `buf`, if it holds one.
pub(crate) fn whole_message(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| (4..=MAX_MESSAGE).contains(&l))
        .ok_or_else(|| invalid(format!("a message claiming {len} bytes")))?;
    Ok((buf.len() > len).then_some(len + 1))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn startup_parameters_are_read_in_order() {
        let mut body = Vec::new();
        body.extend_from_slice(&(3_i32 << 16).to_be_bytes());
        body.extend_from_slice(b"user\0alice\0database\0pg-prod\0\0");
        assert_eq!(
            parse_startup(&body).unwrap(),
            Startup::Start {
                minor: 0,
                params: vec![
                    ("user".into(), "alice".into()),
                    ("database".into(), "pg-prod".into())
                ]
            }
        );
        assert_eq!(
            parse_startup(&SSL_REQUEST.to_be_bytes()).unwrap(),
            Startup::Ssl
        );
        assert!(parse_startup(&(2_i32 << 16).to_be_bytes()).is_err());
        // A parameter without its terminator.
        let mut cut = (3_i32 << 16).to_be_bytes().to_vec();
        cut.extend_from_slice(b"user\0ali");
        assert!(parse_startup(&cut).is_err());
    }

    #[test]
    fn boundaries_follow_messages_across_chunks() {
        let mut stream = BytesMut::new();
        put_message(&mut stream, b'D', b"hello world");
        put_message(&mut stream, b'C', b"SELECT 1\0");
        put_message(&mut stream, b'Z', b"I");
        let ends = [16, 16 + 14, stream.len()];
        for split in 0..stream.len() {
            let mut b = Boundaries::default();
            b.feed(&stream[..split]);
            assert_eq!(
                b.at_boundary(),
                split == 0 || ends.contains(&split),
                "{split}"
            );
            b.feed(&stream[split..]);
            assert!(b.at_boundary());
        }
    }

    #[test]
    fn whole_messages_are_found_and_lies_refused() {
        let mut m = BytesMut::new();
        put_message(&mut m, b'Q', b"SELECT 1\0");
        assert_eq!(whole_message(&m[..5]).unwrap(), None);
        assert_eq!(whole_message(&m).unwrap(), Some(m.len()));
        assert!(whole_message(&[b'Q', 0, 0, 0, 1]).is_err());
        assert!(whole_message(&[b'Q', 0xff, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn errors_round_trip() {
        let mut m = BytesMut::new();
        error_response(&mut m, "FATAL", "28P01", "no\0pe", Some("a hint"));
        let (code, message) = parse_error(&m[5..]);
        assert_eq!((code.as_str(), message.as_str()), ("28P01", "no pe"));
    }
}
