//! The app-server process dialect's domain: the connection-scoped tables of
//! `process/*` handles and `command/exec` ids, and the processes in them.
//!
//! Each process is owned by one task ([`run`]); handlers act on it through
//! [`AppProcess`]. A process leaves its table at the moment its final message
//! is queued (never later), so a client that saw `process/exited` (or the
//! `command/exec` response) can always reuse the id at once. Replies that must
//! precede the final message (kill, closing stdin) hold it back until they
//! are queued. Closing the connection kills every process group it started.

mod run;
pub mod text;

pub use run::{Finish, Outcome, Start};

use crate::dispatch::AfterReply;
use crate::session::{lock, Outbound};
use bytes::Bytes;
use execd_process::{ProcessTree, PtyControl, PtySize, SpawnError, StdinFeeder};
use execd_protocol::app::{debug_quoted, json_quoted};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::oneshot;

/// The two families of the dialect; their ids live in separate namespaces and
/// their error texts differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `process/*`, addressed by `processHandle`.
    Process,
    /// `command/exec*`, addressed by `processId`.
    Command,
}

impl Family {
    /// An id quoted the way this family's errors quote it.
    fn quote(self, id: &str) -> String {
        match self {
            Family::Process => debug_quoted(id),
            Family::Command => json_quoted(id),
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Family::Process => "process",
            Family::Command => "command/exec",
        }
    }
}

/// Errors of the dialect's process domain.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No such id on this connection.
    #[error("{}", match .0 {
        Family::Process => format!("no active process for process handle {}", .0.quote(.1)),
        Family::Command => format!("no active command/exec for process id {}", .0.quote(.1)),
    })]
    Unknown(Family, String),
    /// The process exited; its final message is not sent yet.
    #[error("{} {} is no longer running", .0.noun(), .0.quote(.1))]
    NotRunning(Family, String),
    /// The id is in use.
    #[error("{}", match .0 {
        Family::Process => format!("duplicate active process handle: {}", .0.quote(.1)),
        Family::Command => format!("duplicate active command/exec process id: {}", .0.quote(.1)),
    })]
    Duplicate(Family, String),
    /// Stdin was not streamed.
    #[error("stdin streaming is not enabled for this {}", .0.noun())]
    StdinNotStreamed(Family),
    /// Stdin was closed before.
    #[error("stdin is already closed")]
    StdinClosed,
    /// Resize of a process without a terminal.
    #[error("failed to resize PTY: process is not attached to a PTY")]
    NotPty,
    /// The terminal refused the size.
    #[error("failed to resize PTY: {}", crate::error::os_message(.0))]
    Resize(std::io::Error),
    /// The operating system refused to start the process.
    #[error("failed to spawn {}: {}", spawn_noun(*.0), spawn_detail(.1, .2))]
    Spawn(Family, bool, SpawnError),
}

fn spawn_noun(family: Family) -> &'static str {
    match family {
        Family::Process => "process",
        Family::Command => "command",
    }
}

fn spawn_detail(pty: &bool, e: &SpawnError) -> String {
    match e {
        SpawnError::Io(io) => crate::error::os_message(io),
        SpawnError::EmptyArgv => format!("missing program for {} spawn", if *pty { "PTY" } else { "pipe" }),
    }
}

/// A table key: a client id, or an internal one for a `command/exec` without `processId`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Client(String),
    Internal(u64),
}

enum Stdin {
    /// Not streamed: `/dev/null`.
    Off,
    Open(StdinFeeder),
    Closed,
}

struct ProcState {
    /// False once the child exited (its output may still be draining).
    running: bool,
    stdin: Stdin,
    pty: Option<PtyControl>,
    /// The process's descendants; dropping the process kills what is left of them.
    tree: Arc<ProcessTree>,
    /// Replies that must be queued before the final message.
    held: Vec<oneshot::Receiver<()>>,
}

/// One process of the dialect, as handlers see it.
pub struct AppProcess {
    family: Family,
    key: Key,
    state: Mutex<ProcState>,
}

impl AppProcess {
    fn id(&self) -> &str {
        match &self.key {
            Key::Client(id) => id,
            Key::Internal(_) => "",
        }
    }

    /// Holds the final message back until the returned trigger fires.
    fn hold(st: &mut ProcState) -> AfterReply {
        let (tx, rx) = oneshot::channel();
        st.held.push(rx);
        tx
    }

    /// Queues `data` for stdin, then closes it if asked. The future resolves
    /// once everything is queued (in request order, within the stdin budget).
    /// Closing holds the final message until the reply is queued.
    pub fn write(
        &self,
        data: Bytes,
        close: bool,
    ) -> Result<(impl Future<Output = ()> + Send + 'static, Option<AfterReply>), AppError> {
        let mut st = lock(&self.state);
        if !st.running {
            return Err(AppError::NotRunning(self.family, self.id().to_owned()));
        }
        let feeder = match &st.stdin {
            Stdin::Off => return Err(AppError::StdinNotStreamed(self.family)),
            Stdin::Closed if data.is_empty() => None,
            Stdin::Closed => return Err(AppError::StdinClosed),
            Stdin::Open(feeder) => Some(feeder.clone()),
        };
        let after = match (&feeder, close) {
            (Some(_), true) => {
                st.stdin = Stdin::Closed;
                Some(Self::hold(&mut st))
            }
            _ => None,
        };
        Ok((
            async move {
                if let Some(feeder) = feeder {
                    if !data.is_empty() {
                        let _delivered = feeder.queue(data).await;
                    }
                    if close {
                        let _delivered = feeder.close().await;
                    }
                }
            },
            after,
        ))
    }

