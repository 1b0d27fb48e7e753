//! Remote processes and their exactly-once event streams.
//!
//! A process's events (output chunks, one exit, one close) carry one seq
//! counter. The connection task keeps, per process, the last seq it
//! delivered: an event at or below it is a duplicate and dropped; an event
//! past the next one is a gap, filled from `process/read` before anything
//! later is delivered. Output the server no longer retains is reported as
//! [`ClientError::Evicted`] in the stream, never skipped silently.

use crate::{Client, ClientError};
use bytes::Bytes;
use execd_protocol::jsonrpc::codes;
use execd_protocol::process::{ReadResult, SignalName, StreamName, WriteStatus};
use std::collections::BTreeMap;
use tokio::sync::mpsc;

/// One event of a remote process, in seq order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEvent {
    /// Output bytes.
    Output {
        /// The event's seq.
        seq: u64,
        /// `stdout`, `stderr` or `pty`.
        stream: StreamName,
        /// The bytes.
        data: Bytes,
    },
    /// The process exited (output may still follow until [`ProcessEvent::Closed`]).
    Exited {
        /// Exit status, or 128 + the signal number.
        exit_code: i32,
        /// The signal that ended it (`"SIGKILL"`), if one did.
        signal: Option<String>,
        /// Its `timeoutMs` deadline killed it.
        timed_out: bool,
    },
    /// No more output will come; the last event.
    Closed,
}

/// What a process stream yields.
pub type StreamItem = Result<ProcessEvent, ClientError>;

/// A process started through [`Client::start`].
pub struct RemoteProcess {
    client: Client,
    id: String,
    events: mpsc::Receiver<StreamItem>,
}

impl RemoteProcess {
    pub(crate) fn new(client: Client, id: String, events: mpsc::Receiver<StreamItem>) -> Self {
        RemoteProcess { client, id, events }
    }

    /// The process id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next event; `None` after [`ProcessEvent::Closed`] or a terminal error.
    /// Consume events promptly: while the stream is full, the connection waits.
    pub async fn next_event(&mut self) -> Option<StreamItem> {
        self.events.recv().await
    }

    /// Writes to the process's stdin (a fresh `writeId`, so a retry never writes twice).
    pub async fn write(&self, data: Bytes) -> Result<WriteStatus, ClientError> {
        self.client.write(&self.id, data).await
    }

    /// Ends the process's stdin after every earlier write.
    pub async fn close_stdin(&self) -> Result<WriteStatus, ClientError> {
        self.client.close_stdin(&self.id).await
    }

    /// Signals the process group (a PTY's foreground group).
    pub async fn signal(&self, signal: SignalName) -> Result<(), ClientError> {
        self.client.signal(&self.id, signal).await
    }

    /// Resizes the process's terminal.
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ClientError> {
        self.client.resize(&self.id, rows, cols).await
    }

    /// Kills the process tree; whether it was running.
    pub async fn terminate(&self, grace_ms: Option<u64>) -> Result<bool, ClientError> {
        self.client.terminate(&self.id, grace_ms).await
    }
}

impl Drop for RemoteProcess {
    fn drop(&mut self) {
        self.client.conn.unregister(&self.id);
    }
}

/// The connection task's per-process ordering state.
pub(crate) struct Sequencer {
    id: String,
    tx: mpsc::Sender<StreamItem>,
    /// Every event up to this seq was delivered (or is known to be covered).
    last: u64,
    exited: bool,
    closed: bool,
    /// The consumer is gone.
    dropped: bool,
    /// A `process/read` is filling a gap; live events wait in `held`.
    pub(crate) catching_up: bool,
    /// Registered while the connection was down: its start has not been sent yet.
    pub(crate) fresh: bool,
    held: BTreeMap<u64, ProcessEvent>,
}

impl Sequencer {
    pub(crate) fn new(id: String, tx: mpsc::Sender<StreamItem>) -> Self {
        Sequencer {
            id,
            tx,
            last: 0,
            exited: false,
            closed: false,
            dropped: false,
            catching_up: false,
            fresh: false,
            held: BTreeMap::new(),
        }
    }

