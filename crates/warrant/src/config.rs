//! Where `warrant login` keeps the server URL and token: `$WARRANT_CONFIG_DIR/credentials.json`
//! (default `~/.config/warrant`), readable by its owner only.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// Saved credentials.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Saved {
    /// Server URL.
    pub server: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
}

fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARRANT_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(d).join("warrant");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".config").join("warrant")
}

fn path() -> PathBuf {
    dir().join("credentials.json")
}

/// The saved credentials, or none.
pub fn load() -> Saved {
    fs::read(path())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Saves credentials (mode 0600).
pub fn save(s: &Saved) -> Result<PathBuf> {
    let d = dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)
        .with_context(|| format!("cannot create {}", d.display()))?;
    let p = path();
    let tmp = d.join("credentials.json.tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec_pretty(s)?)?;
    f.sync_all()?;
    fs::rename(&tmp, &p)?;
    Ok(p)
}

/// Forgets the token.
pub fn clear_token() -> Result<()> {
    let mut s = load();
    if s.token.take().is_some() {
        save(&s)?;
    }
    Ok(())
}
