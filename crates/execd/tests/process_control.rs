//! execd's process-control extensions of the exec-server dialect: the PTY size
//! (`size`, `process/resizePty`), `process/closeStdin`, the extra signals of
//! `process/signal`, `process/terminate{graceMs}`, `timeoutMs`,
//! `outputBytesCap`, `process/list` and the `evicted` report of `process/read`.
//!
//! Every wait is on a notification or on output the child prints once it is
//! ready; nothing sleeps to wait for an event.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Starts a process that must start.
async fn start(c: &mut Client, id: &str, argv: &[&str], extra: Value) {
    let r = c.start(id, argv, extra.clone()).await.unwrap_or_else(|e| panic!("start {id} {argv:?} {extra}: {e:?}"));
    assert_eq!(r, json!({"processId": id, "sandboxType": "none"}));
}

/// One retained chunk as `process/read` reports it.
fn chunk(seq: u64, stream: &str, data: &[u8]) -> Value {
    json!({"seq": seq, "stream": stream, "chunk": b64(data)})
}

/// A complete `process/read` result without any extension member.
fn read_result(chunks: Vec<Value>, next_seq: u64, exit_code: Option<i64>, closed: bool) -> Value {
    json!({
        "chunks": chunks,
        "nextSeq": next_seq,
        "exited": exit_code.is_some(),
        "exitCode": exit_code,
        "closed": closed,
        "failure": null,
        "sandboxDenied": false,
    })
}

/// The next `process/output` of `id`: (seq, stream, bytes).
async fn next_output(c: &mut Client, id: &str) -> (u64, String, Vec<u8>) {
    let p = c.notification("process/output", id).await;
    (
        p["seq"].as_u64().expect("seq"),
        p["stream"].as_str().expect("stream").to_owned(),
        unb64(p["chunk"].as_str().expect("chunk")),
    )
}

/// Collects `process/output` of `id` until the bytes end with `needle`;
/// returns the text and the seq of the last chunk.
async fn output_until(c: &mut Client, id: &str, needle: &str) -> (String, u64) {
    let mut all = Vec::new();
    let mut last = 0;
    while !String::from_utf8_lossy(&all).ends_with(needle) {
        let (seq, _, bytes) = next_output(c, id).await;
        all.extend(bytes);
        last = seq;
    }
    (String::from_utf8(all).expect("utf-8"), last)
}

/// `process/write`; returns the raw result or error.
async fn write(c: &mut Client, id: &str, data: &[u8], write_id: &str) -> Result<Value, RpcError> {
    c.call("process/write", json!({"processId": id, "chunk": b64(data), "writeId": write_id})).await
}

/// `process/closeStdin` that must succeed; returns its result.
async fn close_stdin(c: &mut Client, id: &str) -> Value {
    c.ok("process/closeStdin", json!({"processId": id})).await
}

/// `process/signal` that must succeed with `{}`.
async fn signal(c: &mut Client, id: &str, name: &str) {
    assert_eq!(c.ok("process/signal", json!({"processId": id, "signal": name})).await, json!({}), "{name} to {id}");
}

/// Every notification of process `id` until `process/closed`, whole, in arrival order.
async fn notifications_until_closed(c: &mut Client, id: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let v = c
            .take(&format!("events of {id}"), |v| {
                v["method"].as_str().is_some_and(|m| m.starts_with("process/")) && v["params"]["processId"] == id
            })
            .await;
        let done = v["method"] == "process/closed";
        all.push(v);
        if done {
            return all;
        }
    }
}

/// The bytes of `stream` in `notifications`.
fn stream_bytes(notifications: &[Value], stream: &str) -> Vec<u8> {
    notifications
        .iter()
        .filter(|v| v["method"] == "process/output" && v["params"]["stream"] == stream)
        .flat_map(|v| unb64(v["params"]["chunk"].as_str().expect("chunk")))
        .collect()
}

/// The params of the one `method` notification in `notifications`.
fn params_of(notifications: &[Value], method: &str) -> Value {
    let found: Vec<&Value> = notifications.iter().filter(|v| v["method"] == method).collect();
    assert_eq!(found.len(), 1, "one {method} in {notifications:?}");
    found[0]["params"].clone()
}

/// (seq, kind) of each notification: kind is the stream of an output, else `exited`/`closed`.
fn kinds(notifications: &[Value]) -> Vec<(u64, String)> {
    notifications
        .iter()
        .map(|v| {
            let p = &v["params"];
            let kind = match v["method"].as_str().expect("method") {
                "process/output" => p["stream"].as_str().expect("stream").to_owned(),
                "process/exited" => "exited".to_owned(),
                "process/closed" => "closed".to_owned(),
                other => panic!("unexpected {other}"),
            };
            (p["seq"].as_u64().expect("seq"), kind)
        })
        .collect()
}

/// Terminates a running process and waits for its `closed`.
async fn kill_and_close(c: &mut Client, id: &str) {
    assert_eq!(c.ok("process/terminate", json!({"processId": id})).await, json!({"running": true}), "{id}");
    c.events_until_closed(id).await;
}

/// The exact `process/exited` params of a signal death.
fn signalled(id: &str, seq: u64, code: i64, name: &str) -> Value {
    json!({"processId": id, "seq": seq, "exitCode": code, "sandboxDenied": false, "signal": name})
}

