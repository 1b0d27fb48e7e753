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
//! - [`ProcessGroup`] signals the whole group; [`ProcessTree`] contains every
//!   descendant (a cgroup per child where possible) and kills them all.
//! - Children are reaped through their pidfds; [`reap_orphans`] makes execd a
//!   child subreaper and reaps orphans without stealing any child's status.
//! - [`OutputRing`] retains the most recent output within a byte budget.

mod child;
mod events;
mod group;
mod pty;
mod reactor;
mod resolve;
mod ring;
mod spawn;
mod stdin;
mod tree;

pub use child::{reap_orphans, ExitStatus};
pub use events::{Dropped, Event, Limits, ProcessEvents, StreamKind, CHUNK_BYTES};
pub use group::{signal_name, ProcessGroup, Signal};
pub use pty::{PtyControl, PtySize};
pub use resolve::{resolve_program, DEFAULT_PATH};
pub use ring::{OutputRing, RetainedChunk};
pub use spawn::{spawn, SpawnError, SpawnSpec, Spawned};
pub use stdin::{Delivered, StdinFeeder, StdinWriter, STDIN_QUEUE_BYTES};
pub use tree::{containment, disable_cgroups, remove_cgroups, Containment, ProcessTree};
