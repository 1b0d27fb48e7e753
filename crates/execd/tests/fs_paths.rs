//! Spec section 6 (path-based filesystem methods), every row as execd
//! implements it: the URI rules shared by all methods, `fs/readFile` (6.1),
//! `fs/writeFile` (6.2), `fs/createDirectory` (6.3), `fs/getMetadata` (6.4),
//! `fs/readDirectory` (6.5), `fs/remove` (6.6), `fs/copy` (6.7),
//! `fs/canonicalize` (6.8) and `fs/walk` (6.9), plus the `sandbox` member every
//! method accepts and the ordering of pipelined requests.
//!
//! Every test builds its fixture with `std::fs` in its own fresh directory and
//! checks the effect of each call on disk as well as the exact reply.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const MIB: usize = 1024 * 1024;
const D: &str = "directory";
const F: &str = "file";

/// A fresh, canonical directory for one check on one transport.
fn fresh(name: &str, t: Transport) -> PathBuf {
    std::fs::canonicalize(temp_dir(&format!("fs-{name}-{t:?}"))).expect("canonical temp dir")
}

/// The `file://` URI of an absolute path (percent-escaping spaces only; test paths have nothing else).
fn uri(path: &Path) -> String {
    format!("file://{}", path.display().to_string().replace(' ', "%20"))
}

/// -32004 for `ENOENT`.
fn enoent() -> RpcError {
    (-32004, "No such file or directory (os error 2)".to_owned())
}

/// -32603 with an OS error text.
fn os_error(message: &str) -> RpcError {
    (-32603, message.to_owned())
}

/// -32600 with `message`.
fn invalid_request(message: &str) -> RpcError {
    (-32600, message.to_owned())
}

/// -32602 with `message`.
fn invalid_params(message: &str) -> RpcError {
    (-32602, message.to_owned())
}

/// The -32600 of `fs/readFile` on something other than a regular file.
fn not_a_file(path: &Path) -> RpcError {
    invalid_request(&format!("path `{}` is not a file", path.display()))
}

/// `mkfifo path`.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `len` bytes that differ from any shifted copy of themselves (period 251, a prime).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Every byte value once.
fn all_bytes() -> Vec<u8> {
    (0..=255u8).collect()
}

