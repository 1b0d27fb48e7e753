//! The connection: one task (the actor) owns the link and every piece of
//! state; callers talk to it through a bounded command queue.
//!
//! # State machine
//!
//! ```text
//!            link ends (WebSocket)                 resumed, calls replayed,
//!   ┌───────────┐ ───────────────────▶ ┌────────────┐ processes caught up ┌───────────┐
//!   │ Connected │                      │ Recovering │ ──────────────────▶ │ Connected │
//!   └───────────┘ ◀─────────────────── └────────────┘                     └───────────┘
//!         │                                   │ deadline passes
//!         │ link ends (stdio), or close()     ▼
//!         └──────────────────────────────▶ ┌────────┐  every waiter and every
//!                                          │ Failed │  process stream gets one
//!                                          └────────┘  `Disconnected` error
//! ```
//!
//! * **Connected**: calls are sent at once; replies resolve them by id;
//!   process notifications go to their process's stream in seq order.
//! * **Recovering**: new calls wait in a queue. The actor reconnects with
//!   `initialize{resumeSessionId}` until [`Options::resume_deadline`] (retrying
//!   while the server still holds the old attachment). Once resumed:
//!   1. calls that were in flight are sent again if they have no side effects
//!      (reads, listings, `process/write` with its `writeId`, resize,
//!      closeStdin); any other call gets [`ClientError::OutcomeUnknown`];
//!   2. every open process is caught up with `process/read` from its last
//!      delivered seq; live notifications that arrive meanwhile are held and
//!      delivered after, without duplicates;
//!   3. queued calls are sent.
//! * **Failed**: everything waiting, and every call after, gets
//!   [`ClientError::Disconnected`].

use crate::process::{Sequencer, StreamItem};
use crate::transport::{self, Endpoint, Link};
use crate::ClientError;
use execd_protocol::environment::EnvironmentInfo;
use execd_protocol::initialize::{Initialize, InitializeParams, InitializeResult};
use execd_protocol::jsonrpc::{codes, Incoming, RequestId};
use execd_protocol::process::{ClosedParams, ExitedParams, OutputParams, ReadParams, ReadResult};
use execd_protocol::Method;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Connection options.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `clientName` sent in `initialize`.
    pub client_name: String,
    /// How long to keep trying to resume a dropped session before giving up.
    pub resume_deadline: Duration,
}

impl Default for Options {
    /// `execd-client`, 60 s.
    fn default() -> Self {
        Options { client_name: "execd-client".into(), resume_deadline: Duration::from_secs(60) }
    }
}

/// Events buffered per process stream; a consumer that stops reading pauses
/// the connection (and, through the server, the process).
pub(crate) const EVENT_QUEUE: usize = 256;
/// Commands buffered before callers wait.
const COMMAND_QUEUE: usize = 256;

type RawReply = oneshot::Sender<Result<String, ClientError>>;

enum Command {
    Call { method: &'static str, params: String, reply: RawReply },
    Register { id: String, events: mpsc::Sender<StreamItem>, reply: oneshot::Sender<()> },
    Unregister { id: String },
    Close { reply: oneshot::Sender<()> },
}

/// The callers' side of the connection.
pub(crate) struct Handle {
    commands: mpsc::Sender<Command>,
    session_id: String,
    environment: EnvironmentInfo,
}

impl Handle {
    /// Connects, completes the handshake and starts the actor.
    pub(crate) async fn connect(
        endpoint: Endpoint,
        options: Options,
        resume_id: Option<&str>,
    ) -> Result<Handle, ClientError> {
        let (link, init) = match resume_id {
            None => {
                let mut link = transport::open(&endpoint).await?;
                let init = handshake(&mut link, &options.client_name, None).await?;
                (link, init)
            }
            // A session whose connection just dropped may still show as attached for a moment.
            Some(id) => {
                let deadline = Instant::now() + options.resume_deadline.min(Duration::from_secs(10));
                resume(endpoint.clone(), id.to_owned(), options.client_name.clone(), deadline).await?
            }
        };
        let (commands, rx) = mpsc::channel(COMMAND_QUEUE);
        let actor = Actor {
            endpoint,
            options,
            session_id: init.session_id.clone(),
            next_id: 1,
            pending: HashMap::new(),
            queued: VecDeque::new(),
            processes: HashMap::new(),
            catch_ups: HashMap::new(),
            failed: None,
        };
        tokio::spawn(actor.run(link, rx));
        Ok(Handle { commands, session_id: init.session_id, environment: init.environment_info })
    }

    pub(crate) fn session_id(&self) -> String {
        self.session_id.clone()
    }

    pub(crate) fn environment(&self) -> &EnvironmentInfo {
        &self.environment
    }

