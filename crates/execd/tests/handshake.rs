//! The handshake (`initialize` / `initialized`, spec §3, §3.1) and the environment
//! methods (`environment/info`, `environment/status`, `environmentConfig/read`,
//! spec §4), over WebSocket and over stdio.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

on_both_transports!(
    every_family_is_gated_before_initialize,
    every_family_is_gated_between_initialize_and_initialized,
    param_decoding_precedes_the_gate,
    unimplemented_methods_answer_method_not_found,
    initialized_sent_as_a_request_is_method_not_found,
    second_initialize_is_refused_and_the_connection_stays_usable,
    second_initialize_before_initialized_is_refused_too,
    failed_initialize_can_be_retried_on_the_same_connection,
    initialized_before_initialize_drops_the_connection,
    initialized_after_a_failed_initialize_drops_the_connection,
    second_initialized_is_ignored,
    initialized_params_may_be_empty_null_or_absent,
    initialize_result_has_a_uuid_v4_and_the_environment_info,
    environment_info_is_exact,
    environment_info_accepts_absent_null_and_empty_params,
    environment_info_rejects_other_params,
    environment_status_is_ready,
    environment_config_read_is_exact,
    environment_config_read_validates_params,
    requests_on_one_connection_are_served_concurrently,
);

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

/// Every gated method with VALID params (so decoding passes), and its gate family.
fn gated_methods() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "process/start",
            json!({"processId": "p", "argv": ["true"], "cwd": "file:///tmp", "env": {}, "tty": false}),
            "exec",
        ),
        ("process/read", json!({"processId": "p"}), "exec"),
        ("process/write", json!({"processId": "p", "chunk": "", "writeId": "w"}), "exec"),
        ("process/signal", json!({"processId": "p", "signal": "interrupt"}), "exec"),
        ("process/terminate", json!({"processId": "p"}), "exec"),
        ("environment/info", json!({}), "environment info"),
        ("environment/status", json!({}), "environment status"),
        (
            "environmentConfig/read",
            json!({"cwd": "file:///tmp", "configPaths": [], "requirementsPaths": []}),
            "environment config",
        ),
        ("fs/readFile", json!({"path": "file:///etc/hostname"}), "filesystem"),
        ("fs/getMetadata", json!({"path": "file:///tmp"}), "filesystem"),
        ("fs/open", json!({"handleId": "h", "path": "file:///etc/hostname"}), "filesystem"),
        ("fs/close", json!({"handleId": "h"}), "filesystem"),
        ("fs/watchMissing", json!({"watchId": 1, "missing": []}), "filesystem"),
    ]
}

/// Asserts every gated method answers -32600 with `client must <what> before using <family> methods`.
async fn assert_gated(c: &mut Client, t: Transport, what: &str) {
    for (method, params, family) in gated_methods() {
        let e = c.err(method, params).await;
        assert_eq!(e, (-32600, format!("client must {what} before using {family} methods")), "{t:?} {method}");
    }
}

/// Asserts the connection is fully open: every gated method gets past the gate.
async fn assert_open(c: &mut Client, t: Transport) {
    assert_eq!(c.ok("environment/status", json!({})).await, json!({"status": "ready"}), "{t:?}");
    assert!(c.ok("environment/info", json!({})).await.is_object(), "{t:?}");
    let params = json!({"cwd": "file:///tmp", "configPaths": [], "requirementsPaths": []});
    assert!(c.ok("environmentConfig/read", params).await["hostname"].is_string(), "{t:?}");
    // Unknown process: the process methods answer, each in its own way (§5), not with the gate.
    assert_eq!(c.err("process/read", json!({"processId": "p"})).await, (-32600, "unknown process id p".into()));
    assert_eq!(
        c.ok("process/write", json!({"processId": "p", "chunk": "", "writeId": "w"})).await,
        json!({"status": "unknownProcess"}),
        "{t:?}"
    );
    assert_eq!(c.ok("process/signal", json!({"processId": "p", "signal": "interrupt"})).await, json!({}), "{t:?}");
    assert_eq!(c.ok("process/terminate", json!({"processId": "p"})).await, json!({"running": false}), "{t:?}");
}

