//! The `execd-client` library against the real server.
//!
//! Every WebSocket test connects through [`Proxy`], a loopback TCP proxy the
//! test controls: it can cut every current connection, refuse new ones (accept
//! and close at once), hold them (accept and never answer, like a server that
//! stopped accepting), and stall either direction while counting the bytes it
//! holds back. That drives the client's reconnect/resume state machine
//! (`execd_client::conn`) through cuts at chosen points, and the tests check
//! what the client promises: process events exactly once and in seq order,
//! writes exactly once and in order, calls that wait for the recovery, one
//! `Disconnected` for everything once the resume deadline passes, and
//! `Evicted` instead of a silent gap. One test runs over stdio.
//!
//! Nothing sleeps to wait for an event: waits are on the client's streams and
//! replies, or deadline-bounded polls of the proxy's counters and of files.

mod common;

use bytes::Bytes;
use common::*;
use execd_client::{Client, ClientError, Endpoint, Options, ProcessEvent, RemoteProcess};
use execd_protocol::process::{ListResult, ProcessState, StreamName, WireExecParams, WriteStatus};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// The proxy
// ---------------------------------------------------------------------------

/// What the proxy does with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward it to the server.
    Forward,
    /// Close it at once: the client's WebSocket handshake fails fast.
    Refuse,
    /// Accept nothing more: the connection waits unanswered (the client's
    /// handshake hangs) until the mode changes, then gets the new mode.
    Hold,
}

/// One direction of the forwarded connections.
#[derive(Default)]
struct Direction {
    /// Bytes read from the sending side (forwarded or held back).
    bytes: AtomicU64,
    /// While `true`, bytes are read and counted but held back (and lost on a cut).
    stall: watch::Sender<bool>,
}

struct ProxyState {
    mode: watch::Sender<Mode>,
    /// Client to server.
    up: Direction,
    /// Server to client.
    down: Direction,
    /// The tasks of the current connections (aborting one closes both its sockets).
    conns: Mutex<Vec<JoinHandle<()>>>,
    /// Connections forwarded so far (a handle is in `conns` before this counts it).
    forwarded: AtomicUsize,
    /// Server-to-client bytes of each forwarded connection, in order.
    downstream_of: Mutex<Vec<Arc<AtomicU64>>>,
    refused: AtomicUsize,
    /// Connections accepted and left unanswered in `Hold`.
    held: AtomicUsize,
}

