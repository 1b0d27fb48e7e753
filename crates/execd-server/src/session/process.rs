//! One process of a session: the task that owns it, and the handle callers use.
//!
//! The owner task drives the child's events in order, gives each one the next
//! seq, records it (retention ring, exit status) and pushes the notification to
//! the attached connection, awaiting queue space (so a slow client slows the
//! child instead of growing memory). Because one task emits every event,
//! `exited` always precedes `closed` and seqs are contiguous.

use super::{lock, Session, SessionError};
use bytes::Bytes;
use execd_process::{
    signal_name, Dropped, Event, OutputRing, ProcessEvents, ProcessGroup, ProcessTree, PtyControl, PtySize,
    RetainedChunk, Signal, Spawned, StdinFeeder, StreamKind,
};
use execd_protocol::jsonrpc::notification_text;
use execd_protocol::process::{
    ClosedParams, DroppedBytes, Evicted, ExitedParams, ProcessClosed, ProcessExited, ProcessInfo, ProcessOutput,
    ProcessState, StreamName, WriteStatus,
};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Output bytes retained per process.
pub const RETAINED_BYTES: usize = 1024 * 1024;
/// Accepted `writeId`s remembered per process.
const REMEMBERED_WRITE_IDS: usize = 4096;

struct State {
    ring: OutputRing,
    /// The next seq to assign (starts at 1).
    next_seq: u64,
    /// How the process ended, once it did.
    exit: Option<Exit>,
    closed: bool,
    /// Bytes dropped past the output cap, once closed (only with a cap).
    dropped: Option<DroppedBytes>,
    /// `None` once the process closed: its group id may then be reused.
    group: Option<ProcessGroup>,
    /// The terminal of a tty process; dropped once closed (no descriptor outlives the process).
    pty: Option<PtyControl>,
    /// The stdin queue; `None` when the process has no (more) stdin.
    stdin: Option<StdinFeeder>,
    write_ids: WriteIds,
}

/// How a process ended.
#[derive(Clone, Copy, Debug)]
struct Exit {
    code: i32,
    /// The seq of the `exited` event.
    seq: u64,
    signal: Option<i32>,
    timed_out: bool,
}

/// Accepted `writeId`s, remembered as keyed 64-bit hashes so that memory does
/// not depend on how long the ids are.
#[derive(Default)]
struct WriteIds {
    hasher: std::collections::hash_map::RandomState,
    set: HashSet<u64>,
    order: VecDeque<u64>,
}

impl WriteIds {
    fn key(&self, id: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(id)
    }

    fn contains(&self, id: &str) -> bool {
        self.set.contains(&self.key(id))
    }

    fn insert(&mut self, id: &str) {
        let key = self.key(id);
        if !self.set.insert(key) {
            return;
        }
        self.order.push_back(key);
        if self.order.len() > REMEMBERED_WRITE_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn remove(&mut self, id: &str) {
        let key = self.key(id);
        if self.set.remove(&key) {
            self.order.retain(|k| *k != key);
        }
    }
}

/// A `process/read` request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadRequest {
    /// Only chunks with a greater seq.
    pub after_seq: u64,
    /// Byte budget; `None` for no limit.
    pub max_bytes: Option<u64>,
    /// Long-poll duration.
    pub wait: Duration,
}

/// What a `process/read` returns.
#[derive(Clone, Debug)]
pub struct ReadSnapshot {
    /// `(seq, stream, bytes)` of the selected chunks.
    pub chunks: Vec<RetainedChunk>,
    /// Where to continue.
    pub next_seq: u64,
    /// The exit code, once exited.
    pub exit_code: Option<i32>,
    /// Whether the process closed.
    pub closed: bool,
    /// Output after `afterSeq` that is no longer retained.
    pub evicted: Option<Evicted>,
    /// The timeout killed the process.
    pub timed_out: bool,
    /// The signal that ended the process (`SIGKILL`).
    pub signal: Option<String>,
    /// Bytes dropped past the output cap (known once closed, only with a cap).
    pub dropped: Option<DroppedBytes>,
}

/// What a process was started as, for `process/list`.
#[derive(Clone, Debug)]
pub struct StartInfo {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Runs under a PTY.
    pub tty: bool,
    /// An output cap was set.
    pub capped: bool,
}

/// The handle through which handlers talk to a process.
pub struct ProcessHandle {
    id: Arc<str>,
    /// `id` as a JSON string literal, escaped once for the output hot path.
    id_json: String,
    pid: u32,
    info: StartInfo,
    /// The descendants; dropping the handle kills what is left of them.
    tree: Arc<ProcessTree>,
    state: Mutex<State>,
    /// Bumped after every event, to wake long-polls.
    changed: watch::Sender<u64>,
}

