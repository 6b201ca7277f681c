//! Passwords of the shared accounts Warrant vaults: generate, set, verify.
//!
//! The engine rotates a vaulted account's password as a journaled sequence of these steps:
//! [`verify_login`] with the current password, [`generate_password`] and [`set_password`],
//! [`verify_login`] with the new one, then commit it to the vault. As for temporary roles, the
//! server only ever receives a SCRAM-SHA-256 verifier computed here: the plaintext reaches
//! neither its log nor `pg_stat_activity`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use warrant_core::Secret;

use crate::conn::ConnectFailure;
use crate::sql::{self, ident, literal};
use crate::{PgRolesError, TargetConn};

/// A new random password: 32 bytes from the operating system, base64url without padding
/// (43 characters), as for temporary roles.
pub fn generate_password() -> Result<Secret<String>, PgRolesError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| PgRolesError::Random(e.to_string()))?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(buf)))
}

/// Whether `user` can log in with `password`: a login to `conn`'s host, port and database,
/// with its TLS settings, closed at once.
///
/// `Ok(false)` exactly when the server refuses the login with SQLSTATE `28P01` (wrong password,
/// expired password, unknown role) or `28000` (the role may not log in, or `pg_hba.conf`
/// rejects it). Any other failure — unreachable server, TLS, no `CONNECT` privilege on the
/// database — is an error, since it says nothing about the password.
pub async fn verify_login(
    conn: &TargetConn,
    user: &str,
    password: &Secret<String>,
) -> Result<bool, PgRolesError> {
    let target = conn.label();
    match conn
        .open(&conn.dbname, user, password.expose().as_bytes())
        .await
    {
        // Dropping the client ends the session.
        Ok(_client) => Ok(true),
        Err(ConnectFailure::Postgres(e))
            if e.code().is_some_and(|c| {
                *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            }) =>
        {
            Ok(false)
        }
        Err(ConnectFailure::Postgres(e))
            if e.as_db_error().is_some()
                || crate::error::describe(&e).starts_with("authentication error") =>
        {
            Err(PgRolesError::Login {
                target,
                user: user.to_owned(),
                reason: crate::error::describe(&e),
            })
        }
        Err(failure) => Err(failure.into_admin_error(target)),
    }
}

/// Sets the password of the existing role `role` (`ALTER ROLE … PASSWORD '<SCRAM verifier>'`),
/// as the admin of `conn`.
///
/// Refuses Warrant's temporary roles ([`PgRolesError::TempRole`]): their passwords belong to
/// their grants. A role that does not exist is [`PgRolesError::AccountMissing`]; an empty
/// password is [`PgRolesError::Invalid`]. The verifier has a random salt and 4096 iterations;
/// the server stores it as is whatever its `password_encryption`.
pub async fn set_password(
    conn: &TargetConn,
    role: &str,
    password: &Secret<String>,
) -> Result<(), PgRolesError> {
    if password.expose().is_empty() {
        return Err(PgRolesError::Invalid(
            "the new password is empty".to_owned(),
        ));
    }
    let verifier = postgres_protocol::password::scram_sha_256(password.expose().as_bytes());
    let missing = || PgRolesError::AccountMissing {
        role: role.to_owned(),
    };
    let client = conn.connect().await?;
    let row = client
        .query_typed_opt(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1",
            &[(&role, Type::TEXT)],
        )
        .await
        .map_err(|e| PgRolesError::sql("looking up the role", &e))?
        .ok_or_else(missing)?;
    let comment: Option<String> = row.get(0);
    if sql::parse_marker(comment.as_deref()).is_some() {
        return Err(PgRolesError::TempRole {
            role: role.to_owned(),
        });
    }
    client
        .batch_execute(&format!(
            "ALTER ROLE {} PASSWORD {}",
            ident(role),
            literal(&verifier)
        ))
        .await
        .map_err(|e| {
            // Dropped since the look-up.
            if e.code() == Some(&SqlState::UNDEFINED_OBJECT) {
                missing()
            } else {
                PgRolesError::sql("setting the password", &e)
            }
        })?;
    tracing::info!(target = %conn.label(), role = %role, "set the password of a vaulted account");
    Ok(())
}
