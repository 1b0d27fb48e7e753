//! The app-server process dialect's `process/*` family (spec
//! `app-server-process-api.md` sections 4, 6, 7 and the `process/*` transcripts
//! of section 9), as execd implements it.
//!
//! Where execd deliberately differs from the reference, execd's behaviour is
//! asserted: a signal death reports 128 + signal in PTY mode too (a PTY kill is
//! 137, not 1); the `process/kill` response and a closing `process/writeStdin`
//! response always precede `process/exited`; the handle is free before
//! `process/exited` is sent (immediate reuse always works, and control requests
//! after it get `no active process for process handle "x"`).
//!
//! Nothing sleeps to wait: children that must be held block on a release file
//! the test creates, and everything else waits for events or polls under the
//! shared deadline.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A connection initialized in the app-server dialect with `experimentalApi`.
async fn ready(t: Transport) -> Conn {
    Conn::app_ready(t, json!({"experimentalApi": true})).await
}

/// A fresh scratch directory, distinct per transport (both variants of a check
/// run at once in this process).
fn scratch(name: &str, t: Transport) -> PathBuf {
    temp_dir(&format!("app-{name}-{t:?}"))
}

/// `base` with the members of `extra` added or replaced.
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    base
}

/// `process/spawn` params: `command` under `handle` in `/tmp`, plus `extra`.
fn spawn_params(handle: &str, command: &[&str], extra: Value) -> Value {
    with(json!({"command": command, "processHandle": handle, "cwd": "/tmp"}), extra)
}

/// Whether `v` is the response to request `id`.
fn is_response(v: &Value, id: i64) -> bool {
    v.get("id") == Some(&json!(id)) && v.get("method").is_none()
}

/// Whether `v` is a `process/*` notification about `handle`.
fn is_about(v: &Value, handle: &str) -> bool {
    v["method"].as_str().is_some_and(|m| m.starts_with("process/")) && v["params"]["processHandle"] == handle
}

/// Spawns and asserts the answer is `{}` and arrives before any notification of the process.
async fn spawned(c: &mut Client, handle: &str, command: &[&str], extra: Value) {
    let params = spawn_params(handle, command, extra);
    let id = c.send_request("process/spawn", params.clone());
    let first = c.take("spawn response or a notification", |v| is_response(v, id) || is_about(v, handle)).await;
    assert!(is_response(&first, id), "the spawn response precedes every notification of {handle:?}, got {first}");
    assert_eq!(into_result(first), Ok(json!({})), "process/spawn {params}");
}

/// Spawns a buffered process and returns its `process/exited` params; no delta may come.
async fn buffered(c: &mut Client, handle: &str, command: &[&str], extra: Value) -> Value {
    spawned(c, handle, command, extra).await;
    let run = c.app_run(handle).await;
    assert!(run.deltas.is_empty(), "buffered mode sends no delta: {:?}", run.deltas);
    assert!(run.end["emittedAtMs"].as_u64().is_some(), "emittedAtMs on {}", run.end);
    run.exited().clone()
}

/// Spawns a streaming process and returns everything it emitted.
async fn streamed(c: &mut Client, handle: &str, command: &[&str], extra: Value) -> AppRun {
    spawned(c, handle, command, with(json!({"streamStdoutStderr": true}), extra)).await;
    c.app_run(handle).await
}

/// The complete `process/exited` params of a run that did not hit the drain deadline.
fn exited(handle: &str, code: i64, stdout: &str, stdout_cap: bool, stderr: &str, stderr_cap: bool) -> Value {
    json!({
        "processHandle": handle,
        "exitCode": code,
        "outputDrainTimedOut": false,
        "stdout": stdout,
        "stdoutCapReached": stdout_cap,
        "stderr": stderr,
        "stderrCapReached": stderr_cap,
    })
}

/// `process/exited` params of a run that ended with nothing buffered and no cap.
fn exited_empty(handle: &str, code: i64) -> Value {
    exited(handle, code, "", false, "", false)
}

/// The (bytes, capReached) deltas of one stream.
fn deltas_of(run: &AppRun, stream: &str) -> Vec<(Vec<u8>, bool)> {
    run.deltas.iter().filter(|(s, _, _)| s == stream).map(|(_, b, cap)| (b.clone(), *cap)).collect()
}

/// An error result.
fn rpc_err(code: i64, message: &str) -> Result<Value, RpcError> {
    Err((code, message.to_owned()))
}

/// Sends `process/kill`, asserts its `{}` response arrives before the process's
/// `process/exited`, and returns the `process/exited` params.
async fn kill_then_exited(c: &mut Client, handle: &str) -> Value {
    let id = c.send_request("process/kill", json!({"processHandle": handle}));
    let first = c
        .take("kill response or process/exited", |v| {
            is_response(v, id) || (v["method"] == "process/exited" && v["params"]["processHandle"] == handle)
        })
        .await;
    assert!(is_response(&first, id), "the kill response precedes process/exited of {handle:?}, got {first}");
    assert_eq!(into_result(first), Ok(json!({})));
    c.app_run(handle).await.exited().clone()
}

/// Asserts that nothing about `handle` has arrived: sends a request that fails
/// at once and checks every message that came before its answer.
async fn nothing_yet_about(c: &mut Client, handle: &str) {
    let id = c.send_request("process/kill", json!({"processHandle": "barrier-that-does-not-exist"}));
    loop {
        let v = c.recv().await.expect("connection open");
        assert!(!is_about(&v, handle), "nothing about {handle:?} yet, got {v}");
        if is_response(&v, id) {
            return;
        }
    }
}

/// Collects streamed deltas of `handle` until their bytes contain `needle`;
/// returns all bytes seen (stdout and stderr together).
async fn output_until(c: &mut Client, handle: &str, needle: &str) -> String {
    let mut all = Vec::new();
    while !String::from_utf8_lossy(&all).contains(needle) {
        let v = c
            .take(&format!("output of {handle} containing {needle:?}"), |v| {
                v["method"] == "process/outputDelta" && v["params"]["processHandle"] == handle
            })
            .await;
        all.extend(unb64(v["params"]["deltaBase64"].as_str().expect("deltaBase64")));
    }
    String::from_utf8(all).expect("utf-8")
}

/// `process/writeStdin` with `delta` (base64-encoded here) and `closeStdin`.
async fn write_stdin(c: &mut Client, handle: &str, delta: Option<&[u8]>, close: bool) -> Result<Value, RpcError> {
    let mut params = json!({"processHandle": handle});
    if let Some(d) = delta {
        params["deltaBase64"] = json!(b64(d));
    }
    if close {
        params["closeStdin"] = json!(true);
    }
    c.call("process/writeStdin", params).await
}