/// Waits until the server dropped the connection; asserts nothing was sent and,
/// over WebSocket, that no Close frame came.
async fn assert_dropped_silently(c: &mut Client, t: Transport) {
    let next = c.recv().await;
    assert_eq!(next, None, "{t:?}: the server must drop the connection without a reply");
    assert_eq!(c.closed().await, None, "{t:?}: no Close frame when the connection is dropped");
}

fn stub_message(method: &str) -> String {
    format!("exec-server stub does not implement `{method}` yet")
}

/// Asserts `s` is a lowercase UUIDv4: 8-4-4-4-12 lowercase hex, version 4, variant 10xx.
fn assert_uuid_v4(s: &str) {
    let groups: Vec<&str> = s.split('-').collect();
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    assert_eq!(lens, vec![8, 4, 4, 4, 12], "not 8-4-4-4-12: {s:?}");
    assert!(groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))), "{s:?}");
    assert_eq!(&s[14..15], "4", "version nibble of {s:?}");
    assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "variant nibble of {s:?}");
}

/// `file://` + the percent-encoded absolute path.
fn file_uri(path: &std::path::Path) -> String {
    let path = path.to_str().expect("utf-8 path");
    assert!(path.starts_with('/'), "absolute path expected: {path}");
    let mut uri = String::from("file://");
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

/// The current user's passwd entry (`getent passwd $(id -u)`) as its 7 fields.
fn passwd_entry() -> Vec<String> {
    let uid = std::process::Command::new("id").arg("-u").output().expect("run id -u");
    let uid = String::from_utf8(uid.stdout).expect("utf-8").trim().to_owned();
    let out = std::process::Command::new("getent").args(["passwd", &uid]).output().expect("run getent");
    let line = String::from_utf8(out.stdout).expect("utf-8");
    let fields: Vec<String> = line.trim_end_matches('\n').split(':').map(str::to_owned).collect();
    assert_eq!(fields.len(), 7, "passwd entry for uid {uid}: {line:?}");
    fields
}

fn home_dir() -> std::path::PathBuf {
    passwd_entry()[5].clone().into()
}

/// `TMPDIR` of this process (and so of the server, which inherits it), if set and non-empty.
fn tmpdir() -> Option<std::path::PathBuf> {
    std::env::var_os("TMPDIR").filter(|t| !t.is_empty()).map(Into::into)
}

/// The expected `environment/info` result, with `providerId` taken from `actual`
/// after checking its format.
fn expected_environment_info(actual: &Value) -> Value {
    let provider = actual["providerId"].as_str().unwrap_or_else(|| panic!("providerId not a string: {actual}"));
    let hex = provider.strip_prefix("sha256:").unwrap_or_else(|| panic!("providerId {provider:?}"));
    assert_eq!(hex.len(), 64, "providerId {provider:?}");
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "providerId {provider:?}");

    let pw = passwd_entry();
    let shell_path = pw[6].clone();
    let shell_name = std::path::Path::new(&shell_path).file_name().expect("shell name").to_str().unwrap().to_owned();
    let cwd = std::env::current_dir().expect("cwd");
    let tmp = tmpdir();
    json!({
        "shell": {"name": shell_name, "path": shell_path},
        "executorVersion": "0.169.0",
        "providerId": provider,
        "cwd": file_uri(&cwd),
        "userHomeDir": file_uri(std::path::Path::new(&pw[5])),
        "platformOs": "linux",
        "prependPathDirs": [],
        "temporaryDirectories": tmp.iter().map(|t| file_uri(t)).collect::<Vec<_>>(),
        "tempDir": file_uri(tmp.as_deref().unwrap_or(std::path::Path::new("/tmp"))),
        "capabilities": {
            "fsWatchMissing": true,
            "environmentConfigRead": true,
            "fileWriteStreaming": true,
            "windowsMxc": false,
            "execdConcurrentRequests": true,
            "execdOrderedProcessEvents": true,
            "execdSignalExitCodes": true,
            "execdPtySize": true,
            "execdStdinClose": true,
            "execdSignals": true,
            "execdTerminateGrace": true,
            "execdProcessTimeout": true,
            "execdOutputBytesCap": true,
            "execdProcessList": true,
            "execdReadEviction": true,
            // Depends on the host (a writable cgroup v2 hierarchy); must be a boolean.
            "execdCgroupContainment": actual["capabilities"]["execdCgroupContainment"].as_bool().map(Value::Bool).unwrap_or(Value::Null),
        },
    })
}

