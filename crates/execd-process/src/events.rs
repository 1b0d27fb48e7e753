//! The event stream of one child: output chunks, one `Exited`, one `Closed`.

use bytes::{BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes read into one output chunk. Measured with the shared bench client:
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

/// One thing that happened to a child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bytes from one stream (never empty).
    Output {
        /// The stream.
        stream: StreamKind,
        /// The bytes.
        data: Bytes,
    },
    /// The child was reaped. `code` is its status, or 128 + signal number.
    Exited {
        /// The exit code.
        code: i32,
    },
    /// Exited, and every output stream reached EOF: nothing more will come.
    Closed,
}

/// A child's output pipe: readable through tokio, and directly by descriptor.
pub(crate) trait PipeRead: AsyncRead + AsFd + Send + Unpin {}
impl<T: AsyncRead + AsFd + Send + Unpin> PipeRead for T {}

enum Source {
    Pipe(Box<dyn PipeRead>),
    Pty(AsyncFd<OwnedFd>),
}

/// One output stream and its read buffer.
pub(crate) struct Reader {
    kind: StreamKind,
    source: Source,
    buf: BytesMut,
}

impl Reader {
    pub(crate) fn pipe(kind: StreamKind, pipe: Box<dyn PipeRead>) -> Self {
        Reader { kind, source: Source::Pipe(pipe), buf: BytesMut::new() }
    }

    pub(crate) fn pty(fd: AsyncFd<OwnedFd>) -> Self {
        Reader { kind: StreamKind::Pty, source: Source::Pty(fd), buf: BytesMut::new() }
    }

    /// Reads the next chunk; `None` at EOF (a PTY's EIO counts as EOF) or on error.
    /// Cancel-safe: a chunk is either fully returned or not read at all.
    async fn read(&mut self) -> Option<Bytes> {
        self.buf.reserve(CHUNK_BYTES);
        let n = match &mut self.source {
            Source::Pipe(pipe) => pipe.read_buf(&mut (&mut self.buf).limit(CHUNK_BYTES)).await.ok()?,
            Source::Pty(fd) => read_pty(fd, &mut self.buf).await.ok()?,
        };
        (n > 0).then(|| self.buf.split().freeze())
    }

    /// Reads what the kernel already holds, without waiting: `Ok(None)` when
    /// nothing is buffered, `Err` at EOF or on error. The descriptors are
    /// non-blocking, so this never blocks; a stale readiness flag left in the
    /// reactor only costs one `EAGAIN` later.
    fn read_now(&mut self) -> Result<Option<Bytes>, ()> {
        self.buf.reserve(CHUNK_BYTES);
        let fd = match &self.source {
            Source::Pipe(pipe) => pipe.as_fd(),
            Source::Pty(fd) => fd.get_ref().as_fd(),
        };
        match read_into(fd, &mut self.buf) {
            Ok(n) if n > 0 => Ok(Some(self.buf.split().freeze())),
            Ok(_) => Err(()),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(None),
            Err(_) => Err(()),
        }
    }
}

/// One `read` of at most [`CHUNK_BYTES`] into `buf`'s spare capacity.
fn read_into(fd: BorrowedFd<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
    let len = CHUNK_BYTES.min(spare.len());
    let (filled, _) = rustix::io::read(fd, &mut spare[..len])?;
    let n = filled.len();
    // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

async fn read_pty(fd: &AsyncFd<OwnedFd>, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| read_into(inner.get_ref().as_fd(), buf)) {
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(result) => return result,
            Err(_would_block) => continue,
        }
    }
}

/// The events of one child. Owned and driven by a single task.
pub struct ProcessEvents {
    child: tokio::process::Child,
    readers: [Option<Reader>; 2],
    /// Events decided but not yet returned (output drained at exit, then `Exited`).
    pending: VecDeque<Event>,
    exited: bool,
    closed: bool,
}

impl ProcessEvents {
    pub(crate) fn new(child: tokio::process::Child, readers: [Option<Reader>; 2]) -> Self {
        ProcessEvents { child, readers, pending: VecDeque::new(), exited: false, closed: false }
    }

    /// The next event, or `None` after `Closed`. Reaps the child; never blocks a thread.
    ///
    /// Output the child wrote before it exited comes before `Exited`: when the
    /// child is reaped, what its streams already hold is read out first.
    pub async fn next(&mut self) -> Option<Event> {
        if let Some(event) = self.pending.pop_front() {
            return Some(event);
        }
        let ProcessEvents { child, readers: [a, b], pending, exited, closed } = self;
        loop {
            if *closed {
                return None;
            }
            if *exited && a.is_none() && b.is_none() {
                *closed = true;
                return Some(Event::Closed);
            }
            tokio::select! {
                chunk = read_some(a), if a.is_some() => match chunk {
                    Some(ev) => return Some(ev),
                    None => *a = None,
                },
                chunk = read_some(b), if b.is_some() => match chunk {
                    Some(ev) => return Some(ev),
                    None => *b = None,
                },
                status = child.wait(), if !*exited => {
                    *exited = true;
                    for reader in [&mut *a, &mut *b] {
                        drain_now(reader, pending);
                    }
                    pending.push_back(Event::Exited { code: status.map(crate::exit_code).unwrap_or(-1) });
                    return pending.pop_front();
                }
            }
        }
    }
}

/// Queues every chunk a stream already holds; drops the stream at EOF.
fn drain_now(reader: &mut Option<Reader>, pending: &mut VecDeque<Event>) {
    while let Some(r) = reader.as_mut() {
        match r.read_now() {
            Ok(Some(data)) => pending.push_back(Event::Output { stream: r.kind, data }),
            Ok(None) => return,
            Err(()) => *reader = None,
        }
    }
}

async fn read_some(reader: &mut Option<Reader>) -> Option<Event> {
    let r = reader.as_mut()?;
    let data = r.read().await?;
    Some(Event::Output { stream: r.kind, data })
}
