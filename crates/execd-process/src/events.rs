//! The event stream of one child: output chunks, one `Exited`, one `Closed`.

use bytes::{BufMut, Bytes, BytesMut};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
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

enum Source {
    Pipe(Box<dyn AsyncRead + Send + Unpin>),
    Pty(AsyncFd<OwnedFd>),
}

/// One output stream and its read buffer.
pub(crate) struct Reader {
    kind: StreamKind,
    source: Source,
    buf: BytesMut,
}

impl Reader {
    pub(crate) fn pipe(kind: StreamKind, pipe: Box<dyn AsyncRead + Send + Unpin>) -> Self {
        Reader {
            kind,
            source: Source::Pipe(pipe),
            buf: BytesMut::new(),
        }
    }

    pub(crate) fn pty(fd: AsyncFd<OwnedFd>) -> Self {
        Reader {
            kind: StreamKind::Pty,
            source: Source::Pty(fd),
            buf: BytesMut::new(),
        }
    }

    /// Reads the next chunk; `None` at EOF (a PTY's EIO counts as EOF) or on error.
    /// Cancel-safe: a chunk is either fully returned or not read at all.
    async fn read(&mut self) -> Option<Bytes> {
        self.buf.reserve(CHUNK_BYTES);
        let n = match &mut self.source {
            Source::Pipe(pipe) => pipe
                .read_buf(&mut (&mut self.buf).limit(CHUNK_BYTES))
                .await
                .ok()?,
            Source::Pty(fd) => read_pty(fd, &mut self.buf).await.ok()?,
        };
        (n > 0).then(|| self.buf.split().freeze())
    }
}

async fn read_pty(fd: &AsyncFd<OwnedFd>, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        let mut guard = fd.readable().await?;
        let spare: &mut [MaybeUninit<u8>] = buf.spare_capacity_mut();
        let len = CHUNK_BYTES.min(spare.len());
        let spare = &mut spare[..len];
        match guard
            .try_io(|inner| rustix::io::read(inner.get_ref(), &mut *spare).map_err(io::Error::from))
        {
            Ok(Ok((filled, _))) => {
                let n = filled.len();
                // SAFETY: `read` initialised the first `n` bytes of the spare capacity.
                unsafe { buf.set_len(buf.len() + n) };
                return Ok(n);
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

/// The events of one child. Owned and driven by a single task.
pub struct ProcessEvents {
    child: tokio::process::Child,
    readers: [Option<Reader>; 2],
    exited: bool,
    closed: bool,
}

impl ProcessEvents {
    pub(crate) fn new(child: tokio::process::Child, readers: [Option<Reader>; 2]) -> Self {
        ProcessEvents {
            child,
            readers,
            exited: false,
            closed: false,
        }
    }

    /// The next event, or `None` after `Closed`. Reaps the child; never blocks a thread.
    pub async fn next(&mut self) -> Option<Event> {
        let ProcessEvents {
            child,
            readers: [a, b],
            exited,
            closed,
        } = self;
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
                    let code = status.map(crate::exit_code).unwrap_or(-1);
                    return Some(Event::Exited { code });
                }
            }
        }
    }
}

async fn read_some(reader: &mut Option<Reader>) -> Option<Event> {
    let r = reader.as_mut()?;
    let data = r.read().await?;
    Some(Event::Output {
        stream: r.kind,
        data,
    })
}
