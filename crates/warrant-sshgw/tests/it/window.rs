//! Terminal size and window changes, driven by a russh client (the OpenSSH client takes the
//! size from a real terminal, which tests do not have).

use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};

use crate::{Gw, LOGIN, read_private};

struct AnyHostKey;

impl client::Handler for AnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

async fn login(gw: &Gw) -> Handle<AnyHostKey> {
    let mut handle = client::connect(
        Arc::new(client::Config::default()),
        ("127.0.0.1", gw.port),
        AnyHostKey,
    )
    .await
    .unwrap();
    let key = PrivateKeyWithHashAlg::new(Arc::new(read_private(&gw.key)), None);
    let auth = handle.authenticate_publickey(LOGIN, key).await.unwrap();
    assert!(auth.success());
    handle
}

/// Reads the channel until its output contains `needle`; returns all output so far.
/// Reads output until it holds `needle`. An exit status seen on the way is kept in `exit`: with
/// a terminal, OpenSSH may send it before the last of the output.
async fn read_until(
    channel: &mut russh::Channel<client::Msg>,
    out: &mut String,
    exit: &mut Option<u32>,
    needle: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while !out.contains(needle) {
            match channel.wait().await {
                Some(ChannelMsg::Data { data }) => out.push_str(&String::from_utf8_lossy(&data)),
                Some(ChannelMsg::ExitStatus { exit_status }) => *exit = Some(exit_status),
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
    })
    .await;
    assert!(
        found.is_ok() && out.contains(needle),
        "no {needle:?} in {out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pty_size_and_window_changes_reach_the_target() {
    let gw = Gw::start().await;
    let handle = login(&gw).await;
    let mut channel = handle.channel_open_session().await.unwrap();
    channel
        .request_pty(true, "vt100", 101, 33, 0, 0, &[])
        .await
        .unwrap();
    channel
        .exec(true, "stty size; read line; stty size; echo TERM=$TERM")
        .await
        .unwrap();
    let mut out = String::new();
    let mut exit = None;
    read_until(&mut channel, &mut out, &mut exit, "33 101").await;
    channel.window_change(120, 50, 0, 0).await.unwrap();
    // Give the resize a moment to land before the shell asks again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    channel.data(&b"go\r"[..]).await.unwrap();
    read_until(&mut channel, &mut out, &mut exit, "50 120").await;
    read_until(&mut channel, &mut out, &mut exit, "TERM=vt100").await;

    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(msg) = channel.wait().await {
            if let ChannelMsg::ExitStatus { exit_status } = msg {
                exit = Some(exit_status);
            }
        }
    })
    .await;
    assert_eq!(exit, Some(0), "{out}");
    let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_signals_and_several_channels_come_through() {
    let gw = Gw::start().await;
    let handle = login(&gw).await;

    // Two channels on one connection, as with OpenSSH connection sharing.
    let first = handle.channel_open_session().await.unwrap();
    let second = handle.channel_open_session().await.unwrap();
    first.exec(true, "echo one; kill -TERM $$").await.unwrap();
    second.exec(true, "echo two; exit 5").await.unwrap();

    let collect = |mut channel: russh::Channel<client::Msg>| async move {
        let mut out = String::new();
        let mut status = None;
        let mut signal = None;
        tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.push_str(&String::from_utf8_lossy(&data)),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => signal = Some(signal_name),
                    _ => {}
                }
            }
        })
        .await
        .unwrap();
        (out, status, signal)
    };
    let (one, two) = tokio::join!(collect(first), collect(second));
    assert_eq!(one.0, "one\n");
    assert!(matches!(one.2, Some(russh::Sig::TERM)), "{one:?}");
    assert_eq!((two.0.as_str(), two.1), ("two\n", Some(5)));
    let _ = handle.disconnect(Disconnect::ByApplication, "", "en").await;
}