/// A loopback TCP proxy in front of the server, under the test's control.
struct Proxy {
    url: String,
    state: Arc<ProxyState>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    async fn start(server: &Server) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let url = format!("ws://{}", listener.local_addr().expect("proxy address"));
        let state = Arc::new(ProxyState {
            mode: watch::Sender::new(Mode::Forward),
            up: Direction::default(),
            down: Direction::default(),
            conns: Mutex::new(Vec::new()),
            forwarded: AtomicUsize::new(0),
            downstream_of: Mutex::new(Vec::new()),
            refused: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
        });
        let acceptor = tokio::spawn(accept_loop(listener, server.addr(), state.clone()));
        Proxy { url, state, acceptor }
    }

    /// The endpoint a client uses to connect through the proxy.
    fn endpoint(&self) -> Endpoint {
        Endpoint::WebSocket { url: self.url.clone(), token: None }
    }

    fn set_mode(&self, mode: Mode) {
        self.state.mode.send_replace(mode);
    }

    /// Closes every current connection (both sockets of each) and returns once
    /// they are closed: nothing more passes through them.
    async fn cut(&self) {
        let conns = std::mem::take(&mut *self.state.conns.lock().expect("proxy lock"));
        for conn in &conns {
            conn.abort();
        }
        for conn in conns {
            let _ = conn.await;
        }
    }

    fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    fn refused(&self) -> usize {
        self.state.refused.load(Ordering::SeqCst)
    }

    fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Bytes the client sent so far (forwarded or held back).
    fn upstream_bytes(&self) -> u64 {
        self.state.up.bytes.load(Ordering::SeqCst)
    }

    /// Bytes the server sent so far on the `n`th forwarded connection (from 0), if there is one yet.
    fn downstream_bytes_of(&self, n: usize) -> Option<u64> {
        self.state.downstream_of.lock().expect("proxy lock").get(n).map(|b| b.load(Ordering::SeqCst))
    }

    /// Holds back (`true`) or releases client-to-server bytes.
    fn stall_upstream(&self, on: bool) {
        self.state.up.stall.send_replace(on);
    }

    /// Holds back (`true`) or releases server-to-client bytes.
    fn stall_downstream(&self, on: bool) {
        self.state.down.stall.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for conn in self.state.conns.lock().expect("proxy lock").drain(..) {
            conn.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: String, state: Arc<ProxyState>) {
    let mut mode = state.mode.subscribe();
    loop {
        let Ok((socket, _)) = listener.accept().await else { continue };
        // In `Hold`, stop accepting: this one waits unanswered, later ones wait in the backlog.
        let mut counted = false;
        let current = match mode
            .wait_for(|m| {
                if *m == Mode::Hold && !counted {
                    counted = true;
                    state.held.fetch_add(1, Ordering::SeqCst);
                }
                *m != Mode::Hold
            })
            .await
        {
            Ok(m) => *m,
            Err(_) => return,
        };
        match current {
            Mode::Refuse => {
                state.refused.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
            Mode::Forward | Mode::Hold => {
                let downstream = Arc::new(AtomicU64::new(0));
                state.downstream_of.lock().expect("proxy lock").push(downstream.clone());
                let task = tokio::spawn(forward(socket, target.clone(), state.clone(), downstream));
                state.conns.lock().expect("proxy lock").push(task);
                state.forwarded.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

async fn forward(client: TcpStream, target: String, state: Arc<ProxyState>, downstream: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(&target).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, &state.up, None),
        pump(server_read, client_write, &state.down, Some(&downstream))
    );
}

/// Copies `from` to `to`; while the direction is stalled, keeps reading (and
/// counting, also into `also`) but holds the bytes back.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, dir: &Direction, also: Option<&AtomicU64>) {
    let mut stall = dir.stall.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    let mut held: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            biased;
            released = async { stall.wait_for(|stalled| !*stalled).await.is_ok() }, if !held.is_empty() => {
                if !released || to.write_all(&held).await.is_err() {
                    break;
                }
                held.clear();
            }
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    dir.bytes.fetch_add(n as u64, Ordering::SeqCst);
                    if let Some(also) = also {
                        also.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    held.extend_from_slice(&buf[..n]);
                }
            },
        }
    }
    let _ = to.shutdown().await;
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn options(resume_deadline: Duration) -> Options {
    Options { client_name: "client-tests".into(), resume_deadline }
}

async fn connect(endpoint: Endpoint, resume_deadline: Duration) -> Client {
    within("the client to connect", Client::connect(endpoint, options(resume_deadline))).await.expect("connect")
}

fn exec(id: &str, argv: &[&str], cwd: &Path, pipe_stdin: bool) -> WireExecParams {
    let argv = argv.iter().map(|a| a.to_string()).collect();
    let env = [("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())].into_iter().collect();
    WireExecParams { pipe_stdin, ..WireExecParams::new(id, argv, format!("file://{}", cwd.display()), env) }
}

async fn start(client: &Client, params: WireExecParams) -> RemoteProcess {
    let id = params.process_id.clone();
    within(&format!("process/start of {id}"), client.start(params)).await.unwrap_or_else(|e| panic!("start {id}: {e}"))
}

/// The next item of a process stream, under the deadline.
async fn next(p: &mut RemoteProcess) -> Option<Result<ProcessEvent, ClientError>> {
    let what = format!("the next event of {}", p.id());
    within(&what, p.next_event()).await
}

async fn write(p: &RemoteProcess, data: impl Into<Bytes>) {
    let status = within("process/write", p.write(data.into())).await.expect("write");
    assert_eq!(status, WriteStatus::Accepted);
}

async fn close_stdin(p: &RemoteProcess) {
    let status = within("process/closeStdin", p.close_stdin()).await.expect("closeStdin");
    assert_eq!(status, WriteStatus::Accepted);
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Equality of two large byte strings, reported without printing them.
fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("{what}: got {} bytes, want {}; first difference at byte {at}", got.len(), want.len());
    }
}

/// Output received from a process stream, checking the seqs as it goes.
#[derive(Default)]
struct Received {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    last_seq: u64,
}

impl Received {
    /// Takes an output event; its seq must be the next one.
    fn output(&mut self, seq: u64, stream: StreamName, data: &[u8]) {
        assert_eq!(seq, self.last_seq + 1, "output seqs must increase by exactly 1 (no duplicate, no gap)");
        self.last_seq = seq;
        match stream {
            StreamName::Stderr => self.stderr.extend_from_slice(data),
            _ => self.stdout.extend_from_slice(data),
        }
    }

    fn total(&self) -> usize {
        self.stdout.len() + self.stderr.len()
    }
}

/// Reads the rest of a stream: output, then exactly one `Exited`, one
/// `Closed`, then the end of the stream. Returns the exit code.
async fn finish(p: &mut RemoteProcess, rx: &mut Received) -> i32 {
    let mut exit_code = None;
    loop {
        match next(p).await {
            Some(Ok(ProcessEvent::Output { seq, stream, data })) => {
                assert!(exit_code.is_none(), "output after exited");
                rx.output(seq, stream, &data);
            }
            Some(Ok(ProcessEvent::Exited { exit_code: code, signal, timed_out })) => {
                assert!(exit_code.is_none(), "a second exited");
                assert_eq!((signal, timed_out), (None, false));
                exit_code = Some(code);
            }
            Some(Ok(ProcessEvent::Closed)) => break,
            Some(Err(e)) => panic!("stream error: {e}"),
            None => panic!("the stream ended before closed"),
        }
    }
    let after = next(p).await;
    assert!(after.is_none(), "nothing may follow closed, got {after:?}");
    exit_code.expect("closed before exited")
}

fn state_of(list: &ListResult, id: &str) -> Option<ProcessState> {
    list.processes.iter().find(|p| p.process_id == id).map(|p| p.state)
}

// ---------------------------------------------------------------------------
// Exactly-once output through cuts
// ---------------------------------------------------------------------------

/// Bytes per stream per piece of the gated producer.
const PIECE: usize = 256 * 1024;
/// Pieces: 2 x 48 x 256 KiB = 24 MiB in all.
const PIECES: usize = 48;

/// What the consumer of [`process_output_is_exactly_once_through_cuts`] does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Nothing.
    Nothing,
    /// Cut again once the proxy forwarded more than this many connections.
    CutNextConnection(usize),
    /// Cut again once the server sent its first bytes (the WebSocket upgrade)
    /// on the `n`th connection (from 0), held back by the proxy: the client is
    /// in the middle of its resume handshake. Then release the downstream.
    CutDuringHandshake(usize),
}

impl Then {
    /// Waits until it is time (forever for [`Then::Nothing`]).
    async fn due(self, proxy: &Proxy) {
        loop {
            match self {
                Then::Nothing => std::future::pending::<()>().await,
                Then::CutNextConnection(n) if proxy.forwarded() > n => return,
                Then::CutDuringHandshake(n) if proxy.downstream_bytes_of(n).is_some_and(|b| b > 0) => return,
                _ => retry_pause().await,
            }
        }
    }
}

/// A gated producer writes 24 MiB (stdout and stderr interleaved) while the
/// proxy cuts the connection seven times:
///
/// 1. in the middle of a piece;
/// 2. again in the middle of a piece, then once more as soon as the proxy
///    forwarded the reconnection (within a 20 ms poll: during its handshake,
///    its catch-up, or just after), so two resumes come in a row;
/// 3. with server-to-client bytes held back, then once more while the
///    reconnection's WebSocket upgrade is held: that resume attempt dies in
///    its handshake and the client tries again;
/// 4. right before the stdin line that requests a piece (the write is
///    sent on the dead connection or queued, and either way applied once);
/// 5. late in the output.
///
/// The client must resume each time and deliver every byte exactly once, in
/// order, with contiguous seqs, then `Exited 0`, `Closed` and the end. The
/// consumer never stops reading (it waits for a second cut in the same
/// `select!`, and the stdin calls run as tasks), so the client is never stuck
/// on a full event queue.
///
/// No eviction is possible, whatever the timing: the producer writes one piece
/// (256 KiB to stdout, then 256 KiB to stderr) per stdin line, and the test
/// writes the next line only once it has received the whole previous piece.
/// So what the client has not yet received is always part of the current
/// piece (512 KiB), within the server's 1 MiB retention, however long a
/// detach lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_output_is_exactly_once_through_cuts() {
    const MIB: usize = 1024 * 1024;
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let dir = temp_dir("client-exactly-once");
    let want_out = pseudo_random(1, PIECE * PIECES);
    let want_err = pseudo_random(2, PIECE * PIECES);
    std::fs::write(dir.join("out.bin"), &want_out).expect("write out.bin");
    std::fs::write(dir.join("err.bin"), &want_err).expect("write err.bin");
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let script = format!(
        "i=0; while read x; do \
           dd if=out.bin bs={PIECE} skip=$i count=1 iflag=fullblock status=none && \
           dd if=err.bin bs={PIECE} skip=$i count=1 iflag=fullblock status=none >&2 || exit 1; \
           i=$((i+1)); \
         done"
    );
    let mut p = start(&client, exec("producer", &["sh", "-c", &script], &dir, true)).await;
    write(&p, "next\n").await;

    // (cut once the received total crosses this, what to do after that cut)
    let mut cut_at = [(3 * MIB + 100 * 1024, 1), (9 * MIB + 300 * 1024, 2), (14 * MIB + 7, 3), (20 * MIB + 1, 1)]
        .into_iter()
        .peekable();
    // Cut right before the stdin line that requests this piece.
    let cut_before_piece = 30;
    let mut rx = Received::default();
    let mut requested = 1; // pieces requested so far
    let mut cuts = 0;
    let mut then = Then::Nothing;
    // The stdin calls run as tasks, so that the consumer never stops reading
    // (a reply may wait for a resume that waits for a second cut).
    let mut stdin_calls = Vec::new();
    let exit_code = within("the whole output", async {
        loop {
            let item = tokio::select! {
                biased;
                () = then.due(&proxy) => {
                    proxy.cut().await;
                    proxy.stall_downstream(false);
                    cuts += 1;
                    then = Then::Nothing;
                    continue;
                }
                item = p.next_event() => item,
            };
            match item {
                Some(Ok(ProcessEvent::Output { seq, stream, data })) => {
                    let before = rx.total();
                    rx.output(seq, stream, &data);
                    assert!(rx.stdout.len() <= requested * PIECE && rx.stderr.len() <= requested * PIECE);
                    if let Some((_, kind)) = cut_at.next_if(|(at, _)| before < *at && rx.total() >= *at) {
                        if kind == 3 {
                            proxy.stall_downstream(true);
                        }
                        // Every connection forwarded so far is cut; the next one is the client's reconnection.
                        let forwarded = proxy.forwarded();
                        proxy.cut().await;
                        cuts += 1;
                        then = match kind {
                            2 => Then::CutNextConnection(forwarded),
                            3 => Then::CutDuringHandshake(forwarded),
                            _ => Then::Nothing,
                        };
                    }
                    if rx.stdout.len() == requested * PIECE && rx.stderr.len() == requested * PIECE {
                        let (client, id) = (client.clone(), p.id().to_owned());
                        if requested == PIECES {
                            stdin_calls.push(tokio::spawn(async move { client.close_stdin(&id).await }));
                        } else {
                            if requested == cut_before_piece {
                                proxy.cut().await;
                                cuts += 1;
                            }
                            let line = Bytes::from_static(b"next\n");
                            stdin_calls.push(tokio::spawn(async move { client.write(&id, line).await }));
                            requested += 1;
                        }
                    }
                }
                Some(Ok(ProcessEvent::Exited { exit_code, signal, timed_out })) => {
                    assert_eq!((signal, timed_out), (None, false));
                    break exit_code;
                }
                other => panic!("unexpected {other:?} after {} bytes", rx.total()),
            }
        }
    })
    .await;
    assert_eq!(exit_code, 0);
    assert!(matches!(next(&mut p).await, Some(Ok(ProcessEvent::Closed))), "closed follows exited");
    assert!(next(&mut p).await.is_none(), "the stream ends after closed");
    assert_same("stdout", &rx.stdout, &want_out);
    assert_same("stderr", &rx.stderr, &want_err);
    assert_eq!(stdin_calls.len(), PIECES);
    for call in stdin_calls {
        let status = within("a stdin call", call).await.expect("stdin task").expect("write or closeStdin");
        assert_eq!(status, WriteStatus::Accepted);
    }
    assert_eq!((cuts, then), (7, Then::Nothing), "every planned cut happened");
    assert!(proxy.forwarded() > cuts, "a new connection after each cut: {} for {cuts} cuts", proxy.forwarded());
    client.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Exactly-once writes through cuts
// ---------------------------------------------------------------------------

/// A writer task writes 3,000 distinct pieces to `cat`, one after the other,
/// while the consumer cuts the connection three times: each piece shows up
/// exactly once and in order in the output (a write whose reply was lost is
/// sent again under the same `writeId`, which the server does not apply
/// twice), then `closeStdin` ends `cat` with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_exactly_once_through_cuts() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let mut p = start(&client, exec("cat", &["cat"], Path::new("/tmp"), true)).await;
    let pieces: Vec<Bytes> = (0..3000u64)
        .map(|i| {
            let mut piece = format!("<{i}>").into_bytes();
            piece.extend(pseudo_random(i + 10, 100 + (i as usize * 37) % 900));
            Bytes::from(piece)
        })
        .collect();
    let want = pieces.concat();
    let writer = tokio::spawn({
        let (client, id) = (client.clone(), p.id().to_owned());
        async move {
            for piece in pieces {
                assert_eq!(client.write(&id, piece).await.expect("write"), WriteStatus::Accepted);
            }
            client.close_stdin(&id).await.expect("closeStdin")
        }
    });
    let mut cut_at = [want.len() / 4, want.len() / 2, want.len() * 3 / 4].into_iter().peekable();
    let mut rx = Received::default();
    within("the echoed pieces", async {
        while rx.total() < want.len() {
            match p.next_event().await {
                Some(Ok(ProcessEvent::Output { seq, stream, data })) => {
                    rx.output(seq, stream, &data);
                    if cut_at.next_if(|at| rx.total() >= *at).is_some() {
                        proxy.cut().await;
                    }
                }
                other => panic!("unexpected {other:?} after {} bytes", rx.total()),
            }
        }
    })
    .await;
    assert_eq!(within("the writer", writer).await.expect("writer task"), WriteStatus::Accepted);
    assert_eq!(finish(&mut p, &mut rx).await, 0);
    assert_same("cat's output", &rx.stdout, &want);
    assert!(rx.stderr.is_empty());
    assert_eq!(cut_at.next(), None, "every planned cut happened");
    assert!(proxy.forwarded() >= 4);
    client.close().await;
}