/// Waits until `path` holds a complete line with a pid, and returns it.
async fn read_pid(path: &Path) -> u32 {
    let mut pid = None;
    eventually(&format!("a pid in {}", path.display()), || {
        pid = std::fs::read_to_string(path).ok().filter(|s| s.ends_with('\n')).and_then(|s| s.trim().parse().ok());
        pid.is_some()
    })
    .await;
    pid.expect("pid")
}

/// `n` bytes of `a`.
fn a_bytes(n: usize) -> String {
    "a".repeat(n)
}

/// Ordered, recognisable output: lines `%015d\n` for `0..lines` (16 bytes each).
fn numbered_lines(lines: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines * 16);
    for i in 0..lines {
        out.extend_from_slice(format!("{i:015}\n").as_bytes());
    }
    out
}

/// The most bytes of one delta: a 64 KiB batch plus one 16 KiB read.
const MAX_DELTA: usize = 65536 + 16384;

// ---------------------------------------------------------------------------
// 4.1 / 4.2 acceptance: the spawn is answered before the child exits
// ---------------------------------------------------------------------------

on_both_transports!(spawn_is_acknowledged_before_the_child_exits);

async fn spawn_is_acknowledged_before_the_child_exits(t: Transport) {
    let mut c = ready(t).await;
    let dir = scratch("ack", t);
    let (probe, release) = (dir.join("probe"), dir.join("release"));
    let script = format!(
        "echo started > '{}'; while [ ! -e '{}' ]; do sleep 0.05; done; echo done",
        probe.display(),
        release.display()
    );
    // The `{}` arrives while the child is held.
    spawned(&mut c, "ack", &["sh", "-c", &script], json!({})).await;
    eventually("the child to write its probe file", || probe.exists()).await;
    assert_eq!(std::fs::read_to_string(&probe).expect("probe"), "started\n");
    nothing_yet_about(&mut c, "ack").await;
    std::fs::write(&release, b"").expect("release");
    let run = c.app_run("ack").await;
    assert!(run.deltas.is_empty());
    assert_eq!(run.exited(), &exited("ack", 0, "done\n", false, "", false));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// 4.3 / 4.4 output: buffered, streamed, PTY
// ---------------------------------------------------------------------------

on_both_transports!(buffered_output_keeps_streams_apart_and_passes_the_exit_code);

async fn buffered_output_keeps_streams_apart_and_passes_the_exit_code(t: Transport) {
    let mut c = ready(t).await;
    let e = buffered(&mut c, "buf-1", &["sh", "-c", r"printf 'out\n'; printf 'err\n' >&2; exit 3"], json!({})).await;
    assert_eq!(e, exited("buf-1", 3, "out\n", false, "err\n", false));
    // Explicit `false` is the same as absent.
    let e = buffered(&mut c, "buf-2", &["sh", "-c", "printf x; exit 7"], json!({"streamStdoutStderr": false})).await;
    assert_eq!(e, exited("buf-2", 7, "x", false, "", false));
}

on_both_transports!(streamed_output_comes_as_deltas_before_exited);

async fn streamed_output_comes_as_deltas_before_exited(t: Transport) {
    let mut c = ready(t).await;
    let run = streamed(&mut c, "st-1", &["sh", "-c", r"printf 'out\n'; printf 'err\n' >&2; exit 3"], json!({})).await;
    assert_eq!(run.stdout, b"out\n");
    assert_eq!(run.stderr, b"err\n");
    assert!(run.deltas.iter().all(|(_, _, cap)| !cap), "no cap reached: {:?}", run.deltas);
    assert!(run.deltas.iter().all(|(_, b, _)| !b.is_empty()), "no empty delta without a cap: {:?}", run.deltas);
    assert_eq!(run.exited(), &exited_empty("st-1", 3));
}

on_both_transports!(pty_output_is_all_stdout_with_crlf);

async fn pty_output_is_all_stdout_with_crlf(t: Transport) {
    let mut c = ready(t).await;
    // `tty` implies streaming even when the flags say otherwise.
    spawned(
        &mut c,
        "tty-out",
        &["sh", "-c", r"printf 'a\n'; printf 'b\n' >&2; exit 5"],
        json!({"tty": true, "streamStdoutStderr": false, "streamStdin": false}),
    )
    .await;
    let run = c.app_run("tty-out").await;
    assert!(!run.deltas.is_empty(), "PTY output is streamed");
    assert!(run.deltas.iter().all(|(s, _, _)| s == "stdout"), "PTY output is all on stdout: {:?}", run.deltas);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "a\r\nb\r\n");
    assert_eq!(run.exited(), &exited_empty("tty-out", 5));
}

// ---------------------------------------------------------------------------
// 6.2 caps
// ---------------------------------------------------------------------------

on_both_transports!(cap_of_three_cuts_both_streams_buffered_and_streamed);

async fn cap_of_three_cuts_both_streams_buffered_and_streamed(t: Transport) {
    let mut c = ready(t).await;
    let cmd = ["sh", "-c", "printf abcdef; printf 123456 >&2"];
    let e = buffered(&mut c, "cap-b", &cmd, json!({"outputBytesCap": 3})).await;
    assert_eq!(e, exited("cap-b", 0, "abc", true, "123", true));

    let run = streamed(&mut c, "cap-s", &cmd, json!({"outputBytesCap": 3})).await;
    assert_eq!(deltas_of(&run, "stdout"), vec![(b"abc".to_vec(), true)]);
    assert_eq!(deltas_of(&run, "stderr"), vec![(b"123".to_vec(), true)]);
    assert_eq!(b64(b"abc"), "YWJj");
    assert_eq!(b64(b"123"), "MTIz");
    assert_eq!(run.exited(), &exited("cap-s", 0, "", true, "", true));
}

on_both_transports!(cap_equal_to_the_output_length_sets_the_flag);

async fn cap_equal_to_the_output_length_sets_the_flag(t: Transport) {
    let mut c = ready(t).await;
    let e = buffered(&mut c, "eq-b", &["printf", "abcdef"], json!({"outputBytesCap": 6})).await;
    assert_eq!(e, exited("eq-b", 0, "abcdef", true, "", false));
    let e = buffered(&mut c, "below", &["printf", "abcdef"], json!({"outputBytesCap": 7})).await;
    assert_eq!(e, exited("below", 0, "abcdef", false, "", false));
    let run = streamed(&mut c, "eq-s", &["printf", "abcdef"], json!({"outputBytesCap": 6})).await;
    assert_eq!(deltas_of(&run, "stdout"), vec![(b"abcdef".to_vec(), true)]);
    assert_eq!(run.exited(), &exited("eq-s", 0, "", true, "", false));
}

on_both_transports!(cap_zero_gives_one_empty_delta_on_the_stream_that_wrote);

