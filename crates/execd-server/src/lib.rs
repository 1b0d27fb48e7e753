//! The execd server: transports, sessions, JSON-RPC dispatch and handlers.
//!
//! Layers, outermost first (see ARCHITECTURE.md):
//! - [`transport`]: WebSocket (axum) and stdio, socket to messages; [`auth`] for upgrades;
//! - [`connection`]: the per-connection JSON-RPC loop, handshake, concurrency;
//! - [`dispatch`]: typed method routing, never touching a socket;
//! - [`handlers`]: one module per method family;
//! - [`session`]: the exec-server domain (sessions, processes), knowing nothing of JSON-RPC framing;
//! - [`app`]: the app-server dialect's domain (connection-scoped process tables).

pub mod app;
pub mod auth;
pub mod connection;
pub mod dispatch;
pub mod env_policy;
pub mod environment;
pub mod error;
pub mod fs;
pub mod handlers;
pub mod sandbox;
pub mod session;
pub mod transport;
pub mod uri;

use environment::Environment;
use session::{SessionConfig, SessionRegistry};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Server-wide state shared by every connection.
pub struct ServerState {
    /// All sessions.
    pub sessions: Arc<SessionRegistry>,
    /// The method tables of both dialects.
    pub routers: dispatch::Routers,
    /// Every app-server dialect connection (their processes die at shutdown).
    pub apps: app::AppRegistry,
    /// Facts about the host.
    pub environment: Environment,
    /// Authentication of WebSocket upgrades, if configured.
    pub ws_auth: Option<auth::WsAuth>,
}

impl ServerState {
    /// A server with the given session rules and WebSocket authentication.
    pub fn new(config: SessionConfig, ws_auth: Option<auth::WsAuth>) -> Arc<Self> {
        Arc::new(ServerState {
            sessions: SessionRegistry::new(config),
            routers: handlers::routers(),
            apps: app::AppRegistry::default(),
            environment: Environment::detect(),
            ws_auth,
        })
    }

    /// Kills every process tree of every session and connection, and removes
    /// their cgroups (waiting up to two seconds for the last processes to die).
    pub async fn kill_everything(&self) {
        self.sessions.kill_everything();
        self.apps.kill_everything();
        let _ = tokio::task::spawn_blocking(|| execd_process::remove_cgroups(std::time::Duration::from_secs(2))).await;
    }
}

/// Serves WebSocket connections on `listener` until `shutdown` resolves, then
/// kills every process of every session.
pub async fn serve_ws(
    server: Arc<ServerState>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("could not set TCP_NODELAY: {e}");
        }
    });
    let app = transport::ws::app(server.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let result = tokio::select! {
        r = axum::serve(listener, app) => r,
        () = shutdown => Ok(()),
    };
    server.kill_everything().await;
    result
}

/// Serves one connection on stdin/stdout until stdin closes (or `shutdown`),
/// then kills every process it started.
pub async fn serve_stdio(server: Arc<ServerState>, shutdown: impl std::future::Future<Output = ()> + Send) {
    tokio::select! {
        () = transport::stdio::serve(server.clone(), tokio::io::stdin(), tokio::io::stdout()) => {}
        () = shutdown => {}
    }
    server.kill_everything().await;
}
