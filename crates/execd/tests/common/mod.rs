//! Test harness: runs the real `execd` binary and talks to it as a client would,
//! over a real WebSocket or over stdio. Every wait goes through [`within`], one
//! deadline for all; nothing sleeps to wait for an event.
#![allow(dead_code)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// The one deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Awaits `fut`, failing the test if it takes longer than [`DEADLINE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut).await.unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Polls `cond` until it holds, under [`DEADLINE`]. For conditions with no event
/// to wait on (a pid disappearing from /proc).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            retry_pause().await;
        }
    })
    .await
}

/// The pause between two attempts of a retry loop that runs under [`within`],
/// for conditions no event announces (the server noticing a disconnect, a
/// retention timer, a pid leaving /proc). The one place tests pause.
pub async fn retry_pause() {
    tokio::time::sleep(Duration::from_millis(20)).await; // allowed: polling interval of deadline-bounded retries
}

/// The path of the built `execd` binary.
pub fn execd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_execd")
}

/// A running `execd serve --listen ws://127.0.0.1:0`, killed (SIGTERM) on drop.
pub struct Server {
    child: Child,
    /// `ws://127.0.0.1:PORT`
    pub url: String,
}

impl Server {
    /// Starts a server with extra arguments.
    pub fn start(extra: &[&str]) -> Server {
        Server::spawn(Command::new(execd_bin()), extra)
    }

    /// Starts a server whose environment is exactly `vars`.
    pub fn start_with_env(vars: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(execd_bin());
        cmd.env_clear().envs(vars.iter().copied());
        Server::spawn(cmd, &[])
    }