// ---------------------------------------------------------------------------------
// Handshake gate (§3)
// ---------------------------------------------------------------------------------

async fn every_family_is_gated_before_initialize(t: Transport) {
    let mut c = Conn::open(t).await;
    assert_gated(&mut c, t, "call initialize").await;
    // Still gated, and the gate did not close the connection: the handshake works now.
    c.handshake().await;
    assert_open(&mut c, t).await;
}

async fn every_family_is_gated_between_initialize_and_initialized(t: Transport) {
    let mut c = Conn::open(t).await;
    c.ok("initialize", json!({"clientName": "test"})).await;
    assert_gated(&mut c, t, "send initialized").await;
    c.notify("initialized", json!({}));
    assert_open(&mut c, t).await;
}

async fn param_decoding_precedes_the_gate(t: Transport) {
    let mut c = Conn::open(t).await;
    assert_eq!(c.err("process/start", json!({})).await, (-32602, "missing field `processId`".into()), "{t:?}");
    assert_eq!(c.err("environmentConfig/read", json!({})).await, (-32602, "missing field `cwd`".into()), "{t:?}");
    // Valid params on the same connection still get the gate.
    assert_gated(&mut c, t, "call initialize").await;
}

async fn unimplemented_methods_answer_method_not_found(t: Transport) {
    let mut c = Conn::open(t).await;
    let discover = json!({"cwd": "file:///tmp"});
    let http = json!({"method": "GET", "url": "http://127.0.0.1:9/", "requestId": "r"});
    for round in ["before", "after"] {
        if round == "after" {
            c.handshake().await;
        }
        let e = c.err("capabilities/discoverV2", discover.clone()).await;
        assert_eq!(e, (-32601, stub_message("capabilities/discoverV2")), "{t:?} {round}");
        assert_eq!(c.err("http/request", http.clone()).await, (-32601, stub_message("http/request")), "{t:?} {round}");
    }
    assert_open(&mut c, t).await;
}

async fn initialized_sent_as_a_request_is_method_not_found(t: Transport) {
    let mut c = Conn::open(t).await;
    // §2 / §13.3: notification-only; as a request it is an unknown method, even before initialize.
    assert_eq!(c.err("initialized", json!({})).await, (-32601, stub_message("initialized")), "{t:?}");
    c.ok("initialize", json!({"clientName": "test"})).await;
    assert_eq!(c.err("initialized", json!({})).await, (-32601, stub_message("initialized")), "{t:?}");
    // The request did not complete the handshake.
    assert_gated(&mut c, t, "send initialized").await;
    c.notify("initialized", json!({}));
    assert_open(&mut c, t).await;
}

// ---------------------------------------------------------------------------------
// initialize / initialized rules (§3, §3.1)
// ---------------------------------------------------------------------------------

async fn second_initialize_is_refused_and_the_connection_stays_usable(t: Transport) {
    let mut c = Conn::ready(t).await;
    let first = c.session_id.clone();
    let again = c.err("initialize", json!({"clientName": "test"})).await;
    assert_eq!(again, (-32600, "initialize may only be sent once per connection".into()), "{t:?}");
    // Also when trying to resume (even the connection's own session).
    let resume = c.err("initialize", json!({"clientName": "test", "resumeSessionId": first})).await;
    assert_eq!(resume, (-32600, "initialize may only be sent once per connection".into()), "{t:?}");
    assert_open(&mut c, t).await;
}

