//! Pseudo-terminal allocation. Both ends are created close-on-exec, so no other
//! child spawned concurrently can inherit them.

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use std::io;
use std::os::fd::OwnedFd;

/// A terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PtySize {
    /// Rows (lines).
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl Default for PtySize {
    /// 24 rows by 80 columns.
    fn default() -> Self {
        PtySize { rows: 24, cols: 80 }
    }
}

/// The server's control of a child's terminal (a duplicate of the PTY master).
#[derive(Clone, Debug)]
pub struct PtyControl {
    master: std::sync::Arc<OwnedFd>,
}

impl PtyControl {
    pub(crate) fn new(master: std::sync::Arc<OwnedFd>) -> Self {
        PtyControl { master }
    }

    /// Resizes the terminal; its foreground process group gets SIGWINCH.
    pub fn resize(&self, size: PtySize) -> io::Result<()> {
        set_size(&self.master, size)
    }
}

/// A freshly allocated PTY pair.
pub(crate) struct PtyPair {
    /// The server's end.
    pub master: OwnedFd,
    /// The child's end (its controlling terminal).
    pub slave: OwnedFd,
}

/// Opens a PTY pair of the given size.
pub(crate) fn open(size: PtySize) -> io::Result<PtyPair> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
    set_size(&master, size)?;
    Ok(PtyPair { master, slave })
}

/// Sets the terminal size (the foreground process group gets SIGWINCH).
pub(crate) fn set_size(fd: &OwnedFd, size: PtySize) -> io::Result<()> {
    let ws = rustix::termios::Winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(fd, ws)?;
    Ok(())
}
