//! Logging in to the target: TCP (or TLS, verified as for Warrant's admin connections), a
//! start-up message as the injected role, and its password by whatever the server asks —
//! SCRAM-SHA-256 (postgres-protocol's client), MD5 or cleartext (the latter two only over TLS
//! or to loopback, as the target's `tls` setting already allows). What the server says after
//! the login (parameter statuses, notices, its key for cancelling) is kept for the client.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use warrant_pgroles::TlsMode;

use crate::authority::Upstream;
use crate::proto::{self, ProtoError, parse_error};

/// A byte stream to a client or a target, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The start-up parameters passed on to the target: presentation settings only. Others
/// (`options`, `search_path`, `session_replication_role`, …) could change what a logged
/// statement means without appearing in the log, and are dropped.
pub(crate) const PASSED_PARAMETERS: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "IntervalStyle",
    "extra_float_digits",
];

/// The largest message accepted from a target while logging in.
const MAX_LOGIN_MESSAGE: usize = 1 << 20;

/// A logged-in connection to the target.
pub(crate) struct UpConn {
    pub(crate) stream: Box<dyn Io>,
    /// The server's messages after `AuthenticationOk` up to and including `ReadyForQuery`,
    /// except its `BackendKeyData`: relayed to the client as they are.
    pub(crate) greeting: BytesMut,
    /// The server's process id and cancel key.
    pub(crate) pid: i32,
    pub(crate) key: Vec<u8>,
}

/// Why the target could not be logged in to.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpError {
    /// TCP, TLS or the protocol failed.
    #[error("cannot reach {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The server refused (authentication, database, too many connections).
    #[error("{target} refused the login ({code}): {message}")]
    Refused {
        target: String,
        code: String,
        message: String,
    },
}

/// Connects and logs in as `up.user`, passing the client's own start-up parameters on
/// (`application_name`, `client_encoding`, `options`, …).
pub(crate) async fn connect(
    up: &Upstream,
    client_params: &[(String, String)],
    timeout: Duration,
) -> Result<UpConn, UpError> {
    let target = format!("{}:{}/{}", up.host, up.port, up.database);
    let fail = |reason: String| UpError::Connect {
        target: target.clone(),
        reason,
    };
    tokio::time::timeout(timeout, login(up, client_params, &target))
        .await
        .map_err(|_| fail(format!("no answer within {} s", timeout.as_secs())))?
}