/// A raw request with the given (optional) params; returns the raw response.
async fn raw_request(c: &mut Client, id: i64, method: &str, params: Option<Value>) -> Value {
    let mut request = json!({"id": id, "method": method});
    if let Some(p) = params {
        request["params"] = p;
    }
    c.send(&request);
    c.response(id).await
}

// ---------------------------------------------------------------------------
// PTY size: `size` and process/resizePty
// ---------------------------------------------------------------------------

on_both_transports!(pty_size_at_start);

async fn pty_size_at_start(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let cases = [
        ("big", json!({"tty": true, "size": {"rows": 50, "cols": 132}}), "50 132\r\n"),
        ("dflt", json!({"tty": true}), "24 80\r\n"),
        ("one", json!({"tty": true, "size": {"rows": 1, "cols": 1}}), "1 1\r\n"),
        ("max", json!({"tty": true, "size": {"rows": 65535, "cols": 65535}}), "65535 65535\r\n"),
    ];
    for (id, extra, expected) in cases {
        start(c, id, &["stty", "size"], extra).await;
        let run = c.events_until_closed(id).await;
        assert_eq!(String::from_utf8_lossy(&run.stdout), expected, "{id}");
        assert_eq!(run.exit_code, Some(0), "{id}");
    }
}

#[tokio::test]
async fn resize_pty_changes_the_size_the_child_sees() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let extra = json!({"tty": true, "size": {"rows": 30, "cols": 90}});
    start(&mut c, "r", &["sh", "-c", "stty size; read x; stty size"], extra).await;
    // The child blocks in `read` after printing its first size.
    assert_eq!(output_until(&mut c, "r", "\r\n").await.0, "30 90\r\n");
    let r = c.ok("process/resizePty", json!({"processId": "r", "size": {"rows": 40, "cols": 100}})).await;
    assert_eq!(r, json!({}));
    assert_eq!(write(&mut c, "r", b"\n", "w1").await, Ok(json!({"status": "accepted"})));
    let run = c.events_until_closed("r").await;
    // The terminal echoes the line, then the child prints the new size.
    assert_eq!(String::from_utf8_lossy(&run.stdout), "\r\n40 100\r\n");
    assert_eq!(run.exit_code, Some(0));
}

#[tokio::test]
async fn resize_pty_sends_sigwinch_to_the_foreground_group() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    // The trap prints the size as the child sees it when SIGWINCH arrives.
    let script = "trap 'echo winch; stty size' WINCH; echo ready; while :; do sleep 0.05; done";
    start(&mut c, "w", &["sh", "-c", script], json!({"tty": true})).await;
    assert_eq!(output_until(&mut c, "w", "ready\r\n").await.0, "ready\r\n");
    for (rows, cols) in [(40, 100), (10, 20)] {
        let r = c.ok("process/resizePty", json!({"processId": "w", "size": {"rows": rows, "cols": cols}})).await;
        assert_eq!(r, json!({}));
        let expected = format!("winch\r\n{rows} {cols}\r\n");
        assert_eq!(output_until(&mut c, "w", &expected).await.0, expected);
    }
    kill_and_close(&mut c, "w").await;
}

on_both_transports!(size_and_resize_errors);

async fn size_and_resize_errors(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let cases = [
        (json!({"tty": false, "size": {"rows": 50, "cols": 132}}), "size requires tty: true"),
        (json!({"tty": true, "size": {"rows": 0, "cols": 132}}), "size rows and cols must be greater than 0"),
        (json!({"tty": true, "size": {"rows": 50, "cols": 0}}), "size rows and cols must be greater than 0"),
    ];
    for (extra, message) in cases {
        assert_eq!(c.start("bad", &["true"], extra.clone()).await, Err((-32602, message.to_owned())), "{extra}");
        // Nothing ran and the id stays free.
        let e = c.err("process/read", json!({"processId": "bad"})).await;
        assert_eq!(e, (-32600, "unknown process id bad".to_owned()), "{extra}");
    }

    let size = json!({"rows": 40, "cols": 100});
    let e = c.err("process/resizePty", json!({"processId": "nope", "size": size})).await;
    assert_eq!(e, (-32600, "unknown process id nope".to_owned()));

    start(c, "pipe", &["sleep", "1000"], json!({})).await;
    let e = c.err("process/resizePty", json!({"processId": "pipe", "size": size})).await;
    assert_eq!(e, (-32600, "process pipe is not a tty".to_owned()));

    start(c, "tty", &["sleep", "1000"], json!({"tty": true})).await;
    for bad in [json!({"rows": 0, "cols": 100}), json!({"rows": 40, "cols": 0}), json!({"rows": 0, "cols": 0})] {
        let e = c.err("process/resizePty", json!({"processId": "tty", "size": bad})).await;
        assert_eq!(e, (-32602, "size rows and cols must be greater than 0".to_owned()), "{bad}");
    }
    let e = c.err("process/resizePty", json!({"processId": "tty"})).await;
    assert_eq!(e, (-32602, "missing field `size`".to_owned()));

    kill_and_close(c, "pipe").await;
    kill_and_close(c, "tty").await;
}