/// A write that reached the process, but whose reply the cut swallowed, is
/// sent again after the resume, answered `accepted`, and not written twice.
/// Deterministic: the proxy holds back server-to-client bytes, the test waits
/// until the bytes are in the file `cat` writes, then cuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_applied_before_a_cut_is_not_written_again() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let dir = temp_dir("client-write-replay");
    let file = dir.join("got");
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let mut p = start(&client, exec("sink", &["sh", "-c", "cat > got"], &dir, true)).await;
    write(&p, "one\n").await;
    proxy.stall_downstream(true);
    let second = tokio::spawn({
        let (client, id) = (client.clone(), p.id().to_owned());
        async move { client.write(&id, Bytes::from_static(b"two\n")).await }
    });
    eventually("the second write to reach the file", || {
        std::fs::read(&file).is_ok_and(|got| got.as_slice() == b"one\ntwo\n")
    })
    .await;
    assert!(!second.is_finished(), "its reply is held back by the proxy");
    proxy.cut().await;
    proxy.stall_downstream(false);
    let status = within("the replayed write", second).await.expect("writer task").expect("write");
    assert_eq!(status, WriteStatus::Accepted);
    write(&p, "three\n").await;
    close_stdin(&p).await;
    assert_eq!(finish(&mut p, &mut Received::default()).await, 0);
    assert_eq!(std::fs::read(&file).expect("read got"), b"one\ntwo\nthree\n", "every write exactly once");
    client.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pipelined writes that were all sent but none of which reached the server
