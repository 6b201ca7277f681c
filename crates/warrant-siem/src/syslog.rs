//! RFC 5424 syslog over TCP with octet counting (RFC 6587 §3.4.1), or over TLS (RFC 5425,
//! which frames the same way).
//!
//! One message per record:
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID seq=".." hash=".." actor=".." …] BOM MSG
//! ```
//!
//! PRI is facility 13 ("log audit") with severity 6 (informational), or 4 (warning) for a
//! refusal, a denial or a failure; MSGID is the event kind (e.g. `grant.revoked`); the
//! structured data carries the record's position, hash, actor and the ids it names; MSG is
//! the record as OCSF (or Warrant's JSON), UTF-8 after a BOM as RFC 5424 §6.4 asks.
//!
//! The framing and escaping are written here: they are a few lines of RFC text, and the
//! syslog crates on crates.io format RFC 3164 or lack octet counting and TLS.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use warrant_audit::Record;

use crate::{Format, SinkError, TIMEOUT};

/// `syslog:` settings of a sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the receiver.
    pub address: String,
    /// TLS (RFC 5425): the receiver's CA, and the name its certificate carries.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// HOSTNAME in each message (default: this machine's name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// APP-NAME in each message.
    #[serde(default = "default_app")]
    pub app_name: String,
    /// The structured data's SD-ID: `name@<private enterprise number>`. The default uses
    /// 32473, the number RFC 5612 reserves for examples; give your organisation's own.
    #[serde(default = "default_sd_id")]
    pub sd_id: String,
}

/// `tls:` of a syslog sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the CA certificate(s) the receiver's certificate must chain to.
    pub ca_file: PathBuf,
    /// The name to check the receiver's certificate for (default: the address's host).
    #[serde(default)]
    pub server_name: Option<String>,
}

fn default_app() -> String {
    "warrant".to_owned()
}

fn default_sd_id() -> String {
    "warrant@32473".to_owned()
}

/// A connection to a syslog receiver, made when first needed and again after a failure.
pub struct SyslogSink {
    config: SyslogConfig,
    format: Format,
    hostname: String,
    procid: String,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("address", &self.config.address)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the peer closed or reset the connection. Over TCP anything readable means so;
    /// over TLS the peer may send session tickets, so the TLS layer reads what is there, once,
    /// without waiting.
    async fn closed_by_peer(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut probe = [0u8; 256];
        match self {
            Self::Tcp(s) => !matches!(
                s.try_read(&mut probe),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
            ),
            Self::Tls(s) => {
                match tokio::time::timeout(std::time::Duration::ZERO, s.read(&mut probe)).await {
                    Err(_) | Ok(Ok(1..)) => false,
                    Ok(Ok(0) | Err(_)) => true,
                }
            }
        }
    }
}