    fn spawn(mut cmd: Command, extra: &[&str]) -> Server {
        let mut child = cmd
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn execd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read url");
        let url = line.trim().to_owned();
        assert!(url.starts_with("ws://127.0.0.1:"), "first stdout line is the URL, got {url:?}");
        Server { child, url }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("ws://").to_owned()
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new, un-initialized WebSocket client.
    pub async fn connect(&self) -> Client {
        Client::websocket(&self.url).await
    }

    /// A client that completed the handshake.
    pub async fn client(&self) -> Client {
        let mut c = self.connect().await;
        c.handshake().await;
        c
    }

    /// Sends SIGTERM and waits for the server to exit; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().expect("wait execd")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// What the reader task saw.
enum Inbound {
    Json(Value),
    /// A non-JSON or non-text frame (recorded for transport tests).
    Other(Message),
    /// The connection ended; the close code if a Close frame came.
    Closed(Option<u16>),
}

enum Outbound {
    Text(String),
    Ws(Message),
}

/// A JSON-RPC client over WebSocket or stdio.
pub struct Client {
    out: mpsc::UnboundedSender<Outbound>,
    inbox: mpsc::UnboundedReceiver<Inbound>,
    backlog: VecDeque<Value>,
    others: VecDeque<Message>,
    closed: Option<Option<u16>>,
    next_id: i64,
    /// The stdio server process, when this client owns one.
    pub stdio_child: Option<tokio::process::Child>,
    /// The session id after [`Client::handshake`].
    pub session_id: String,
}

/// A JSON-RPC error: (code, message).
pub type RpcError = (i64, String);

impl Client {
    /// Connects to a WebSocket URL.
    pub async fn websocket(url: &str) -> Client {
        Client::websocket_authorized(url, None).await
    }

    /// Connects to a WebSocket URL, sending `Authorization: <authorization>` if given.
    pub async fn websocket_authorized(url: &str, authorization: Option<&str>) -> Client {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request().expect("request");
        if let Some(value) = authorization {
            request.headers_mut().insert("authorization", value.parse().expect("header value"));
        }
        let (ws, _) = within("websocket connect", tokio_tungstenite::connect_async(request)).await.expect("connect");
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
        let (in_tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let msg = match m {
                    Outbound::Text(t) => Message::Text(t.into()),
                    Outbound::Ws(m) => m,
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
            // The client was dropped: close the connection like a real client going away.
            let _ = sink.close().await;
        });
        tokio::spawn(async move {
            let mut code = None;
            while let Some(m) = stream.next().await {
                match m {
                    Ok(Message::Text(t)) => match serde_json::from_str(&t) {
                        Ok(v) => {
                            let _ = in_tx.send(Inbound::Json(v));
                        }
                        Err(_) => {
                            let _ = in_tx.send(Inbound::Other(Message::Text(t)));
                        }
                    },
                    Ok(Message::Close(frame)) => code = frame.map(|f| u16::from(f.code)),
                    Ok(other) => {
                        let _ = in_tx.send(Inbound::Other(other));
                    }
                    Err(_) => break,
                }
            }
            let _ = in_tx.send(Inbound::Closed(code));
        });
        Client::new(out, inbox, None)
    }

    /// Starts `execd serve --listen stdio` and talks to it over its stdin/stdout.
    pub async fn stdio(extra: &[&str]) -> Client {
        let mut child = tokio::process::Command::new(execd_bin())
            .args(["serve", "--listen", "stdio"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn execd stdio");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (out, mut out_rx) = mpsc::unbounded_channel::<Outbound>();
        let (in_tx, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(m) = out_rx.recv().await {
                let Outbound::Text(t) = m else { continue };
                if stdin.write_all(t.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
            // Dropping stdin closes the server's input.
        });
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                let _ = in_tx.send(Inbound::Json(v));
            }
            let _ = in_tx.send(Inbound::Closed(None));
        });
        Client::new(out, inbox, Some(child))
    }

    fn new(
        out: mpsc::UnboundedSender<Outbound>,
        inbox: mpsc::UnboundedReceiver<Inbound>,
        stdio_child: Option<tokio::process::Child>,
    ) -> Client {
        Client {
            out,
            inbox,
            backlog: VecDeque::new(),
            others: VecDeque::new(),
            closed: None,
            next_id: 1,
            stdio_child,
            session_id: String::new(),
        }
    }

    /// Sends raw text (one WebSocket text message, or one stdio line: add the `\n` yourself).
    pub fn send_text(&self, text: impl Into<String>) {
        let _ = self.out.send(Outbound::Text(text.into()));
    }

    /// Sends one JSON value (a stdio line gets its `\n`).
    pub fn send(&self, v: &Value) {
        let mut text = v.to_string();
        if self.stdio_child.is_some() {
            text.push('\n');
        }
        self.send_text(text);
    }

    /// Sends a raw WebSocket message (binary, ping, close...).
    pub fn send_ws(&self, m: Message) {
        let _ = self.out.send(Outbound::Ws(m));
    }

    /// Sends a request without waiting; returns its id.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params}));
        id
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"method": method, "params": params}));
    }

    async fn pull(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        match self.inbox.recv().await {
            Some(Inbound::Json(v)) => {
                self.backlog.push_back(v);
                true
            }
            Some(Inbound::Other(m)) => {
                self.others.push_back(m);
                true
            }
            Some(Inbound::Closed(code)) => {
                self.closed = Some(code);
                false
            }
            None => {
                self.closed = Some(None);
                false
            }
        }
    }

    /// The next message in arrival order; `None` once the connection ended.
    pub async fn recv(&mut self) -> Option<Value> {
        within("a message", async {
            loop {
                if let Some(v) = self.backlog.pop_front() {
                    return Some(v);
                }
                if !self.pull().await {
                    return None;
                }
            }
        })
        .await
    }

    /// The next non-JSON WebSocket message (pong, binary...).
    pub async fn recv_other(&mut self) -> Option<Message> {
        within("a non-JSON message", async {
            loop {
                if let Some(m) = self.others.pop_front() {
                    return Some(m);
                }
                if !self.pull().await {
                    return None;
                }
            }
        })
        .await
    }

    /// Removes and returns the first buffered-or-future message matching `pred`.
    pub async fn take(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        within(what, async {
            loop {
                if let Some(i) = self.backlog.iter().position(&mut pred) {
                    return self.backlog.remove(i).expect("index");
                }
                assert!(self.pull().await, "connection closed while waiting for {what}");
            }
        })
        .await
    }

    /// The raw response (`result` or `error` object) to request `id`.
    pub async fn response(&mut self, id: i64) -> Value {
        self.take(&format!("response {id}"), |v| v.get("id") == Some(&json!(id)) && v.get("method").is_none()).await
    }

    /// Sends a request and awaits its result or error.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.send_request(method, params);
        let resp = self.response(id).await;
        into_result(resp)
    }

    /// Sends a request that must succeed.
    pub async fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params.clone()).await.unwrap_or_else(|e| panic!("{method} {params} failed: {e:?}"))
    }

    /// Sends a request that must fail; returns (code, message).
    pub async fn err(&mut self, method: &str, params: Value) -> RpcError {
        match self.call(method, params.clone()).await {
            Ok(v) => panic!("{method} {params} unexpectedly succeeded: {v}"),
            Err(e) => e,
        }
    }

    /// `initialize` + `initialized`.
    pub async fn handshake(&mut self) -> Value {
        let r = self.ok("initialize", json!({"clientName": "test"})).await;
        self.session_id = r["sessionId"].as_str().expect("sessionId").to_owned();
        self.notify("initialized", json!({}));
        r
    }

    /// `initialize{resumeSessionId}` + `initialized`.
    pub async fn resume(&mut self, session_id: &str) -> Result<Value, RpcError> {
        let r = self.call("initialize", json!({"clientName": "test", "resumeSessionId": session_id})).await?;
        self.session_id = session_id.to_owned();
        self.notify("initialized", json!({}));
        Ok(r)
    }

    /// The next notification `method` for process `id`; returns its params.
    pub async fn notification(&mut self, method: &str, id: &str) -> Value {
        let v =
            self.take(&format!("{method} for {id}"), |v| v["method"] == method && v["params"]["processId"] == id).await;
        v["params"].clone()
    }

    /// Waits for the connection to end; the Close code if a Close frame came.
    pub async fn closed(&mut self) -> Option<u16> {
        within("the connection to close", async { while self.pull().await {} }).await;
        self.closed.flatten()
    }

    /// Starts a process; returns the `process/start` result.
    pub async fn start(&mut self, id: &str, argv: &[&str], extra: Value) -> Result<Value, RpcError> {
        let mut params = json!({
            "processId": id,
            "argv": argv,
            "cwd": "file:///tmp",
            "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
            "tty": false,
        });
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.call("process/start", params).await
    }

    /// Every event of process `id` until `process/closed`, in arrival order.
    pub async fn events_until_closed(&mut self, id: &str) -> Run {
        let mut run = Run::default();
        loop {
            let v = self
                .take(&format!("events of {id}"), |v| {
                    v["method"].as_str().is_some_and(|m| m.starts_with("process/")) && v["params"]["processId"] == id
                })
                .await;
            let p = &v["params"];
            let seq = p["seq"].as_u64().expect("seq");
            match v["method"].as_str() {
                Some("process/output") => {
                    let bytes = B64.decode(p["chunk"].as_str().expect("chunk")).expect("base64");
                    let stream = p["stream"].as_str().expect("stream").to_owned();
                    match stream.as_str() {
                        "stderr" => run.stderr.extend_from_slice(&bytes),
                        _ => run.stdout.extend_from_slice(&bytes),
                    }
                    run.events.push((seq, stream));
                }
                Some("process/exited") => {
                    run.exit_code = p["exitCode"].as_i64();
                    run.events.push((seq, "exited".into()));
                }
                Some("process/closed") => {
                    run.events.push((seq, "closed".into()));
                    return run;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// App-server process dialect helpers.
impl Client {
    /// `initialize` with `clientInfo` (the app-server dialect); `capabilities`
    /// is sent as given (e.g. `{"experimentalApi": true}`).
    pub async fn app_handshake(&mut self, capabilities: Value) -> Value {
        self.ok("initialize", json!({"clientInfo": {"name": "test", "version": "1.0"}, "capabilities": capabilities}))
            .await
    }

    /// `process/spawn` of `command` under `handle` in `/tmp`, with `extra` params merged in.
    pub async fn spawn(&mut self, handle: &str, command: &[&str], extra: Value) -> Result<Value, RpcError> {
        let mut params = json!({"command": command, "processHandle": handle, "cwd": "/tmp"});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.call("process/spawn", params).await
    }

    /// Every `process/outputDelta` of `handle` up to and including its
    /// `process/exited`, in arrival order. Panics on a delta after the cap.
    pub async fn app_run(&mut self, handle: &str) -> AppRun {
        self.collect_run("process/outputDelta", "process/exited", "processHandle", handle).await
    }

    /// Every `command/exec/outputDelta` of `process_id` until the response to request `id`.
    pub async fn exec_run(&mut self, id: i64, process_id: &str) -> AppRun {
        let mut run = AppRun::default();
        loop {
            let v = self
                .take(&format!("deltas of {process_id} or response {id}"), |v| {
                    (v["method"] == "command/exec/outputDelta" && v["params"]["processId"] == process_id)
                        || (v.get("id") == Some(&json!(id)) && v.get("method").is_none())
                })
                .await;
            if v.get("method").is_none() {
                run.end = v;
                return run;
            }
            run.push_delta(&v);
        }
    }

    async fn collect_run(&mut self, delta: &str, end: &str, field: &str, id: &str) -> AppRun {
        let mut run = AppRun::default();
        loop {
            let v = self
                .take(&format!("{delta} or {end} of {id}"), |v| {
                    (v["method"] == delta || v["method"] == end) && v["params"][field] == id
                })
                .await;
            if v["method"] == end {
                run.end = v;
                return run;
            }
            run.push_delta(&v);
        }
    }
}

/// What an app-server dialect process emitted.
#[derive(Debug, Default)]
pub struct AppRun {
    /// (stream, bytes, capReached) of each delta, in arrival order.
    pub deltas: Vec<(String, Vec<u8>, bool)>,
    /// Streamed stdout bytes.
    pub stdout: Vec<u8>,
    /// Streamed stderr bytes.
    pub stderr: Vec<u8>,
    /// The final message: the whole `process/exited` notification, or the raw `command/exec` response.
    pub end: Value,
}

impl AppRun {
    fn push_delta(&mut self, v: &Value) {
        let p = &v["params"];
        let stream = p["stream"].as_str().expect("stream").to_owned();
        let bytes = B64.decode(p["deltaBase64"].as_str().expect("deltaBase64")).expect("base64");
        assert!(
            !self.deltas.iter().any(|(s, _, cap)| *s == stream && *cap),
            "a delta after capReached on {stream}: {v}"
        );
        assert!(v["emittedAtMs"].as_u64().is_some(), "emittedAtMs on {v}");
        match stream.as_str() {
            "stderr" => self.stderr.extend_from_slice(&bytes),
            _ => self.stdout.extend_from_slice(&bytes),
        }
        self.deltas.push((stream, bytes, p["capReached"].as_bool().expect("capReached")));
    }

    /// The `process/exited` params.
    pub fn exited(&self) -> &Value {
        &self.end["params"]
    }
}

/// Splits a raw response into result or (code, message).
pub fn into_result(resp: Value) -> Result<Value, RpcError> {
    if let Some(e) = resp.get("error") {
        return Err((e["code"].as_i64().expect("code"), e["message"].as_str().expect("message").to_owned()));
    }
    Ok(resp["result"].clone())
}

/// Everything a process emitted.
#[derive(Debug, Default)]
pub struct Run {
    /// (seq, "stdout"|"stderr"|"pty"|"exited"|"closed") in arrival order.
    pub events: Vec<(u64, String)>,
    /// stdout or pty bytes.
    pub stdout: Vec<u8>,
    /// stderr bytes.
    pub stderr: Vec<u8>,
    /// From `process/exited`.
    pub exit_code: Option<i64>,
}

impl Run {
    /// The seqs in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|(s, _)| *s).collect()
    }
}

/// Base64 of bytes.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Bytes of base64.
pub fn unb64(text: &str) -> Vec<u8> {
    B64.decode(text).expect("base64")
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("execd-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Whether a pid is alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"),
        Err(_) => false,
    }
}

/// Which transport a check runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `execd serve --listen ws://127.0.0.1:0`, one connection to it.
    Ws,
    /// `execd serve --listen stdio`.
    Stdio,
}

/// An un-initialized client plus the WebSocket server it talks to (if any).
/// Field order matters: the client is dropped before the server.
pub struct Conn {
    /// The connection.
    pub client: Client,
    /// The WebSocket server, if any.
    pub server: Option<Server>,
}

impl Conn {
    /// A fresh server and one un-initialized connection to it.
    pub async fn open(t: Transport) -> Conn {
        match t {
            Transport::Ws => {
                let server = Server::start(&[]);
                let client = server.connect().await;
                Conn { client, server: Some(server) }
            }
            Transport::Stdio => Conn { client: Client::stdio(&[]).await, server: None },
        }
    }

    /// A fresh server and one connection initialized in the app-server dialect.
    pub async fn app_ready(t: Transport, capabilities: Value) -> Conn {
        let mut c = Conn::open(t).await;
        c.app_handshake(capabilities).await;
        c
    }

    /// A fresh server and one connection that completed the handshake.
    pub async fn ready(t: Transport) -> Conn {
        let mut c = Conn::open(t).await;
        c.handshake().await;
        c
    }
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

/// Generates `mod name { fn websocket(); fn stdio(); }` running `name(Transport)`.
#[allow(unused_macros)] // not every test file runs checks on both transports
macro_rules! on_both_transports {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {

                #[tokio::test]
                async fn websocket() {
                    super::$name(super::Transport::Ws).await
                }

                #[tokio::test]
                async fn stdio() {
                    super::$name(super::Transport::Stdio).await
                }
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_transports;
