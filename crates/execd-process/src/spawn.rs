//! Starting a child: argv lookup in the child's own `PATH`, a complete
//! environment, its own process group (pipes) or session with a controlling
//! terminal (PTY).

use crate::child::{registry, Child};
use crate::events::{Limits, ProcessEvents, Reader, StreamKind};
use crate::group::ProcessGroup;
use crate::pty::{self, PtyControl, PtySize};
use crate::reactor::{register, register_nonblocking};
use crate::resolve::resolve_program;
use crate::stdin::StdinWriter;
use crate::tree::{NewCgroup, ProcessTree};
use rustix::process::Pid;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

/// Kernel buffer requested for output pipes.
const PIPE_BYTES: usize = 1 << 20;

/// What to run and how.
#[derive(Clone, Debug, Default)]
pub struct SpawnSpec {
    /// Program and arguments; a program without `/` is searched in `env`'s `PATH`.
    pub argv: Vec<String>,
    /// Overrides the `argv[0]` the program sees.
    pub arg0: Option<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The complete environment of the child (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Give a non-tty child a writable stdin pipe (otherwise `/dev/null`).
    pub pipe_stdin: bool,
    /// Run under a new PTY of this size (stdout and stderr merged).
    pub pty: Option<PtySize>,
    /// Caps, timeout and drain window the event stream enforces.
    pub limits: Limits,
}

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// `argv` was empty.
    #[error("argv must not be empty")]
    EmptyArgv,
    /// The operating system refused (program or cwd missing, not executable, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A running child and the means to drive it.
pub struct Spawned {
    /// The child's pid (also its process group id).
    pub pid: u32,
    /// Output and lifecycle events; give it to the one task that owns the process.
    pub events: ProcessEvents,
    /// The child's stdin, when it has a writable one (PTY, or `pipe_stdin`).
    pub stdin: Option<StdinWriter>,
    /// The child's process group.
    pub group: ProcessGroup,
    /// The child's terminal, for a PTY child.
    pub pty: Option<PtyControl>,
    /// The child's whole descendant tree. Dropping the last reference kills
    /// what is left of it (keep it as long as the process is known).
    pub tree: Arc<ProcessTree>,
}

/// The command for one spawn. A PTY child starts a session on its terminal
/// before `exec` (which needs a `fork`); a pipe child needs no code before
/// `exec`, so std uses the much cheaper `posix_spawn` (no copy of the
/// server's page tables). The slave copies the command holds close when it
/// is dropped, so EOF arrives once the child's side closes.
fn command(
    spec: &SpawnSpec,
    resolved: &std::path::Path,
    program: &str,
    args: &[String],
    pty: Option<&pty::PtyPair>,
) -> io::Result<Command> {
    let mut cmd = Command::new(resolved);
    cmd.arg0(spec.arg0.as_deref().unwrap_or(program))
        .args(args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)));
    match pty {
        None => {
            cmd.process_group(0)
                .stdin(if spec.pipe_stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        Some(pair) => {
            cmd.stdin(Stdio::from(pair.slave.try_clone()?))
                .stdout(Stdio::from(pair.slave.try_clone()?))
                .stderr(Stdio::from(pair.slave.try_clone()?));
            // SAFETY: the closure runs in the forked child before exec and makes only
            // async-signal-safe system calls (setsid, ioctl); it allocates nothing.
            unsafe {
                cmd.pre_exec(|| {
                    rustix::process::setsid()?;
                    rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
                    Ok(())
                });
            }
        }
    }
    Ok(cmd)
}

/// Spawns a child. Must be called from within a tokio runtime.
///
/// The child is waited for through its pidfd by its [`ProcessEvents`]; where
/// cgroups are in use it runs in a cgroup of its own (see [`ProcessTree`]).
pub fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let (program, args) = spec.argv.split_first().ok_or(SpawnError::EmptyArgv)?;
    let path_var = spec.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    let resolved = resolve_program(program, path_var, &spec.cwd)?;
    let pty = spec.pty.map(pty::open).transpose()?;
    let mut cmd = command(spec, &resolved, program, args, pty.as_ref())?;
    // The registry lock is held from the fork until the child is registered;
    // it also keeps spawns one at a time while the server visits a child's cgroup.
    let mut children = registry();
    let mut cgroup = NewCgroup::create();
    // The child is born in its cgroup: the server steps into it for the spawn.
    let visit = match cgroup.as_ref().map(crate::tree::Visit::enter).transpose() {
        Ok(visit) => visit,
        Err(_) => {
            if let Some(refused) = cgroup.take() {
                refused.discard();
            }
            crate::tree::cgroups_refused();
            None
        }
    };
    let spawned = cmd.spawn();
    drop(visit);
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            drop(children);
            if let Some(cgroup) = cgroup {
                cgroup.discard();
            }
            return Err(e.into());
        }
    };
    let waiter = Child::register(child.id(), &mut children);
    drop(children);
    let waiter = waiter.inspect_err(|_| {
        let _ = child.kill();
        let _ = child.wait();
    })?;
    let pid = waiter.pid();
    let leader = Pid::from_raw(pid).ok_or_else(|| io::Error::other("invalid pid"))?;
    let tree = Arc::new(ProcessTree::new(leader, cgroup));
    match pty {
        None => {
            let reader = |fd: Option<OwnedFd>, kind| -> io::Result<Option<Reader>> {
                let Some(fd) = fd else { return Ok(None) };
                // A larger pipe lets a fast writer run ahead while a chunk is being sent.
                let _ = rustix::pipe::fcntl_setpipe_size(&fd, PIPE_BYTES);
                Ok(Some(Reader::new(kind, register_nonblocking(fd)?)))
            };
            let stdout = reader(child.stdout.take().map(OwnedFd::from), StreamKind::Stdout)?;
            let stderr = reader(child.stderr.take().map(OwnedFd::from), StreamKind::Stderr)?;
            let stdin =
                child.stdin.take().map(|fd| register_nonblocking(fd.into()).map(StdinWriter::pipe)).transpose()?;
            Ok(Spawned {
                pid: pid as u32,
                group: ProcessGroup::new(pid as u32, None)?,
                events: ProcessEvents::new(waiter, tree.clone(), [stdout, stderr], spec.limits),
                stdin,
                pty: None,
                tree,
            })
        }
        Some(pair) => {
            let writer_fd: OwnedFd = rustix::io::fcntl_dupfd_cloexec(&pair.master, 0).map_err(io::Error::from)?;
            let control_fd = Arc::new(rustix::io::fcntl_dupfd_cloexec(&pair.master, 0).map_err(io::Error::from)?);
            drop(pair.slave);
            // Non-blocking is a flag of the file description: the writer's duplicate shares it.
            let reader = Reader::new(StreamKind::Pty, register_nonblocking(pair.master)?);
            Ok(Spawned {
                pid: pid as u32,
                group: ProcessGroup::new(pid as u32, Some(control_fd.clone()))?,
                events: ProcessEvents::new(waiter, tree.clone(), [Some(reader), None], spec.limits),
                stdin: Some(StdinWriter::pty(register(writer_fd)?)),
                pty: Some(PtyControl::new(control_fd)),
                tree,
            })
        }
    }
}
