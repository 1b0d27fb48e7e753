//! One JSON-RPC connection, independent of its transport.
//!
//! The transport turns its socket into a stream of inbound messages and drains
//! an [`Outbound`] queue; this loop classifies messages, enforces the
//! handshake, and hands requests to the [`Router`](crate::dispatch::Router).
//! Requests whose reply is ready at once are answered inline; the others run
//! as tasks, at most [`MAX_IN_FLIGHT`] at a time, so a long-poll never blocks
//! later requests and replies may come out of order. Pending requests are
//! bounded by count and by bytes of request text; past either bound a request
//! is refused (-32001) before it has any effect. The loop never waits for a
//! pending request, so no number of them can deadlock the connection, grow it
//! without bound, or hide a disconnect.

use crate::app::AppConnection;
use crate::dispatch::{Ctx, Dialect, Gate, Reply};
use crate::fs::handles::Handles;
use crate::fs::watch::MissingWatch;
use crate::session::{lock, Outbound, Session, SessionError, SessionRegistry};
use crate::ServerState;
use bytes::Bytes;
use execd_protocol::jsonrpc::{codes, error_text, ErrorObject, Incoming, RequestId};
use futures_util::{FutureExt, Stream, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Most requests of one connection that may be pending at once.
pub const MAX_IN_FLIGHT: usize = 16_384;
/// Most bytes of request text one connection may have pending at once (in KiB).
pub const MAX_IN_FLIGHT_KIB: usize = 256 * 1024;
/// The error text for a request refused because of those limits.
pub const OVERLOADED_MESSAGE: &str = "server overloaded: too many pending requests on this connection; retry later";
/// Capacity of a connection's outbound queue, in messages.
pub const OUTBOUND_QUEUE: usize = 256;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handshake {
    /// Nothing yet (or only failed `initialize` attempts).
    New,
    /// `initialize` succeeded; waiting for `initialized`.
    Initialized,
    /// Fully open.
    Ready,
}

/// Per-connection state shared with handlers.
pub struct ConnectionState {
    id: u64,
    outbound: Outbound,
    state: Mutex<(Handshake, Option<Arc<Session>>)>,
    /// Set by a successful app-server dialect `initialize`.
    app: OnceLock<Arc<AppConnection>>,
    /// File handles of this connection (not part of the session).
    pub handles: Handles,
    /// The missing-path watch of this connection (not part of the session).
    pub missing_watch: MissingWatch,
    /// Filesystem requests of this connection take effect one at a time, in
    /// arrival order (a fair lock, first polled by the reader loop).
    pub fs_order: tokio::sync::Mutex<()>,
}

impl ConnectionState {
    fn new(outbound: Outbound) -> Self {
        ConnectionState {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            outbound,
            state: Mutex::new((Handshake::New, None)),
            app: OnceLock::new(),
            handles: Handles::default(),
            missing_watch: MissingWatch::default(),
            fs_order: tokio::sync::Mutex::new(()),
        }
    }

    /// `Err(message)` unless the connection may use methods behind `gate`.
    pub fn check_gate(&self, gate: Gate) -> Result<(), String> {
        match gate {
            Gate::Open => Ok(()),
            Gate::Family(family) => match lock(&self.state).0 {
                Handshake::Ready => Ok(()),
                Handshake::New => Err(format!("client must call initialize before using {family} methods")),
                Handshake::Initialized => Err(format!("client must send initialized before using {family} methods")),
            },
            Gate::App => self.app().map(|_| ()).ok_or_else(|| "Not initialized".to_owned()),
            Gate::AppExperimental(method) => match self.app() {
                None => Err("Not initialized".to_owned()),
                Some(app) if !app.experimental_api => Err(format!("{method} requires experimentalApi capability")),
                Some(_) => Ok(()),
            },
        }
    }

    /// The dialect, once `initialize` succeeded.
    pub fn dialect(&self) -> Option<Dialect> {
        if self.app.get().is_some() {
            return Some(Dialect::AppServer);
        }
        (lock(&self.state).0 != Handshake::New).then_some(Dialect::ExecServer)
    }

    /// The app-server dialect state, once its `initialize` succeeded.
    pub fn app(&self) -> Option<&Arc<AppConnection>> {
        self.app.get()
    }

    /// Opens the connection in the app-server dialect (its `initialize`); no
    /// `initialized` notification is awaited. `Err` if already initialized.
    pub fn initialize_app(
        &self,
        experimental_api: bool,
        opted_out: Vec<String>,
    ) -> Result<Arc<AppConnection>, &'static str> {
        let mut st = lock(&self.state);
        if st.0 != Handshake::New {
            return Err("Already initialized");
        }
        let app = AppConnection::new(experimental_api, opted_out, self.outbound.clone());
        self.app.set(app.clone()).map_err(|_| "Already initialized")?;
        st.0 = Handshake::Ready;
        Ok(app)
    }

    /// This connection's outbound queue (for connection-scoped notifications).
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// The session, once `initialize` succeeded.
    pub fn session(&self) -> Option<Arc<Session>> {
        lock(&self.state).1.clone()
    }

    /// Creates or resumes this connection's session (`initialize`).
    pub fn initialize(&self, registry: &SessionRegistry, resume: Option<&str>) -> Result<Arc<Session>, SessionError> {
        let mut st = lock(&self.state);
        if st.0 != Handshake::New {
            return Err(SessionError::AlreadyInitialized);
        }
        let session = match resume {
            Some(id) => registry.resume(id, self.id, self.outbound.clone())?,
            None => registry.create(self.id, self.outbound.clone()),
        };
        *st = (Handshake::Initialized, Some(session.clone()));
        Ok(session)
    }

    /// Handles `initialized`; `false` means the client broke the protocol.
    fn mark_ready(&self) -> bool {
        let mut st = lock(&self.state);
        match st.0 {
            Handshake::New => false,
            Handshake::Initialized | Handshake::Ready => {
                st.0 = Handshake::Ready;
                true
            }
        }
    }
}

