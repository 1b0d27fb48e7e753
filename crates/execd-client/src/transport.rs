//! Transports: a WebSocket to `ws://…`, or the stdio of a child `execd serve --listen stdio`.
//! Both carry one JSON message per frame (per line on stdio).

use crate::ClientError;
use futures_util::{SinkExt, StreamExt};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// A WebSocket URL (`ws://host:port`), with an optional bearer token.
    WebSocket {
        /// The URL.
        url: String,
        /// Sent as `Authorization: Bearer <token>`.
        token: Option<String>,
    },
    /// A server started as a child process speaking newline-delimited JSON on
    /// its stdio (`execd serve --listen stdio`). Its session ends with the
    /// child, so it cannot be resumed.
    Stdio {
        /// The program (e.g. the path of `execd`).
        program: String,
        /// Its arguments (e.g. `["serve", "--listen", "stdio"]`).
        args: Vec<String>,
    },
}

impl Endpoint {
    /// Whether a dropped connection can be resumed.
    pub fn resumable(&self) -> bool {
        matches!(self, Endpoint::WebSocket { .. })
    }
}

/// An open connection: outgoing texts go into `tx`; incoming texts come out of
/// `rx`, which ends when the connection does.
pub(crate) struct Link {
    pub(crate) tx: mpsc::Sender<String>,
    pub(crate) rx: mpsc::Receiver<String>,
}

/// Messages buffered per direction inside a link.
const LINK_QUEUE: usize = 64;

/// Opens a connection.
pub(crate) async fn open(endpoint: &Endpoint) -> Result<Link, ClientError> {
    match endpoint {
        Endpoint::WebSocket { url, token } => open_ws(url, token.as_deref()).await,
        Endpoint::Stdio { program, args } => open_stdio(program, args),
    }
}

async fn open_ws(url: &str, token: Option<&str>) -> Result<Link, ClientError> {
    let mut request = url.into_client_request().map_err(|e| ClientError::BadUrl(url.to_owned(), e.to_string()))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::BadUrl(url.to_owned(), "the token is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await.map_err(|e| connect_error(url, e))?;
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        let _ = tcp.set_nodelay(true);
    }
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<String>(LINK_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<String>(LINK_QUEUE);
    tokio::spawn(async move {
        while let Some(text) = out_rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    tokio::spawn(async move {
        while let Some(Ok(message)) = stream.next().await {
            let text = match message {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                Message::Close(_) => break,
                _ => continue,
            };
            if in_tx.send(text).await.is_err() {
                break;
            }
        }
    });
    Ok(Link { tx: out_tx, rx: in_rx })
}

fn connect_error(url: &str, e: tokio_tungstenite::tungstenite::Error) -> ClientError {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::Http(response) if matches!(response.status().as_u16(), 401 | 403) => {
            ClientError::Unauthorized(url.to_owned(), response.status().as_u16())
        }
        E::Url(e) => ClientError::BadUrl(url.to_owned(), e.to_string()),
        E::Io(e) => ClientError::Connect(url.to_owned(), e.to_string()),
        other => ClientError::Connect(url.to_owned(), other.to_string()),
    }
}

fn open_stdio(program: &str, args: &[String]) -> Result<Link, ClientError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ClientError::Connect(program.to_owned(), e.to_string()))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(ClientError::Connect(program.to_owned(), "no stdio pipes".into()));
    };
    let (out_tx, mut out_rx) = mpsc::channel::<String>(LINK_QUEUE);
    let (in_tx, in_rx) = mpsc::channel::<String>(LINK_QUEUE);
    tokio::spawn(async move {
        while let Some(mut text) = out_rx.recv().await {
            text.push('\n');
            if stdin.write_all(text.as_bytes()).await.is_err() {
                break;
            }
        }
        // Closing stdin ends the server, which kills its processes; then reap it.
        drop(stdin);
        let _ = child.wait().await;
    });
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if in_tx.send(line).await.is_err() {
                break;
            }
        }
    });
    Ok(Link { tx: out_tx, rx: in_rx })
}
