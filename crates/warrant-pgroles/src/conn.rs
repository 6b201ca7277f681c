//! The admin connection to a target: plain TCP or rustls (aws-lc-rs), spawned driver task.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use warrant_core::Secret;

use crate::PgRolesError;

/// How to reach a PostgreSQL target as its admin (a superuser, or a role with `CREATEROLE`
/// that is a member with admin option of the roles it hands out).
#[derive(Debug, Clone)]
pub struct TargetConn {
    /// Host name or IP address.
    pub host: String,
    /// TCP port, usually 5432.
    pub port: u16,
    /// The database to connect to (role statements are cluster-wide; `REASSIGN`/`DROP OWNED`
    /// also visit every other database where the role owns something).
    pub dbname: String,
    /// The admin role.
    pub admin_user: String,
    /// The admin's password.
    pub admin_password: Secret<String>,
    /// Transport security.
    pub tls: TlsMode,
    /// How long to wait for the TCP connection (and TLS and login).
    pub connect_timeout: Duration,
}

/// Transport security of the admin connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (`sslmode=disable`): only for loopback or trusted networks.
    Disable,
    /// TLS required and the server's certificate verified (`sslmode=verify-full`): against
    /// the CA certificates in `ca_file` (PEM), or the system's trust store when `None`.
    Require {
        /// PEM file of the CA certificates to trust.
        ca_file: Option<PathBuf>,
    },
}

impl TargetConn {
    /// `host:port/dbname`, for error messages.
    pub(crate) fn label(&self) -> String {
        self.label_for(&self.dbname)
    }

    pub(crate) fn label_for(&self, dbname: &str) -> String {
        format!("{}:{}/{dbname}", self.host, self.port)
    }

    /// Connects as the admin to `dbname` and spawns the connection's driver on the current
    /// tokio runtime.
    pub(crate) async fn connect_to(&self, dbname: &str) -> Result<Client, PgRolesError> {
        self.open(
            dbname,
            &self.admin_user,
            self.admin_password.expose().as_bytes(),
        )
        .await
        .map_err(|f| f.into_admin_error(self.label_for(dbname)))
    }

    /// Connects as `user` with `password` to `dbname` (same host, port and TLS as the admin),
    /// leaving the failure unsorted so that callers can tell a refused password apart.
    pub(crate) async fn open(
        &self,
        dbname: &str,
        user: &str,
        password: &[u8],
    ) -> Result<Client, ConnectFailure> {
        let target = self.label_for(dbname);
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .dbname(dbname)
            .user(user)
            .password(password)
            .application_name("warrant-pgroles")
            .connect_timeout(self.connect_timeout);
        let client = match &self.tls {
            TlsMode::Disable => {
                cfg.ssl_mode(SslMode::Disable);
                let (client, connection) =
                    cfg.connect(NoTls).await.map_err(ConnectFailure::Postgres)?;
                spawn_driver(connection, target);
                client
            }
            TlsMode::Require { ca_file } => {
                cfg.ssl_mode(SslMode::Require);
                let tls = make_tls(ca_file.as_deref()).map_err(ConnectFailure::Tls)?;
                let (client, connection) =
                    cfg.connect(tls).await.map_err(ConnectFailure::Postgres)?;
                spawn_driver(connection, target);
                client
            }
        };
        Ok(client)
    }

    /// Connects as the admin to the configured database.
    pub(crate) async fn connect(&self) -> Result<Client, PgRolesError> {
        self.connect_to(&self.dbname).await
    }
}

/// Why [`TargetConn::open`] failed.
pub(crate) enum ConnectFailure {
    /// The TLS client could not be built (CA file unreadable or empty, no system roots).
    Tls(String),
    /// The client or the server refused: network, TLS handshake, authentication, database.
    Postgres(tokio_postgres::Error),
}

impl ConnectFailure {
    /// Sorted into [`PgRolesError::Tls`], [`PgRolesError::Auth`] or [`PgRolesError::Connect`],
    /// for the admin's own connections.
    pub(crate) fn into_admin_error(self, target: String) -> PgRolesError {
        match self {
            Self::Tls(reason) => PgRolesError::Tls { target, reason },
            Self::Postgres(e) => PgRolesError::connecting(target, &e),
        }
    }
}

fn spawn_driver<F>(connection: F, target: String)
where
    F: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(target = %target, error = %crate::error::describe(&e), "connection ended");
        }
    });
}

fn make_tls(ca_file: Option<&Path>) -> Result<MakeRustlsConnect, String> {
    client_tls_config(ca_file).map(MakeRustlsConnect::new)
}

/// A rustls client configuration (aws-lc-rs, the one provider of the workspace) verifying the
/// server against `ca_file` or the system trust store: what Warrant's connections to targets
/// use, the admin's and the PostgreSQL gateway's. The provider is passed explicitly, so no
/// process-wide default is needed.
///
/// # Errors
/// The CA file cannot be read or holds no certificate, or the system store has none.
pub fn client_tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("CA file {} holds no certificate", path.display()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "the system trust store holds no usable CA certificate; give ca_file"
                        .to_owned(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
