//! Writing to a child's stdin (a pipe, or the PTY master), and the per-process
//! queue that feeds it in order within a byte budget.

use bytes::Bytes;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// Bytes of stdin one process may have accepted but not yet written. A writer
/// past it waits (in order) until the child has read enough.
pub const STDIN_QUEUE_BYTES: usize = 4 << 20;

/// The writable stdin of a child: a non-blocking pipe or PTY master.
pub struct StdinWriter {
    fd: AsyncFd<OwnedFd>,
    tty: bool,
}

impl StdinWriter {
    pub(crate) fn pipe(fd: AsyncFd<OwnedFd>) -> Self {
        StdinWriter { fd, tty: false }
    }

    pub(crate) fn pty(fd: AsyncFd<OwnedFd>) -> Self {
        StdinWriter { fd, tty: true }
    }

    /// Writes all of `data`, waiting while the child does not read.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|inner| rustix::io::write(inner.get_ref(), rest).map_err(io::Error::from)) {
                Ok(Ok(n)) => rest = &rest[n..],
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Ends the child's input. A pipe is closed. A terminal cannot be closed
    /// without hanging up the child, so it gets a newline and then the
    /// terminal's end-of-file character: the pending line is delivered and
    /// the next read returns end of file.
    pub async fn close(mut self) -> io::Result<()> {
        if !self.tty {
            return Ok(());
        }
        let eof = rustix::termios::tcgetattr(self.fd.get_ref())
            .map(|t| t.special_codes[rustix::termios::SpecialCodeIndex::VEOF])
            .unwrap_or(0x04);
        self.write_all(&[b'\n', eof]).await
    }
}

enum Op {
    Write { data: Bytes, _budget: OwnedSemaphorePermit, done: oneshot::Sender<bool> },
    Close { _budget: OwnedSemaphorePermit, done: oneshot::Sender<bool> },
}

/// An ordered stdin queue with a byte budget, served by one task.
///
/// Writes and the close take effect in the order [`queue`](Self::queue) and
/// [`close`](Self::close) were first polled; each waits for budget first (the
/// budget is fair, so nothing overtakes). A failed write ends the queue.
#[derive(Clone)]
pub struct StdinFeeder {
    tx: mpsc::UnboundedSender<Op>,
    budget: Arc<Semaphore>,
}

/// Resolves to whether the queued bytes (or the close) reached the child.
pub type Delivered = std::pin::Pin<Box<dyn Future<Output = bool> + Send>>;

impl StdinFeeder {
    /// Starts the task that feeds `writer`. Must be called within a tokio runtime.
    pub fn start(mut writer: StdinWriter) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Op>();
        tokio::spawn(async move {
            while let Some(op) = rx.recv().await {
                match op {
                    Op::Write { data, _budget, done } => {
                        let ok = writer.write_all(&data).await.is_ok();
                        let _ = done.send(ok);
                        if !ok {
                            return;
                        }
                    }
                    Op::Close { _budget, done } => {
                        let _ = done.send(writer.close().await.is_ok());
                        return;
                    }
                }
            }
        });
        StdinFeeder { tx, budget: Arc::new(Semaphore::new(STDIN_QUEUE_BYTES)) }
    }

    /// Queues `data` behind everything queued before; waits while the budget is spent.
    pub async fn queue(&self, data: Bytes) -> Delivered {
        let want = u32::try_from(data.len().clamp(1, STDIN_QUEUE_BYTES)).unwrap_or(u32::MAX);
        let Ok(budget) = self.budget.clone().acquire_many_owned(want).await else {
            return Box::pin(std::future::ready(false));
        };
        let (done, rx) = oneshot::channel();
        self.send(Op::Write { data, _budget: budget, done }, rx)
    }

    /// Queues the end of input behind everything queued before.
    pub async fn close(&self) -> Delivered {
        let Ok(budget) = self.budget.clone().acquire_owned().await else {
            return Box::pin(std::future::ready(false));
        };
        let (done, rx) = oneshot::channel();
        self.send(Op::Close { _budget: budget, done }, rx)
    }

    fn send(&self, op: Op, rx: oneshot::Receiver<bool>) -> Delivered {
        let queued = self.tx.send(op).is_ok();
        Box::pin(async move { queued && rx.await.unwrap_or(false) })
    }
}
