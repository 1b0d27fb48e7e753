//! App-server dialect, `command/exec*` (spec sections 5, 6, 7 and the
//! `command/exec` transcripts of section 9), as execd implements it:
//! `command/exec` (buffered and streamed, caps, timeouts, env, cwd, the
//! validation order), `command/exec/outputDelta`, `command/exec/write`,
//! `command/exec/resize` and `command/exec/terminate`.
//!
//! execd's deliberate differences from the reference are asserted here: no
//! sandbox (an absent policy and `dangerFullAccess` run; restricting policies
//! and permission profiles are refused and never run), 128 + signal after a
//! kill in PTY mode too, control replies that always precede the deferred
//! `command/exec` response, and ids that are free once that response is sent.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The `command/exec` refusal of a restricting sandbox policy.
fn policy_refusal(kind: &str) -> String {
    format!(
        "command/exec sandboxPolicy `{kind}` is not supported: execd has no sandbox yet, so only `dangerFullAccess` \
         runs; a restricted command is refused rather than run unrestricted"
    )
}

/// The `command/exec` refusal of a permission profile.
const PROFILE_REFUSAL: &str = "command/exec permissionProfile is not supported: execd has no sandbox yet, and a \
                               restricted command is refused rather than run unrestricted";

const SPAWN_ENOENT: &str = "failed to spawn command: No such file or directory (os error 2)";
const STREAMING_NEEDS_ID: &str = "command/exec tty or streaming requires a client-supplied processId";
const ZERO_SIZE: &str = "command/exec size rows and cols must be greater than 0";

/// `base` with the members of `extra` added or replaced.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    base
}

/// `command/exec` params running `sh -c script`, plus `extra`.
fn sh(script: &str, extra: Value) -> Value {
    with(json!({"command": ["sh", "-c", script]}), extra)
}

/// A `command/exec` result.
fn result(exit_code: i64, stdout: &str, stderr: &str) -> Value {
    json!({"exitCode": exit_code, "stdout": stdout, "stderr": stderr})
}

/// The `no active command/exec ...` error for `id`, quoted JSON style by the caller.
fn unknown(quoted: &str) -> (i64, String) {
    (-32600, format!("no active command/exec for process id {quoted}"))
}

/// A scratch directory unique to this check and transport.
fn scratch(name: &str, t: Transport) -> PathBuf {
    temp_dir(&format!("app-command-{name}-{t:?}"))
}

/// Every message that arrives before the response to `id`, in arrival order,
/// and that response.
async fn until_response(c: &mut Client, id: i64) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let v = c.recv().await.unwrap_or_else(|| panic!("connection closed before response {id}"));
        if v.get("id") == Some(&json!(id)) && v.get("method").is_none() {
            return (before, v);
        }
        before.push(v);
    }
}

/// Whether `v` is the response to request `id`.
fn is_response(v: &Value, id: i64) -> bool {
    v.get("id") == Some(&json!(id)) && v.get("method").is_none()
}

/// `command/exec/outputDelta`s of `process_id` until their bytes contain
/// `needle`: (streams of the deltas, the bytes).
async fn output_until(c: &mut Client, process_id: &str, needle: &str) -> (Vec<String>, Vec<u8>) {
    let (mut streams, mut bytes) = (Vec::new(), Vec::new());
    while !String::from_utf8_lossy(&bytes).contains(needle) {
        let p = c.notification("command/exec/outputDelta", process_id).await;
        assert_eq!(p["capReached"], false, "{p}");
        streams.push(p["stream"].as_str().expect("stream").to_owned());
        bytes.extend(unb64(p["deltaBase64"].as_str().expect("deltaBase64")));
    }
    (streams, bytes)
}

/// Waits until `path` holds a complete line; returns it without the newline.
async fn line_in(path: &Path) -> String {
    let mut line = String::new();
    eventually(&format!("a line in {}", path.display()), || {
        line = std::fs::read_to_string(path).unwrap_or_default();
        line.ends_with('\n')
    })
    .await;
    line.trim_end().to_owned()
}

/// The canonical form of a directory, as `pwd -P` prints it.
fn canonical(path: &Path) -> String {
    path.canonicalize().expect("canonicalize").to_str().expect("utf-8 path").to_owned()
}

// ---------------------------------------------------------------------------
// 1, 2: buffered and streamed output
// ---------------------------------------------------------------------------

on_both_transports!(buffered_result, streamed_output_precedes_response, empty_process_id_is_an_id);

/// Section 9 transcript: the buffered result carries both streams and the exit code, nothing else.
async fn buffered_result(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let r = c.ok("command/exec", sh("printf out; printf err >&2; exit 4", json!({}))).await;
    assert_eq!(r, result(4, "out", "err"));
    // Same with every optional member explicitly null.
    let r = c
        .ok(
            "command/exec",
            sh(
                "printf 'a\\nb'; exit 0",
                json!({"processId": null, "outputBytesCap": null, "timeoutMs": null, "cwd": null, "env": null,
                       "size": null, "sandboxPolicy": null, "permissionProfile": null}),
            ),
        )
        .await;
    assert_eq!(r, result(0, "a\nb", ""));
}

