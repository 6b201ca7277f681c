//! `gateway`: the SSH gateway against a direct OpenSSH connection, on the same machine, in one
//! run.
//!
//! Setup: a throwaway sshd (`warrant-testkit`) trusting a CA made here; a person key and, for
//! the direct path, a certificate for it; the gateway in process (`warrant-sshgw`) with an
//! authority that admits that key and hands out a fresh upstream certificate per session, as
//! the engine does (the engine's own cost per session is one transaction, measured elsewhere).
//! Everything goes through the real `ssh` client as a child process.
//!
//! Figures:
//! - bulk: `cat` of a `--mib` text file on the target to the client (what a terminal shows,
//!   what recording writes), MiB/s over `--runs` runs each, direct, through the gateway without
//!   recording, and with strict recording; the ratios are judged against PRODUCT.md's targets.
//! - round trip: connect, authenticate, `true`, exit, `--trips` times each way (median).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use warrant_core::{Clock, SystemClock};
use warrant_sshca::{CaKey, CertRequest, Extensions};
use warrant_sshgw::ssh_key::{Certificate, PrivateKey, PublicKey};
use warrant_sshgw::{
    Authority, BoxFuture, Denied, GwError, Login, OfferedKey, Person, RecordingMode, Upstream,
};

use crate::Common;
use crate::report::{Better, Figure, Goal, Report, progress};

/// Options of `gateway`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the file sent to the client, MiB.
    #[arg(long, default_value_t = 64)]
    mib: u64,
    /// Bulk runs per path (the median counts).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Connect + exec round trips per path.
    #[arg(long, default_value_t = 20)]
    trips: usize,
    /// Keystrokes timed per path.
    #[arg(long, default_value_t = 200)]
    keys: usize,
}

struct BenchAuthority {
    person: PublicKey,
    ca: CaKey,
    upstream_key: PrivateKey,
    upstream_public: String,
    account: String,
    sshd_port: u16,
    host_key: PublicKey,
    recording: std::sync::Mutex<RecordingMode>,
    serial: AtomicU64,
}

impl Authority for BenchAuthority {
    fn authenticate<'a>(
        &'a self,
        login: &'a Login,
        key: &'a OfferedKey,
    ) -> BoxFuture<'a, Result<Option<Person>, GwError>> {
        Box::pin(async move {
            let ok =
                login.identity == "bench" && key.public_key().key_data() == self.person.key_data();
            Ok(ok.then(|| Person {
                identity: "bench".into(),
                label: "bench".into(),
            }))
        })
    }

    fn authorize<'a>(
        &'a self,
        _person: &'a Person,
        _login: &'a Login,
    ) -> BoxFuture<'a, Result<Upstream, Denied>> {
        Box::pin(async move {
            let now = SystemClock.now();
            let secs = u64::try_from(now.unix_seconds()).unwrap_or(0);
            let cert = self
                .ca
                .issue(&CertRequest {
                    public_key: &self.upstream_public,
                    principals: vec![self.account.clone()],
                    key_id: "bench grant=bench".into(),
                    serial: self.serial.fetch_add(1, Ordering::SeqCst),
                    valid_after: secs.saturating_sub(60),
                    valid_before: secs + 3600,
                    extensions: Extensions::default(),
                })
                .map_err(|e| Denied::new(e.to_string()))?;
            let recording = match self.recording.lock() {
                Ok(m) => *m,
                Err(p) => *p.into_inner(),
            };
            Ok(Upstream {
                host: "127.0.0.1".into(),
                port: self.sshd_port,
                host_key: self.host_key.clone(),
                account: self.account.clone(),
                key: self.upstream_key.clone(),
                certificate: Certificate::from_openssh(&cert)
                    .map_err(|e| Denied::new(e.to_string()))?,
                grant_id: "bench".into(),
                grant_end: now.plus_secs(3600),
                recording,
                record_input: false,
                port_forwarding: false,
                agent_forwarding: false,
            })
        })
    }
}

fn ssh(port: u16, user: &str, key: &Path, cert: Option<&Path>, command: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-p", &port.to_string()])
        .args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "Compression=no",
            // The same cipher on the client's leg both ways (OpenSSH picks chacha20-poly1305
            // against sshd and AES-GCM against the gateway otherwise: not a comparison; the
            // gateway offers AES-256-GCM, not AES-128-GCM).
            "-o",
            "Ciphers=aes256-gcm@openssh.com",
            // Likewise the key exchange (OpenSSH prefers post-quantum hybrids with sshd).
            "-o",
            "KexAlgorithms=curve25519-sha256",
        ]);
    if let Some(c) = cert {
        cmd.arg("-o")
            .arg(format!("CertificateFile={}", c.display()));
    }
    cmd.arg("-i")
        .arg(key)
        .arg(format!("{user}@127.0.0.1"))
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `cmd` to completion; its wall time in seconds.
fn timed(mut cmd: Command) -> Result<f64> {
    let start = Instant::now();
    let out = cmd.output().context("running ssh")?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "ssh failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(secs)
}

