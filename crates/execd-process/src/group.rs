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
    /// SIGTERM.
    Terminate,
    /// SIGKILL.
    Kill,
    /// SIGHUP.
    Hangup,
    /// SIGQUIT.
    Quit,
    /// SIGUSR1.
    User1,
    /// SIGUSR2.
    User2,
}

impl Signal {
    /// The operating system's signal.
    pub fn raw(self) -> rustix::process::Signal {
        use rustix::process::Signal as S;
        match self {
            Signal::Interrupt => S::INT,
            Signal::Terminate => S::TERM,
            Signal::Kill => S::KILL,
            Signal::Hangup => S::HUP,
            Signal::Quit => S::QUIT,
            Signal::User1 => S::USR1,
            Signal::User2 => S::USR2,
        }
    }
}

/// The conventional name of a signal number (`SIGKILL`), or `SIG<n>`.
pub fn signal_name(signo: i32) -> String {
    let name = match signo {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        _ => return format!("SIG{signo}"),
    };
    name.to_owned()
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

    /// Sends `sig` to every process of the group. For a PTY child every signal
    /// but SIGKILL goes to the terminal's foreground process group, as a typed
    /// Ctrl-C would.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        let target = match (&self.pty, sig) {
            (_, Signal::Kill) | (None, _) => self.pgid,
            (Some(master), _) => rustix::termios::tcgetpgrp(&**master).unwrap_or(self.pgid),
        };
        match rustix::process::kill_process_group(target, sig.raw()) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