async fn cap_zero_gives_one_empty_delta_on_the_stream_that_wrote(t: Transport) {
    let mut c = ready(t).await;
    let run = streamed(&mut c, "z-out", &["printf", "abc"], json!({"outputBytesCap": 0})).await;
    assert_eq!(run.deltas, vec![("stdout".to_owned(), Vec::new(), true)]);
    assert_eq!(run.exited(), &exited("z-out", 0, "", true, "", false));

    let run = streamed(&mut c, "z-err", &["sh", "-c", "printf abc >&2"], json!({"outputBytesCap": 0})).await;
    assert_eq!(run.deltas, vec![("stderr".to_owned(), Vec::new(), true)]);
    assert_eq!(run.exited(), &exited("z-err", 0, "", false, "", true));

    let run = streamed(&mut c, "z-none", &["true"], json!({"outputBytesCap": 0})).await;
    assert!(run.deltas.is_empty(), "silent streams send nothing: {:?}", run.deltas);
    assert_eq!(run.exited(), &exited_empty("z-none", 0));

    let e = buffered(&mut c, "z-buf", &["printf", "abc"], json!({"outputBytesCap": 0})).await;
    assert_eq!(e, exited("z-buf", 0, "", true, "", false));
}

on_both_transports!(default_cap_is_one_mebibyte_and_null_disables_it);

async fn default_cap_is_one_mebibyte_and_null_disables_it(t: Transport) {
    let mut c = ready(t).await;
    let cmd = ["sh", "-c", r"head -c 1500000 /dev/zero | tr '\0' a"];
    let e = buffered(&mut c, "big-default", &cmd, json!({})).await;
    assert_eq!(e["stdout"].as_str().map(str::len), Some(1_048_576));
    assert_eq!(e, exited("big-default", 0, &a_bytes(1_048_576), true, "", false));

    let e = buffered(&mut c, "big-null", &cmd, json!({"outputBytesCap": null})).await;
    assert_eq!(e["stdout"].as_str().map(str::len), Some(1_500_000));
    assert_eq!(e, exited("big-null", 0, &a_bytes(1_500_000), false, "", false));

    let run = streamed(&mut c, "big-stream", &cmd, json!({})).await;
    assert_eq!(run.stdout.len(), 1_048_576);
    assert!(run.stdout.iter().all(|&b| b == b'a'));
    assert_eq!(run.deltas.last().map(|d| d.2), Some(true), "capReached on the last delta");
    assert_eq!(run.exited(), &exited("big-stream", 0, "", true, "", false));
}

on_both_transports!(past_the_cap_the_child_runs_on_unblocked);

async fn past_the_cap_the_child_runs_on_unblocked(t: Transport) {
    let mut c = ready(t).await;
    // 3 MB is far more than the pipe holds: a server that stopped reading at
    // the cap would leave the child blocked (and the test would time out).
    let cmd = ["sh", "-c", r"head -c 3000000 /dev/zero | tr '\0' a; printf tail >&2"];
    let e = buffered(&mut c, "over-b", &cmd, json!({"outputBytesCap": 10, "timeoutMs": null})).await;
    assert_eq!(e, exited("over-b", 0, &a_bytes(10), true, "tail", false));

    let run = streamed(&mut c, "over-s", &cmd, json!({"outputBytesCap": 10, "timeoutMs": null})).await;
    assert_eq!(run.stdout, a_bytes(10).as_bytes());
    assert_eq!(deltas_of(&run, "stdout").last().map(|d| d.1), Some(true));
    assert_eq!(run.stderr, b"tail");
    assert_eq!(run.exited(), &exited("over-s", 0, "", true, "", false));
}

// ---------------------------------------------------------------------------
// 6.3 chunking
// ---------------------------------------------------------------------------

on_both_transports!(streamed_deltas_are_batched_bounded_and_exact);

