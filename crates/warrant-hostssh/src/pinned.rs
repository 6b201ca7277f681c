//! A russh client handler that accepts exactly one pinned host key and refuses every channel
//! the host opens back: what both Warrant's host work (discovery, rotation) and the SSH
//! gateway's upstream leg need, and the one place that turns a failed handshake into words.

use russh::client::{self, Msg, Session};
use russh::keys::PublicKeyOrCertificate;
use russh::{Channel, ChannelId};
use ssh_key::{HashAlg, PublicKey};

/// `SHA256:… (ED25519)`, as `ssh-keygen -l` shows a key.
#[must_use]
pub fn describe_key(key: &PublicKey) -> String {
    format!("{} ({})", key.fingerprint(HashAlg::Sha256), key.algorithm())
}

/// The client handler: accepts exactly the pinned host key and no channel the host opens
/// (but agent channels, when asked to hand them over).
pub struct PinnedHost {
    expected: PublicKey,
    agent: Option<tokio::sync::mpsc::UnboundedSender<Channel<Msg>>>,
}

impl PinnedHost {
    /// A handler pinning `expected`.
    #[must_use]
    pub fn new(expected: PublicKey) -> Self {
        Self {
            expected,
            agent: None,
        }
    }

    /// Accepts the agent channels the host opens (after an agent forwarding request the
    /// caller made) and hands each to `to`; without it they are refused.
    #[must_use]
    pub fn with_agent_channels(
        mut self,
        to: tokio::sync::mpsc::UnboundedSender<Channel<Msg>>,
    ) -> Self {
        self.agent = Some(to);
        self
    }
}

/// Why the handshake stopped: the SSH library's error, or a host key that is not the pinned one.
#[derive(Debug)]
pub enum HandshakeError {
    /// The SSH library's error.
    Ssh(russh::Error),
    /// The host presented another key.
    WrongHostKey(Box<PublicKey>),
    /// The host presented a certificate (never asked for).
    HostCertificate,
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        Self::Ssh(e)
    }
}

/// A failed handshake in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The host's key is not the pinned one.
    HostKeyMismatch {
        /// The pinned key.
        expected: String,
        /// What the host presented.
        presented: String,
    },
    /// Anything else, as a reason.
    Connect(String),
}

impl HandshakeError {
    /// What went wrong, for a host pinned to `pinned`.
    #[must_use]
    pub fn explain(self, pinned: &PublicKey) -> HandshakeFailure {
        match self {
            Self::WrongHostKey(presented) => HandshakeFailure::HostKeyMismatch {
                expected: describe_key(pinned),
                presented: describe_key(&presented),
            },
            Self::HostCertificate => HandshakeFailure::Connect(
                "the host presented a host certificate, which was not asked for".to_owned(),
            ),
            Self::Ssh(russh::Error::NoCommonAlgo {
                kind: russh::AlgorithmKind::Key,
                theirs,
                ..
            }) => HandshakeFailure::Connect(format!(
                "the host has no {} host key (it offers {}); pinned {}",
                pinned.algorithm(),
                theirs.join(", "),
                describe_key(pinned)
            )),
            Self::Ssh(e) => HandshakeFailure::Connect(e.to_string()),
        }
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
    // none of them (no remote forwarding, no X11; agent channels only when asked for), so
    // each is refused here by dropping its reply handle.

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
        channel: Channel<Msg>,
        reply: client::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        match &self.agent {
            Some(to) if !to.is_closed() => {
                reply.accept().await;
                let _ = to.send(channel);
            }
            _ => refuse_server_channel("agent", reply),
        }
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