impl ProcessHandle {
    /// Wraps a freshly spawned child and starts its owner task.
    pub(super) fn start(
        session: Arc<Session>,
        id: &str,
        spawned: Spawned,
        info: StartInfo,
        released: oneshot::Receiver<()>,
    ) -> Arc<Self> {
        let Spawned { events, stdin, group, pid, pty, tree } = spawned;
        let stdin = stdin.map(StdinFeeder::start);
        let handle = Arc::new(ProcessHandle {
            id: Arc::from(id),
            id_json: serde_json::to_string(id).unwrap_or_else(|_| "\"\"".to_owned()),
            pid,
            info,
            tree,
            state: Mutex::new(State {
                ring: OutputRing::new(RETAINED_BYTES),
                next_seq: 1,
                exit: None,
                closed: false,
                dropped: None,
                group: Some(group),
                pty,
                stdin,
                write_ids: WriteIds::default(),
            }),
            changed: watch::Sender::new(0),
        });
        tokio::spawn(own(session, handle.clone(), events, released));
        handle
    }

    /// The process id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records one event under the lock and returns its seq.
    fn record(&self, event: &Event) -> u64 {
        let mut st = lock(&self.state);
        let seq = st.next_seq;
        st.next_seq += 1;
        match event {
            Event::Output { stream, data, .. } => {
                st.ring.push(RetainedChunk { seq, stream: *stream, data: data.clone() })
            }
            Event::Exited { code, signal, timed_out } => {
                st.exit = Some(Exit { code: *code, seq, signal: *signal, timed_out: *timed_out })
            }
            Event::Closed { dropped, .. } => {
                st.closed = true;
                st.group = None;
                st.pty = None;
                st.stdin = None;
                st.dropped = self.info.capped.then(|| dropped_bytes(self.info.tty, dropped));
            }
        }
        drop(st);
        self.changed.send_replace(seq);
        seq
    }

    fn notification(&self, seq: u64, event: Event) -> String {
        match event {
            Event::Output { stream, data, .. } => ProcessOutput::text(&self.id_json, seq, stream_name(stream), &data),
            Event::Exited { code, signal, timed_out } => notification_text::<ProcessExited>(&ExitedParams {
                process_id: self.id.clone(),
                seq,
                exit_code: code,
                sandbox_denied: false,
                timed_out,
                signal: signal.map(signal_name),
            }),
            Event::Closed { .. } => notification_text::<ProcessClosed>(&ClosedParams {
                process_id: self.id.clone(),
                seq,
                // Recorded with the event, just before.
                dropped_bytes: lock(&self.state).dropped,
            }),
        }
    }