    /// Resizes the terminal.
    pub fn resize(&self, size: PtySize) -> Result<(), AppError> {
        let st = lock(&self.state);
        if !st.running {
            return Err(AppError::NotRunning(self.family, self.id().to_owned()));
        }
        st.pty.as_ref().ok_or(AppError::NotPty)?.resize(size).map_err(AppError::Resize)
    }

    /// SIGKILLs the process group; the final message waits for the reply.
    pub fn kill(&self) -> Result<AfterReply, AppError> {
        let mut st = lock(&self.state);
        if !st.running {
            return Err(AppError::NotRunning(self.family, self.id().to_owned()));
        }
        st.tree.kill();
        Ok(Self::hold(&mut st))
    }
}

/// One app-server dialect connection: its options and its two process tables.
pub struct AppConnection {
    /// `capabilities.experimentalApi` of `initialize`.
    pub experimental_api: bool,
    opted_out: HashSet<String>,
    /// `None` once the connection closed: nothing more is sent.
    outbound: Mutex<Option<Outbound>>,
    tables: [Mutex<HashMap<Key, Arc<AppProcess>>>; 2],
    next_internal: Mutex<u64>,
}

impl AppConnection {
    /// The state of a freshly initialized connection.
    pub fn new(experimental_api: bool, opted_out: Vec<String>, outbound: Outbound) -> Arc<Self> {
        Arc::new(AppConnection {
            experimental_api,
            opted_out: opted_out.into_iter().collect(),
            outbound: Mutex::new(Some(outbound)),
            tables: Default::default(),
            next_internal: Mutex::new(0),
        })
    }

    fn table(&self, family: Family) -> &Mutex<HashMap<Key, Arc<AppProcess>>> {
        &self.tables[family as usize]
    }

    /// The connection's queue, while it is open.
    fn outbound(&self) -> Option<Outbound> {
        lock(&self.outbound).clone()
    }

    /// Whether the client wants notifications of `method`.
    fn wants(&self, method: &str) -> bool {
        !self.opted_out.contains(method)
    }

    /// The process under a client id.
    pub fn lookup(&self, family: Family, id: &str) -> Result<Arc<AppProcess>, AppError> {
        lock(self.table(family))
            .get(&Key::Client(id.to_owned()))
            .cloned()
            .ok_or_else(|| AppError::Unknown(family, id.to_owned()))
    }

    /// Spawns a process and registers it (under `start.id`, or an internal id).
    /// Its events are held back until the returned trigger fires (or drops).
    pub fn start(self: &Arc<Self>, start: Start) -> Result<AfterReply, AppError> {
        let family = start.family;
        let key = match &start.id {
            Some(id) => Key::Client(id.clone()),
            None => {
                let mut next = lock(&self.next_internal);
                *next += 1;
                Key::Internal(*next)
            }
        };
        let mut table = lock(self.table(family));
        if let Key::Client(id) = &key {
            if table.contains_key(&key) {
                return Err(AppError::Duplicate(family, id.clone()));
            }
        }
        let pty = start.spec.pty.is_some();
        if start.spec.argv.first().is_some_and(String::is_empty) {
            // The OS is not asked to run a program without a name.
            return Err(AppError::Spawn(family, pty, SpawnError::EmptyArgv));
        }
        let spawned = execd_process::spawn(&start.spec).map_err(|e| AppError::Spawn(family, pty, e))?;
        let process = Arc::new(AppProcess {
            family,
            key: key.clone(),
            state: Mutex::new(ProcState {
                running: true,
                stdin: match spawned.stdin {
                    Some(writer) if start.stream_stdin => Stdin::Open(StdinFeeder::start(writer)),
                    _ => Stdin::Off,
                },
                pty: spawned.pty,
                tree: spawned.tree,
                held: Vec::new(),
            }),
        });
        table.insert(key, process.clone());
        drop(table);
        let (release, released) = oneshot::channel();
        tokio::spawn(run::own(self.clone(), process, spawned.events, start, released));
        Ok(release)
    }

    /// Removes a process from its table if it is still the registered one.
    fn release(&self, process: &Arc<AppProcess>) {
        let mut table = lock(self.table(process.family));
        if table.get(&process.key).is_some_and(|p| Arc::ptr_eq(p, process)) {
            table.remove(&process.key);
        }
    }

    /// The connection ended: nothing more is sent, and every process group dies.
    pub fn close(&self) {
        lock(&self.outbound).take();
        self.kill_all();
    }

    /// SIGKILLs every process group of this connection.
    pub fn kill_all(&self) {
        for table in &self.tables {
            for p in lock(table).values() {
                lock(&p.state).tree.kill();
            }
        }
    }
}

/// Every app-server dialect connection of the server, for shutdown.
#[derive(Default)]
pub struct AppRegistry {
    connections: Mutex<Vec<Weak<AppConnection>>>,
}

impl AppRegistry {
    /// Remembers a connection (and forgets those that ended).
    pub fn add(&self, conn: &Arc<AppConnection>) {
        let mut all = lock(&self.connections);
        all.retain(|c| c.strong_count() > 0);
        all.push(Arc::downgrade(conn));
    }

    /// Kills every process of every connection (server shutdown).
    pub fn kill_everything(&self) {
        for conn in lock(&self.connections).iter().filter_map(Weak::upgrade) {
            conn.kill_all();
        }
    }
}