/// when the connection was cut are sent again in their original order: the
/// server applies writes in request order, so the output must be the pieces
/// in order. Deterministic: the proxy holds back client-to-server bytes until
/// it has seen (part of) the 16th request, then cuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_writes_in_flight_during_a_cut_keep_their_order() {
    const WRITES: usize = 16;
    const LEN: usize = 6000; // 8,000 base64 characters per request
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let mut p = start(&client, exec("cat", &["cat"], Path::new("/tmp"), true)).await;
    let pieces: Vec<Bytes> = (0..WRITES)
        .map(|i| {
            let mut piece = format!("<{i:02}>").into_bytes();
            piece.extend(pseudo_random(100 + i as u64, LEN - piece.len()));
            Bytes::from(piece)
        })
        .collect();
    let want = pieces.concat();
    proxy.stall_upstream(true);
    let before = proxy.upstream_bytes();
    let writes = tokio::spawn({
        let (client, id) = (client.clone(), p.id().to_owned());
        async move {
            // Polled in order, so the calls reach the connection in order.
            futures_util::future::join_all(pieces.into_iter().map(|piece| client.write(&id, piece))).await
        }
    });
    // A request is its 8,000 base64 characters plus at most 300 more, in a
    // WebSocket frame with an 8-byte header: once more than 15 of the largest
    // possible were seen, the 16th (the last) was sent.
    let base64_len = (LEN.div_ceil(3) * 4) as u64;
    let sent_all = before + (WRITES as u64 - 1) * (base64_len + 300 + 8);
    eventually("the 16th write to be sent", || proxy.upstream_bytes() > sent_all).await;
    proxy.cut().await;
    proxy.stall_upstream(false);
    for (i, status) in within("the replayed writes", writes).await.expect("writes task").into_iter().enumerate() {
        assert_eq!(status.unwrap_or_else(|e| panic!("write {i}: {e}")), WriteStatus::Accepted);
    }
    close_stdin(&p).await;
    let mut rx = Received::default();
    assert_eq!(finish(&mut p, &mut rx).await, 0);
    let order: Vec<String> =
        rx.stdout.chunks(LEN).map(|piece| String::from_utf8_lossy(&piece[..4.min(piece.len())]).into_owned()).collect();
    assert_same(&format!("cat's output (pieces in the order {order:?})"), &rx.stdout, &want);
    client.close().await;
}

