//! The gateway's SSH client side: log in to the target with the grant's certificate, after
//! checking its host key against the pinned one.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use ssh_key::Algorithm;
use warrant_hostssh::pinned::{HandshakeError, HandshakeFailure, PinnedHost};

use crate::authority::Upstream;
use crate::error::GwError;

/// A logged-in connection to a target.
pub(crate) type UpstreamHandle = Handle<PinnedHost>;

/// Connects to `upstream`, verifies its host key and logs in with its certificate, all within
/// `timeout`. Agent channels the target opens go to `agent` (refused without it).
pub(crate) async fn connect(
    upstream: &Upstream,
    timeout: Duration,
    agent: Option<tokio::sync::mpsc::UnboundedSender<russh::Channel<client::Msg>>>,
) -> Result<UpstreamHandle, GwError> {
    let label = label(upstream);
    match upstream.host_key.algorithm() {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => {}
        other => {
            return Err(GwError::UpstreamConnect {
                target: label,
                reason: format!("cannot pin a {other} host key: pin its ed25519 or ECDSA key"),
            });
        }
    }
    let config = client::Config {
        // Only the pinned key's algorithm: a host with several host keys proves the pinned one.
        preferred: russh::Preferred {
            key: Cow::Owned(vec![upstream.host_key.algorithm()]),
            ..Default::default()
        },
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    };
    let handler = match agent {
        Some(to) => PinnedHost::new(upstream.host_key.clone()).with_agent_channels(to),
        None => PinnedHost::new(upstream.host_key.clone()),
    };
    let login = async {
        let mut handle = client::connect(
            Arc::new(config),
            (upstream.host.as_str(), upstream.port),
            handler,
        )
        .await
        .map_err(|e| handshake_error(&label, upstream, e))?;
        let auth = handle
            .authenticate_openssh_cert(
                upstream.account.clone(),
                Arc::new(upstream.key.clone()),
                upstream.certificate.clone(),
            )
            .await
            .map_err(|e| GwError::UpstreamConnect {
                target: label.clone(),
                reason: format!("during login: {e}"),
            })?;
        if !auth.success() {
            return Err(GwError::UpstreamAuth {
                target: label.clone(),
                account: upstream.account.clone(),
            });
        }
        Ok(handle)
    };
    tokio::time::timeout(timeout, login)
        .await
        .map_err(|_| GwError::UpstreamTimeout {
            target: label.clone(),
            after: timeout,
        })?
}

/// `account@host:port`, as errors and logs name an upstream.
pub(crate) fn label(upstream: &Upstream) -> String {
    format!("{}@{}:{}", upstream.account, upstream.host, upstream.port)
}

fn handshake_error(label: &str, upstream: &Upstream, e: HandshakeError) -> GwError {
    match e.explain(&upstream.host_key) {
        HandshakeFailure::HostKeyMismatch {
            expected,
            presented,
        } => GwError::UpstreamHostKey {
            target: label.to_owned(),
            expected,
            presented,
        },
        HandshakeFailure::Connect(reason) => GwError::UpstreamConnect {
            target: label.to_owned(),
            reason,
        },
    }
}