// ---------------------------------------------------------------------------
// process/closeStdin
// ---------------------------------------------------------------------------

on_both_transports!(close_stdin_ends_a_pipe);

async fn close_stdin_ends_a_pipe(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    start(c, "cat", &["cat"], json!({"pipeStdin": true})).await;
    assert_eq!(write(c, "cat", b"hello\n", "w1").await, Ok(json!({"status": "accepted"})));
    assert_eq!(close_stdin(c, "cat").await, json!({"status": "accepted"}));
    let run = c.events_until_closed("cat").await;
    assert_eq!((run.stdout.as_slice(), run.stderr.as_slice()), (&b"hello\n"[..], &b""[..]));
    assert_eq!(run.exit_code, Some(0));
}

#[tokio::test]
async fn close_stdin_statuses() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    assert_eq!(close_stdin(&mut c, "nope").await, json!({"status": "unknownProcess"}));

    // The child outlives its stdin, so writes after the close reach a running process.
    start(&mut c, "p", &["sh", "-c", "cat; echo eof; exec sleep 1000"], json!({"pipeStdin": true})).await;
    assert_eq!(write(&mut c, "p", b"hello\n", "w1").await, Ok(json!({"status": "accepted"})));
    assert_eq!(close_stdin(&mut c, "p").await, json!({"status": "accepted"}));
    assert_eq!(output_until(&mut c, "p", "eof\n").await.0, "hello\neof\n");
    assert_eq!(write(&mut c, "p", b"more\n", "w2").await, Ok(json!({"status": "stdinClosed"})));
    // A writeId accepted before the close is still acknowledged as accepted.
    assert_eq!(write(&mut c, "p", b"hello\n", "w1").await, Ok(json!({"status": "accepted"})));
    assert_eq!(close_stdin(&mut c, "p").await, json!({"status": "stdinClosed"}));
    kill_and_close(&mut c, "p").await;
    assert_eq!(close_stdin(&mut c, "p").await, json!({"status": "stdinClosed"}), "closed process");

    // No stdin at all: a non-tty process without pipeStdin.
    start(&mut c, "np", &["sleep", "1000"], json!({})).await;
    assert_eq!(close_stdin(&mut c, "np").await, json!({"status": "stdinClosed"}));
    kill_and_close(&mut c, "np").await;

    let e = c.err("process/closeStdin", json!({})).await;
    assert_eq!(e, (-32602, "missing field `processId`".to_owned()));
}

on_both_transports!(close_stdin_ends_a_tty_cat);

async fn close_stdin_ends_a_tty_cat(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    start(c, "tc", &["cat"], json!({"tty": true})).await;
    // A partial line: the close completes it with "\n", then EOF ends `cat`.
    assert_eq!(write(c, "tc", b"hi", "w1").await, Ok(json!({"status": "accepted"})));
    assert_eq!(output_until(c, "tc", "hi").await.0, "hi", "echo");
    assert_eq!(close_stdin(c, "tc").await, json!({"status": "accepted"}));
    let run = c.events_until_closed("tc").await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "\r\nhi\r\n");
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(write(c, "tc", b"x", "w2").await, Ok(json!({"status": "stdinClosed"})));

    // Nothing written: the close alone ends it.
    start(c, "tc2", &["cat"], json!({"tty": true})).await;
    assert_eq!(close_stdin(c, "tc2").await, json!({"status": "accepted"}));
    let run = c.events_until_closed("tc2").await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "\r\n\r\n");
    assert_eq!(run.exit_code, Some(0));
}

#[tokio::test]
async fn close_stdin_follows_every_write_sent_before_it() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    start(&mut c, "o", &["cat"], json!({"pipeStdin": true})).await;
    let pieces: Vec<Vec<u8>> = (0..40).map(|i| format!("{i:03}:").repeat(1000 + 37 * i).into_bytes()).collect();
    let writes: Vec<i64> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            c.send_request("process/write", json!({"processId": "o", "chunk": b64(p), "writeId": format!("w{i}")}))
        })
        .collect();
    let close = c.send_request("process/closeStdin", json!({"processId": "o"}));
    for (i, id) in writes.into_iter().enumerate() {
        assert_eq!(into_result(c.response(id).await), Ok(json!({"status": "accepted"})), "write {i}");
    }
    assert_eq!(into_result(c.response(close).await), Ok(json!({"status": "accepted"})));
    let run = c.events_until_closed("o").await;
    assert_eq!(run.stdout.len(), pieces.iter().map(Vec::len).sum::<usize>());
    assert!(run.stdout == pieces.concat(), "stdout is the writes in order");
    assert_eq!(run.exit_code, Some(0));
}

// ---------------------------------------------------------------------------
// process/signal
// ---------------------------------------------------------------------------

on_both_transports!(signals_reach_shell_traps);

