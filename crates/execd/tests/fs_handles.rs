//! Spec section 7 (file handles: `fs/open`, `fs/readBlock`, `fs/writeBlock`,
//! `fs/close`) and section 8 (`fs/watchMissing` + `fs/missingChanged`), every
//! rule and error row as execd implements it, plus what is per connection
//! (3.2), the error codes (2.1) and the base64 encoding (12).
//!
//! Nothing sleeps: notifications are awaited with `take`, and the absence of a
//! notification is shown by a later watch that fires (a fence) followed by a
//! request whose response arrives with no `fs/missingChanged` before it.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A `file://` URI for an absolute path (test paths need no escaping).
fn uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A per-test, per-transport directory.
fn dir_for(name: &str, t: Transport) -> PathBuf {
    temp_dir(&format!("fsh-{name}-{t:?}"))
}

/// `fs/open` with an explicit mode.
async fn open(c: &mut Client, id: &str, path: &Path, mode: &str) -> Result<Value, RpcError> {
    c.call("fs/open", json!({"handleId": id, "path": uri(path), "mode": mode})).await
}

/// `fs/open` that must succeed and echo the id.
async fn open_ok(c: &mut Client, id: &str, path: &Path, mode: &str) {
    assert_eq!(open(c, id, path, mode).await, Ok(json!({"handleId": id})), "open {id} {path:?} {mode}");
}

async fn read_block(c: &mut Client, id: &str, offset: u64, len: u64) -> Result<Value, RpcError> {
    c.call("fs/readBlock", json!({"handleId": id, "offset": offset, "len": len})).await
}

async fn write_block(c: &mut Client, id: &str, offset: u64, data: &[u8]) -> Result<Value, RpcError> {
    c.call("fs/writeBlock", json!({"handleId": id, "offset": offset, "chunk": b64(data)})).await
}

async fn close(c: &mut Client, id: &str) -> Result<Value, RpcError> {
    c.call("fs/close", json!({"handleId": id})).await
}

/// A `fs/readBlock` result.
fn block(data: &[u8], eof: bool) -> Result<Value, RpcError> {
    Ok(json!({"chunk": b64(data), "eof": eof}))
}

/// An error result.
fn error(code: i64, message: &str) -> Result<Value, RpcError> {
    Err((code, message.to_owned()))
}

fn unknown_handle(id: &str) -> Result<Value, RpcError> {
    error(-32004, &format!("unknown file handle `{id}`"))
}

const EBADF: &str = "Bad file descriptor (os error 9)";
const ENOENT: &str = "No such file or directory (os error 2)";
const READ_LEN: &str = "file read block length must be between 1 and 1048576";
const WRITE_LEN: &str = "file write block length must be between 1 and 1048576";
const TOO_MANY: &str = "at most 128 file handles may be open per connection";
const ID_TOO_LONG: &str = "file handle ID must not exceed 32 bytes";
const MIB: usize = 1024 * 1024;

/// Deterministic, random-looking bytes (xorshift64*).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// `fs/watchMissing`; returns the result.
async fn watch(c: &mut Client, watch_id: u64, missing: &[&Path]) -> Value {
    let missing: Vec<String> = missing.iter().map(|p| uri(p)).collect();
    c.ok("fs/watchMissing", json!({"watchId": watch_id, "missing": missing})).await
}

/// The complete notification for `watch_id`.
fn changed(watch_id: u64) -> Value {
    json!({"method": "fs/missingChanged", "params": {"watchId": watch_id}})
}

/// The first `fs/missingChanged` not yet consumed, whichever watch it is for.
async fn next_changed(c: &mut Client) -> Value {
    c.take("fs/missingChanged", |v| v["method"] == "fs/missingChanged").await
}

/// Sends a request and reads every message up to its response: none of them
/// (nor anything still buffered) may be a `fs/missingChanged`.
async fn assert_no_changed(c: &mut Client, what: &str) {
    let id = c.send_request("fs/close", json!({"handleId": "probe"}));
    loop {
        let v = c.recv().await.unwrap_or_else(|| panic!("{what}: connection closed"));
        assert_ne!(v["method"], "fs/missingChanged", "{what}: unexpected notification {v}");
        if v["id"] == json!(id) {
            assert_eq!(v, json!({"id": id, "result": {}}), "{what}");
            return;
        }
    }
}

/// A fence: arms watch `watch_id` (replacing the active one) on a fresh path
/// in `dir`, creates it, and requires its notification to be the first one
/// pending, then that nothing else follows.
async fn fence(c: &mut Client, dir: &Path, watch_id: u64, what: &str) {
    let path = dir.join(format!("fence-{watch_id}"));
    assert_eq!(watch(c, watch_id, &[&path]).await, json!({"watching": true}), "{what}: fence arms");
    std::fs::write(&path, "f").unwrap();
    assert_eq!(next_changed(c).await, changed(watch_id), "{what}: the fence is the first notification");
    assert_no_changed(c, what).await;
}

/// Ends the client's WebSocket connection with a Close frame and waits until it is gone.
async fn detach(c: &mut Client) {
    c.send_ws(Message::Close(None));
    c.closed().await;
}

