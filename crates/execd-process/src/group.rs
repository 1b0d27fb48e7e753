//! Signalling a child's whole process group.

use rustix::process::Pid;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Signals execd delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT.
    Interrupt,
    /// SIGKILL.
    Kill,
}

impl Signal {
    fn raw(self) -> rustix::process::Signal {
        match self {
            Signal::Interrupt => rustix::process::Signal::INT,
            Signal::Kill => rustix::process::Signal::KILL,
        }
    }
}

/// The process group of a spawned child (its id equals the child's pid).
///
/// The caller must stop signalling once the group can no longer exist (the child
/// reaped and its output closed), since a group id is a pid and pids are reused.
#[derive(Clone, Debug)]
pub struct ProcessGroup {
    pgid: Pid,
    /// The PTY master, for finding the terminal's foreground process group.
    pty: Option<Arc<OwnedFd>>,
}

impl ProcessGroup {
    pub(crate) fn new(pid: u32, pty: Option<Arc<OwnedFd>>) -> io::Result<Self> {
        let pgid = i32::try_from(pid).ok().and_then(Pid::from_raw).ok_or_else(|| io::Error::other("invalid pid"))?;
        Ok(ProcessGroup { pgid, pty })
    }

    /// The group id (the child's pid).
    pub fn id(&self) -> u32 {
        self.pgid.as_raw_nonzero().get() as u32
    }

    /// Sends `sig` to every process of the group. A PTY's interrupt goes to the
    /// terminal's foreground process group, as a typed Ctrl-C would.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        let target = match (&self.pty, sig) {
            (Some(master), Signal::Interrupt) => rustix::termios::tcgetpgrp(&**master).unwrap_or(self.pgid),
            _ => self.pgid,
        };
        match rustix::process::kill_process_group(target, sig.raw()) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