async fn signals_reach_shell_traps(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    // The group's `sleep` children die of some of these (no core files: `ulimit -c 0`; the
    // shell's report of such a death goes to /dev/null); the shell runs its trap once the
    // current `sleep` ended and loops on.
    let script = "exec 2>/dev/null; ulimit -c 0; for s in INT TERM HUP QUIT USR1 USR2; do trap \"echo $s\" $s; done; \
                  echo ready; while :; do sleep 0.05; done";
    start(c, "t", &["sh", "-c", script], json!({})).await;
    let (out, mut seq) = output_until(c, "t", "ready\n").await;
    assert_eq!(out, "ready\n");
    for (name, printed) in [
        ("interrupt", "INT"),
        ("terminate", "TERM"),
        ("hangup", "HUP"),
        ("quit", "QUIT"),
        ("user1", "USR1"),
        ("user2", "USR2"),
    ] {
        signal(c, "t", name).await;
        let (out, last) = output_until(c, "t", &format!("{printed}\n")).await;
        assert_eq!(out, format!("{printed}\n"), "{name}");
        seq = last;
    }
    signal(c, "t", "kill").await;
    let exited = c.notification("process/exited", "t").await;
    assert_eq!(exited, signalled("t", seq + 1, 137, "SIGKILL"));
    let closed = c.notification("process/closed", "t").await;
    assert_eq!(closed, json!({"processId": "t", "seq": seq + 2}));
}

#[tokio::test]
async fn signal_deaths_report_128_plus_signo_and_the_name() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let cases = [
        ("interrupt", 130, "SIGINT"),
        ("terminate", 143, "SIGTERM"),
        ("kill", 137, "SIGKILL"),
        ("hangup", 129, "SIGHUP"),
        ("quit", 131, "SIGQUIT"),
        ("user1", 138, "SIGUSR1"),
        ("user2", 140, "SIGUSR2"),
    ];
    for (name, code, sig) in cases {
        for tty in [false, true] {
            let id = format!("{name}-{tty}");
            // `exec` keeps the pid; `ulimit -c 0`: SIGQUIT writes no core file.
            start(&mut c, &id, &["sh", "-c", "ulimit -c 0; echo ready; exec sleep 1000"], json!({"tty": tty})).await;
            let nl = if tty { "ready\r\n" } else { "ready\n" };
            let (out, seq) = output_until(&mut c, &id, nl).await;
            assert_eq!(out, nl);
            signal(&mut c, &id, name).await;
            let exited = c.notification("process/exited", &id).await;
            assert_eq!(exited, signalled(&id, seq + 1, code, sig), "{id}");
            let closed = c.notification("process/closed", &id).await;
            assert_eq!(closed, json!({"processId": id, "seq": seq + 2}), "{id}");
        }
    }
}

#[tokio::test]
async fn plain_sleep_killed_by_terminate_hangup_user1() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    for (name, code, sig) in [("terminate", 143, "SIGTERM"), ("hangup", 129, "SIGHUP"), ("user1", 138, "SIGUSR1")] {
        start(&mut c, name, &["sleep", "1000"], json!({})).await;
        signal(&mut c, name, name).await;
        let exited = c.notification("process/exited", name).await;
        assert_eq!(exited, signalled(name, 1, code, sig));
        let closed = c.notification("process/closed", name).await;
        assert_eq!(closed, json!({"processId": name, "seq": 2}));
        let got = c.ok("process/read", json!({"processId": name})).await;
        let mut want = read_result(vec![], 3, Some(code), true);
        want["signal"] = json!(sig);
        assert_eq!(got, want, "{name}");
    }
}

on_both_transports!(signal_errors_and_unknown_ids);

async fn signal_errors_and_unknown_ids(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    for name in ["interrupt", "terminate", "kill", "hangup", "quit", "user1", "user2"] {
        signal(c, "nope", name).await;
    }
    start(c, "s", &["sleep", "1000"], json!({})).await;
    let expected =
        "unknown variant `stop`, expected one of `interrupt`, `terminate`, `kill`, `hangup`, `quit`, `user1`, `user2`";
    let e = c.err("process/signal", json!({"processId": "s", "signal": "stop"})).await;
    assert_eq!(e, (-32602, expected.to_owned()));
    for bad in ["SIGTERM", "TERM", "Terminate", ""] {
        let e = c.err("process/signal", json!({"processId": "s", "signal": bad})).await;
        let expected = format!(
            "unknown variant `{bad}`, expected one of `interrupt`, `terminate`, `kill`, `hangup`, `quit`, `user1`, `user2`"
        );
        assert_eq!(e, (-32602, expected), "{bad:?}");
    }
    let e = c.err("process/signal", json!({"processId": "s"})).await;
    assert_eq!(e, (-32602, "missing field `signal`".to_owned()));
    // Still running: none of the refused signals was sent.
    kill_and_close(c, "s").await;
}

// ---------------------------------------------------------------------------
// process/terminate graceMs
// ---------------------------------------------------------------------------

/// A shell that answers SIGTERM with `bye` and exit status 3. Its `sleep` dies of the
/// SIGTERM too; the shell's report of that goes to /dev/null.
const BYE_SCRIPT: &str = "exec 2>/dev/null; trap 'echo bye; exit 3' TERM; echo ready; while :; do sleep 0.05; done";

