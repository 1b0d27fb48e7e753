//! The WebSocket listener: `/` upgrades to a JSON-RPC connection, `/readyz`
//! answers 200, everything else 404; any `Origin` header gets 403 first; with
//! `--ws-auth`, upgrades without a valid bearer token get 401.
//! One JSON-RPC message per WebSocket message (text or binary); replies are text.

use crate::connection::{self, TransportInfo, OUTBOUND_QUEUE};
use crate::ServerState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Largest incoming frame; larger ones drop the connection.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Largest incoming (reassembled) message; larger ones drop the connection.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The HTTP application.
pub fn app(server: Arc<ServerState>) -> axum::Router {
    axum::Router::new()
        .route("/", any(upgrade))
        .route("/readyz", get(|| async { StatusCode::OK }))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(reject_origin))
        .with_state(server)
}

/// Browsers send `Origin`; no browser page may drive an executor.
async fn reject_origin(req: Request, next: Next) -> Response {
    if req.headers().contains_key(header::ORIGIN) {
        return StatusCode::FORBIDDEN.into_response();
    }
    next.run(req).await
}

/// Upgrades `/` (once the request is a valid upgrade, and authenticated if required).
async fn upgrade(
    State(server): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(auth) = &server.ws_auth {
        if let Err(refused) = auth.check(headers.get(header::AUTHORIZATION)) {
            tracing::debug!(%peer, "websocket upgrade refused: {refused}");
            return (StatusCode::UNAUTHORIZED, refused.to_string()).into_response();
        }
    }
    ws.max_frame_size(MAX_FRAME_BYTES)
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve_socket(server, socket, peer))
}

async fn serve_socket(server: Arc<ServerState>, socket: WebSocket, peer: SocketAddr) {
    tracing::debug!(%peer, "websocket connected");
    let (sink, stream) = socket.split();
    let (outbound, queue) = mpsc::channel(OUTBOUND_QUEUE);
    let writer = tokio::spawn(write_messages(sink, queue));
    // Control frames are answered by the WebSocket layer itself; an error ends the stream.
    let inbound = stream.take_while(|m| std::future::ready(m.is_ok())).filter_map(|m| {
        std::future::ready(match m {
            Ok(Message::Text(text)) => Some(Bytes::from(text)),
            Ok(Message::Binary(bytes)) => Some(bytes),
            _ => None,
        })
    });
    let transport = TransportInfo {
        parse_error_subject: format!("websocket JSON-RPC message from exec-server websocket {peer}"),
        resumable: true,
    };
    connection::run(server, Box::pin(inbound), outbound, transport).await;
    // Ending here drops the socket without a Close frame, as the reference does on violations.
    writer.abort();
    tracing::debug!(%peer, "websocket disconnected");
}

/// Drains the queue into the socket, flushing once per burst.
async fn write_messages(mut sink: SplitSink<WebSocket, Message>, mut queue: mpsc::Receiver<String>) {
    while let Some(text) = queue.recv().await {
        if sink.feed(Message::Text(text.into())).await.is_err() {
            return;
        }
        while let Ok(text) = queue.try_recv() {
            if sink.feed(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