    /// Retained output and state; waits up to `req.wait` for something new.
    pub async fn read(&self, req: ReadRequest) -> ReadSnapshot {
        // Any `waitMs` is accepted; one beyond what the clock can represent waits "forever" (a year).
        let now = Instant::now();
        let deadline = now.checked_add(req.wait).unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        let mut changed = self.changed.subscribe();
        loop {
            {
                let st = lock(&self.state);
                let has_news = st.ring.after(req.after_seq).next().is_some()
                    || st.closed
                    || st.exit.is_some_and(|exit| req.after_seq < exit.seq);
                if req.wait.is_zero() || has_news || Instant::now() >= deadline {
                    return snapshot(&st, req);
                }
            }
            tokio::select! {
                res = changed.changed() => if res.is_err() { return snapshot(&lock(&self.state), req) },
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Queues `data` for stdin, in call order. `Err` is an immediate answer; the
    /// future resolves once the bytes reached the child (or failed to). A failed
    /// write forgets its `writeId`, so a retry really writes.
    pub fn write(
        self: &Arc<Self>,
        data: Bytes,
        write_id: &str,
    ) -> Result<impl std::future::Future<Output = Result<WriteStatus, SessionError>> + Send + 'static, WriteStatus>
    {
        let mut st = lock(&self.state);
        if st.write_ids.contains(write_id) {
            return Err(WriteStatus::Accepted);
        }
        let Some(stdin) = st.stdin.clone() else {
            return Err(WriteStatus::StdinClosed);
        };
        if data.is_empty() {
            st.write_ids.insert(write_id);
            return Err(WriteStatus::Accepted);
        }
        st.write_ids.insert(write_id);
        drop(st);
        let (handle, write_id) = (self.clone(), write_id.to_owned());
        Ok(async move {
            if stdin.queue(data).await.await {
                Ok(WriteStatus::Accepted)
            } else {
                lock(&handle.state).write_ids.remove(&write_id);
                Err(SessionError::StdinWrite)
            }
        })
    }

    /// Ends stdin after every write queued before it. `Err` is an immediate
    /// answer (no stdin, or already closed); the future resolves once it is closed.
    pub fn close_stdin(&self) -> Result<impl std::future::Future<Output = WriteStatus> + Send + 'static, WriteStatus> {
        let stdin = lock(&self.state).stdin.take().ok_or(WriteStatus::StdinClosed)?;
        Ok(async move {
            // A child that is gone has no input to end: that is closed too.
            let _ = stdin.close().await.await;
            WriteStatus::Accepted
        })
    }

    /// Resizes the terminal of a tty process (its foreground group gets SIGWINCH).
    /// A closed process has no terminal left; resizing it does nothing.
    pub fn resize(&self, size: PtySize) -> Result<(), SessionError> {
        if !self.info.tty {
            return Err(SessionError::NotATty(self.id.to_string()));
        }
        match &lock(&self.state).pty {
            Some(pty) => pty.resize(size).map_err(SessionError::Resize),
            None => Ok(()),
        }
    }

    /// Delivers `sig` to the group (a PTY's foreground group), unless closed.
    pub fn signal(&self, sig: Signal) {
        if let Some(group) = &lock(&self.state).group {
            let _ = group.signal(sig);
        }
    }

    /// Kills the process tree; returns whether the process was still running.
    /// Without `grace` the tree gets SIGKILL at once. With it, SIGTERM first,
    /// then SIGKILL once the grace ran out or the process closed, whichever
    /// comes first. A process that exited but whose output is still open (a
    /// descendant holds it) has its tree killed too, but reports `false`.
    pub fn terminate(self: &Arc<Self>, grace: Option<Duration>) -> bool {
        let st = lock(&self.state);
        let running = st.exit.is_none() && st.group.is_some();
        let closed = st.closed;
        drop(st);
        match grace {
            Some(grace) if !closed => {
                self.tree.signal(Signal::Terminate.raw());
                let handle = self.clone();
                tokio::spawn(async move {
                    let mut changed = handle.changed.subscribe();
                    let _ = tokio::time::timeout(grace, changed.wait_for(|_| lock(&handle.state).closed)).await;
                    handle.tree.kill();
                });
            }
            _ => self.tree.kill(),
        }
        running
    }

    /// SIGKILLs the whole tree (session end, server shutdown).
    pub fn kill_tree(&self) {
        self.tree.kill();
    }

    /// The process as `process/list` shows it.
    pub fn info(&self) -> ProcessInfo {
        let st = lock(&self.state);
        ProcessInfo {
            process_id: self.id.to_string(),
            pid: self.pid,
            argv: self.info.argv.clone(),
            tty: self.info.tty,
            state: match (st.closed, st.exit) {
                (true, _) => ProcessState::Closed,
                (false, Some(_)) => ProcessState::Exited,
                (false, None) => ProcessState::Running,
            },
            exit_code: st.exit.map(|e| e.code),
            next_seq: st.next_seq,
            timed_out: st.exit.is_some_and(|e| e.timed_out),
        }
    }
}

fn dropped_bytes(tty: bool, d: &Dropped) -> DroppedBytes {
    if tty {
        DroppedBytes { pty: Some(d.stdout), ..DroppedBytes::default() }
    } else {
        DroppedBytes { stdout: Some(d.stdout), stderr: Some(d.stderr), pty: None }
    }
}

fn snapshot(st: &State, req: ReadRequest) -> ReadSnapshot {
    let mut chunks: Vec<RetainedChunk> = Vec::new();
    let mut total = 0u64;
    for c in st.ring.after(req.after_seq) {
        let len = c.data.len() as u64;
        if let Some(max) = req.max_bytes {
            if !chunks.is_empty() && total + len > max {
                break;
            }
        }
        total += len;
        chunks.push(c.clone());
        if req.max_bytes.is_some_and(|max| total >= max) {
            break;
        }
    }
    let next_seq = match (req.max_bytes, chunks.last()) {
        (Some(_), Some(last)) => last.seq + 1,
        _ => st.next_seq,
    };
    let evicted = st.ring.evicted_after(req.after_seq).then(|| Evicted {
        first_retained_seq: st.ring.first_seq().unwrap_or(st.next_seq),
        bytes: st.ring.evicted_bytes(),
    });
    ReadSnapshot {
        chunks,
        next_seq,
        exit_code: st.exit.map(|e| e.code),
        closed: st.closed,
        evicted,
        timed_out: st.exit.is_some_and(|e| e.timed_out),
        signal: st.exit.and_then(|e| e.signal).map(signal_name),
        dropped: st.dropped,
    }
}

/// The wire name of a stream.
pub fn stream_name(s: StreamKind) -> StreamName {
    match s {
        StreamKind::Stdout => StreamName::Stdout,
        StreamKind::Stderr => StreamName::Stderr,
        StreamKind::Pty => StreamName::Pty,
    }
}

/// The owner task: drives events, records them, notifies, then retires the process.
async fn own(
    session: Arc<Session>,
    handle: Arc<ProcessHandle>,
    mut events: ProcessEvents,
    released: oneshot::Receiver<()>,
) {
    let _ = released.await;
    while let Some(event) = events.next().await {
        if matches!(&event, Event::Output { data, .. } if data.is_empty()) {
            continue; // a cap of 0 was reached: there is nothing to deliver
        }
        let seq = handle.record(&event);
        if let Some(outbound) = session.outbound() {
            let text = handle.notification(seq, event);
            let _ = outbound.send(text).await;
        }
    }
    drop(events);
    tokio::time::sleep(session.config.closed_process_ttl).await;
    session.forget_process(&handle);
}
