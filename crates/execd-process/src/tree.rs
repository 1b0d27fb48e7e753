//! Containment of a child's whole descendant tree, so that it can be killed
//! as one, including descendants that left the process group (`setsid`,
//! double fork).
//!
//! Where a cgroup v2 hierarchy is writable, every child is born in a cgroup
//! of its own (`<execd's cgroup>/execd-<pid>/<n>`; the server visits it for
//! the spawn, see [`Visit`]), and `cgroup.kill` ends everything in it.
//! Otherwise the tree is found by walking `/proc` for the child's process
//! group, session and descendants by parent pid; with execd a child subreaper
//! (see [`crate::reap_orphans`]) orphans stay our descendants, so only an
//! orphan that also left the session can escape. [`containment`] tells which
//! mode is in effect.

use rustix::process::{Pid, Signal};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// How descendant trees are contained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Containment {
    /// One cgroup v2 per process: exact.
    Cgroup,
    /// Process group, session and parent links: best effort.
    ProcessTree,
}

static DISABLE_CGROUPS: AtomicBool = AtomicBool::new(false);
/// The server could not leave a child's cgroup: no cgroup is ever killed again.
static STRANDED: AtomicBool = AtomicBool::new(false);
static HOME: OnceLock<Option<OwnedFd>> = OnceLock::new();
static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
static NEXT: AtomicU64 = AtomicU64::new(1);
/// Cgroups killed but not yet removed (their processes were still exiting).
static GRAVEYARD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Empty cgroups ready for the next child.
static FREE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Most empty cgroups kept for reuse.
const FREE_CGROUPS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Never use cgroups (call before the first spawn); for hosts where they misbehave, and for tests.
pub fn disable_cgroups() {
    DISABLE_CGROUPS.store(true, Ordering::Relaxed);
}

/// The containment new children get.
pub fn containment() -> Containment {
    if base().is_some() {
        Containment::Cgroup
    } else {
        Containment::ProcessTree
    }
}

/// `<cgroup2 mount><execd's cgroup>/execd-<pid>`, created on first use; `None` when unusable.
fn base() -> Option<&'static Path> {
    if DISABLE_CGROUPS.load(Ordering::Relaxed) {
        return None;
    }
    BASE.get_or_init(|| {
        if DISABLE_CGROUPS.load(Ordering::Relaxed) {
            return None;
        }
        let parent = own_cgroup_dir()?;
        let home = File::options().write(true).open(parent.join("cgroup.procs")).ok().map(OwnedFd::from);
        if HOME.set(home).is_err() || self::home().is_none() {
            return None;
        }
        remove_stale(&parent);
        let dir = parent.join(format!("execd-{}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(dir),
            Err(e) => {
                warn_fallback(&format!("cgroup containment unavailable ({}): {e}", dir.display()));
                None
            }
        }
    })
    .as_deref()
}

/// Cgroups are optional; say once on stderr why they are not used.
fn warn_fallback(msg: &str) {
    let _ = writeln!(io::stderr(), "execd: {msg}; falling back to process-tree containment");
}

/// The directory of this process's cgroup in the cgroup v2 hierarchy.
fn own_cgroup_dir() -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (fields, rest) = line.split_once(" - ")?;
        (rest.split_whitespace().next()? == "cgroup2").then(|| fields.split_whitespace().nth(4).map(PathBuf::from))?
    })?;
    Some(mount.join(own.trim_start_matches('/')))
}

/// Kills and removes the `execd-<pid>` cgroups of execd processes that are gone.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("execd-")).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let alive = Pid::from_raw(pid).is_some_and(|p| rustix::process::test_kill_process(p).is_ok());
        if alive && pid != std::process::id() as i32 {
            continue;
        }
        let dir = entry.path();
        if let Ok(children) = std::fs::read_dir(&dir) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                kill_cgroup(&child.path());
                bury(child.path());
            }
        }
        bury(dir);
    }
}

/// Removes a cgroup now, or later once its last process is gone.
fn bury(dir: PathBuf) {
    if std::fs::remove_dir(&dir).is_err() {
        lock(&GRAVEYARD).push(dir);
    }
}

/// Retries removing killed cgroups.
pub(crate) fn sweep() {
    lock(&GRAVEYARD).retain(|dir| std::fs::remove_dir(dir).is_err_and(|e| e.kind() != io::ErrorKind::NotFound));
}

