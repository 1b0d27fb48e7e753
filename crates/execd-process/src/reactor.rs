//! Descriptors driven by the tokio reactor (pipes, PTY masters, pidfds).

use rustix::fs::OFlags;
use std::io;
use std::os::fd::OwnedFd;
use tokio::io::unix::AsyncFd;

/// Registers a descriptor with the reactor as it is (pidfds are made non-blocking at creation).
pub(crate) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is a valid open descriptor that stays open, and keeps
    // referring to the same file description, until the `AsyncFd` drops it.
    unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))
}

/// Makes a descriptor non-blocking (a flag of the file description, so shared
/// with its duplicates) and registers it with the reactor.
pub(crate) fn register_nonblocking(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | OFlags::NONBLOCK)?;
    register(fd)
}