async fn streamed_deltas_are_batched_bounded_and_exact(t: Transport) {
    let mut c = ready(t).await;
    let dir = scratch("batch", t);
    let data = numbered_lines(262_144); // 4 MiB
    let file = dir.join("data");
    std::fs::write(&file, &data).expect("data file");
    let path = file.display().to_string();
    let run = streamed(&mut c, "batch", &["cat", &path], json!({"outputBytesCap": null, "timeoutMs": null})).await;
    assert!(run.deltas.iter().all(|(s, _, cap)| s == "stdout" && !cap));
    let largest = run.deltas.iter().map(|(_, b, _)| b.len()).max().unwrap_or(0);
    assert!(largest <= MAX_DELTA, "a delta of {largest} bytes exceeds {MAX_DELTA}");
    assert!(largest > 16384, "reads already buffered are batched into one delta (largest was {largest})");
    assert!(
        run.stdout == data,
        "the deltas concatenate to the exact output ({} of {} bytes)",
        run.stdout.len(),
        data.len()
    );
    assert_eq!(run.exited(), &exited_empty("batch", 0));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// 6.1 buffered text
// ---------------------------------------------------------------------------

on_both_transports!(buffered_non_utf8_is_decoded_like_the_reference);

async fn buffered_non_utf8_is_decoded_like_the_reference(t: Transport) {
    let mut c = ready(t).await;
    let cases: [(&str, Value, &str); 5] = [
        (r"printf 'a\377\376b'", json!({}), "aÿþb"),
        (r"printf '\377\357'", json!({}), "ЪО"),
        (r"printf 'caf\351 \223quoted\224'", json!({}), "café “quoted”"),
        // A cap cutting `éé` after 3 bytes.
        (r"printf '\303\251\303\251'", json!({"outputBytesCap": 3}), "ĂŠĂ"),
        ("head -c 10 /dev/zero", json!({}), "\0\0\0\0\0\0\0\0\0\0"),
    ];
    let extra_again = |capped: bool| if capped { json!({"outputBytesCap": 3}) } else { json!({}) };
    for (i, (script, extra, text)) in cases.into_iter().enumerate() {
        let handle = format!("dec-{i}");
        let capped = extra.get("outputBytesCap").is_some();
        let e = buffered(&mut c, &handle, &["sh", "-c", script], extra).await;
        assert_eq!(e, exited(&handle, 0, text, capped, "", false), "{script}");
        // The same bytes on stderr, with the same cap.
        let handle = format!("dec-err-{i}");
        let script = format!("{{ {script}; }} >&2");
        let e = buffered(&mut c, &handle, &["sh", "-c", &script], extra_again(capped)).await;
        assert_eq!(e, exited(&handle, 0, "", false, text, capped), "{script}");
    }
}

on_both_transports!(streamed_non_utf8_is_raw_bytes);

async fn streamed_non_utf8_is_raw_bytes(t: Transport) {
    let mut c = ready(t).await;
    let run = streamed(&mut c, "raw", &["sh", "-c", r"printf 'a\377\376b'; printf '\377\357' >&2"], json!({})).await;
    assert_eq!(run.stdout, b"a\xff\xfeb");
    assert_eq!(run.stderr, b"\xff\xef");
    assert_eq!(run.exited(), &exited_empty("raw", 0));
}

// ---------------------------------------------------------------------------
// 4.5 process/writeStdin
// ---------------------------------------------------------------------------

on_both_transports!(write_stdin_feeds_cat_and_closing_ends_it);

async fn write_stdin_feeds_cat_and_closing_ends_it(t: Transport) {
    let mut c = ready(t).await;
    spawned(&mut c, "cat-1", &["cat"], json!({"streamStdin": true, "streamStdoutStderr": true})).await;
    assert_eq!(write_stdin(&mut c, "cat-1", Some(b"hello\n"), false).await, Ok(json!({})));
    assert_eq!(output_until(&mut c, "cat-1", "hello\n").await, "hello\n");
    // Data and close in one request: the data first, then EOF; the response precedes exited.
    let id = c.send_request(
        "process/writeStdin",
        json!({"processHandle": "cat-1", "deltaBase64": "YnllCg==", "closeStdin": true}),
    );
    let first = c
        .take("writeStdin response or exited", |v| {
            is_response(v, id) || (v["method"] == "process/exited" && v["params"]["processHandle"] == "cat-1")
        })
        .await;
    assert!(is_response(&first, id), "the closing writeStdin response precedes process/exited, got {first}");
    assert_eq!(into_result(first), Ok(json!({})));
    let run = c.app_run("cat-1").await;
    assert_eq!(run.stdout, b"bye\n");
    assert_eq!(run.exited(), &exited_empty("cat-1", 0));
}

on_both_transports!(write_stdin_after_close_and_empty_writes);

async fn write_stdin_after_close_and_empty_writes(t: Transport) {
    let mut c = ready(t).await;
    // Outlives its stdin: reports EOF, then waits to be killed.
    spawned(
        &mut c,
        "cat-3",
        &["sh", "-c", "cat; echo eof; exec sleep 300"],
        json!({"streamStdin": true, "streamStdoutStderr": true}),
    )
    .await;
    // An empty delta is accepted and writes nothing.
    assert_eq!(c.call("process/writeStdin", json!({"processHandle": "cat-3", "deltaBase64": ""})).await, Ok(json!({})));
    assert_eq!(write_stdin(&mut c, "cat-3", Some(b"hi\n"), false).await, Ok(json!({})));
    assert_eq!(output_until(&mut c, "cat-3", "hi\n").await, "hi\n");
    assert_eq!(write_stdin(&mut c, "cat-3", None, true).await, Ok(json!({})));
    assert_eq!(output_until(&mut c, "cat-3", "eof\n").await, "eof\n");
    assert_eq!(write_stdin(&mut c, "cat-3", Some(b"late"), false).await, rpc_err(-32600, "stdin is already closed"));
    assert_eq!(write_stdin(&mut c, "cat-3", Some(b"late"), true).await, rpc_err(-32600, "stdin is already closed"));
    // Closing again is idempotent.
    assert_eq!(write_stdin(&mut c, "cat-3", None, true).await, Ok(json!({})));
    assert_eq!(kill_then_exited(&mut c, "cat-3").await, exited_empty("cat-3", 137));
}

on_both_transports!(write_stdin_errors);

async fn write_stdin_errors(t: Transport) {
    let mut c = ready(t).await;
    spawned(&mut c, "live", &["cat"], json!({"streamStdin": true, "streamStdoutStderr": true})).await;
    let need = "process/writeStdin requires deltaBase64 or closeStdin";
    for params in [
        json!({"processHandle": "live"}),
        json!({"processHandle": "live", "closeStdin": false}),
        json!({"processHandle": "live", "deltaBase64": null}),
        json!({"processHandle": "live", "deltaBase64": null, "closeStdin": false}),
    ] {
        assert_eq!(c.call("process/writeStdin", params.clone()).await, rpc_err(-32602, need), "{params}");
    }
    // Base64 is checked before the handle is looked up.
    for (bad, message) in [
        ("YQ", "Invalid padding"),
        ("YQ=", "Invalid padding"),
        ("%", "Invalid symbol 37, offset 0."),
        ("Y", "Invalid input length: 1"),
        ("YR==", "Invalid last symbol 82, offset 1."),
        ("YWJj\n", "Invalid symbol 10, offset 4."),
        ("YQ==YQ==", "Invalid symbol 61, offset 2."),
        ("-_8=", "Invalid symbol 45, offset 0."),
    ] {
        for handle in ["ghost", "live"] {
            assert_eq!(
                c.call("process/writeStdin", json!({"processHandle": handle, "deltaBase64": bad})).await,
                rpc_err(-32602, &format!("invalid deltaBase64: {message}")),
                "{bad:?} to {handle}"
            );
        }
    }
    let unknown = r#"no active process for process handle "ghost""#;
    assert_eq!(write_stdin(&mut c, "ghost", Some(b"a"), false).await, rpc_err(-32600, unknown));
    assert_eq!(write_stdin(&mut c, "ghost", None, true).await, rpc_err(-32600, unknown));

    spawned(&mut c, "no-stdin", &["sleep", "30"], json!({})).await;
    let off = "stdin streaming is not enabled for this process";
    assert_eq!(write_stdin(&mut c, "no-stdin", Some(b"a"), false).await, rpc_err(-32600, off));
    assert_eq!(write_stdin(&mut c, "no-stdin", None, true).await, rpc_err(-32600, off));
    assert_eq!(write_stdin(&mut c, "no-stdin", Some(b"a"), true).await, rpc_err(-32600, off));
    // Streaming output alone does not open stdin.
    spawned(&mut c, "out-only", &["sleep", "30"], json!({"streamStdoutStderr": true})).await;
    assert_eq!(write_stdin(&mut c, "out-only", Some(b"a"), false).await, rpc_err(-32600, off));

    assert_eq!(kill_then_exited(&mut c, "no-stdin").await, exited_empty("no-stdin", 137));
    assert_eq!(kill_then_exited(&mut c, "out-only").await, exited_empty("out-only", 137));
    assert_eq!(write_stdin(&mut c, "live", None, true).await, Ok(json!({})));
    assert_eq!(c.app_run("live").await.exited(), &exited_empty("live", 0));
}

on_both_transports!(non_streamed_stdin_is_dev_null);

async fn non_streamed_stdin_is_dev_null(t: Transport) {
    let mut c = ready(t).await;
    // `cat` of /dev/null ends at once (a pipe nobody closes would hang it).
    let e = buffered(&mut c, "devnull", &["sh", "-c", "cat; echo end"], json!({})).await;
    assert_eq!(e, exited("devnull", 0, "end\n", false, "", false));
}

on_both_transports!(pty_close_stdin_sends_newline_then_eof);

async fn pty_close_stdin_sends_newline_then_eof(t: Transport) {
    let mut c = ready(t).await;
    spawned(&mut c, "od", &["od", "-c"], json!({"tty": true})).await;
    assert_eq!(write_stdin(&mut c, "od", Some(b"abc"), true).await, Ok(json!({})));
    let run = c.app_run("od").await;
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains(r"a   b   c  \n"), "od saw `a b c \\n`: {text:?}");
    assert_eq!(run.exited(), &exited_empty("od", 0));
}