/// Kills everything in execd's cgroups and removes them, waiting up to
/// `patience` for the processes to die (server shutdown). Blocks the thread.
pub fn remove_cgroups(patience: std::time::Duration) {
    let Some(Some(base)) = BASE.get() else { return };
    // No spawn may visit a cgroup while they are being killed.
    let _no_spawns = crate::child::registry();
    lock(&FREE).clear();
    let deadline = std::time::Instant::now() + patience;
    loop {
        if let Ok(children) = std::fs::read_dir(base) {
            for child in children.flatten().filter(|c| c.path().is_dir()) {
                kill_cgroup(&child.path());
                let _ = std::fs::remove_dir(child.path());
            }
        }
        sweep();
        if std::fs::remove_dir(base).is_ok() || std::time::Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// SIGKILLs everything in a cgroup (`cgroup.kill`, or one by one on kernels before 5.14).
fn kill_cgroup(dir: &Path) {
    if STRANDED.load(Ordering::Relaxed) {
        return;
    }
    if std::fs::write(dir.join("cgroup.kill"), b"1").is_ok() {
        return;
    }
    for _ in 0..3 {
        let pids = cgroup_pids(dir).unwrap_or_default();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
        }
    }
}

/// The processes in a cgroup; `None` when it cannot be read.
fn cgroup_pids(dir: &Path) -> Option<Vec<Pid>> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    Some(procs.lines().filter_map(|l| l.trim().parse().ok()).filter_map(Pid::from_raw).collect())
}

/// A new child's cgroup, made before the fork.
pub(crate) struct NewCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, which the server writes `0` to when it visits for a spawn.
    pub(crate) procs: OwnedFd,
}

impl NewCgroup {
    /// A fresh cgroup for one child, or `None` when cgroups are not in use.
    /// An empty cgroup left by an earlier process is reused: making and
    /// removing cgroups costs the kernel far more than the spawn itself.
    pub(crate) fn create() -> Option<NewCgroup> {
        let base = base()?;
        let reused = lock(&FREE).pop();
        let dir = match reused {
            Some(dir) => dir,
            None => {
                let dir = base.join(NEXT.fetch_add(1, Ordering::Relaxed).to_string());
                std::fs::create_dir(&dir).ok()?;
                dir
            }
        };
        match File::options().write(true).open(dir.join("cgroup.procs")) {
            Ok(file) => Some(NewCgroup { dir, procs: OwnedFd::from(file) }),
            Err(_) => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// Removes the cgroup of a spawn that failed.
    pub(crate) fn discard(self) {
        bury(self.dir);
    }
}

/// The server visiting a child's cgroup for the length of one spawn, so that
/// the child is born there: `posix_spawn` (fast, no page-table copy) cannot
/// place a child itself, and a move after the spawn would race with the
/// child's first forks. Leaving goes back to the server's own cgroup.
pub(crate) struct Visit(());

impl Visit {
    /// Moves this whole process into `cgroup`. Spawns hold the registry lock,
    /// so only one visit happens at a time.
    pub(crate) fn enter(cgroup: &NewCgroup) -> io::Result<Visit> {
        if home().is_none() {
            return Err(io::Error::other("execd's own cgroup is not writable"));
        }
        rustix::io::write(cgroup.procs.as_fd(), b"0")?;
        Ok(Visit(()))
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        if let Some(home) = home() {
            for _ in 0..3 {
                if rustix::io::write(home.as_fd(), b"0").is_ok() {
                    return;
                }
            }
        }
        // Never kill a cgroup the server may still be in.
        warn_fallback("could not return to execd's own cgroup");
        DISABLE_CGROUPS.store(true, Ordering::Relaxed);
        STRANDED.store(true, Ordering::Relaxed);
    }
}

/// `cgroup.procs` of the server's own cgroup.
fn home() -> Option<&'static OwnedFd> {
    HOME.get().and_then(Option::as_ref)
}

/// The hierarchy would not take a child: use no cgroups from now on.
pub(crate) fn cgroups_refused() {
    if !DISABLE_CGROUPS.swap(true, Ordering::Relaxed) {
        warn_fallback("the cgroup v2 hierarchy refused a child");
    }
}

/// The descendant tree of one spawned child.
#[derive(Debug)]
pub struct ProcessTree {
    /// The child's pid: its process group id (and session id, for a PTY child).
    leader: Pid,
    cgroup: Option<PathBuf>,
    /// The leader was reaped and its output closed: its ids may be reused, so
    /// the process-tree mode no longer signals by them.
    retired: AtomicBool,
}

impl ProcessTree {
    pub(crate) fn new(leader: Pid, cgroup: Option<NewCgroup>) -> Self {
        ProcessTree { leader, cgroup: cgroup.map(|c| c.dir), retired: AtomicBool::new(false) }
    }

    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// SIGKILLs every process of the tree.
    pub fn kill(&self) {
        self.signal(Signal::KILL);
    }