/// `fs/readFile`, decoded. The result must be exactly `{"dataBase64": …}`.
async fn read_file(c: &mut Client, params: Value) -> Result<Vec<u8>, RpcError> {
    let r = c.call("fs/readFile", params).await?;
    let obj = r.as_object().expect("result object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["dataBase64"], "readFile result members");
    Ok(unb64(r["dataBase64"].as_str().expect("dataBase64 string")))
}

/// `fs/writeFile` of `data` to `path` (plus `extra` members).
async fn write_file(c: &mut Client, path: &Path, data: &[u8], extra: Value) -> Result<Value, RpcError> {
    let mut params = json!({"path": uri(path), "dataBase64": b64(data)});
    merge(&mut params, extra);
    c.call("fs/writeFile", params).await
}

/// Adds or replaces the members of `extra` in `base`.
fn merge(base: &mut Value, extra: Value) {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// `base` with the members of `extra`.
fn with(mut base: Value, extra: Value) -> Value {
    merge(&mut base, extra);
    base
}

/// Whether anything (even a broken link) exists at `path`.
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Modification time in whole milliseconds since the epoch, as std sees it.
fn mtime_ms(path: &Path) -> i64 {
    let m = std::fs::metadata(path).expect("metadata");
    m.mtime() * 1000 + m.mtime_nsec() / 1_000_000
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Asserts a `fs/getMetadata` result has exactly the six members with these
/// values; `createdAtMs` only has to be a plausible integer (0 = unknown).
fn assert_metadata(got: &Value, is_directory: bool, is_file: bool, is_symlink: bool, size: u64, modified_ms: i64) {
    let created = got["createdAtMs"].as_i64().unwrap_or_else(|| panic!("createdAtMs is an integer: {got}"));
    assert!(created == 0 || (created > 0 && created <= now_ms() + 60_000), "createdAtMs {created} in {got}");
    let expected = json!({
        "isDirectory": is_directory,
        "isFile": is_file,
        "isSymlink": is_symlink,
        "size": size,
        "createdAtMs": created,
        "modifiedAtMs": modified_ms,
    });
    assert_eq!(got, &expected);
}

/// One `fs/readDirectory` entry.
fn dirent(name: &str, is_directory: bool, is_file: bool) -> Value {
    json!({"fileName": name, "isDirectory": is_directory, "isFile": is_file})
}

/// The entries of a `fs/readDirectory` result (which must have no other member), sorted by name.
fn sorted_entries(r: &Value) -> Vec<Value> {
    let obj = r.as_object().expect("result object");
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["entries"], "readDirectory result members");
    let mut entries = r["entries"].as_array().expect("entries").clone();
    entries.sort_by_key(|e| e["fileName"].as_str().expect("fileName").to_owned());
    entries
}

/// `fs/walk` params.
fn walk_params(root: &Path, max_depth: u64, max_directories: u64, max_entries: u64, follow: bool) -> Value {
    json!({
        "path": uri(root),
        "options": {
            "maxDepth": max_depth,
            "maxDirectories": max_directories,
            "maxEntries": max_entries,
            "followDirectorySymlinks": follow,
        },
    })
}

/// A complete `fs/walk` result: `entries` are (path relative to `root`, kind).
fn walked(root: &Path, entries: &[(&str, &str)], truncated: bool) -> Value {
    let entries: Vec<Value> =
        entries.iter().map(|(rel, kind)| json!({"path": uri(&root.join(rel)), "kind": kind})).collect();
    json!({"entries": entries, "errors": [], "truncated": truncated})
}

/// The empty `fs/walk` result.
fn walked_nothing() -> Value {
    json!({"entries": [], "errors": [], "truncated": false})
}

// ---------------------------------------------------------------------------
// Common rules: URIs
// ---------------------------------------------------------------------------

on_both_transports!(uris_name_absolute_local_paths);

/// `file:///abs` and `file://localhost/abs`, `%XX` decoded, `.`/`..` collapsed
/// (before the filesystem sees the path), trailing `/` dropped.
async fn uris_name_absolute_local_paths(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let dir = fresh("uris", t);
    std::fs::write(dir.join("plain.txt"), "hello").unwrap();
    std::fs::write(dir.join("a b.txt"), "spaced").unwrap();
    let d = dir.display().to_string();
    let hello = json!({"dataBase64": "aGVsbG8="});
    for path in [
        format!("file://{d}/plain.txt"),
        format!("file://localhost{d}/plain.txt"),
        format!("file://{d}/pl%61in%2Etxt"),
        format!("file://{d}/./plain.txt"),
        format!("file://{d}/no-such-dir/../plain.txt"),
        format!("file://{d}/x/y/.././../plain.txt"),
        format!("file://{d}/plain.txt/"),
    ] {
        assert_eq!(c.ok("fs/readFile", json!({"path": path})).await, hello, "{path}");
    }
    assert_eq!(read_file(c, json!({"path": format!("file://{d}/a%20b.txt")})).await, Ok(b"spaced".to_vec()));

    // A trailing slash on a file still names the file (it is dropped, not passed to the OS).
    let meta = c.ok("fs/getMetadata", json!({"path": format!("file://{d}/plain.txt/")})).await;
    assert_metadata(&meta, false, true, false, 5, mtime_ms(&dir.join("plain.txt")));

    // Percent-decoded names are created as such.
    let r = c.ok("fs/writeFile", json!({"path": format!("file://{d}/new%20file.txt"), "dataBase64": "eA=="})).await;
    assert_eq!(r, json!({}));
    assert_eq!(std::fs::read(dir.join("new file.txt")).unwrap(), b"x");

    // Directory URIs with a trailing slash, and normalized output.
    let r = c.ok("fs/readDirectory", json!({"path": format!("file://{d}/")})).await;
    assert_eq!(
        sorted_entries(&r),
        [dirent("a b.txt", false, true), dirent("new file.txt", false, true), dirent("plain.txt", false, true)]
    );
    for path in [format!("file://{d}/"), format!("file://{d}/./sub/.."), format!("file://localhost{d}")] {
        assert_eq!(c.ok("fs/canonicalize", json!({"path": path})).await, json!({"path": uri(&dir)}), "{path}");
    }

    // Plain paths, relative references and other schemes, on every method.
    let good = uri(&dir.join("plain.txt"));
    let opts = json!({"maxDepth": 1, "maxDirectories": 10, "maxEntries": 10, "followDirectorySymlinks": false});
    let relative = "invalid URI: relative URL without a base";
    let bad = [
        (format!("{d}/plain.txt"), relative),
        (format!("{d}/created"), relative),
        ("created".to_owned(), relative),
        ("plain.txt".to_owned(), relative),
        (format!("http://localhost{d}/created"), "unsupported path URI scheme `http`"),
    ];
    for (path, message) in bad {
        let calls = [
            ("fs/readFile", json!({"path": path})),
            ("fs/writeFile", json!({"path": path, "dataBase64": "eA=="})),
            ("fs/createDirectory", json!({"path": path})),
            ("fs/getMetadata", json!({"path": path})),
            ("fs/readDirectory", json!({"path": path})),
            ("fs/remove", json!({"path": path})),
            ("fs/copy", json!({"sourcePath": path, "destinationPath": uri(&dir.join("copied")), "recursive": true})),
            ("fs/copy", json!({"sourcePath": good, "destinationPath": path, "recursive": true})),
            ("fs/canonicalize", json!({"path": path})),
            ("fs/walk", json!({"path": path, "options": opts})),
        ];
        for (method, params) in calls {
            assert_eq!(c.err(method, params.clone()).await, invalid_params(message), "{method} {params}");
        }
    }
    // None of them did anything.
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["a b.txt", "new file.txt", "plain.txt"]);
    assert_eq!(std::fs::read(dir.join("plain.txt")).unwrap(), b"hello");
}

// ---------------------------------------------------------------------------
// 6.1 fs/readFile
// ---------------------------------------------------------------------------

on_both_transports!(read_file_rows);

async fn read_file_rows(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let dir = fresh("read", t);
    let p = |name: &str| dir.join(name);
    std::fs::write(p("a.txt"), "hello").unwrap();
    std::fs::write(p("empty"), "").unwrap();
    std::fs::write(p("bytes.bin"), all_bytes()).unwrap();
    std::fs::create_dir(p("d")).unwrap();
    std::fs::write(p("d/in.txt"), "inside").unwrap();
    mkfifo(&p("fifo"));
    symlink("a.txt", p("link_a")).unwrap();
    symlink(p("d"), p("link_d")).unwrap();
    symlink("nowhere", p("broken")).unwrap();

    // The spec example, byte for byte.
    assert_eq!(c.ok("fs/readFile", json!({"path": uri(&p("a.txt"))})).await, json!({"dataBase64": "aGVsbG8="}));
    assert_eq!(c.ok("fs/readFile", json!({"path": uri(&p("empty"))})).await, json!({"dataBase64": ""}));
    assert_eq!(read_file(c, json!({"path": uri(&p("bytes.bin"))})).await, Ok(all_bytes()));

    // Around the 3 MiB encoding block: exactly one block, one byte more, two more.
    for len in [3 * MIB, 3 * MIB + 1, 3 * MIB + 2] {
        let data = pattern(len);
        let path = p(&format!("big-{len}"));
        std::fs::write(&path, &data).unwrap();
        let got = read_file(c, json!({"path": uri(&path)})).await.unwrap();
        assert_eq!(got.len(), len, "length of a {len}-byte file");
        assert!(got == data, "content of a {len}-byte file round-trips");
    }

    // Not a regular file: the requested path is named; a FIFO is refused without blocking.
    assert_eq!(read_file(c, json!({"path": uri(&p("d"))})).await, Err(not_a_file(&p("d"))));
    assert_eq!(read_file(c, json!({"path": uri(&p("fifo"))})).await, Err(not_a_file(&p("fifo"))));
    assert_eq!(read_file(c, json!({"path": uri(&p("link_d"))})).await, Err(not_a_file(&p("link_d"))));
    assert_eq!(
        read_file(c, json!({"path": uri(&p("fifo")), "followSymlinks": false})).await,
        Err(not_a_file(&p("fifo")))
    );
    assert_eq!(read_file(c, json!({"path": uri(&p("d")), "followSymlinks": false})).await, Err(not_a_file(&p("d"))));

    // Symlinks are followed by default (final and intermediate components).
    for extra in [json!({}), json!({"followSymlinks": true}), json!({"followSymlinks": null})] {
        let params = with(json!({"path": uri(&p("link_a"))}), extra.clone());
        assert_eq!(read_file(c, params).await, Ok(b"hello".to_vec()), "{extra}");
        let params = with(json!({"path": uri(&p("link_d/in.txt"))}), extra.clone());
        assert_eq!(read_file(c, params).await, Ok(b"inside".to_vec()), "{extra}");
    }

    // Missing things.
    assert_eq!(read_file(c, json!({"path": uri(&p("missing"))})).await, Err(enoent()));
    assert_eq!(read_file(c, json!({"path": uri(&p("no-dir/x"))})).await, Err(enoent()));
    assert_eq!(read_file(c, json!({"path": uri(&p("broken"))})).await, Err(enoent()));
    assert_eq!(read_file(c, json!({"path": uri(&p("missing")), "followSymlinks": false})).await, Err(enoent()));
    // Other OS errors: a file used as a directory.
    assert_eq!(read_file(c, json!({"path": uri(&p("a.txt/x"))})).await, Err(os_error("Not a directory (os error 20)")));

    // followSymlinks:false: a final link is ELOOP (even a broken one), an intermediate one ENOTDIR.
    let nofollow = |name: &str| json!({"path": uri(&p(name)), "followSymlinks": false});
    assert_eq!(read_file(c, nofollow("a.txt")).await, Ok(b"hello".to_vec()));
    assert_eq!(read_file(c, nofollow("d/in.txt")).await, Ok(b"inside".to_vec()));
    assert_eq!(read_file(c, nofollow("link_a")).await, Err(os_error("Symbolic link loop (os error 40)")));
    assert_eq!(read_file(c, nofollow("broken")).await, Err(os_error("Symbolic link loop (os error 40)")));
    assert_eq!(read_file(c, nofollow("link_d/in.txt")).await, Err(os_error("Not a directory (os error 20)")));

    // Parameter decoding.
    assert_eq!(c.err("fs/readFile", json!({})).await, invalid_params("missing field `path`"));
    assert_eq!(
        c.err("fs/readFile", json!({"path": uri(&p("a.txt")), "followSymlinks": "no"})).await,
        invalid_params("invalid type: string \"no\", expected a boolean")
    );
}

// ---------------------------------------------------------------------------
// 6.2 fs/writeFile
// ---------------------------------------------------------------------------

on_both_transports!(write_file_rows);

async fn write_file_rows(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let dir = fresh("write", t);
    let p = |name: &str| dir.join(name);
    std::fs::create_dir(p("d")).unwrap();
    std::fs::write(p("target.txt"), "target").unwrap();
    symlink("target.txt", p("link_t")).unwrap();
    symlink(p("d"), p("link_d")).unwrap();

    // The spec example: creates, result {}.
    let r = c.ok("fs/writeFile", json!({"path": uri(&p("w1.txt")), "dataBase64": "ZGF0YTE="})).await;
    assert_eq!(r, json!({}));
    assert_eq!(std::fs::read(p("w1.txt")).unwrap(), b"data1");
    // Truncates a longer file.
    assert_eq!(write_file(c, &p("w1.txt"), b"xy", json!({})).await, Ok(json!({})));
    assert_eq!(std::fs::read(p("w1.txt")).unwrap(), b"xy");
    // Empty payload.
    assert_eq!(write_file(c, &p("w1.txt"), b"", json!({})).await, Ok(json!({})));
    assert_eq!(std::fs::read(p("w1.txt")).unwrap(), b"");
    // Binary, and across the 3 MiB block.
    assert_eq!(write_file(c, &p("bytes.bin"), &all_bytes(), json!({})).await, Ok(json!({})));
    assert_eq!(std::fs::read(p("bytes.bin")).unwrap(), all_bytes());
    let big = pattern(3 * MIB + 1);
    assert_eq!(write_file(c, &p("big.bin"), &big, json!({})).await, Ok(json!({})));
    assert!(std::fs::read(p("big.bin")).unwrap() == big, "3 MiB + 1 bytes written exactly");
    // And what was written reads back.
    assert_eq!(read_file(c, json!({"path": uri(&p("big.bin"))})).await.unwrap().len(), big.len());

    // Parent missing; directory target; a file used as a directory.
    assert_eq!(write_file(c, &p("no-dir/x.txt"), b"x", json!({})).await, Err(enoent()));
    assert!(!exists(&p("no-dir")));
    assert_eq!(write_file(c, &p("d"), b"x", json!({})).await, Err(os_error("Is a directory (os error 21)")));
    assert_eq!(
        write_file(c, &p("target.txt/x"), b"x", json!({})).await,
        Err(os_error("Not a directory (os error 20)"))
    );

    // Invalid base64 is refused before anything is opened.
    let base64_error =
        |detail: &str| invalid_request(&format!("fs/writeFile requires valid base64 dataBase64: {detail}"));
    for (data, detail) in [
        ("*", "Invalid symbol 42, offset 0."),
        ("ZGF0YTE", "Invalid padding"),
        ("ZGF0 YTE=", "Invalid symbol 32, offset 4."),
    ] {
        for name in ["fresh.txt", "target.txt"] {
            let params = json!({"path": uri(&p(name)), "dataBase64": data});
            assert_eq!(c.err("fs/writeFile", params).await, base64_error(detail), "{data:?} to {name}");
        }
    }
    assert!(!exists(&p("fresh.txt")), "an invalid payload creates nothing");
    assert_eq!(std::fs::read(p("target.txt")).unwrap(), b"target", "an invalid payload truncates nothing");
    assert_eq!(
        c.err("fs/writeFile", json!({"path": uri(&p("fresh.txt"))})).await,
        invalid_params("missing field `dataBase64`")
    );

    // A final symlink is followed by default: the target changes, the link stays a link.
    assert_eq!(write_file(c, &p("link_t"), b"via link", json!({})).await, Ok(json!({})));
    assert_eq!(std::fs::read(p("target.txt")).unwrap(), b"via link");
    assert!(is_symlink(&p("link_t")));
    assert_eq!(write_file(c, &p("link_d/in.txt"), b"in", json!({"followSymlinks": true})).await, Ok(json!({})));
    assert_eq!(std::fs::read(p("d/in.txt")).unwrap(), b"in");

    // followSymlinks:false: final link ELOOP (target untouched), intermediate ENOTDIR.
    let nofollow = json!({"followSymlinks": false});
    assert_eq!(
        write_file(c, &p("link_t"), b"no", nofollow.clone()).await,
        Err(os_error("Symbolic link loop (os error 40)"))
    );
    assert_eq!(std::fs::read(p("target.txt")).unwrap(), b"via link");
    assert!(is_symlink(&p("link_t")));
    assert_eq!(
        write_file(c, &p("link_d/nf.txt"), b"no", nofollow.clone()).await,
        Err(os_error("Not a directory (os error 20)"))
    );
    assert!(!exists(&p("d/nf.txt")));
    // ...while plain paths work: create and truncate.
    assert_eq!(write_file(c, &p("d/nf.txt"), b"longer text", nofollow.clone()).await, Ok(json!({})));
    assert_eq!(write_file(c, &p("d/nf.txt"), b"short", nofollow.clone()).await, Ok(json!({})));
    assert_eq!(std::fs::read(p("d/nf.txt")).unwrap(), b"short");

    // Writing through a hard link keeps the link: same inode, both names see the bytes.
    std::fs::write(p("h1"), "original").unwrap();
    std::fs::hard_link(p("h1"), p("h2")).unwrap();
    let ino = std::fs::metadata(p("h1")).unwrap().ino();
    assert_eq!(write_file(c, &p("h2"), b"new", json!({})).await, Ok(json!({})));
    assert_eq!(write_file(c, &p("h1"), b"newer", nofollow.clone()).await, Ok(json!({})));
    for name in ["h1", "h2"] {
        let m = std::fs::metadata(p(name)).unwrap();
        assert_eq!((m.ino(), m.nlink()), (ino, 2), "{name} is still the same file");
        assert_eq!(std::fs::read(p(name)).unwrap(), b"newer", "{name}");
    }
}

// ---------------------------------------------------------------------------
// 6.3 fs/createDirectory
// ---------------------------------------------------------------------------

#[tokio::test]
async fn create_directory_rows() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("mkdir", Transport::Ws);
    let p = |name: &str| dir.join(name);
    std::fs::write(p("file"), "f").unwrap();
    std::fs::create_dir(p("real")).unwrap();
    symlink(p("real"), p("link_real")).unwrap();
    let mkdir = |name: &str, extra: Value| with(json!({"path": uri(&dir.join(name))}), extra);

    // The spec example; recursive by default (parents created, existing directory fine).
    assert_eq!(c.ok("fs/createDirectory", mkdir("nd", json!({}))).await, json!({}));
    assert!(p("nd").is_dir());
    assert_eq!(c.ok("fs/createDirectory", mkdir("a/b/c", json!({}))).await, json!({}));
    assert!(p("a/b/c").is_dir());
    for extra in [json!({}), json!({"recursive": null}), json!({"recursive": true})] {
        assert_eq!(c.ok("fs/createDirectory", mkdir("a/b/c", extra.clone())).await, json!({}), "{extra}");
        assert_eq!(c.ok("fs/createDirectory", mkdir("a", extra.clone())).await, json!({}), "{extra}");
    }
    assert_eq!(c.ok("fs/createDirectory", mkdir("x/y", json!({"recursive": null}))).await, json!({}));
    assert!(p("x/y").is_dir());
    assert_eq!(c.ok("fs/createDirectory", mkdir("t/u", json!({"recursive": true}))).await, json!({}));
    assert!(p("t/u").is_dir());

    // An existing file, with either flag; a file as a parent.
    let eexist = os_error("File exists (os error 17)");
    for extra in [json!({}), json!({"recursive": true}), json!({"recursive": false})] {
        assert_eq!(c.err("fs/createDirectory", mkdir("file", extra.clone())).await, eexist, "{extra}");
    }
    assert!(p("file").is_file());
    assert_eq!(
        c.err("fs/createDirectory", mkdir("file/sub", json!({}))).await,
        os_error("Not a directory (os error 20)")
    );

    // recursive:false: creates one level; existing directory and missing parent fail.
    assert_eq!(c.ok("fs/createDirectory", mkdir("one", json!({"recursive": false}))).await, json!({}));
    assert!(p("one").is_dir());
    assert_eq!(c.err("fs/createDirectory", mkdir("one", json!({"recursive": false}))).await, eexist);
    assert_eq!(c.err("fs/createDirectory", mkdir("nope/child", json!({"recursive": false}))).await, enoent());
    assert!(!exists(&p("nope")));

    // Through a symlinked directory by default; followSymlinks:false refuses an intermediate link.
    assert_eq!(c.ok("fs/createDirectory", mkdir("link_real/via", json!({}))).await, json!({}));
    assert!(p("real/via").is_dir());
    assert_eq!(c.ok("fs/createDirectory", mkdir("nf/deep", json!({"followSymlinks": false}))).await, json!({}));
    assert!(p("nf/deep").is_dir());
    for extra in [json!({"followSymlinks": false}), json!({"followSymlinks": false, "recursive": false})] {
        assert_eq!(
            c.err("fs/createDirectory", mkdir("link_real/nf", extra.clone())).await,
            os_error("Not a directory (os error 20)"),
            "{extra}"
        );
    }
    assert!(!exists(&p("real/nf")));
}

