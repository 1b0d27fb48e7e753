//! Sessions: the unit a client attaches to, detaches from and resumes.
//!
//! A session owns its process table. It is attached to at most one connection;
//! while detached its processes keep running and filling their retention rings,
//! and notifications are dropped. A detached session expires after the session
//! TTL (each detach restarts the clock); expiry kills every process group.
//! This module knows nothing of JSON-RPC framing: connections hand it an
//! [`Outbound`] queue and it pushes ready-made notification texts into it.

mod process;

pub use process::{stream_name, ProcessHandle, ReadRequest, ReadSnapshot, StartInfo};

use execd_process::{SpawnError, SpawnSpec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The queue of outgoing message texts of one connection.
pub type Outbound = mpsc::Sender<String>;

/// Timing rules for sessions and processes.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    /// How long a detached session stays resumable.
    pub session_ttl: Duration,
    /// How long a closed process stays readable.
    pub closed_process_ttl: Duration,
}

/// Errors of the session domain.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// `resumeSessionId` names no live session.
    #[error("unknown session id {0}")]
    UnknownSession(String),
    /// The session is attached to another connection.
    #[error("session {0} is already attached to another connection")]
    Busy(String),
    /// A second `initialize` on one connection.
    #[error("initialize may only be sent once per connection")]
    AlreadyInitialized,
    /// No such process in the session.
    #[error("unknown process id {0}")]
    UnknownProcess(String),
    /// The process id is taken by a live or retained process.
    #[error("process {0} already exists")]
    ProcessExists(String),
    /// The operating system refused to start the process.
    #[error("{}", spawn_message(.0))]
    Spawn(#[from] SpawnError),
    /// The process's stdin is gone.
    #[error("failed to write to process stdin")]
    StdinWrite,
    /// A terminal operation on a process without one.
    #[error("process {0} is not a tty")]
    NotATty(String),
    /// The terminal refused the new size.
    #[error("failed to resize the terminal: {}", crate::error::os_message(.0))]
    Resize(std::io::Error),
}

fn spawn_message(e: &SpawnError) -> String {
    match e {
        SpawnError::Io(io) => crate::error::os_message(io),
        other => other.to_string(),
    }
}

/// Locks a mutex, recovering from poisoning (no lock here guards a broken invariant on panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct Attachment {
    /// The attached connection and its queue.
    conn: Option<(u64, Outbound)>,
    /// Bumped at every attach and detach; an expiry timer only acts if it still matches.
    epoch: u64,
    /// The session expired or ended: it can never be attached again.
    ended: bool,
}

/// One session.
pub struct Session {
    id: String,
    config: SessionConfig,
    attachment: Mutex<Attachment>,
    processes: Mutex<HashMap<String, Arc<ProcessHandle>>>,
}

impl Session {
    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The attached connection's queue, if any.
    pub fn outbound(&self) -> Option<Outbound> {
        lock(&self.attachment).conn.as_ref().map(|(_, q)| q.clone())
    }

    /// Looks up a process.
    pub fn process(&self, id: &str) -> Option<Arc<ProcessHandle>> {
        lock(&self.processes).get(id).cloned()
    }

    /// Spawns a process under `id`. Its events are held back until `release` fires
    /// (or is dropped), so the caller can send its reply first.
    pub fn start_process(
        self: &Arc<Self>,
        id: &str,
        spec: &SpawnSpec,
        info: StartInfo,
    ) -> Result<(Arc<ProcessHandle>, oneshot::Sender<()>), SessionError> {
        let mut table = lock(&self.processes);
        if table.contains_key(id) {
            return Err(SessionError::ProcessExists(id.to_owned()));
        }
        let spawned = execd_process::spawn(spec)?;
        let (release, released) = oneshot::channel();
        let handle = ProcessHandle::start(self.clone(), id, spawned, info, released);
        table.insert(id.to_owned(), handle.clone());
        Ok((handle, release))
    }

