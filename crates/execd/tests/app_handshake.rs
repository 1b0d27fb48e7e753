//! The app-server process dialect's connection level (app-server spec §1, §2,
//! §3, §6.8, §6.9): dialect selection by `initialize`, the handshake rules, the
//! `experimentalApi` gate, the JSON-RPC envelope and its silently ignored
//! messages, serde error wording, `emittedAtMs`, `optOutNotificationMethods`,
//! per-connection and per-family id namespaces, and the processes of a closed
//! connection being killed. Over WebSocket and over stdio.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

on_both_transports!(
    initialize_with_client_info_selects_the_app_dialect,
    app_initialize_without_capabilities_is_not_experimental,
    methods_before_initialize_are_not_initialized,
    params_errors_precede_the_initialize_check,
    failed_initialize_leaves_the_connection_uninitialized,
    second_initialize_is_already_initialized,
    requests_are_served_without_initialized_and_initialized_is_harmless,
    process_methods_require_experimental_api,
    param_decoding_precedes_the_experimental_gate,
    command_exec_works_without_experimental_api,
    permission_profile_requires_experimental_api,
    unusable_messages_are_ignored_silently,
    request_ids_are_echoed_verbatim,
    params_as_an_empty_array_name_the_struct,
    unknown_method_is_an_unknown_variant,
    unknown_fields_in_params_are_ignored,
    serde_errors_are_invalid_request_with_the_serde_message,
    notifications_carry_emitted_at_ms_and_no_jsonrpc,
    opting_out_of_process_output_delta_keeps_exited,
    opting_out_of_command_exec_output_delta_keeps_the_response,
    process_and_command_exec_namespaces_are_separate,
);

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

const INVALID_REQUEST: i64 = -32600;

/// An error tuple with code -32600.
fn invalid(message: impl Into<String>) -> RpcError {
    (INVALID_REQUEST, message.into())
}

/// An error tuple with code -32600 and the `Invalid request: ` prefix.
fn invalid_request(serde_message: &str) -> RpcError {
    invalid(format!("Invalid request: {serde_message}"))
}

/// Sends `msg` verbatim (a stdio line gets its newline) and returns the raw
/// response whose id equals `msg["id"]`.
async fn raw_call(c: &mut Client, msg: Value) -> Value {
    let id = msg["id"].clone();
    c.send(&msg);
    c.take(&format!("response {id}"), |v| v.get("id") == Some(&id) && v.get("method").is_none()).await
}

/// Sends raw text as one message (WebSocket text frame, or one stdio line).
fn send_line(c: &Client, text: &str) {
    if c.stdio_child.is_some() {
        c.send_text(format!("{text}\n"));
    } else {
        c.send_text(text);
    }
}

/// Sends a request and asserts that the very next message on the connection is
/// its response (nothing arrived before it); returns that response.
async fn next_is_response(c: &mut Client, method: &str, params: Value) -> Value {
    let id = c.send_request(method, params);
    let v = c.recv().await.expect("the connection is still open");
    assert_eq!(v.get("id"), Some(&json!(id)), "the next message must be the response to {method} (id {id}), got {v}");
    assert!(v.get("method").is_none(), "{v}");
    v
}

/// A `command/exec` that prints `text` and must succeed with it as stdout.
async fn assert_exec_echoes(c: &mut Client, t: Transport, text: &str) {
    let r = c.ok("command/exec", json!({"command": ["printf", "%s", text], "cwd": "/tmp"})).await;
    assert_eq!(r, json!({"exitCode": 0, "stdout": text, "stderr": ""}), "{t:?}");
}

/// Valid `process/spawn` params (handle `h`, `true` in /tmp) with `extra` merged in.
fn spawn_params(extra: Value) -> Value {
    let mut p = json!({"command": ["true"], "processHandle": "h", "cwd": "/tmp"});
    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    p
}

/// Every process method with valid params.
fn process_methods() -> Vec<(&'static str, Value)> {
    vec![
        ("process/spawn", spawn_params(json!({}))),
        ("process/writeStdin", json!({"processHandle": "h", "deltaBase64": "aGk="})),
        ("process/resizePty", json!({"processHandle": "h", "size": {"rows": 24, "cols": 80}})),
        ("process/kill", json!({"processHandle": "h"})),
    ]
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

/// Asserts `v` is a notification of the app dialect emitted between `before` and
/// `after` (ms, with 5 s of slack): `emittedAtMs` top-level and numeric, no `jsonrpc`.
fn assert_notification_envelope(v: &Value, before: u64, after: u64) {
    let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    assert!(!obj.contains_key("jsonrpc"), "no jsonrpc member on notifications: {v}");
    assert!(!obj.contains_key("id"), "{v}");
    let at = obj.get("emittedAtMs").and_then(Value::as_u64).unwrap_or_else(|| panic!("numeric emittedAtMs: {v}"));
    assert!(!v["params"].as_object().is_some_and(|p| p.contains_key("emittedAtMs")), "emittedAtMs is top-level: {v}");
    assert!(at + 5_000 >= before && at <= after + 5_000, "emittedAtMs {at} not within [{before}, {after}] ± 5 s: {v}");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["emittedAtMs", "method", "params"], "{v}");
}