async fn second_initialize_before_initialized_is_refused_too(t: Transport) {
    let mut c = Conn::open(t).await;
    c.ok("initialize", json!({"clientName": "test"})).await;
    let again = c.err("initialize", json!({"clientName": "test"})).await;
    assert_eq!(again, (-32600, "initialize may only be sent once per connection".into()), "{t:?}");
    // The first initialize still counts: initialized completes the handshake.
    c.notify("initialized", json!({}));
    assert_open(&mut c, t).await;
}

async fn failed_initialize_can_be_retried_on_the_same_connection(t: Transport) {
    let mut c = Conn::open(t).await;
    // Bad params.
    assert_eq!(c.err("initialize", json!({})).await, (-32602, "missing field `clientName`".into()), "{t:?}");
    assert_eq!(c.err("initialize", json!({"name": "x"})).await, (-32602, "missing field `clientName`".into()));
    assert_eq!(c.err("initialize", json!(null)).await.0, -32602, "{t:?}: null params");
    assert_eq!(c.err("initialize", json!({"clientName": 5})).await.0, -32602, "{t:?}: non-string clientName");
    assert_gated(&mut c, t, "call initialize").await;
    // Unknown resume ids.
    let e = c.err("initialize", json!({"clientName": "c", "resumeSessionId": "nope"})).await;
    assert_eq!(e, (-32600, "unknown session id nope".into()), "{t:?}");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let e = c.err("initialize", json!({"clientName": "c", "resumeSessionId": unknown})).await;
    assert_eq!(e, (-32600, format!("unknown session id {unknown}")), "{t:?}");
    // Still un-initialized (not "send initialized").
    assert_gated(&mut c, t, "call initialize").await;
    // Retry: an empty clientName is fine.
    let r = c.ok("initialize", json!({"clientName": ""})).await;
    assert_uuid_v4(r["sessionId"].as_str().expect("sessionId"));
    c.notify("initialized", json!(null));
    assert_open(&mut c, t).await;
}

async fn initialized_before_initialize_drops_the_connection(t: Transport) {
    let mut c = Conn::open(t).await;
    c.notify("initialized", json!({}));
    assert_dropped_silently(&mut c, t).await;
    if let Some(server) = &c.server {
        // Only that connection: the server still serves others.
        let mut other = server.client().await;
        assert_open(&mut other, t).await;
    }
}

async fn initialized_after_a_failed_initialize_drops_the_connection(t: Transport) {
    let mut c = Conn::open(t).await;
    let e = c.err("initialize", json!({"clientName": "c", "resumeSessionId": "nope"})).await;
    assert_eq!(e, (-32600, "unknown session id nope".into()), "{t:?}");
    c.notify("initialized", json!({}));
    assert_dropped_silently(&mut c, t).await;

    // Same after a failure in params decoding.
    let mut c = Conn::open(t).await;
    assert_eq!(c.err("initialize", json!({})).await, (-32602, "missing field `clientName`".into()), "{t:?}");
    c.notify("initialized", json!({}));
    assert_dropped_silently(&mut c, t).await;
}

async fn second_initialized_is_ignored(t: Transport) {
    let mut c = Conn::ready(t).await;
    c.notify("initialized", json!({}));
    c.notify("initialized", json!(null));
    assert_open(&mut c, t).await;
    // Nothing was sent in reply to either notification.
    assert!(nothing_pending(&mut c).await, "{t:?}");
}

async fn initialized_params_may_be_empty_null_or_absent(t: Transport) {
    let variants = [
        json!({"method": "initialized", "params": {}}),
        json!({"method": "initialized", "params": null}),
        json!({"method": "initialized"}),
        json!({"method": "initialized", "params": {"anything": [1, 2]}}),
    ];
    for v in variants {
        let mut c = Conn::open(t).await;
        c.ok("initialize", json!({"clientName": "test"})).await;
        c.send(&v);
        assert_eq!(c.ok("environment/status", json!({})).await, json!({"status": "ready"}), "{t:?} after {v}");
        assert_open(&mut c, t).await;
    }
}

