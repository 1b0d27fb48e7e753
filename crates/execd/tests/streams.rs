//! Output streams end to end: byte-exact delivery of random binary output (chunk
//! boundaries, invalid UTF-8, interleaved stdout/stderr), paged `process/read`
//! of a long stream, resuming a session mid-stream (within and beyond the 1 MiB
//! retention ring), and backpressure from a client that stops reading.
//!
//! Producers are gated where the test must control how far they get: a child
//! writes a piece, then blocks reading a line from stdin until the test, having
//! seen the whole piece, releases it with `process/write`.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// The largest output chunk the server emits.
const CHUNK_MAX: usize = 16 * KIB;
/// The per-process retention ring.
const RETAINED: usize = MIB;
/// The size of one gated piece.
const PIECE: usize = 256 * KIB;

/// A seeded xorshift64 generator: deterministic test data without extra crates.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Asserts byte equality without dumping megabytes: lengths and the first difference.
fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
    panic!("{what}: got {} bytes, want {} bytes, first difference at offset {first}", got.len(), want.len());
}

/// Whether `data` equals the infinite repetition of `block` starting at `offset`.
fn matches_pattern(block: &[u8], offset: u64, data: &[u8]) -> bool {
    let mut pos = (offset % block.len() as u64) as usize;
    let mut rest = data;
    while !rest.is_empty() {
        let n = (block.len() - pos).min(rest.len());
        if rest[..n] != block[pos..pos + n] {
            return false;
        }
        rest = &rest[n..];
        pos = 0;
    }
    true
}

/// Writes `data` to `dir/name`; returns the path as a string.
fn write_file(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write test file");
    path.to_str().expect("utf-8 path").to_owned()
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS value")
}

/// The state letter of `pid` (`R`, `S`, `D`, `Z`...), if it exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().next()?.chars().next()
}

/// Removes a test directory when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        TempDir(temp_dir(name))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Complete `process/start` params.
fn start_params(id: &str, argv: &[&str], extra: Value) -> Value {
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
    params
}

/// Everything a process emitted, with per-chunk checks done on the way.
#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// (seq, kind) in arrival order.
    events: Vec<(u64, String)>,
    exit_code: Option<i64>,
}