#[tokio::test]
async fn terminate_with_grace_lets_a_trap_run() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    start(&mut c, "g", &["sh", "-c", BYE_SCRIPT], json!({})).await;
    assert_eq!(output_until(&mut c, "g", "ready\n").await, ("ready\n".to_owned(), 1));
    // A long grace: the process closing ends it early.
    let r = c.ok("process/terminate", json!({"processId": "g", "graceMs": 600000})).await;
    assert_eq!(r, json!({"running": true}));
    let rest = notifications_until_closed(&mut c, "g").await;
    assert_eq!(
        rest,
        vec![
            json!({"method": "process/output", "params": {"processId": "g", "seq": 2, "stream": "stdout", "chunk": b64(b"bye\n")}}),
            json!({"method": "process/exited", "params": {"processId": "g", "seq": 3, "exitCode": 3, "sandboxDenied": false}}),
            json!({"method": "process/closed", "params": {"processId": "g", "seq": 4}}),
        ]
    );
    let r = c.ok("process/terminate", json!({"processId": "g", "graceMs": 100})).await;
    assert_eq!(r, json!({"running": false}));
}

#[tokio::test]
async fn terminate_with_grace_kills_a_process_ignoring_sigterm() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    // The exec'd `sleep` inherits the ignored SIGTERM.
    start(&mut c, "i", &["sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"], json!({})).await;
    assert_eq!(output_until(&mut c, "i", "ready\n").await, ("ready\n".to_owned(), 1));
    let asked = Instant::now();
    let r = c.ok("process/terminate", json!({"processId": "i", "graceMs": 200})).await;
    assert_eq!(r, json!({"running": true}));
    let exited = c.notification("process/exited", "i").await;
    // Only a lower bound (never flaky): SIGKILL came after the grace.
    assert!(asked.elapsed() >= Duration::from_millis(200), "{:?}", asked.elapsed());
    assert_eq!(exited, signalled("i", 2, 137, "SIGKILL"));
    let closed = c.notification("process/closed", "i").await;
    assert_eq!(closed, json!({"processId": "i", "seq": 3}));
}

#[tokio::test]
async fn terminate_without_grace_kills_at_once() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    start(&mut c, "k", &["sh", "-c", BYE_SCRIPT], json!({})).await;
    assert_eq!(output_until(&mut c, "k", "ready\n").await, ("ready\n".to_owned(), 1));
    assert_eq!(c.ok("process/terminate", json!({"processId": "k"})).await, json!({"running": true}));
    // No SIGTERM first: the trap never runs.
    let rest = notifications_until_closed(&mut c, "k").await;
    assert_eq!(
        rest,
        vec![
            json!({"method": "process/exited", "params": signalled("k", 2, 137, "SIGKILL")}),
            json!({"method": "process/closed", "params": {"processId": "k", "seq": 3}}),
        ]
    );
    // graceMs 0: SIGTERM, then SIGKILL at once; a process with the trap still ends.
    start(&mut c, "z", &["sh", "-c", "trap '' TERM; echo ready; exec sleep 1000"], json!({})).await;
    assert_eq!(output_until(&mut c, "z", "ready\n").await, ("ready\n".to_owned(), 1));
    let r = c.ok("process/terminate", json!({"processId": "z", "graceMs": 0})).await;
    assert_eq!(r, json!({"running": true}));
    assert_eq!(c.notification("process/exited", "z").await, signalled("z", 2, 137, "SIGKILL"));
    assert_eq!(c.notification("process/closed", "z").await, json!({"processId": "z", "seq": 3}));
}

// ---------------------------------------------------------------------------
// timeoutMs
// ---------------------------------------------------------------------------

/// The exact `process/exited` params of a timeout kill.
fn timed_out(id: &str, seq: u64) -> Value {
    json!({"processId": id, "seq": seq, "exitCode": 137, "sandboxDenied": false, "timedOut": true, "signal": "SIGKILL"})
}

on_both_transports!(timeout_kills_and_says_so);

async fn timeout_kills_and_says_so(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let asked = Instant::now();
    start(c, "t", &["sleep", "1000"], json!({"timeoutMs": 100})).await;
    assert_eq!(c.notification("process/exited", "t").await, timed_out("t", 1));
    assert!(asked.elapsed() >= Duration::from_millis(100), "{:?}", asked.elapsed());
    assert_eq!(c.notification("process/closed", "t").await, json!({"processId": "t", "seq": 2}));
    let got = c.ok("process/read", json!({"processId": "t"})).await;
    let mut want = read_result(vec![], 3, Some(137), true);
    want["timedOut"] = json!(true);
    want["signal"] = json!("SIGKILL");
    assert_eq!(got, want);
    assert_eq!(c.ok("process/terminate", json!({"processId": "t"})).await, json!({"running": false}));

    // Finishing before the deadline: no timedOut, no signal.
    start(c, "f", &["sh", "-c", "echo hi; exit 4"], json!({"timeoutMs": 600000})).await;
    let all = notifications_until_closed(c, "f").await;
    assert_eq!(
        all,
        vec![
            json!({"method": "process/output", "params": {"processId": "f", "seq": 1, "stream": "stdout", "chunk": b64(b"hi\n")}}),
            json!({"method": "process/exited", "params": {"processId": "f", "seq": 2, "exitCode": 4, "sandboxDenied": false}}),
            json!({"method": "process/closed", "params": {"processId": "f", "seq": 3}}),
        ]
    );
    let got = c.ok("process/read", json!({"processId": "f"})).await;
    assert_eq!(got, read_result(vec![chunk(1, "stdout", b"hi\n")], 4, Some(4), true));
}