// ---------------------------------------------------------------------------
// Calls during recovery
// ---------------------------------------------------------------------------

/// Cuts the connection with the proxy refusing reconnections, and waits until
/// the client has had one attempt refused: it is recovering, so any call from
/// now on waits in its queue.
async fn cut_and_refuse(proxy: &Proxy) {
    proxy.set_mode(Mode::Refuse);
    proxy.cut().await;
    eventually("a refused reconnection attempt", || proxy.refused() >= 1).await;
}

/// Keeps the client recovering a little longer (one more refused attempt,
/// then one held unanswered, as by a server that stopped accepting), checks
/// that `calls` still wait, then lets the next connection through.
async fn delay_then_let_through(proxy: &Proxy, calls: &[&dyn Fn() -> bool]) {
    let refused = proxy.refused();
    eventually("another refused attempt", || proxy.refused() > refused).await;
    proxy.set_mode(Mode::Hold);
    eventually("a held attempt", || proxy.held() >= 1).await;
    assert!(calls.iter().all(|finished| !finished()), "the calls wait while no connection gets through");
    proxy.set_mode(Mode::Forward);
}

/// A call made while the client is recovering waits, through refused and then
/// unanswered (held) reconnection attempts, and succeeds once the proxy lets
/// a connection through: `process/list` sees the session's process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_made_during_recovery_wait_and_then_succeed() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let mut waiting = start(&client, exec("waiting", &["cat"], Path::new("/tmp"), true)).await;
    cut_and_refuse(&proxy).await;
    let list = tokio::spawn({
        let client = client.clone();
        async move { client.list().await }
    });
    delay_then_let_through(&proxy, &[&|| list.is_finished()]).await;
    let list = within("process/list", list).await.expect("list task").expect("list");
    let ids: Vec<&str> = list.processes.iter().map(|p| p.process_id.as_str()).collect();
    assert_eq!(ids, ["waiting"]);
    assert_eq!(state_of(&list, "waiting"), Some(ProcessState::Running), "{list:?}");
    close_stdin(&waiting).await;
    assert_eq!(finish(&mut waiting, &mut Received::default()).await, 0);
    assert!(proxy.forwarded() >= 2, "the call went through a resumed connection");
    client.close().await;
}

