//! The event stream of one child: output chunks, one `Exited`, one `Closed`,
//! with the limits its owner asked for (output caps, a timeout, a drain window).

use crate::child::Child;
use crate::tree::ProcessTree;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// Most bytes of one `read` from a stream. Measured with the shared bench client:
/// 16 KiB chunks stream faster end to end than 64-256 KiB ones, because each
/// message's encode and decode stay in cache on both sides (BENCHMARKS.md).
pub const CHUNK_BYTES: usize = 16 * 1024;

/// Which output stream a chunk came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// Standard output of a non-tty child.
    Stdout,
    /// Standard error of a non-tty child.
    Stderr,
    /// The merged output of a PTY child.
    Pty,
}

/// What the owner of a process asks its event stream to enforce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes delivered per stream. Output past it is read and discarded,
    /// so the child never blocks on a full pipe. `None`: no cap.
    pub output_cap: Option<u64>,
    /// Counted from the spawn: when it passes before the child exits, the
    /// whole process group is SIGKILLed and `Exited` reports `timed_out`.
    pub timeout: Option<Duration>,
    /// After the exit, how long to wait for the streams to reach EOF before
    /// `Closed` is reported anyway (and the streams dropped). `None`: forever.
    pub drain: Option<Duration>,
    /// Target bytes of one output event: after a read, what the kernel already
    /// holds for the same stream is appended up to this size.
    pub batch_bytes: usize,
}

impl Default for Limits {
    /// No cap, no timeout, no drain limit, [`CHUNK_BYTES`] per event.
    fn default() -> Self {
        Limits { output_cap: None, timeout: None, drain: None, batch_bytes: CHUNK_BYTES }
    }
}

/// One thing that happened to a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bytes from one stream. Empty only when a cap of 0 was reached.
    Output {
        /// The stream.
        stream: StreamKind,
        /// The bytes.
        data: Bytes,
        /// The stream's cap is reached with this chunk; no more output follows on it.
        cap_reached: bool,
    },
    /// The child was reaped. `code` is its status, or 128 + signal number.
    Exited {
        /// The exit code.
        code: i32,
        /// The signal that ended the child, if one did.
        signal: Option<i32>,
        /// The timeout passed and killed the process tree.
        timed_out: bool,
    },
    /// Exited, and every output stream reached EOF (or the drain window closed):
    /// nothing more will come.
    Closed {
        /// The drain window closed while a stream below its cap was still open.
        drain_timed_out: bool,
        /// Bytes read past each stream's cap and discarded, by stream.
        dropped: Dropped,
    },
}

/// Bytes discarded past the output cap, per stream (all zero without a cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Standard output (or the PTY's merged output).
    pub stdout: u64,
    /// Standard error.
    pub stderr: u64,
}

impl Dropped {
    fn add(&mut self, kind: StreamKind, n: u64) {
        match kind {
            StreamKind::Stdout | StreamKind::Pty => self.stdout += n,
            StreamKind::Stderr => self.stderr += n,
        }
    }
}

/// One output stream (a pipe or the PTY master), its read buffer and its cap accounting.
pub(crate) struct Reader {
    kind: StreamKind,
    fd: AsyncFd<OwnedFd>,
    buf: BytesMut,
    /// Bytes delivered so far (counted against the cap).
    delivered: u64,
    /// Bytes read past the cap and discarded.
    dropped: u64,
    /// The cap was reached: everything read now is discarded.
    capped: bool,
}

impl Reader {
    /// A reader of a non-blocking descriptor registered with the reactor.
    pub(crate) fn new(kind: StreamKind, fd: AsyncFd<OwnedFd>) -> Self {
        Reader { kind, fd, buf: BytesMut::new(), delivered: 0, dropped: 0, capped: false }
    }

    /// One non-blocking `read` of at most `max` bytes, appended to the buffer.
    fn read_buffered(&mut self, max: usize) -> io::Result<usize> {
        read_into(self.fd.get_ref().as_fd(), &mut self.buf, max)
    }

