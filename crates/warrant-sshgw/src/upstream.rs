//! The gateway's SSH client side: log in to the target with the grant's certificate, after
//! checking its host key against the pinned one.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle, Msg, Session};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelId};
use ssh_key::{Algorithm, HashAlg, PublicKey};

use crate::authority::Upstream;
use crate::error::GwError;

/// A logged-in connection to a target.
pub(crate) type UpstreamHandle = Handle<PinnedHost>;

/// Connects to `upstream`, verifies its host key and logs in with its certificate, all within
/// `timeout`.
pub(crate) async fn connect(
    upstream: &Upstream,
    timeout: Duration,
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
    let handler = PinnedHost {
        expected: upstream.host_key.clone(),
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

/// `SHA256:… (ED25519)`, as `ssh-keygen -l` shows a key.
fn describe_key(key: &PublicKey) -> String {
    format!("{} ({})", key.fingerprint(HashAlg::Sha256), key.algorithm())
}

/// The client handler: accepts exactly the pinned host key and no channel the target opens.
pub(crate) struct PinnedHost {
    expected: PublicKey,
}

/// Why the handshake stopped.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    Ssh(russh::Error),
    WrongHostKey(Box<PublicKey>),
    HostCertificate,
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

fn handshake_error(label: &str, upstream: &Upstream, e: HandshakeError) -> GwError {
    match e {
        HandshakeError::WrongHostKey(presented) => GwError::UpstreamHostKey {
            target: label.to_owned(),
            expected: describe_key(&upstream.host_key),
            presented: describe_key(&presented),
        },
        HandshakeError::HostCertificate => GwError::UpstreamConnect {
            target: label.to_owned(),
            reason: "the host presented a host certificate, which was not asked for".to_owned(),
        },
        HandshakeError::Ssh(russh::Error::NoCommonAlgo {
            kind: russh::AlgorithmKind::Key,
            theirs,
            ..
        }) => GwError::UpstreamConnect {
            target: label.to_owned(),
            reason: format!(
                "the host has no {} host key (it offers {}); pinned {}",
                upstream.host_key.algorithm(),
                theirs.join(", "),
                describe_key(&upstream.host_key)
            ),
        },
        HandshakeError::Ssh(e) => GwError::UpstreamConnect {
            target: label.to_owned(),
            reason: e.to_string(),
        },
    }
}

impl client::Handler for PinnedHost {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        presented: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match presented {
            // The comment is not part of the key: compare the key data only.
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                if key.key_data() == self.expected.key_data() {
                    Ok(true)
                } else {
                    Err(HandshakeError::WrongHostKey(Box::new(key.clone())))
                }
            }
            // Never asked for: no certificate algorithm is offered.
            PublicKeyOrCertificate::Certificate(_) => Err(HandshakeError::HostCertificate),
        }
    }

    // russh accepts channels the server opens unless told otherwise; the gateway forwards
    // none of them (no remote forwarding, no agent, no X11), so each is refused here by
    // dropping its reply handle.

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _connected_address: &str,
        _connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("forwarded-tcpip", reply);
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("forwarded-streamlocal", reply);
        Ok(())
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("agent", reply);
        Ok(())
    }

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("session", reply);
        Ok(())
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host_to_connect: &str,
        _port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("direct-tcpip", reply);
        Ok(())
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("direct-streamlocal", reply);
        Ok(())
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        refuse_server_channel("x11", reply);
        Ok(())
    }

    async fn should_accept_unknown_server_channel(
        &mut self,
        _id: ChannelId,
        channel_type: &str,
    ) -> bool {
        tracing::warn!(channel_type, "the target opened a channel; refused");
        false
    }
}

fn refuse_server_channel(kind: &str, reply: client::ChannelOpenHandle) {
    tracing::warn!(channel_type = kind, "the target opened a channel; refused");
    // Dropping the handle answers `administratively prohibited`.
    drop(reply);
}