// ---------------------------------------------------------------------------
// 4.6 process/resizePty
// ---------------------------------------------------------------------------

on_both_transports!(resize_pty_changes_the_terminal_size);

async fn resize_pty_changes_the_terminal_size(t: Transport) {
    let mut c = ready(t).await;
    let script = r#"stty -echo; printf 'start:%s tty:%s\n' "$(stty size)" "$([ -t 0 ] && echo y || echo n)"; printf 'to-stderr\n' >&2; IFS= read line; printf 'after:%s line:%s\n' "$(stty size)" "$line""#;
    spawned(&mut c, "tty-1", &["sh", "-c", script], json!({"tty": true, "size": {"rows": 31, "cols": 101}})).await;
    let start = output_until(&mut c, "tty-1", "to-stderr\r\n").await;
    assert_eq!(start, "start:31 101 tty:y\r\nto-stderr\r\n");
    assert_eq!(
        c.call("process/resizePty", json!({"processHandle": "tty-1", "size": {"rows": 45, "cols": 132}})).await,
        Ok(json!({}))
    );
    assert_eq!(write_stdin(&mut c, "tty-1", Some(b"go\n"), false).await, Ok(json!({})));
    let run = c.app_run("tty-1").await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "after:45 132 line:go\r\n");
    assert_eq!(run.exited(), &exited_empty("tty-1", 0));
}

on_both_transports!(pty_default_size_is_24_by_80);

async fn pty_default_size_is_24_by_80(t: Transport) {
    let mut c = ready(t).await;
    let run = streamed(&mut c, "tty-def", &["stty", "size"], json!({"tty": true})).await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "24 80\r\n");
    assert_eq!(run.exited(), &exited_empty("tty-def", 0));
    // `size: null` is the same as absent.
    let run = streamed(&mut c, "tty-null", &["stty", "size"], json!({"tty": true, "size": null})).await;
    assert_eq!(String::from_utf8_lossy(&run.stdout), "24 80\r\n");
}

on_both_transports!(resize_pty_errors);

