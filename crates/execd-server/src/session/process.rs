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
    Event, OutputRing, ProcessEvents, ProcessGroup, RetainedChunk, Signal, Spawned, StdinFeeder, StreamKind,
};
use execd_protocol::jsonrpc::notification_text;
use execd_protocol::process::{
    ClosedParams, ExitedParams, ProcessClosed, ProcessExited, ProcessOutput, StreamName, WriteStatus,
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
    /// Exit code and the seq of the `exited` event.
    exit: Option<(i32, u64)>,
    closed: bool,
    /// `None` once the process closed: its group id may then be reused.
    group: Option<ProcessGroup>,
    /// The stdin queue; `None` when the process has no (more) stdin.
    stdin: Option<StdinFeeder>,
    write_ids: WriteIds,
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
}

/// The handle through which handlers talk to a process.
pub struct ProcessHandle {
    id: Arc<str>,
    /// `id` as a JSON string literal, escaped once for the output hot path.
    id_json: String,
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
        released: oneshot::Receiver<()>,
    ) -> Arc<Self> {
        let Spawned { events, stdin, group, .. } = spawned;
        let stdin = stdin.map(StdinFeeder::start);
        let handle = Arc::new(ProcessHandle {
            id: Arc::from(id),
            id_json: serde_json::to_string(id).unwrap_or_else(|_| "\"\"".to_owned()),
            state: Mutex::new(State {
                ring: OutputRing::new(RETAINED_BYTES),
                next_seq: 1,
                exit: None,
                closed: false,
                group: Some(group),
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
            Event::Exited { code, .. } => st.exit = Some((*code, seq)),
            Event::Closed { .. } => {
                st.closed = true;
                st.group = None;
                st.stdin = None;
            }
        }
        drop(st);
        self.changed.send_replace(seq);
        seq
    }

    fn notification(&self, seq: u64, event: Event) -> String {
        match event {
            Event::Output { stream, data, .. } => ProcessOutput::text(&self.id_json, seq, stream_name(stream), &data),
            Event::Exited { code, .. } => notification_text::<ProcessExited>(&ExitedParams {
                process_id: self.id.clone(),
                seq,
                exit_code: code,
                sandbox_denied: false,
            }),
            Event::Closed { .. } => {
                notification_text::<ProcessClosed>(&ClosedParams { process_id: self.id.clone(), seq })
            }
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
                    || st.exit.is_some_and(|(_, seq)| req.after_seq < seq);
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

    /// Delivers an interrupt to the group (a PTY's foreground group), unless closed.
    pub fn interrupt(&self) {
        if let Some(group) = &lock(&self.state).group {
            let _ = group.signal(Signal::Interrupt);
        }
    }

    /// SIGKILLs the group if the process still runs; returns whether it did.
    /// A process that exited but whose output is still open (a grandchild holds
    /// it) has its group killed too, but reports `false`.
    pub fn terminate(&self) -> bool {
        let st = lock(&self.state);
        if let Some(group) = &st.group {
            let _ = group.signal(Signal::Kill);
        }
        st.exit.is_none() && st.group.is_some()
    }

    /// SIGKILLs the group unless the process already closed.
    pub fn kill_group(&self) {
        if let Some(group) = &lock(&self.state).group {
            let _ = group.signal(Signal::Kill);
        }
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
    ReadSnapshot { chunks, next_seq, exit_code: st.exit.map(|(code, _)| code), closed: st.closed }
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