    /// Sends `sig` to every process of the tree.
    pub fn signal(&self, sig: Signal) {
        if let Some(dir) = &self.cgroup {
            // The group too, for anything forked before the child entered its cgroup.
            if !self.retired.load(Ordering::Relaxed) {
                let _ = rustix::process::kill_process_group(self.leader, sig);
            }
            if sig == Signal::KILL {
                kill_cgroup(dir);
            } else {
                for pid in cgroup_pids(dir).unwrap_or_default() {
                    let _ = rustix::process::kill_process(pid, sig);
                }
            }
            return;
        }
        if self.retired.load(Ordering::Relaxed) {
            return;
        }
        // The tree is found before anything is signalled: a killed parent's
        // children are re-parented at once, which would hide them from the walk.
        // A second round catches what was forked meanwhile.
        for _ in 0..2 {
            let members = descendants(self.leader);
            let _ = rustix::process::kill_process_group(self.leader, sig);
            for pid in members {
                let _ = rustix::process::kill_process(pid, sig);
            }
        }
    }
}

impl Drop for ProcessTree {
    /// Whatever is left of the tree dies with it. An empty cgroup goes back to
    /// the pool for the next child; one with survivors is killed and removed.
    fn drop(&mut self) {
        let Some(dir) = self.cgroup.take() else { return };
        let empty = cgroup_pids(&dir).is_some_and(|pids| pids.is_empty());
        if empty {
            let mut free = lock(&FREE);
            if free.len() < FREE_CGROUPS {
                free.push(dir);
                return;
            }
            drop(free);
            bury(dir);
        } else {
            kill_cgroup(&dir);
            bury(dir);
        }
    }
}

/// The fields of `/proc/<pid>/stat` that tree walking needs.
pub(crate) struct ProcStat {
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pgrp: i32,
    session: i32,
}

impl ProcStat {
    pub(crate) fn read(pid: i32) -> Option<ProcStat> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold anything, even ") "; the fields follow its last ')'.
        let mut fields = stat.get(stat.rfind(')')? + 2..)?.split(' ');
        let state = fields.next()?.chars().next()?;
        let mut num = || fields.next()?.parse::<i32>().ok();
        Some(ProcStat { state, ppid: num()?, pgrp: num()?, session: num()? })
    }
}

/// Every process of the host (of execd's pid namespace), read from `/proc`.
pub(crate) fn processes() -> impl Iterator<Item = (i32, ProcStat)> {
    std::fs::read_dir("/proc").into_iter().flatten().filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        Some((pid, ProcStat::read(pid)?))
    })
}

/// Processes in `leader`'s group or session, and their descendants by parent pid.
fn descendants(leader: Pid) -> Vec<Pid> {
    let leader = leader.as_raw_nonzero().get();
    let all: Vec<(i32, ProcStat)> = processes().collect();
    let mut tree: Vec<i32> = all
        .iter()
        .filter(|(pid, s)| *pid == leader || s.pgrp == leader || s.session == leader)
        .map(|(pid, _)| *pid)
        .collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for (pid, s) in &all {
            if s.ppid == parent && !tree.contains(pid) {
                tree.push(*pid);
            }
        }
        i += 1;
    }
    tree.into_iter().filter_map(Pid::from_raw).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let me = std::process::id() as i32;
        let stat = ProcStat::read(me).expect("own stat");
        assert_eq!(stat.ppid, rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get()));
        assert_eq!(stat.pgrp, rustix::process::getpgrp().as_raw_nonzero().get());
        assert!("RSD".contains(stat.state), "{}", stat.state);
    }
}