/// Every event of `id` until `process/closed`; checks each output chunk is 1..=16 KiB.
async fn collect_until_closed(c: &mut Client, id: &str) -> Collected {
    let mut got = Collected::default();
    loop {
        let v = c
            .take(&format!("events of {id}"), |v| {
                v["method"].as_str().is_some_and(|m| m.starts_with("process/")) && v["params"]["processId"] == id
            })
            .await;
        let p = &v["params"];
        let seq = p["seq"].as_u64().expect("seq");
        match v["method"].as_str().expect("method") {
            "process/output" => {
                let bytes = unb64(p["chunk"].as_str().expect("chunk"));
                assert!(!bytes.is_empty() && bytes.len() <= CHUNK_MAX, "chunk of {} bytes at seq {seq}", bytes.len());
                let stream = p["stream"].as_str().expect("stream");
                match stream {
                    "stdout" => got.stdout.extend_from_slice(&bytes),
                    "stderr" => got.stderr.extend_from_slice(&bytes),
                    other => panic!("unexpected stream {other:?}"),
                }
                got.events.push((seq, stream.to_owned()));
            }
            "process/exited" => {
                got.exit_code = p["exitCode"].as_i64();
                got.events.push((seq, "exited".into()));
            }
            "process/closed" => {
                got.events.push((seq, "closed".into()));
                return got;
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
}

/// Asserts contiguous seqs from 1 and `exited`, `closed` as the last two events.
fn assert_well_formed(events: &[(u64, String)]) {
    let seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
    assert!(seqs.iter().copied().eq(1..=seqs.len() as u64), "seqs not contiguous from 1: {seqs:?}");
    let kinds: Vec<&str> = events.iter().map(|(_, k)| k.as_str()).collect();
    assert!(kinds.len() >= 2 && kinds[kinds.len() - 2..] == ["exited", "closed"], "exited then closed last: {kinds:?}");
    assert!(
        kinds[..kinds.len() - 2].iter().all(|k| *k == "stdout" || *k == "stderr"),
        "only output before exited: {kinds:?}"
    );
}

/// The gated producer: each `piece*` file of `dir`, then one line of stdin.
fn gated_script(dir: &Path) -> String {
    format!("for f in {}/piece*; do cat \"$f\"; read x; done", dir.display())
}

/// Writes `n` random pieces of [`PIECE`] bytes to `dir`; returns their concatenation.
fn write_pieces(dir: &Path, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut all = Vec::with_capacity(n * PIECE);
    for i in 0..n {
        let piece = rng.bytes(PIECE);
        write_file(dir, &format!("piece{i:03}"), &piece);
        all.extend_from_slice(&piece);
    }
    all
}

/// What a reader of a gated stream has so far.
#[derive(Debug, Default)]
struct Cursor {
    bytes: Vec<u8>,
    /// The seq of the last chunk taken (0: none).
    last_seq: u64,
}

impl Cursor {
    /// Appends one output chunk, which must be the next seq on stdout.
    fn push(&mut self, seq: u64, stream: &str, chunk: &[u8]) {
        assert_eq!(seq, self.last_seq + 1, "chunk seqs are contiguous");
        assert_eq!(stream, "stdout");
        assert!(!chunk.is_empty() && chunk.len() <= CHUNK_MAX, "chunk of {} bytes at seq {seq}", chunk.len());
        self.bytes.extend_from_slice(chunk);
        self.last_seq = seq;
    }
}

/// One page: `process/read {afterSeq: last, maxBytes: 65536, waitMs: 1000}`.
async fn read_page(c: &mut Client, id: &str, after: u64) -> Value {
    c.ok("process/read", json!({"processId": id, "afterSeq": after, "maxBytes": 65536, "waitMs": 1000})).await
}

/// The chunks of a `process/read` result: (seq, stream, bytes).
fn page_chunks(page: &Value) -> Vec<(u64, String, Vec<u8>)> {
    page["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().expect("seq"),
                c["stream"].as_str().expect("stream").to_owned(),
                unb64(c["chunk"].as_str().expect("chunk")),
            )
        })
        .collect()
}

/// Pages with `process/read` until `cur` holds `upto` bytes; no page may report
/// an eviction (the gated producer never gets 1 MiB ahead) or overshoot `upto`.
async fn page_until(c: &mut Client, id: &str, cur: &mut Cursor, upto: usize) {
    within(&format!("{id} output up to {upto} bytes via process/read"), async {
        while cur.bytes.len() < upto {
            let page = read_page(c, id, cur.last_seq).await;
            assert!(page.get("evicted").is_none(), "no eviction while the reader keeps up: {}", page["evicted"]);
            let chunks = page_chunks(&page);
            let total: usize = chunks.iter().map(|(_, _, b)| b.len()).sum();
            assert!(total <= 65536, "a page holds at most maxBytes (chunks are smaller): {total}");
            for (seq, stream, bytes) in &chunks {
                cur.push(*seq, stream, bytes);
            }
            if let Some((seq, _, _)) = chunks.last() {
                assert_eq!(page["nextSeq"], seq + 1, "nextSeq after a maxBytes page");
            }
            assert!(cur.bytes.len() <= upto, "the gated producer wrote past its piece: {} > {upto}", cur.bytes.len());
            assert_eq!(page["exited"], false, "exited before the last piece");
        }
    })
    .await
}

/// Pages after the last chunk until the process is closed; no more output may come.
/// Returns the final page.
async fn page_until_closed(c: &mut Client, id: &str, cur: &Cursor) -> Value {
    within(&format!("{id} to close"), async {
        loop {
            let page = read_page(c, id, cur.last_seq).await;
            assert!(page.get("evicted").is_none(), "{page}");
            assert_eq!(page["chunks"], json!([]), "no output after the last piece");
            if page["closed"] == true {
                return page;
            }
        }
    })
    .await
}

/// Writes one line to `id`'s stdin, which must be accepted.
async fn release(c: &mut Client, id: &str, write_id: &str) {
    let w = c.ok("process/write", json!({"processId": id, "chunk": b64(b"\n"), "writeId": write_id})).await;
    assert_eq!(w, json!({"status": "accepted"}), "release {write_id}");
}

/// A new harness connection resuming `session_id`; retries while the server still
/// sees the old connection attached (-32010).
async fn resume_retrying(server: &Server, session_id: &str) -> Client {
    within("resume of a detached session", async {
        let mut c = server.connect().await;
        loop {
            match c.resume(session_id).await {
                Ok(r) => {
                    assert_eq!(r["sessionId"], json!(session_id));
                    return c;
                }
                Err((-32010, _)) => retry_pause().await,
                Err(e) => panic!("resume {session_id} failed: {e:?}"),
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------
// A raw WebSocket client: the test alone decides when the socket is read.
// ---------------------------------------------------------------------------

type WsStream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct RawWs {
    ws: WsStream,
    next_id: i64,
    /// Messages read while waiting for a response, not yet consumed.
    backlog: VecDeque<Value>,
}

impl RawWs {
    async fn connect(url: &str) -> RawWs {
        let (ws, _) = within("websocket connect", tokio_tungstenite::connect_async(url)).await.expect("connect");
        RawWs { ws, next_id: 1, backlog: VecDeque::new() }
    }

    async fn send(&mut self, v: &Value) {
        within("a send", self.ws.send(Message::Text(v.to_string().into()))).await.expect("send");
    }

    /// The next text message straight from the socket (the backlog is not looked at).
    async fn next_text(&mut self) -> String {
        loop {
            match within("a message", self.ws.next()).await {
                Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// The next message: from the backlog, else from the socket.
    async fn recv(&mut self) -> Value {
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        let text = self.next_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }

    /// Sends a request and reads until its response; other messages go to the backlog.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"id": id, "method": method, "params": params})).await;
        loop {
            let text = self.next_text().await;
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            if v.get("id") == Some(&json!(id)) && v.get("method").is_none() {
                return into_result(v);
            }
            self.backlog.push_back(v);
        }
    }

    async fn ok(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params.clone()).await.unwrap_or_else(|e| panic!("{method} {params} failed: {e:?}"))
    }

    /// `initialize` + `initialized`; returns the session id.
    async fn handshake(&mut self, client_name: &str) -> String {
        let r = self.ok("initialize", json!({"clientName": client_name})).await;
        self.send(&json!({"method": "initialized", "params": {}})).await;
        r["sessionId"].as_str().expect("sessionId").to_owned()
    }

    /// The next `process/output` of `id` as (seq, stream, bytes); other messages must not be events of `id`.
    async fn output(&mut self, id: &str) -> (u64, String, Vec<u8>) {
        loop {
            let v = self.recv().await;
            if v["params"]["processId"] != id {
                continue;
            }
            assert_eq!(v["method"], "process/output", "{v}");
            let p = &v["params"];
            return (
                p["seq"].as_u64().expect("seq"),
                p["stream"].as_str().expect("stream").to_owned(),
                unb64(p["chunk"].as_str().expect("chunk")),
            );
        }
    }

    /// Writes `lines` newlines to `id`'s stdin (releasing that many pieces), which must be accepted.
    async fn write_lines(&mut self, id: &str, lines: usize, write_id: &str) {
        let chunk = b64(&vec![b'\n'; lines]);
        let w = self.ok("process/write", json!({"processId": id, "chunk": chunk, "writeId": write_id})).await;
        assert_eq!(w, json!({"status": "accepted"}), "release {write_id}");
    }
}

/// Starts the gated producer `id` on a raw connection and takes the first `pieces`
/// pieces from its `process/output` notifications, releasing each after it is complete.
async fn raw_take_pieces(raw: &mut RawWs, id: &str, dir: &Path, pieces: usize) -> Cursor {
    let script = gated_script(dir);
    let r = raw.ok("process/start", start_params(id, &["sh", "-c", &script], json!({"pipeStdin": true}))).await;
    assert_eq!(r["processId"], id);
    let mut cur = Cursor::default();
    for i in 0..pieces {
        while cur.bytes.len() < (i + 1) * PIECE {
            let (seq, stream, bytes) = raw.output(id).await;
            cur.push(seq, &stream, &bytes);
            assert!(cur.bytes.len() <= (i + 1) * PIECE, "the gated producer wrote past piece {i}");
        }
        if i + 1 < pieces {
            raw.write_lines(id, 1, &format!("r{i}")).await;
        }
    }
    cur
}

// ---------------------------------------------------------------------------
// 1. Random binary output, interleaved stdout/stderr, byte-exact
// ---------------------------------------------------------------------------

/// Bytes that are not UTF-8, some split so they may straddle a chunk boundary.
fn invalid_utf8() -> Vec<u8> {
    let mut v = vec![b'a'; CHUNK_MAX - 1];
    v.extend_from_slice("€".as_bytes()); // crosses offset 16384 of this part
    v.extend_from_slice(
        b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xe2\x82\x28\xf0\x28\x8c\xbc\xed\xa0\x80\xc0\x80\x00\xf4\x90",
    );
    v
}

/// Runs a child that `cat`s the parts alternately to stdout and stderr (part `i`
/// to stdout when `i` is even) and checks both streams are byte-exact.
async fn interleaved_random_output(c: &mut Client, name: &str, sizes: &[usize], seed: u64) {
    let dir = TempDir::new(name);
    let mut rng = Rng::new(seed);
    let (mut want_out, mut want_err) = (Vec::new(), Vec::new());
    let mut script = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let data = if size == usize::MAX { invalid_utf8() } else { rng.bytes(size) };
        let path = write_file(&dir.0, &format!("part{i:02}"), &data);
        if i % 2 == 0 {
            want_out.extend_from_slice(&data);
            script.push(format!("cat {path}"));
        } else {
            want_err.extend_from_slice(&data);
            script.push(format!("cat {path} >&2"));
        }
    }
    assert!(std::str::from_utf8(&want_out).is_err() && std::str::from_utf8(&want_err).is_err(), "not UTF-8");
    let script = script.join("; ");
    let r = c.ok("process/start", start_params(name, &["sh", "-c", &script], json!({}))).await;
    assert_eq!(r["processId"], name);
    let got = collect_until_closed(c, name).await;
    assert_same_bytes("stdout", &got.stdout, &want_out);
    assert_same_bytes("stderr", &got.stderr, &want_err);
    assert_well_formed(&got.events);
    assert_eq!(got.exit_code, Some(0));
}

#[tokio::test]
async fn random_binary_output_is_byte_exact_over_websocket() {
    let mut conn = Conn::ready(Transport::Ws).await;
    // Even indexes go to stdout, odd ones to stderr; usize::MAX is the invalid-UTF-8 part.
    let sizes = [
        0,
        16385,
        1,
        0,
        16383,
        1,
        16384,
        MIB + 7,
        16385,
        16383,
        MIB + 7,
        16384,
        usize::MAX,
        usize::MAX,
        8 * MIB,
        2 * MIB + 3,
        7,
        8 * MIB - 1,
    ];
    interleaved_random_output(&mut conn, "rand-ws", &sizes, 0x5eed_0001).await;
}

#[tokio::test]
async fn random_binary_output_is_byte_exact_over_stdio() {
    let mut conn = Conn::ready(Transport::Stdio).await;
    let sizes = [16383, 0, 1, 16384, 16385, usize::MAX, MIB + 7, 1, 0, 16385];
    interleaved_random_output(&mut conn, "rand-stdio", &sizes, 0x5eed_0002).await;
}

// ---------------------------------------------------------------------------
// 2. Paged process/read of a gated 8 MiB stream
// ---------------------------------------------------------------------------

#[tokio::test]
async fn paged_read_of_a_gated_8_mib_stream_is_byte_exact() {
    let dir = TempDir::new("paged");
    let pieces = 8 * MIB / PIECE;
    let want = write_pieces(&dir.0, pieces, 0x5eed_0003);
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let script = gated_script(&dir.0);
    c.ok("process/start", start_params("pg", &["sh", "-c", &script], json!({"pipeStdin": true}))).await;
    // The process/output notifications pile up in the harness buffer; only process/read is used.
    let mut cur = Cursor::default();
    for i in 0..pieces {
        page_until(&mut c, "pg", &mut cur, (i + 1) * PIECE).await;
        release(&mut c, "pg", &format!("w{i}")).await;
    }
    let last = page_until_closed(&mut c, "pg", &cur).await;
    assert_eq!(last["exitCode"], 0, "{last}");
    assert_eq!(last["nextSeq"], cur.last_seq + 3, "exited and closed follow the last chunk: {last}");
    assert_same_bytes("paged stdout", &cur.bytes, &want);
}

// ---------------------------------------------------------------------------
// 3. Resume mid-stream
// ---------------------------------------------------------------------------

#[tokio::test]
async fn resume_mid_stream_reads_the_missed_part_from_retention() {
    let dir = TempDir::new("resume");
    let pieces = 8;
    let want = write_pieces(&dir.0, pieces, 0x5eed_0004);
    let server = Server::start(&[]);
    let mut raw = RawWs::connect(&server.url).await;
    let sid = raw.handshake("resume-test").await;
    // Pieces 0..=2 from notifications; piece 3 is released but never read on this connection.
    let mut cur = raw_take_pieces(&mut raw, "g", &dir.0, 3).await;
    raw.write_lines("g", 1, "r2").await;
    // Forced disconnect: the TCP connection goes away without a Close frame.
    drop(raw);

    let mut c = resume_retrying(&server, &sid).await;
    for i in 3..pieces {
        page_until(&mut c, "g", &mut cur, (i + 1) * PIECE).await;
        release(&mut c, "g", &format!("w{i}")).await;
    }
    let last = page_until_closed(&mut c, "g", &cur).await;
    assert_eq!(last["exitCode"], 0, "{last}");
    assert_same_bytes("stream across the reconnect", &cur.bytes, &want);
}

#[tokio::test]
async fn resume_after_more_than_the_retention_reports_the_eviction() {
    let dir = TempDir::new("evict");
    let pieces = 10;
    let want = write_pieces(&dir.0, pieces, 0x5eed_0005);
    let total = want.len();
    let server = Server::start(&[]);
    let mut raw = RawWs::connect(&server.url).await;
    let sid = raw.handshake("evict-test").await;
    let before = raw_take_pieces(&mut raw, "e", &dir.0, 2).await;
    let received = before.bytes.len();
    assert_same_bytes("output before the disconnect", &before.bytes, &want[..received]);
    // Release everything that is left (pieces 2..10 and the final read), unread: 2 MiB > the 1 MiB ring.
    raw.write_lines("e", pieces - 1, "rest").await;
    drop(raw);

    let mut c = resume_retrying(&server, &sid).await;
    // Detached, nothing announces the end: poll the process list until it is closed.
    within("the released producer to finish", async {
        loop {
            let list = c.ok("process/list", json!({})).await;
            let state = list["processes"][0]["state"].clone();
            assert_eq!(list["processes"][0]["processId"], "e", "{list}");
            if state == "closed" {
                return;
            }
            retry_pause().await;
        }
    })
    .await;

    let first = read_page(&mut c, "e", before.last_seq).await;
    let chunks = page_chunks(&first);
    let evicted = first.get("evicted").unwrap_or_else(|| panic!("evicted reported: {first}")).clone();
    let first_retained = evicted["firstRetainedSeq"].as_u64().expect("firstRetainedSeq");
    let evicted_bytes = evicted["bytes"].as_u64().expect("bytes") as usize;
    assert_eq!(Some(first_retained), chunks.first().map(|c| c.0), "firstRetainedSeq is the first returned chunk");
    assert!(first_retained > before.last_seq + 1, "some unread chunks were lost: {evicted}");
    assert!(evicted_bytes > 0, "{evicted}");

    let mut retained = Cursor { bytes: Vec::new(), last_seq: first_retained - 1 };
    for (seq, stream, bytes) in &chunks {
        retained.push(*seq, stream, bytes);
    }
    // The rest of the retained output; later pages (after firstRetainedSeq) have no gap.
    let last = within("the retained rest", async {
        loop {
            let page = read_page(&mut c, "e", retained.last_seq).await;
            assert!(page.get("evicted").is_none(), "no gap after firstRetainedSeq: {page}");
            let chunks = page_chunks(&page);
            if chunks.is_empty() {
                return page;
            }
            for (seq, stream, bytes) in &chunks {
                retained.push(*seq, stream, bytes);
            }
        }
    })
    .await;
    assert_eq!(last["closed"], true, "{last}");
    assert_eq!(last["exitCode"], 0, "{last}");
    assert_eq!(last["nextSeq"], retained.last_seq + 3, "{last}");

    let kept = retained.bytes.len();
    assert!(kept <= RETAINED && kept > RETAINED - CHUNK_MAX, "the ring holds just under 1 MiB: {kept}");
    // `bytes` counts everything evicted so far, including what was received before the
    // disconnect (more than 1 MiB came after it, so all of that was evicted too).
    assert_eq!(evicted_bytes + kept, total, "evicted + retained == produced");
    assert!(evicted_bytes > received, "unread bytes were lost: evicted {evicted_bytes}, received {received}");
    let lost = evicted_bytes - received;
    assert_eq!(received + lost + kept, total, "received + lost-unread + retained == produced");
    assert_same_bytes("retained tail", &retained.bytes, &want[total - kept..]);
}

// ---------------------------------------------------------------------------
// 4. Backpressure: a client that stops reading stalls the producer
// ---------------------------------------------------------------------------

/// Writes `total` bytes of `block` repeated to stdout; after each write, the byte
/// count so far goes into the progress file (fixed width, at offset 0). Its pid
/// is published first (atomically, by rename).
const PRODUCER: &str = r#"
import os, sys
block = memoryview(open(sys.argv[1], 'rb').read())
progress = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
with open(sys.argv[3] + '.tmp', 'w') as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[3] + '.tmp', sys.argv[3])
total = int(sys.argv[4])
n = 0
while n < total:
    k = n % len(block)
    n += os.write(1, block[k:min(len(block), k + total - n)])
    os.pwrite(progress, b'%020d' % n, 0)
"#;

const GIB: u64 = 1 << 30;
const BLOCK: usize = 64 * KIB;
/// How much the server's RSS may grow over its post-handshake baseline.
const RSS_SLACK_KIB: u64 = 64 * 1024;

fn read_progress(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test]
async fn a_client_that_stops_reading_stalls_the_producer_not_the_server_memory() {
    let started = Instant::now();
    let dir = TempDir::new("backpressure");
    let block = Rng::new(0x5eed_0006).bytes(BLOCK);
    let block_path = write_file(&dir.0, "block", &block);
    let progress_path = dir.0.join("progress");
    let pid_path = dir.0.join("pid");

    let server = Server::start(&[]);
    let server_pid = server.pid();
    let mut raw = RawWs::connect(&server.url).await;
    raw.handshake("bp").await;
    let baseline = rss_kib(server_pid);

    let argv = [
        "python3",
        "-c",
        PRODUCER,
        &block_path,
        progress_path.to_str().expect("utf-8"),
        pid_path.to_str().expect("utf-8"),
        &GIB.to_string(),
    ];
    let r = raw.ok("process/start", start_params("bp", &argv, json!({}))).await;
    assert_eq!(r["processId"], "bp");

    // From here on the socket is not read until the producer is stalled.
    let producer: u32 = {
        let mut pid = None;
        eventually("the producer's pid file", || {
            pid = std::fs::read_to_string(&pid_path).ok().and_then(|s| s.trim().parse().ok());
            pid.is_some()
        })
        .await;
        pid.expect("pid")
    };
    const STABLE_CHECKS: u32 = 25;
    let mut last = None;
    let mut stable = 0;
    let mut observed = String::new();
    let stalled_at = tokio::time::timeout(DEADLINE, async {
        loop {
            let progress = read_progress(&progress_path);
            let state = proc_state(producer);
            stable = if progress.is_some() && progress == last && state == Some('S') { stable + 1 } else { 0 };
            last = progress;
            observed = format!("progress {progress:?}, state {state:?}");
            if stable >= STABLE_CHECKS {
                return progress.expect("progress");
            }
            retry_pause().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for the producer to stall; last observation: {observed}"));
    let stalled_rss = rss_kib(server_pid);
    eprintln!(
        "backpressure: producer stalled at {stalled_at} bytes after {:?}; server RSS baseline {baseline} KiB, \
         stalled {stalled_rss} KiB",
        started.elapsed()
    );
    assert!(stalled_at < GIB, "the server swallowed the whole output: {stalled_at}");
    assert!(
        stalled_rss <= baseline + RSS_SLACK_KIB,
        "server RSS grew from {baseline} KiB to {stalled_rss} KiB while the client did not read"
    );

    // Read again: everything arrives, byte-exact and in order, with bounded server memory.
    let mut offset = 0u64;
    let mut next_seq = 1u64;
    let mut messages = 0u64;
    let mut peak_rss = stalled_rss;
    let exit_code = loop {
        let v = raw.recv().await;
        messages += 1;
        if messages.is_multiple_of(512) {
            let rss = rss_kib(server_pid);
            peak_rss = peak_rss.max(rss);
            assert!(
                rss <= baseline + RSS_SLACK_KIB,
                "server RSS {rss} KiB (baseline {baseline} KiB) at {offset} bytes"
            );
        }
        let p = &v["params"];
        assert_eq!(p["processId"], "bp", "{v}");
        assert_eq!(p["seq"], next_seq, "contiguous seqs");
        next_seq += 1;
        match v["method"].as_str().expect("method") {
            "process/output" => {
                assert_eq!(p["stream"], "stdout");
                let bytes = unb64(p["chunk"].as_str().expect("chunk"));
                assert!(!bytes.is_empty() && bytes.len() <= CHUNK_MAX, "chunk of {} bytes", bytes.len());
                assert!(matches_pattern(&block, offset, &bytes), "output differs from the pattern in {offset}..");
                offset += bytes.len() as u64;
            }
            "process/exited" => break p["exitCode"].as_i64(),
            other => panic!("unexpected {other}: {v}"),
        }
    };
    assert_eq!(exit_code, Some(0));
    let closed = raw.recv().await;
    assert_eq!(closed["method"], "process/closed", "{closed}");
    assert_eq!(closed["params"]["seq"], next_seq, "{closed}");
    assert_eq!(offset, GIB, "all output arrived");
    assert_eq!(read_progress(&progress_path), Some(GIB));
    eprintln!(
        "backpressure: {GIB} bytes in {} messages, peak server RSS {peak_rss} KiB (baseline {baseline} KiB), \
         total {:?}",
        messages,
        started.elapsed()
    );
}