/// Section 9 transcript: deltas of both streams, then the response with empty
/// strings; nothing of the command follows the response.
async fn streamed_output_precedes_response(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let id = c.send_request(
        "command/exec",
        sh(
            "printf 'out\\n'; printf 'err\\n' >&2; printf 'more' ; exit 2",
            json!({"processId": "es-1", "streamStdoutStderr": true}),
        ),
    );
    let (before, end) = until_response(&mut c, id).await;
    assert_eq!(end["result"], result(2, "", ""), "{end}");
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    for v in &before {
        assert_eq!(v["method"], "command/exec/outputDelta", "{v}");
        let p = &v["params"];
        assert_eq!(p["processId"], "es-1", "{v}");
        assert_eq!(p["capReached"], false, "{v}");
        assert!(v["emittedAtMs"].as_u64().is_some(), "emittedAtMs on {v}");
        let bytes = unb64(p["deltaBase64"].as_str().expect("deltaBase64"));
        match p["stream"].as_str() {
            Some("stdout") => stdout.extend(bytes),
            Some("stderr") => stderr.extend(bytes),
            other => panic!("stream {other:?} in {v}"),
        }
    }
    assert_eq!(stdout, b"out\nmore");
    assert_eq!(stderr, b"err\n");
    // A later request's response is the next message: no delta trails the response.
    let probe = c.send_request("command/exec/terminate", json!({"processId": "es-1"}));
    let next = c.recv().await.expect("a message");
    assert!(is_response(&next, probe), "expected the probe's response, got {next}");
    assert_eq!(into_result(next), Err(unknown("\"es-1\"")));
}

/// `processId: ""` is a real id: it streams, and it can be terminated.
async fn empty_process_id_is_an_id(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let id = c.send_request("command/exec", sh("printf x", json!({"processId": "", "streamStdoutStderr": true})));
    let run = c.exec_run(id, "").await;
    assert_eq!(run.end["result"], result(0, "", ""), "{:?}", run.end);
    assert_eq!(run.stdout, b"x");

    let id = c.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": ""}));
    assert_eq!(c.ok("command/exec/terminate", json!({"processId": ""})).await, json!({}));
    assert_eq!(into_result(c.response(id).await), Ok(result(137, "", "")));
    assert_eq!(c.err("command/exec/terminate", json!({"processId": ""})).await, unknown("\"\""));
}

// ---------------------------------------------------------------------------
// 3: command/exec/write
// ---------------------------------------------------------------------------

on_both_transports!(write_streams_stdin, write_after_close_is_refused);

/// Section 9 transcript, pipelined: the write sent right behind `command/exec`
/// finds the process; closing stdin ends `cat`, and its `{}` precedes the response.
async fn write_streams_stdin(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let exec = c.send_request(
        "command/exec",
        json!({"command": ["cat"], "processId": "cat", "streamStdin": true, "streamStdoutStderr": true}),
    );
    let write = c.send_request("command/exec/write", json!({"processId": "cat", "deltaBase64": b64(b"hello\n")}));
    assert_eq!(into_result(c.response(write).await), Ok(json!({})));
    let (streams, bytes) = output_until(&mut c, "cat", "\n").await;
    assert_eq!(bytes, b"hello\n");
    assert!(streams.iter().all(|s| s == "stdout"), "{streams:?}");

    // Data and close in one request: the data is delivered, then EOF.
    let close = c.send_request(
        "command/exec/write",
        json!({"processId": "cat", "deltaBase64": b64(b"bye\n"), "closeStdin": true}),
    );
    let (before, end) = until_response(&mut c, exec).await;
    assert_eq!(end["result"], result(0, "", ""), "{end}");
    let pos = before.iter().position(|v| is_response(v, close)).expect("the close reply before the response");
    assert_eq!(before[pos]["result"], json!({}), "{}", before[pos]);
    let rest: Vec<u8> = before
        .iter()
        .filter(|v| v["method"] == "command/exec/outputDelta")
        .flat_map(|v| unb64(v["params"]["deltaBase64"].as_str().expect("deltaBase64")))
        .collect();
    assert_eq!(rest, b"bye\n");

    // A close-only write also precedes the response.
    let exec = c.send_request("command/exec", json!({"command": ["cat"], "processId": "cat2", "streamStdin": true}));
    let close = c.send_request("command/exec/write", json!({"processId": "cat2", "closeStdin": true}));
    let (before, end) = until_response(&mut c, exec).await;
    assert_eq!(end["result"], result(0, "", ""), "{end}");
    assert!(before.iter().any(|v| is_response(v, close) && v["result"] == json!({})), "{before:?}");
}

/// After `closeStdin`, data is refused while the process still runs.
async fn write_after_close_is_refused(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let exec = c.send_request(
        "command/exec",
        sh("cat; echo eof; exec sleep 30", json!({"processId": "w", "streamStdin": true, "streamStdoutStderr": true})),
    );
    assert_eq!(c.ok("command/exec/write", json!({"processId": "w", "deltaBase64": b64(b"one\n")})).await, json!({}));
    assert_eq!(c.ok("command/exec/write", json!({"processId": "w", "closeStdin": true})).await, json!({}));
    let (_, bytes) = output_until(&mut c, "w", "eof\n").await;
    assert_eq!(bytes, b"one\neof\n");
    assert_eq!(
        c.err("command/exec/write", json!({"processId": "w", "deltaBase64": b64(b"late")})).await,
        (-32600, "stdin is already closed".into())
    );
    assert_eq!(c.ok("command/exec/terminate", json!({"processId": "w"})).await, json!({}));
    assert_eq!(into_result(c.response(exec).await), Ok(result(137, "", "")));
}

// ---------------------------------------------------------------------------
// 4: command/exec/resize and tty
// ---------------------------------------------------------------------------

on_both_transports!(resize_under_tty, resize_errors, tty_defaults_and_kill);

const SIZE_SCRIPT: &str = "stty -echo; printf 'start:%s\\n' \"$(stty size)\"; printf 'to-stderr\\n' >&2; \
                           IFS= read l; printf 'after:%s %s\\n' \"$(stty size)\" \"$l\"";