impl SyslogSink {
    /// Checks the settings (and reads the CA file); connects at the first delivery.
    pub fn new(config: SyslogConfig, format: Format) -> Result<Self, SinkError> {
        let host = config
            .address
            .rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_owned())
            .ok_or_else(|| {
                SinkError::Config(format!(
                    "syslog address {:?} is not host:port",
                    config.address
                ))
            })?;
        check_name("app_name", &config.app_name, 48)?;
        let (sd_name, pen) = config.sd_id.split_once('@').ok_or_else(|| {
            SinkError::Config(format!(
                "sd_id {:?} is not name@number (a private enterprise number)",
                config.sd_id
            ))
        })?;
        if sd_name.is_empty()
            || pen.is_empty()
            || !pen.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        {
            return Err(SinkError::Config(format!(
                "sd_id {:?} is not name@number",
                config.sd_id
            )));
        }
        check_name("sd_id", &config.sd_id, 32)?;
        // An SD-NAME (RFC 5424 §6.3.2): none of `=`, space, `]` or `"`.
        if config.sd_id.contains(['=', ']', '"']) {
            return Err(SinkError::Config(format!(
                "sd_id {:?} may not contain =, ] or \"",
                config.sd_id
            )));
        }
        let hostname = match &config.hostname {
            Some(h) => h.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "-".to_owned()),
        };
        check_name("hostname", &hostname, 255)?;
        let tls = match &config.tls {
            None => None,
            Some(t) => Some(tls_connector(t, &host)?),
        };
        Ok(Self {
            config,
            format,
            hostname,
            procid: std::process::id().to_string(),
            tls,
            conn: None,
        })
    }

    /// Writes the batch's messages in one go; on failure the connection is dropped (the next
    /// delivery reconnects and sends the batch again).
    pub async fn deliver(&mut self, batch: &[Record]) -> Result<(), SinkError> {
        let mut bytes = Vec::with_capacity(batch.len() * 1024);
        for r in batch {
            let msg = self.message(r);
            bytes.extend_from_slice(msg.len().to_string().as_bytes());
            bytes.push(b' ');
            bytes.extend_from_slice(&msg);
        }
        let sent = tokio::time::timeout(TIMEOUT, self.send(&bytes)).await;
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                self.conn = None;
                Err(SinkError::Timeout)
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        // Syslog over TCP has no acknowledgements: a write to a receiver that has gone away
        // still lands in the kernel's buffer and is lost. A receiver never sends anything on
        // this connection, so a readable socket means it closed or reset: reconnect first.
        // (A receiver that dies in the middle of a batch can still lose what was in flight;
        // RFC 6587 offers nothing better, RELP would.)
        if let Some(conn) = self.conn.as_mut()
            && conn.closed_by_peer().await
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        let io = |e: std::io::Error| {
            SinkError::Io(format!("writing to syslog {}: {e}", self.config.address))
        };
        match self.conn.as_mut() {
            Some(Conn::Tcp(s)) => {
                s.write_all(bytes).await.map_err(io)?;
                s.flush().await.map_err(io)
            }
            Some(Conn::Tls(s)) => {
                s.write_all(bytes).await.map_err(io)?;
                s.flush().await.map_err(io)
            }
            None => Err(SinkError::Io("not connected".to_owned())),
        }
    }

    async fn connect(&self) -> Result<Conn, SinkError> {
        let tcp = TcpStream::connect(&self.config.address)
            .await
            .map_err(|e| {
                SinkError::Io(format!("connecting to syslog {}: {e}", self.config.address))
            })?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Conn::Tcp(tcp)),
            Some((connector, name)) => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    SinkError::Io(format!("TLS with syslog {}: {e}", self.config.address))
                })?;
                Ok(Conn::Tls(Box::new(tls)))
            }
        }
    }

    /// One RFC 5424 message (without its octet count).
    fn message(&self, r: &Record) -> Vec<u8> {
        let severity = if is_warning(&r.kind) { 4 } else { 6 };
        let pri = 13 * 8 + severity;
        let data = serde_json::from_str::<serde_json::Value>(&r.data).unwrap_or_default();
        let field = |k: &str| data.get(k).and_then(serde_json::Value::as_str);
        let mut sd = format!(
            "[{} seq=\"{}\" hash=\"{}\"",
            self.config.sd_id, r.seq, r.hash
        );
        for (name, value) in [
            ("actor", r.actor.as_deref()),
            ("identity", field("identity")),
            ("target", field("target")),
            ("request_id", field("request_id")),
            ("grant_id", field("grant_id")),
        ] {
            if let Some(v) = value {
                sd.push_str(&format!(" {name}=\"{}\"", sd_escape(v)));
            }
        }
        sd.push(']');
        let head = format!(
            "<{pri}>1 {} {} {} {} {} {sd} ",
            timestamp(r.at_ms),
            self.hostname,
            self.config.app_name,
            self.procid,
            msgid(&r.kind),
        );
        let mut out = head.into_bytes();
        out.extend_from_slice("\u{feff}".as_bytes());
        out.extend_from_slice(self.format.encode(r).to_string().as_bytes());
        out
    }
}