/// A new connection resuming `session_id`, retrying while the server still sees
/// the old connection attached (-32010).
async fn resume_retrying(server: &Server, session_id: &str) -> Client {
    within("resume of a detached session", async {
        let mut c = server.connect().await;
        loop {
            match c.resume(session_id).await {
                Ok(_) => return c,
                Err((-32010, _)) => retry_pause().await,
                Err(e) => panic!("resume {session_id} failed: {e:?}"),
            }
        }
    })
    .await
}

/// Number of open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc/<pid>/fd").count()
}

// ---------------------------------------------------------------------------
// Gate (3): fs/open and fs/watchMissing belong to the filesystem family
// ---------------------------------------------------------------------------

on_both_transports!(handle_and_watch_methods_are_gated);

async fn handle_and_watch_methods_are_gated(t: Transport) {
    let dir = dir_for("gate", t);
    let file = dir.join("f");
    std::fs::write(&file, "x").unwrap();
    let mut c = Conn::open(t).await;
    let open_params = json!({"handleId": "h", "path": uri(&file)});
    let watch_params = json!({"watchId": 1, "missing": [uri(&dir.join("m"))]});
    let before = "client must call initialize before using filesystem methods";
    assert_eq!(c.err("fs/open", open_params.clone()).await, (-32600, before.into()), "{t:?}");
    assert_eq!(c.err("fs/watchMissing", watch_params.clone()).await, (-32600, before.into()), "{t:?}");
    c.ok("initialize", json!({"clientName": "test"})).await;
    let between = "client must send initialized before using filesystem methods";
    assert_eq!(c.err("fs/open", open_params.clone()).await, (-32600, between.into()), "{t:?}");
    assert_eq!(c.err("fs/readBlock", json!({"handleId": "h", "offset": 0, "len": 1})).await, (-32600, between.into()));
    assert_eq!(c.err("fs/watchMissing", watch_params.clone()).await, (-32600, between.into()), "{t:?}");
    c.notify("initialized", json!({}));
    // The gated open did not register the handle; the gated watch did not use up id 1.
    assert_eq!(c.ok("fs/open", open_params).await, json!({"handleId": "h"}), "{t:?}");
    assert_eq!(c.ok("fs/watchMissing", watch_params).await, json!({"watching": true}), "{t:?}");
}

// ---------------------------------------------------------------------------
// 7.1 fs/open
// ---------------------------------------------------------------------------

on_both_transports!(open_modes_and_path_errors);

