//! Waiting for children, and reaping orphans, without ever stealing a status.
//!
//! Each child is waited for through its own pidfd (`waitid(P_PIDFD)`), so its
//! status goes to its owner and nobody else. Children that are not ours but
//! were handed to us (execd is PID 1 or a child subreaper, and a descendant's
//! parent died) are reaped by [`reap_orphans`], which skips every pid in the
//! registry of our own children. Spawning holds the registry lock from the
//! fork until the child is registered, so the orphan reaper can never take a
//! child of ours for an orphan.

use rustix::process::{Pid, WaitIdOptions, WaitIdStatus};
use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use tokio::io::unix::AsyncFd;

/// Pids of children spawned here and not yet reaped by their owner.
static CHILDREN: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// The registry lock; spawning holds it from before the fork until the child is registered.
pub(crate) fn registry() -> MutexGuard<'static, Option<HashSet<i32>>> {
    CHILDREN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a child ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit status, or 128 + the signal number (what a shell reports).
    pub code: i32,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
}

impl ExitStatus {
    fn from_wait(status: &WaitIdStatus) -> Self {
        match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => ExitStatus { code, signal: None },
            (None, Some(sig)) => ExitStatus { code: 128 + sig, signal: Some(sig) },
            (None, None) => ExitStatus { code: -1, signal: None },
        }
    }
}

/// A spawned child, waited for through its pidfd.
pub(crate) struct Child {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl Child {
    /// Registers a just-forked child. `children` is the registry guard held since before the fork.
    pub(crate) fn register(pid: u32, children: &mut Option<HashSet<i32>>) -> io::Result<Self> {
        let raw = i32::try_from(pid).map_err(|_| io::Error::other("invalid pid"))?;
        let pid_t = Pid::from_raw(raw).ok_or_else(|| io::Error::other("invalid pid"))?;
        // The child cannot have been reaped yet (only its owner reaps it), so the pidfd is its own.
        let pidfd = rustix::process::pidfd_open(pid_t, rustix::process::PidfdFlags::NONBLOCK)?;
        children.get_or_insert_with(HashSet::new).insert(raw);
        Ok(Child { pid: raw, pidfd: crate::reactor::register(pidfd)?, status: None })
    }

    /// The child's pid.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the child to exit and reaps it. Cancel-safe; after the first
    /// completion it returns the same status at once.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            let mut guard = self.pidfd.readable().await?;
            let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG;
            match rustix::process::waitid(rustix::process::WaitId::PidFd(guard.get_inner().as_fd()), options) {
                Ok(Some(status)) => {
                    let status = ExitStatus::from_wait(&status);
                    self.status = Some(status);
                    self.forget();
                    return Ok(status);
                }
                Ok(None) => guard.clear_ready(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    self.forget();
                    return Err(e.into());
                }
            }
        }
    }

    fn forget(&self) {
        if let Some(set) = registry().as_mut() {
            set.remove(&self.pid);
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Nobody will wait for it now: let the orphan reaper have it.
            self.forget();
        }
    }
}

/// Makes this process a child subreaper and reaps, until the runtime ends,
/// every child that is not one of ours: descendants orphaned by their parent
/// and re-parented here. Must be called within a tokio runtime; call it once.
pub async fn reap_orphans() -> io::Result<()> {
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
    let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
    loop {
        let zombies = tokio::task::spawn_blocking(zombie_children).await.unwrap_or_default();
        if !zombies.is_empty() {
            let children = registry();
            for pid in zombies {
                if children.as_ref().is_some_and(|set| set.contains(&pid)) {
                    continue;
                }
                if let Some(pid) = Pid::from_raw(pid) {
                    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
                }
            }
        }
        crate::tree::sweep();
        if sigchld.recv().await.is_none() {
            return Ok(());
        }
        // At most one scan of /proc per interval, however many children exit:
        // an orphan stays a zombie for at most this long.
        tokio::time::sleep(ORPHAN_SCAN_INTERVAL).await;
    }
}

/// The least time between two scans for orphaned zombies.
const ORPHAN_SCAN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Pids of this process's children that are zombies, read from `/proc`.
fn zombie_children() -> Vec<i32> {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    crate::tree::processes().filter(|(_, stat)| stat.ppid == me && stat.state == 'Z').map(|(pid, _)| pid).collect()
}