#[tokio::test]
async fn timeout_zero_fires_at_once() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    for tty in [false, true] {
        let id = format!("z-{tty}");
        start(&mut c, &id, &["sleep", "1000"], json!({"timeoutMs": 0, "tty": tty})).await;
        let all = notifications_until_closed(&mut c, &id).await;
        let exited = params_of(&all, "process/exited");
        let seq = exited["seq"].as_u64().unwrap();
        assert_eq!(exited, timed_out(&id, seq));
        assert_eq!(params_of(&all, "process/closed"), json!({"processId": id, "seq": seq + 1}));
        let list = c.ok("process/list", json!({})).await;
        let entry = list["processes"].as_array().unwrap().iter().find(|p| p["processId"] == id).unwrap().clone();
        assert_eq!(entry["timedOut"], json!(true), "{entry}");
    }
}

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    // A background `sleep` holds stdout open: `closed` can only come once it died too.
    let script = "sleep 1000 & echo $!; exec sleep 1000";
    start(&mut c, "tree", &["sh", "-c", script], json!({"timeoutMs": 2000})).await;
    let (out, seq) = output_until(&mut c, "tree", "\n").await;
    let bg: u32 = out.trim().parse().expect("pid");
    assert!(alive(bg), "background sleep {bg} runs before the deadline");
    assert_eq!(c.notification("process/exited", "tree").await, timed_out("tree", seq + 1));
    assert_eq!(c.notification("process/closed", "tree").await, json!({"processId": "tree", "seq": seq + 2}));
    eventually("the background sleep to be gone (killed and reaped)", || !alive(bg)).await;
}

// ---------------------------------------------------------------------------
// outputBytesCap
// ---------------------------------------------------------------------------

const CAP_SCRIPT: &str = "head -c 100000 /dev/zero; printf err >&2";

on_both_transports!(output_cap_per_pipe);

async fn output_cap_per_pipe(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    start(c, "c", &["sh", "-c", CAP_SCRIPT], json!({"outputBytesCap": 10})).await;
    let all = notifications_until_closed(c, "c").await;
    // The cut chunk ends stdout: one stdout event, then `err` (written after `head` ended).
    assert_eq!(
        kinds(&all),
        vec![(1, "stdout".into()), (2, "stderr".into()), (3, "exited".into()), (4, "closed".into())]
    );
    assert_eq!(stream_bytes(&all, "stdout"), vec![0u8; 10]);
    assert_eq!(stream_bytes(&all, "stderr"), b"err");
    assert_eq!(
        params_of(&all, "process/exited"),
        json!({"processId": "c", "seq": 3, "exitCode": 0, "sandboxDenied": false})
    );
    let dropped = json!({"stdout": 99990, "stderr": 0});
    assert_eq!(params_of(&all, "process/closed"), json!({"processId": "c", "seq": 4, "droppedBytes": dropped}));
    let got = c.ok("process/read", json!({"processId": "c"})).await;
    let mut want = read_result(vec![chunk(1, "stdout", &[0; 10]), chunk(2, "stderr", b"err")], 5, Some(0), true);
    want["droppedBytes"] = dropped;
    assert_eq!(got, want);
}

#[tokio::test]
async fn output_cap_zero_drops_everything() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    start(&mut c, "z", &["sh", "-c", CAP_SCRIPT], json!({"outputBytesCap": 0})).await;
    let all = notifications_until_closed(&mut c, "z").await;
    let dropped = json!({"stdout": 100000, "stderr": 3});
    assert_eq!(
        all,
        vec![
            json!({"method": "process/exited", "params": {"processId": "z", "seq": 1, "exitCode": 0, "sandboxDenied": false}}),
            json!({"method": "process/closed", "params": {"processId": "z", "seq": 2, "droppedBytes": dropped}}),
        ]
    );
    let got = c.ok("process/read", json!({"processId": "z"})).await;
    let mut want = read_result(vec![], 3, Some(0), true);
    want["droppedBytes"] = dropped;
    assert_eq!(got, want);
}

#[tokio::test]
async fn output_past_a_reached_cap_is_dropped_without_events() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    // stdout reaches the cap exactly; what follows, released by a line on stdin, is all past it.
    let script = "printf abcde; read x; printf fgh; printf ij >&2";
    start(&mut c, "r", &["sh", "-c", script], json!({"outputBytesCap": 5, "pipeStdin": true})).await;
    assert_eq!(next_output(&mut c, "r").await, (1, "stdout".to_owned(), b"abcde".to_vec()));
    assert_eq!(write(&mut c, "r", b"\n", "w1").await, Ok(json!({"status": "accepted"})));
    let rest = notifications_until_closed(&mut c, "r").await;
    assert_eq!(
        rest,
        vec![
            json!({"method": "process/output", "params": {"processId": "r", "seq": 2, "stream": "stderr", "chunk": b64(b"ij")}}),
            json!({"method": "process/exited", "params": {"processId": "r", "seq": 3, "exitCode": 0, "sandboxDenied": false}}),
            json!({"method": "process/closed", "params": {"processId": "r", "seq": 4, "droppedBytes": {"stdout": 3, "stderr": 0}}}),
        ]
    );
}