    /// Removes a closed process once its retention ran out (if it is still the same one).
    fn forget_process(&self, handle: &Arc<ProcessHandle>) {
        let mut table = lock(&self.processes);
        if table.get(handle.id()).is_some_and(|h| Arc::ptr_eq(h, handle)) {
            table.remove(handle.id());
        }
    }

    /// Kills the whole tree of every process of the session.
    pub fn kill_all(&self) {
        for p in lock(&self.processes).values() {
            p.kill_tree();
        }
    }

    /// Every process of the session, ordered by id.
    pub fn processes(&self) -> Vec<Arc<ProcessHandle>> {
        let mut all: Vec<_> = lock(&self.processes).values().cloned().collect();
        all.sort_by(|a, b| a.id().cmp(b.id()));
        all
    }
}

/// All sessions of the server.
pub struct SessionRegistry {
    config: SessionConfig,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    me: Weak<SessionRegistry>,
}

impl SessionRegistry {
    /// An empty registry.
    pub fn new(config: SessionConfig) -> Arc<Self> {
        Arc::new_cyclic(|me| SessionRegistry { config, sessions: Mutex::new(HashMap::new()), me: me.clone() })
    }

    /// Creates a session attached to connection `conn`.
    pub fn create(&self, conn: u64, outbound: Outbound) -> Arc<Session> {
        let id = uuid::Uuid::new_v4().to_string();
        let session = Arc::new(Session {
            id: id.clone(),
            config: self.config,
            attachment: Mutex::new(Attachment { conn: Some((conn, outbound)), epoch: 0, ended: false }),
            processes: Mutex::new(HashMap::new()),
        });
        lock(&self.sessions).insert(id, session.clone());
        session
    }

    /// Re-attaches a detached session to connection `conn`.
    pub fn resume(&self, id: &str, conn: u64, outbound: Outbound) -> Result<Arc<Session>, SessionError> {
        let session =
            lock(&self.sessions).get(id).cloned().ok_or_else(|| SessionError::UnknownSession(id.to_owned()))?;
        let mut att = lock(&session.attachment);
        if att.ended {
            return Err(SessionError::UnknownSession(id.to_owned()));
        }
        if att.conn.is_some() {
            return Err(SessionError::Busy(id.to_owned()));
        }
        att.conn = Some((conn, outbound));
        att.epoch += 1;
        drop(att);
        Ok(session)
    }

    /// Detaches connection `conn` from its session and starts the expiry clock.
    pub fn detach(&self, session: &Arc<Session>, conn: u64) {
        let mut att = lock(&session.attachment);
        if att.conn.as_ref().is_none_or(|(c, _)| *c != conn) {
            return;
        }
        att.conn = None;
        att.epoch += 1;
        let epoch = att.epoch;
        drop(att);
        let registry = self.me.clone();
        let session = Arc::downgrade(session);
        let ttl = self.config.session_ttl;
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            if let (Some(registry), Some(session)) = (registry.upgrade(), session.upgrade()) {
                registry.expire(&session, epoch);
            }
        });
    }

    /// Ends a session now (a stdio connection has nothing to resume).
    pub fn end(&self, session: &Arc<Session>) {
        let mut att = lock(&session.attachment);
        att.ended = true;
        att.conn = None;
        drop(att);
        lock(&self.sessions).remove(session.id());
        session.kill_all();
    }

    /// Ends a session whose detach `epoch` is still current. The check and the
    /// `ended` mark happen under one lock, so a racing resume either wins (and
    /// the session lives on) or finds the session gone.
    fn expire(&self, session: &Arc<Session>, epoch: u64) {
        let mut att = lock(&session.attachment);
        if att.conn.is_some() || att.epoch != epoch || att.ended {
            return;
        }
        att.ended = true;
        drop(att);
        tracing::info!(session = session.id(), "detached session expired; killing its processes");
        lock(&self.sessions).remove(session.id());
        session.kill_all();
    }

    /// Kills every process of every session (server shutdown).
    pub fn kill_everything(&self) {
        for s in lock(&self.sessions).values() {
            s.kill_all();
        }
    }
}