/// A process started while the client is recovering (its `process/start`
/// waits in the queue: never sent before the resume, so it is not an
/// in-flight call of unknown outcome) starts once the client resumed, and its
/// stream delivers its events like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_started_during_recovery_streams_its_events() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), DEADLINE).await;
    cut_and_refuse(&proxy).await;
    let late = tokio::spawn({
        let client = client.clone();
        async move { client.start(exec("late", &["sh", "-c", "echo late"], Path::new("/tmp"), false)).await }
    });
    delay_then_let_through(&proxy, &[&|| late.is_finished()]).await;
    let mut late = within("process/start", late).await.expect("start task").expect("start");
    let mut rx = Received::default();
    assert_eq!(finish(&mut late, &mut rx).await, 0);
    assert_eq!(rx.stdout, b"late\n");
    client.close().await;
}

/// A `process/closeStdin` that took effect, but whose reply the cut swallowed,
/// is sent again after the resume (it is replayable) and answers; stdin was
/// closed once and the process ends normally. Deterministic: the proxy holds
/// back server-to-client bytes until the process saw its end of input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_stdin_applied_before_a_cut_is_answered_after_the_resume() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let dir = temp_dir("client-close-replay");
    let marker = dir.join("eof");
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let mut p = start(&client, exec("eof", &["sh", "-c", "cat; touch eof"], &dir, true)).await;
    write(&p, "x\n").await;
    let mut rx = Received::default();
    while rx.total() < 2 {
        match next(&mut p).await {
            Some(Ok(ProcessEvent::Output { seq, stream, data })) => rx.output(seq, stream, &data),
            other => panic!("unexpected {other:?}"),
        }
    }
    proxy.stall_downstream(true);
    let close = tokio::spawn({
        let (client, id) = (client.clone(), p.id().to_owned());
        async move { client.close_stdin(&id).await }
    });
    eventually("cat to see the end of its input", || marker.exists()).await;
    assert!(!close.is_finished(), "its reply is held back by the proxy");
    proxy.cut().await;
    proxy.stall_downstream(false);
    let status = within("the replayed closeStdin", close).await.expect("close task").expect("closeStdin");
    // The server answers a repeated closeStdin `stdinClosed` ("closed already"): the
    // client cannot tell it from a stdin someone else closed. Either way the call
    // succeeded and stdin was closed exactly once.
    assert!(matches!(status, WriteStatus::Accepted | WriteStatus::StdinClosed), "{status:?}");
    assert_eq!(finish(&mut p, &mut rx).await, 0);
    assert_eq!(rx.stdout, b"x\n");
    client.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Calls in flight when the connection drops: one without side effects