async fn open_modes_and_path_errors(t: Transport) {
    let dir = dir_for("open-modes", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let file = dir.join("a.txt");
    std::fs::write(&file, "hello").unwrap();

    // Default mode is read; the result echoes the id.
    let r = c.ok("fs/open", json!({"handleId": "h1", "path": uri(&file)})).await;
    assert_eq!(r, json!({"handleId": "h1"}));
    assert_eq!(read_block(c, "h1", 0, 16).await, block(b"hello", true));
    // A read handle is read-only.
    assert_eq!(write_block(c, "h1", 0, b"x").await, error(-32603, EBADF));
    // Explicit read mode, and an optional null sandbox.
    let r = c.ok("fs/open", json!({"handleId": "h2", "path": uri(&file), "mode": "read", "sandbox": null})).await;
    assert_eq!(r, json!({"handleId": "h2"}));
    assert_eq!(read_block(c, "h2", 1, 2).await, block(b"el", false));

    // read: a directory and a FIFO are not files (the FIFO open does not block).
    let sub = dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let not_file = |p: &Path| error(-32600, &format!("path `{}` is not a file", p.display()));
    assert_eq!(open(c, "d", &sub, "read").await, not_file(&sub));
    let fifo = dir.join("fifo");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    assert_eq!(open(c, "d", &fifo, "read").await, not_file(&fifo));
    // read: a missing file, a file under a missing directory.
    assert_eq!(open(c, "d", &dir.join("missing"), "read").await, error(-32004, ENOENT));
    assert_eq!(open(c, "d", &dir.join("nodir/x"), "read").await, error(-32004, ENOENT));

    // replace: a directory, a missing parent (nothing gets created).
    assert_eq!(open(c, "d", &sub, "replace").await, error(-32603, "Is a directory (os error 21)"));
    assert_eq!(open(c, "d", &dir.join("nodir/x"), "replace").await, error(-32004, ENOENT));
    assert!(!dir.join("nodir").exists());

    // Bad mode.
    let e = c.err("fs/open", json!({"handleId": "d", "path": uri(&file), "mode": "bogus"})).await;
    assert_eq!(e, (-32602, "unknown variant `bogus`, expected `read` or `replace`".into()));

    // None of the failures took the id.
    open_ok(c, "d", &file, "read").await;
    assert_eq!(read_block(c, "d", 0, 5).await, block(b"hello", false));
}

on_both_transports!(replace_creates_or_truncates_write_only);

async fn replace_creates_or_truncates_write_only(t: Transport) {
    let dir = dir_for("replace", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;

    // Creates a missing file (empty until written).
    let new = dir.join("new.bin");
    open_ok(c, "n", &new, "replace").await;
    assert_eq!(std::fs::read(&new).unwrap(), b"");
    assert_eq!(write_block(c, "n", 0, b"fresh").await, Ok(json!({})));
    assert_eq!(std::fs::read(&new).unwrap(), b"fresh");
    // Write-only.
    assert_eq!(read_block(c, "n", 0, 5).await, error(-32603, EBADF));

    // Truncates an existing file at open time.
    let old = dir.join("old.txt");
    std::fs::write(&old, "old contents that are long").unwrap();
    open_ok(c, "o", &old, "replace").await;
    assert_eq!(std::fs::read(&old).unwrap(), b"", "truncated by the open itself");
    assert_eq!(write_block(c, "o", 0, b"new").await, Ok(json!({})));
    assert_eq!(close(c, "o").await, Ok(json!({})));
    assert_eq!(std::fs::read(&old).unwrap(), b"new");
}

on_both_transports!(handle_id_length_is_counted_in_bytes);

async fn handle_id_length_is_counted_in_bytes(t: Transport) {
    let dir = dir_for("id-length", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let file = dir.join("f");
    std::fs::write(&file, "abc").unwrap();

    let ok_ids = ["".to_owned(), "x".repeat(32), "\u{e9}".repeat(16), "with space/and:colon".to_owned()];
    for id in &ok_ids {
        open_ok(c, id, &file, "read").await;
        assert_eq!(read_block(c, id, 0, 3).await, block(b"abc", false), "handle {id:?}");
    }
    // 33 bytes: ASCII, 17 two-byte chars (34 bytes), 11 three-byte chars (33 bytes).
    for id in ["y".repeat(33), "\u{e9}".repeat(17), "\u{20ac}".repeat(11)] {
        assert_eq!(open(c, &id, &file, "read").await, error(-32600, ID_TOO_LONG), "handle {id:?}");
        // A too-long id is rejected before the file is touched: no replace, no create.
        assert_eq!(open(c, &id, &file, "replace").await, error(-32600, ID_TOO_LONG), "handle {id:?}");
        let created = dir.join("created");
        assert_eq!(open(c, &id, &created, "replace").await, error(-32600, ID_TOO_LONG));
        assert!(!created.exists(), "rejected replace open created the file");
        // ...and is never registered.
        assert_eq!(read_block(c, &id, 0, 1).await, unknown_handle(&id));
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"abc", "rejected replace opens did not truncate");
    // The empty id is a handle like any other.
    assert_eq!(close(c, "").await, Ok(json!({})));
    assert_eq!(read_block(c, "", 0, 1).await, unknown_handle(""));
}

on_both_transports!(admission_order_and_capacity);

async fn admission_order_and_capacity(t: Transport) {
    let dir = dir_for("admission", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let file = dir.join("f");
    std::fs::write(&file, "0123456789").unwrap();
    let keep = dir.join("keep");
    std::fs::write(&keep, "keep me").unwrap();

    // Duplicate id: a replace open of another file must not truncate it.
    open_ok(c, "h1", &file, "read").await;
    let dup = error(-32600, "file handle `h1` already exists");
    assert_eq!(open(c, "h1", &keep, "replace").await, dup);
    assert_eq!(open(c, "h1", &file, "read").await, dup);
    let fresh = dir.join("fresh");
    assert_eq!(open(c, "h1", &fresh, "replace").await, dup);
    assert!(!fresh.exists(), "rejected replace open created the file");
    assert_eq!(std::fs::read(&keep).unwrap(), b"keep me", "rejected replace open truncated the file");
    // A duplicate check is done before the path is looked at at all.
    assert_eq!(open(c, "h1", &dir.join("missing"), "read").await, dup);
    // The original handle is untouched.
    assert_eq!(read_block(c, "h1", 2, 3).await, block(b"234", false));

    // Fill the table: 128 handles.
    for i in 2..=128 {
        open_ok(c, &format!("h{i}"), &file, "read").await;
    }
    // Order: length, then duplicate, then capacity.
    assert_eq!(open(c, &"z".repeat(33), &file, "read").await, error(-32600, ID_TOO_LONG));
    assert_eq!(open(c, "h1", &file, "read").await, dup);
    assert_eq!(open(c, "h128", &keep, "replace").await, error(-32600, "file handle `h128` already exists"));
    assert_eq!(open(c, "h129", &file, "read").await, error(-32600, TOO_MANY));
    assert_eq!(open(c, "h129", &keep, "replace").await, error(-32600, TOO_MANY));
    assert_eq!(open(c, "h129", &fresh, "replace").await, error(-32600, TOO_MANY));
    // Capacity is checked before the path: a missing file still reports capacity.
    assert_eq!(open(c, "h129", &dir.join("missing"), "read").await, error(-32600, TOO_MANY));
    assert!(!fresh.exists(), "rejected replace open created the file");
    assert_eq!(std::fs::read(&keep).unwrap(), b"keep me", "rejected replace open truncated the file");
    // Every admitted handle works.
    assert_eq!(read_block(c, "h128", 9, 5).await, block(b"9", true));
    assert_eq!(read_block(c, "h129", 0, 1).await, unknown_handle("h129"));

    // Closing one frees exactly one slot.
    assert_eq!(close(c, "h7").await, Ok(json!({})));
    open_ok(c, "h129", &fresh, "replace").await;
    assert!(fresh.exists(), "the admitted replace open created the file");
    assert_eq!(open(c, "h130", &file, "read").await, error(-32600, TOO_MANY));
    // Closing an unknown handle frees nothing.
    assert_eq!(close(c, "h7").await, Ok(json!({})));
    assert_eq!(open(c, "h130", &file, "read").await, error(-32600, TOO_MANY));
    // The freed id can be reused once there is room again.
    assert_eq!(close(c, "h1").await, Ok(json!({})));
    open_ok(c, "h7", &file, "read").await;
    assert_eq!(read_block(c, "h7", 0, 2).await, block(b"01", false));
}

// ---------------------------------------------------------------------------
// 7.2 fs/readBlock
// ---------------------------------------------------------------------------

on_both_transports!(read_block_rows);

async fn read_block_rows(t: Transport) {
    let dir = dir_for("read-block", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let file = dir.join("a.txt");
    std::fs::write(&file, "hello").unwrap();
    open_ok(c, "h1", &file, "read").await;

    // The spec's example, with the exact padded base64.
    assert_eq!(read_block(c, "h1", 0, 3).await, Ok(json!({"chunk": "aGVs", "eof": false})));
    assert_eq!(read_block(c, "h1", 3, 3).await, Ok(json!({"chunk": "bG8=", "eof": true})));
    // Reading exactly to the end is not eof; the next read is empty and eof.
    assert_eq!(read_block(c, "h1", 0, 5).await, block(b"hello", false));
    assert_eq!(read_block(c, "h1", 5, 1).await, Ok(json!({"chunk": "", "eof": true})));
    assert_eq!(read_block(c, "h1", 1000, 10).await, Ok(json!({"chunk": "", "eof": true})));
    // Absolute offsets, any order (backwards too).
    assert_eq!(read_block(c, "h1", 4, 1).await, block(b"o", false));
    assert_eq!(read_block(c, "h1", 2, 2).await, block(b"ll", false));
    assert_eq!(read_block(c, "h1", 0, 1).await, block(b"h", false));
    assert_eq!(read_block(c, "h1", 1, 4).await, block(b"ello", false));
    assert_eq!(read_block(c, "h1", 1, 5).await, block(b"ello", true));
    // len bounds.
    assert_eq!(read_block(c, "h1", 0, 0).await, error(-32600, READ_LEN));
    assert_eq!(read_block(c, "h1", 0, MIB as u64 + 1).await, error(-32600, READ_LEN));
    assert_eq!(read_block(c, "h1", 0, MIB as u64).await, block(b"hello", true));
    // Unknown handle.
    assert_eq!(read_block(c, "h", 0, 1).await, unknown_handle("h"));
    // A replace handle cannot be read.
    open_ok(c, "w", &dir.join("w.bin"), "replace").await;
    assert_eq!(write_block(c, "w", 0, b"data").await, Ok(json!({})));
    assert_eq!(read_block(c, "w", 0, 4).await, error(-32603, EBADF));

    // A full 1 MiB block.
    let big = dir.join("big.bin");
    let data = pattern(MIB + 1);
    std::fs::write(&big, &data).unwrap();
    open_ok(c, "big", &big, "read").await;
    assert_eq!(read_block(c, "big", 0, MIB as u64).await, block(&data[..MIB], false));
    assert_eq!(read_block(c, "big", MIB as u64, MIB as u64).await, block(&data[MIB..], true));
    assert_eq!(read_block(c, "big", 1, MIB as u64).await, block(&data[1..], false));
}

// ---------------------------------------------------------------------------
// 7.3 fs/writeBlock
// ---------------------------------------------------------------------------

on_both_transports!(write_block_rows);

async fn write_block_rows(t: Transport) {
    let dir = dir_for("write-block", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;

    // The spec's example: a gap before the offset reads back as zero bytes.
    let wb = dir.join("wb.bin");
    open_ok(c, "w", &wb, "replace").await;
    let r = c.ok("fs/writeBlock", json!({"handleId": "w", "offset": 5, "chunk": "d29ybGQ="})).await;
    assert_eq!(r, json!({}));
    assert_eq!(std::fs::read(&wb).unwrap(), b"\0\0\0\0\0world");
    // Overwrite in place, past the end, and with a second gap.
    assert_eq!(write_block(c, "w", 1, b"ab").await, Ok(json!({})));
    assert_eq!(write_block(c, "w", 13, b"!").await, Ok(json!({})));
    let expected = b"\0ab\0\0world\0\0\0!".to_vec();
    assert_eq!(std::fs::read(&wb).unwrap(), expected);

    // Errors, none of which changes the file.
    let e = c.err("fs/writeBlock", json!({"handleId": "w", "offset": 0, "chunk": "d29ybGQ"})).await;
    assert_eq!(e, (-32602, "Invalid padding".into()));
    let e = c.err("fs/writeBlock", json!({"handleId": "w", "offset": 0, "chunk": "d29y bGQ="})).await;
    assert_eq!(e, (-32602, "Invalid symbol 32, offset 4.".into()), "whitespace is rejected");
    assert_eq!(write_block(c, "w", 0, b"").await, error(-32600, WRITE_LEN));
    assert_eq!(write_block(c, "w", 0, &vec![b'x'; MIB + 1]).await, error(-32600, WRITE_LEN));
    let range = "file write range exceeds the signed 64-bit file offset limit";
    assert_eq!(write_block(c, "w", i64::MAX as u64, b"world").await, error(-32600, range));
    assert_eq!(write_block(c, "w", i64::MAX as u64 - 4, b"world").await, error(-32600, range));
    assert_eq!(write_block(c, "w", u64::MAX, b"w").await, error(-32600, range));
    assert_eq!(write_block(c, "nope", 0, b"w").await, unknown_handle("nope"));
    assert_eq!(std::fs::read(&wb).unwrap(), expected, "rejected writes changed the file");

    // A read handle cannot be written.
    let ro = dir.join("ro.txt");
    std::fs::write(&ro, "read only").unwrap();
    open_ok(c, "r", &ro, "read").await;
    assert_eq!(write_block(c, "r", 0, b"X").await, error(-32603, EBADF));
    assert_eq!(std::fs::read(&ro).unwrap(), b"read only");

    // A full 1 MiB block is accepted and lands exactly.
    let big = dir.join("big.bin");
    let data = pattern(MIB);
    open_ok(c, "big", &big, "replace").await;
    assert_eq!(write_block(c, "big", 3, &data).await, Ok(json!({})));
    assert_eq!(close(c, "big").await, Ok(json!({})));
    let on_disk = std::fs::read(&big).unwrap();
    assert_eq!(on_disk.len(), MIB + 3);
    assert!(on_disk[..3] == [0, 0, 0] && on_disk[3..] == data[..], "1 MiB block at offset 3");
}

// ---------------------------------------------------------------------------
// 7.4 fs/close
// ---------------------------------------------------------------------------

on_both_transports!(close_rows);

async fn close_rows(t: Transport) {
    let dir = dir_for("close", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let file = dir.join("a.txt");
    std::fs::write(&file, "hello").unwrap();

    assert_eq!(close(c, "never-opened").await, Ok(json!({})));
    open_ok(c, "h1", &file, "read").await;
    assert_eq!(close(c, "h1").await, Ok(json!({})));
    assert_eq!(close(c, "h1").await, Ok(json!({})), "closing again is fine");
    assert_eq!(read_block(c, "h1", 0, 1).await, unknown_handle("h1"));

    open_ok(c, "w", &dir.join("w.bin"), "replace").await;
    assert_eq!(close(c, "w").await, Ok(json!({})));
    assert_eq!(write_block(c, "w", 0, b"x").await, unknown_handle("w"));

    // The id is free again, and may now name a different file and mode.
    open_ok(c, "h1", &dir.join("w.bin"), "replace").await;
    assert_eq!(write_block(c, "h1", 0, b"again").await, Ok(json!({})));
    assert_eq!(close(c, "h1").await, Ok(json!({})));
    assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), b"again");
}

// ---------------------------------------------------------------------------
// 7: ordering and bulk transfer
// ---------------------------------------------------------------------------

on_both_transports!(pipelined_handle_requests_take_effect_in_order);

async fn pipelined_handle_requests_take_effect_in_order(t: Transport) {
    let dir = dir_for("pipelined", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let path = dir.join("p.bin");
    let p = uri(&path);
    let data = b"pipelined bytes".to_vec();

    let ids = [
        c.send_request("fs/open", json!({"handleId": "w", "path": p, "mode": "replace"})),
        c.send_request("fs/writeBlock", json!({"handleId": "w", "offset": 0, "chunk": b64(&data)})),
        c.send_request("fs/close", json!({"handleId": "w"})),
        c.send_request("fs/open", json!({"handleId": "r", "path": p, "mode": "read"})),
        c.send_request("fs/readBlock", json!({"handleId": "r", "offset": 0, "len": 100})),
        c.send_request("fs/close", json!({"handleId": "r"})),
        c.send_request("fs/readBlock", json!({"handleId": "r", "offset": 0, "len": 100})),
    ];
    let expected = [
        json!({"result": {"handleId": "w"}}),
        json!({"result": {}}),
        json!({"result": {}}),
        json!({"result": {"handleId": "r"}}),
        json!({"result": {"chunk": b64(&data), "eof": true}}),
        json!({"result": {}}),
        json!({"error": {"code": -32004, "message": "unknown file handle `r`"}}),
    ];
    for (id, mut want) in ids.into_iter().zip(expected) {
        want["id"] = json!(id);
        assert_eq!(c.response(id).await, want, "{t:?}: response {id}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), data);
}

on_both_transports!(five_mib_round_trip_in_one_mib_blocks);

async fn five_mib_round_trip_in_one_mib_blocks(t: Transport) {
    let dir = dir_for("round-trip", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let path = dir.join("big.bin");
    let data = pattern(5 * MIB + 12345);

    open_ok(c, "w", &path, "replace").await;
    for (i, piece) in data.chunks(MIB).enumerate() {
        assert_eq!(write_block(c, "w", (i * MIB) as u64, piece).await, Ok(json!({})), "block {i}");
    }
    assert_eq!(close(c, "w").await, Ok(json!({})));
    assert!(std::fs::read(&path).unwrap() == data, "file on disk differs from what was written");

    open_ok(c, "r", &path, "read").await;
    let mut back = Vec::new();
    loop {
        let r = read_block(c, "r", back.len() as u64, MIB as u64).await.expect("readBlock");
        let chunk = unb64(r["chunk"].as_str().expect("chunk"));
        let eof = r["eof"].as_bool().expect("eof");
        assert_eq!(eof, chunk.len() < MIB, "eof iff short read at {}", back.len());
        back.extend_from_slice(&chunk);
        if eof {
            break;
        }
    }
    assert_eq!(back.len(), data.len());
    assert!(back == data, "read back differs from what was written");
}

// ---------------------------------------------------------------------------
// 7 / 3.2: handles are per connection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn handles_are_per_connection() {
    let dir = temp_dir("fsh-per-connection");
    let (a_file, b_file) = (dir.join("a.txt"), dir.join("b.txt"));
    std::fs::write(&a_file, "from a").unwrap();
    std::fs::write(&b_file, "from b").unwrap();
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let mut b = server.client().await;
    assert_ne!(a.session_id, b.session_id);

    open_ok(&mut a, "h", &a_file, "read").await;
    open_ok(&mut a, "only-a", &a_file, "read").await;
    // The same id on another connection is not a duplicate.
    open_ok(&mut b, "h", &b_file, "read").await;
    assert_eq!(read_block(&mut a, "h", 0, 10).await, block(b"from a", true));
    assert_eq!(read_block(&mut b, "h", 0, 10).await, block(b"from b", true));
    assert_eq!(read_block(&mut b, "only-a", 0, 1).await, unknown_handle("only-a"));
    // Closing on one connection leaves the other's handle alone.
    assert_eq!(close(&mut b, "h").await, Ok(json!({})));
    assert_eq!(close(&mut b, "only-a").await, Ok(json!({})));
    assert_eq!(read_block(&mut a, "h", 5, 1).await, block(b"a", false));
    assert_eq!(read_block(&mut a, "only-a", 0, 4).await, block(b"from", false));

    // Capacity is per connection too: b fills its own 128 while a holds 2.
    for i in 0..128 {
        open_ok(&mut b, &format!("b{i}"), &b_file, "read").await;
    }
    assert_eq!(open(&mut b, "b128", &b_file, "read").await, error(-32600, TOO_MANY));
    open_ok(&mut a, "a3", &a_file, "read").await;
}

#[tokio::test]
async fn resumed_session_does_not_see_old_handles() {
    let dir = temp_dir("fsh-resume");
    let file = dir.join("a.txt");
    std::fs::write(&file, "hello").unwrap();
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    open_ok(&mut a, "h", &file, "read").await;
    assert_eq!(read_block(&mut a, "h", 0, 5).await, block(b"hello", false));
    detach(&mut a).await;

    let mut b = resume_retrying(&server, &sid).await;
    assert_eq!(b.session_id, sid);
    assert_eq!(read_block(&mut b, "h", 0, 5).await, unknown_handle("h"));
    assert_eq!(write_block(&mut b, "h", 0, b"x").await, unknown_handle("h"));
    // The id is free on the new connection.
    open_ok(&mut b, "h", &file, "read").await;
    assert_eq!(read_block(&mut b, "h", 1, 5).await, block(b"ello", true));
}

#[tokio::test]
async fn connection_end_releases_its_handles() {
    let dir = temp_dir("fsh-release");
    let file = dir.join("a.txt");
    std::fs::write(&file, "x").unwrap();
    let server = Server::start(&[]);
    let pid = server.pid();

    // Warm up on another connection (which stays open), then measure.
    let mut warm = server.client().await;
    open_ok(&mut warm, "w", &file, "read").await;
    assert_eq!(close(&mut warm, "w").await, Ok(json!({})));
    let baseline = fd_count(pid);

    let mut c = server.client().await;
    for i in 0..100 {
        let path = if i % 2 == 0 { file.clone() } else { dir.join(format!("out-{i}")) };
        open_ok(&mut c, &format!("h{i}"), &path, if i % 2 == 0 { "read" } else { "replace" }).await;
    }
    let with_handles = fd_count(pid);
    assert!(with_handles >= baseline + 100, "100 open handles: {with_handles} fds, baseline {baseline}");
    detach(&mut c).await;
    eventually("the server to close the handles of the ended connection", || fd_count(pid) <= baseline).await;
    assert_eq!(fd_count(pid), baseline);
    // The warm connection is unaffected.
    assert_eq!(close(&mut warm, "w").await, Ok(json!({})));
}

// ---------------------------------------------------------------------------
// 8 fs/watchMissing + fs/missingChanged
// ---------------------------------------------------------------------------

on_both_transports!(watch_fires_once_for_the_first_created_path);

async fn watch_fires_once_for_the_first_created_path(t: Transport) {
    let dir = dir_for("watch-once", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let (x, y) = (dir.join("x"), dir.join("y"));

    // 0 is a valid first id (nothing seen yet).
    let r = c.ok("fs/watchMissing", json!({"watchId": 0, "missing": [uri(&x), uri(&y)]})).await;
    assert_eq!(r, json!({"watching": true}));
    std::fs::write(&x, "x").unwrap();
    assert_eq!(next_changed(c).await, changed(0));
    // Done: creating the other listed path sends nothing.
    std::fs::write(&y, "y").unwrap();
    fence(c, &dir, 1, "after the watch fired").await;

    // The largest id works and becomes the largest seen.
    let m = dir.join("m");
    assert_eq!(watch(c, u64::MAX, &[&m]).await, json!({"watching": true}));
    std::fs::create_dir(&m).unwrap();
    assert_eq!(next_changed(c).await, changed(u64::MAX));
    assert_eq!(watch(c, u64::MAX, &[&dir.join("n")]).await, json!({"watching": false}));
}

on_both_transports!(watch_fires_for_every_kind_of_creation);

async fn watch_fires_for_every_kind_of_creation(t: Transport) {
    let dir = dir_for("watch-kinds", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;

    // A regular file.
    let file = dir.join("file");
    assert_eq!(watch(c, 1, &[&file]).await, json!({"watching": true}));
    std::fs::write(&file, "x").unwrap();
    assert_eq!(next_changed(c).await, changed(1), "file");

    // A directory.
    let sub = dir.join("sub");
    assert_eq!(watch(c, 2, &[&sub]).await, json!({"watching": true}));
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(next_changed(c).await, changed(2), "directory");

    // A (dangling) symlink.
    let link = dir.join("link");
    assert_eq!(watch(c, 3, &[&link]).await, json!({"watching": true}));
    std::os::unix::fs::symlink(dir.join("no-such-target"), &link).unwrap();
    assert_eq!(next_changed(c).await, changed(3), "symlink");

    // Rename into place (the temporary file, unrelated, does not fire).
    let renamed = dir.join("renamed");
    let tmp = dir.join("renamed.tmp");
    assert_eq!(watch(c, 4, &[&renamed]).await, json!({"watching": true}));
    std::fs::write(&tmp, "content").unwrap();
    std::fs::rename(&tmp, &renamed).unwrap();
    assert_eq!(next_changed(c).await, changed(4), "rename");

    // A missing ancestor directory of a listed path.
    let deep = dir.join("a/b/c/file");
    assert_eq!(watch(c, 5, &[&deep]).await, json!({"watching": true}));
    std::fs::create_dir(dir.join("a")).unwrap();
    assert_eq!(next_changed(c).await, changed(5), "missing ancestor");

    // A listed path inside a directory that appears as a whole (rename of a directory).
    let staged = dir.join("staged");
    std::fs::create_dir_all(staged.join("inner")).unwrap();
    let target = dir.join("tree/inner");
    assert_eq!(watch(c, 6, &[&target]).await, json!({"watching": true}));
    std::fs::rename(&staged, dir.join("tree")).unwrap();
    assert_eq!(next_changed(c).await, changed(6), "ancestor renamed into place");

    assert_no_changed(c, "exactly one notification per creation").await;
}

on_both_transports!(watch_replacement_cancel_and_ignored_ids);

async fn watch_replacement_cancel_and_ignored_ids(t: Transport) {
    let dir = dir_for("watch-replace", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let p = |name: &str| dir.join(name);
    let existing = p("existing");
    std::fs::write(&existing, "here").unwrap();

    // A higher id replaces the active watch: the old paths no longer fire.
    assert_eq!(watch(c, 1, &[&p("r1")]).await, json!({"watching": true}));
    assert_eq!(watch(c, 2, &[&p("r2")]).await, json!({"watching": true}));
    std::fs::write(p("r1"), "").unwrap();
    std::fs::write(p("r2"), "").unwrap();
    assert_eq!(next_changed(c).await, changed(2), "only the replacing watch fires");
    assert_no_changed(c, "replaced watch 1").await;

    // Cancel: a higher id with an empty list arms nothing.
    assert_eq!(watch(c, 3, &[&p("c3")]).await, json!({"watching": true}));
    assert_eq!(watch(c, 4, &[]).await, json!({"watching": false}));
    std::fs::write(p("c3"), "").unwrap();
    fence(c, &dir, 5, "cancelled watch 3").await;

    // A higher id with one listed path already existing: replaces, arms nothing.
    assert_eq!(watch(c, 6, &[&p("e6")]).await, json!({"watching": true}));
    assert_eq!(watch(c, 7, &[&p("e7"), &existing]).await, json!({"watching": false}));
    assert_eq!(watch(c, 8, &[&existing, &p("e8")]).await, json!({"watching": false}));
    std::fs::write(p("e6"), "").unwrap();
    std::fs::write(p("e7"), "").unwrap();
    std::fs::write(p("e8"), "").unwrap();
    fence(c, &dir, 9, "watches 6, 7 and 8").await;

    // Ids not above the largest seen are ignored: the active watch stays and fires.
    assert_eq!(watch(c, 10, &[&p("i10")]).await, json!({"watching": true}));
    assert_eq!(watch(c, 10, &[&p("i10b")]).await, json!({"watching": false}), "equal id");
    assert_eq!(watch(c, 3, &[&p("i3")]).await, json!({"watching": false}), "lower id");
    assert_eq!(watch(c, 9, &[]).await, json!({"watching": false}), "lower id cannot cancel");
    std::fs::write(p("i10"), "").unwrap();
    assert_eq!(next_changed(c).await, changed(10), "the active watch survived the ignored calls");
    // The ignored calls armed nothing.
    std::fs::write(p("i10b"), "").unwrap();
    std::fs::write(p("i3"), "").unwrap();
    fence(c, &dir, 11, "ignored calls").await;

    // An id seen in a call that armed nothing still counts as seen.
    assert_eq!(watch(c, 20, &[]).await, json!({"watching": false}));
    assert_eq!(watch(c, 15, &[&p("s15")]).await, json!({"watching": false}));
    std::fs::write(p("s15"), "").unwrap();
    fence(c, &dir, 21, "ignored id 15").await;
    // A fired watch's id is seen too.
    assert_eq!(watch(c, 21, &[&p("s21")]).await, json!({"watching": false}));
}

on_both_transports!(watch_errors_and_no_unwatch);

async fn watch_errors_and_no_unwatch(t: Transport) {
    let dir = dir_for("watch-errors", t);
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let good = uri(&dir.join("x"));
    let relative = "invalid URI: relative URL without a base";

    for bad in ["relative/path", "/plain/absolute/path", "x"] {
        let e = c.err("fs/watchMissing", json!({"watchId": 1, "missing": [good, bad]})).await;
        assert_eq!(e, (-32602, relative.into()), "{t:?}: {bad}");
    }
    let e = c.err("fs/watchMissing", json!({"watchId": "w1", "missing": [good]})).await;
    assert_eq!(e, (-32602, "invalid type: string \"w1\", expected u64".into()));
    let e = c.err("fs/unwatchMissing", json!({"watchId": 1})).await;
    assert_eq!(e, (-32601, "exec-server stub does not implement `fs/unwatchMissing` yet".into()));

    // The failed calls neither armed a watch nor used up id 1.
    assert_eq!(watch(c, 1, &[&dir.join("x")]).await, json!({"watching": true}));
    std::fs::write(dir.join("x"), "").unwrap();
    assert_eq!(next_changed(c).await, changed(1));
}

#[tokio::test]
async fn unrelated_files_do_not_trigger_a_watch() {
    let dir = temp_dir("fsh-watch-unrelated");
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let mut fence_conn = server.client().await;
    let (x, other, other_dir, fence_path) = (dir.join("x"), dir.join("x2"), dir.join("xdir"), dir.join("fence"));

    assert_eq!(watch(&mut a, 1, &[&x]).await, json!({"watching": true}));
    assert_eq!(watch(&mut fence_conn, 1, &[&fence_path]).await, json!({"watching": true}));
    std::fs::write(&other, "").unwrap();
    std::fs::create_dir(&other_dir).unwrap();
    std::fs::write(other_dir.join("x"), "").unwrap();
    std::fs::write(&fence_path, "").unwrap();
    assert_eq!(next_changed(&mut fence_conn).await, changed(1));
    assert_no_changed(&mut a, "unrelated files").await;
    // Still armed.
    std::fs::write(&x, "").unwrap();
    assert_eq!(next_changed(&mut a).await, changed(1));
}

#[tokio::test]
async fn several_connections_watch_the_same_path() {
    let dir = temp_dir("fsh-watch-shared");
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let mut b = server.client().await;
    let x = dir.join("x");

    // Ids are per connection: b may use a lower id than a.
    assert_eq!(watch(&mut a, 7, &[&x]).await, json!({"watching": true}));
    assert_eq!(watch(&mut b, 3, &[&x, &dir.join("y")]).await, json!({"watching": true}));
    std::fs::write(&x, "").unwrap();
    assert_eq!(next_changed(&mut a).await, changed(7));
    assert_eq!(next_changed(&mut b).await, changed(3));
    assert_no_changed(&mut a, "a").await;
    assert_no_changed(&mut b, "b").await;
}

#[tokio::test]
async fn watch_is_per_connection_and_not_resumed() {
    let dir = temp_dir("fsh-watch-resume");
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    let (x, y) = (dir.join("x"), dir.join("y"));
    assert_eq!(watch(&mut a, 5, &[&x]).await, json!({"watching": true}));
    detach(&mut a).await;

    let mut b = resume_retrying(&server, &sid).await;
    // The new connection starts with no ids seen, and without a's watch.
    assert_eq!(watch(&mut b, 1, &[&y]).await, json!({"watching": true}));
    std::fs::write(&x, "").unwrap();
    std::fs::write(&y, "").unwrap();
    assert_eq!(next_changed(&mut b).await, changed(1), "only the new connection's watch fires");
    assert_no_changed(&mut b, "the old connection's watch 5").await;
}