#[tokio::test]
async fn output_cap_under_the_output_and_absent() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    // A cap the output stays under: nothing dropped, but droppedBytes is reported.
    start(&mut c, "u", &["sh", "-c", "printf abc; printf de >&2"], json!({"outputBytesCap": 5})).await;
    let all = notifications_until_closed(&mut c, "u").await;
    assert_eq!((stream_bytes(&all, "stdout"), stream_bytes(&all, "stderr")), (b"abc".to_vec(), b"de".to_vec()));
    let closed = params_of(&all, "process/closed");
    assert_eq!(closed["droppedBytes"], json!({"stdout": 0, "stderr": 0}), "{closed}");

    // Exactly at the cap: nothing dropped either.
    start(&mut c, "x", &["printf", "abcde"], json!({"outputBytesCap": 5})).await;
    let all = notifications_until_closed(&mut c, "x").await;
    assert_eq!(stream_bytes(&all, "stdout"), b"abcde");
    assert_eq!(
        params_of(&all, "process/closed"),
        json!({"processId": "x", "seq": 3, "droppedBytes": {"stdout": 0, "stderr": 0}})
    );

    // No cap: no droppedBytes anywhere.
    start(&mut c, "n", &["sh", "-c", "head -c 100000 /dev/zero; printf err >&2"], json!({})).await;
    let all = notifications_until_closed(&mut c, "n").await;
    assert_eq!(stream_bytes(&all, "stdout"), vec![0u8; 100_000]);
    assert_eq!(stream_bytes(&all, "stderr"), b"err");
    let closed = params_of(&all, "process/closed");
    assert_eq!(closed, json!({"processId": "n", "seq": closed["seq"]}), "no droppedBytes without a cap");
    let got = c.ok("process/read", json!({"processId": "n"})).await;
    assert_eq!(got.get("droppedBytes"), None, "{got}");
}

#[tokio::test]
async fn output_cap_on_a_pty() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    // No newline in the output: the terminal translates nothing, so bytes in = bytes out.
    let script = "head -c 5000 /dev/zero | tr '\\0' x";
    start(&mut c, "p", &["sh", "-c", script], json!({"tty": true, "outputBytesCap": 100})).await;
    let all = notifications_until_closed(&mut c, "p").await;
    let outputs = all.iter().filter(|v| v["method"] == "process/output").count() as u64;
    assert_eq!(outputs, 1, "the cut chunk ends the pty output: {all:?}");
    assert_eq!(stream_bytes(&all, "pty"), vec![b'x'; 100]);
    assert_eq!(
        params_of(&all, "process/exited"),
        json!({"processId": "p", "seq": 2, "exitCode": 0, "sandboxDenied": false})
    );
    let dropped = json!({"pty": 4900});
    assert_eq!(params_of(&all, "process/closed"), json!({"processId": "p", "seq": 3, "droppedBytes": dropped}));
    let got = c.ok("process/read", json!({"processId": "p"})).await;
    let mut want = read_result(vec![chunk(1, "pty", &[b'x'; 100])], 4, Some(0), true);
    want["droppedBytes"] = dropped;
    assert_eq!(got, want);
}

// ---------------------------------------------------------------------------
// process/list
// ---------------------------------------------------------------------------

/// One exact `process/list` entry.
#[allow(clippy::too_many_arguments)]
fn entry(id: &str, pid: u32, argv: &[&str], tty: bool, state: &str, code: Option<i64>, next: u64, t_o: bool) -> Value {
    json!({
        "processId": id,
        "pid": pid,
        "argv": argv,
        "tty": tty,
        "state": state,
        "exitCode": code,
        "nextSeq": next,
        "timedOut": t_o,
    })
}

/// The pid a child printed as its first line.
async fn printed_pid(c: &mut Client, id: &str, tty: bool) -> u32 {
    let (out, _) = output_until(c, id, if tty { "\r\n" } else { "\n" }).await;
    let pid: u32 = out.trim().parse().unwrap_or_else(|_| panic!("pid line {out:?}"));
    assert!(pid > 0);
    pid
}

