//! Starting a child: argv lookup in the child's own `PATH`, a complete
//! environment, its own process group (pipes) or session with a controlling
//! terminal (PTY).

use crate::events::{Limits, ProcessEvents, Reader, StreamKind};
use crate::group::ProcessGroup;
use crate::pty::{self, PtyControl, PtySize};
use crate::resolve::resolve_program;
use crate::stdin::StdinWriter;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
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
}

/// Spawns a child. Must be called from within a tokio runtime.
pub fn spawn(spec: &SpawnSpec) -> Result<Spawned, SpawnError> {
    let (program, args) = spec.argv.split_first().ok_or(SpawnError::EmptyArgv)?;
    let path_var = spec.env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str());
    let resolved = resolve_program(program, path_var, &spec.cwd)?;
    let mut cmd = tokio::process::Command::new(resolved);
    cmd.arg0(spec.arg0.as_deref().unwrap_or(program))
        .args(args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(false);
    match spec.pty {
        None => spawn_piped(cmd, spec.pipe_stdin, spec.limits),
        Some(size) => spawn_pty(cmd, size, spec.limits),
    }
}

fn spawn_piped(mut cmd: tokio::process::Command, pipe_stdin: bool, limits: Limits) -> Result<Spawned, SpawnError> {
    cmd.process_group(0)
        .stdin(if pipe_stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    for pipe in [child.stdout.as_ref().map(AsFd::as_fd), child.stderr.as_ref().map(AsFd::as_fd)].into_iter().flatten() {
        // A larger pipe lets a fast writer run ahead while a chunk is being sent.
        let _ = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_BYTES);
    }
    let pid = child.id().ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
    let stdout = child.stdout.take().map(|p| Reader::pipe(StreamKind::Stdout, Box::new(p)));
    let stderr = child.stderr.take().map(|p| Reader::pipe(StreamKind::Stderr, Box::new(p)));
    let stdin = child.stdin.take().map(StdinWriter::pipe);
    Ok(Spawned {
        pid,
        group: ProcessGroup::new(pid, None)?,
        events: ProcessEvents::new(child, [stdout, stderr], limits),
        stdin,
        pty: None,
    })
}

fn spawn_pty(mut cmd: tokio::process::Command, size: PtySize, limits: Limits) -> Result<Spawned, SpawnError> {
    let pair = pty::open(size)?;
    cmd.stdin(Stdio::from(pair.slave.try_clone()?))
        .stdout(Stdio::from(pair.slave.try_clone()?))
        .stderr(Stdio::from(pair.slave));
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (setsid, ioctl); it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(BorrowedFd::borrow_raw(0))?;
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // The slave copies held by `cmd` are closed here, so EOF arrives once the child's side closes.
    drop(cmd);
    let pid = child.id().ok_or_else(|| io::Error::other("child exited before its pid was read"))?;
    let writer_fd: OwnedFd = rustix::io::fcntl_dupfd_cloexec(&pair.master, 0).map_err(io::Error::from)?;
    let control_fd = Arc::new(rustix::io::fcntl_dupfd_cloexec(&pair.master, 0).map_err(io::Error::from)?);
    pty::set_nonblocking(&pair.master)?;
    let reader = Reader::pty(pty::register(pair.master)?);
    Ok(Spawned {
        pid,
        group: ProcessGroup::new(pid, Some(control_fd.clone()))?,
        events: ProcessEvents::new(child, [Some(reader), None], limits),
        stdin: Some(StdinWriter::pty(pty::register(writer_fd)?)),
        pty: Some(PtyControl::new(control_fd)),
    })
}