/// (`process/list`) is sent again and answered; one with side effects
/// (`process/terminate`) is not sent again and fails with `OutcomeUnknown`.
/// Deterministic: the proxy holds back both requests (so the server never
/// saw the terminate, and the process still runs), then cuts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_during_a_cut_are_replayed_or_reported_unknown() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let mut victim = start(&client, exec("victim", &["cat"], Path::new("/tmp"), true)).await;
    proxy.stall_upstream(true);
    let before = proxy.upstream_bytes();
    let terminate = tokio::spawn({
        let client = client.clone();
        async move { client.terminate("victim", None).await }
    });
    eventually("process/terminate to be sent", || proxy.upstream_bytes() > before).await;
    let before = proxy.upstream_bytes();
    let list = tokio::spawn({
        let client = client.clone();
        async move { client.list().await }
    });
    eventually("process/list to be sent", || proxy.upstream_bytes() > before).await;
    proxy.cut().await;
    proxy.stall_upstream(false);
    match within("process/terminate", terminate).await.expect("terminate task") {
        Err(ClientError::OutcomeUnknown(method)) => assert_eq!(method, "process/terminate"),
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    let list = within("process/list", list).await.expect("list task").expect("list");
    assert_eq!(state_of(&list, "victim"), Some(ProcessState::Running), "the terminate never arrived: {list:?}");
    close_stdin(&victim).await;
    assert_eq!(finish(&mut victim, &mut Received::default()).await, 0);
    client.close().await;
}

// ---------------------------------------------------------------------------
// The resume deadline
// ---------------------------------------------------------------------------

const SHORT_DEADLINE: Duration = Duration::from_secs(2);

/// Checks the Failed state: `call` failed with `Disconnected`, the stream gets
/// exactly one `Disconnected` then ends, and later calls fail at once.
async fn assert_failed(client: &Client, p: &mut RemoteProcess, call: Result<ListResult, ClientError>) {
    assert!(matches!(call, Err(ClientError::Disconnected(_))), "the waiting call: {call:?}");
    let item = next(p).await;
    assert!(matches!(item, Some(Err(ClientError::Disconnected(_)))), "the stream's last item: {item:?}");
    let item = next(p).await;
    assert!(item.is_none(), "nothing after the error: {item:?}");
    let at_once = Duration::from_secs(1);
    let list = tokio::time::timeout(at_once, client.list()).await.expect("a later call fails at once");
    assert!(matches!(list, Err(ClientError::Disconnected(_))), "a later list: {list:?}");
    let write = tokio::time::timeout(at_once, p.write(Bytes::from_static(b"x"))).await.expect("at once");
    assert!(matches!(write, Err(ClientError::Disconnected(_))), "a later write: {write:?}");
    let started = tokio::time::timeout(at_once, client.start(exec("after", &["true"], Path::new("/tmp"), false)))
        .await
        .expect("at once");
    assert!(matches!(started, Err(ClientError::Disconnected(_))), "a later start: {:?}", started.err());
}

/// With a 2 s resume deadline and every reconnection refused, a waiting call
/// fails with `Disconnected` (not before the deadline), the process stream
/// yields exactly one `Disconnected` and ends, and later calls fail at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_resume_deadline_everything_fails_with_disconnected() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), SHORT_DEADLINE).await;
    let mut p = start(&client, exec("orphan", &["cat"], Path::new("/tmp"), true)).await;
    proxy.set_mode(Mode::Refuse);
    let cut = std::time::Instant::now();
    proxy.cut().await;
    let call = within("the call to fail", client.list()).await;
    assert!(cut.elapsed() >= SHORT_DEADLINE, "failed after {:?}, before the deadline", cut.elapsed());
    assert_failed(&client, &mut p, call).await;
    assert!(proxy.refused() >= 1, "the client tried to resume");
    assert_eq!(proxy.forwarded(), 1);
}

/// The same when reconnection attempts are not refused but never answered (a
/// server that stopped accepting): the deadline still ends the recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resume_deadline_holds_while_an_attempt_hangs() {
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let client = connect(proxy.endpoint(), SHORT_DEADLINE).await;
    let mut p = start(&client, exec("orphan", &["cat"], Path::new("/tmp"), true)).await;
    proxy.set_mode(Mode::Hold);
    proxy.cut().await;
    let limit = SHORT_DEADLINE + Duration::from_secs(10);
    let call = tokio::time::timeout(limit, client.list()).await.unwrap_or_else(|_| {
        panic!(
            "the call still waits {limit:?} after the cut with a {SHORT_DEADLINE:?} resume deadline \
             ({} attempt(s) held unanswered by the proxy)",
            proxy.held()
        )
    });
    assert_failed(&client, &mut p, call).await;
}

// ---------------------------------------------------------------------------
// Eviction
// ---------------------------------------------------------------------------