async fn resize_pty_errors(t: Transport) {
    let mut c = ready(t).await;
    let zero = "process size rows and cols must be greater than 0";
    for size in [json!({"rows": 0, "cols": 80}), json!({"rows": 24, "cols": 0}), json!({"rows": 0, "cols": 0})] {
        for handle in ["ghost", "pipe"] {
            assert_eq!(
                c.call("process/resizePty", json!({"processHandle": handle, "size": size})).await,
                rpc_err(-32602, zero),
                "{handle} {size}"
            );
        }
    }
    assert_eq!(
        c.call("process/resizePty", json!({"processHandle": "ghost"})).await,
        rpc_err(-32600, "Invalid request: missing field `size`")
    );
    assert_eq!(
        c.call("process/resizePty", json!({"processHandle": "ghost", "size": {"rows": 10, "cols": 10}})).await,
        rpc_err(-32600, r#"no active process for process handle "ghost""#)
    );
    spawned(&mut c, "pipe", &["sleep", "30"], json!({"streamStdin": true, "streamStdoutStderr": true})).await;
    assert_eq!(
        c.call("process/resizePty", json!({"processHandle": "pipe", "size": {"rows": 10, "cols": 10}})).await,
        rpc_err(-32600, "failed to resize PTY: process is not attached to a PTY")
    );
    assert_eq!(kill_then_exited(&mut c, "pipe").await, exited_empty("pipe", 137));
}

// ---------------------------------------------------------------------------
// 4.7 process/kill, 6.7 exit codes
// ---------------------------------------------------------------------------

on_both_transports!(kill_answers_first_then_exited_with_137_pipe_and_pty);

async fn kill_answers_first_then_exited_with_137_pipe_and_pty(t: Transport) {
    let mut c = ready(t).await;
    spawned(&mut c, "k1", &["sleep", "30"], json!({})).await;
    assert_eq!(kill_then_exited(&mut c, "k1").await, exited_empty("k1", 137));
    // execd reports 128 + signal in PTY mode too (the reference says 1).
    spawned(&mut c, "k4", &["sleep", "30"], json!({"tty": true})).await;
    assert_eq!(kill_then_exited(&mut c, "k4").await, exited_empty("k4", 137));
    // SIGKILL at once: a shell ignoring SIGTERM dies all the same.
    spawned(
        &mut c,
        "k5",
        &["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
        json!({"streamStdoutStderr": true}),
    )
    .await;
    output_until(&mut c, "k5", "ready\n").await;
    assert_eq!(kill_then_exited(&mut c, "k5").await, exited_empty("k5", 137));
    // Any signal death is 128 + signal.
    let e = buffered(&mut c, "term", &["sh", "-c", "kill -TERM $$"], json!({})).await;
    assert_eq!(e, exited_empty("term", 143));
}

on_both_transports!(kill_takes_the_whole_process_group);

async fn kill_takes_the_whole_process_group(t: Transport) {
    let mut c = ready(t).await;
    let dir = scratch("group", t);
    let pid_file = dir.join("bg");
    let script = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
    spawned(&mut c, "grp", &["sh", "-c", &script], json!({})).await;
    let pid = read_pid(&pid_file).await;
    assert!(alive(pid), "the background child runs");
    assert_eq!(kill_then_exited(&mut c, "grp").await, exited_empty("grp", 137));
    eventually("the background child to die with its group", || !alive(pid)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// 6.6 timeouts
// ---------------------------------------------------------------------------

on_both_transports!(timeouts_kill_with_124);

async fn timeouts_kill_with_124(t: Transport) {
    let mut c = ready(t).await;
    let t0 = Instant::now();
    let e = buffered(&mut c, "t1", &["sleep", "30"], json!({"timeoutMs": 500})).await;
    assert_eq!(e, exited_empty("t1", 124));
    assert!(t0.elapsed() >= Duration::from_millis(500), "the timeout counts from the spawn: {:?}", t0.elapsed());

    let e = buffered(&mut c, "t0", &["sleep", "30"], json!({"timeoutMs": 0})).await;
    assert_eq!(e, exited_empty("t0", 124));

    // Output gathered before the timeout is kept.
    let e = buffered(&mut c, "t-out", &["sh", "-c", "printf before; sleep 30"], json!({"timeoutMs": 500})).await;
    assert_eq!(e, exited("t-out", 124, "before", false, "", false));

    // PTY mode too.
    let run = streamed(&mut c, "t-tty", &["sleep", "30"], json!({"tty": true, "timeoutMs": 300})).await;
    assert_eq!(run.exited(), &exited_empty("t-tty", 124));

    // `null` means no timeout: the process ends on its own.
    let e = buffered(&mut c, "tnull", &["sh", "-c", "sleep 0.2; exit 6"], json!({"timeoutMs": null})).await;
    assert_eq!(e, exited_empty("tnull", 6));
    let e = buffered(&mut c, "tmax", &["true"], json!({"timeoutMs": i64::MAX})).await;
    assert_eq!(e, exited_empty("tmax", 0));

    assert_eq!(
        c.spawn("neg", &["true"], json!({"timeoutMs": -1})).await,
        rpc_err(-32602, "process/spawn timeoutMs must be non-negative, got -1")
    );
}

// ---------------------------------------------------------------------------
// 6.5 drain after exit
// ---------------------------------------------------------------------------

on_both_transports!(drain_deadline_reports_what_was_read_and_kills_the_rest);

async fn drain_deadline_reports_what_was_read_and_kills_the_rest(t: Transport) {
    let mut c = ready(t).await;
    let dir = scratch("drain", t);
    let pid_file = dir.join("bg");
    // The background sleep holds stdout open far past the 2 s drain window.
    let script = format!("printf early; sleep 60 & echo $! > '{}'", pid_file.display());
    let t0 = Instant::now();
    let e = buffered(&mut c, "drain-1", &["sh", "-c", &script], json!({})).await;
    let waited = t0.elapsed();
    assert_eq!(
        e,
        json!({
            "processHandle": "drain-1",
            "exitCode": 0,
            "outputDrainTimedOut": true,
            "stdout": "early",
            "stdoutCapReached": false,
            "stderr": "",
            "stderrCapReached": false,
        })
    );
    assert!(waited >= Duration::from_secs(2), "exited waits for the 2 s drain window: {waited:?}");
    let pid = read_pid(&pid_file).await;
    eventually("the background sleep to be killed after process/exited", || !alive(pid)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

on_both_transports!(descendant_output_within_the_drain_window_is_delivered);

async fn descendant_output_within_the_drain_window_is_delivered(t: Transport) {
    let mut c = ready(t).await;
    let dir = scratch("late", t);
    let release = dir.join("release");
    // The shell exits at once; its background subshell prints once released, then
    // closes the pipe, which ends the drain early.
    let script =
        format!("printf early; (while [ ! -e '{}' ]; do sleep 0.05; done; printf late) & exit 4", release.display());
    spawned(&mut c, "late", &["sh", "-c", &script], json!({"streamStdoutStderr": true})).await;
    assert_eq!(output_until(&mut c, "late", "early").await, "early");
    std::fs::write(&release, b"").expect("release");
    let run = c.app_run("late").await;
    assert_eq!(run.stdout, b"late");
    assert_eq!(run.exited(), &exited_empty("late", 4));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// 4.2 validation
// ---------------------------------------------------------------------------

on_both_transports!(spawn_validation_errors);

async fn spawn_validation_errors(t: Transport) {
    let mut c = ready(t).await;
    let missing_dir = format!("/tmp/execd-app-no-such-dir-{}/x", std::process::id());
    let enoent = "failed to spawn process: No such file or directory (os error 2)";
    let cases: Vec<(Value, i64, &str)> = vec![
        (spawn_params("v", &[], json!({})), -32600, "command must not be empty"),
        (spawn_params("", &["true"], json!({})), -32600, "processHandle must not be empty"),
        (
            spawn_params("v", &["true"], json!({"size": {"rows": 10, "cols": 10}})),
            -32602,
            "process/spawn size requires tty: true",
        ),
        (
            spawn_params("v", &["true"], json!({"tty": false, "size": {"rows": 10, "cols": 10}})),
            -32602,
            "process/spawn size requires tty: true",
        ),
        (
            spawn_params("v", &["true"], json!({"tty": true, "size": {"rows": 0, "cols": 10}})),
            -32602,
            "process size rows and cols must be greater than 0",
        ),
        (
            spawn_params("v", &["true"], json!({"tty": true, "size": {"rows": 10, "cols": 0}})),
            -32602,
            "process size rows and cols must be greater than 0",
        ),
        (
            spawn_params("v", &["true"], json!({"timeoutMs": -1})),
            -32602,
            "process/spawn timeoutMs must be non-negative, got -1",
        ),
        (spawn_params("v", &["/nonexistent/program"], json!({})), -32603, enoent),
        (spawn_params("v", &[""], json!({})), -32603, "failed to spawn process: missing program for pipe spawn"),
        (
            spawn_params("v", &[""], json!({"tty": true})),
            -32603,
            "failed to spawn process: missing program for PTY spawn",
        ),
        (spawn_params("v", &["true"], json!({"cwd": missing_dir})), -32603, enoent),
        (spawn_params("v", &["true"], json!({"cwd": missing_dir, "tty": true})), -32603, enoent),
        (json!({"command": ["true"], "processHandle": "v"}), -32600, "Invalid request: missing field `cwd`"),
        (json!({"processHandle": "v", "cwd": "/tmp"}), -32600, "Invalid request: missing field `command`"),
        (json!({"command": ["true"], "cwd": "/tmp"}), -32600, "Invalid request: missing field `processHandle`"),
        (
            spawn_params("v", &["true"], json!({"cwd": "tmp"})),
            -32600,
            "Invalid request: AbsolutePathBuf deserialized without a base path",
        ),
        (
            spawn_params("v", &["true"], json!({"outputBytesCap": -1})),
            -32600,
            "Invalid request: invalid value: integer `-1`, expected usize",
        ),
        (
            spawn_params("v", &["true"], json!({"tty": null})),
            -32600,
            "Invalid request: invalid type: null, expected a boolean",
        ),
        (
            spawn_params("v", &["true"], json!({"tty": true, "size": {"rows": 70000, "cols": 10}})),
            -32600,
            "Invalid request: invalid value: integer `70000`, expected u16",
        ),
    ];
    for (params, code, message) in cases {
        assert_eq!(c.call("process/spawn", params.clone()).await, rpc_err(code, message), "{params}");
    }
    // A failed spawn leaves no registration behind.
    let e = buffered(&mut c, "v", &["true"], json!({})).await;
    assert_eq!(e, exited_empty("v", 0));
    // Any non-empty handle is fine, even a blank.
    let e = buffered(&mut c, " ", &["printf", "blank"], json!({})).await;
    assert_eq!(e, exited(" ", 0, "blank", false, "", false));
    // Absent and null `size` without tty are fine.
    let e = buffered(&mut c, "no-size", &["true"], json!({"size": null})).await;
    assert_eq!(e, exited_empty("no-size", 0));
    // Unknown fields are ignored.
    let e = buffered(&mut c, "extra", &["true"], json!({"surprise": 1})).await;
    assert_eq!(e, exited_empty("extra", 0));
}

on_both_transports!(duplicate_active_handles_are_refused);

async fn duplicate_active_handles_are_refused(t: Transport) {
    let mut c = ready(t).await;
    spawned(&mut c, "busy", &["sleep", "30"], json!({})).await;
    let dup = r#"duplicate active process handle: "busy""#;
    assert_eq!(c.spawn("busy", &["true"], json!({})).await, rpc_err(-32600, dup));
    assert_eq!(c.spawn("busy", &["true"], json!({"tty": true})).await, rpc_err(-32600, dup));
    // Rust Debug quoting of the handle.
    spawned(&mut c, "a\u{1b}b", &["sleep", "30"], json!({})).await;
    assert_eq!(
        c.spawn("a\u{1b}b", &["true"], json!({})).await,
        rpc_err(-32600, r#"duplicate active process handle: "a\u{1b}b""#)
    );
    assert_eq!(
        c.call("process/kill", json!({"processHandle": "uni\u{2028}"})).await,
        rpc_err(-32600, r#"no active process for process handle "uni\u{2028}""#)
    );
    assert_eq!(
        c.call("process/kill", json!({"processHandle": "q\"b\\"})).await,
        rpc_err(-32600, r#"no active process for process handle "q\"b\\""#)
    );
    assert_eq!(kill_then_exited(&mut c, "a\u{1b}b").await, exited_empty("a\u{1b}b", 137));
    // The first process is untouched by the refused spawns.
    assert_eq!(kill_then_exited(&mut c, "busy").await, exited_empty("busy", 137));
}

on_both_transports!(spawn_validation_order);

async fn spawn_validation_order(t: Transport) {
    let mut c = ready(t).await;
    spawned(&mut c, "busy", &["sleep", "30"], json!({})).await;
    let cases: Vec<(Value, i64, &str)> = vec![
        (
            json!({"command": [], "processHandle": "", "cwd": "/tmp", "tty": null}),
            -32600,
            "Invalid request: invalid type: null, expected a boolean",
        ),
        (json!({"command": [], "processHandle": "", "cwd": "/tmp"}), -32600, "command must not be empty"),
        (
            spawn_params("", &["true"], json!({"size": {"rows": 1, "cols": 1}})),
            -32600,
            "processHandle must not be empty",
        ),
        (
            spawn_params("v", &["true"], json!({"size": {"rows": 0, "cols": 0}, "timeoutMs": -1})),
            -32602,
            "process/spawn size requires tty: true",
        ),
        (
            spawn_params("v", &["true"], json!({"tty": true, "size": {"rows": 0, "cols": 0}, "timeoutMs": -1})),
            -32602,
            "process/spawn timeoutMs must be non-negative, got -1",
        ),
        (
            spawn_params("busy", &["true"], json!({"tty": true, "size": {"rows": 0, "cols": 1}})),
            -32602,
            "process size rows and cols must be greater than 0",
        ),
        (
            spawn_params("busy", &["/nonexistent/program"], json!({})),
            -32600,
            r#"duplicate active process handle: "busy""#,
        ),
        (spawn_params("busy", &[""], json!({})), -32600, r#"duplicate active process handle: "busy""#),
        (spawn_params("busy", &[""], json!({"tty": true})), -32600, r#"duplicate active process handle: "busy""#),
    ];
    // Collected, so that `busy` is killed before any mismatch is reported.
    let mut mismatches = Vec::new();
    for (params, code, message) in cases {
        let got = c.call("process/spawn", params.clone()).await;
        if got != rpc_err(code, message) {
            mismatches.push(format!("{params}: expected ({code}, {message:?}), got {got:?}"));
        }
    }
    assert_eq!(kill_then_exited(&mut c, "busy").await, exited_empty("busy", 137));
    assert!(mismatches.is_empty(), "first failing check wins:\n{}", mismatches.join("\n"));
}

on_both_transports!(cwd_dot_segments_are_normalized);

async fn cwd_dot_segments_are_normalized(t: Transport) {
    let mut c = ready(t).await;
    // `x` does not exist: only a lexical normalization makes this directory usable.
    let cwd = format!("/tmp/./execd-app-absent-{}/..", std::process::id());
    let e = buffered(&mut c, "pwd", &["pwd"], json!({"cwd": cwd})).await;
    assert_eq!(e, exited("pwd", 0, "/tmp\n", false, "", false));
}

// ---------------------------------------------------------------------------
// 4.2 environment
// ---------------------------------------------------------------------------

on_both_transports!(env_overrides_apply_on_the_server_environment);

async fn env_overrides_apply_on_the_server_environment(t: Transport) {
    let mut c = ready(t).await;
    let home = std::env::var("HOME").expect("HOME is set for the test run (the server inherits it)");
    let e =
        buffered(&mut c, "env-1", &["sh", "-c", r#"printf %s "$FOO|${HOME-unset}""#], json!({"env": {"FOO": "bar"}}))
            .await;
    assert_eq!(e["stdout"], format!("bar|{home}"));
    let e =
        buffered(&mut c, "env-2", &["sh", "-c", r#"printf %s "${HOME-unset}""#], json!({"env": {"HOME": null}})).await;
    assert_eq!(e, exited("env-2", 0, "unset", false, "", false));
    let e = buffered(&mut c, "env-3", &["sh", "-c", r#"printf %s "${HOME-unset}""#], json!({"env": null})).await;
    assert_eq!(e["stdout"], home);
    let e = buffered(
        &mut c,
        "env-4",
        &["sh", "-c", r#"printf %s "${HOME-unset}""#],
        json!({"env": {"HOME": "/elsewhere"}}),
    )
    .await;
    assert_eq!(e["stdout"], "/elsewhere");
    // Unsetting a variable that is not there is fine.
    let e = buffered(&mut c, "env-5", &["sh", "-c", "printf ok"], json!({"env": {"EXECD_APP_NEVER_SET": null}})).await;
    assert_eq!(e["stdout"], "ok");
    assert_eq!(
        c.spawn("env-bad", &["true"], json!({"env": {"FOO": 1}})).await.map_err(|e| e.0),
        Err(-32600),
        "non-string env values are refused"
    );
}

#[tokio::test]
async fn env_is_the_server_process_environment() {
    let server = Server::start_with_env(&[("PATH", "/usr/bin:/bin"), ("EXECD_MARK", "from-server")]);
    let mut c = server.connect().await;
    c.app_handshake(json!({"experimentalApi": true})).await;
    let script = r#"printf %s "${EXECD_MARK-unset}|${HOME-unset}""#;
    let e = buffered(&mut c, "e1", &["sh", "-c", script], json!({})).await;
    assert_eq!(e["stdout"], "from-server|unset");
    let e = buffered(&mut c, "e2", &["sh", "-c", script], json!({"env": {"EXECD_MARK": "over", "HOME": "/h"}})).await;
    assert_eq!(e["stdout"], "over|/h");
    let e = buffered(&mut c, "e3", &["sh", "-c", script], json!({"env": {"EXECD_MARK": null}})).await;
    assert_eq!(e["stdout"], "unset|unset");
}

// ---------------------------------------------------------------------------
// 6.9 handles, 7 ordering
// ---------------------------------------------------------------------------

on_both_transports!(the_handle_is_free_when_exited_arrives);

async fn the_handle_is_free_when_exited_arrives(t: Transport) {
    let mut c = ready(t).await;
    for i in 0..20 {
        spawned(&mut c, "r", &["sh", "-c", &format!("exit {}", i % 3)], json!({})).await;
        assert_eq!(c.app_run("r").await.exited(), &exited_empty("r", i % 3), "round {i}");
    }
    let gone = r#"no active process for process handle "k""#;
    for round in 0..5 {
        spawned(&mut c, "k", &["true"], json!({"tty": round % 2 == 1, "streamStdin": true})).await;
        c.app_run("k").await;
        assert_eq!(c.call("process/kill", json!({"processHandle": "k"})).await, rpc_err(-32600, gone));
        assert_eq!(write_stdin(&mut c, "k", Some(b"x"), false).await, rpc_err(-32600, gone));
        assert_eq!(write_stdin(&mut c, "k", None, true).await, rpc_err(-32600, gone));
        assert_eq!(
            c.call("process/resizePty", json!({"processHandle": "k", "size": {"rows": 5, "cols": 5}})).await,
            rpc_err(-32600, gone)
        );
    }
    // Also right after a kill.
    for round in 0..5 {
        spawned(&mut c, "k", &["sleep", "30"], json!({"tty": round % 2 == 1})).await;
        assert_eq!(kill_then_exited(&mut c, "k").await, exited_empty("k", 137));
        assert_eq!(c.call("process/kill", json!({"processHandle": "k"})).await, rpc_err(-32600, gone));
    }
}

#[tokio::test]
async fn handles_are_connection_scoped() {
    let server = Server::start(&[]);
    let mut a = server.connect().await;
    a.app_handshake(json!({"experimentalApi": true})).await;
    let mut b = server.connect().await;
    b.app_handshake(json!({"experimentalApi": true})).await;
    spawned(&mut a, "shared", &["sleep", "30"], json!({})).await;
    assert_eq!(
        b.call("process/kill", json!({"processHandle": "shared"})).await,
        rpc_err(-32600, r#"no active process for process handle "shared""#)
    );
    let e = buffered(&mut b, "shared", &["printf", "b"], json!({})).await;
    assert_eq!(e, exited("shared", 0, "b", false, "", false));
    assert_eq!(kill_then_exited(&mut a, "shared").await, exited_empty("shared", 137));
}

#[tokio::test]
async fn closing_the_connection_kills_its_processes() {
    let server = Server::start(&[]);
    let dir = temp_dir("app-close");
    let pid_file = dir.join("pid");
    let mut stays = server.connect().await;
    stays.app_handshake(json!({"experimentalApi": true})).await;
    let mut leaves = server.connect().await;
    leaves.app_handshake(json!({"experimentalApi": true})).await;
    let script = format!("sleep 300 & echo $! > '{}'; wait", pid_file.display());
    spawned(&mut leaves, "doomed", &["sh", "-c", &script], json!({"timeoutMs": null})).await;
    let pid = read_pid(&pid_file).await;
    assert!(alive(pid));
    drop(leaves);
    eventually("the closed connection's processes to die", || !alive(pid)).await;
    let e = buffered(&mut stays, "doomed", &["true"], json!({})).await;
    assert_eq!(e, exited_empty("doomed", 0));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// 6.4 backpressure
// ---------------------------------------------------------------------------

/// The next JSON text message of a raw WebSocket.
async fn next_json<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match within("a websocket message", ws.next()).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).expect("JSON"),
            Some(Ok(_)) => continue,
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

/// (bytes written, state letter) of a live process.
fn write_progress(pid: u32) -> Option<(u64, char)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let wchar = io.lines().find_map(|l| l.strip_prefix("wchar: "))?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?.chars().next()?;
    Some((wchar, state))
}

#[tokio::test]
async fn a_client_that_stops_reading_stops_the_child_and_loses_nothing() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    // 16 bytes each: 64 MiB. execd's outbound queue (256 messages of up to
    // 80 KiB) plus the socket buffers hold more than 16 MiB, so a 16 MiB child
    // finishes without the client reading (it blocked after about 20 MiB when
    // measured); 64 MiB is well past all of them.
    const LINES: usize = 1 << 22;
    let total = LINES * 16;
    let dir = temp_dir("app-backpressure");
    let pid_file = dir.join("pid");
    let server = Server::start(&[]);
    let (mut ws, _) = within("connect", tokio_tungstenite::connect_async(server.url.as_str())).await.expect("connect");
    let init = json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "t", "version": "1"}, "capabilities": {"experimentalApi": true}}});
    ws.send(Message::Text(init.to_string().into())).await.expect("send");
    loop {
        if next_json(&mut ws).await["id"] == 1 {
            break;
        }
    }
    let script = format!("echo $$ > '{}'; exec seq -f %015.0f 0 {}", pid_file.display(), LINES - 1);
    let spawn = json!({"id": 2, "method": "process/spawn", "params": spawn_params("bp", &["sh", "-c", &script],
        json!({"streamStdoutStderr": true, "outputBytesCap": null, "timeoutMs": null}))});
    ws.send(Message::Text(spawn.to_string().into())).await.expect("send");
    // The response precedes every delta, so reading up to it reads no output.
    let resp = next_json(&mut ws).await;
    assert_eq!(resp["id"], 2, "{resp}");
    assert_eq!(resp["result"], json!({}), "{resp}");

    // Not reading: the child must end up blocked on its full pipe, short of the end.
    let pid = read_pid(&pid_file).await;
    let mut last = (u64::MAX, 0);
    let mut written = 0;
    eventually("the child to block while the client does not read", || match write_progress(pid) {
        Some((wchar, 'S')) if wchar == last.0 => {
            last.1 += 1;
            written = wchar;
            last.1 >= 10
        }
        Some((wchar, _)) => {
            last = (wchar, 0);
            false
        }
        None => false,
    })
    .await;
    assert!((written as usize) < total, "blocked after {written} of {total} bytes");
    assert!(alive(pid), "still running while the client does not read");

    // Reading again: everything arrives, in order, then exited.
    let mut out = Vec::with_capacity(total);
    loop {
        let v = next_json(&mut ws).await;
        match v["method"].as_str() {
            Some("process/outputDelta") => {
                assert_eq!(v["params"]["stream"], "stdout");
                assert_eq!(v["params"]["capReached"], false);
                out.extend(unb64(v["params"]["deltaBase64"].as_str().expect("deltaBase64")));
            }
            Some("process/exited") => {
                assert_eq!(v["params"], exited_empty("bp", 0));
                break;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!(out.len(), total, "every byte arrived");
    assert!(out == numbered_lines(LINES), "the bytes arrived in order");
    let _ = std::fs::remove_dir_all(&dir);
}
