//! A session's recording as a gateway writes it live: one asciicast v2 file per session,
//! `<recordings dir>/<session id>.cast` ([`Recorder`]), and its signed manifest when the
//! session ends. The SSH gateway (`warrant-sshgw`) records through this module; it is here, not
//! there, so that every gateway shares it.
//!
//! The file is created when the session is authorized, before the target is even logged in
//! to (so a strict session that cannot be recorded never reaches it); its header is written
//! when the first command starts, so that it carries the first pty's size and `TERM`.
//!
//! Writing happens on one thread per recorded session, fed by a small bounded queue: the proxy
//! never writes to the disk itself, since a slow or stalled disk would then stall a runtime
//! worker and with it every session on the gateway. The two modes wait differently:
//!
//! - strict: each chunk waits until the writer has written it (or failed to) before it is
//!   passed on, so the person never sees output, nor the target gets input, that the recording
//!   does not hold. A gateway queues the next chunks while earlier ones are being written
//!   ([`Recording::output_queued`]), and the writer takes whatever is queued as one batch: one
//!   flush, one wake-up, then every chunk of the batch is answered. Bulk output (`cat` of 64 MiB
//!   of text, release build, two cores) runs at about 0.9 of the unrecorded rate this way.
//! - best-effort: a chunk waits only for room in the queue, so a session runs at most
//!   16 chunks (`QUEUE`) ahead of its recording.
//!
//! Neither waits longer than 5 s (`STALL_LIMIT`) per chunk: past that, the recording has
//! failed (strict mode ends the session) or, in best-effort mode, what does not fit is left
//! out and counted until the queue has room again.
//!
//! A gateway's use of it: [`Recording::create`] when the session is authorized (or
//! [`Recording::discard`] if the target then cannot be reached), [`Recording::note_pty`]
//! when a pty is granted, [`Recording::begin`] when the first command starts, then
//! [`Recording::output`], [`Recording::input`], [`Recording::resize`] and
//! [`Recording::marker`] as the session runs; [`Recording::failures`] to watch for the first
//! [`Failure`], and [`Recording::finish`] at the end for the [`RecordingOutcome`].

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{Header, Manifest, Recorder, RecordingError, RecordingKey, SessionFacts};

/// Chunks (each at most one SSH packet, 32 KiB) queued for the writer at most.
const QUEUE: usize = 16;
/// How long a chunk may wait for room in the queue before the recording counts as failed.
const STALL_LIMIT: Duration = Duration::from_secs(5);
/// How long syncing the recording and writing its manifest may take at the end.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// The terminal size recorded when the session has no pty.
const DEFAULT_SIZE: (u32, u32) = (80, 24);

/// Whether a session is recorded, and what happens when its recording cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordingMode {
    /// Not recorded.
    #[default]
    Off,
    /// Recorded when possible: if the recording cannot be created or written (disk full, an
    /// I/O error), the session goes on, the gateway reports the failure once (the SSH
    /// gateway's `GatewayEvent::RecordingFailed`), and the manifest counts the failed writes.
    BestEffort,
    /// Recorded, or no session: a session whose recording cannot be created is refused, and
    /// one whose recording fails is ended at once (the SSH gateway's
    /// `EndReason::RecordingFailed`).
    Strict,
}

/// A finished recording: what its signed manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// The recording's file name in the recordings directory (`<session id>.cast`); the
    /// manifest is beside it (`<session id>.cast.manifest.json`).
    pub file: String,
    /// SHA-256 of the recording, hex, as signed in the manifest.
    pub sha256: String,
    /// Failed writes (best-effort mode; counted in the manifest too).
    pub write_errors: u64,
    /// Bytes of output or input left out because the disk did not keep up (best-effort
    /// mode; a marker in the recording says so too).
    pub dropped_bytes: u64,
}

/// What became of a session's recording, as the gateway reports it when the session ends (the
/// SSH gateway's `GatewayEvent::SessionEnded`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordingOutcome {
    /// Not recorded: the role does not record, the gateway keeps no recordings (best-effort
    /// roles then go unrecorded), or creating the file failed in best-effort mode.
    NotRecorded,
    /// Recorded, and its signed manifest written.
    Signed(RecordingSummary),
    /// Recorded, but it could not be finished: no manifest (e.g. the disk is full). What was
    /// written may remain in `file`, unsigned.
    Unfinished {
        /// The recording's file name in the recordings directory.
        file: String,
        /// What failed, with a stable code first.
        error: String,
    },
}