/// Output lost while detached is reported, never skipped silently.
///
/// The producer prints `start`, then blocks opening a FIFO; the test consumes
/// `start`, makes the proxy refuse reconnections and cuts, and only then
/// releases the producer through the FIFO (so no byte of the 3 MiB can reach
/// the client before the cut). The producer writes 3 MiB + `done\n` and
/// touches a marker; by then the server has read all but at most a pipe
/// buffer (1 MiB) of it into its 1 MiB retention, so at least 1 MiB of it is
/// evicted while no client is attached. Then the proxy lets the client
/// resume: the stream yields `Evicted` first, then the retained output from
/// `first_retained_seq` on with contiguous seqs, then `Exited 0`, `Closed`,
/// the end. `bytes` counts every evicted byte (including `start`, already
/// delivered), so `bytes` plus the bytes after the error is the whole output,
/// and those bytes are its exact tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_while_detached_is_reported_explicitly() {
    const BIG: usize = 3 * 1024 * 1024;
    let server = Server::start(&[]);
    let proxy = Proxy::start(&server).await;
    let dir = temp_dir("client-eviction");
    let (gate, marker) = (dir.join("gate"), dir.join("finished"));
    let made = std::process::Command::new("mkfifo").arg(&gate).status().expect("mkfifo");
    assert!(made.success());
    let client = connect(proxy.endpoint(), DEADLINE).await;
    let script =
        format!("printf start; read x < gate; head -c {BIG} /dev/zero | tr '\\0' a; echo done; touch finished");
    let mut p = start(&client, exec("big", &["sh", "-c", &script], &dir, false)).await;
    let mut rx = Received::default();
    while rx.total() < 5 {
        match next(&mut p).await {
            Some(Ok(ProcessEvent::Output { seq, stream, data })) => rx.output(seq, stream, &data),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rx.stdout, b"start");
    let delivered_seq = rx.last_seq;

    proxy.set_mode(Mode::Refuse);
    proxy.cut().await;
    within(
        "the producer to be released",
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            std::fs::OpenOptions::new().write(true).open(&gate)?.write_all(b"go\n")
        }),
    )
    .await
    .expect("gate task")
    .expect("write the gate");
    eventually("the producer to finish", || marker.exists()).await;
    proxy.set_mode(Mode::Forward);

    let whole: Vec<u8> = [b"start".as_slice(), &vec![b'a'; BIG], b"done\n"].concat();
    let (first_retained_seq, evicted) = match next(&mut p).await {
        Some(Err(ClientError::Evicted { process_id, first_retained_seq, bytes })) => {
            assert_eq!(process_id, "big");
            (first_retained_seq, bytes)
        }
        other => panic!("expected Evicted after the resume, got {other:?}"),
    };
    assert!(first_retained_seq > delivered_seq + 1, "a real gap: first retained seq {first_retained_seq}");
    // Unread at the resume: at most a pipe buffer (execd asks for 1 MiB); retained: at most 1 MiB.
    assert!(evicted as usize >= whole.len() - 2 * 1024 * 1024, "{evicted} bytes evicted");
    let mut after = Received { last_seq: first_retained_seq - 1, ..Received::default() };
    assert_eq!(finish(&mut p, &mut after).await, 0);
    assert!(after.stderr.is_empty());
    assert_eq!(evicted as usize + after.stdout.len(), whole.len(), "evicted + received after the gap = everything");
    assert_same("the output after the gap", &after.stdout, &whole[evicted as usize..]);
    client.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Stdio
// ---------------------------------------------------------------------------

/// Over the stdio of a child `execd serve --listen stdio`: a process's output,
/// exit code and close arrive in order; the session cannot be resumed; after
/// `close`, calls fail with `Disconnected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_over_stdio() {
    let endpoint = Endpoint::Stdio {
        program: execd_bin().to_owned(),
        args: ["serve", "--listen", "stdio"].map(String::from).to_vec(),
    };
    assert!(!endpoint.resumable());
    let client = connect(endpoint, DEADLINE).await;
    let mut p = start(&client, exec("hi", &["sh", "-c", "echo hi; exit 3"], Path::new("/tmp"), false)).await;
    match next(&mut p).await {
        Some(Ok(ProcessEvent::Output { seq: 1, stream: StreamName::Stdout, data })) => assert_eq!(data, "hi\n"),
        other => panic!("expected the output, got {other:?}"),
    }
    match next(&mut p).await {
        Some(Ok(ProcessEvent::Exited { exit_code, signal, timed_out })) => {
            assert_eq!((exit_code, signal, timed_out), (3, None, false))
        }
        other => panic!("expected exited, got {other:?}"),
    }
    assert!(matches!(next(&mut p).await, Some(Ok(ProcessEvent::Closed))));
    assert!(next(&mut p).await.is_none());
    client.close().await;
    let list = within("a call after close", client.list()).await;
    assert!(matches!(list, Err(ClientError::Disconnected(_))), "{list:?}");
}