// ---------------------------------------------------------------------------
// 6.4 fs/getMetadata
// ---------------------------------------------------------------------------

#[tokio::test]
async fn get_metadata_rows() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("meta", Transport::Ws);
    let p = |name: &str| dir.join(name);
    std::fs::write(p("a.txt"), "hello").unwrap();
    // A known modification time with a sub-millisecond part that must be floored.
    let stamp = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123) + Duration::from_micros(999);
    std::fs::File::options().write(true).open(p("a.txt")).unwrap().set_modified(stamp).unwrap();
    std::fs::write(p("fresh.bin"), pattern(1234)).unwrap();
    std::fs::create_dir(p("d")).unwrap();
    std::fs::write(p("d/in.txt"), "in").unwrap();
    mkfifo(&p("fifo"));
    symlink("a.txt", p("link_a")).unwrap();
    symlink(p("d"), p("link_d")).unwrap();
    symlink("nowhere", p("broken")).unwrap();
    let meta = |name: &str, extra: Value| with(json!({"path": uri(&dir.join(name))}), extra);
    let dir_size = std::fs::metadata(p("d")).unwrap().len();

    let r = c.ok("fs/getMetadata", meta("a.txt", json!({}))).await;
    assert_metadata(&r, false, true, false, 5, 1_700_000_000_123);
    let r = c.ok("fs/getMetadata", meta("fresh.bin", json!({}))).await;
    assert_metadata(&r, false, true, false, 1234, mtime_ms(&p("fresh.bin")));
    let r = c.ok("fs/getMetadata", meta("d", json!({}))).await;
    assert_metadata(&r, true, false, false, dir_size, mtime_ms(&p("d")));
    let r = c.ok("fs/getMetadata", meta("fifo", json!({}))).await;
    assert_metadata(&r, false, false, false, 0, mtime_ms(&p("fifo")));

    // A followed symlink: the target's type, size and times, but isSymlink true.
    for extra in [json!({}), json!({"followSymlinks": true}), json!({"followSymlinks": null})] {
        let r = c.ok("fs/getMetadata", meta("link_a", extra.clone())).await;
        assert_metadata(&r, false, true, true, 5, 1_700_000_000_123);
        let r = c.ok("fs/getMetadata", meta("link_d", extra.clone())).await;
        assert_metadata(&r, true, false, true, dir_size, mtime_ms(&p("d")));
        // Through a link in an intermediate component: the path itself is no link.
        let r = c.ok("fs/getMetadata", meta("link_d/in.txt", extra.clone())).await;
        assert_metadata(&r, false, true, false, 2, mtime_ms(&p("d/in.txt")));
    }
    assert_eq!(c.err("fs/getMetadata", meta("broken", json!({}))).await, enoent());
    assert_eq!(c.err("fs/getMetadata", meta("missing", json!({}))).await, enoent());
    assert_eq!(c.err("fs/getMetadata", meta("a.txt/x", json!({}))).await, os_error("Not a directory (os error 20)"));

    // followSymlinks:false.
    let nofollow = json!({"followSymlinks": false});
    let r = c.ok("fs/getMetadata", meta("a.txt", nofollow.clone())).await;
    assert_metadata(&r, false, true, false, 5, 1_700_000_000_123);
    let r = c.ok("fs/getMetadata", meta("d", nofollow.clone())).await;
    assert_metadata(&r, true, false, false, dir_size, mtime_ms(&p("d")));
    let r = c.ok("fs/getMetadata", meta("fifo", nofollow.clone())).await;
    assert_metadata(&r, false, false, false, 0, mtime_ms(&p("fifo")));
    let symlink_in_path = invalid_request("path contains a symbolic link");
    assert_eq!(c.err("fs/getMetadata", meta("link_a", nofollow.clone())).await, symlink_in_path);
    assert_eq!(c.err("fs/getMetadata", meta("link_d", nofollow.clone())).await, symlink_in_path);
    assert_eq!(c.err("fs/getMetadata", meta("broken", nofollow.clone())).await, symlink_in_path);
    assert_eq!(
        c.err("fs/getMetadata", meta("link_d/in.txt", nofollow.clone())).await,
        os_error("Not a directory (os error 20)")
    );
    assert_eq!(c.err("fs/getMetadata", meta("missing", nofollow.clone())).await, enoent());
}