/// Section 9 transcript: the initial size, a resize, a written line; PTY output
/// (also what the child writes to stderr) arrives as `stdout`.
async fn resize_under_tty(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let exec = c.send_request(
        "command/exec",
        sh(
            SIZE_SCRIPT,
            json!({"processId": "tty", "tty": true, "sandboxPolicy": {"type": "dangerFullAccess"},
                   "size": {"rows": 31, "cols": 101}}),
        ),
    );
    let (streams, bytes) = output_until(&mut c, "tty", "to-stderr\r\n").await;
    assert_eq!(String::from_utf8_lossy(&bytes), "start:31 101\r\nto-stderr\r\n");
    assert!(streams.iter().all(|s| s == "stdout"), "{streams:?}");

    // A zero is refused while the process runs, and the size stays.
    for size in [json!({"rows": 0, "cols": 132}), json!({"rows": 45, "cols": 0})] {
        assert_eq!(
            c.err("command/exec/resize", json!({"processId": "tty", "size": size})).await,
            (-32602, ZERO_SIZE.into())
        );
    }
    assert_eq!(
        c.ok("command/exec/resize", json!({"processId": "tty", "size": {"rows": 45, "cols": 132}})).await,
        json!({})
    );
    assert_eq!(c.ok("command/exec/write", json!({"processId": "tty", "deltaBase64": b64(b"go\n")})).await, json!({}));
    let run = c.exec_run(exec, "tty").await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "after:45 132 go\r\n");
    assert!(run.stderr.is_empty(), "{:?}", run.deltas);
    assert_eq!(run.end["result"], result(0, "", ""), "{}", run.end);
}

/// Section 5.3 rows of resize: zero sizes before the lookup, unknown ids, pipes.
async fn resize_errors(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    assert_eq!(
        c.err("command/exec/resize", json!({"processId": "ghost", "size": {"rows": 0, "cols": 0}})).await,
        (-32602, ZERO_SIZE.into())
    );
    assert_eq!(
        c.err("command/exec/resize", json!({"processId": "ghost", "size": {"rows": 10, "cols": 10}})).await,
        unknown("\"ghost\"")
    );
    let exec = c.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": "pipe"}));
    assert_eq!(
        c.err("command/exec/resize", json!({"processId": "pipe", "size": {"rows": 10, "cols": 10}})).await,
        (-32600, "failed to resize PTY: process is not attached to a PTY".into())
    );
    let streamed = c.send_request(
        "command/exec",
        json!({"command": ["sleep", "30"], "processId": "spipe", "streamStdin": true, "streamStdoutStderr": true}),
    );
    assert_eq!(
        c.err("command/exec/resize", json!({"processId": "spipe", "size": {"rows": 10, "cols": 10}})).await,
        (-32600, "failed to resize PTY: process is not attached to a PTY".into())
    );
    for (id, pid) in [(exec, "pipe"), (streamed, "spipe")] {
        assert_eq!(c.ok("command/exec/terminate", json!({"processId": pid})).await, json!({}));
        assert_eq!(into_result(c.response(id).await), Ok(result(137, "", "")));
    }
}

/// Without `size` the terminal is 24x80; `tty` alone streams (and accepts
/// stdin); a killed PTY command reports 137 (execd: 128 + signal in both modes).
async fn tty_defaults_and_kill(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let exec = c.send_request(
        "command/exec",
        sh(
            "stty -echo; echo ready; IFS= read l; printf '%s|%s\\n' \"$(stty size)\" \"$l\"",
            json!({"processId": "d", "tty": true}),
        ),
    );
    output_until(&mut c, "d", "ready\r\n").await;
    assert_eq!(c.ok("command/exec/write", json!({"processId": "d", "deltaBase64": b64(b"in\n")})).await, json!({}));
    let run = c.exec_run(exec, "d").await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "24 80|in\r\n");
    assert_eq!(run.end["result"], result(0, "", ""), "{}", run.end);

    let exec = c.send_request("command/exec", sh("echo up; exec sleep 30", json!({"processId": "kt", "tty": true})));
    output_until(&mut c, "kt", "up\r\n").await;
    let kill = c.send_request("command/exec/terminate", json!({"processId": "kt"}));
    let (before, end) = until_response(&mut c, exec).await;
    assert!(before.iter().any(|v| is_response(v, kill) && v["result"] == json!({})), "{before:?}");
    assert_eq!(end["result"], result(137, "", ""), "{end}");
}

// ---------------------------------------------------------------------------
// 5: command/exec/terminate and ids
// ---------------------------------------------------------------------------

on_both_transports!(terminate_and_duplicates, terminate_buffered_keeps_output, ids_are_quoted_json_style);

/// Section 9 transcript: a duplicate id is refused while the first runs; the
/// terminate reply precedes the response (137); the id is free right after it.
async fn terminate_and_duplicates(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let exec = c.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": "sl"}));
    let dup = c.send_request("command/exec", json!({"command": ["true"], "processId": "sl"}));
    assert_eq!(
        into_result(c.response(dup).await),
        Err((-32600, "duplicate active command/exec process id: \"sl\"".into()))
    );
    assert_eq!(c.err("command/exec/terminate", json!({"processId": "ghost"})).await, unknown("\"ghost\""));
    let kill = c.send_request("command/exec/terminate", json!({"processId": "sl"}));
    let (before, end) = until_response(&mut c, exec).await;
    assert_eq!(end["result"], result(137, "", ""), "{end}");
    assert!(before.iter().any(|v| is_response(v, kill) && v["result"] == json!({})), "{before:?}");

    // Freed before the response was sent: control requests find nothing, reuse works.
    assert_eq!(c.err("command/exec/terminate", json!({"processId": "sl"})).await, unknown("\"sl\""));
    assert_eq!(
        c.err("command/exec/write", json!({"processId": "sl", "deltaBase64": b64(b"x")})).await,
        unknown("\"sl\"")
    );
    let r = c.ok("command/exec", sh("printf again", json!({"processId": "sl"}))).await;
    assert_eq!(r, result(0, "again", ""));
    // And at once again, right after that response.
    let r = c.ok("command/exec", sh("printf thrice", json!({"processId": "sl"}))).await;
    assert_eq!(r, result(0, "thrice", ""));
}

