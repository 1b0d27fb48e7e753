//! The WebSocket listener: `/` upgrades to a JSON-RPC connection, `/readyz`
//! answers 200, everything else 404; any `Origin` header gets 403 first; with
//! `--ws-auth`, upgrades without a valid bearer token get 401.
//!
//! One JSON-RPC message per WebSocket message (text or binary); replies are
//! text. Messages larger than [`FRAGMENT_BYTES`] are sent as a fragmented
//! message, so no full-size copy of a large reply (an `fs/readFile`) is made.

use crate::connection::{self, TransportInfo, OUTBOUND_QUEUE};
use crate::ServerState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Largest incoming frame; larger ones drop the connection.
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Largest incoming (reassembled) message; larger ones drop the connection.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Outgoing messages above this size are sent in fragments of this size.
pub const FRAGMENT_BYTES: usize = 1 << 20;

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

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

fn header_eq(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers.get(name).is_some_and(|h| h.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

fn header_contains(headers: &HeaderMap, name: header::HeaderName, value: &str) -> bool {
    headers.get(name).and_then(|h| h.to_str().ok()).is_some_and(|h| h.to_ascii_lowercase().contains(value))
}

/// Checks an upgrade request the way the reference does (same statuses and
/// texts); returns its `Sec-WebSocket-Key`.
fn check_upgrade(req: &Request) -> Result<HeaderValue, (StatusCode, &'static str)> {
    let headers = req.headers();
    if req.method() != Method::GET {
        return Err((StatusCode::METHOD_NOT_ALLOWED, "Request method must be `GET`"));
    }
    if !header_contains(headers, header::CONNECTION, "upgrade") {
        return Err((StatusCode::BAD_REQUEST, "Connection header did not include 'upgrade'"));
    }
    if !header_eq(headers, header::UPGRADE, "websocket") {
        return Err((StatusCode::BAD_REQUEST, "`Upgrade` header did not include 'websocket'"));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or((StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` header missing"))?;
    if !header_eq(headers, header::SEC_WEBSOCKET_VERSION, "13") {
        return Err((StatusCode::BAD_REQUEST, "`Sec-WebSocket-Version` header did not include '13'"));
    }
    Ok(key.clone())
}

/// Upgrades `/` (once the request is a valid upgrade, and authenticated if required).
async fn upgrade(
    State(server): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let key = match check_upgrade(&req) {
        Ok(key) => key,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(auth) = &server.ws_auth {
        if let Err(refused) = auth.check(req.headers().get(header::AUTHORIZATION)) {
            tracing::debug!(%peer, "websocket upgrade refused: {refused}");
            return (StatusCode::UNAUTHORIZED, refused.to_string()).into_response();
        }
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = WebSocketConfig::default()
                    .max_frame_size(Some(MAX_FRAME_BYTES))
                    .max_message_size(Some(MAX_MESSAGE_BYTES));
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await;
                serve_socket(server, socket, peer).await;
            }
            Err(e) => tracing::debug!(%peer, "websocket upgrade failed: {e}"),
        }
    });
    let accept = derive_accept_key(key.as_bytes());
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, "upgrade"),
            (header::UPGRADE, "websocket"),
            (header::SEC_WEBSOCKET_ACCEPT, accept.as_str()),
        ],
    )
        .into_response()
}

async fn serve_socket(server: Arc<ServerState>, socket: Socket, peer: SocketAddr) {
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

/// Queues one message; a large one as a fragmented message of [`FRAGMENT_BYTES`] frames.
async fn feed(sink: &mut SplitSink<Socket, Message>, text: String) -> Result<(), ()> {
    if text.len() <= FRAGMENT_BYTES {
        return sink.feed(Message::Text(text.into())).await.map_err(drop);
    }
    let bytes = Bytes::from(text);
    let mut start = 0;
    while start < bytes.len() {
        let end = (start + FRAGMENT_BYTES).min(bytes.len());
        let opcode = if start == 0 { OpCode::Data(Data::Text) } else { OpCode::Data(Data::Continue) };
        let frame = Frame::message(bytes.slice(start..end), opcode, end == bytes.len());
        // Written out before the next fragment, so the socket buffer never holds a full copy.
        sink.send(Message::Frame(frame)).await.map_err(drop)?;
        start = end;
    }
    Ok(())
}

/// Drains the queue into the socket, flushing once per burst.
async fn write_messages(mut sink: SplitSink<Socket, Message>, mut queue: mpsc::Receiver<String>) {
    while let Some(text) = queue.recv().await {
        if feed(&mut sink, text).await.is_err() {
            return;
        }
        while let Ok(text) = queue.try_recv() {
            if feed(&mut sink, text).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
}