#[tokio::test]
async fn list_processes_of_the_session() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let empty = json!({"processes": []});
    assert_eq!(into_result(raw_request(&mut c, 1000, "process/list", None).await), Ok(empty.clone()), "absent");
    assert_eq!(into_result(raw_request(&mut c, 1001, "process/list", Some(json!({}))).await), Ok(empty.clone()));

    // Started in an order other than the sorted one.
    let run_argv: &[&str] = &["sh", "-c", "echo $$; exec sleep 1000"];
    start(&mut c, "run", run_argv, json!({"tty": true})).await;
    let run_pid = printed_pid(&mut c, "run", true).await;

    let exit_argv: &[&str] = &["sh", "-c", "echo $$; sleep 1000 & exit 2"];
    start(&mut c, "exit", exit_argv, json!({})).await;
    let exit_pid = printed_pid(&mut c, "exit", false).await;
    let exited = c.notification("process/exited", "exit").await;
    assert_eq!(exited, json!({"processId": "exit", "seq": 2, "exitCode": 2, "sandboxDenied": false}));

    let closed_argv: &[&str] = &["sh", "-c", "echo $$"];
    start(&mut c, "closed", closed_argv, json!({})).await;
    let closed_pid = printed_pid(&mut c, "closed", false).await;
    c.events_until_closed("closed").await;

    let timeout_argv: &[&str] = &["sh", "-c", "echo $$; exec sleep 1000"];
    start(&mut c, "timeout", timeout_argv, json!({"timeoutMs": 2000})).await;
    let timeout_pid = printed_pid(&mut c, "timeout", false).await;
    c.events_until_closed("timeout").await;

    let want = json!({"processes": [
        entry("closed", closed_pid, closed_argv, false, "closed", Some(0), 4, false),
        entry("exit", exit_pid, exit_argv, false, "exited", Some(2), 3, false),
        entry("run", run_pid, run_argv, true, "running", None, 2, false),
        entry("timeout", timeout_pid, timeout_argv, false, "closed", Some(137), 4, true),
    ]});
    assert_eq!(c.ok("process/list", json!({})).await, want);
    assert_eq!(into_result(raw_request(&mut c, 1002, "process/list", None).await), Ok(want.clone()), "absent");

    // Another session on the same server sees none of them, only its own.
    let mut other = server.client().await;
    assert_ne!(other.session_id, c.session_id);
    assert_eq!(other.ok("process/list", json!({})).await, empty);
    start(&mut other, "mine", &["true"], json!({})).await;
    other.events_until_closed("mine").await;
    let theirs = other.ok("process/list", json!({})).await;
    let procs = theirs["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{theirs}");
    let pid = procs[0]["pid"].as_u64().unwrap() as u32;
    assert!(pid > 0);
    assert_eq!(theirs, json!({"processes": [entry("mine", pid, &["true"], false, "closed", Some(0), 3, false)]}));
    assert_eq!(c.ok("process/list", json!({})).await, want, "the first session is unchanged");

    // Clean up: the exited one's background sleep and the running one.
    assert_eq!(c.ok("process/terminate", json!({"processId": "exit"})).await, json!({"running": false}));
    assert_eq!(c.notification("process/closed", "exit").await, json!({"processId": "exit", "seq": 3}));
    kill_and_close(&mut c, "run").await;
    let after = c.ok("process/list", json!({})).await;
    let states: Vec<(&str, &str)> = after["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["processId"].as_str().unwrap(), p["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("closed", "closed"), ("exit", "closed"), ("run", "closed"), ("timeout", "closed")]);
}

// ---------------------------------------------------------------------------
// process/read `evicted`
// ---------------------------------------------------------------------------

#[tokio::test]
async fn read_reports_evicted_output() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    const TOTAL: u64 = 3_145_728;
    start(&mut c, "big", &["head", "-c", "3145728", "/dev/zero"], json!({})).await;
    let all = notifications_until_closed(&mut c, "big").await;
    let sizes: std::collections::BTreeMap<u64, u64> = all
        .iter()
        .filter(|v| v["method"] == "process/output")
        .map(|v| (v["params"]["seq"].as_u64().unwrap(), unb64(v["params"]["chunk"].as_str().unwrap()).len() as u64))
        .collect();
    assert_eq!(sizes.values().sum::<u64>(), TOTAL);
    let closed_seq = params_of(&all, "process/closed")["seq"].as_u64().unwrap();

    let got = c.ok("process/read", json!({"processId": "big"})).await;
    let chunks = got["chunks"].as_array().unwrap();
    let first = chunks[0]["seq"].as_u64().unwrap();
    let kept: u64 = chunks.iter().map(|ch| unb64(ch["chunk"].as_str().unwrap()).len() as u64).sum();
    let evicted_bytes: u64 = sizes.range(..first).map(|(_, n)| n).sum();
    assert!(first > 1, "the oldest chunks were evicted");
    assert_eq!(got["evicted"], json!({"firstRetainedSeq": first, "bytes": TOTAL - kept}), "{}", got["evicted"]);
    assert_eq!(evicted_bytes, TOTAL - kept, "evicted bytes are exactly the chunks before firstRetainedSeq");
    assert_eq!((got["nextSeq"].clone(), got["closed"].clone()), (json!(closed_seq + 1), json!(true)));

    // Reads starting inside the evicted range report it; the same numbers each time.
    for after in [0, 1, first - 2] {
        let got = c.ok("process/read", json!({"processId": "big", "afterSeq": after, "maxBytes": 1})).await;
        assert_eq!(got["evicted"], json!({"firstRetainedSeq": first, "bytes": TOTAL - kept}), "afterSeq {after}");
        assert_eq!(got["chunks"][0]["seq"], json!(first), "afterSeq {after}");
    }
    // Nothing after afterSeq was evicted: no report.
    for after in [first - 1, first, closed_seq, closed_seq + 10] {
        let got = c.ok("process/read", json!({"processId": "big", "afterSeq": after})).await;
        assert_eq!(got.get("evicted"), None, "afterSeq {after}: {got}");
    }

    // A small process never reports eviction.
    start(&mut c, "small", &["printf", "abc"], json!({})).await;
    c.events_until_closed("small").await;
    let got = c.ok("process/read", json!({"processId": "small"})).await;
    assert_eq!(got, read_result(vec![chunk(1, "stdout", b"abc")], 4, Some(0), true));
}