/// Types `n` single bytes into an interactive `ssh -tt … cat`, each 20 ms after the last echo,
/// and times each until its echo (the remote terminal's) comes back: (p50, p99) in ms.
fn keystrokes(cmd: Command, n: usize) -> Result<(f64, f64)> {
    use std::io::{Read, Write};
    // `-tt` must come before the destination: the same arguments with it first.
    let args: Vec<std::ffi::OsString> = cmd.get_args().map(ToOwned::to_owned).collect();
    let mut fixed = Command::new(cmd.get_program());
    fixed
        .arg("-tt")
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = fixed.spawn().context("ssh -tt")?;
    let mut stdin = child.stdin.take().context("ssh stdin")?;
    let mut stdout = child.stdout.take().context("ssh stdout")?;
    // Wait until the remote side is up: type a marker until it echoes.
    let mut buf = [0u8; 4096];
    stdin.write_all(b"x")?;
    stdin.flush()?;
    let mut seen = Vec::new();
    while !seen.contains(&b'x') {
        let k = stdout.read(&mut buf)?;
        ensure!(k > 0, "ssh closed before the remote cat started");
        seen.extend_from_slice(&buf[..k]);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let ch = b'a' + u8::try_from(i % 26).unwrap_or(0);
        let t = Instant::now();
        stdin.write_all(&[ch])?;
        stdin.flush()?;
        loop {
            let k = stdout.read(&mut buf)?;
            ensure!(k > 0, "ssh closed during the keystrokes");
            if buf[..k].contains(&ch) {
                break;
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    times.sort_by(f64::total_cmp);
    let p = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    Ok((p(0.5), p(0.99)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn keygen(path: &Path) -> Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ed25519", "-f"])
        .arg(path)
        .output()
        .context("ssh-keygen")?;
    ensure!(out.status.success(), "ssh-keygen failed");
    Ok(())
}

pub async fn run(common: &Common, args: Args, report: &mut Report) -> Result<()> {
    ensure!(
        args.runs > 0 && args.trips > 0,
        "--runs and --trips must be positive"
    );
    let dir = tempfile::Builder::new()
        .prefix("warrant-bench-gw-")
        .tempdir_in(&common.data_dir)?;
    progress("starting sshd");
    let ca = CaKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let sshd = warrant_testkit::SshdFixture::start(&ca.public_openssh())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = sshd.user().to_owned();
    sshd.set_principals(&[&account])
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    // The person's key, and a certificate for the direct path.
    let key = dir.path().join("person");
    keygen(&key)?;
    let public_line = std::fs::read_to_string(key.with_extension("pub"))?;
    let now = u64::try_from(SystemClock.now().unix_seconds()).unwrap_or(0);
    let cert_line = ca
        .issue(&CertRequest {
            public_key: public_line.trim(),
            principals: vec![account.clone()],
            key_id: "bench direct".into(),
            serial: 1,
            valid_after: now.saturating_sub(60),
            valid_before: now + 3600,
            extensions: Extensions::default(),
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cert: PathBuf = dir.path().join("person-cert.pub");
    std::fs::write(&cert, format!("{cert_line}\n"))?;

    // A text file on the "target" (the same machine), readable by the login account.
    progress(&format!("writing a {} MiB text file", args.mib));
    let data = std::env::temp_dir().join(format!("warrant-bench-gw-{}.txt", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&data)?);
        let line =
            b"The quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXY\n";
        let mut left = args.mib * 1024 * 1024;
        while left > 0 {
            let n = usize::try_from(left.min(line.len() as u64)).unwrap_or(line.len());
            f.write_all(&line[..n])?;
            left -= n as u64;
        }
        f.flush()?;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644))?;
    }

    let upstream_key = PrivateKey::from_openssh(
        CaKey::generate()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_openssh()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .expose(),
    )?;
    let authority = Arc::new(BenchAuthority {
        person: PublicKey::from_openssh(public_line.trim())?,
        ca: CaKey::from_openssh(ca.to_openssh().map_err(|e| anyhow::anyhow!("{e}"))?)
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        upstream_public: upstream_key.public_key().to_openssh()?,
        upstream_key,
        account: account.clone(),
        sshd_port: sshd.port(),
        host_key: PublicKey::from_openssh(sshd.host_public_key().trim())?,
        recording: std::sync::Mutex::new(RecordingMode::Off),
        serial: AtomicU64::new(100),
    });
    let gw_key = PrivateKey::from_openssh(
        CaKey::generate()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_openssh()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .expose(),
    )?;
    let mut config = warrant_sshgw::GatewayConfig::new("127.0.0.1:0".parse()?, gw_key);
    config.recordings = Some(warrant_sshgw::RecordingsConfig {
        dir: dir.path().join("recordings"),
        key: Arc::new(
            warrant_recording::RecordingKey::generate().map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
    });
    let gw = warrant_sshgw::Gateway::bind(config, authority.clone() as Arc<dyn Authority>)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let gw_port = gw.local_addr().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gw.run(async move {
        let _ = stopped.await;
    }));

    let cat = format!("cat {}", data.display());
    let direct = |command: &str| ssh(sshd.port(), &account, &key, Some(&cert), command);
    let via = |command: &str| ssh(gw_port, "bench+target", &key, None, command);
    let set_mode = |m: RecordingMode| {
        if let Ok(mut g) = authority.recording.lock() {
            *g = m;
        }
    };

    let mib = args.mib as f64;
    let bulk = |label: &str, make: &dyn Fn() -> Command| -> Result<f64> {
        progress(&format!("bulk: {label}"));
        let mut rates = Vec::new();
        for _ in 0..args.runs {
            let cmd = make();
            let secs = tokio::task::block_in_place(|| timed(cmd))?;
            rates.push(mib / secs);
        }
        Ok(median(rates))
    };
    let direct_rate = bulk("direct", &|| direct(&cat))?;
    set_mode(RecordingMode::Off);
    let plain_rate = bulk("gateway, no recording", &|| via(&cat))?;
    set_mode(RecordingMode::Strict);
    let rec_rate = bulk("gateway, strict recording", &|| via(&cat))?;
    set_mode(RecordingMode::Off);

    let trips = |label: &str, make: &dyn Fn() -> Command| -> Result<f64> {
        progress(&format!("round trips: {label}"));
        let mut v = Vec::new();
        for _ in 0..args.trips {
            let cmd = make();
            v.push(tokio::task::block_in_place(|| timed(cmd))? * 1000.0);
        }
        Ok(median(v))
    };
    let direct_rt = trips("direct", &|| direct("true"))?;
    let via_rt = trips("gateway", &|| via("true"))?;

    progress("keystrokes: direct, then through the gateway (recorded)");
    set_mode(RecordingMode::Strict);
    let keys_direct = tokio::task::block_in_place(|| keystrokes(direct("cat"), args.keys))?;
    let keys_via = tokio::task::block_in_place(|| keystrokes(via("cat"), args.keys))?;
    set_mode(RecordingMode::Off);

    let _ = stop.send(());
    let _ = server.await;
    let _ = std::fs::remove_file(&data);

    let setting = format!(
        "{} MiB of text (cat on the target), median of {} runs, ssh -o Compression=no -o Ciphers=aes256-gcm@openssh.com -o KexAlgorithms=curve25519-sha256, sshd and gateway on this machine",
        args.mib, args.runs
    );
    report.add(Figure::new(
        "gateway.bulk.direct_mib_s",
        direct_rate,
        "MiB/s",
        Better::Higher,
        setting,
    ));
    report.add(Figure::new(
        "gateway.bulk.gateway_mib_s",
        plain_rate,
        "MiB/s",
        Better::Higher,
        String::new(),
    ));
    report.add(Figure::new(
        "gateway.bulk.recorded_mib_s",
        rec_rate,
        "MiB/s",
        Better::Higher,
        "strict recording (asciicast v2, signed at the end)".into(),
    ));
    report.add(
        Figure::new(
            "gateway.bulk.ratio_no_recording",
            plain_rate / direct_rate,
            "×direct",
            Better::Higher,
            String::new(),
        )
        .goal(Goal::AtLeast(0.70), "≥ 0.70 of direct OpenSSH"),
    );
    report.add(
        Figure::new(
            "gateway.bulk.ratio_recorded",
            rec_rate / direct_rate,
            "×direct",
            Better::Higher,
            String::new(),
        )
        .goal(Goal::AtLeast(0.60), "≥ 0.60 of direct OpenSSH"),
    );
    let added = keys_via.0 - keys_direct.0;
    report.add(Figure::new(
        "gateway.keystroke.direct_p50_ms",
        keys_direct.0,
        "ms",
        Better::Lower,
        format!(
            "one byte typed into `ssh -tt … cat`, until its echo comes back; {} keystrokes 20 ms apart; p99 {:.3} ms",
            args.keys, keys_direct.1
        ),
    ));
    report.add(Figure::new(
        "gateway.keystroke.gateway_p50_ms",
        keys_via.0,
        "ms",
        Better::Lower,
        format!("strict recording; p99 {:.3} ms", keys_via.1),
    ));
    report.add(
        Figure::new(
            "gateway.keystroke.added_p50_ms",
            added,
            "ms",
            Better::Lower,
            String::new(),
        )
        .goal(Goal::Below(1.0), "under 1 ms added"),
    );
    report.add(Figure::new(
        "gateway.connect_exec.direct_ms",
        direct_rt,
        "ms",
        Better::Lower,
        format!("ssh … true, median of {}", args.trips),
    ));
    report.add(Figure::new(
        "gateway.connect_exec.gateway_ms",
        via_rt,
        "ms",
        Better::Lower,
        String::new(),
    ));
    report.add(
        Figure::new(
            "gateway.connect_exec.ratio",
            via_rt / direct_rt,
            "×direct",
            Better::Lower,
            "the gateway's connection includes a second SSH handshake and login upstream".into(),
        )
        .goal(Goal::AtMost(1.05), "within 5% of direct"),
    );
    Ok(())
}