    pub(crate) async fn call<M: Method>(&self, params: M::Params) -> Result<M::Result, ClientError> {
        let params = serde_json::to_string(&params).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        self.send(Command::Call { method: M::NAME, params, reply }).await?;
        let raw = rx.await.map_err(|_| gone())??;
        serde_json::from_str(&raw).map_err(|e| ClientError::Protocol(format!("{}: bad result: {e}", M::NAME)))
    }

    pub(crate) async fn register(&self, id: &str) -> Result<mpsc::Receiver<StreamItem>, ClientError> {
        let (events, rx) = mpsc::channel(EVENT_QUEUE);
        let (reply, done) = oneshot::channel();
        self.send(Command::Register { id: id.to_owned(), events, reply }).await?;
        done.await.map_err(|_| gone())?;
        Ok(rx)
    }

    pub(crate) fn unregister(&self, id: &str) {
        let _ = self.commands.try_send(Command::Unregister { id: id.to_owned() });
    }

    pub(crate) async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    async fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands.send(command).await.map_err(|_| gone())
    }
}

fn gone() -> ClientError {
    ClientError::Disconnected("the connection task has ended".into())
}

/// Sends `initialize` (and `initialized`) on a fresh link and waits for the result.
async fn handshake(link: &mut Link, client_name: &str, resume: Option<&str>) -> Result<InitializeResult, ClientError> {
    let params = InitializeParams { client_name: client_name.to_owned(), resume_session_id: resume.map(str::to_owned) };
    let params = serde_json::to_string(&params).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let text = request_text(0, Initialize::NAME, &params);
    link.tx.send(text).await.map_err(|_| lost())?;
    loop {
        let text = link.rx.recv().await.ok_or_else(lost)?;
        match Incoming::parse(text.as_bytes()) {
            Ok(Incoming::Response { id: RequestId::Integer(0), result }) => {
                let init: InitializeResult = serde_json::from_str(result.get())
                    .map_err(|e| ClientError::Protocol(format!("initialize: bad result: {e}")))?;
                link.tx.send(r#"{"method":"initialized","params":{}}"#.to_owned()).await.map_err(|_| lost())?;
                return Ok(init);
            }
            Ok(Incoming::Error { id: RequestId::Integer(0), error }) => {
                return Err(ClientError::Rpc { method: Initialize::NAME, code: error.code, message: error.message })
            }
            _ => continue,
        }
    }
}

fn lost() -> ClientError {
    ClientError::Disconnected("the connection closed".into())
}

/// A request's text; `params` is already JSON.
fn request_text(id: i64, method: &str, params: &str) -> String {
    let method = serde_json::to_string(method).unwrap_or_else(|_| "\"\"".into());
    format!(r#"{{"id":{id},"method":{method},"params":{params}}}"#)
}

/// Whether a call may be sent twice without changing its effect.
fn replayable(method: &str) -> bool {
    matches!(
        method,
        "process/read"
            | "process/write"
            | "process/list"
            | "process/resizePty"
            | "process/closeStdin"
            | "environment/info"
            | "environment/status"
            | "fs/readFile"
            | "fs/getMetadata"
            | "fs/readDirectory"
            | "fs/canonicalize"
            | "fs/walk"
    )
}

/// A call sent on the current link.
struct Pending {
    method: &'static str,
    params: String,
    reply: RawReply,
}

/// The one task that owns the connection.
struct Actor {
    endpoint: Endpoint,
    options: Options,
    session_id: String,
    next_id: i64,
    pending: HashMap<i64, Pending>,
    /// Calls waiting for the connection to come back.
    queued: VecDeque<(&'static str, String, RawReply)>,
    processes: HashMap<String, Sequencer>,
    /// Catch-up `process/read`s in flight: request id to process id.
    catch_ups: HashMap<i64, String>,
    /// Why the connection is gone for good.
    failed: Option<ClientError>,
}

impl Actor {
    async fn run(mut self, link: Link, mut commands: mpsc::Receiver<Command>) {
        let mut link = Some(link);
        loop {
            let Some(current) = link.as_mut() else {
                // Failed: answer whatever still comes.
                match commands.recv().await {
                    Some(command) => self.refuse(command),
                    None => return,
                }
                continue;
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Close { reply }) => {
                        link = None;
                        self.fail(ClientError::Disconnected("closed by the client".into())).await;
                        let _ = reply.send(());
                    }
                    Some(command) => self.command(current, command).await,
                    None => return,
                },
                incoming = current.rx.recv() => match incoming {
                    Some(text) => self.incoming(current, &text).await,
                    None => link = self.recover(&mut commands).await,
                },
            }
        }
    }

    async fn command(&mut self, link: &mut Link, command: Command) {
        match command {
            Command::Call { method, params, reply } => self.send_call(link, method, params, reply).await,
            other => self.registration(other, false),
        }
    }

    /// Registers or forgets a process stream. A process registered `offline`
    /// (while the link is down) has not been started yet, so it is not caught up.
    fn registration(&mut self, command: Command, offline: bool) {
        match command {
            Command::Register { id, events, reply } => {
                let mut seq = Sequencer::new(id.clone(), events);
                seq.fresh = offline;
                self.processes.insert(id, seq);
                let _ = reply.send(());
            }
            Command::Unregister { id } => {
                self.processes.remove(&id);
            }
            Command::Call { .. } | Command::Close { .. } => {}
        }
    }

    fn request_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn refuse(&mut self, command: Command) {
        let error = self.failed.clone().unwrap_or_else(gone);
        match command {
            Command::Call { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Command::Register { reply, .. } => drop(reply),
            Command::Close { reply } => {
                let _ = reply.send(());
            }
            Command::Unregister { .. } => {}
        }
    }

    async fn send_call(&mut self, link: &mut Link, method: &'static str, params: String, reply: RawReply) {
        let id = self.request_id();
        let text = request_text(id, method, &params);
        self.pending.insert(id, Pending { method, params, reply });
        // A send that fails means the link is ending: the reader notices and recovery replays.
        let _ = link.tx.send(text).await;
    }

    async fn incoming(&mut self, link: &mut Link, text: &str) {
        match Incoming::parse(text.as_bytes()) {
            Ok(Incoming::Response { id: RequestId::Integer(id), result }) => {
                if let Some(process) = self.catch_ups.remove(&id) {
                    self.caught_up(link, &process, Ok(result.get())).await;
                } else if let Some(p) = self.pending.remove(&id) {
                    let _ = p.reply.send(Ok(result.get().to_owned()));
                }
            }
            Ok(Incoming::Error { id: RequestId::Integer(id), error }) => {
                if let Some(process) = self.catch_ups.remove(&id) {
                    let e = ClientError::Rpc { method: "process/read", code: error.code, message: error.message };
                    self.caught_up(link, &process, Err(e)).await;
                } else if let Some(p) = self.pending.remove(&id) {
                    let e = ClientError::Rpc { method: p.method, code: error.code, message: error.message };
                    let _ = p.reply.send(Err(e));
                }
            }
            Ok(Incoming::Notification { method, params }) => {
                let params = params.map_or("null", |p| p.get());
                let parsed = match &*method {
                    "process/output" => serde_json::from_str::<OutputParams>(params).map(Live::Output),
                    "process/exited" => serde_json::from_str::<ExitedParams>(params).map(Live::Exited),
                    "process/closed" => serde_json::from_str::<ClosedParams>(params).map(Live::Closed),
                    _ => return,
                };
                if let Ok(event) = parsed {
                    self.live(link, event).await;
                }
            }
            _ => {}
        }
    }

    /// A live process notification: delivered in order, held during a
    /// catch-up, and a gap starts one.
    async fn live(&mut self, link: &mut Link, event: Live) {
        let id = event.process_id().to_owned();
        let Some(seq) = self.processes.get_mut(&id) else { return };
        if seq.offer(event.into_event()).await {
            self.start_catch_up(link, &id).await;
        }
        self.retire_if_done(&id);
    }

    async fn start_catch_up(&mut self, link: &mut Link, process: &str) {
        let Some(seq) = self.processes.get_mut(process) else { return };
        let params =
            ReadParams { process_id: process.to_owned(), after_seq: Some(seq.last_seq()), ..Default::default() };
        seq.catching_up = true;
        let id = self.request_id();
        if let Ok(params) = serde_json::to_string(&params) {
            self.catch_ups.insert(id, process.to_owned());
            let _ = link.tx.send(request_text(id, "process/read", &params)).await;
        }
    }

    async fn caught_up(&mut self, link: &mut Link, process: &str, result: Result<&str, ClientError>) {
        let Some(seq) = self.processes.get_mut(process) else { return };
        let result = result.and_then(|raw| {
            serde_json::from_str::<ReadResult>(raw).map_err(|e| ClientError::Protocol(format!("process/read: {e}")))
        });
        let again = seq.apply_read(result).await;
        if again {
            self.start_catch_up(link, process).await;
        }
        self.retire_if_done(process);
    }

    fn retire_if_done(&mut self, process: &str) {
        if self.processes.get(process).is_some_and(Sequencer::done) {
            self.processes.remove(process);
        }
    }

    /// The link ended: resume within the deadline, or fail.
    async fn recover(&mut self, commands: &mut mpsc::Receiver<Command>) -> Option<Link> {
        self.catch_ups.clear();
        if !self.endpoint.resumable() {
            self.fail(ClientError::Disconnected("the server's stdio closed".into())).await;
            return None;
        }
        let deadline = Instant::now() + self.options.resume_deadline;
        let attempt =
            resume(self.endpoint.clone(), self.session_id.clone(), self.options.client_name.clone(), deadline);
        tokio::pin!(attempt);
        let outcome = loop {
            tokio::select! {
                outcome = &mut attempt => break outcome,
                command = commands.recv() => match command {
                    Some(Command::Call { method, params, reply }) => self.queued.push_back((method, params, reply)),
                    Some(Command::Close { reply }) => {
                        self.fail(ClientError::Disconnected("closed by the client".into())).await;
                        let _ = reply.send(());
                        return None;
                    }
                    Some(other) => self.registration(other, true),
                    None => return None,
                },
            }
        };
        let mut link = match outcome {
            Ok((link, _)) => link,
            Err(e) => {
                self.fail(e).await;
                return None;
            }
        };
        tracing::info!(session = %self.session_id, "connection resumed");
        // Replayed calls go first, in their original order (the server applies writes in arrival order).
        let mut in_flight: Vec<(i64, Pending)> = self.pending.drain().collect();
        in_flight.sort_unstable_by_key(|(id, _)| *id);
        for (_, p) in in_flight.into_iter().rev() {
            if replayable(p.method) {
                self.queued.push_front((p.method, p.params, p.reply));
            } else {
                let _ = p.reply.send(Err(ClientError::OutcomeUnknown(p.method)));
            }
        }
        // Processes registered while offline have not been started yet: nothing to catch up.
        let open: Vec<String> = self.processes.iter().filter(|(_, s)| !s.fresh).map(|(id, _)| id.clone()).collect();
        for seq in self.processes.values_mut() {
            seq.fresh = false;
        }
        for process in open {
            self.start_catch_up(&mut link, &process).await;
        }
        while let Some((method, params, reply)) = self.queued.pop_front() {
            self.send_call(&mut link, method, params, reply).await;
        }
        Some(link)
    }

    /// Gives every waiter and every process stream `error`, once.
    async fn fail(&mut self, error: ClientError) {
        tracing::debug!("connection ended: {error}");
        for (_, p) in self.pending.drain() {
            let _ = p.reply.send(Err(error.clone()));
        }
        for (_, _, reply) in self.queued.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, seq) in self.processes.drain() {
            seq.fail(error.clone()).await;
        }
        self.failed = Some(error);
    }
}

/// Reconnects and resumes `session_id`, retrying until `deadline`.
async fn resume(
    endpoint: Endpoint,
    session_id: String,
    client_name: String,
    deadline: Instant,
) -> Result<(Link, InitializeResult), ClientError> {
    let mut pause = Duration::from_millis(50);
    let mut last = ClientError::Disconnected("the connection dropped".into());
    loop {
        if Instant::now() >= deadline {
            return Err(ClientError::Disconnected(format!("could not resume session {session_id}: {last}")));
        }
        // One attempt may hang (a server that accepts but never answers): it is bounded by the deadline too.
        let attempt = async {
            let mut link = transport::open(&endpoint).await?;
            let init = handshake(&mut link, &client_name, Some(&session_id)).await?;
            Ok::<_, ClientError>((link, init))
        };
        let outcome = tokio::time::timeout_at(deadline, attempt)
            .await
            .unwrap_or_else(|_| Err(ClientError::Disconnected("no answer from the server".into())));
        match outcome {
            Ok(resumed) => return Ok(resumed),
            // The server may not have noticed the old connection's end yet.
            Err(e @ ClientError::Rpc { code: codes::SESSION_BUSY, .. }) => last = e,
            Err(e @ ClientError::Rpc { .. }) => {
                return Err(ClientError::Disconnected(format!("could not resume session {session_id}: {e}")))
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// A live process notification.
enum Live {
    Output(OutputParams),
    Exited(ExitedParams),
    Closed(ClosedParams),
}

impl Live {
    fn process_id(&self) -> &str {
        match self {
            Live::Output(p) => &p.process_id,
            Live::Exited(p) => &p.process_id,
            Live::Closed(p) => &p.process_id,
        }
    }

    fn into_event(self) -> (u64, crate::ProcessEvent) {
        use crate::ProcessEvent as E;
        match self {
            Live::Output(p) => (p.seq, E::Output { seq: p.seq, stream: p.stream, data: p.chunk.0 }),
            Live::Exited(p) => (p.seq, E::Exited { exit_code: p.exit_code, signal: p.signal, timed_out: p.timed_out }),
            Live::Closed(p) => (p.seq, E::Closed),
        }
    }
}
