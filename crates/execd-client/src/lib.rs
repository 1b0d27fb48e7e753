//! A Rust client for execd's exec-server dialect.
//!
//! - [`Client::connect`] opens a session over a WebSocket (optionally with a
//!   bearer token) or over the stdio of a child `execd serve --listen stdio`.
//! - [`Client::call`] makes any call, typed by the protocol crate's [`Method`]
//!   types; convenience methods cover the common ones.
//! - [`Client::start`] starts a process and returns a [`RemoteProcess`]: its
//!   events arrive exactly once, in seq order (see [`process`]).
//! - When a WebSocket connection drops, the client resumes the session (see
//!   [`conn`] for the state machine).

pub mod conn;
pub mod process;
mod transport;

pub use conn::Options;
pub use process::{ProcessEvent, RemoteProcess};
pub use transport::Endpoint;

use execd_protocol::environment::EnvironmentInfo;
use execd_protocol::process::{
    CloseStdinParams, ListResult, ProcessCloseStdin, ProcessList, ProcessResizePty, ProcessSignal, ProcessStart,
    ProcessTerminate, ResizePtyParams, SignalName, SignalParams, StartResult, TerminalSize, TerminateParams,
    WireExecParams, WriteStatus,
};
use execd_protocol::{Method, NoParams};
use std::sync::Arc;

/// Errors of the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The URL is not one the client can use.
    #[error("bad server URL `{0}`: {1} (expected ws://HOST:PORT)")]
    BadUrl(String, String),
    /// Nothing accepted the connection.
    #[error("cannot connect to {0}: {1} (is `execd serve` running there? start it with `execd serve`)")]
    Connect(String, String),
    /// The server refused the credentials.
    #[error("{0} refused the connection (HTTP {1}): pass a valid token with --token or EXECD_TOKEN")]
    Unauthorized(String, u16),
    /// The server answered with a JSON-RPC error.
    #[error("{method}: {message} (code {code})")]
    Rpc {
        /// The method called.
        method: &'static str,
        /// The JSON-RPC error code.
        code: i64,
        /// The server's message.
        message: String,
    },
    /// The connection dropped while a call with side effects was in flight:
    /// whether it took effect is unknown, so it was not sent again.
    #[error("{0}: the connection dropped before the reply; the call may or may not have taken effect")]
    OutcomeUnknown(&'static str),
    /// The connection is gone and could not be resumed.
    #[error("disconnected from the server: {0}")]
    Disconnected(String),
    /// Output a process stream needed had left the server's retention window.
    #[error("output of process {process_id} was evicted before it could be read: seqs up to {first_retained_seq} (exclusive) are lost, {bytes} bytes evicted in all")]
    Evicted {
        /// The process.
        process_id: String,
        /// The first seq still retained.
        first_retained_seq: u64,
        /// Bytes evicted from the process's retention so far.
        bytes: u64,
    },
    /// A message that does not fit the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The JSON-RPC error code, for [`ClientError::Rpc`].
    pub fn code(&self) -> Option<i64> {
        match self {
            ClientError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A connected client. Cheap to clone; all clones share one connection.
#[derive(Clone)]
pub struct Client {
    conn: Arc<conn::Handle>,
}

impl Client {
    /// Connects and completes the handshake (a new session).
    pub async fn connect(endpoint: Endpoint, options: Options) -> Result<Client, ClientError> {
        Ok(Client { conn: Arc::new(conn::Handle::connect(endpoint, options, None).await?) })
    }

    /// Connects and re-attaches to a detached session.
    pub async fn resume(endpoint: Endpoint, options: Options, session_id: &str) -> Result<Client, ClientError> {
        Ok(Client { conn: Arc::new(conn::Handle::connect(endpoint, options, Some(session_id)).await?) })
    }

    /// The session id.
    pub fn session_id(&self) -> String {
        self.conn.session_id()
    }

    /// The server's environment, as of the handshake.
    pub fn environment(&self) -> &EnvironmentInfo {
        self.conn.environment()
    }

    /// Calls `M` with `params`. Calls without side effects (reads, listings,
    /// writes with their `writeId`) are sent again after a resume; others fail
    /// with [`ClientError::OutcomeUnknown`] if the connection dropped before
    /// their reply.
    pub async fn call<M: Method>(&self, params: M::Params) -> Result<M::Result, ClientError> {
        self.conn.call::<M>(params).await
    }

    /// Starts a process; its events come from the returned handle.
    pub async fn start(&self, params: WireExecParams) -> Result<RemoteProcess, ClientError> {
        let id = params.process_id.clone();
        let events = self.conn.register(&id).await?;
        match self.conn.call::<ProcessStart>(params).await {
            Ok(StartResult { .. }) => Ok(RemoteProcess::new(self.clone(), id, events)),
            Err(e) => {
                self.conn.unregister(&id);
                Err(e)
            }
        }
    }

    /// Writes bytes to a process's stdin under a fresh `writeId` (retried safely after a resume).
    pub async fn write(&self, process_id: &str, data: bytes::Bytes) -> Result<WriteStatus, ClientError> {
        let params = execd_protocol::process::WriteParams {
            process_id: process_id.to_owned(),
            chunk: execd_protocol::Base64Bytes(data),
            write_id: uuid::Uuid::new_v4().to_string(),
        };
        Ok(self.call::<execd_protocol::process::ProcessWrite>(params).await?.status)
    }

    /// Ends a process's stdin after every earlier write.
    pub async fn close_stdin(&self, process_id: &str) -> Result<WriteStatus, ClientError> {
        Ok(self.call::<ProcessCloseStdin>(CloseStdinParams { process_id: process_id.to_owned() }).await?.status)
    }

    /// Sends a signal to a process's group.
    pub async fn signal(&self, process_id: &str, signal: SignalName) -> Result<(), ClientError> {
        self.call::<ProcessSignal>(SignalParams { process_id: process_id.to_owned(), signal }).await.map(|_| ())
    }

    /// Resizes a tty process's terminal.
    pub async fn resize(&self, process_id: &str, rows: u16, cols: u16) -> Result<(), ClientError> {
        let params = ResizePtyParams { process_id: process_id.to_owned(), size: TerminalSize { rows, cols } };
        self.call::<ProcessResizePty>(params).await.map(|_| ())
    }

    /// Kills a process's tree (after `grace_ms` of SIGTERM, if given); whether it was running.
    pub async fn terminate(&self, process_id: &str, grace_ms: Option<u64>) -> Result<bool, ClientError> {
        let params = TerminateParams { process_id: process_id.to_owned(), grace_ms };
        Ok(self.call::<ProcessTerminate>(params).await?.running)
    }

    /// The session's processes.
    pub async fn list(&self) -> Result<ListResult, ClientError> {
        self.call::<ProcessList>(NoParams).await
    }

    /// Closes the connection; the session is detached (and expires on the server).
    pub async fn close(&self) {
        self.conn.close().await;
    }
}