async fn initialize_result_has_a_uuid_v4_and_the_environment_info(t: Transport) {
    let mut ids = Vec::new();
    let mut results = Vec::new();
    for name in ["test", "", "another client"] {
        let mut c = Conn::open(t).await;
        let r = c.ok("initialize", json!({"clientName": name})).await;
        let obj = r.as_object().expect("object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["environmentInfo", "sessionId"], "{t:?}: {r}");
        let id = r["sessionId"].as_str().expect("sessionId").to_owned();
        assert_uuid_v4(&id);
        c.notify("initialized", json!({}));
        let info = c.ok("environment/info", json!({})).await;
        assert_eq!(r["environmentInfo"], info, "{t:?}: environmentInfo must equal environment/info");
        assert_eq!(info, expected_environment_info(&info), "{t:?}");
        ids.push(id);
        results.push(r);
    }
    // resumeSessionId: null is a fresh session too.
    let mut c = Conn::open(t).await;
    let r = c.ok("initialize", json!({"clientName": "n", "resumeSessionId": null})).await;
    let id = r["sessionId"].as_str().expect("sessionId").to_owned();
    assert_uuid_v4(&id);
    ids.push(id);

    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "{t:?}: every new session gets its own id: {ids:?}");
    // Several sessions on one WebSocket server.
    if let Some(server) = &c.server {
        let a = server.client().await.session_id;
        let b = server.client().await.session_id;
        assert_uuid_v4(&a);
        assert_uuid_v4(&b);
        assert_ne!(a, b);
        assert!(!ids.contains(&a) && !ids.contains(&b));
    }
}

// ---------------------------------------------------------------------------------
// Sessions and resume (§3.1, §3.2), WebSocket only: stdio has a single connection.
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn resuming_an_attached_session_is_busy_and_does_not_evict() {
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let id = a.session_id.clone();

    let mut b = server.connect().await;
    let e = b.call("initialize", json!({"clientName": "b", "resumeSessionId": id})).await.unwrap_err();
    assert_eq!(e, (-32010, format!("session {id} is already attached to another connection")));
    // The failed resume left b un-initialized.
    assert_gated(&mut b, Transport::Ws, "call initialize").await;
    // Still refused on a second try, the old connection keeps working.
    let e = b.call("initialize", json!({"clientName": "b", "resumeSessionId": id})).await.unwrap_err();
    assert_eq!(e.0, -32010);
    assert_open(&mut a, Transport::Ws).await;
    // a's process table is still a's: a process started there is visible to a.
    a.start("mine", &["sleep", "1000"], json!({})).await.unwrap();
    assert_eq!(a.ok("process/terminate", json!({"processId": "mine"})).await, json!({"running": true}));

    // b can still open its own, new session.
    let r = b.ok("initialize", json!({"clientName": "b"})).await;
    let b_id = r["sessionId"].as_str().unwrap();
    assert_uuid_v4(b_id);
    assert_ne!(b_id, id);
    b.notify("initialized", json!({}));
    assert_open(&mut b, Transport::Ws).await;
    assert_open(&mut a, Transport::Ws).await;
}