// ---------------------------------------------------------------------------
// 6.5 fs/readDirectory
// ---------------------------------------------------------------------------

#[tokio::test]
async fn read_directory_rows() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("readdir", Transport::Ws);
    let root = dir.join("root");
    let p = |name: &str| root.join(name);
    std::fs::create_dir(&root).unwrap();
    std::fs::write(p("a.txt"), "a").unwrap();
    std::fs::create_dir(p("sub")).unwrap();
    std::fs::write(p("sub/b.txt"), "b").unwrap();
    std::fs::create_dir(p("sub/inner")).unwrap();
    std::fs::create_dir(p("empty")).unwrap();
    mkfifo(&p("fifo"));
    symlink("a.txt", p("link_file")).unwrap();
    symlink(p("sub"), p("link_dir")).unwrap();
    symlink("nowhere", p("broken")).unwrap();
    symlink("fifo", p("link_fifo")).unwrap();

    let r = c.ok("fs/readDirectory", json!({"path": uri(&root)})).await;
    assert_eq!(
        sorted_entries(&r),
        [
            dirent("a.txt", false, true),
            dirent("empty", true, false),
            dirent("fifo", false, false),
            dirent("link_dir", true, false),
            dirent("link_fifo", false, false),
            dirent("link_file", false, true),
            dirent("sub", true, false),
        ],
        "no . or .., links as their targets, broken link omitted"
    );
    // The order is the OS's: the same as std's listing.
    let os_order: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "broken")
        .collect();
    let got_order: Vec<&str> =
        r["entries"].as_array().unwrap().iter().map(|e| e["fileName"].as_str().unwrap()).collect();
    assert_eq!(got_order, os_order);

    // Through a directory symlink, with a trailing slash.
    let r = c.ok("fs/readDirectory", json!({"path": format!("{}/", uri(&p("link_dir")))})).await;
    assert_eq!(sorted_entries(&r), [dirent("b.txt", false, true), dirent("inner", true, false)]);
    assert_eq!(c.ok("fs/readDirectory", json!({"path": uri(&p("empty"))})).await, json!({"entries": []}));

    let not_dir = os_error("Not a directory (os error 20)");
    assert_eq!(c.err("fs/readDirectory", json!({"path": uri(&p("a.txt"))})).await, not_dir);
    assert_eq!(c.err("fs/readDirectory", json!({"path": uri(&p("link_file"))})).await, not_dir);
    assert_eq!(c.err("fs/readDirectory", json!({"path": uri(&p("missing"))})).await, enoent());
    assert_eq!(c.err("fs/readDirectory", json!({"path": uri(&p("broken"))})).await, enoent());
}

// ---------------------------------------------------------------------------
// 6.6 fs/remove
// ---------------------------------------------------------------------------