    /// The next output event; `None` at EOF (a PTY's EIO counts as EOF) or on error.
    /// Cancel-safe: bytes are either returned or still in the kernel.
    async fn next(&mut self, limits: &Limits) -> Option<Event> {
        loop {
            let batch = limits.batch_bytes.max(1);
            self.buf.reserve(batch.min(CHUNK_BYTES));
            let n = read_async(&self.fd, &mut self.buf).await.ok()?;
            if n == 0 {
                return None;
            }
            // Append what is already buffered, without waiting (EOF or an error
            // shows up again at the next read). A batch of one read skips this.
            while batch > CHUNK_BYTES && self.buf.len() < batch {
                let want = (batch - self.buf.len()).min(CHUNK_BYTES);
                self.buf.reserve(want);
                match self.read_buffered(want) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            if let Some(event) = self.admit(limits) {
                return Some(event);
            }
        }
    }

    /// One read of what the kernel already holds, without waiting. The
    /// descriptors are non-blocking, so this never blocks; a stale readiness
    /// flag left in the reactor only costs one `EAGAIN` later.
    fn read_now(&mut self, limits: &Limits) -> ReadNow {
        self.buf.reserve(CHUNK_BYTES);
        match self.read_buffered(CHUNK_BYTES) {
            Ok(n) if n > 0 => self.admit(limits).map_or(ReadNow::Discarded, ReadNow::Event),
            Ok(_) => ReadNow::End,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => ReadNow::Empty,
            Err(_) => ReadNow::End,
        }
    }

    /// Turns the buffered bytes into an event, cut to the cap; `None` when the
    /// cap was already reached (the bytes are discarded).
    fn admit(&mut self, limits: &Limits) -> Option<Event> {
        if self.capped {
            self.dropped += self.buf.len() as u64;
            self.buf.clear();
            return None;
        }
        let mut data = self.buf.split();
        if let Some(cap) = limits.output_cap {
            let room = cap.saturating_sub(self.delivered);
            if data.len() as u64 >= room {
                self.dropped += data.len() as u64 - room;
                data.truncate(room as usize);
                self.capped = true;
            }
        }
        self.delivered += data.len() as u64;
        Some(Event::Output { stream: self.kind, data: data.freeze(), cap_reached: self.capped })
    }
}

/// What one non-blocking read gave.
enum ReadNow {
    /// Output to deliver.
    Event(Event),
    /// Output past the cap, dropped.
    Discarded,
    /// Nothing buffered.
    Empty,
    /// EOF or an error: the stream is done.
    End,
}

/// One `read` of at most `max` bytes into `buf`'s spare capacity.
fn read_into(fd: BorrowedFd<'_>, buf: &mut BytesMut, max: usize) -> io::Result<usize> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let len = max.min(spare.len());
    let (filled, _) = rustix::io::read(fd, &mut spare[..len])?;
    let n = filled.len();
    // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

/// Waits for the descriptor to be readable, then reads once. A PTY's EIO
/// (the child side closed) is an error, which callers treat as EOF.
async fn read_async(fd: &AsyncFd<OwnedFd>, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| read_into(inner.get_ref().as_fd(), buf, CHUNK_BYTES)) {
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// The events of one child. Owned and driven by a single task.
pub struct ProcessEvents {
    child: Child,
    /// The child's descendants, for the timeout's kill.
    tree: Arc<ProcessTree>,
    readers: [Option<Reader>; 2],
    /// Bytes discarded past the caps by readers already dropped.
    dropped: Dropped,
    limits: Limits,
    /// Events decided but not yet returned (output drained at exit, then `Exited`).
    pending: VecDeque<Event>,
    /// When the timeout fires (until the child exits).
    timeout_at: Option<Instant>,
    timed_out: bool,
    /// Set at the exit: when the drain window closes.
    drain_at: Option<Instant>,
    exited: bool,
    closed: bool,
}

impl ProcessEvents {
    pub(crate) fn new(child: Child, tree: Arc<ProcessTree>, readers: [Option<Reader>; 2], limits: Limits) -> Self {
        let now = Instant::now();
        ProcessEvents {
            child,
            tree,
            readers,
            dropped: Dropped::default(),
            limits,
            pending: VecDeque::new(),
            timeout_at: limits.timeout.map(|t| deadline(now, t)),
            timed_out: false,
            drain_at: None,
            exited: false,
            closed: false,
        }
    }

    /// The next event, or `None` after `Closed`. Reaps the child; never blocks a thread.
    ///
    /// Output the child wrote before it exited comes before `Exited`: when the
    /// child is reaped, what its streams already hold is read out first.
    /// Cancel-safe: dropping the future loses no event.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        let ProcessEvents {
            child,
            tree,
            readers: [a, b],
            dropped,
            limits,
            pending,
            timeout_at,
            timed_out,
            drain_at,
            exited,
            closed,
        } = self;
        loop {
            if *closed {
                return None;
            }
            if *exited && a.is_none() && b.is_none() {
                *closed = true;
                tree.retire();
                return Some(Event::Closed { drain_timed_out: false, dropped: *dropped });
            }
            let timeout = timeout_at.filter(|_| !*exited && !*timed_out);
            tokio::select! {
                biased;
                _ = sleep_until(timeout), if timeout.is_some() => {
                    *timed_out = true;
                    tree.kill();
                }
                _ = sleep_until(*drain_at), if drain_at.is_some() => {
                    // A stream whose cap was reached does not count as undrained.
                    let undrained = [&*a, &*b].into_iter().flatten().any(|r| !r.capped);
                    for reader in [&mut *a, &mut *b] {
                        retire(reader, dropped);
                    }
                    *closed = true;
                    tree.retire();
                    return Some(Event::Closed { drain_timed_out: undrained, dropped: *dropped });
                }
                event = read_some(a, limits), if a.is_some() => match event {
                    Some(event) => return Some(event),
                    None => retire(a, dropped),
                },
                event = read_some(b, limits), if b.is_some() => match event {
                    Some(event) => return Some(event),
                    None => retire(b, dropped),
                },
                status = child.wait(), if !*exited => {
                    *exited = true;
                    *drain_at = limits.drain.map(|d| deadline(Instant::now(), d));
                    for reader in [&mut *a, &mut *b] {
                        drain_now(reader, limits, pending, dropped);
                    }
                    let status = status.unwrap_or(crate::ExitStatus { code: -1, signal: None });
                    pending.push_back(Event::Exited { code: status.code, signal: status.signal, timed_out: *timed_out });
                    return pending.pop_front();
                }
            }
        }
    }
}

/// A year: what "no deadline" means where an instant is needed.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// `now + after`, or a year from now when that is not representable.
fn deadline(now: Instant, after: Duration) -> Instant {
    now.checked_add(after).unwrap_or_else(|| now + FOREVER)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Most reads of one stream at the exit: what the pipe can hold, twice over,
/// so a descendant that keeps writing cannot hold up `Exited`.
const DRAIN_READS: usize = 2 * (1 << 20) / CHUNK_BYTES;

/// Queues the chunks a stream already holds; drops the stream at EOF.
fn drain_now(reader: &mut Option<Reader>, limits: &Limits, pending: &mut VecDeque<Event>, dropped: &mut Dropped) {
    for _ in 0..DRAIN_READS {
        let Some(r) = reader.as_mut() else { return };
        match r.read_now(limits) {
            ReadNow::Event(event) => pending.push_back(event),
            ReadNow::Discarded => {}
            ReadNow::Empty => return,
            ReadNow::End => retire(reader, dropped),
        }
    }
}

/// Drops a finished stream, keeping its count of discarded bytes.
fn retire(reader: &mut Option<Reader>, dropped: &mut Dropped) {
    if let Some(r) = reader.take() {
        dropped.add(r.kind, r.dropped);
    }
}

async fn read_some(reader: &mut Option<Reader>, limits: &Limits) -> Option<Event> {
    reader.as_mut()?.next(limits).await
}