#[tokio::test]
async fn a_closed_connections_session_can_be_resumed_with_the_same_id() {
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let id = a.session_id.clone();
    let info = a.ok("environment/info", json!({})).await;
    a.send_ws(Message::Close(None));
    a.closed().await;

    let mut b = server.connect().await;
    // The server may need a moment to notice the close: retry while it still says busy.
    // Each failed attempt leaves b un-initialized, so retrying on b is allowed.
    let r = within("the session to detach", async {
        loop {
            match b.call("initialize", json!({"clientName": "b", "resumeSessionId": id})).await {
                Err((-32010, _)) => tokio::task::yield_now().await,
                other => return other,
            }
        }
    })
    .await
    .expect("resume");
    assert_eq!(r, json!({"sessionId": id, "environmentInfo": info}));
    b.notify("initialized", json!({}));
    assert_open(&mut b, Transport::Ws).await;

    // Now b holds it: another resume is busy, and an unknown id is still unknown.
    let mut c = server.connect().await;
    let e = c.call("initialize", json!({"clientName": "c", "resumeSessionId": id})).await.unwrap_err();
    assert_eq!(e, (-32010, format!("session {id} is already attached to another connection")));
    let e = c.call("initialize", json!({"clientName": "c", "resumeSessionId": "nope"})).await.unwrap_err();
    assert_eq!(e, (-32600, "unknown session id nope".into()));
}

// ---------------------------------------------------------------------------------
// Environment methods (§4)
// ---------------------------------------------------------------------------------

async fn environment_info_is_exact(t: Transport) {
    let mut c = Conn::ready(t).await;
    let info = c.ok("environment/info", json!({})).await;
    assert_eq!(info, expected_environment_info(&info), "{t:?}");
    // Types, independent of this machine.
    assert!(info["capabilities"].as_object().unwrap().values().all(Value::is_boolean), "{t:?}");
    assert!(info["shell"]["path"].as_str().unwrap().starts_with('/'), "{t:?}");
    for key in ["cwd", "userHomeDir", "tempDir"] {
        assert!(info[key].as_str().unwrap().starts_with("file:///"), "{t:?} {key}: {info}");
    }
    // Stable across calls.
    assert_eq!(c.ok("environment/info", json!({})).await, info, "{t:?}");
}

async fn environment_info_accepts_absent_null_and_empty_params(t: Transport) {
    let mut c = Conn::ready(t).await;
    let info = c.ok("environment/info", json!({})).await;
    assert_eq!(c.ok("environment/info", json!(null)).await, info, "{t:?}: null params");
    c.send(&json!({"id": "no-params", "method": "environment/info"}));
    let resp = c.take("response no-params", |v| v["id"] == "no-params").await;
    assert_eq!(resp, json!({"id": "no-params", "result": info}), "{t:?}: absent params");
    c.send(&json!({"id": "s", "method": "environment/status"}));
    let resp = c.take("response s", |v| v["id"] == "s").await;
    assert_eq!(resp, json!({"id": "s", "result": {"status": "ready"}}), "{t:?}: absent params");
    assert_eq!(c.ok("environment/status", json!(null)).await, json!({"status": "ready"}), "{t:?}");
}

async fn environment_info_rejects_other_params(t: Transport) {
    let mut c = Conn::ready(t).await;
    for method in ["environment/info", "environment/status"] {
        let e = c.err(method, json!({"a": 1})).await;
        assert_eq!(e, (-32602, "invalid type: map, expected unit".into()), "{t:?} {method}");
        let e = c.err(method, json!([])).await;
        assert_eq!(e, (-32602, "invalid type: sequence, expected unit".into()), "{t:?} {method}");
    }
}

async fn environment_status_is_ready(t: Transport) {
    let mut c = Conn::ready(t).await;
    let id = c.send_request("environment/status", json!({}));
    let resp = c.response(id).await;
    // Exact wire object: no "jsonrpc", no "error".
    assert_eq!(resp, json!({"id": id, "result": {"status": "ready"}}), "{t:?}");
}