#[tokio::test]
async fn remove_rows() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("remove", Transport::Ws);
    let p = |name: &str| dir.join(name);
    let rm = |name: &str, extra: Value| with(json!({"path": uri(&dir.join(name))}), extra);
    let tree = |name: &str| {
        let root = dir.join(name);
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::write(root.join("f.txt"), "f").unwrap();
        std::fs::write(root.join("sub/deeper/g.txt"), "g").unwrap();
    };

    // The spec example and the defaults: a file, a whole tree.
    std::fs::write(p("rm1"), "x").unwrap();
    assert_eq!(c.ok("fs/remove", rm("rm1", json!({}))).await, json!({}));
    assert!(!exists(&p("rm1")));
    tree("t1");
    assert_eq!(c.ok("fs/remove", rm("t1", json!({}))).await, json!({}));
    assert!(!exists(&p("t1")));
    tree("t2");
    assert_eq!(c.ok("fs/remove", rm("t2", json!({"recursive": true, "force": false}))).await, json!({}));
    assert!(!exists(&p("t2")));

    // Missing: fine unless force:false.
    for extra in [json!({}), json!({"force": true}), json!({"force": null}), json!({"recursive": false})] {
        assert_eq!(c.ok("fs/remove", rm("missing", extra.clone())).await, json!({}), "{extra}");
        assert_eq!(c.ok("fs/remove", rm("no-dir/missing", extra.clone())).await, json!({}), "{extra}");
    }
    assert_eq!(c.err("fs/remove", rm("missing", json!({"force": false}))).await, enoent());
    assert_eq!(c.err("fs/remove", rm("missing", json!({"force": false, "recursive": false}))).await, enoent());

    // recursive:false: a non-empty directory stays, even with force; files and empty directories go.
    tree("t3");
    for extra in [json!({"recursive": false}), json!({"recursive": false, "force": true})] {
        assert_eq!(
            c.err("fs/remove", rm("t3", extra.clone())).await,
            os_error("Directory not empty (os error 39)"),
            "{extra}"
        );
    }
    assert!(p("t3/sub/deeper/g.txt").is_file());
    assert_eq!(c.ok("fs/remove", rm("t3/sub/deeper/g.txt", json!({"recursive": false}))).await, json!({}));
    assert_eq!(c.ok("fs/remove", rm("t3/sub/deeper", json!({"recursive": false, "force": false}))).await, json!({}));
    assert!(!exists(&p("t3/sub/deeper")));
    assert!(p("t3/sub").is_dir());

    // A symlink is removed itself; its target is untouched.
    tree("target");
    std::fs::write(p("target.txt"), "keep").unwrap();
    symlink(p("target"), p("link_dir")).unwrap();
    symlink("target.txt", p("link_file")).unwrap();
    symlink("nowhere", p("broken")).unwrap();
    assert_eq!(c.ok("fs/remove", rm("link_dir", json!({}))).await, json!({}));
    assert_eq!(c.ok("fs/remove", rm("link_file", json!({"recursive": false, "force": false}))).await, json!({}));
    assert_eq!(c.ok("fs/remove", rm("broken", json!({"force": false}))).await, json!({}));
    for name in ["link_dir", "link_file", "broken"] {
        assert!(!exists(&p(name)), "{name} removed");
    }
    assert!(p("target/sub/deeper/g.txt").is_file());
    assert_eq!(std::fs::read(p("target.txt")).unwrap(), b"keep");

    // followSymlinks:false.
    symlink(p("target"), p("link_dir")).unwrap();
    symlink("target.txt", p("link_file")).unwrap();
    std::fs::write(p("plain"), "p").unwrap();
    let unsupported = os_error("recursive no-follow removal is unsupported");
    for (name, extra) in [
        ("plain", json!({"followSymlinks": false})),
        ("plain", json!({"followSymlinks": false, "recursive": true})),
        ("target", json!({"followSymlinks": false})),
        ("target", json!({"followSymlinks": false, "recursive": true, "force": false})),
        ("link_dir", json!({"followSymlinks": false, "recursive": null})),
    ] {
        assert_eq!(c.err("fs/remove", rm(name, extra.clone())).await, unsupported, "{name} {extra}");
    }
    let nofollow = json!({"followSymlinks": false, "recursive": false});
    let symlink_in_path = invalid_request("path contains a symbolic link");
    assert_eq!(c.err("fs/remove", rm("link_dir", nofollow.clone())).await, symlink_in_path);
    assert_eq!(c.err("fs/remove", rm("link_file", nofollow.clone())).await, symlink_in_path);
    assert_eq!(
        c.err("fs/remove", rm("link_dir/f.txt", nofollow.clone())).await,
        os_error("Not a directory (os error 20)")
    );
    assert!(is_symlink(&p("link_dir")) && is_symlink(&p("link_file")) && p("plain").is_file());
    assert!(p("target/f.txt").is_file() && p("target.txt").is_file());
    assert_eq!(c.ok("fs/remove", rm("plain", nofollow.clone())).await, json!({}));
    assert!(!exists(&p("plain")));
    assert_eq!(c.ok("fs/remove", rm("plain", nofollow.clone())).await, json!({}), "missing, force by default");
    assert_eq!(c.err("fs/remove", rm("plain", with(nofollow.clone(), json!({"force": false})))).await, enoent());
}

/// `/` is never removed. Flags that could not do harm come first, so a server
/// that got this wrong fails on them before the default (recursive) one.
#[tokio::test]
async fn remove_refuses_the_root() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("remove-root", Transport::Ws);
    std::fs::write(dir.join("sentinel"), "still here").unwrap();
    let ebusy = os_error("Resource busy (os error 16)");
    for params in [
        json!({"path": "file:///", "recursive": false, "force": false}),
        json!({"path": "file:///", "recursive": false}),
        json!({"path": "file://localhost/", "recursive": false}),
        json!({"path": "file:///"}),
        json!({"path": "file:///", "recursive": true, "force": true}),
    ] {
        assert_eq!(c.err("fs/remove", params.clone()).await, ebusy, "{params}");
        assert_eq!(std::fs::read(dir.join("sentinel")).unwrap(), b"still here");
    }
}

// ---------------------------------------------------------------------------
// 6.7 fs/copy
// ---------------------------------------------------------------------------

/// `fs/copy` params.
fn copy_params(source: &Path, destination: &Path, recursive: bool) -> Value {
    json!({"sourcePath": uri(source), "destinationPath": uri(destination), "recursive": recursive})
}

#[tokio::test]
async fn copy_files() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("copy-files", Transport::Ws);
    let p = |name: &str| dir.join(name);
    std::fs::write(p("a.txt"), "alpha").unwrap();
    std::fs::write(p("bin"), pattern(3 * MIB + 1)).unwrap();
    std::fs::create_dir(p("d")).unwrap();
    std::fs::create_dir(p("other")).unwrap();
    mkfifo(&p("fifo"));

    // File to a new file; the same with recursive:true; binary content exact.
    assert_eq!(c.ok("fs/copy", copy_params(&p("a.txt"), &p("b.txt"), false)).await, json!({}));
    assert_eq!(std::fs::read(p("b.txt")).unwrap(), b"alpha");
    assert_eq!(c.ok("fs/copy", copy_params(&p("a.txt"), &p("c.txt"), true)).await, json!({}));
    assert_eq!(std::fs::read(p("c.txt")).unwrap(), b"alpha");
    assert_eq!(c.ok("fs/copy", copy_params(&p("bin"), &p("bin2"), false)).await, json!({}));
    assert!(std::fs::read(p("bin2")).unwrap() == pattern(3 * MIB + 1));
    // Overwrites an existing (longer) file.
    std::fs::write(p("long.txt"), "a much longer previous content").unwrap();
    assert_eq!(c.ok("fs/copy", copy_params(&p("a.txt"), &p("long.txt"), false)).await, json!({}));
    assert_eq!(std::fs::read(p("long.txt")).unwrap(), b"alpha");

    // Destination a directory; missing source; missing destination parent.
    assert_eq!(
        c.err("fs/copy", copy_params(&p("a.txt"), &p("d"), false)).await,
        os_error("Is a directory (os error 21)")
    );
    assert_eq!(std::fs::read_dir(p("d")).unwrap().count(), 0);
    assert_eq!(c.err("fs/copy", copy_params(&p("missing"), &p("m2"), false)).await, enoent());
    assert_eq!(c.err("fs/copy", copy_params(&p("missing"), &p("m2"), true)).await, enoent());
    assert_eq!(c.err("fs/copy", copy_params(&p("a.txt"), &p("no-dir/a.txt"), false)).await, enoent());
    assert!(!exists(&p("m2")) && !exists(&p("no-dir")));

    // Symlinks are copied as links with the same target text, never followed
    // (the copies land where their relative targets do not exist).
    symlink("a.txt", p("link_rel")).unwrap();
    symlink(p("d"), p("link_abs_dir")).unwrap();
    symlink("nowhere", p("broken")).unwrap();
    for (name, recursive) in [("link_rel", false), ("link_abs_dir", false), ("broken", false), ("link_rel", true)] {
        let dest = p("other").join(format!("{name}-{recursive}"));
        assert_eq!(c.ok("fs/copy", copy_params(&p(name), &dest, recursive)).await, json!({}), "{name}");
        assert!(is_symlink(&dest), "{name} copied as a link");
        assert_eq!(std::fs::read_link(&dest).unwrap(), std::fs::read_link(p(name)).unwrap(), "{name}");
    }

    // FIFOs are refused, and nothing is created.
    let unsupported = invalid_request("fs/copy only supports regular files, directories, and symlinks");
    assert_eq!(c.err("fs/copy", copy_params(&p("fifo"), &p("fifo2"), false)).await, unsupported);
    assert_eq!(c.err("fs/copy", copy_params(&p("fifo"), &p("fifo2"), true)).await, unsupported);
    assert!(!exists(&p("fifo2")));

    // Parameters: all three required, in declaration order.
    let (src, dst) = (uri(&p("a.txt")), uri(&p("e.txt")));
    for (params, message) in [
        (json!({"sourcePath": src, "destinationPath": dst}), "missing field `recursive`"),
        (json!({"sourcePath": src, "recursive": false}), "missing field `destinationPath`"),
        (json!({}), "missing field `sourcePath`"),
        (
            json!({"sourcePath": src, "destinationPath": dst, "recursive": null}),
            "invalid type: null, expected a boolean",
        ),
    ] {
        assert_eq!(c.err("fs/copy", params.clone()).await, invalid_params(message), "{params}");
    }
    assert!(!exists(&p("e.txt")));
}

