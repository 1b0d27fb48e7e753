//! Writing to a child's stdin: a pipe, or the PTY master.

use std::io;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncWriteExt;

enum Sink {
    Pipe(tokio::process::ChildStdin),
    Pty(AsyncFd<OwnedFd>),
}

/// The writable stdin of a child.
pub struct StdinWriter {
    sink: Sink,
}

impl StdinWriter {
    pub(crate) fn pipe(p: tokio::process::ChildStdin) -> Self {
        StdinWriter { sink: Sink::Pipe(p) }
    }

    pub(crate) fn pty(fd: AsyncFd<OwnedFd>) -> Self {
        StdinWriter { sink: Sink::Pty(fd) }
    }

    /// Writes all of `data`, waiting while the child does not read.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.sink {
            Sink::Pipe(p) => p.write_all(data).await,
            Sink::Pty(fd) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let mut guard = fd.writable().await?;
                    match guard.try_io(|inner| rustix::io::write(inner.get_ref(), rest).map_err(io::Error::from)) {
                        Ok(Ok(n)) => rest = &rest[n..],
                        Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                        Ok(Err(e)) => return Err(e),
                        Err(_would_block) => {}
                    }
                }
                Ok(())
            }
        }
    }
}