async fn login(
    up: &Upstream,
    client_params: &[(String, String)],
    target: &str,
) -> Result<UpConn, UpError> {
    let fail = |reason: String| UpError::Connect {
        target: target.to_owned(),
        reason,
    };
    let mut stream = open(&up.host, up.port, &up.tls).await.map_err(fail)?;
    let mut out = BytesMut::new();
    let mut params: Vec<(&str, &str)> = vec![("user", &up.user), ("database", &up.database)];
    for (k, v) in client_params {
        if PASSED_PARAMETERS.contains(&k.as_str()) {
            params.push((k, v));
        }
    }
    frontend::startup_message(params, &mut out).map_err(|e| fail(e.to_string()))?;
    let io = |e: ProtoError| fail(e.to_string());
    proto::flush(&mut stream, &mut out).await.map_err(io)?;
    let password = up.password.expose().as_bytes();
    // The password itself (cleartext) or its MD5 goes only inside TLS or to this machine: a
    // server that asks for them on a plain connection elsewhere may be an impostor.
    let may_send_password = !matches!(up.tls, TlsMode::Disable)
        || up.host == "localhost"
        || up
            .host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    let mut scram: Option<ScramSha256> = None;
    let mut scram_verified = false;
    let mut greeting = BytesMut::new();
    let (mut pid, mut key) = (0, Vec::new());
    loop {
        let (tag, body) = read_message(&mut stream).await.map_err(io)?;
        match tag {
            b'R' => {
                let mut b = body.as_slice();
                let kind = take_i32(&mut b).ok_or_else(|| fail("a short message".into()))?;
                match kind {
                    0 if scram.is_some() && !scram_verified => {
                        return Err(fail(
                            "the server accepted the login without proving it knows the password (no SCRAM final message)".into(),
                        ));
                    }
                    0 => {}
                    3 | 5 if !may_send_password => {
                        return Err(fail(
                            "the server asks for the password in the clear or as MD5 over a connection without TLS; refused (set the target's tls, or use SCRAM)".into(),
                        ));
                    }
                    3 => frontend::password_message(password, &mut out)
                        .map_err(|e| fail(e.to_string()))?,
                    5 => {
                        let salt: [u8; 4] = b
                            .get(..4)
                            .and_then(|s| s.try_into().ok())
                            .ok_or_else(|| fail("a short MD5 challenge".into()))?;
                        let hash = postgres_protocol::authentication::md5_hash(
                            up.user.as_bytes(),
                            password,
                            salt,
                        );
                        frontend::password_message(hash.as_bytes(), &mut out)
                            .map_err(|e| fail(e.to_string()))?;
                    }
                    10 => {
                        let mechanisms: Vec<&[u8]> =
                            b.split(|&c| c == 0).filter(|m| !m.is_empty()).collect();
                        if !mechanisms.contains(&SCRAM_SHA_256.as_bytes()) {
                            return Err(fail("the server offers no SCRAM-SHA-256".into()));
                        }
                        // Without channel binding ("n"): what a client that cannot bind says;
                        // the TLS connection is verified anyway.
                        let s = ScramSha256::new(password, ChannelBinding::unsupported());
                        frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)
                            .map_err(|e| fail(e.to_string()))?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| fail("SCRAM out of order".into()))?;
                        s.update(b).map_err(|e| fail(format!("SCRAM: {e}")))?;
                        frontend::sasl_response(s.message(), &mut out)
                            .map_err(|e| fail(e.to_string()))?;
                    }
                    12 => {
                        let s = scram
                            .as_mut()
                            .ok_or_else(|| fail("SCRAM out of order".into()))?;
                        s.finish(b)
                            .map_err(|e| fail(format!("the server's SCRAM proof: {e}")))?;
                        scram_verified = true;
                    }
                    other => {
                        return Err(fail(format!("authentication method {other} is not spoken")));
                    }
                }
                if !out.is_empty() {
                    proto::flush(&mut stream, &mut out).await.map_err(io)?;
                }
            }
            b'E' => {
                let (code, message) = parse_error(&body);
                return Err(UpError::Refused {
                    target: target.to_owned(),
                    code,
                    message,
                });
            }
            b'K' => {
                let mut b = body.as_slice();
                pid = take_i32(&mut b).ok_or_else(|| fail("a short key".into()))?;
                key = b.to_vec();
            }
            b'v' => {}
            b'Z' => {
                proto::put_message(&mut greeting, tag, &body);
                return Ok(UpConn {
                    stream,
                    greeting,
                    pid,
                    key,
                });
            }
            _ => proto::put_message(&mut greeting, tag, &body),
        }
    }
}

fn take_i32(b: &mut &[u8]) -> Option<i32> {
    let (head, rest) = b.split_first_chunk::<4>()?;
    *b = rest;
    Some(i32::from_be_bytes(*head))
}

async fn read_message(r: &mut Box<dyn Io>) -> Result<(u8, Vec<u8>), ProtoError> {
    let tag = match r.read_u8().await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ProtoError::Closed);
        }
        Err(e) => return Err(e.into()),
    };
    let len = usize::try_from(r.read_i32().await?)
        .ok()
        .filter(|l| (4..=MAX_LOGIN_MESSAGE).contains(l))
        .ok_or_else(|| ProtoError::Invalid("a message of a bad length".into()))?;
    let mut body = vec![0; len - 4];
    r.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// Opens TCP to `host:port`, then TLS when `tls` asks for it.
pub(crate) async fn open(host: &str, port: u16, tls: &TlsMode) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    match tls {
        TlsMode::Disable => Ok(Box::new(tcp)),
        TlsMode::Require { ca_file } => {
            let mut tcp = tcp;
            let mut out = BytesMut::new();
            frontend::ssl_request(&mut out);
            tcp.write_all(&out).await.map_err(|e| e.to_string())?;
            let answer = tcp.read_u8().await.map_err(|e| e.to_string())?;
            if answer != b'S' {
                return Err("the server does not offer TLS, which the target requires".into());
            }
            let config = warrant_pgroles::client_tls_config(ca_file.as_deref())?;
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| format!("{host} is no TLS server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            Ok(Box::new(tls))
        }
    }
}

/// Asks the target to cancel what its process `pid` runs (a client's `CancelRequest`, passed
/// on with the target's own key).
pub(crate) async fn cancel(host: &str, port: u16, tls: &TlsMode, pid: i32, key: &[u8]) {
    let Ok(mut stream) = open(host, port, tls).await else {
        return;
    };
    let mut out = BytesMut::new();
    let len = i32::try_from(12 + key.len()).unwrap_or(16);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&proto::CANCEL_REQUEST.to_be_bytes());
    out.extend_from_slice(&pid.to_be_bytes());
    out.extend_from_slice(key);
    let _ = stream.write_all(&out).await;
    let _ = stream.flush().await;
    // The server closes the connection when it has read the request.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut sink)).await;
}