/// Asserts a raw response has exactly `id` and `result` (or `error`) and no `jsonrpc`.
fn assert_response_envelope(v: &Value, member: &str) {
    let obj = v.as_object().unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = vec!["id", member];
    expected.sort_unstable();
    assert_eq!(keys, expected, "response members: {v}");
}

/// Reads the pid a child wrote into `file`, waiting until it is there.
async fn pid_from(file: &std::path::Path) -> u32 {
    let mut pid = None;
    eventually(&format!("a pid in {}", file.display()), || {
        pid = std::fs::read_to_string(file).ok().and_then(|s| s.strip_suffix('\n').and_then(|s| s.parse().ok()));
        pid.is_some()
    })
    .await;
    pid.expect("pid")
}

/// `sh -c 'echo $$ > FILE; exec sleep 300'`: a long sleeper whose pid lands in FILE.
fn sleeper(file: &std::path::Path) -> Vec<String> {
    vec!["sh".into(), "-c".into(), format!("echo $$ > '{}'; exec sleep 300", file.display())]
}

// ---------------------------------------------------------------------------------
// 1. Dialect selection
// ---------------------------------------------------------------------------------

async fn initialize_with_client_info_selects_the_app_dialect(t: Transport) {
    let mut c = Conn::open(t).await;
    let client_info = json!({"name": "probe", "title": null, "version": "0.0.1"});
    let r = c.ok("initialize", json!({"clientInfo": client_info, "capabilities": {"experimentalApi": true}})).await;
    let obj = r.as_object().unwrap_or_else(|| panic!("{t:?}: result not an object: {r}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["codexHome", "platformFamily", "platformOs", "userAgent"], "{t:?}: {r}");
    assert_eq!(r["platformFamily"], "unix", "{t:?}");
    assert_eq!(r["platformOs"], "linux", "{t:?}");
    let ua = r["userAgent"].as_str().unwrap_or_else(|| panic!("{t:?}: userAgent string: {r}"));
    assert!(ua.starts_with("probe/0.169.0 ("), "{t:?}: userAgent {ua:?}");
    assert!(ua.ends_with(" (probe; 0.0.1)"), "{t:?}: userAgent {ua:?}");
    assert!(ua.contains(&format!("; {}) ", std::env::consts::ARCH)), "{t:?}: arch in userAgent {ua:?}");
    let home = r["codexHome"].as_str().unwrap_or_else(|| panic!("{t:?}: codexHome string: {r}"));
    let expected_home = match std::env::var("CODEX_HOME") {
        Ok(h) => h,
        Err(_) => format!("{}/.codex", std::env::var("HOME").unwrap_or_default()),
    };
    assert_eq!(home, expected_home, "{t:?}");
    // The connection now speaks the app dialect: no session id, process/* served,
    // and an exec-server method is an unknown variant.
    assert!(r.get("sessionId").is_none(), "{t:?}");
    let (code, message) = c.err("process/start", json!({"processId": "p", "argv": ["true"]})).await;
    assert_eq!(code, INVALID_REQUEST, "{t:?}");
    assert!(
        message.starts_with("Invalid request: unknown variant `process/start`, expected one of `initialize`"),
        "{t:?}: {message}"
    );
    c.ok("process/spawn", spawn_params(json!({}))).await;
    let run = c.app_run("h").await;
    assert_eq!(run.exited()["exitCode"], 0, "{t:?}");
}

async fn app_initialize_without_capabilities_is_not_experimental(t: Transport) {
    let mut c = Conn::open(t).await;
    c.ok("initialize", json!({"clientInfo": {"name": "n", "version": "v"}})).await;
    assert_eq!(
        c.err("process/spawn", spawn_params(json!({}))).await,
        invalid("process/spawn requires experimentalApi capability"),
        "{t:?}"
    );
    assert_exec_echoes(&mut c, t, "plain").await;
}

/// Both dialects on one WebSocket server, in two connections at once.
#[tokio::test]
async fn both_dialects_on_one_websocket_server() {
    let server = Server::start(&[]);
    let mut app = server.connect().await;
    let mut exec = server.connect().await;
    let r = app.app_handshake(json!({"experimentalApi": true})).await;
    assert!(r["userAgent"].as_str().is_some_and(|ua| ua.starts_with("test/0.169.0 (")), "{r}");
    assert!(r.get("sessionId").is_none(), "{r}");
    let r = exec.handshake().await;
    assert!(r["sessionId"].as_str().is_some_and(|s| !s.is_empty()), "exec-server initialize result: {r}");
    assert!(r.get("userAgent").is_none(), "{r}");

    // Each connection keeps its own dialect, interleaved.
    assert_eq!(exec.ok("environment/status", json!({})).await, json!({"status": "ready"}));
    let (code, message) = app.err("environment/status", json!({})).await;
    assert_eq!(code, INVALID_REQUEST);
    assert!(message.starts_with("Invalid request: unknown variant `environment/status`, expected one of `initialize`"));
    assert_eq!(
        exec.err("process/spawn", spawn_params(json!({}))).await,
        (-32601, "exec-server stub does not implement `process/spawn` yet".into())
    );
    let r = app.ok("command/exec", json!({"command": ["printf", "app"], "cwd": "/tmp"})).await;
    assert_eq!(r, json!({"exitCode": 0, "stdout": "app", "stderr": ""}));
    let started = exec
        .start("e1", &["printf", "exec"], json!({}))
        .await
        .unwrap_or_else(|e| panic!("process/start on the exec-server connection: {e:?}"));
    assert!(started.is_object(), "{started}");
    let run = exec.events_until_closed("e1").await;
    assert_eq!(run.stdout, b"exec");
    assert_eq!(run.exit_code, Some(0));
    app.ok("process/spawn", spawn_params(json!({"command": ["printf", "x"]}))).await;
    assert_eq!(app.app_run("h").await.exited()["stdout"], "x");
}

// ---------------------------------------------------------------------------------
// 2. Handshake rules
// ---------------------------------------------------------------------------------

async fn methods_before_initialize_are_not_initialized(t: Transport) {
    let mut c = Conn::open(t).await;
    for (method, params) in process_methods() {
        assert_eq!(c.err(method, params).await, invalid("Not initialized"), "{t:?} {method}");
    }
    let exec = json!({"command": ["true"]});
    assert_eq!(c.err("command/exec", exec).await, invalid("Not initialized"), "{t:?}");
    assert_eq!(c.err("command/exec/terminate", json!({"processId": "x"})).await, invalid("Not initialized"), "{t:?}");
    // The connection can still initialize afterwards.
    c.app_handshake(json!({"experimentalApi": true})).await;
    assert_exec_echoes(&mut c, t, "late").await;
}

async fn params_errors_precede_the_initialize_check(t: Transport) {
    let mut c = Conn::open(t).await;
    let r = raw_call(&mut c, json!({"id": 7001, "method": "process/spawn"})).await;
    assert_eq!(into_result(r), Err(invalid_request("missing field `params`")), "{t:?}: params absent");
    let r = raw_call(&mut c, json!({"id": 7002, "method": "process/spawn", "params": null})).await;
    assert_eq!(into_result(r), Err(invalid_request("missing field `params`")), "{t:?}: params null");
    assert_eq!(
        c.err("process/spawn", json!({"processHandle": "h", "cwd": "/tmp"})).await,
        invalid_request("missing field `command`"),
        "{t:?}"
    );
    // Valid params: now the initialize check answers.
    assert_eq!(c.err("process/spawn", spawn_params(json!({}))).await, invalid("Not initialized"), "{t:?}");
}

async fn failed_initialize_leaves_the_connection_uninitialized(t: Transport) {
    let mut c = Conn::open(t).await;
    let no_version = json!({"clientInfo": {"name": "n"}, "capabilities": {"experimentalApi": true}});
    assert_eq!(c.err("initialize", no_version).await, invalid_request("missing field `version`"), "{t:?}");
    assert_eq!(c.err("process/spawn", spawn_params(json!({}))).await, invalid("Not initialized"), "{t:?}");
    assert_eq!(c.err("command/exec", json!({"command": ["true"]})).await, invalid("Not initialized"), "{t:?}");
    let no_name = json!({"clientInfo": {"version": "1"}});
    assert_eq!(c.err("initialize", no_name).await, invalid_request("missing field `name`"), "{t:?}");
    // A later good initialize succeeds (and its capabilities count).
    let r = c.app_handshake(json!({"experimentalApi": true})).await;
    assert_eq!(r["platformOs"], "linux", "{t:?}");
    c.ok("process/spawn", spawn_params(json!({"command": ["printf", "ok"]}))).await;
    assert_eq!(c.app_run("h").await.exited()["stdout"], "ok", "{t:?}");
}

async fn second_initialize_is_already_initialized(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let again = json!({"clientInfo": {"name": "again", "version": "2"}, "capabilities": {"experimentalApi": true}});
    assert_eq!(c.err("initialize", again).await, invalid("Already initialized"), "{t:?}");
    // The refused initialize changed nothing: still not experimental, still usable.
    assert_eq!(
        c.err("process/kill", json!({"processHandle": "h"})).await,
        invalid("process/kill requires experimentalApi capability"),
        "{t:?}"
    );
    assert_exec_echoes(&mut c, t, "still").await;
}

async fn requests_are_served_without_initialized_and_initialized_is_harmless(t: Transport) {
    let mut c = Conn::open(t).await;
    // The request right after the initialize response, no `initialized` sent.
    c.app_handshake(json!({"experimentalApi": true})).await;
    let r = next_is_response(&mut c, "command/exec", json!({"command": ["printf", "early"], "cwd": "/tmp"})).await;
    assert_eq!(into_result(r), Ok(json!({"exitCode": 0, "stdout": "early", "stderr": ""})), "{t:?}");
    assert_eq!(c.err("process/kill", json!({"processHandle": "none"})).await.0, INVALID_REQUEST, "{t:?}");
    // `initialized` (bare, and with params) is ignored: no reply, nothing changes.
    send_line(&c, r#"{"method":"initialized"}"#);
    c.notify("initialized", json!({}));
    let r = next_is_response(&mut c, "command/exec", json!({"command": ["printf", "later"], "cwd": "/tmp"})).await;
    assert_eq!(into_result(r), Ok(json!({"exitCode": 0, "stdout": "later", "stderr": ""})), "{t:?}");
    c.ok("process/spawn", spawn_params(json!({}))).await;
    assert_eq!(c.app_run("h").await.exited()["exitCode"], 0, "{t:?}");
}

// ---------------------------------------------------------------------------------
// 3. experimentalApi gate
// ---------------------------------------------------------------------------------

async fn process_methods_require_experimental_api(t: Transport) {
    for caps in [json!({}), json!({"experimentalApi": false}), json!(null)] {
        let mut c = Conn::app_ready(t, caps.clone()).await;
        for (method, params) in process_methods() {
            assert_eq!(
                c.err(method, params).await,
                invalid(format!("{method} requires experimentalApi capability")),
                "{t:?} {caps} {method}"
            );
        }
    }
    // With the capability the same requests get past the gate.
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    c.ok("process/spawn", spawn_params(json!({}))).await;
    assert_eq!(c.app_run("h").await.exited()["exitCode"], 0, "{t:?}");
    let unknown = invalid("no active process for process handle \"ghost\"");
    assert_eq!(c.err("process/kill", json!({"processHandle": "ghost"})).await, unknown, "{t:?}");
}

async fn param_decoding_precedes_the_experimental_gate(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let cases = [
        ("process/spawn", json!({"processHandle": "h", "cwd": "/tmp"}), "missing field `command`"),
        ("process/spawn", json!({"command": ["true"], "processHandle": "h"}), "missing field `cwd`"),
        ("process/writeStdin", json!({"deltaBase64": "aGk="}), "missing field `processHandle`"),
        ("process/resizePty", json!({"processHandle": "h"}), "missing field `size`"),
        ("process/kill", json!({}), "missing field `processHandle`"),
    ];
    for (method, params, message) in cases {
        assert_eq!(c.err(method, params).await, invalid_request(message), "{t:?} {method}");
    }
    let r = raw_call(&mut c, json!({"id": 7101, "method": "process/kill"})).await;
    assert_eq!(into_result(r), Err(invalid_request("missing field `params`")), "{t:?}");
}

async fn command_exec_works_without_experimental_api(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    assert_exec_echoes(&mut c, t, "stable").await;
    // Streaming and control methods of command/exec are stable too.
    let command = json!(["sh", "-c", "printf 'out'; printf 'err' >&2"]);
    let id = c.send_request(
        "command/exec",
        json!({"command": command, "processId": "c1", "streamStdoutStderr": true, "cwd": "/tmp"}),
    );
    let run = c.exec_run(id, "c1").await;
    assert_eq!(run.stdout, b"out", "{t:?}");
    assert_eq!(run.stderr, b"err", "{t:?}");
    assert_eq!(into_result(run.end), Ok(json!({"exitCode": 0, "stdout": "", "stderr": ""})), "{t:?}");
    assert_eq!(
        c.err("command/exec/terminate", json!({"processId": "c1x"})).await,
        invalid("no active command/exec for process id \"c1x\""),
        "{t:?}"
    );
}

async fn permission_profile_requires_experimental_api(t: Transport) {
    let mut c = Conn::app_ready(t, json!({})).await;
    let gated = invalid("command/exec.permissionProfile requires experimentalApi capability");
    let params = json!({"command": ["printf", "x"], "permissionProfile": "read-only", "cwd": "/tmp"});
    assert_eq!(c.err("command/exec", params).await, gated, "{t:?}");
    // The gate comes before the empty-command check.
    let params = json!({"command": [], "permissionProfile": "read-only"});
    assert_eq!(c.err("command/exec", params).await, gated, "{t:?}");
    // `null` is accepted: the command runs.
    let params = json!({"command": ["printf", "ran"], "permissionProfile": null, "cwd": "/tmp"});
    assert_eq!(c.ok("command/exec", params).await, json!({"exitCode": 0, "stdout": "ran", "stderr": ""}), "{t:?}");
}

// ---------------------------------------------------------------------------------
// 4. Envelope
// ---------------------------------------------------------------------------------

async fn unusable_messages_are_ignored_silently(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let ignored: [(&str, &str); 7] = [
        ("a non-JSON line", "this is not json"),
        ("a truncated object", r#"{"id": 5, "method": "command/exec""#),
        ("a request with id null", r#"{"id":null,"method":"command/exec","params":{"command":["true"]}}"#),
        ("a request with id 1.5", r#"{"id":1.5,"method":"command/exec","params":{"command":["true"]}}"#),
        ("an unsolicited response", r#"{"id":999,"result":{}}"#),
        ("an unsolicited error", r#"{"id":998,"error":{"code":1,"message":"x"}}"#),
        ("an unknown notification", r#"{"method":"nope/notified","params":{"a":1}}"#),
    ];
    for (i, (what, text)) in ignored.iter().enumerate() {
        send_line(&c, text);
        let word = format!("after{i}");
        let r = next_is_response(&mut c, "command/exec", json!({"command": ["printf", &word], "cwd": "/tmp"})).await;
        assert_eq!(
            into_result(r),
            Ok(json!({"exitCode": 0, "stdout": word, "stderr": ""})),
            "{t:?}: after {what} the connection must keep working with no reply in between"
        );
    }
    // `"jsonrpc":"2.0"` from the client is accepted and ignored.
    let r = raw_call(
        &mut c,
        json!({"jsonrpc": "2.0", "id": 7201, "method": "command/exec", "params": {"command": ["printf", "rpc"]}}),
    )
    .await;
    assert_eq!(into_result(r), Ok(json!({"exitCode": 0, "stdout": "rpc", "stderr": ""})), "{t:?}");
}

async fn request_ids_are_echoed_verbatim(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let r = raw_call(&mut c, json!({"id": "abc-1", "method": "command/exec", "params": {"command": ["printf", "s"]}}))
        .await;
    assert_eq!(r, json!({"id": "abc-1", "result": {"exitCode": 0, "stdout": "s", "stderr": ""}}), "{t:?}");
    let r = raw_call(&mut c, json!({"id": "", "method": "process/kill", "params": {"processHandle": "ghost"}})).await;
    assert_eq!(
        r,
        json!({"id": "", "error": {"code": -32600, "message": "no active process for process handle \"ghost\""}}),
        "{t:?}"
    );
    let r = raw_call(&mut c, json!({"id": -42, "method": "process/kill", "params": {"processHandle": "ghost"}})).await;
    assert_eq!(r["id"], json!(-42), "{t:?}");
    let r = raw_call(&mut c, json!({"id": 9_007_199_254_740_993_i64, "method": "process/kill", "params": {}})).await;
    assert_eq!(r["id"], json!(9_007_199_254_740_993_i64), "{t:?}");
    assert_eq!(into_result(r), Err(invalid_request("missing field `processHandle`")), "{t:?}");
}

async fn params_as_an_empty_array_name_the_struct(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    assert_eq!(
        c.err("process/spawn", json!([])).await,
        invalid_request("invalid length 0, expected struct ProcessSpawnParams with 10 elements"),
        "{t:?}"
    );
    assert_eq!(
        c.err("command/exec/terminate", json!([])).await,
        invalid_request("invalid length 0, expected struct CommandExecTerminateParams with 1 element"),
        "{t:?}"
    );
}

async fn unknown_method_is_an_unknown_variant(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let (code, message) = c.err("nope/x", json!({})).await;
    assert_eq!(code, INVALID_REQUEST, "{t:?}: {message}");
    assert!(
        message.starts_with("Invalid request: unknown variant `nope/x`, expected one of `initialize`"),
        "{t:?}: {message}"
    );
    // Without params too.
    let r = raw_call(&mut c, json!({"id": 7301, "method": "nope/x"})).await;
    let (code, message) = into_result(r).expect_err("unknown method");
    assert_eq!(code, INVALID_REQUEST, "{t:?}");
    assert!(
        message.starts_with("Invalid request: unknown variant `nope/x`, expected one of `initialize`"),
        "{message}"
    );
    assert_exec_echoes(&mut c, t, "fine").await;
}

async fn unknown_fields_in_params_are_ignored(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true, "someFutureFlag": 1})).await;
    let params = spawn_params(json!({"command": ["printf", "u"], "bogus": {"x": 1}, "processId": 3}));
    assert_eq!(c.ok("process/spawn", params).await, json!({}), "{t:?}");
    assert_eq!(c.app_run("h").await.exited()["stdout"], "u", "{t:?}");
    let params = json!({"command": ["printf", "v"], "cwd": "/tmp", "whatever": true, "processHandle": "no"});
    assert_eq!(c.ok("command/exec", params).await, json!({"exitCode": 0, "stdout": "v", "stderr": ""}), "{t:?}");
    let r = c.err("process/kill", json!({"processHandle": "ghost", "extra": [1, 2]})).await;
    assert_eq!(r, invalid("no active process for process handle \"ghost\""), "{t:?}");
}

async fn serde_errors_are_invalid_request_with_the_serde_message(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let cases = [
        (json!({"command": "true"}), "invalid type: string \"true\", expected a sequence"),
        (json!({"processHandle": 1}), "invalid type: integer `1`, expected a string"),
        (json!({"tty": null}), "invalid type: null, expected a boolean"),
        (json!({"outputBytesCap": -1}), "invalid value: integer `-1`, expected usize"),
        (json!({"tty": true, "size": {"rows": 70000, "cols": 80}}), "invalid value: integer `70000`, expected u16"),
        (
            json!({"timeoutMs": 9_223_372_036_854_775_808_u64}),
            "invalid value: integer `9223372036854775808`, expected i64",
        ),
        (json!({"timeoutMs": 1.5}), "invalid type: floating point `1.5`, expected i64"),
        (json!({"cwd": "relative/dir"}), "AbsolutePathBuf deserialized without a base path"),
    ];
    for (extra, message) in cases {
        let params = spawn_params(extra.clone());
        assert_eq!(c.err("process/spawn", params).await, invalid_request(message), "{t:?} {extra}");
    }
    // The same wording for command/exec.
    let r = c.err("command/exec", json!({"command": "true"})).await;
    assert_eq!(r, invalid_request("invalid type: string \"true\", expected a sequence"), "{t:?}");
    let r = c.err("command/exec", json!({"command": ["true"], "processId": 1})).await;
    assert_eq!(r, invalid_request("invalid type: integer `1`, expected a string"), "{t:?}");
    // Nothing was spawned by any of them: the handle is free.
    c.ok("process/spawn", spawn_params(json!({}))).await;
    assert_eq!(c.app_run("h").await.exited()["exitCode"], 0, "{t:?}");
}

// ---------------------------------------------------------------------------------
// 5. Notification and response envelopes
// ---------------------------------------------------------------------------------

async fn notifications_carry_emitted_at_ms_and_no_jsonrpc(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    let before = now_ms();
    let id =
        c.send_request("process/spawn", spawn_params(json!({"command": ["printf", "hi"], "streamStdoutStderr": true})));
    let resp = c.response(id).await;
    assert_response_envelope(&resp, "result");
    assert_eq!(resp["result"], json!({}), "{t:?}");
    let delta = c.take("process/outputDelta", |v| v["method"] == "process/outputDelta").await;
    let exited = c.take("process/exited", |v| v["method"] == "process/exited").await;
    let after = now_ms();
    assert_notification_envelope(&delta, before, after);
    assert_notification_envelope(&exited, before, after);
    assert_eq!(unb64(delta["params"]["deltaBase64"].as_str().expect("deltaBase64")), b"hi", "{t:?}");
    assert_eq!(
        exited["params"],
        json!({
            "processHandle": "h", "exitCode": 0, "outputDrainTimedOut": false,
            "stdout": "", "stdoutCapReached": false, "stderr": "", "stderrCapReached": false
        }),
        "{t:?}"
    );

    let before = now_ms();
    let id = c.send_request(
        "command/exec",
        json!({"command": ["printf", "yo"], "processId": "c", "streamStdoutStderr": true, "cwd": "/tmp"}),
    );
    let delta = c.take("command/exec/outputDelta", |v| v["method"] == "command/exec/outputDelta").await;
    let resp = c.response(id).await;
    let after = now_ms();
    assert_notification_envelope(&delta, before, after);
    assert_eq!(delta["params"]["processId"], "c", "{t:?}");
    assert_response_envelope(&resp, "result");
    assert_eq!(resp["result"], json!({"exitCode": 0, "stdout": "", "stderr": ""}), "{t:?}");

    let id = c.send_request("process/kill", json!({"processHandle": "ghost"}));
    let resp = c.response(id).await;
    assert_response_envelope(&resp, "error");
    let mut keys: Vec<&str> = resp["error"].as_object().expect("error object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["code", "message"], "{t:?}: {resp}");
}

// ---------------------------------------------------------------------------------
// 6. optOutNotificationMethods
// ---------------------------------------------------------------------------------

/// Every message up to and including the first one matching `end`.
async fn messages_until(c: &mut Client, end: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = c.recv().await.expect("the connection is still open");
        let done = end(&v);
        seen.push(v);
        if done {
            return seen;
        }
    }
}

async fn opting_out_of_process_output_delta_keeps_exited(t: Transport) {
    let caps = json!({"experimentalApi": true, "optOutNotificationMethods": ["process/outputDelta"]});
    let mut c = Conn::app_ready(t, caps).await;
    c.ok("process/spawn", spawn_params(json!({"command": ["printf", "hi"], "streamStdoutStderr": true}))).await;
    let seen = messages_until(&mut c, |v| v["method"] == "process/exited").await;
    assert_eq!(seen.len(), 1, "{t:?}: only process/exited, no delta: {seen:?}");
    let exited = &seen[0]["params"];
    assert_eq!(exited["processHandle"], "h", "{t:?}");
    assert_eq!(exited["exitCode"], 0, "{t:?}");
    assert_eq!(exited["stdout"], "", "{t:?}: streamed bytes are lost, not buffered");
    // command/exec deltas are a different method and still arrive.
    let id = c.send_request(
        "command/exec",
        json!({"command": ["printf", "cx"], "processId": "c", "streamStdoutStderr": true, "cwd": "/tmp"}),
    );
    let run = c.exec_run(id, "c").await;
    assert_eq!(run.stdout, b"cx", "{t:?}");
    assert_eq!(into_result(run.end), Ok(json!({"exitCode": 0, "stdout": "", "stderr": ""})), "{t:?}");
}

async fn opting_out_of_command_exec_output_delta_keeps_the_response(t: Transport) {
    let caps = json!({"experimentalApi": true, "optOutNotificationMethods": ["command/exec/outputDelta"]});
    let mut c = Conn::app_ready(t, caps).await;
    let command = json!(["sh", "-c", "printf out; printf err >&2"]);
    let id = c.send_request(
        "command/exec",
        json!({"command": command, "processId": "c", "streamStdoutStderr": true, "cwd": "/tmp"}),
    );
    let seen = messages_until(&mut c, |v| v.get("id") == Some(&json!(id))).await;
    assert_eq!(seen.len(), 1, "{t:?}: only the response, no delta: {seen:?}");
    assert_eq!(into_result(seen[0].clone()), Ok(json!({"exitCode": 0, "stdout": "", "stderr": ""})), "{t:?}");
    // process/outputDelta still arrives.
    c.ok("process/spawn", spawn_params(json!({"command": ["printf", "px"], "streamStdoutStderr": true}))).await;
    let run = c.app_run("h").await;
    assert_eq!(run.stdout, b"px", "{t:?}");
    assert_eq!(run.exited()["exitCode"], 0, "{t:?}");
}

// ---------------------------------------------------------------------------------
// 7. Namespaces
// ---------------------------------------------------------------------------------

async fn process_and_command_exec_namespaces_are_separate(t: Transport) {
    let mut c = Conn::app_ready(t, json!({"experimentalApi": true})).await;
    c.ok(
        "process/spawn",
        spawn_params(json!({"command": ["sleep", "300"], "processHandle": "shared", "timeoutMs": null})),
    )
    .await;
    let exec = c.send_request(
        "command/exec",
        json!({"command": ["sleep", "300"], "processId": "shared", "disableTimeout": true, "cwd": "/tmp"}),
    );
    // Both are registered under the same string.
    let dup = c.err("process/spawn", spawn_params(json!({"processHandle": "shared"}))).await;
    assert_eq!(dup, invalid("duplicate active process handle: \"shared\""), "{t:?}");
    assert_eq!(c.ok("process/kill", json!({"processHandle": "shared"})).await, json!({}), "{t:?}");
    let exited = notification_of(&mut c, "process/exited", "processHandle", "shared").await;
    assert_eq!(exited["exitCode"], 137, "{t:?}");
    // The command is untouched by process/kill: it is still there to terminate.
    assert_eq!(c.ok("command/exec/terminate", json!({"processId": "shared"})).await, json!({}), "{t:?}");
    let resp = c.response(exec).await;
    assert_eq!(into_result(resp), Ok(json!({"exitCode": 137, "stdout": "", "stderr": ""})), "{t:?}");
}

/// The params of the next notification `method` whose `params[field] == id`.
async fn notification_of(c: &mut Client, method: &str, field: &str, id: &str) -> Value {
    let v = c.take(&format!("{method} of {id}"), |v| v["method"] == method && v["params"][field] == id).await;
    v["params"].clone()
}

/// Handles and ids are per connection: another connection neither sees nor
/// controls them and may reuse the same strings.
#[tokio::test]
async fn ids_are_scoped_to_the_websocket_connection() {
    let server = Server::start(&[]);
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    a.app_handshake(json!({"experimentalApi": true})).await;
    b.app_handshake(json!({"experimentalApi": true})).await;
    let long = json!({"command": ["sleep", "300"], "processHandle": "x", "timeoutMs": null});
    a.ok("process/spawn", spawn_params(long.clone())).await;
    let a_exec = a.send_request(
        "command/exec",
        json!({"command": ["sleep", "300"], "processId": "c", "disableTimeout": true, "cwd": "/tmp"}),
    );
    // b cannot reach a's process or command.
    assert_eq!(
        b.err("process/kill", json!({"processHandle": "x"})).await,
        invalid("no active process for process handle \"x\"")
    );
    assert_eq!(
        b.err("process/writeStdin", json!({"processHandle": "x", "closeStdin": true})).await,
        invalid("no active process for process handle \"x\"")
    );
    assert_eq!(
        b.err("command/exec/terminate", json!({"processId": "c"})).await,
        invalid("no active command/exec for process id \"c\"")
    );
    // b may use the same strings for its own processes.
    b.ok("process/spawn", spawn_params(long)).await;
    let b_exec = b.send_request(
        "command/exec",
        json!({"command": ["sleep", "300"], "processId": "c", "disableTimeout": true, "cwd": "/tmp"}),
    );
    // a's duplicate check only sees a's own handle.
    assert_eq!(
        a.err("process/spawn", spawn_params(json!({"processHandle": "x"}))).await,
        invalid("duplicate active process handle: \"x\"")
    );
    // Killing b's "x" and "c" leaves a's alone.
    b.ok("process/kill", json!({"processHandle": "x"})).await;
    assert_eq!(notification_of(&mut b, "process/exited", "processHandle", "x").await["exitCode"], 137);
    b.ok("command/exec/terminate", json!({"processId": "c"})).await;
    assert_eq!(into_result(b.response(b_exec).await), Ok(json!({"exitCode": 137, "stdout": "", "stderr": ""})));
    // a's are still running: they can still be killed, and report it to a only.
    a.ok("process/kill", json!({"processHandle": "x"})).await;
    assert_eq!(notification_of(&mut a, "process/exited", "processHandle", "x").await["exitCode"], 137);
    a.ok("command/exec/terminate", json!({"processId": "c"})).await;
    assert_eq!(into_result(a.response(a_exec).await), Ok(json!({"exitCode": 137, "stdout": "", "stderr": ""})));
    // Nothing of a's reached b: b's next message is the answer to its next request.
    let r = next_is_response(&mut b, "command/exec", json!({"command": ["printf", "b"], "cwd": "/tmp"})).await;
    assert_eq!(into_result(r), Ok(json!({"exitCode": 0, "stdout": "b", "stderr": ""})));
}

// ---------------------------------------------------------------------------------
// 8. Closing a connection kills its processes
// ---------------------------------------------------------------------------------

/// Starts a `process/spawn` and a `command/exec` sleeper on `c`; returns their pids
/// once both wrote them (and are alive).
async fn start_sleepers(c: &mut Client, dir: &std::path::Path) -> (u32, u32) {
    let spawn_file = dir.join("spawn.pid");
    let exec_file = dir.join("exec.pid");
    c.ok(
        "process/spawn",
        json!({"command": sleeper(&spawn_file), "processHandle": "s", "cwd": "/tmp", "timeoutMs": null}),
    )
    .await;
    c.send_request(
        "command/exec",
        json!({"command": sleeper(&exec_file), "processId": "e", "disableTimeout": true, "cwd": "/tmp"}),
    );
    let spawn_pid = pid_from(&spawn_file).await;
    let exec_pid = pid_from(&exec_file).await;
    assert!(alive(spawn_pid), "process/spawn child {spawn_pid} runs");
    assert!(alive(exec_pid), "command/exec child {exec_pid} runs");
    (spawn_pid, exec_pid)
}

#[tokio::test]
async fn closing_a_websocket_connection_kills_its_processes() {
    let dir = temp_dir("app-close-ws");
    let server = Server::start(&[]);
    let mut keep = server.connect().await;
    keep.app_handshake(json!({"experimentalApi": true})).await;
    let keep_file = dir.join("keep.pid");
    keep.ok(
        "process/spawn",
        json!({"command": sleeper(&keep_file), "processHandle": "s", "cwd": "/tmp", "timeoutMs": null}),
    )
    .await;
    let keep_pid = pid_from(&keep_file).await;

    let mut c = server.connect().await;
    c.app_handshake(json!({"experimentalApi": true})).await;
    let (spawn_pid, exec_pid) = start_sleepers(&mut c, &dir).await;
    drop(c);
    eventually("the process/spawn child of the closed connection to die", || !alive(spawn_pid)).await;
    eventually("the command/exec child of the closed connection to die", || !alive(exec_pid)).await;

    // The other connection's process is untouched, and the server keeps serving.
    assert!(alive(keep_pid), "another connection's process survives");
    let mut fresh = server.connect().await;
    fresh.app_handshake(json!({})).await;
    let r = fresh.ok("command/exec", json!({"command": ["printf", "next"], "cwd": "/tmp"})).await;
    assert_eq!(r, json!({"exitCode": 0, "stdout": "next", "stderr": ""}));
    keep.ok("process/kill", json!({"processHandle": "s"})).await;
    assert_eq!(notification_of(&mut keep, "process/exited", "processHandle", "s").await["exitCode"], 137);
    eventually("the kept sleeper to die", || !alive(keep_pid)).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn closing_stdin_of_a_stdio_server_kills_its_processes() {
    let dir = temp_dir("app-close-stdio");
    let mut c = Client::stdio(&[]).await;
    c.app_handshake(json!({"experimentalApi": true})).await;
    let (spawn_pid, exec_pid) = start_sleepers(&mut c, &dir).await;
    let mut server = c.stdio_child.take().expect("the stdio server");
    // Dropping the client closes the server's stdin (and nothing else).
    drop(c);
    let status = within("the stdio server to exit", server.wait()).await.expect("wait for the stdio server");
    eventually("the process/spawn child to die", || !alive(spawn_pid)).await;
    eventually("the command/exec child to die", || !alive(exec_pid)).await;
    assert!(status.success(), "the server exits with status 0 on EOF, got {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