/// Terminate reaches a buffered command with a `processId`; what it printed is kept.
async fn terminate_buffered_keeps_output(t: Transport) {
    let dir = scratch("term-buffered", t);
    let marker = dir.join("started");
    let mut c = Conn::app_ready(t, json!({})).await;
    let exec = c.send_request(
        "command/exec",
        sh(
            &format!("printf partial; printf oops >&2; echo > {}; exec sleep 30", marker.display()),
            json!({"processId": "b"}),
        ),
    );
    line_in(&marker).await;
    assert_eq!(c.ok("command/exec/terminate", json!({"processId": "b"})).await, json!({}));
    assert_eq!(into_result(c.response(exec).await), Ok(result(137, "partial", "oops")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ids in messages are JSON strings: `\u001b` escapes, `\"` and `\\`, raw U+2028.
async fn ids_are_quoted_json_style(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let esc = "a\u{1b}b";
    let exec = c.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": esc}));
    assert_eq!(
        c.err("command/exec", json!({"command": ["true"], "processId": esc})).await,
        (-32600, "duplicate active command/exec process id: \"a\\u001bb\"".into())
    );
    assert_eq!(c.ok("command/exec/terminate", json!({"processId": esc})).await, json!({}));
    assert_eq!(into_result(c.response(exec).await), Ok(result(137, "", "")));
    let (code, message) = c.err("command/exec/terminate", json!({"processId": esc})).await;
    assert_eq!((code, message.as_str()), (-32600, "no active command/exec for process id \"a\\u001bb\""));
    assert!(!message.contains("\\u{1b}"), "{message}");

    assert_eq!(c.err("command/exec/terminate", json!({"processId": "q\"\\"})).await, unknown(r#""q\"\\""#));
    assert_eq!(
        c.err("command/exec/resize", json!({"processId": "uni\u{2028}", "size": {"rows": 1, "cols": 1}})).await,
        unknown("\"uni\u{2028}\"")
    );
}

// ---------------------------------------------------------------------------
// 6: timeouts
// ---------------------------------------------------------------------------

on_both_transports!(timeouts);

/// Section 9 transcript (500 ms keeps what was printed), `0` expires at once,
/// `disableTimeout` runs normally, and the two checks on the pair.
async fn timeouts(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let r = c.ok("command/exec", sh("printf before; sleep 30", json!({"timeoutMs": 500}))).await;
    assert_eq!(r, result(124, "before", ""));
    let r = c.ok("command/exec", json!({"command": ["sleep", "30"], "timeoutMs": 0})).await;
    assert_eq!(r, result(124, "", ""));
    // A timeout kills the streamed variant too, after its deltas.
    let exec = c.send_request(
        "command/exec",
        sh("printf tick; exec sleep 30", json!({"timeoutMs": 300, "processId": "to", "streamStdoutStderr": true})),
    );
    let run = c.exec_run(exec, "to").await;
    assert_eq!(run.stdout, b"tick");
    assert_eq!(run.end["result"], result(124, "", ""), "{}", run.end);

    let r = c.ok("command/exec", sh("printf ok; exit 3", json!({"disableTimeout": true}))).await;
    assert_eq!(r, result(3, "ok", ""));
    let r = c.ok("command/exec", sh("printf ok", json!({"timeoutMs": null, "disableTimeout": true}))).await;
    assert_eq!(r, result(0, "ok", ""));
    let r = c.ok("command/exec", sh("printf ok", json!({"timeoutMs": 20000, "disableTimeout": false}))).await;
    assert_eq!(r, result(0, "ok", ""));
    assert_eq!(
        c.err("command/exec", sh("printf no", json!({"timeoutMs": 1000, "disableTimeout": true}))).await,
        (-32602, "command/exec cannot set both timeoutMs and disableTimeout".into())
    );
    assert_eq!(
        c.err("command/exec", sh("printf no", json!({"timeoutMs": -1}))).await,
        (-32602, "command/exec timeoutMs must be non-negative, got -1".into())
    );
}

/// The default (absent or `null`) is 10 s; `disableTimeout` outlives it.
/// Slow by nature (about 11 s), so one transport, all three at once.
#[tokio::test]
async fn default_timeout_is_ten_seconds_and_can_be_disabled() {
    let mut c = Conn::app_ready(Transport::Ws, json!({})).await;
    let began = Instant::now();
    let absent = c.send_request("command/exec", json!({"command": ["sleep", "30"]}));
    let null = c.send_request("command/exec", json!({"command": ["sleep", "30"], "timeoutMs": null}));
    let disabled = c.send_request("command/exec", sh("sleep 11; printf done", json!({"disableTimeout": true})));
    assert_eq!(into_result(c.response(absent).await), Ok(result(124, "", "")));
    let elapsed = began.elapsed();
    assert!(elapsed.as_millis() >= 9_500, "default timeout fired after {elapsed:?}");
    assert_eq!(into_result(c.response(null).await), Ok(result(124, "", "")));
    assert_eq!(into_result(c.response(disabled).await), Ok(result(0, "done", "")));
}

// ---------------------------------------------------------------------------
// 7: output caps
// ---------------------------------------------------------------------------

on_both_transports!(caps_small, caps_default_and_disabled);

/// Section 9: a 5-byte cap, buffered and streamed (one final delta per stream
/// with `capReached`, empty strings in the response).
async fn caps_small(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let script = "printf abcdefg; printf uvwxyz >&2";
    let r = c.ok("command/exec", sh(script, json!({"outputBytesCap": 5}))).await;
    assert_eq!(r, result(0, "abcde", "uvwxy"));

    let exec = c.send_request(
        "command/exec",
        sh(script, json!({"outputBytesCap": 5, "processId": "cap", "streamStdoutStderr": true})),
    );
    let run = c.exec_run(exec, "cap").await;
    assert_eq!(run.end["result"], result(0, "", ""), "{}", run.end);
    let mut deltas: Vec<(String, String, bool)> =
        run.deltas.iter().map(|(s, bytes, cap)| (s.clone(), b64(bytes), *cap)).collect();
    deltas.sort();
    assert_eq!(
        deltas,
        vec![("stderr".to_owned(), "dXZ3eHk=".to_owned(), true), ("stdout".to_owned(), "YWJjZGU=".to_owned(), true)]
    );
}

/// `outputBytesCap` absent or `null` is 1 MiB per stream; `disableOutputCap`
/// lifts it; the pair is refused unless the cap is `null`.
async fn caps_default_and_disabled(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let script = "head -c 1500000 /dev/zero | tr '\\0' a; head -c 1100000 /dev/zero | tr '\\0' b >&2";
    let cases = [
        (json!({}), 1_048_576, 1_048_576),
        (json!({"outputBytesCap": null}), 1_048_576, 1_048_576),
        (json!({"disableOutputCap": true}), 1_500_000, 1_100_000),
        (json!({"outputBytesCap": null, "disableOutputCap": true}), 1_500_000, 1_100_000),
        (json!({"outputBytesCap": 2_000_000}), 1_500_000, 1_100_000),
    ];
    for (extra, out_len, err_len) in cases {
        let r = c.ok("command/exec", sh(script, extra.clone())).await;
        let stdout = r["stdout"].as_str().expect("stdout");
        let stderr = r["stderr"].as_str().expect("stderr");
        assert_eq!((stdout.len(), stderr.len()), (out_len, err_len), "{extra}");
        assert!(stdout.bytes().all(|b| b == b'a') && stderr.bytes().all(|b| b == b'b'), "{extra}");
        assert_eq!(r["exitCode"], 0, "{extra}");
        assert_eq!(r.as_object().expect("object").len(), 3, "{extra}");
    }
    assert_eq!(
        c.err("command/exec", sh("printf no", json!({"outputBytesCap": 5, "disableOutputCap": true}))).await,
        (-32602, "command/exec cannot set both outputBytesCap and disableOutputCap".into())
    );
}

// ---------------------------------------------------------------------------
// 8: validation, sandbox refusals, spawn failures
// ---------------------------------------------------------------------------

on_both_transports!(validation_messages, validation_order, restricted_sandboxes_are_refused, spawn_failures);

/// One message per check of section 5.1.
async fn validation_messages(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let cases = [
        (json!({"command": []}), -32600, "command must not be empty"),
        (
            sh("true", json!({"sandboxPolicy": {"type": "dangerFullAccess"}, "permissionProfile": "read-only"})),
            -32600,
            "`permissionProfile` cannot be combined with `sandboxPolicy`",
        ),
        (sh("true", json!({"size": {"rows": 10, "cols": 10}})), -32602, "command/exec size requires tty: true"),
        (
            sh("true", json!({"size": {"rows": 10, "cols": 10}, "tty": false, "processId": "s"})),
            -32602,
            "command/exec size requires tty: true",
        ),
        (sh("true", json!({"tty": true})), -32600, STREAMING_NEEDS_ID),
        (sh("true", json!({"streamStdin": true})), -32600, STREAMING_NEEDS_ID),
        (sh("true", json!({"streamStdoutStderr": true})), -32600, STREAMING_NEEDS_ID),
        (sh("true", json!({"streamStdoutStderr": true, "processId": null})), -32600, STREAMING_NEEDS_ID),
        (sh("true", json!({"tty": true, "processId": "z", "size": {"rows": 0, "cols": 80}})), -32602, ZERO_SIZE),
        (
            sh("true", json!({"sandboxPolicy": {"type": "bogus"}})),
            -32600,
            "Invalid request: unknown variant `bogus`, expected one of `dangerFullAccess`, `readOnly`, \
             `externalSandbox`, `workspaceWrite`",
        ),
    ];
    for (params, code, message) in cases {
        assert_eq!(c.err("command/exec", params.clone()).await, (code, message.to_owned()), "{params}");
    }
}

/// "First failing check wins", pairwise along the order of section 5.1 (with
/// execd's sandbox refusal at the reference's policy-check step).
async fn validation_order(t: Transport) {
    let mut plain = Conn::app_ready(t, json!({})).await;
    // The experimental gate comes before an empty command; `null` passes the gate.
    assert_eq!(
        plain.err("command/exec", json!({"command": [], "permissionProfile": "read-only"})).await,
        (-32600, "command/exec.permissionProfile requires experimentalApi capability".into())
    );
    assert_eq!(
        plain.ok("command/exec", sh("printf ran", json!({"permissionProfile": null}))).await,
        result(0, "ran", "")
    );
    // Deserialization comes before everything.
    assert_eq!(
        plain
            .err("command/exec", json!({"command": [], "sandboxPolicy": {"type": "bogus"}, "permissionProfile": "x"}))
            .await
            .0,
        -32600
    );
    drop(plain);

    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let cases = [
        // empty command > policy+profile > size without tty > both caps > both timeouts
        (
            json!({"command": [], "sandboxPolicy": {"type": "readOnly"}, "permissionProfile": "p",
                   "size": {"rows": 1, "cols": 1}, "outputBytesCap": 1, "disableOutputCap": true}),
            -32600,
            "command must not be empty".to_owned(),
        ),
        (
            sh(
                "true",
                json!({"sandboxPolicy": {"type": "readOnly"}, "permissionProfile": "p",
                              "size": {"rows": 1, "cols": 1}}),
            ),
            -32600,
            "`permissionProfile` cannot be combined with `sandboxPolicy`".to_owned(),
        ),
        (
            sh("true", json!({"size": {"rows": 0, "cols": 0}, "outputBytesCap": 1, "disableOutputCap": true})),
            -32602,
            "command/exec size requires tty: true".to_owned(),
        ),
        (
            sh("true", json!({"outputBytesCap": 1, "disableOutputCap": true, "timeoutMs": -1, "disableTimeout": true})),
            -32602,
            "command/exec cannot set both outputBytesCap and disableOutputCap".to_owned(),
        ),
        // both timeouts > negative timeout
        (
            sh("true", json!({"timeoutMs": -1, "disableTimeout": true})),
            -32602,
            "command/exec cannot set both timeoutMs and disableTimeout".to_owned(),
        ),
        // negative timeout > sandbox refusal
        (
            sh("true", json!({"timeoutMs": -1, "sandboxPolicy": {"type": "readOnly"}})),
            -32602,
            "command/exec timeoutMs must be non-negative, got -1".to_owned(),
        ),
        // sandbox refusal > zero size > streaming without processId
        (
            sh(
                "true",
                json!({"sandboxPolicy": {"type": "workspaceWrite"}, "tty": true, "size": {"rows": 0, "cols": 1}}),
            ),
            -32602,
            policy_refusal("workspaceWrite"),
        ),
        (sh("true", json!({"permissionProfile": "read-only", "tty": true})), -32602, PROFILE_REFUSAL.to_owned()),
        (sh("true", json!({"tty": true, "size": {"rows": 5, "cols": 0}})), -32602, ZERO_SIZE.to_owned()),
    ];
    for (params, code, message) in cases {
        assert_eq!(c.err("command/exec", params.clone()).await, (code, message), "{params}");
    }

    // streaming without processId > ... ; duplicate id > spawn failure.
    let busy = c.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": "busy"}));
    assert_eq!(
        c.err("command/exec", json!({"command": ["/nonexistent/program"], "processId": "busy"})).await,
        (-32600, "duplicate active command/exec process id: \"busy\"".into())
    );
    assert_eq!(
        c.err(
            "command/exec",
            json!({"command": ["/nonexistent/program"], "processId": "busy", "tty": true,
                                     "cwd": "/nonexistent/dir"})
        )
        .await,
        (-32600, "duplicate active command/exec process id: \"busy\"".into())
    );
    assert_eq!(
        c.err("command/exec", json!({"command": ["/nonexistent/program"], "streamStdin": true})).await,
        (-32600, STREAMING_NEEDS_ID.into())
    );
    assert_eq!(c.ok("command/exec/terminate", json!({"processId": "busy"})).await, json!({}));
    assert_eq!(into_result(c.response(busy).await), Ok(result(137, "", "")));
}

/// No sandbox yet: restricting policies and permission profiles are refused,
/// and the refused command never ran; an absent policy and `dangerFullAccess` run.
async fn restricted_sandboxes_are_refused(t: Transport) {
    let dir = scratch("sandbox", t);
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let touch = |name: &str| format!("touch {}", dir.join(name).display());
    let policies = [
        ("readOnly", json!({"type": "readOnly"})),
        ("readOnly", json!({"type": "readOnly", "networkAccess": true})),
        ("externalSandbox", json!({"type": "externalSandbox", "networkAccess": "restricted"})),
        ("externalSandbox", json!({"type": "externalSandbox", "networkAccess": "enabled"})),
        ("workspaceWrite", json!({"type": "workspaceWrite"})),
        (
            "workspaceWrite",
            json!({"type": "workspaceWrite", "writableRoots": [dir.display().to_string()], "networkAccess": true,
                   "excludeTmpdirEnvVar": true, "excludeSlashTmp": true}),
        ),
    ];
    for (i, (kind, policy)) in policies.iter().enumerate() {
        let file = format!("policy-{i}");
        let params = sh(&touch(&file), json!({"sandboxPolicy": policy}));
        assert_eq!(c.err("command/exec", params.clone()).await, (-32602, policy_refusal(kind)), "{params}");
        // Streaming with an id: still refused, and the id stays free.
        let params = sh(
            &touch(&format!("{file}-s")),
            json!({"sandboxPolicy": policy, "processId": "r", "streamStdoutStderr": true}),
        );
        assert_eq!(c.err("command/exec", params.clone()).await, (-32602, policy_refusal(kind)), "{params}");
        assert_eq!(c.err("command/exec/terminate", json!({"processId": "r"})).await, unknown("\"r\""));
    }
    for profile in ["read-only", "workspace-write", ""] {
        let params = sh(&touch("profile"), json!({"permissionProfile": profile}));
        assert_eq!(c.err("command/exec", params.clone()).await, (-32602, PROFILE_REFUSAL.to_owned()), "{params}");
    }
    // Anything refused would have run by the time a later command finished.
    assert_eq!(
        c.ok("command/exec", sh(&touch("danger"), json!({"sandboxPolicy": {"type": "dangerFullAccess"}}))).await,
        result(0, "", "")
    );
    assert_eq!(c.ok("command/exec", sh(&touch("default"), json!({}))).await, result(0, "", ""));
    assert_eq!(
        c.ok("command/exec", sh(&touch("nulls"), json!({"sandboxPolicy": null, "permissionProfile": null}))).await,
        result(0, "", "")
    );
    let mut made: Vec<String> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(made, ["danger", "default", "nulls"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A missing program or cwd is -32603 (no sandbox helper in between).
async fn spawn_failures(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let cases = [
        json!({"command": ["/nonexistent/program"]}),
        json!({"command": ["/nonexistent/program"], "sandboxPolicy": {"type": "dangerFullAccess"}}),
        json!({"command": ["no-such-program-execd-test"]}),
        json!({"command": ["/nonexistent/program"], "processId": "f", "streamStdoutStderr": true}),
        json!({"command": ["/nonexistent/program"], "processId": "f", "tty": true}),
        json!({"command": ["true"], "cwd": "/nonexistent/dir"}),
        json!({"command": ["true"], "cwd": "no/such/relative/dir"}),
        json!({"command": ["true"], "cwd": "/nonexistent/dir", "sandboxPolicy": {"type": "dangerFullAccess"}}),
    ];
    for params in cases {
        assert_eq!(c.err("command/exec", params.clone()).await, (-32603, SPAWN_ENOENT.into()), "{params}");
    }
    // A failed spawn registers nothing.
    assert_eq!(c.err("command/exec/terminate", json!({"processId": "f"})).await, unknown("\"f\""));
    assert_eq!(c.ok("command/exec", sh("printf ok", json!({"processId": "f"}))).await, result(0, "ok", ""));
}

// ---------------------------------------------------------------------------
// 9: section 5.3 rows of write/terminate
// ---------------------------------------------------------------------------

on_both_transports!(control_request_errors);

async fn control_request_errors(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let requires = (-32602, "command/exec/write requires deltaBase64 or closeStdin".to_owned());
    let padding = (-32602, "invalid deltaBase64: Invalid padding".to_owned());
    // Unknown ids; the params checks come before the lookup.
    assert_eq!(
        c.err("command/exec/write", json!({"processId": "ghost", "deltaBase64": "aGk="})).await,
        unknown("\"ghost\"")
    );
    assert_eq!(
        c.err("command/exec/write", json!({"processId": "ghost", "closeStdin": true})).await,
        unknown("\"ghost\"")
    );
    assert_eq!(c.err("command/exec/write", json!({"processId": "ghost"})).await, requires);
    assert_eq!(c.err("command/exec/write", json!({"processId": "ghost", "closeStdin": false})).await, requires);
    assert_eq!(c.err("command/exec/write", json!({"processId": "ghost", "deltaBase64": "YQ"})).await, padding);
    assert_eq!(c.err("command/exec/terminate", json!({"processId": "ghost"})).await, unknown("\"ghost\""));

    // A command whose stdin is not streamed (buffered, and output-only streaming).
    let buffered = c.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": "nb"}));
    let streamed = c.send_request(
        "command/exec",
        json!({"command": ["sleep", "30"], "processId": "ns", "streamStdoutStderr": true}),
    );
    for pid in ["nb", "ns"] {
        let not_streamed = (-32600, "stdin streaming is not enabled for this command/exec".to_owned());
        assert_eq!(c.err("command/exec/write", json!({"processId": pid, "deltaBase64": "aGk="})).await, not_streamed);
        assert_eq!(c.err("command/exec/write", json!({"processId": pid, "closeStdin": true})).await, not_streamed);
        assert_eq!(c.err("command/exec/write", json!({"processId": pid})).await, requires);
        assert_eq!(c.err("command/exec/write", json!({"processId": pid, "deltaBase64": "YQ"})).await, padding);
    }
    // On a live streamed-stdin command the params checks still come first.
    let cat = c.send_request(
        "command/exec",
        json!({"command": ["cat"], "processId": "cat", "streamStdin": true, "streamStdoutStderr": true}),
    );
    assert_eq!(c.err("command/exec/write", json!({"processId": "cat"})).await, requires);
    assert_eq!(c.err("command/exec/write", json!({"processId": "cat", "deltaBase64": "YQ"})).await, padding);
    assert_eq!(
        c.ok("command/exec/write", json!({"processId": "cat", "deltaBase64": "", "closeStdin": true})).await,
        json!({})
    );
    assert_eq!(into_result(c.response(cat).await), Ok(result(0, "", "")));

    for (id, pid) in [(buffered, "nb"), (streamed, "ns")] {
        assert_eq!(c.ok("command/exec/terminate", json!({"processId": pid})).await, json!({}));
        assert_eq!(into_result(c.response(id).await), Ok(result(137, "", "")));
    }
}

/// Ids are scoped to one connection: another connection can neither see nor
/// control them and may use the same string at the same time.
#[tokio::test]
async fn ids_are_per_connection() {
    let server = Server::start(&[]);
    let mut a = server.connect().await;
    a.app_handshake(json!({})).await;
    let mut b = server.connect().await;
    b.app_handshake(json!({})).await;
    let exec_a = a.send_request("command/exec", json!({"command": ["sleep", "30"], "processId": "shared"}));
    // Confirm it is registered on `a`.
    assert_eq!(
        a.err("command/exec", json!({"command": ["true"], "processId": "shared"})).await,
        (-32600, "duplicate active command/exec process id: \"shared\"".into())
    );
    assert_eq!(b.err("command/exec/terminate", json!({"processId": "shared"})).await, unknown("\"shared\""));
    assert_eq!(b.ok("command/exec", sh("printf b", json!({"processId": "shared"}))).await, result(0, "b", ""));
    assert_eq!(a.ok("command/exec/terminate", json!({"processId": "shared"})).await, json!({}));
    assert_eq!(into_result(a.response(exec_a).await), Ok(result(137, "", "")));
}

// ---------------------------------------------------------------------------
// 10: environment and working directory
// ---------------------------------------------------------------------------

on_both_transports!(env_and_cwd);

/// The server's own environment plus overrides (`null` unsets); cwd absent or
/// `null` is the server's, relative is joined to it, absolute is used.
async fn env_and_cwd(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let path = std::env::var("PATH").expect("PATH");
    let r = c
        .ok(
            "command/exec",
            sh("printf '%s|%s|%s' \"$FOO\" \"${HOME-unset}\" \"$PATH\"", json!({"env": {"FOO": "bar", "HOME": null}})),
        )
        .await;
    assert_eq!(r, result(0, &format!("bar|unset|{path}"), ""));

    // The server runs in the test's working directory (the harness does not set one).
    let here = std::env::current_dir().expect("cwd");
    let pwd = |extra: Value| sh("pwd -P", extra);
    assert_eq!(c.ok("command/exec", pwd(json!({}))).await, result(0, &format!("{}\n", canonical(&here)), ""));
    assert_eq!(
        c.ok("command/exec", pwd(json!({"cwd": null}))).await,
        result(0, &format!("{}\n", canonical(&here)), "")
    );
    assert_eq!(
        c.ok("command/exec", pwd(json!({"cwd": "tests"}))).await,
        result(0, &format!("{}\n", canonical(&here.join("tests"))), "")
    );
    assert_eq!(
        c.ok("command/exec", pwd(json!({"cwd": "tests/common"}))).await,
        result(0, &format!("{}\n", canonical(&here.join("tests/common"))), "")
    );
    let abs = scratch("cwd", t);
    assert_eq!(
        c.ok("command/exec", pwd(json!({"cwd": abs.display().to_string()}))).await,
        result(0, &format!("{}\n", canonical(&abs)), "")
    );
    let _ = std::fs::remove_dir_all(&abs);
}

/// Against a server with a known environment: it is inherited as is, an
/// override replaces, `null` unsets, a new name is added.
#[tokio::test]
async fn env_is_the_servers_plus_overrides() {
    let server = Server::start_with_env(&[
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("HOME", "/home/execd-test"),
        ("EXECD_BASE", "base"),
        ("EXECD_GONE", "present"),
    ]);
    let mut c = server.connect().await;
    c.app_handshake(json!({})).await;
    let script =
        "printf '%s|%s|%s|%s' \"${HOME-unset}\" \"${EXECD_BASE-unset}\" \"${EXECD_GONE-unset}\" \"${FOO-unset}\"";
    assert_eq!(c.ok("command/exec", sh(script, json!({}))).await, result(0, "/home/execd-test|base|present|unset", ""));
    assert_eq!(
        c.ok(
            "command/exec",
            sh(script, json!({"env": {"HOME": null, "EXECD_BASE": "over", "EXECD_GONE": null, "FOO": "bar"}}))
        )
        .await,
        result(0, "unset|over|unset|bar", "")
    );
    // Overrides apply under a PTY as well.
    let exec = c.send_request(
        "command/exec",
        sh("printf '%s' \"${FOO-unset}\"", json!({"env": {"FOO": "tty"}, "processId": "e", "tty": true})),
    );
    let run = c.exec_run(exec, "e").await;
    assert_eq!(run.stdout, b"tty");
    assert_eq!(run.end["result"], result(0, "", ""), "{}", run.end);
}

// ---------------------------------------------------------------------------
// 11: connection close
// ---------------------------------------------------------------------------

on_both_transports!(commands_die_with_their_connection);

/// A command without `processId` cannot be addressed, but closing the
/// connection kills it (WebSocket: the server runs on; stdio: EOF ends the server).
async fn commands_die_with_their_connection(t: Transport) {
    let dir = scratch("conn-close", t);
    let anon_file = dir.join("anon");
    let named_file = dir.join("named");
    let Conn { mut client, server } = Conn::app_ready(t, json!({})).await;
    let anon = client.send_request(
        "command/exec",
        sh(&format!("echo $$ > {}; exec sleep 300", anon_file.display()), json!({"disableTimeout": true})),
    );
    let named = client.send_request(
        "command/exec",
        sh(
            &format!("echo $$ > {}; exec sleep 300", named_file.display()),
            json!({"disableTimeout": true, "processId": "n", "streamStdoutStderr": true}),
        ),
    );
    let anon_pid: u32 = line_in(&anon_file).await.parse().expect("pid");
    let named_pid: u32 = line_in(&named_file).await.parse().expect("pid");
    assert!(alive(anon_pid) && alive(named_pid));
    // The unnamed command is not reachable under any id, not even "".
    assert_eq!(client.err("command/exec/terminate", json!({"processId": ""})).await, unknown("\"\""));
    assert!(alive(anon_pid));
    let _ = (anon, named);

    let stdio_child = client.stdio_child.take();
    drop(client);
    if let Some(mut child) = stdio_child {
        let status = within("the stdio server to exit", child.wait()).await.expect("wait");
        assert!(status.success(), "{status:?}");
    }
    eventually("the unnamed command to die", || !alive(anon_pid)).await;
    eventually("the named command to die", || !alive(named_pid)).await;

    if let Some(server) = server {
        // The server runs on for other connections.
        let mut other = server.connect().await;
        other.app_handshake(json!({})).await;
        assert_eq!(other.ok("command/exec", sh("printf still", json!({}))).await, result(0, "still", ""));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
