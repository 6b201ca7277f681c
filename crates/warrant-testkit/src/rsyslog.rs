//! A throwaway rsyslog (Debian `rsyslog`, and `rsyslog-openssl` for TLS) receiving RFC 5424
//! over TCP (octet-counted framing) on a free loopback port, optionally over TLS with a
//! certificate from a test CA, and writing each message's *parsed* fields as one JSON object
//! per line (rsyslog accepts malformed headers silently, so tests check what it parsed, not
//! mere receipt). It can be stopped and started again on the same port, to play a SIEM that
//! goes down and comes back.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::FixtureError;
use crate::certs::TestCa;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A running (or stopped) rsyslog receiver.
pub struct RsyslogFixture {
    dir: tempfile::TempDir,
    port: u16,
    tls: bool,
    child: Option<Child>,
}

impl RsyslogFixture {
    /// Starts rsyslog on plain TCP.
    pub fn start() -> Result<Self, FixtureError> {
        Self::start_with(false)
    }

    /// Starts rsyslog on TLS (RFC 5425) with a certificate for `localhost` and `127.0.0.1`
    /// signed by a test CA ([`RsyslogFixture::ca_file`]).
    pub fn start_tls() -> Result<Self, FixtureError> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Result<Self, FixtureError> {
        if !Path::new(RSYSLOGD).exists() {
            return Err(FixtureError::new("rsyslogd is not installed").with_fix(
                "apt-get install -y --no-install-recommends rsyslog rsyslog-openssl (scripts/deps/rsyslog.sh)",
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("warrant-rsyslog-")
            .tempdir()
            .map_err(|e| FixtureError::new(format!("temp dir: {e}")))?;
        let port = crate::try_free_port()?;
        let mut me = Self {
            dir,
            port,
            tls,
            child: None,
        };
        if tls {
            let ca = TestCa::new("warrant test syslog CA")?;
            let cert = ca.server_cert(&["localhost", "127.0.0.1"])?;
            let write = |name: &str, text: &str| {
                std::fs::write(me.dir.path().join(name), text)
                    .map_err(|e| FixtureError::new(format!("writing {name}: {e}")))
            };
            write("ca.pem", ca.pem())?;
            write("cert.pem", &cert.cert_pem)?;
            write("key.pem", &cert.key_pem)?;
        }
        me.write_config()?;
        me.resume()?;
        Ok(me)
    }

    /// The `host:port` it listens on.
    #[must_use]
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The test CA's certificate (TLS only): what the sender trusts.
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn out_file(&self) -> PathBuf {
        self.dir.path().join("received.jsonl")
    }

    fn write_config(&self) -> Result<(), FixtureError> {
        let d = self.dir.path().display();
        let mut conf = format!("global(workDirectory=\"{d}\" maxMessageSize=\"256k\")\n");
        if self.tls {
            conf.push_str(&format!(
                "global(DefaultNetstreamDriver=\"ossl\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" DefaultNetstreamDriverCertFile=\"{d}/cert.pem\" DefaultNetstreamDriverKeyFile=\"{d}/key.pem\")\n\
                 module(load=\"imtcp\" StreamDriver.Name=\"ossl\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n"
            ));
        } else {
            conf.push_str("module(load=\"imtcp\")\n");
        }
        conf.push_str(&format!(
            "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{}\" ruleset=\"received\")\n\
             template(name=\"parsed\" type=\"list\" option.jsonf=\"on\") {{\n\
               property(outname=\"pri\" name=\"pri\" format=\"jsonf\")\n\
               property(outname=\"facility\" name=\"syslogfacility\" format=\"jsonf\")\n\
               property(outname=\"severity\" name=\"syslogseverity\" format=\"jsonf\")\n\
               property(outname=\"timestamp\" name=\"timereported\" dateFormat=\"rfc3339\" format=\"jsonf\")\n\
               property(outname=\"hostname\" name=\"hostname\" format=\"jsonf\")\n\
               property(outname=\"app_name\" name=\"app-name\" format=\"jsonf\")\n\
               property(outname=\"procid\" name=\"procid\" format=\"jsonf\")\n\
               property(outname=\"msgid\" name=\"msgid\" format=\"jsonf\")\n\
               property(outname=\"structured_data\" name=\"structured-data\" format=\"jsonf\")\n\
               property(outname=\"msg\" name=\"msg\" format=\"jsonf\")\n\
             }}\n\
             ruleset(name=\"received\") {{ action(type=\"omfile\" file=\"{}\" template=\"parsed\" flushOnTXEnd=\"on\") }}\n",
            self.port,
            self.out_file().display()
        ));
        std::fs::write(self.dir.path().join("rsyslog.conf"), conf)
            .map_err(|e| FixtureError::new(format!("writing rsyslog.conf: {e}")))
    }

    /// Stops it (as a SIEM that goes down); what it received stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) -> Result<(), FixtureError> {
        if self.child.is_some() {
            return Ok(());
        }
        let d = self.dir.path();
        let mut cmd = Command::new(RSYSLOGD);
        cmd.arg("-n")
            .arg("-f")
            .arg(d.join("rsyslog.conf"))
            .arg("-i")
            .arg(d.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("rsyslogd.log"))
                    .map_err(|e| FixtureError::new(format!("log file: {e}")))?,
            ));
        let child = cmd
            .spawn()
            .map_err(|e| FixtureError::new(format!("starting rsyslogd: {e}")).with_command(&cmd))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return Err(FixtureError::new(format!("rsyslogd exited with {status}"))
                    .with_detail(self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(FixtureError::new("rsyslogd did not listen within 10 s").with_detail(self.log()))
    }

    /// rsyslogd's own output.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    /// Every message received so far, as parsed (`pri`, `facility`, `severity`, `timestamp`,
    /// `hostname`, `app_name`, `procid`, `msgid`, `structured_data`, `msg`).
    #[must_use]
    pub fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.out_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits up to `timeout` until at least `n` messages were received; all of them.
    pub fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<serde_json::Value>, FixtureError> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return Ok(got);
            }
            if Instant::now() >= deadline {
                return Err(FixtureError::new(format!(
                    "rsyslog received {} messages, not {n}, within {timeout:?}",
                    got.len()
                ))
                .with_detail(self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RsyslogFixture {
    fn drop(&mut self) {
        self.stop();
    }
}