impl RecordingOutcome {
    /// The summary of a signed recording.
    #[must_use]
    pub fn summary(&self) -> Option<&RecordingSummary> {
        match self {
            Self::Signed(summary) => Some(summary),
            Self::NotRecorded | Self::Unfinished { .. } => None,
        }
    }
}

/// Why a recording failed: a short cause for the person's terminal, the details (with a
/// stable code first) for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// E.g. `No space left on device (os error 28)`.
    pub cause: String,
    /// E.g. `recording_io: writing /var/lib/warrant/recordings/….cast: No space left …`.
    pub detail: String,
}

impl Failure {
    fn of(e: &RecordingError) -> Self {
        let cause = match e {
            RecordingError::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        Self {
            cause,
            detail: format!("{}: {e}", e.code()),
        }
    }

    fn writer_gone(path: &Path) -> Self {
        Self {
            cause: "the recording's writer stopped".to_owned(),
            detail: format!(
                "recording_writer: the writer of {} stopped before writing everything",
                path.display()
            ),
        }
    }

    fn stalled(path: &Path) -> Self {
        Self {
            cause: format!("the disk did not keep up for {} s", STALL_LIMIT.as_secs()),
            detail: format!(
                "recording_stalled: nothing could be written to {} for {} s",
                path.display(),
                STALL_LIMIT.as_secs()
            ),
        }
    }
}

/// An op for the writer, and who waits for it to be written (strict mode).
struct Queued {
    op: Op,
    written: Option<oneshot::Sender<()>>,
}

/// What the writer thread is asked to do, in order.
enum Op {
    /// Write the header (the first op).
    Begin(Header),
    Output(Bytes),
    Input(Bytes),
    Resize(u32, u32),
    Marker(String),
    /// Sync the recording, write its manifest, and stop.
    Finish(SessionFacts, oneshot::Sender<Result<Manifest, Failure>>),
}

/// The facts of a recorded session known when it is authorized.
pub struct Start<'a> {
    /// The recordings directory.
    pub dir: &'a Path,
    /// The key that signs the manifest.
    pub key: Arc<RecordingKey>,
    /// The session's id: the file is `<session id>.cast`.
    pub session_id: String,
    /// How the session is recorded: [`RecordingMode::Strict`] or
    /// [`RecordingMode::BestEffort`] (a gateway creates no recording for
    /// [`RecordingMode::Off`]).
    pub mode: RecordingMode,
    /// Whether what the person sends is recorded too ([`Recording::input`]).
    pub record_input: bool,
    /// The header's title: `identity on target as account (grant …)`.
    pub title: String,
    /// Unix seconds at the start.
    pub timestamp: i64,
}

/// One session's recording: the handle the connection handler, the channel pumps and the
/// supervisor share.
pub struct Recording {
    mode: RecordingMode,
    record_input: bool,
    path: PathBuf,
    /// The file name in the recordings directory.
    file: String,
    tx: mpsc::Sender<Queued>,
    /// The header until the first command begins the recording; `None` after.
    header: Mutex<Option<Header>>,
    /// Whether the header has a pty's size yet (the first pty's wins).
    pty_noted: AtomicBool,
    /// Best-effort mode after a chunk waited [`STALL_LIMIT`] in vain: chunks that do not fit
    /// at once are left out, until one does.
    stalled: AtomicBool,
    /// Set when [`Recording::finish`] starts: the writer's end is expected from then on.
    finished: Arc<AtomicBool>,
    /// Bytes left out while stalled.
    dropped: AtomicU64,
    /// The first failure, for the supervisor.
    failure: watch::Sender<Option<Failure>>,
}