/// Whether an event kind is worth a warning rather than information.
fn is_warning(kind: &str) -> bool {
    [
        "refused",
        "denied",
        "failed",
        "failure",
        "break_glass",
        "difference",
    ]
    .iter()
    .any(|w| kind.contains(w))
}

/// RFC 5424 TIMESTAMP: UTC with milliseconds (at most 6 fraction digits are allowed).
fn timestamp(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// MSGID: printable US-ASCII without spaces, at most 32 characters.
fn msgid(kind: &str) -> String {
    let id: String = kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    if id.is_empty() { "-".to_owned() } else { id }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash (RFC 5424 §6.3.3).
fn sd_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field must be printable US-ASCII without spaces, and not too long.
fn check_name(what: &str, v: &str, max: usize) -> Result<(), SinkError> {
    if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SinkError::Config(format!(
            "syslog {what} {v:?} must be 1 to {max} printable ASCII characters without spaces"
        )));
    }
    Ok(())
}

fn tls_connector(
    t: &TlsConfig,
    host: &str,
) -> Result<
    (
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    ),
    SinkError,
> {
    use rustls::pki_types::pem::PemObject;
    let bad = |what: String| SinkError::Config(format!("syslog tls: {what}"));
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(&t.ca_file)
        .map_err(|e| bad(format!("cannot read ca_file {}: {e}", t.ca_file.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(format!("{}: {e}", t.ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("{}: {e}", t.ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!("{} holds no certificate", t.ca_file.display())));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = t.server_name.clone().unwrap_or_else(|| host.to_owned());
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|_| bad(format!("{name:?} is not a server name")))?;
    Ok((
        tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn sink() -> SyslogSink {
        SyslogSink::new(
            SyslogConfig {
                address: "127.0.0.1:1".into(),
                tls: None,
                hostname: Some("warrant-1".into()),
                app_name: default_app(),
                sd_id: default_sd_id(),
            },
            Format::Jsonl,
        )
        .unwrap()
    }

    #[test]
    fn a_message_has_the_rfc_5424_header_and_escaped_ids() {
        let r = Record {
            seq: 7,
            at_ms: 1_764_900_000_123,
            actor: Some("al\"i]ce".into()),
            kind: "gateway.session_refused".into(),
            data: r#"{"type":"gateway.session_refused","identity":"alice","target":"web-1"}"#
                .into(),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let msg = String::from_utf8(sink().message(&r)).unwrap();
        let pid = std::process::id();
        assert!(
            msg.starts_with(&format!(
                "<108>1 2025-12-05T02:00:00.123Z warrant-1 warrant {pid} gateway.session_refused [warrant@32473 seq=\"7\" hash=\"h\" actor=\"al\\\"i\\]ce\" identity=\"alice\" target=\"web-1\"] \u{feff}{{"
            )),
            "{msg}"
        );
        let json: serde_json::Value =
            serde_json::from_str(msg.split_once('\u{feff}').unwrap().1).unwrap();
        assert_eq!(json["seq"], 7);
    }

    #[test]
    fn bad_settings_are_refused_before_any_delivery() {
        let mut c = SyslogConfig {
            address: "no-port".into(),
            tls: None,
            hostname: None,
            app_name: default_app(),
            sd_id: default_sd_id(),
        };
        assert!(SyslogSink::new(c.clone(), Format::Ocsf).is_err());
        c.address = "127.0.0.1:514".into();
        c.sd_id = "warrant".into();
        assert!(SyslogSink::new(c.clone(), Format::Ocsf).is_err());
        c.sd_id = "war=rant@32473".into();
        assert!(SyslogSink::new(c.clone(), Format::Ocsf).is_err());
        c.sd_id = default_sd_id();
        c.app_name = "has space".into();
        assert!(SyslogSink::new(c, Format::Ocsf).is_err());
    }
}
