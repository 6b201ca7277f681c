//! Live sessions: their listing ([`SessionInfo`]), how one is asked to end, and the keys that
//! clients cancel queries with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use subtle::ConstantTimeEq;
use tokio::sync::watch;
use uuid::Uuid;
use warrant_core::Timestamp;
use warrant_pgroles::TlsMode;

use crate::authority::EndReason;

/// One live session, as [`PgGatewayHandle::sessions`](crate::PgGatewayHandle::sessions)
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session id (a UUIDv7: ids sort by start).
    pub id: Uuid,
    /// The person's identity.
    pub identity: String,
    /// Where they connected from.
    pub peer: Option<SocketAddr>,
    /// The target.
    pub target: String,
    /// The database on it.
    pub database: String,
    /// The role logged in as on the target.
    pub account: String,
    /// The grant the session runs under.
    pub grant_id: String,
    /// When the grant (and so the session) ends.
    pub grant_end: Timestamp,
    /// When the session logged in to the target.
    pub started: Timestamp,
    /// Bytes from the person to the target so far.
    pub bytes_up: u64,
    /// Bytes from the target to the person so far.
    pub bytes_down: u64,
    /// The statement log's file name in the recordings directory, when there is one.
    pub recording: Option<String>,
    /// Whether the connection to the person is TLS.
    pub tls: bool,
}

/// A live session, shared by its connection task and the registry.
pub(crate) struct Live {
    info: SessionInfo,
    pub(crate) bytes_up: AtomicU64,
    pub(crate) bytes_down: AtomicU64,
    ending: watch::Sender<Option<EndReason>>,
}

impl Live {
    pub(crate) fn new(info: SessionInfo) -> Self {
        Self {
            info,
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            ending: watch::channel(None).0,
        }
    }

    pub(crate) fn snapshot(&self) -> SessionInfo {
        let mut info = self.info.clone();
        info.bytes_up = self.bytes_up.load(Ordering::Relaxed);
        info.bytes_down = self.bytes_down.load(Ordering::Relaxed);
        info
    }

    /// Asks the session to end; false if it was already ending.
    pub(crate) fn end(&self, reason: EndReason) -> bool {
        self.ending.send_if_modified(|r| {
            if r.is_some() {
                return false;
            }
            *r = Some(reason);
            true
        })
    }

    pub(crate) fn ending(&self) -> watch::Receiver<Option<EndReason>> {
        self.ending.subscribe()
    }
}

/// Where a client's cancel request goes: the target, and its own key for the session.
#[derive(Clone)]
pub(crate) struct CancelTarget {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: TlsMode,
    pub(crate) pid: i32,
    pub(crate) key: Vec<u8>,
}

/// The gateway's live sessions and cancel keys.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<Uuid, Arc<Live>>>,
    cancels: Mutex<HashMap<(i32, [u8; 4]), CancelTarget>>,
}

impl Registry {
    pub(crate) fn insert(&self, live: Arc<Live>) {
        lock(&self.sessions).insert(live.info.id, live);
    }

    pub(crate) fn remove(&self, id: Uuid) {
        lock(&self.sessions).remove(&id);
    }

    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<Live>> {
        lock(&self.sessions).get(&id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Live>> {
        lock(&self.sessions).values().cloned().collect()
    }

    /// A fresh (process id, key) for a session, registered to cancel on `target`.
    pub(crate) fn cancel_key(&self, target: CancelTarget) -> (i32, [u8; 4]) {
        let mut cancels = lock(&self.cancels);
        loop {
            let mut raw = [0u8; 8];
            // The OS's random source failing leaves zeros: a key that is then simply unique.
            let _ = getrandom::fill(&mut raw);
            let pid = i32::from_be_bytes([raw[0] & 0x7f, raw[1], raw[2], raw[3]]).max(1);
            let key = [raw[4], raw[5], raw[6], raw[7]];
            if let std::collections::hash_map::Entry::Vacant(e) = cancels.entry((pid, key)) {
                e.insert(target);
                return (pid, key);
            }
        }
    }

    pub(crate) fn forget_cancel_key(&self, pid: i32, key: [u8; 4]) {
        lock(&self.cancels).remove(&(pid, key));
    }

    /// The target of a cancel request, compared in constant time per candidate key.
    pub(crate) fn cancel_target(&self, pid: i32, key: &[u8]) -> Option<CancelTarget> {
        let cancels = lock(&self.cancels);
        let mut found = None;
        for ((p, k), t) in cancels.iter() {
            if *p == pid && bool::from(k.as_slice().ct_eq(key)) {
                found = Some(t.clone());
            }
        }
        found
    }
}

/// Locks a mutex, even one a panicking thread left poisoned (the maps stay consistent: every
/// change is one insert or remove).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
