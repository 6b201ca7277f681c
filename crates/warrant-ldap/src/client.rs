//! The connection: TCP, TLS (LDAPS or StartTLS, rustls with aws-lc-rs), the bind, and paged
//! searches. Every failure becomes an [`LdapError`] of the step that failed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, StdStream};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;

use crate::LdapError;
use crate::config::{Endpoint, LdapConfig, TlsMode};
use crate::entry::Entry;
use crate::error::describe_result;

/// A connected and bound session.
pub(crate) struct Session {
    ldap: Ldap,
    timeout: Duration,
}

impl Session {
    /// Connects (TCP, then TLS as configured) and binds (anonymously without a bind DN).
    pub(crate) async fn open(cfg: &LdapConfig) -> Result<Self, LdapError> {
        let endpoint = Endpoint::parse(&cfg.url)?;
        let address = endpoint.address();
        let timeout = cfg.timeout();
        // Roots first: a bad CA file is a configuration error, found before any traffic.
        let tls_config = match cfg.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Ldaps => Some(tls_client_config(cfg)?),
        };

        let connect_error = |reason: String| LdapError::Connect {
            address: address.clone(),
            reason,
        };
        let tcp = match tokio::time::timeout(
            timeout,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        {
            Err(_) => {
                return Err(connect_error(format!(
                    "timed out after {} s",
                    timeout.as_secs()
                )));
            }
            Ok(Err(e)) => return Err(connect_error(e.to_string())),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let std_tcp = tcp.into_std().map_err(|e| connect_error(e.to_string()))?;

        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_std_stream(StdStream::Tcp(std_tcp));
        if let Some(config) = tls_config {
            settings = settings
                .set_config(config)
                .set_starttls(cfg.tls == TlsMode::Starttls);
        }
        // ldap3 takes the TLS server name from the URL's host; give it the host we parsed.
        let url = format!(
            "{}://{}",
            if endpoint.ldaps { "ldaps" } else { "ldap" },
            address
        );
        let (conn, mut ldap) = match LdapConnAsync::with_settings(settings, &url).await {
            Ok(pair) => pair,
            Err(e) if cfg.tls == TlsMode::None => return Err(connect_error(e.to_string())),
            Err(e) => {
                return Err(LdapError::Tls {
                    address,
                    reason: tls_reason(cfg, &endpoint, &e),
                });
            }
        };
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended with an error");
            }
        });

        if let (Some(bind_dn), Some(password)) = (&cfg.bind_dn, &cfg.bind_password) {
            if cfg.tls == TlsMode::None && !is_loopback(&endpoint.host) {
                tracing::warn!(
                    address = %address,
                    bind_dn = %bind_dn,
                    "binding to LDAP without TLS: the password crosses the network in the clear \
                     (use ldaps:// or tls: starttls)"
                );
            }
            let bind_error = |reason: String| LdapError::Bind {
                bind_dn: bind_dn.clone(),
                reason,
            };
            let result = ldap
                .with_timeout(timeout)
                .simple_bind(bind_dn, password.expose())
                .await
                .map_err(|e| bind_error(format!("bind as {bind_dn} at {address}: {e}")))?;
            match result.rc {
                0 => {}
                49 => {
                    // AD puts the reason in the diagnostic ("data 52e" wrong password, "775"
                    // locked, "532" expired); it never contains the password.
                    let detail = result.text.trim();
                    let detail = if detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({detail})")
                    };
                    return Err(bind_error(format!(
                        "invalid credentials for bind DN {bind_dn} at {address}{detail}"
                    )));
                }
                rc => {
                    return Err(bind_error(format!(
                        "the server at {address} refused the bind as {bind_dn}: {}",
                        describe_result(rc, &result.text)
                    )));
                }
            }
        }
        Ok(Self { ldap, timeout })
    }

    /// Every entry under `base` (subtree) matching `filter`, in pages of `page_size`, with the
    /// attributes `attrs`. Calls `on_entry` after each entry with the count so far.
    pub(crate) async fn search_all(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[String],
        page_size: u32,
        mut on_entry: impl FnMut(u64),
    ) -> Result<Vec<Entry>, LdapError> {
        let search_error = |reason: String| LdapError::Search {
            base: base.to_owned(),
            filter: filter.to_owned(),
            reason,
        };
        let page_size = i32::try_from(page_size)
            .map_err(|_| LdapError::Config(format!("page_size {page_size} is too large")))?;
        let adapters: Vec<Box<dyn Adapter<'_, String, Vec<String>>>> = vec![
            // Continuation references (AD's DomainDnsZones and friends) are not entries.
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(page_size)),
        ];
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| self.operation_error(filter, e, &search_error))?;
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(entry)) => {
                    entries.push(Entry::from_search(SearchEntry::construct(entry)));
                    on_entry(entries.len() as u64);
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = stream.finish().await;
                    return Err(self.operation_error(filter, e, &search_error));
                }
            }
        }
        let result = stream.finish().await;
        if result.rc != 0 {
            return Err(search_error(format!(
                "{}{}",
                describe_result(result.rc, &result.text),
                result_hint(result.rc)
            )));
        }
        Ok(entries)
    }

    /// The entry `dn` alone, with `attrs` (a base search, not paged); `None` if it is gone.
    pub(crate) async fn read(
        &mut self,
        dn: &str,
        attrs: &[String],
    ) -> Result<Option<Entry>, LdapError> {
        let filter = "(objectClass=*)";
        let search_error = |reason: String| LdapError::Search {
            base: dn.to_owned(),
            filter: filter.to_owned(),
            reason,
        };
        let result = self
            .ldap
            .with_timeout(self.timeout)
            .search(dn, Scope::Base, filter, attrs.to_vec())
            .await
            .map_err(|e| self.operation_error(filter, e, &search_error))?;
        match result.1.rc {
            0 => {}
            32 => return Ok(None),
            rc => return Err(search_error(describe_result(rc, &result.1.text))),
        }
        Ok(result
            .0
            .into_iter()
            .next()
            .map(|entry| Entry::from_search(SearchEntry::construct(entry))))
    }

    /// Ends the session politely; errors do not matter any more.
    pub(crate) async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }

    fn operation_error(
        &self,
        filter: &str,
        e: ldap3::LdapError,
        search_error: &dyn Fn(String) -> LdapError,
    ) -> LdapError {
        match e {
            ldap3::LdapError::FilterParsing => LdapError::Config(format!(
                "the filter {filter:?} is not a valid LDAP filter (RFC 4515)"
            )),
            ldap3::LdapError::LdapResult { result } => search_error(format!(
                "{}{}",
                describe_result(result.rc, &result.text),
                result_hint(result.rc)
            )),
            ldap3::LdapError::Timeout { .. } => search_error(format!(
                "no answer within {} s (timeout_secs)",
                self.timeout.as_secs()
            )),
            e => search_error(e.to_string()),
        }
    }
}