async fn environment_config_read_is_exact(t: Transport) {
    let mut c = Conn::ready(t).await;
    let home = home_dir();
    let codex_home =
        std::env::var_os("CODEX_HOME").map(std::path::PathBuf::from).unwrap_or_else(|| home.join(".codex"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let expected = json!({
        "userHomeDir": file_uri(&home),
        "codexHomeDir": file_uri(&codex_home),
        "hostname": hostname.trim(),
        "config": {"layers": [], "cloudInsertionIndex": 0},
        "requirements": {"layers": [], "cloudInsertionIndex": 0},
    });
    let params = [
        json!({"cwd": "file:///tmp", "configPaths": [], "requirementsPaths": []}),
        json!({"cwd": "file:///tmp/demo/proj", "configPaths": [["model"], ["a", "b"]], "requirementsPaths": [["x"]]}),
        json!({"cwd": "file:///", "configPaths": [["model"]], "requirementsPaths": [], "unknownMember": 1}),
    ];
    for p in params {
        assert_eq!(c.ok("environmentConfig/read", p.clone()).await, expected, "{t:?} {p}");
    }
}

async fn environment_config_read_validates_params(t: Transport) {
    let mut c = Conn::ready(t).await;
    let cases = [
        (json!({}), "missing field `cwd`"),
        (json!({"cwd": "file:///tmp"}), "missing field `configPaths`"),
        (json!({"cwd": "file:///tmp", "requirementsPaths": []}), "missing field `configPaths`"),
        (json!({"cwd": "file:///tmp", "configPaths": []}), "missing field `requirementsPaths`"),
        (
            json!({"cwd": "file:///tmp", "configPaths": [[]], "requirementsPaths": []}),
            "TOML paths must contain at least one key segment",
        ),
        (
            json!({"cwd": "file:///tmp", "configPaths": [["model"], []], "requirementsPaths": []}),
            "TOML paths must contain at least one key segment",
        ),
        (
            json!({"cwd": "file:///tmp", "configPaths": [], "requirementsPaths": [[]]}),
            "TOML paths must contain at least one key segment",
        ),
        (
            json!({"cwd": "/tmp", "configPaths": [], "requirementsPaths": []}),
            "invalid URI: relative URL without a base",
        ),
        (
            json!({"cwd": "file:///tmp", "configPaths": "model", "requirementsPaths": []}),
            "invalid type: string \"model\", expected a sequence",
        ),
    ];
    for (params, message) in cases {
        assert_eq!(c.err("environmentConfig/read", params.clone()).await, (-32602, message.into()), "{t:?} {params}");
    }
    let e = c.err("environmentConfig/read", json!(null)).await;
    assert_eq!(e.0, -32602, "{t:?}: null params: {e:?}");
    // Errors leave the connection usable.
    assert_open(&mut c, t).await;
}

// ---------------------------------------------------------------------------------
// Concurrency (§1.5; execd serves every connection concurrently)
// ---------------------------------------------------------------------------------

async fn requests_on_one_connection_are_served_concurrently(t: Transport) {
    let mut c = Conn::ready(t).await;
    let r = c.start("p", &["sleep", "1000"], json!({})).await.expect("start");
    assert_eq!(r, json!({"processId": "p", "sandboxType": "none"}));
    let read = c.send_request("process/read", json!({"processId": "p", "waitMs": 20000}));
    let status = c.send_request("environment/status", json!({}));
    let first = c
        .take("a response", |v| v.get("method").is_none() && (v["id"] == json!(read) || v["id"] == json!(status)))
        .await;
    assert_eq!(
        first,
        json!({"id": status, "result": {"status": "ready"}}),
        "{t:?}: the long-poll must not block a later request"
    );
    // The long-poll is still pending; terminating the process completes it.
    assert_eq!(c.ok("process/terminate", json!({"processId": "p"})).await, json!({"running": true}), "{t:?}");
    let resp = into_result(c.response(read).await).expect("process/read");
    assert_eq!(resp["exited"], json!(true), "{t:?}: {resp}");
    assert_eq!(resp["chunks"], json!([]), "{t:?}: {resp}");
}

/// Round-trips an `environment/status` and returns whether its response was the
/// next message received (nothing else was pending).
async fn nothing_pending(c: &mut Client) -> bool {
    let id = c.send_request("environment/status", json!({}));
    c.recv().await == Some(json!({"id": id, "result": {"status": "ready"}}))
}
