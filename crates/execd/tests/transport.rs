//! Transport and envelope, asserted on the raw wire: the command line (spec §1.1),
//! the WebSocket listener (§1.2), the stdio transport (§1.4) and the JSON-RPC
//! envelope with its error codes (§2, §2.1, §13).

mod common;
use common::*;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

// ---------------------------------------------------------------------------------
// Helpers: raw HTTP, a raw WebSocket client, a raw stdio driver.
// ---------------------------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Debug)]
struct HttpResponse {
    status: u16,
    /// (lowercased name, value) in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn body_text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
}

/// Writes `request` as is and reads the response. With `Connection: close` in the
/// request the body is everything until EOF (so an empty body is really empty);
/// otherwise it is `content-length` bytes (a `101` has no body).
async fn http(addr: &str, request: &str) -> HttpResponse {
    within(&format!("HTTP response to {request:?}"), async {
        let mut tcp = TcpStream::connect(addr).await.expect("tcp connect");
        tcp.write_all(request.as_bytes()).await.expect("write request");
        let mut buf = Vec::new();
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.expect("read response");
            assert!(n > 0, "connection closed before the response head: {:?}", String::from_utf8_lossy(&buf));
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).expect("utf-8 head");
        let mut rest = buf[head_end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line {status_line:?}");
        let status = parts.next().expect("status").parse().expect("numeric status");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        let mut resp = HttpResponse { status, headers, body: Vec::new() };
        if status == 101 {
            return resp;
        }
        if request.to_ascii_lowercase().contains("\r\nconnection: close\r\n") {
            tcp.read_to_end(&mut rest).await.expect("read body");
        } else {
            let len: usize = resp.header("content-length").map_or(0, |v| v.parse().expect("content-length"));
            while rest.len() < len {
                let mut chunk = [0u8; 4096];
                let n = tcp.read(&mut chunk).await.expect("read body");
                assert!(n > 0, "connection closed inside the body");
                rest.extend_from_slice(&chunk[..n]);
            }
        }
        resp.body = rest;
        resp
    })
    .await
}

/// A plain HTTP/1.1 request that closes the connection after the response.
fn plain(method: &str, path: &str, extra: &[&str]) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A WebSocket upgrade request (the connection stays open).
fn upgrade(path: &str, extra: &[&str]) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A WebSocket client that sees every frame as sent (text vs binary, close codes),
/// and knows its own local address (the server's "peer" in parse errors).
struct RawWs {
    ws: WebSocketStream<TcpStream>,
    local: SocketAddr,
}

impl RawWs {
    /// Connects to `server` at `path` with no incoming size limits on our side.
    async fn connect(server: &Server, path: &str) -> RawWs {
        let tcp = within("tcp connect", TcpStream::connect(server.addr())).await.expect("tcp connect");
        let local = tcp.local_addr().expect("local addr");
        let config = WebSocketConfig::default().max_frame_size(None).max_message_size(None);
        let url = format!("{}{path}", server.url);
        let (ws, resp) =
            within("websocket handshake", tokio_tungstenite::client_async_with_config(url, tcp, Some(config)))
                .await
                .expect("websocket handshake");
        assert_eq!(resp.status().as_u16(), 101);
        RawWs { ws, local }
    }

    /// Connects and completes `initialize` + `initialized`.
    async fn ready(server: &Server) -> RawWs {
        let mut ws = RawWs::connect(server, "/").await;
        ws.handshake().await;
        ws
    }