#[tokio::test]
async fn copy_directories() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("copy-dirs", Transport::Ws);
    let p = |name: &str| dir.join(name);
    let src = p("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha").unwrap();
    std::fs::write(src.join("bytes.bin"), all_bytes()).unwrap();
    std::fs::write(src.join("sub/b.txt"), "beta").unwrap();
    std::fs::write(p("outside.txt"), "outside").unwrap();
    symlink("a.txt", src.join("link_rel")).unwrap();
    symlink(p("outside.txt"), src.join("link_abs")).unwrap();
    symlink("nowhere", src.join("broken")).unwrap();
    symlink("sub", src.join("link_dir")).unwrap();
    let links = ["link_rel", "link_abs", "broken", "link_dir"];

    // The copy reproduces the tree; links stay links with the same text.
    let check_copy = |dst: &Path| {
        assert_eq!(std::fs::read(dst.join("a.txt")).unwrap(), b"alpha");
        assert_eq!(std::fs::read(dst.join("bytes.bin")).unwrap(), all_bytes());
        assert_eq!(std::fs::read(dst.join("sub/b.txt")).unwrap(), b"beta");
        assert!(dst.join("sub/deeper").is_dir() && !is_symlink(&dst.join("sub")));
        for name in links {
            assert!(is_symlink(&dst.join(name)), "{name} copied as a link");
            assert_eq!(std::fs::read_link(dst.join(name)).unwrap(), std::fs::read_link(src.join(name)).unwrap());
        }
    };
    assert_eq!(c.ok("fs/copy", copy_params(&src, &p("dst"), true)).await, json!({}));
    check_copy(&p("dst"));
    // The source is untouched.
    assert_eq!(std::fs::read_dir(&src).unwrap().count(), 7);

    // A directory needs recursive:true.
    assert_eq!(
        c.err("fs/copy", copy_params(&src, &p("nr"), false)).await,
        invalid_request("fs/copy requires recursive: true when sourcePath is a directory")
    );
    assert!(!exists(&p("nr")));
    // Missing destination parent.
    assert_eq!(c.err("fs/copy", copy_params(&src, &p("no-dir/dst"), true)).await, enoent());
    assert!(!exists(&p("no-dir")));

    // Into itself or a descendant.
    let into_itself = invalid_request("fs/copy cannot copy a directory to itself or one of its descendants");
    for dest in [src.clone(), src.join("inner"), src.join("sub/deeper/inner"), p("dst/../src/sub/x")] {
        assert_eq!(c.err("fs/copy", copy_params(&src, &dest, true)).await, into_itself, "{}", dest.display());
    }
    assert!(!exists(&src.join("inner")) && !exists(&src.join("sub/deeper/inner")) && !exists(&src.join("sub/x")));

    // Onto an existing directory: merged, files overwritten, unrelated files kept.
    let merge_dst = p("merge");
    std::fs::create_dir_all(merge_dst.join("sub")).unwrap();
    std::fs::write(merge_dst.join("keep.txt"), "keep").unwrap();
    std::fs::write(merge_dst.join("a.txt"), "an older and longer alpha").unwrap();
    std::fs::write(merge_dst.join("sub/keep2.txt"), "keep2").unwrap();
    assert_eq!(c.ok("fs/copy", copy_params(&src, &merge_dst, true)).await, json!({}));
    check_copy(&merge_dst);
    assert_eq!(std::fs::read(merge_dst.join("keep.txt")).unwrap(), b"keep");
    assert_eq!(std::fs::read(merge_dst.join("sub/keep2.txt")).unwrap(), b"keep2");

    // Copying links onto existing links fails.
    assert_eq!(c.err("fs/copy", copy_params(&src, &p("dst"), true)).await, os_error("File exists (os error 17)"));
    assert_eq!(
        c.err("fs/copy", copy_params(&src.join("link_rel"), &p("dst/link_rel"), false)).await,
        os_error("File exists (os error 17)")
    );
    assert_eq!(std::fs::read_link(p("dst/link_rel")).unwrap(), PathBuf::from("a.txt"));
}

// ---------------------------------------------------------------------------
// 6.8 fs/canonicalize
// ---------------------------------------------------------------------------

#[tokio::test]
async fn canonicalize_rows() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let dir = fresh("canon", Transport::Ws);
    let p = |name: &str| dir.join(name);
    std::fs::create_dir_all(p("d1/sub")).unwrap();
    std::fs::write(p("d1/b.txt"), "b").unwrap();
    std::fs::write(p("a b.txt"), "spaced").unwrap();
    symlink(p("d1"), p("link_d1")).unwrap();
    symlink("d1/b.txt", p("link_b")).unwrap();
    symlink("link_b", p("chain")).unwrap();
    symlink("../b.txt", p("d1/sub/up")).unwrap();
    symlink("nowhere", p("broken")).unwrap();
    let canon = |path: String| json!({"path": path});

    for (path, real) in [
        (uri(&p("d1/b.txt")), p("d1/b.txt")),
        // The spec example: the URI parser removes `sub/..` before the link is resolved.
        (format!("{}/sub/../b.txt", uri(&p("link_d1"))), p("d1/b.txt")),
        (uri(&p("link_d1/b.txt")), p("d1/b.txt")),
        (uri(&p("link_b")), p("d1/b.txt")),
        (uri(&p("chain")), p("d1/b.txt")),
        (uri(&p("d1/sub/up")), p("d1/b.txt")),
        (uri(&p("link_d1")), p("d1")),
        (format!("{}/", uri(&p("link_d1"))), p("d1")),
        (uri(&p("link_d1/sub")), p("d1/sub")),
        (uri(&dir), dir.clone()),
    ] {
        assert_eq!(c.ok("fs/canonicalize", canon(path.clone())).await, json!({"path": uri(&real)}), "{path}");
    }
    // Output is percent-encoded.
    let r = c.ok("fs/canonicalize", canon(uri(&p("a b.txt")))).await;
    assert_eq!(r, json!({"path": format!("file://{}/a%20b.txt", dir.display())}));
    assert_eq!(c.ok("fs/canonicalize", canon("file:///".to_owned())).await, json!({"path": "file:///"}));
    assert_eq!(c.ok("fs/canonicalize", canon("file://localhost/".to_owned())).await, json!({"path": "file:///"}));

    for name in ["missing", "broken", "link_d1/missing", "no-dir/x"] {
        assert_eq!(c.err("fs/canonicalize", canon(uri(&p(name)))).await, enoent(), "{name}");
    }
    assert_eq!(c.err("fs/canonicalize", canon(uri(&p("d1/b.txt/x")))).await, os_error("Not a directory (os error 20)"));
    // A link loop.
    symlink("loop2", p("loop1")).unwrap();
    symlink("loop1", p("loop2")).unwrap();
    assert_eq!(c.err("fs/canonicalize", canon(uri(&p("loop1")))).await, os_error("Symbolic link loop (os error 40)"));
}

// ---------------------------------------------------------------------------
// 6.9 fs/walk
// ---------------------------------------------------------------------------

/// ```text
/// base/root/a/x.txt
/// base/root/a/deep/y.txt
/// base/root/a/deep/up -> base/root     (a cycle)
/// base/root/b.txt
/// base/root/c/                          (empty)
/// base/root/broken -> nowhere
/// base/root/fifo
/// base/root/link_a -> a                 (to a directory also walked directly)
/// base/root/link_file -> b.txt
/// base/root/zext -> base/outside        (to a directory walked only through the link)
/// base/outside/o.txt
/// base/outside/inner/
/// ```
/// Returns (base, root).
fn walk_tree(name: &str) -> (PathBuf, PathBuf) {
    let base = fresh(name, Transport::Ws);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("a/deep")).unwrap();
    std::fs::create_dir(root.join("c")).unwrap();
    std::fs::write(root.join("a/x.txt"), "x").unwrap();
    std::fs::write(root.join("a/deep/y.txt"), "y").unwrap();
    std::fs::write(root.join("b.txt"), "b").unwrap();
    symlink(&root, root.join("a/deep/up")).unwrap();
    symlink("nowhere", root.join("broken")).unwrap();
    mkfifo(&root.join("fifo"));
    symlink("a", root.join("link_a")).unwrap();
    symlink("b.txt", root.join("link_file")).unwrap();
    std::fs::create_dir_all(base.join("outside/inner")).unwrap();
    std::fs::write(base.join("outside/o.txt"), "o").unwrap();
    symlink(base.join("outside"), root.join("zext")).unwrap();
    (base, root)
}

