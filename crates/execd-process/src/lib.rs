//! Process spawning for execd, independent of any wire protocol.
//!
//! - [`spawn`] starts a child in its own process group (pipes) or its own session
//!   with a controlling pseudo-terminal (PTY), with a complete environment.
//! - [`ProcessEvents`] is owned by exactly one task, which drives it with
//!   [`ProcessEvents::next`]: output chunks, then one `Exited`, then one `Closed`
//!   (child reaped *and* every output stream at EOF). The child is always reaped.
//!   [`Limits`] add per-stream output caps, a timeout and a drain window.
//! - [`StdinWriter`] writes the child's stdin (pipe or PTY master);
//!   [`StdinFeeder`] queues writes and the close in order, within a byte budget.
//! - [`PtyControl`] resizes a child's terminal.
//! - [`ProcessGroup`] signals the whole group.
//! - [`OutputRing`] retains the most recent output within a byte budget.

mod events;
mod group;
mod pty;
mod resolve;
mod ring;
mod spawn;
mod stdin;

pub use events::{Event, Limits, ProcessEvents, StreamKind, CHUNK_BYTES};
pub use group::{ProcessGroup, Signal};
pub use pty::{PtyControl, PtySize};
pub use resolve::{resolve_program, DEFAULT_PATH};
pub use ring::{OutputRing, RetainedChunk};
pub use spawn::{spawn, SpawnError, SpawnSpec, Spawned};
pub use stdin::{Delivered, StdinFeeder, StdinWriter, STDIN_QUEUE_BYTES};

/// The exit code a shell would report: the status, or 128 + the signal number.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}