    async fn handshake(&mut self) {
        let r = self.call(r#"{"id":"init","method":"initialize","params":{"clientName":"transport"}}"#).await;
        let v: Value = serde_json::from_str(&r).expect("json");
        assert!(v["result"]["sessionId"].is_string(), "{r}");
        self.send_text(r#"{"method":"initialized","params":{}}"#).await;
    }

    /// `failed to parse websocket JSON-RPC message from exec-server websocket 127.0.0.1:PORT: `
    fn parse_prefix(&self) -> String {
        format!("failed to parse websocket JSON-RPC message from exec-server websocket {}: ", self.local)
    }

    /// The exact wire text of a parse-error reply with `detail`.
    fn parse_error(&self, detail: &str) -> String {
        json!({"error": {"code": -32600, "message": format!("{}{detail}", self.parse_prefix())}, "id": -1}).to_string()
    }

    async fn send(&mut self, m: Message) {
        within("websocket send", self.ws.send(m)).await.expect("websocket send");
    }

    async fn send_text(&mut self, text: &str) {
        self.send(Message::text(text)).await;
    }

    /// The next message; `None` once the stream ended (cleanly or not).
    async fn next(&mut self) -> Option<Message> {
        match within("a websocket message", self.ws.next()).await {
            Some(Ok(m)) => Some(m),
            Some(Err(_)) | None => None,
        }
    }

    /// The next message, which must be a text message.
    async fn next_text(&mut self) -> String {
        match self.next().await {
            Some(Message::Text(t)) => t.as_str().to_owned(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Sends one text message and returns the text of the next message.
    async fn call(&mut self, text: &str) -> String {
        self.send_text(text).await;
        self.next_text().await
    }

    /// Sends a request and returns (code, message) of its error reply.
    async fn err(&mut self, id: i64, method: &str, params: Option<Value>) -> (i64, String) {
        let mut req = json!({"id": id, "method": method});
        if let Some(p) = params {
            req["params"] = p;
        }
        let text = self.call(&req.to_string()).await;
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["id"], json!(id), "{text}");
        let e = &v["error"];
        assert!(e.is_object(), "{method} {req} expected an error, got {text}");
        (e["code"].as_i64().expect("code"), e["message"].as_str().expect("message").to_owned())
    }

    /// Sends a request and returns its result, which must be a success.
    async fn ok(&mut self, id: i64, method: &str, params: Option<Value>) -> Value {
        let mut req = json!({"id": id, "method": method});
        if let Some(p) = params {
            req["params"] = p;
        }
        let text = self.call(&req.to_string()).await;
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["id"], json!(id), "{text}");
        assert!(v.get("error").is_none(), "{req} failed: {text}");
        v["result"].clone()
    }

    /// The connection must end with no further message and no Close frame.
    async fn expect_dropped(&mut self, what: &str) {
        match self.next().await {
            None => {}
            Some(Message::Close(frame)) => panic!("{what}: expected a dropped connection, got a Close frame {frame:?}"),
            Some(other) => panic!("{what}: expected a dropped connection, got {other:?}"),
        }
    }
}

/// `execd serve --listen <listen>` driven over raw stdin/stdout lines. Logs are
/// turned up to `debug` so that anything logged to stdout would break the lines.
struct RawStdio {
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl RawStdio {
    fn start(listen: &str) -> RawStdio {
        let mut child = tokio::process::Command::new(execd_bin())
            .args(["serve", "--listen", listen])
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn execd stdio");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        RawStdio { child, stdin, stdout }
    }

    /// Writes raw bytes (add `\n` yourself) and flushes.
    async fn write(&mut self, raw: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        within("stdin write", async {
            stdin.write_all(raw.as_bytes()).await.expect("write stdin");
            stdin.flush().await.expect("flush stdin");
        })
        .await;
    }

    /// The next output line without its `\n`; `None` at EOF. Every line must be a
    /// complete, `\n`-terminated, single-line JSON object.
    async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = within("a stdout line", self.stdout.read_until(b'\n', &mut buf)).await.expect("read stdout");
        if n == 0 {
            return None;
        }
        assert_eq!(buf.pop(), Some(b'\n'), "unterminated stdout line {:?}", String::from_utf8_lossy(&buf));
        let line = String::from_utf8(buf).expect("utf-8 line");
        assert!(!line.contains('\r'), "stdout line carries \\r: {line:?}");
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert!(v.is_object(), "stdout line is not an object: {line}");
        Some(line)
    }

    /// Writes one line and returns the next output line.
    async fn call(&mut self, line: &str) -> String {
        self.write(&format!("{line}\n")).await;
        self.line().await.expect("a reply line")
    }

    async fn handshake(&mut self) {
        let r = self.call(r#"{"id":1,"method":"initialize","params":{"clientName":"stdio"}}"#).await;
        let v: Value = serde_json::from_str(&r).expect("json");
        assert!(v["result"]["sessionId"].is_string(), "{r}");
        self.write("{\"method\":\"initialized\"}\n").await;
    }

    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    async fn wait(&mut self) -> std::process::ExitStatus {
        within("execd to exit", self.child.wait()).await.expect("wait execd")
    }
}

/// The exact wire text of a stdio parse-error reply with `detail`.
fn stdio_parse_error(detail: &str) -> String {
    json!({
        "error": {"code": -32600, "message": format!("failed to parse JSON-RPC message from exec-server stdio: {detail}")},
        "id": -1,
    })
    .to_string()
}

/// Runs the binary to completion with `args`; returns (exit status, stdout, stderr).
fn run_execd(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let out = std::process::Command::new(execd_bin()).args(args).stdin(Stdio::null()).output().expect("run execd");
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A JSON text message padded with an ignored member to exactly `len` bytes.
fn padded_request(id: i64, len: usize) -> String {
    let head = format!(r#"{{"id":{id},"method":"environment/status","pad":""#);
    let tail = r#""}"#;
    let pad = len - head.len() - tail.len();
    let mut s = String::with_capacity(len);
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(tail);
    assert_eq!(s.len(), len);
    s
}

const STATUS_READY: &str = r#"{"status":"ready"}"#;

// ---------------------------------------------------------------------------------
// §1.1 Command line
// ---------------------------------------------------------------------------------

/// `execd serve --listen URL` must fail, print nothing on stdout, and name the problem on stderr.
fn assert_listen_rejected(url: &str, message: &str) {
    let (status, stdout, stderr) = run_execd(&["serve", "--listen", url]);
    assert!(!status.success(), "status {status:?}");
    assert!(stdout.is_empty(), "nothing on stdout: {stdout:?}");
    assert!(stderr.contains(message), "stderr: {stderr}");
}

#[test]
fn listen_rejects_a_host_name() {
    assert_listen_rejected(
        "ws://localhost:1",
        "invalid websocket --listen URL `ws://localhost:1`; expected `ws://IP:PORT`",
    );
}

#[test]
fn listen_rejects_a_websocket_url_without_port() {
    assert_listen_rejected(
        "ws://127.0.0.1",
        "invalid websocket --listen URL `ws://127.0.0.1`; expected `ws://IP:PORT`",
    );
}

#[test]
fn listen_rejects_other_schemes() {
    assert_listen_rejected("http://x", "unsupported --listen URL `http://x`; expected `ws://IP:PORT` or `stdio`");
}

#[test]
fn listen_defaults_to_loopback_port_8765() {
    let (status, stdout, _) = run_execd(&["serve", "--help"]);
    assert!(status.success(), "status {status:?}");
    assert!(stdout.contains("[default: ws://127.0.0.1:8765]"), "help: {stdout}");
}

/// Kills (SIGKILL) a child this test started, on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn websocket_mode_prints_the_bound_url_first_on_stdout() {
    // Debug logging on: logs must go to stderr, the URL is still the first stdout line.
    let mut child = std::process::Command::new(execd_bin())
        .args(["serve", "--listen", "ws://127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn execd");
    let stdout = child.stdout.take().expect("stdout");
    let _guard = KillOnDrop(child);
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("read url");
        line
    });
    let line = within("the URL line", line).await.expect("join");
    let url = line.strip_suffix('\n').expect("a complete line");
    let port: u16 = url.strip_prefix("ws://127.0.0.1:").expect("ws://127.0.0.1:PORT").parse().expect("numeric port");
    assert_ne!(port, 0, "the bound port, not the requested 0");
    let resp = http(&format!("127.0.0.1:{port}"), &plain("GET", "/readyz", &[])).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn listen_stdio_url_form_serves_stdio() {
    for listen in ["stdio", "stdio://"] {
        let mut s = RawStdio::start(listen);
        s.handshake().await;
        assert_eq!(
            s.call(r#"{"id":2,"method":"environment/status"}"#).await,
            format!(r#"{{"id":2,"result":{STATUS_READY}}}"#),
            "{listen}"
        );
        s.close_stdin();
        assert_eq!(s.wait().await.code(), Some(0), "{listen}");
    }
}

// ---------------------------------------------------------------------------------
// §1.2 WebSocket listener: the HTTP table
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn readyz_get_and_head_are_200_with_empty_body() {
    let server = Server::start(&[]);
    for method in ["GET", "HEAD"] {
        let r = http(&server.addr(), &plain(method, "/readyz", &[])).await;
        assert_eq!(r.status, 200, "{method}");
        assert!(r.body.is_empty(), "{method} body {:?}", r.body_text());
        assert_eq!(r.header("content-length"), Some("0"), "{method}");
    }
}

#[tokio::test]
async fn readyz_post_is_405_with_allow_header() {
    let server = Server::start(&[]);
    let r = http(&server.addr(), &plain("POST", "/readyz", &["Content-Length: 0"])).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET,HEAD"));
    assert!(r.body.is_empty(), "body {:?}", r.body_text());
}

#[tokio::test]
async fn root_without_upgrade_is_400_with_text_body() {
    let server = Server::start(&[]);
    let r = http(&server.addr(), &plain("GET", "/", &[])).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.body_text(), "Connection header did not include 'upgrade'");
}

#[tokio::test]
async fn other_paths_are_404_with_empty_body_upgrade_or_not() {
    let server = Server::start(&[]);
    for path in ["/healthz", "/foo", "/readyz/x", "/x/"] {
        let r = http(&server.addr(), &plain("GET", path, &[])).await;
        assert_eq!(r.status, 404, "GET {path}");
        assert!(r.body.is_empty(), "GET {path} body {:?}", r.body_text());
        let r = http(&server.addr(), &upgrade(path, &[])).await;
        assert_eq!(r.status, 404, "upgrade {path}");
        assert!(r.body.is_empty(), "upgrade {path} body {:?}", r.body_text());
    }
}

#[tokio::test]
async fn upgrade_on_root_is_101_and_ignores_query_and_subprotocol() {
    let server = Server::start(&[]);
    let r = http(&server.addr(), &upgrade("/", &[])).await;
    assert_eq!(r.status, 101);
    assert_eq!(r.header("upgrade").map(str::to_ascii_lowercase).as_deref(), Some("websocket"));
    // RFC 6455 accept value for the sample key "dGhlIHNhbXBsZSBub25jZQ==".
    assert_eq!(r.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));

    let r = http(&server.addr(), &upgrade("/?x=1", &[])).await;
    assert_eq!(r.status, 101, "query string ignored");

    let r = http(&server.addr(), &upgrade("/", &["Sec-WebSocket-Protocol: foo, bar"])).await;
    assert_eq!(r.status, 101, "offered subprotocol does not matter");
    assert_eq!(r.header("sec-websocket-protocol"), None, "no subprotocol negotiated");

    // And `/?x=1` really is a JSON-RPC connection.
    let mut ws = RawWs::connect(&server, "/?x=1").await;
    ws.handshake().await;
    assert_eq!(
        ws.call(r#"{"id":2,"method":"environment/status"}"#).await,
        format!(r#"{{"id":2,"result":{STATUS_READY}}}"#)
    );
}

#[tokio::test]
async fn upgrade_on_readyz_is_a_plain_200() {
    let server = Server::start(&[]);
    let r = http(&server.addr(), &upgrade("/readyz", &[])).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "body {:?}", r.body_text());
    assert_eq!(r.header("sec-websocket-accept"), None);
}

#[tokio::test]
async fn any_origin_header_is_403_on_every_path() {
    let server = Server::start(&[]);
    let same_host = format!("Origin: http://{}", server.addr());
    let origins = ["Origin: null", "Origin: https://example.com", same_host.as_str(), "Origin: "];
    for origin in origins {
        let requests = [
            plain("GET", "/readyz", &[origin]),
            plain("HEAD", "/readyz", &[origin]),
            plain("POST", "/readyz", &[origin, "Content-Length: 0"]),
            plain("GET", "/", &[origin]),
            plain("GET", "/foo", &[origin]),
            upgrade("/", &[origin]),
            upgrade("/?x=1", &[origin]),
            upgrade("/readyz", &[origin]),
            upgrade("/foo", &[origin]),
        ];
        for req in requests {
            let r = http(&server.addr(), &req).await;
            assert_eq!(r.status, 403, "{req:?}");
            assert!(r.body.is_empty(), "{req:?} body {:?}", r.body_text());
        }
    }
    // A real client sending Origin is refused too.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(server.url.as_str())
        .expect("request");
    req.headers_mut().insert("origin", "null".parse().expect("header value"));
    match within("connect with Origin", tokio_tungstenite::connect_async(req)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 403),
        other => panic!("expected a 403, got {:?}", other.map(|(_, r)| r.status())),
    }
}

// ---------------------------------------------------------------------------------
// §1.2 WebSocket listener: framing
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn binary_messages_are_parsed_like_text_and_replies_are_text() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    ws.send(Message::binary(br#"{"id":1,"method":"initialize","params":{"clientName":"bin"}}"#.to_vec())).await;
    let r = ws.next_text().await;
    let v: Value = serde_json::from_str(&r).expect("json");
    assert_eq!(v["id"], 1, "{r}");
    assert!(v["result"]["sessionId"].is_string(), "{r}");
    ws.send(Message::binary(br#"{"method":"initialized"}"#.to_vec())).await;
    ws.send(Message::binary(br#"{"id":2,"method":"environment/status"}"#.to_vec())).await;
    assert_eq!(ws.next_text().await, format!(r#"{{"id":2,"result":{STATUS_READY}}}"#));
    // Parse errors are the same for binary messages.
    ws.send(Message::binary(b"[]".to_vec())).await;
    assert_eq!(ws.next_text().await, ws.parse_error("expected a JSON-RPC object"));
    ws.send(Message::binary(b"{not json".to_vec())).await;
    assert_eq!(ws.next_text().await, ws.parse_error("key must be a string at line 1 column 2"));
}

#[tokio::test]
async fn fragmented_messages_are_reassembled() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    let text = br#"{"id":7,"method":"environment/status"}"#;
    let (a, b) = text.split_at(10);
    let (b, c) = b.split_at(10);
    ws.send(Message::Frame(Frame::message(a.to_vec(), OpCode::Data(Data::Text), false))).await;
    ws.send(Message::Frame(Frame::message(b.to_vec(), OpCode::Data(Data::Continue), false))).await;
    ws.send(Message::Frame(Frame::message(c.to_vec(), OpCode::Data(Data::Continue), true))).await;
    assert_eq!(ws.next_text().await, format!(r#"{{"id":7,"result":{STATUS_READY}}}"#));
    // Binary, fragmented.
    let text = br#"{"id":8,"method":"environment/status"}"#;
    let (a, b) = text.split_at(3);
    ws.send(Message::Frame(Frame::message(a.to_vec(), OpCode::Data(Data::Binary), false))).await;
    ws.send(Message::Frame(Frame::message(b.to_vec(), OpCode::Data(Data::Continue), true))).await;
    assert_eq!(ws.next_text().await, format!(r#"{{"id":8,"result":{STATUS_READY}}}"#));
}

#[tokio::test]
async fn two_objects_in_one_message_are_a_parse_error() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    let r = ws.call("{\"id\":1,\"method\":\"environment/status\"}\n{\"id\":2,\"method\":\"environment/status\"}").await;
    // serde_json's text for a second value after the first one.
    assert_eq!(r, ws.parse_error("trailing characters at line 2 column 1"));
    // Neither request ran; the connection still works.
    assert_eq!(
        ws.call(r#"{"id":3,"method":"environment/status"}"#).await,
        format!(r#"{{"id":3,"result":{STATUS_READY}}}"#)
    );
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_payload() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    ws.send(Message::Ping(b"are you there".to_vec().into())).await;
    match ws.next().await {
        Some(Message::Pong(p)) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // Still a JSON-RPC connection afterwards.
    ws.handshake().await;
}

#[tokio::test]
async fn client_close_is_answered_with_close_1000() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await;
    match ws.next().await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected Close(1000), got {other:?}"),
    }
    assert!(ws.next().await.is_none(), "the stream ends after the close handshake");
}

#[tokio::test]
async fn a_frame_of_exactly_16_mib_is_accepted() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    ws.send_text(&padded_request(5, 16 << 20)).await;
    assert_eq!(ws.next_text().await, format!(r#"{{"id":5,"result":{STATUS_READY}}}"#));
}

#[tokio::test]
async fn a_frame_over_16_mib_drops_the_connection() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    // The write may fail midway when the server drops the connection.
    let big = padded_request(5, (16 << 20) + 1);
    let _ = within("sending a big frame", ws.ws.send(Message::text(big))).await;
    ws.expect_dropped("a 16 MiB + 1 frame").await;
}

#[tokio::test]
async fn a_fragmented_message_over_16_mib_is_accepted() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    let text = padded_request(6, 20 << 20).into_bytes();
    let (a, b) = text.split_at(10 << 20);
    ws.send(Message::Frame(Frame::message(a.to_vec(), OpCode::Data(Data::Text), false))).await;
    ws.send(Message::Frame(Frame::message(b.to_vec(), OpCode::Data(Data::Continue), true))).await;
    assert_eq!(ws.next_text().await, format!(r#"{{"id":6,"result":{STATUS_READY}}}"#));
}

#[tokio::test]
async fn a_message_over_64_mib_drops_the_connection() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    let chunk = vec![b' '; 8 << 20];
    let sent = within("sending 64 MiB + 1 in fragments", async {
        ws.ws.send(Message::Frame(Frame::message(b"{".to_vec(), OpCode::Data(Data::Text), false))).await?;
        for _ in 0..8 {
            ws.ws.send(Message::Frame(Frame::message(chunk.clone(), OpCode::Data(Data::Continue), false))).await?;
        }
        ws.ws.send(Message::Frame(Frame::message(b"}".to_vec(), OpCode::Data(Data::Continue), true))).await
    })
    .await;
    let _ = sent; // may fail once the server has dropped the connection
    ws.expect_dropped("a 64 MiB + 2 message").await;
}

// ---------------------------------------------------------------------------------
// §2 Envelope
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn success_and_error_member_order_without_jsonrpc() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    // Pre-handshake gate error: error first, id last, no data, no jsonrpc.
    assert_eq!(
        ws.call(r#"{"id":1,"method":"environment/status"}"#).await,
        r#"{"error":{"code":-32600,"message":"client must call initialize before using environment status methods"},"id":1}"#
    );
    let init = ws.call(r#"{"id":2,"method":"initialize","params":{"clientName":"order"}}"#).await;
    assert!(init.starts_with(r#"{"id":2,"result":{"sessionId":""#), "{init}");
    assert!(!init.contains("jsonrpc"), "{init}");
    ws.send_text(r#"{"method":"initialized"}"#).await;
    assert_eq!(
        ws.call(r#"{"id":3,"method":"environment/status"}"#).await,
        format!(r#"{{"id":3,"result":{STATUS_READY}}}"#)
    );
    assert_eq!(
        ws.call(r#"{"id":4,"method":"nope"}"#).await,
        r#"{"error":{"code":-32601,"message":"exec-server stub does not implement `nope` yet"},"id":4}"#
    );
    // Notifications carry no jsonrpc member either.
    let start = json!({"id": 5, "method": "process/start", "params": {
        "processId": "p", "argv": ["echo", "hi"], "cwd": "file:///tmp",
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"}, "tty": false}});
    ws.send_text(&start.to_string()).await;
    let mut seen = Vec::new();
    while !seen.iter().any(|t: &String| t.contains(r#""method":"process/closed""#)) {
        seen.push(ws.next_text().await);
    }
    assert!(seen.contains(&r#"{"id":5,"result":{"processId":"p","sandboxType":"none"}}"#.to_owned()), "{seen:?}");
    assert!(
        seen.contains(
            &r#"{"method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"aGkK"}}"#
                .to_owned()
        ),
        "{seen:?}"
    );
    assert!(seen.iter().all(|t| !t.contains("jsonrpc")), "{seen:?}");
}

#[tokio::test]
async fn incoming_jsonrpc_and_unknown_members_are_ignored() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    let init = ws
        .call(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"clientName":"j"},"extra":{"a":[1]}}"#)
        .await;
    assert!(init.starts_with(r#"{"id":1,"result":{"sessionId":"#), "{init}");
    ws.send_text(r#"{"jsonrpc":"2.0","method":"initialized","params":{},"x":1}"#).await;
    for (i, jsonrpc) in [r#""2.0""#, r#""1.0""#, "7", "null", "{}"].iter().enumerate() {
        let id = i + 10;
        assert_eq!(
            ws.call(&format!(r#"{{"jsonrpc":{jsonrpc},"id":{id},"method":"environment/status","foo":"bar"}}"#)).await,
            format!(r#"{{"id":{id},"result":{STATUS_READY}}}"#),
            "jsonrpc {jsonrpc}"
        );
    }
}

#[tokio::test]
async fn ids_are_echoed_verbatim() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    let ids = [
        "-9223372036854775808",
        "9223372036854775807",
        "0",
        "-1",
        "-42",
        "1",
        r#""1""#,
        r#""abc""#,
        r#""""#,
        r#""with space and \"quote\"""#,
    ];
    for id in ids {
        assert_eq!(
            ws.call(&format!(r#"{{"id":{id},"method":"environment/status"}}"#)).await,
            format!(r#"{{"id":{id},"result":{STATUS_READY}}}"#),
            "success with id {id}"
        );
        assert_eq!(
            ws.call(&format!(r#"{{"id":{id},"method":"no/such"}}"#)).await,
            format!(
                r#"{{"error":{{"code":-32601,"message":"exec-server stub does not implement `no/such` yet"}},"id":{id}}}"#
            ),
            "error with id {id}"
        );
    }
}

#[tokio::test]
async fn parse_errors_over_websocket_answer_id_minus_1_and_keep_the_connection() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    let cases: &[(&str, &str)] = &[
        ("[]", "expected a JSON-RPC object"),
        ("5", "expected a JSON-RPC object"),
        (r#""x""#, "expected a JSON-RPC object"),
        (r#"[{"id":1,"method":"environment/status"}]"#, "expected a JSON-RPC object"),
        ("{not json", "key must be a string at line 1 column 2"),
        (r#"{"id":null,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (r#"{"id":1.5,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (r#"{"id":1e3,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (r#"{"id":true,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (
            r#"{"id":9223372036854775808,"method":"environment/status"}"#,
            "data did not match any variant of untagged enum RequestId",
        ),
        (
            r#"{"id":-9223372036854775809,"method":"environment/status"}"#,
            "data did not match any variant of untagged enum RequestId",
        ),
        (r#"{"id":1}"#, "missing field `error`"),
        ("{}", "missing field `error`"),
        (r#"{"id":1,"params":{}}"#, "missing field `error`"),
    ];
    for round in ["before initialize", "after initialize"] {
        for (input, detail) in cases {
            assert_eq!(ws.call(input).await, ws.parse_error(detail), "{round}: {input}");
        }
        // A non-string method is a parse error too (detail is serde text).
        let r = ws.call(r#"{"id":1,"method":5}"#).await;
        let v: Value = serde_json::from_str(&r).expect("json");
        assert_eq!((v["id"].clone(), v["error"]["code"].clone()), (json!(-1), json!(-32600)), "{r}");
        assert!(v["error"]["message"].as_str().expect("message").starts_with(&ws.parse_prefix()), "{r}");
        if round == "before initialize" {
            ws.handshake().await;
        }
    }
    assert_eq!(
        ws.call(r#"{"id":99,"method":"environment/status"}"#).await,
        format!(r#"{{"id":99,"result":{STATUS_READY}}}"#)
    );
}

#[tokio::test]
async fn unknown_request_methods_are_32601() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    for (i, method) in
        ["foo", "initialized", "", "Initialize", "environment/Status", "process/resize", "$/cancelRequest"]
            .iter()
            .enumerate()
    {
        let (code, msg) = ws.err(i as i64, method, Some(json!({}))).await;
        assert_eq!(code, -32601, "{method:?}");
        assert_eq!(msg, format!("exec-server stub does not implement `{method}` yet"), "{method:?}");
    }
    // Without params too, and the connection is still fine.
    assert_eq!(ws.err(50, "foo/bar", None).await, (-32601, "exec-server stub does not implement `foo/bar` yet".into()));
    assert_eq!(ws.ok(51, "environment/status", None).await, json!({"status": "ready"}));
}

#[tokio::test]
async fn unknown_notifications_drop_the_connection_without_reply_or_close() {
    let server = Server::start(&[]);
    let notifications = [
        r#"{"method":"foo/bar","params":{}}"#,
        r#"{"method":"$/cancelRequest","params":{"id":1}}"#,
        r#"{"method":"Initialized"}"#,
        r#"{"method":"environment/status"}"#,
        r#"{"method":""}"#,
    ];
    for n in notifications {
        let mut ws = RawWs::ready(&server).await;
        ws.send_text(n).await;
        // Nothing after the violation is answered.
        ws.send_text(r#"{"id":99,"method":"environment/status"}"#).await;
        ws.expect_dropped(n).await;
    }
    // Before the handshake as well.
    let mut ws = RawWs::connect(&server, "/").await;
    ws.send_text(r#"{"method":"foo/bar"}"#).await;
    ws.send_text(r#"{"id":99,"method":"initialize","params":{"clientName":"x"}}"#).await;
    ws.expect_dropped("foo/bar before initialize").await;
}

#[tokio::test]
async fn client_responses_and_errors_drop_the_connection_without_reply_or_close() {
    let server = Server::start(&[]);
    let messages = [
        r#"{"id":1,"result":{}}"#,
        r#"{"id":"a","result":[1,2]}"#,
        r#"{"id":1,"error":{"code":-32000,"message":"x"}}"#,
        r#"{"id":-1,"error":{"code":1,"message":""}}"#,
    ];
    for m in messages {
        let mut ws = RawWs::ready(&server).await;
        ws.send_text(m).await;
        ws.send_text(r#"{"id":99,"method":"environment/status"}"#).await;
        ws.expect_dropped(m).await;
    }
}

// ---------------------------------------------------------------------------------
// §2 params handling
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn methods_without_params_accept_absent_null_and_empty_object() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    for method in ["environment/info", "environment/status"] {
        let absent = ws.ok(1, method, None).await;
        assert_eq!(ws.ok(2, method, Some(Value::Null)).await, absent, "{method} null");
        assert_eq!(ws.ok(3, method, Some(json!({}))).await, absent, "{method} {{}}");
        if method == "environment/status" {
            assert_eq!(absent, json!({"status": "ready"}));
        } else {
            assert!(absent["capabilities"].is_object(), "{absent}");
        }
    }
}

#[tokio::test]
async fn methods_without_params_reject_anything_else_with_32602() {
    let server = Server::start(&[]);
    let mut ws = RawWs::ready(&server).await;
    for method in ["environment/info", "environment/status"] {
        let cases = [
            (json!({"a": 1}), "invalid type: map, expected unit"),
            (json!([]), "invalid type: sequence, expected unit"),
            (json!([1]), "invalid type: sequence, expected unit"),
            (json!(5), "invalid type: number, expected unit"),
        ];
        for (params, message) in cases {
            assert_eq!(
                ws.err(1, method, Some(params.clone())).await,
                (-32602, message.to_owned()),
                "{method} {params}"
            );
        }
    }
    // Decoded before the gate: a fresh connection gets -32602, not -32600.
    let mut fresh = RawWs::connect(&server, "/").await;
    assert_eq!(
        fresh.err(1, "environment/status", Some(json!({"a": 1}))).await,
        (-32602, "invalid type: map, expected unit".to_owned())
    );
    assert_eq!(
        fresh.err(2, "environment/status", Some(json!({}))).await,
        (-32600, "client must call initialize before using environment status methods".to_owned())
    );
}

const STRUCTS: [(&str, &str); 7] = [
    ("initialize", "InitializeParams"),
    ("process/start", "WireExecParams"),
    ("process/read", "ReadParams"),
    ("process/write", "WriteParams"),
    ("process/signal", "SignalParams"),
    ("process/terminate", "TerminateParams"),
    ("environmentConfig/read", "EnvironmentConfigReadParams"),
];

#[tokio::test]
async fn null_or_absent_struct_params_name_the_struct() {
    let server = Server::start(&[]);
    let mut fresh = RawWs::connect(&server, "/").await;
    let mut ready = RawWs::ready(&server).await;
    for ws in [&mut fresh, &mut ready] {
        for (method, name) in STRUCTS {
            let expected = (-32602, format!("invalid type: null, expected struct {name}"));
            assert_eq!(ws.err(1, method, None).await, expected, "{method} absent");
            assert_eq!(ws.err(2, method, Some(Value::Null)).await, expected, "{method} null");
        }
    }
}

#[tokio::test]
async fn missing_members_are_reported_in_declaration_order() {
    let server = Server::start(&[]);
    let mut fresh = RawWs::connect(&server, "/").await;
    let mut ready = RawWs::ready(&server).await;
    // (method, members in declaration order with valid values)
    let table: [(&str, Vec<(&str, Value)>); 7] = [
        ("initialize", vec![("clientName", json!("c"))]),
        (
            "process/start",
            vec![
                ("processId", json!("p")),
                ("argv", json!(["true"])),
                ("cwd", json!("file:///tmp")),
                ("env", json!({})),
                ("tty", json!(false)),
            ],
        ),
        ("process/read", vec![("processId", json!("p"))]),
        ("process/write", vec![("processId", json!("p")), ("chunk", json!("")), ("writeId", json!("w"))]),
        ("process/signal", vec![("processId", json!("p")), ("signal", json!("interrupt"))]),
        ("process/terminate", vec![("processId", json!("p"))]),
        (
            "environmentConfig/read",
            vec![("cwd", json!("file:///tmp")), ("configPaths", json!([])), ("requirementsPaths", json!([]))],
        ),
    ];
    for ws in [&mut fresh, &mut ready] {
        for (method, members) in &table {
            let mut params = json!({});
            for (name, value) in members {
                assert_eq!(
                    ws.err(1, method, Some(params.clone())).await,
                    (-32602, format!("missing field `{name}`")),
                    "{method} {params}"
                );
                params[*name] = value.clone();
            }
            // Declaration order, not textual order: only the last member present.
            if members.len() > 1 {
                let (last, value) = members.last().expect("last");
                let mut only_last = json!({});
                only_last[*last] = value.clone();
                assert_eq!(
                    ws.err(2, method, Some(only_last.clone())).await,
                    (-32602, format!("missing field `{}`", members[0].0)),
                    "{method} {only_last}"
                );
            }
        }
    }
}

#[tokio::test]
async fn wrong_types_and_negative_unsigned_values_are_32602() {
    let server = Server::start(&[]);
    let mut fresh = RawWs::connect(&server, "/").await;
    let mut ready = RawWs::ready(&server).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("initialize", json!({"clientName": 5}), "invalid type: number, expected a string"),
        ("process/read", json!({"processId": 5}), "invalid type: number, expected a string"),
        ("process/terminate", json!({"processId": 1.5}), "invalid type: number, expected a string"),
        (
            "process/start",
            json!({"processId": 7, "argv": ["true"], "cwd": "file:///tmp", "env": {}, "tty": false}),
            "invalid type: number, expected a string",
        ),
        ("process/read", json!({"processId": "p", "afterSeq": -1}), "invalid number"),
        ("process/read", json!({"processId": "p", "maxBytes": -1}), "invalid number"),
        ("process/read", json!({"processId": "p", "waitMs": -5}), "invalid number"),
        (
            "process/signal",
            json!({"processId": "p", "signal": "stop"}),
            "unknown variant `stop`, expected one of `interrupt`, `terminate`, `kill`, `hangup`, `quit`, `user1`, `user2`",
        ),
    ];
    for ws in [&mut fresh, &mut ready] {
        for (method, params, message) in &cases {
            assert_eq!(
                ws.err(1, method, Some(params.clone())).await,
                (-32602, (*message).to_owned()),
                "{method} {params}"
            );
        }
    }
}

#[tokio::test]
async fn unknown_param_members_are_ignored() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    let r = ws.ok(1, "initialize", Some(json!({"clientName": "u", "bogus": {"x": 1}, "resumeSessionId": null}))).await;
    assert!(r["sessionId"].is_string(), "{r}");
    ws.send_text(r#"{"method":"initialized"}"#).await;
    assert_eq!(
        ws.ok(2, "process/terminate", Some(json!({"processId": "none", "bogus": [1]}))).await,
        json!({"running": false})
    );
    assert_eq!(
        ws.ok(3, "process/signal", Some(json!({"processId": "none", "signal": "interrupt", "z": 0}))).await,
        json!({})
    );
    assert_eq!(
        ws.ok(4, "process/write", Some(json!({"processId": "none", "chunk": "", "writeId": "w", "q": true}))).await,
        json!({"status": "unknownProcess"})
    );
    // Decoded fine, then the handler's own error.
    assert_eq!(
        ws.err(5, "process/read", Some(json!({"processId": "none", "bogus": 1}))).await,
        (-32600, "unknown process id none".to_owned())
    );
}

#[tokio::test]
async fn positional_array_params_are_accepted_in_declaration_order() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    let r = ws.ok(1, "initialize", Some(json!(["positional"]))).await;
    assert!(r["sessionId"].is_string(), "{r}");
    ws.send_text(r#"{"method":"initialized"}"#).await;
    assert_eq!(ws.ok(2, "process/terminate", Some(json!(["none"]))).await, json!({"running": false}));
    assert_eq!(ws.ok(3, "process/signal", Some(json!(["none", "interrupt"]))).await, json!({}));
}

#[tokio::test]
async fn params_are_decoded_before_the_handshake_gate() {
    let server = Server::start(&[]);
    let mut ws = RawWs::connect(&server, "/").await;
    assert_eq!(ws.err(1, "process/start", Some(json!({}))).await, (-32602, "missing field `processId`".to_owned()));
    let valid = json!({"processId": "p", "argv": ["true"], "cwd": "file:///tmp", "env": {}, "tty": false});
    assert_eq!(
        ws.err(2, "process/start", Some(valid.clone())).await,
        (-32600, "client must call initialize before using exec methods".to_owned())
    );
    ws.ok(3, "initialize", Some(json!({"clientName": "g"}))).await;
    assert_eq!(ws.err(4, "process/read", Some(json!({}))).await, (-32602, "missing field `processId`".to_owned()));
    assert_eq!(
        ws.err(5, "process/read", Some(json!({"processId": "p"}))).await,
        (-32600, "client must send initialized before using exec methods".to_owned())
    );
}

// ---------------------------------------------------------------------------------
// §1.4 stdio
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn stdio_ignores_blank_lines_and_tolerates_crlf() {
    let mut s = RawStdio::start("stdio");
    // Blank and whitespace-only lines produce nothing (the first reply is to id 1).
    s.write("\n\n   \n\t \r\n\r\n").await;
    s.write("{\"id\":1,\"method\":\"initialize\",\"params\":{\"clientName\":\"crlf\"}}\r\n").await;
    let r = s.line().await.expect("reply");
    assert!(r.starts_with(r#"{"id":1,"result":{"sessionId":"#), "{r}");
    s.write("{\"method\":\"initialized\"}\r\n   \n").await;
    s.write("{\"id\":2,\"method\":\"environment/status\"}\r\n").await;
    assert_eq!(s.line().await.expect("reply"), format!(r#"{{"id":2,"result":{STATUS_READY}}}"#));
    // A message split over several writes is processed when its newline arrives.
    s.write("{\"id\":3,\"method\":").await;
    s.write("\"environment/status\"}").await;
    s.write("\n").await;
    assert_eq!(s.line().await.expect("reply"), format!(r#"{{"id":3,"result":{STATUS_READY}}}"#));
    // Two messages in one write are two lines.
    s.write("{\"id\":4,\"method\":\"environment/status\"}\n{\"id\":5,\"method\":\"nope\"}\n").await;
    assert_eq!(s.line().await.expect("reply"), format!(r#"{{"id":4,"result":{STATUS_READY}}}"#));
    assert_eq!(
        s.line().await.expect("reply"),
        r#"{"error":{"code":-32601,"message":"exec-server stub does not implement `nope` yet"},"id":5}"#
    );
}

#[tokio::test]
async fn stdio_unterminated_last_line_is_never_processed() {
    let mut s = RawStdio::start("stdio");
    s.handshake().await;
    s.write(r#"{"id":9,"method":"environment/status"}"#).await;
    s.close_stdin();
    assert_eq!(s.line().await, None, "no reply to a message without its newline");
    assert_eq!(s.wait().await.code(), Some(0));
}

#[tokio::test]
async fn stdio_parse_errors_answer_id_minus_1_and_keep_going() {
    let mut s = RawStdio::start("stdio");
    let cases: &[(&str, &str)] = &[
        ("[]", "expected a JSON-RPC object"),
        ("5", "expected a JSON-RPC object"),
        (r#""x""#, "expected a JSON-RPC object"),
        ("{not json", "key must be a string at line 1 column 2"),
        (r#"{"id":null,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (r#"{"id":1.5,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (r#"{"id":1e3,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (r#"{"id":true,"method":"environment/status"}"#, "data did not match any variant of untagged enum RequestId"),
        (
            r#"{"id":9223372036854775808,"method":"environment/status"}"#,
            "data did not match any variant of untagged enum RequestId",
        ),
        (r#"{"id":1}"#, "missing field `error`"),
        ("{}", "missing field `error`"),
    ];
    for (input, detail) in cases {
        assert_eq!(s.call(input).await, stdio_parse_error(detail), "{input}");
    }
    // With a trailing \r the detail is the same.
    s.write("{not json\r\n").await;
    assert_eq!(s.line().await.expect("reply"), stdio_parse_error("key must be a string at line 1 column 2"));
    s.handshake().await;
    assert_eq!(
        s.call(r#"{"id":-9223372036854775808,"method":"environment/status"}"#).await,
        format!(r#"{{"id":-9223372036854775808,"result":{STATUS_READY}}}"#)
    );
}

/// Starts a process over `s` that prints its own pid; returns the pid.
async fn stdio_start_pid_printer(s: &mut RawStdio, id: &str, tty: bool) -> u32 {
    let req = json!({"id": format!("start-{id}"), "method": "process/start", "params": {
        "processId": id, "argv": ["sh", "-c", "echo $$; exec sleep 1000"], "cwd": "file:///tmp",
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"}, "tty": tty}});
    s.write(&format!("{req}\n")).await;
    let mut started = false;
    let mut out = Vec::new();
    loop {
        let line = s.line().await.expect("a line");
        let v: Value = serde_json::from_str(&line).expect("json");
        if v["id"] == json!(format!("start-{id}")) {
            assert_eq!(v["result"], json!({"processId": id, "sandboxType": "none"}), "{line}");
            started = true;
        } else if v["method"] == "process/output" && v["params"]["processId"] == id {
            out.extend(unb64(v["params"]["chunk"].as_str().expect("chunk")));
        }
        if started && out.contains(&b'\n') {
            let text = String::from_utf8(out).expect("utf-8");
            return text.trim().parse().unwrap_or_else(|_| panic!("pid line {text:?}"));
        }
    }
}

#[tokio::test]
async fn stdio_eof_exits_0_and_kills_every_process() {
    let mut s = RawStdio::start("stdio");
    s.handshake().await;
    let pipe_pid = stdio_start_pid_printer(&mut s, "pipe", false).await;
    let tty_pid = stdio_start_pid_printer(&mut s, "tty", true).await;
    assert!(alive(pipe_pid) && alive(tty_pid), "both processes run before EOF");
    s.close_stdin();
    let status = s.wait().await;
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    // Whatever was still written to stdout is well-formed lines; then EOF.
    while s.line().await.is_some() {}
    eventually("the pipe process to be killed", || !alive(pipe_pid)).await;
    eventually("the tty process to be killed", || !alive(tty_pid)).await;
}

#[tokio::test]
async fn stdio_output_is_one_json_object_per_line() {
    let mut s = RawStdio::start("stdio");
    s.handshake().await;
    // A multi-line output and a notification stream, all compact single lines.
    let req = json!({"id": 2, "method": "process/start", "params": {
        "processId": "p", "argv": ["printf", "a\\nb\\n\\n"], "cwd": "file:///tmp",
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"}, "tty": false}});
    s.write(&format!("{req}\n")).await;
    let mut lines = Vec::new();
    loop {
        let line = s.line().await.expect("a line"); // checks: terminated, JSON object, no \r
        let done = line.contains(r#""method":"process/closed""#);
        lines.push(line);
        if done {
            break;
        }
    }
    assert!(lines.contains(&r#"{"id":2,"result":{"processId":"p","sandboxType":"none"}}"#.to_owned()), "{lines:?}");
    assert!(
        lines.contains(
            &r#"{"method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"YQpiCgo="}}"#
                .to_owned()
        ),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("jsonrpc") && !l.contains(": ")), "{lines:?}");
}