/// The whole walk of [`walk_tree`] without following links, in order.
const NO_FOLLOW: [(&str, &str); 6] =
    [("a", D), ("b.txt", F), ("c", D), ("a/deep", D), ("a/x.txt", F), ("a/deep/y.txt", F)];

/// The whole walk of [`walk_tree`] following directory links, in order.
const FOLLOW: [(&str, &str); 11] = [
    ("a", D),
    ("b.txt", F),
    ("c", D),
    ("link_a", D),
    ("zext", D),
    ("a/deep", D),
    ("a/x.txt", F),
    ("zext/inner", D),
    ("zext/o.txt", F),
    ("a/deep/up", D),
    ("a/deep/y.txt", F),
];

#[tokio::test]
async fn walk_is_breadth_first_sorted_and_skips_non_regular_entries() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let (_base, root) = walk_tree("walk-order");

    let expected = walked(&root, &NO_FOLLOW, false);
    assert_eq!(c.ok("fs/walk", walk_params(&root, 10, 100, 1000, false)).await, expected);
    // A trailing slash on the root changes nothing.
    let mut params = walk_params(&root, 10, 100, 1000, false);
    params["path"] = json!(format!("{}/", uri(&root)));
    assert_eq!(c.ok("fs/walk", params).await, expected);

    // maxDepth: 0 = the root's children only, each level adds one generation.
    assert_eq!(c.ok("fs/walk", walk_params(&root, 0, 100, 1000, false)).await, walked(&root, &NO_FOLLOW[..3], false));
    assert_eq!(c.ok("fs/walk", walk_params(&root, 1, 100, 1000, false)).await, walked(&root, &NO_FOLLOW[..5], false));
    assert_eq!(c.ok("fs/walk", walk_params(&root, 2, 100, 1000, false)).await, expected);
    assert_eq!(c.ok("fs/walk", walk_params(&root, 64, 10_000, 50_000, false)).await, expected);

    // A subdirectory as the root.
    let r = c.ok("fs/walk", walk_params(&root.join("a"), 10, 100, 1000, false)).await;
    assert_eq!(r, walked(&root.join("a"), &[("deep", D), ("x.txt", F), ("deep/y.txt", F)], false));
}

#[tokio::test]
async fn walk_follows_directory_symlinks_once() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let (base, root) = walk_tree("walk-follow");

    assert_eq!(c.ok("fs/walk", walk_params(&root, 10, 100, 1000, true)).await, walked(&root, &FOLLOW, false));
    assert_eq!(c.ok("fs/walk", walk_params(&root, 0, 100, 1000, true)).await, walked(&root, &FOLLOW[..5], false));
    assert_eq!(c.ok("fs/walk", walk_params(&root, 1, 100, 1000, true)).await, walked(&root, &FOLLOW[..9], false));

    // A pure cycle terminates: links back to the root and to their own directory.
    let cyc = base.join("cycle");
    std::fs::create_dir_all(cyc.join("s")).unwrap();
    symlink("..", cyc.join("s/back")).unwrap();
    symlink(".", cyc.join("s/self")).unwrap();
    symlink(&cyc, cyc.join("root_again")).unwrap();
    let expected = walked(&cyc, &[("root_again", D), ("s", D), ("s/back", D), ("s/self", D)], false);
    assert_eq!(c.ok("fs/walk", walk_params(&cyc, 64, 10_000, 50_000, true)).await, expected);
    let expected = walked(&cyc, &[("s", D)], false);
    assert_eq!(c.ok("fs/walk", walk_params(&cyc, 64, 10_000, 50_000, false)).await, expected);
}

#[tokio::test]
async fn walk_limits_truncate() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let (_base, root) = walk_tree("walk-limits");

    // maxEntries caps the listed entries (skipped links and FIFOs do not count).
    for (max_entries, listed, truncated) in [(1, 1, true), (2, 2, true), (3, 3, true), (5, 5, true), (6, 6, false)] {
        let r = c.ok("fs/walk", walk_params(&root, 10, 100, max_entries, false)).await;
        assert_eq!(r, walked(&root, &NO_FOLLOW[..listed], truncated), "maxEntries {max_entries}");
    }
    for (max_entries, listed, truncated) in [(4, 4, true), (5, 5, true), (10, 10, true), (11, 11, false)] {
        let r = c.ok("fs/walk", walk_params(&root, 10, 100, max_entries, true)).await;
        assert_eq!(r, walked(&root, &FOLLOW[..listed], truncated), "following, maxEntries {max_entries}");
    }

    // maxDirectories counts directories read, the root included: root, a, c, a/deep.
    for (max_directories, listed, truncated) in [(1, 3, true), (2, 5, true), (3, 5, true), (4, 6, false)] {
        let r = c.ok("fs/walk", walk_params(&root, 10, max_directories, 1000, false)).await;
        assert_eq!(r, walked(&root, &NO_FOLLOW[..listed], truncated), "maxDirectories {max_directories}");
    }
    // Following: root, a, c, zext, a/deep, zext/inner (link_a and up are not read again).
    for (max_directories, listed, truncated) in
        [(1, 5, true), (3, 7, true), (4, 9, true), (5, 11, true), (6, 11, false)]
    {
        let r = c.ok("fs/walk", walk_params(&root, 10, max_directories, 1000, true)).await;
        assert_eq!(r, walked(&root, &FOLLOW[..listed], truncated), "following, maxDirectories {max_directories}");
    }
}

#[tokio::test]
async fn walk_roots_and_parameter_errors() {
    let mut conn = Conn::ready(Transport::Ws).await;
    let c = &mut conn.client;
    let (_base, root) = walk_tree("walk-params");

    // Roots that are not directories.
    for name in ["b.txt", "link_file"] {
        for follow in [false, true] {
            let r = c.ok("fs/walk", walk_params(&root.join(name), 10, 100, 1000, follow)).await;
            assert_eq!(r, walked_nothing(), "{name} follow {follow}");
        }
    }
    let r = c.ok("fs/walk", walk_params(&root.join("link_a"), 10, 100, 1000, false)).await;
    assert_eq!(r, walked_nothing(), "a directory link as root, not followed");
    assert_eq!(c.err("fs/walk", walk_params(&root.join("missing"), 10, 100, 1000, false)).await, enoent());
    assert_eq!(c.err("fs/walk", walk_params(&root.join("no-dir/x"), 10, 100, 1000, false)).await, enoent());

    // Limits: zero, and the maximums (which themselves are fine).
    let zero = invalid_request("filesystem walk limits must be greater than zero");
    let too_large =
        invalid_request("filesystem walk limits exceed maximums: depth=64, directories=10000, entries=50000");
    for (depth, dirs, entries, expected) in [
        (10, 0, 1000, &zero),
        (10, 100, 0, &zero),
        (0, 0, 0, &zero),
        (65, 100, 1000, &too_large),
        (10, 10_001, 1000, &too_large),
        (10, 100, 50_001, &too_large),
        (u32::MAX as u64, 10_001, 50_001, &too_large),
    ] {
        for follow in [false, true] {
            let got = c.err("fs/walk", walk_params(&root, depth, dirs, entries, follow)).await;
            assert_eq!(&got, expected, "depth={depth} directories={dirs} entries={entries}");
        }
    }
    let r = c.ok("fs/walk", walk_params(&root, 0, 1, 1, false)).await;
    assert_eq!(r, walked(&root, &NO_FOLLOW[..1], true));

    // All options are required, reported in declaration order.
    let path = uri(&root);
    for (options, message) in [
        (None, "missing field `options`"),
        (Some(json!({})), "missing field `maxDepth`"),
        (
            Some(json!({"maxEntries": 1, "maxDirectories": 1, "followDirectorySymlinks": false})),
            "missing field `maxDepth`",
        ),
        (Some(json!({"maxDepth": 1})), "missing field `maxDirectories`"),
        (Some(json!({"maxDepth": 1, "maxDirectories": 1})), "missing field `maxEntries`"),
        (Some(json!({"maxDepth": 1, "maxDirectories": 1, "maxEntries": 1})), "missing field `followDirectorySymlinks`"),
    ] {
        let mut params = json!({"path": path});
        if let Some(options) = options {
            params["options"] = options;
        }
        assert_eq!(c.err("fs/walk", params.clone()).await, invalid_params(message), "{params}");
    }
}