/// How a transport names itself in parse errors, and whether its sessions outlive it.
pub struct TransportInfo {
    /// E.g. `websocket JSON-RPC message from exec-server websocket 127.0.0.1:4000`.
    pub parse_error_subject: String,
    /// Whether a dropped connection detaches (WebSocket) or ends (stdio) its session.
    pub resumable: bool,
}

/// Serves one connection until its inbound stream ends or the client breaks the protocol.
pub async fn run<S>(server: Arc<ServerState>, mut inbound: S, outbound: Outbound, transport: TransportInfo)
where
    S: Stream<Item = Bytes> + Unpin,
{
    let conn = Arc::new(ConnectionState::new(outbound.clone()));
    let ctx = Ctx { server: server.clone(), conn: conn.clone() };
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let kib_budget = Arc::new(Semaphore::new(MAX_IN_FLIGHT_KIB));
    let mut tasks = JoinSet::new();
    while let Some(frame) = inbound.next().await {
        while tasks.try_join_next().is_some() {}
        let app = conn.app().is_some();
        match Incoming::parse(&frame) {
            // The app-server dialect ignores what it cannot use: unparsable
            // lines, requests with a null or fractional id, responses and
            // notifications (`initialized` included).
            Err(_) | Ok(Incoming::Notification { .. } | Incoming::Response { .. } | Incoming::Error { .. }) if app => {}
            Err(e) => {
                let error = ErrorObject {
                    code: codes::INVALID_REQUEST,
                    message: format!("failed to parse {}: {e}", transport.parse_error_subject),
                };
                let _ = outbound.send(error_text(&RequestId::PARSE_ERROR, &error)).await;
            }
            Ok(Incoming::Request { id, method, params }) => {
                // A request may stay pending holding its params (up to a whole message):
                // both the count and the bytes are bounded. Past them the request is
                // refused before it has any effect, and the loop keeps reading, so a
                // client that disconnects is always noticed.
                let kib = u32::try_from(frame.len().div_ceil(1024).clamp(1, MAX_IN_FLIGHT_KIB)).unwrap_or(u32::MAX);
                let (Ok(slot), Ok(bytes)) =
                    (permits.clone().try_acquire_owned(), kib_budget.clone().try_acquire_many_owned(kib))
                else {
                    let error = ErrorObject { code: codes::OVERLOADED, message: OVERLOADED_MESSAGE.into() };
                    let _ = outbound.send(error_text(&id, &error)).await;
                    continue;
                };
                let router = server.routers.select(&conn, &method, params);
                let mut reply = router.prepare(ctx.clone(), &method, params, id);
                if let Some(reply) = (&mut reply).now_or_never() {
                    drop((slot, bytes));
                    deliver(&outbound, reply).await;
                } else {
                    let outbound = outbound.clone();
                    tasks.spawn(async move {
                        deliver(&outbound, reply.await).await;
                        drop((slot, bytes));
                    });
                }
            }
            Ok(Incoming::Notification { method, .. }) if method == "initialized" => {
                if !conn.mark_ready() {
                    tracing::debug!(conn = conn.id, "initialized before initialize; dropping connection");
                    break;
                }
            }
            Ok(other) => {
                tracing::debug!(conn = conn.id, message = ?other, "unexpected client message; dropping connection");
                break;
            }
        }
    }
    tasks.abort_all();
    if let Some(app) = conn.app() {
        app.close();
    }
    if let Some(session) = conn.session() {
        if transport.resumable {
            server.sessions.detach(&session, conn.id);
        } else {
            server.sessions.end(&session);
        }
    }
}

async fn deliver(outbound: &Outbound, reply: Reply) {
    let _ = outbound.send(reply.text).await;
    if let Some(after) = reply.after {
        let _ = after.send(());
    }
}