    /// The last seq accounted for.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last
    }

    /// Nothing more will be delivered.
    pub(crate) fn done(&self) -> bool {
        self.closed || self.dropped
    }

    /// Takes a live event; returns whether a gap needs a catch-up read.
    pub(crate) async fn offer(&mut self, (seq, event): (u64, ProcessEvent)) -> bool {
        if seq <= self.last {
            return false;
        }
        // The common case, in order and nothing held: straight through, no bookkeeping.
        if !self.catching_up && seq == self.last + 1 && self.held.is_empty() {
            self.last = seq;
            self.deliver(event).await;
            return false;
        }
        self.held.insert(seq, event);
        if self.catching_up {
            return false;
        }
        self.drain_held().await;
        !self.held.is_empty()
    }

    /// Applies a catch-up read; returns whether another one is needed.
    pub(crate) async fn apply_read(&mut self, result: Result<ReadResult, ClientError>) -> bool {
        self.catching_up = false;
        let read = match result {
            Ok(read) => read,
            Err(e) => {
                // The process is gone from the server (retention over): its end is lost too.
                if e.code() == Some(codes::INVALID_REQUEST) {
                    self.deliver_error(e).await;
                    self.dropped = true;
                }
                return false;
            }
        };
        if let Some(evicted) = read.evicted {
            let error = ClientError::Evicted {
                process_id: self.id.clone(),
                first_retained_seq: evicted.first_retained_seq,
                bytes: evicted.bytes,
            };
            self.deliver_error(error).await;
        }
        for chunk in read.chunks {
            if chunk.seq > self.last {
                self.last = chunk.seq;
                self.deliver(ProcessEvent::Output { seq: chunk.seq, stream: chunk.stream, data: chunk.chunk.0 }).await;
            }
        }
        if read.exited {
            let exit_code = read.exit_code.unwrap_or(-1);
            self.deliver(ProcessEvent::Exited { exit_code, signal: read.signal, timed_out: read.timed_out }).await;
        }
        if read.closed {
            self.deliver(ProcessEvent::Closed).await;
        }
        self.last = self.last.max(read.next_seq.saturating_sub(1));
        let covered = self.last;
        self.held.retain(|seq, _| *seq > covered);
        self.drain_held().await;
        !self.held.is_empty() && !self.done()
    }

    /// Delivers held events while they continue the sequence.
    async fn drain_held(&mut self) {
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() != self.last + 1 {
                return;
            }
            let (seq, event) = entry.remove_entry();
            self.last = seq;
            self.deliver(event).await;
        }
    }

    async fn deliver(&mut self, event: ProcessEvent) {
        match event {
            ProcessEvent::Exited { .. } if self.exited => return,
            ProcessEvent::Closed if self.closed => return,
            ProcessEvent::Exited { .. } => self.exited = true,
            ProcessEvent::Closed => self.closed = true,
            ProcessEvent::Output { .. } => {}
        }
        if !self.dropped && self.tx.send(Ok(event)).await.is_err() {
            self.dropped = true;
        }
    }

    async fn deliver_error(&mut self, error: ClientError) {
        if !self.dropped && self.tx.send(Err(error)).await.is_err() {
            self.dropped = true;
        }
    }

    /// Ends the stream with `error` (the connection failed).
    pub(crate) async fn fail(mut self, error: ClientError) {
        if !self.closed {
            self.deliver_error(error).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use execd_protocol::process::{Evicted, OutputChunk};
    use execd_protocol::Base64Bytes;

    fn out(seq: u64, text: &str) -> (u64, ProcessEvent) {
        (seq, ProcessEvent::Output { seq, stream: StreamName::Stdout, data: Bytes::copy_from_slice(text.as_bytes()) })
    }

    fn drain(rx: &mut mpsc::Receiver<StreamItem>) -> Vec<StreamItem> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn read(chunks: &[(u64, &str)], next_seq: u64, exited: bool, closed: bool) -> ReadResult {
        ReadResult {
            chunks: chunks
                .iter()
                .map(|(seq, text)| OutputChunk {
                    seq: *seq,
                    stream: StreamName::Stdout,
                    chunk: Base64Bytes(Bytes::copy_from_slice(text.as_bytes())),
                })
                .collect(),
            next_seq,
            exited,
            exit_code: exited.then_some(0),
            closed,
            failure: None,
            sandbox_denied: false,
            evicted: None,
            timed_out: false,
            signal: None,
            dropped_bytes: None,
        }
    }

    #[tokio::test]
    async fn duplicates_are_dropped_and_gaps_wait_for_a_read() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut s = Sequencer::new("p".into(), tx);
        assert!(!s.offer(out(1, "a")).await);
        assert!(!s.offer(out(1, "a")).await, "a duplicate is dropped");
        assert!(s.offer(out(4, "d")).await, "seq 4 after 1 is a gap");
        s.catching_up = true;
        assert!(!s.offer(out(5, "e")).await, "held while catching up");
        assert_eq!(drain(&mut rx), vec![Ok(out(1, "a").1)]);
        // The read covers 2..3 (and 4, which is also held: delivered once).
        assert!(!s.apply_read(Ok(read(&[(2, "b"), (3, "c"), (4, "d")], 5, false, false))).await);
        let got = drain(&mut rx);
        assert_eq!(got, vec![Ok(out(2, "b").1), Ok(out(3, "c").1), Ok(out(4, "d").1), Ok(out(5, "e").1)]);
        assert_eq!(s.last_seq(), 5);
    }

    #[tokio::test]
    async fn a_read_reports_eviction_exit_and_close_once() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut s = Sequencer::new("p".into(), tx);
        s.catching_up = true;
        let mut r = read(&[(7, "g")], 10, true, true);
        r.evicted = Some(Evicted { first_retained_seq: 7, bytes: 600 });
        assert!(!s.apply_read(Ok(r)).await);
        // Live events the read already covered are duplicates.
        assert!(!s.offer((8, ProcessEvent::Exited { exit_code: 0, signal: None, timed_out: false })).await);
        let got = drain(&mut rx);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Err(ClientError::Evicted { process_id: "p".into(), first_retained_seq: 7, bytes: 600 }));
        assert_eq!(got[1], Ok(out(7, "g").1));
        assert_eq!(got[2], Ok(ProcessEvent::Exited { exit_code: 0, signal: None, timed_out: false }));
        assert_eq!(got[3], Ok(ProcessEvent::Closed));
        assert!(s.done());
    }
}