// ---------------------------------------------------------------------------
// sandbox (every method) and pipelining
// ---------------------------------------------------------------------------

on_both_transports!(sandbox_null_is_accepted_and_restricting_is_refused);

async fn sandbox_null_is_accepted_and_restricting_is_refused(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let dir = fresh("sandbox", t);
    let p = |name: &str| dir.join(name);
    std::fs::write(p("a.txt"), "hello").unwrap();
    std::fs::create_dir(p("d")).unwrap();
    let opts = json!({"maxDepth": 1, "maxDirectories": 10, "maxEntries": 10, "followDirectorySymlinks": false});
    let calls = |n: &str| {
        [
            ("fs/readFile", json!({"path": uri(&p("a.txt"))})),
            ("fs/writeFile", json!({"path": uri(&p(&format!("w-{n}"))), "dataBase64": "eA=="})),
            ("fs/writeFile", json!({"path": uri(&p("a.txt")), "dataBase64": "aGVsbG8="})),
            ("fs/createDirectory", json!({"path": uri(&p(&format!("nd-{n}/x")))})),
            ("fs/getMetadata", json!({"path": uri(&p("a.txt"))})),
            ("fs/readDirectory", json!({"path": uri(&p("d"))})),
            (
                "fs/copy",
                json!({"sourcePath": uri(&p("a.txt")), "destinationPath": uri(&p(&format!("cp-{n}"))), "recursive": false}),
            ),
            ("fs/canonicalize", json!({"path": uri(&p("a.txt"))})),
            ("fs/walk", json!({"path": uri(&p("d")), "options": opts})),
            ("fs/remove", json!({"path": uri(&p(&format!("cp-{n}")))})),
        ]
    };

    let restricting = json!({
        "permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": []}, "network": "restricted"},
        "windowsSandboxLevel": "disabled",
    });
    let refused = invalid_params(
        "sandbox permissions of type `managed` are not supported by this execd build: refusing to run the command unsandboxed",
    );
    std::fs::write(p("cp-r"), "must survive").unwrap();
    for (method, params) in calls("r") {
        let params = with(params, json!({"sandbox": restricting}));
        assert_eq!(c.err(method, params.clone()).await, refused, "{method} {params}");
    }
    // Nothing happened.
    assert!(!exists(&p("w-r")) && !exists(&p("nd-r")));
    assert_eq!(std::fs::read(p("cp-r")).unwrap(), b"must survive", "neither copied over nor removed");
    assert_eq!(std::fs::read(p("a.txt")).unwrap(), b"hello");

    // sandbox:null is no sandbox: every method works.
    for (method, params) in calls("n") {
        let params = with(params, json!({"sandbox": null}));
        let r = c.call(method, params.clone()).await;
        assert!(r.is_ok(), "{method} {params}: {r:?}");
    }
    assert_eq!(std::fs::read(p("w-n")).unwrap(), b"x");
    assert!(p("nd-n/x").is_dir());
    assert!(!exists(&p("cp-n")), "copied, then removed");
}

on_both_transports!(pipelined_requests_take_effect_in_order);

async fn pipelined_requests_take_effect_in_order(t: Transport) {
    let mut conn = Conn::ready(t).await;
    let c = &mut conn.client;
    let dir = fresh("pipeline", t);
    let f = dir.join("f.bin");

    // writeFile then readFile, sent back to back, several pairs before any answer
    // is awaited; answers are collected in reverse order.
    let mut pairs = Vec::new();
    for round in 0..4usize {
        let data: Vec<u8> = pattern(MIB + round).into_iter().map(|b| b.wrapping_add(round as u8)).collect();
        let w = c.send_request("fs/writeFile", json!({"path": uri(&f), "dataBase64": b64(&data)}));
        let r = c.send_request("fs/readFile", json!({"path": uri(&f)}));
        pairs.push((w, r, data));
    }
    for (round, (w, r, data)) in pairs.into_iter().enumerate().rev() {
        let read = into_result(c.response(r).await).expect("readFile");
        assert_eq!(into_result(c.response(w).await), Ok(json!({})));
        assert!(unb64(read["dataBase64"].as_str().unwrap()) == data, "round {round}: the read sees its write");
    }

    // writeFile, remove, getMetadata.
    let g = dir.join("g.txt");
    let w = c.send_request("fs/writeFile", json!({"path": uri(&g), "dataBase64": "eA=="}));
    let rm = c.send_request("fs/remove", json!({"path": uri(&g)}));
    let m = c.send_request("fs/getMetadata", json!({"path": uri(&g)}));
    assert_eq!(into_result(c.response(m).await), Err(enoent()));
    assert_eq!(into_result(c.response(rm).await), Ok(json!({})));
    assert_eq!(into_result(c.response(w).await), Ok(json!({})));
    assert!(!exists(&g));

    // createDirectory, writeFile inside it, copy the tree, walk the copy.
    let nd = dir.join("nd");
    let ids = [
        c.send_request("fs/createDirectory", json!({"path": uri(&nd.join("sub"))})),
        c.send_request("fs/writeFile", json!({"path": uri(&nd.join("sub/h.txt")), "dataBase64": "aGk="})),
        c.send_request(
            "fs/copy",
            json!({"sourcePath": uri(&nd), "destinationPath": uri(&dir.join("nd2")), "recursive": true}),
        ),
        c.send_request("fs/walk", walk_params(&dir.join("nd2"), 5, 10, 10, false)),
    ];
    let walk = into_result(c.response(ids[3]).await).expect("walk");
    assert_eq!(walk, walked(&dir.join("nd2"), &[("sub", D), ("sub/h.txt", F)], false));
    for id in &ids[..3] {
        assert_eq!(into_result(c.response(*id).await), Ok(json!({})), "request {id}");
    }
}

/// Writing to a FIFO never blocks the connection: the request is refused and
/// later filesystem requests on the same connection are still served.
#[tokio::test]
async fn write_opens_refuse_a_fifo_without_blocking() {
    let dir = temp_dir("fifo-write");
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    let uri = format!("file://{}", fifo.display());
    let not_a_file = (-32600, format!("path `{}` is not a file", fifo.display()));
    let server = Server::start(&[]);
    let mut c = server.client().await;
    for follow in [true, false] {
        let params = json!({"path": uri, "dataBase64": "eA==", "followSymlinks": follow});
        assert_eq!(c.err("fs/writeFile", params).await, not_a_file);
    }
    let open = json!({"handleId": "h", "path": uri, "mode": "replace"});
    assert_eq!(c.err("fs/open", open).await, not_a_file);
    let src = dir.join("src.txt");
    std::fs::write(&src, b"x").expect("write");
    let copy = json!({"sourcePath": format!("file://{}", src.display()), "destinationPath": uri, "recursive": false});
    assert_eq!(c.err("fs/copy", copy).await, not_a_file);
    let meta = c.ok("fs/getMetadata", json!({"path": format!("file://{}", src.display())})).await;
    assert_eq!(meta["size"], 1);
}

/// A destination that is a link into the source is caught before copying.
#[tokio::test]
async fn copy_into_itself_through_a_symlinked_destination_is_refused() {
    let dir = temp_dir("copy-link-into-self");
    std::fs::create_dir_all(dir.join("src/s")).expect("mkdir");
    std::os::unix::fs::symlink(dir.join("src/s"), dir.join("link")).expect("symlink");
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let params = json!({
        "sourcePath": format!("file://{}", dir.join("src").display()),
        "destinationPath": format!("file://{}", dir.join("link").display()),
        "recursive": true,
    });
    let expected = (-32600, "fs/copy cannot copy a directory to itself or one of its descendants".to_owned());
    assert_eq!(c.err("fs/copy", params).await, expected);
    assert_eq!(std::fs::read_dir(dir.join("src/s")).expect("read_dir").count(), 0, "nothing was copied");
}