/// What a failed search's result code suggests doing.
fn result_hint(rc: u32) -> &'static str {
    match rc {
        4 => {
            "; the server's size limit was reached: lower page_size (Active Directory pages \
             hold at most 1000 entries)"
        }
        11 => "; the server refused the page size or another limit: lower page_size",
        32 => "; the base DN does not exist",
        50 => "; the bind DN may not read there",
        _ => "",
    }
}

/// rustls with aws-lc-rs (set explicitly, so no process-wide provider is needed) trusting the
/// CA file, or the system's roots without one.
fn tls_client_config(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, LdapError> {
    let mut roots = RootCertStore::empty();
    if let Some(ca_file) = &cfg.ca_file {
        let shown = ca_file.display();
        let certs = CertificateDer::pem_file_iter(ca_file)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| LdapError::Config(format!("cannot read ca_file {shown}: {e}")))?;
        if certs.is_empty() {
            return Err(LdapError::Config(format!(
                "ca_file {shown} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                LdapError::Config(format!(
                    "ca_file {shown} holds an unusable certificate: {e}"
                ))
            })?;
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::debug!(error = %e, "could not load some system CA certificates");
        }
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            return Err(LdapError::Config(
                "no ca_file is set and no system CA certificates were found (Debian: \
                 ca-certificates): set ca_file to the PEM of the CA that signed the LDAP \
                 server's certificate"
                    .to_owned(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| LdapError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why the TLS part of connecting failed, in words that point at the fix.
fn tls_reason(cfg: &LdapConfig, endpoint: &Endpoint, e: &ldap3::LdapError) -> String {
    let trusted_by = match &cfg.ca_file {
        Some(ca_file) => format!("the CA file {}", ca_file.display()),
        None => "the system's trusted roots (set ca_file to your CA's PEM)".to_owned(),
    };
    if let ldap3::LdapError::LdapResult { result } = e {
        return format!(
            "the server refused StartTLS: {} (is TLS configured on the server?)",
            describe_result(result.rc, &result.text)
        );
    }
    if let ldap3::LdapError::Timeout { .. } = e {
        return format!(
            "no TLS handshake within {} s (timeout_secs)",
            cfg.timeout_secs
        );
    }
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                "the server's certificate is not trusted: it was not issued by a CA in \
                 {trusted_by}"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's certificate is not valid for the host name {} in the URL",
                    endpoint.host
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clocks)".to_owned()
            }
            other => format!("the server's certificate was refused: {other:?}"),
        },
        Some(other) => format!("TLS handshake failed: {other}"),
        None => {
            let unexpected_eof = matches!(e, ldap3::LdapError::Io { source }
                if source.kind() == std::io::ErrorKind::UnexpectedEof);
            if unexpected_eof {
                let hint = if endpoint.ldaps {
                    "is the port an ldaps port?"
                } else {
                    "does the server offer StartTLS?"
                };
                format!("the server closed the connection during the TLS handshake ({hint})")
            } else {
                e.to_string()
            }
        }
    }
}

/// The rustls error inside an ldap3 error, if any (rustls errors reach us wrapped in
/// `std::io::Error` by tokio-rustls).
fn rustls_error(e: &ldap3::LdapError) -> Option<&rustls::Error> {
    match e {
        ldap3::LdapError::Rustls { source } => Some(source),
        ldap3::LdapError::Io { source } => source.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