impl Recording {
    /// Creates `<dir>/<session id>.cast` (it must not exist; mode 0600) and starts its writer.
    pub fn create(start: Start<'_>) -> Result<Self, Failure> {
        let file = format!("{}.cast", start.session_id);
        let path = start.dir.join(&file);
        let opened = open_new(&path).map_err(|source| {
            Failure::of(&RecordingError::Io {
                what: "creating",
                path: path.display().to_string(),
                source,
            })
        })?;
        let header = Header {
            version: 2,
            width: DEFAULT_SIZE.0,
            height: DEFAULT_SIZE.1,
            timestamp: start.timestamp,
            title: Some(start.title),
            env: BTreeMap::new(),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let failure = watch::channel(None).0;
        let writer = Writer {
            path: path.clone(),
            key: start.key,
            fallback: header.clone(),
            failure: failure.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("warrant-recording".to_owned())
            .spawn(move || writer.run(opened, rx));
        if let Err(e) = spawned {
            let _ = std::fs::remove_file(&path);
            return Err(Failure {
                cause: format!("no thread to write it: {e}"),
                detail: format!("recording_thread: starting the writer of {file}: {e}"),
            });
        }
        Ok(Self {
            mode: start.mode,
            record_input: start.record_input,
            path,
            file,
            tx,
            header: Mutex::new(Some(header)),
            pty_noted: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            finished: Arc::new(AtomicBool::new(false)),
            dropped: AtomicU64::new(0),
            failure,
        })
    }

    /// The file name in the recordings directory.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// How the session is recorded.
    pub fn mode(&self) -> RecordingMode {
        self.mode
    }

    /// Stops the writer and removes the file: the session never started (the target could
    /// not be reached), so there is nothing to keep.
    pub fn discard(self) {
        let path = self.path.clone();
        drop(self);
        let _ = std::fs::remove_file(path);
    }

    /// A pty was granted: the first one's size and terminal type go into the header.
    pub fn note_pty(&self, term: &str, cols: u32, rows: u32) {
        if self.pty_noted.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(header) = lock(&self.header).as_mut() {
            // A client whose input is not a terminal (`ssh -tt` from a script) sends 0x0.
            if cols > 0 && rows > 0 {
                header.width = cols;
                header.height = rows;
            }
            if !term.is_empty() {
                header.env.insert("TERM".to_owned(), term.to_owned());
            }
        }
    }

    /// Writes the header, once: when the first command starts (or at the end, for a session
    /// that never ran one).
    pub async fn begin(&self) {
        let header = lock(&self.header).take();
        if let Some(header) = header {
            self.send(Op::Begin(header), 0).await;
        }
    }

    /// Terminal output (stdout or stderr) of a session channel.
    pub async fn output(&self, data: &[u8]) {
        self.send(Op::Output(Bytes::copy_from_slice(data)), data.len())
            .await;
    }

    /// What the person sent on a session channel: recorded only when the role says so.
    pub async fn input(&self, data: &[u8]) {
        if self.record_input {
            self.send(Op::Input(Bytes::copy_from_slice(data)), data.len())
                .await;
        }
    }

    /// The person's window changed.
    pub async fn resize(&self, cols: u32, rows: u32) {
        {
            let mut header = lock(&self.header);
            if let Some(header) = header.as_mut() {
                // Not begun: the header takes the new size.
                if cols > 0 && rows > 0 {
                    header.width = cols;
                    header.height = rows;
                }
                return;
            }
        }
        self.send(Op::Resize(cols, rows), 0).await;
    }

    /// A marker: a command, a file transfer, the end.
    pub async fn marker(&self, text: String) {
        let len = text.len();
        self.send(Op::Marker(text), len).await;
    }

    /// A receiver of the first failure.
    pub fn failures(&self) -> watch::Receiver<Option<Failure>> {
        self.failure.subscribe()
    }

    /// The first failure, if the session must end for it (strict mode).
    pub fn strict_failure(&self) -> Option<Failure> {
        if self.mode == RecordingMode::Strict {
            self.failure.borrow().clone()
        } else {
            None
        }
    }

    /// Ends the recording: a marker for what was left out (best-effort), then the writer
    /// syncs the file and writes its signed manifest.
    pub async fn finish(&self, facts: SessionFacts) -> RecordingOutcome {
        self.finished.store(true, Ordering::SeqCst);
        self.begin().await;
        let dropped = self.dropped.load(Ordering::SeqCst);
        if dropped > 0 {
            self.stalled.store(false, Ordering::SeqCst);
            self.marker(format!(
                "recording: {dropped} bytes were left out (the disk did not keep up)"
            ))
            .await;
        }
        let (reply, answer) = oneshot::channel();
        let finished = tokio::time::timeout(FINISH_TIMEOUT, async {
            let finish = Queued {
                op: Op::Finish(facts, reply),
                written: None,
            };
            self.tx.send(finish).await.ok()?;
            answer.await.ok()
        })
        .await;
        let unfinished = |error: String| RecordingOutcome::Unfinished {
            file: self.file.clone(),
            error,
        };
        match finished {
            Ok(Some(Ok(manifest))) => RecordingOutcome::Signed(RecordingSummary {
                file: self.file.clone(),
                sha256: manifest.sha256,
                write_errors: manifest.write_errors,
                dropped_bytes: dropped,
            }),
            Ok(Some(Err(failure))) => unfinished(failure.detail),
            Ok(None) => unfinished("recording_writer: the recording's writer is gone".to_owned()),
            Err(_) => unfinished(format!(
                "recording_stalled: the recording could not be finished within {} s",
                FINISH_TIMEOUT.as_secs()
            )),
        }
    }

    /// Terminal output, without waiting for it to be written: in strict mode it is queued
    /// (waiting only for room in the queue) and the returned [`Written`] resolves once the
    /// writer has written it — pass the output on only then. So a gateway reads and queues the
    /// next chunk while this one is being written, instead of doing one after the other. In
    /// the other modes the same as [`Recording::output`], and `None`.
    /// The chunk is shared with the caller, not copied.
    pub async fn output_queued(&self, data: &Bytes) -> Option<Written> {
        if self.mode != RecordingMode::Strict {
            let len = data.len();
            self.send(Op::Output(data.clone()), len).await;
            return None;
        }
        let (written, done) = oneshot::channel();
        let op = Queued {
            op: Op::Output(data.clone()),
            written: Some(written),
        };
        let deadline = tokio::time::Instant::now() + STALL_LIMIT;
        match tokio::time::timeout_at(deadline, self.tx.send(op)).await {
            Ok(Ok(())) => {}
            // The writer is gone (the [`Written`] then reports it).
            Ok(Err(_)) => {}
            Err(_) => report(&self.failure, Failure::stalled(&self.path)),
        }
        Some(Written {
            done,
            deadline,
            failure: self.failure.clone(),
            path: self.path.clone(),
            finished: self.finished.clone(),
        })
    }

    /// Hands `op` to the writer: in strict mode waits until it is written, in best-effort mode
    /// for room in the queue; either up to [`STALL_LIMIT`].
    async fn send(&self, op: Op, len: usize) {
        if self.mode == RecordingMode::Strict {
            let (written, done) = oneshot::channel();
            let op = Queued {
                op,
                written: Some(written),
            };
            let waited = tokio::time::timeout(STALL_LIMIT, async {
                // Closed, or dropped unanswered: nothing was written.
                match self.tx.send(op).await {
                    Ok(()) => done.await.is_ok(),
                    Err(_) => false,
                }
            })
            .await;
            match waited {
                Err(_) => report(&self.failure, Failure::stalled(&self.path)),
                Ok(false) if !self.finished.load(Ordering::SeqCst) => {
                    report(&self.failure, Failure::writer_gone(&self.path));
                }
                Ok(_) => {}
            }
            return;
        }
        let op = Queued { op, written: None };
        if self.stalled.load(Ordering::SeqCst) {
            match self.tx.try_send(op) {
                Ok(()) => self.stalled.store(false, Ordering::SeqCst),
                Err(TrySendError::Full(_)) => {
                    self.dropped.fetch_add(len as u64, Ordering::SeqCst);
                }
                // Finished: nothing more is recorded.
                Err(TrySendError::Closed(_)) => {}
            }
            return;
        }
        if tokio::time::timeout(STALL_LIMIT, self.tx.send(op))
            .await
            .is_err()
        {
            report(&self.failure, Failure::stalled(&self.path));
            self.stalled.store(true, Ordering::SeqCst);
            self.dropped.fetch_add(len as u64, Ordering::SeqCst);
        }
    }
}

/// Output queued by [`Recording::output_queued`] in strict mode, not yet known to be written.
pub struct Written {
    done: oneshot::Receiver<()>,
    deadline: tokio::time::Instant,
    failure: watch::Sender<Option<Failure>>,
    path: PathBuf,
    finished: Arc<AtomicBool>,
}

impl Written {
    /// Resolves once the writer has written the output (or failed to: then the recording's
    /// failure is set, and [`Recording::strict_failure`] says so). Waiting past the stall
    /// limit from when it was queued counts as a failure.
    pub async fn wait(&mut self) {
        match tokio::time::timeout_at(self.deadline, &mut self.done).await {
            Ok(Ok(())) => {}
            // The writer is gone without writing it (a strict recording fails closed).
            Ok(Err(_)) => {
                if !self.finished.load(Ordering::SeqCst) {
                    report(&self.failure, Failure::writer_gone(&self.path));
                }
            }
            Err(_) => report(&self.failure, Failure::stalled(&self.path)),
        }
    }
}

/// Tells every strict sender waiting on the batch that it is written (or has failed: the
/// failure is reported before).
fn answer(answers: &mut Vec<oneshot::Sender<()>>) {
    for written in answers.drain(..) {
        let _ = written.send(());
    }
}

/// Records `failure` unless an earlier one was.
fn report(sender: &watch::Sender<Option<Failure>>, failure: Failure) {
    sender.send_if_modified(|first| {
        if first.is_some() {
            return false;
        }
        *first = Some(failure);
        true
    });
}

/// Locks `m`, taking the value of a poisoned mutex as it is: the data behind these locks stay
/// whole when a holder panics.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn open_new(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// The writer thread of one recording.
struct Writer {
    path: PathBuf,
    key: Arc<RecordingKey>,
    /// The header if anything but [`Op::Begin`] comes first (it does not).
    fallback: Header,
    failure: watch::Sender<Option<Failure>>,
}

/// Where the writer stands.
enum State {
    /// Created, no header yet.
    Opened(File),
    Recording(Recorder),
    /// The header could not be written: nothing more can be.
    Broken(Failure),
}

impl Writer {
    /// Writes ops as they come, in batches: whatever is queued when the writer gets to it (up
    /// to [`QUEUE`] ops) is encoded, then flushed to the file in one write, then every op of
    /// the batch that a strict sender waits for is answered. Under bulk output this is one
    /// system call and one wake-up per batch instead of one per chunk; a lone keystroke's echo
    /// is still a batch of one.
    fn run(self, file: File, mut rx: mpsc::Receiver<Queued>) {
        let mut state = State::Opened(file);
        let mut answers: Vec<oneshot::Sender<()>> = Vec::with_capacity(QUEUE);
        while let Some(mut queued) = rx.blocking_recv() {
            let mut ops = 0;
            loop {
                let Queued { op, written } = queued;
                if let Op::Finish(facts, reply) = op {
                    let mut state = match state {
                        State::Opened(file) => self.begin(file, &self.fallback),
                        state => state,
                    };
                    self.flush(&mut state);
                    answer(&mut answers);
                    let _ = reply.send(self.finish(state, facts));
                    return;
                }
                state = self.apply(state, op);
                answers.extend(written);
                ops += 1;
                if ops >= QUEUE {
                    break;
                }
                match rx.try_recv() {
                    Ok(next) => queued = next,
                    Err(_) => break,
                }
            }
            self.flush(&mut state);
            // After a failure was reported, so a strict sender sees it.
            answer(&mut answers);
        }
        // Every handle is gone without a finish (the session never started): the caller
        // removes the file.
    }

    fn begin(&self, file: File, header: &Header) -> State {
        match Recorder::with_writer(
            BufWriter::with_capacity(crate::WRITE_BUFFER, file),
            &self.path,
            header,
        ) {
            Ok(recorder) => State::Recording(recorder),
            Err(e) => {
                let failure = Failure::of(&e);
                report(&self.failure, failure.clone());
                State::Broken(failure)
            }
        }
    }

    /// Writes `op` (unflushed), beginning the recording first if it has not begun.
    fn apply(&self, state: State, op: Op) -> State {
        match (state, op) {
            (State::Opened(file), Op::Begin(header)) => self.begin(file, &header),
            // Anything before the header (it does not happen) begins with the fallback header.
            (State::Opened(file), op) => self.apply(self.begin(file, &self.fallback), op),
            (State::Recording(mut recorder), op) => {
                let written = match op {
                    Op::Output(data) => recorder.write_output(&data),
                    Op::Input(data) => recorder.write_input(&data),
                    Op::Resize(cols, rows) => recorder.write_resize(cols, rows),
                    Op::Marker(text) => recorder.write_marker(&text),
                    Op::Begin(_) | Op::Finish(..) => Ok(()),
                };
                // Counted by the recorder (the manifest's `write_errors`); best-effort goes on.
                if let Err(e) = written {
                    report(&self.failure, Failure::of(&e));
                }
                State::Recording(recorder)
            }
            (broken, _) => broken,
        }
    }

    /// Flushes what the batch wrote to the file.
    fn flush(&self, state: &mut State) {
        if let State::Recording(recorder) = state {
            // Counted by the recorder (the manifest's `write_errors`); best-effort goes on.
            if let Err(e) = recorder.flush() {
                report(&self.failure, Failure::of(&e));
            }
        }
    }

    fn finish(&self, state: State, facts: SessionFacts) -> Result<Manifest, Failure> {
        match state {
            State::Recording(recorder) => recorder
                .finish(facts, &self.key)
                .map_err(|e| Failure::of(&e)),
            State::Broken(failure) => Err(failure),
            State::Opened(_) => Err(Failure {
                cause: "never begun".to_owned(),
                detail: "recording_writer: the recording was never begun".to_owned(),
            }),
        }
    }
}
