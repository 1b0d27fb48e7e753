//! Sessions (detach, resume, retention, expiry), request concurrency and
//! resource hygiene, against the real binary over WebSocket.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Ends the client's connection with a Close frame and waits until it is gone.
async fn detach(c: &mut Client) {
    c.send_ws(Message::Close(None));
    c.closed().await;
}

/// A new connection resuming `session_id`; retries while the server still sees
/// the old connection attached (-32010). Returns the client and the result.
async fn resume_retrying(server: &Server, session_id: &str) -> (Client, Value) {
    within("resume of a detached session", async {
        let mut c = server.connect().await;
        loop {
            match c.resume(session_id).await {
                Ok(r) => return (c, r),
                Err((-32010, _)) => retry_pause().await,
                Err(e) => panic!("resume {session_id} failed: {e:?}"),
            }
        }
    })
    .await
}

/// Collects stdout of process `id` (from `process/output` notifications) until
/// it holds `n` complete lines; returns them parsed as pids.
async fn read_pids(c: &mut Client, id: &str, n: usize) -> Vec<u32> {
    let mut out = Vec::new();
    while out.iter().filter(|b| **b == b'\n').count() < n {
        let p = c.notification("process/output", id).await;
        out.extend(unb64(p["chunk"].as_str().expect("chunk")));
    }
    let text = String::from_utf8(out).expect("utf8");
    let pids: Vec<u32> = text.lines().map(|l| l.trim().parse().unwrap_or_else(|_| panic!("pid line {l:?}"))).collect();
    assert_eq!(pids.len(), n, "{text:?}");
    pids
}

/// Every message in arrival order up to and including the response to `id`.
async fn messages_until_response(c: &mut Client, id: i64) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let v = c.recv().await.unwrap_or_else(|| panic!("connection closed before response {id}"));
        let done = v.get("id") == Some(&json!(id)) && v.get("method").is_none();
        seen.push(v);
        if done {
            return seen;
        }
    }
}

/// Whether `/proc/PID` is gone (the process was reaped).
fn reaped(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Number of open file descriptors of `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd").count()
}

/// Children of `pid` that are zombies.
fn zombie_children(pid: u32) -> Vec<u32> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
        if state == Some("Z") && ppid == Some(pid) {
            zombies.push(child);
        }
    }
    zombies
}

/// Resident set size of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS value")
}

/// Polls `probe` until it returns `Ok`, under [`DEADLINE`]; on timeout fails
/// with the last `Err` description (for /proc conditions with no event).
async fn poll_until<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let mut last = String::new();
    let outcome = tokio::time::timeout(DEADLINE, async {
        loop {
            match probe() {
                Ok(v) => return v,
                Err(e) => last = e,
            }
            retry_pause().await;
        }
    })
    .await;
    outcome.unwrap_or_else(|_| panic!("timed out waiting for {what}; last observation: {last}"))
}

/// Kills a pid the test learnt about (a grandchild), if still there.
fn kill_pid(pid: u32) {
    let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
}

/// Decodes the `chunks` of a `process/read` result into (seq, stream, text).
fn chunks(read: &Value) -> Vec<(u64, String, String)> {
    read["chunks"]
        .as_array()
        .expect("chunks")
        .iter()
        .map(|c| {
            (
                c["seq"].as_u64().expect("seq"),
                c["stream"].as_str().expect("stream").to_owned(),
                String::from_utf8(unb64(c["chunk"].as_str().expect("chunk"))).expect("utf8"),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1-2. Detach and resume
// ---------------------------------------------------------------------------

#[tokio::test]
async fn resumed_session_keeps_its_process_and_gets_its_live_notifications() {
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    let script = "echo one; read x; echo two; read y; echo three";
    a.start("p", &["sh", "-c", script], json!({"pipeStdin": true})).await.unwrap();
    let first = a.notification("process/output", "p").await;
    assert_eq!(first["seq"], 1, "{first}");
    assert_eq!(unb64(first["chunk"].as_str().unwrap()), b"one\n");
    detach(&mut a).await;

    let (mut b, init) = resume_retrying(&server, &sid).await;
    assert_eq!(init["sessionId"], json!(sid), "resume returns the same session id");
    assert!(init["environmentInfo"].is_object(), "{init}");

    let w = b.ok("process/write", json!({"processId": "p", "chunk": b64(b"x\n"), "writeId": "w1"})).await;
    assert_eq!(w, json!({"status": "accepted"}));
    let two = b.notification("process/output", "p").await;
    assert_eq!(two["seq"], 2, "live notification after resume keeps the seq numbering: {two}");
    assert_eq!(two["stream"], "stdout");
    assert_eq!(unb64(two["chunk"].as_str().unwrap()), b"two\n");

    let read = b.ok("process/read", json!({"processId": "p", "afterSeq": 0})).await;
    assert_eq!(
        chunks(&read),
        vec![(1, "stdout".into(), "one\n".into()), (2, "stdout".into(), "two\n".into())],
        "retained output from before and after the detach: {read}"
    );
    assert_eq!(read["exited"], false, "{read}");
    assert_eq!(read["closed"], false, "{read}");

    // The process finishes normally on the resumed connection, with contiguous seqs.
    b.ok("process/write", json!({"processId": "p", "chunk": b64(b"y\n"), "writeId": "w2"})).await;
    let run = b.events_until_closed("p").await;
    assert_eq!(run.stdout, b"three\n");
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.seqs(), vec![3, 4, 5], "{:?}", run.events);
}

#[tokio::test]
async fn output_produced_while_detached_is_retained_but_not_replayed() {
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    a.start("p", &["sh", "-c", "echo $$; read x; echo late"], json!({"pipeStdin": true})).await.unwrap();
    let pid = read_pids(&mut a, "p", 1).await[0];
    detach(&mut a).await;

    // Feed the child's stdin pipe directly (no connection is attached), so
    // everything after this happens while the session is detached.
    {
        use std::io::Write;
        let mut stdin =
            std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/fd/0")).expect("open child's stdin");
        stdin.write_all(b"x\n").expect("write child's stdin");
    }
    eventually("the child to finish and be reaped while detached", || reaped(pid)).await;

    let (mut b, init) = resume_retrying(&server, &sid).await;
    assert_eq!(init["sessionId"], json!(sid));
    // Wait (long-poll) until closed: exited is seq 3, so only `closed` wakes this.
    let r = b.ok("process/read", json!({"processId": "p", "afterSeq": 3, "waitMs": 30000})).await;
    assert_eq!(r["closed"], true, "{r}");
    let read = b.ok("process/read", json!({"processId": "p", "afterSeq": 0})).await;
    assert_eq!(
        chunks(&read),
        vec![(1, "stdout".into(), format!("{pid}\n")), (2, "stdout".into(), "late\n".into())],
        "output produced while detached is retained: {read}"
    );
    assert_eq!(read["exited"], true, "{read}");
    assert_eq!(read["exitCode"], 0, "{read}");
    assert_eq!(read["closed"], true, "{read}");
    assert_eq!(read["nextSeq"], 5, "output 1, 2, exited 3, closed 4: {read}");

    // Nothing produced while detached is replayed on the new connection.
    let id = b.send_request("environment/status", json!({}));
    let seen = messages_until_response(&mut b, id).await;
    for v in &seen {
        let method = v["method"].as_str().unwrap_or("");
        assert!(
            method != "process/output" && method != "process/exited",
            "notification produced while detached was replayed: {v}; all: {seen:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 3. Resume errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn resuming_an_attached_session_is_refused_and_the_owner_keeps_working() {
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    a.start("s", &["sleep", "1000"], json!({})).await.unwrap();

    let mut b = server.connect().await;
    let err = b.resume(&sid).await.unwrap_err();
    assert_eq!(err, (-32010, format!("session {sid} is already attached to another connection")));

    // The old connection is not evicted: it still serves requests and owns its process.
    assert_eq!(a.ok("environment/status", json!({})).await, json!({"status": "ready"}));
    let read = a.ok("process/read", json!({"processId": "s"})).await;
    assert_eq!(read["exited"], false, "{read}");

    // A failed initialize leaves b un-initialized: it may try again.
    let err = b.resume("nope").await.unwrap_err();
    assert_eq!(err, (-32600, "unknown session id nope".to_owned()));
    let unknown = "00000000-0000-4000-8000-000000000000";
    let err = b.resume(unknown).await.unwrap_err();
    assert_eq!(err, (-32600, format!("unknown session id {unknown}")));
    b.handshake().await;
    assert_ne!(b.session_id, sid, "a fresh initialize creates a new session");
    assert_eq!(
        b.err("process/read", json!({"processId": "s"})).await,
        (-32600, "unknown process id s".to_owned()),
        "the new session does not see the other session's process"
    );

    assert_eq!(a.ok("process/terminate", json!({"processId": "s"})).await, json!({"running": true}));
    assert_eq!(a.events_until_closed("s").await.exit_code, Some(137));
}

// ---------------------------------------------------------------------------
// 4. Process ids are scoped to a session
// ---------------------------------------------------------------------------

#[tokio::test]
async fn process_ids_are_scoped_to_their_session() {
    let server = Server::start(&[]);
    let mut a = server.client().await;
    let mut b = server.client().await;
    assert_ne!(a.session_id, b.session_id);

    a.start("p1", &["sh", "-c", "echo from-a"], json!({})).await.unwrap();
    b.start("p1", &["sh", "-c", "echo from-b"], json!({})).await.expect("same id in another session");
    a.start("only-a", &["sleep", "1000"], json!({})).await.unwrap();

    let run_a = a.events_until_closed("p1").await;
    let run_b = b.events_until_closed("p1").await;
    assert_eq!(run_a.stdout, b"from-a\n");
    assert_eq!(run_b.stdout, b"from-b\n");
    assert_eq!(run_a.seqs(), vec![1, 2, 3]);
    assert_eq!(run_b.seqs(), vec![1, 2, 3]);

    let read_b = b.ok("process/read", json!({"processId": "p1"})).await;
    assert_eq!(chunks(&read_b), vec![(1, "stdout".into(), "from-b\n".into())]);
    let read_a = a.ok("process/read", json!({"processId": "p1"})).await;
    assert_eq!(chunks(&read_a), vec![(1, "stdout".into(), "from-a\n".into())]);

    assert_eq!(
        b.err("process/read", json!({"processId": "only-a"})).await,
        (-32600, "unknown process id only-a".into())
    );
    assert_eq!(
        b.ok("process/write", json!({"processId": "only-a", "chunk": "eA==", "writeId": "w"})).await,
        json!({"status": "unknownProcess"})
    );
    assert_eq!(b.ok("process/terminate", json!({"processId": "only-a"})).await, json!({"running": false}));
    // Session B's terminate did not touch A's process.
    let read = a.ok("process/read", json!({"processId": "only-a"})).await;
    assert_eq!(read["exited"], false, "{read}");
    assert_eq!(a.ok("process/terminate", json!({"processId": "only-a"})).await, json!({"running": true}));
}

// ---------------------------------------------------------------------------
// 5. Session expiry
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_session_kills_its_process_groups() {
    let server = Server::start(&["--session-ttl-secs", "1"]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    a.start("p", &["sh", "-c", "echo $$; exec sleep 1000"], json!({})).await.unwrap();
    a.start("g", &["sh", "-c", "sleep 1000 & echo $!; echo $$; wait"], json!({})).await.unwrap();
    let p = read_pids(&mut a, "p", 1).await[0];
    let g = read_pids(&mut a, "g", 2).await;
    let pids = [p, g[0], g[1]];
    assert!(pids.iter().all(|pid| alive(*pid)), "children run before the detach: {pids:?}");
    detach(&mut a).await;

    eventually("every process of the expired session (child and grandchild) to die", || {
        pids.iter().all(|pid| !alive(*pid))
    })
    .await;
    let mut b = server.connect().await;
    assert_eq!(b.resume(&sid).await.unwrap_err(), (-32600, format!("unknown session id {sid}")));
}

#[tokio::test]
async fn each_detach_restarts_the_session_clock() {
    // `server` holds the session under test (TTL 2 s). Detached control sessions
    // serve as clocks: once one has expired (its process died), its TTL has run
    // out since its detach, measured by the server itself.
    let server = Server::start(&["--session-ttl-secs", "2"]);
    let clock_server = Server::start(&["--session-ttl-secs", "1"]);
    let mut a = server.client().await;
    let sid = a.session_id.clone();
    a.start("p", &["sh", "-c", "echo $$; exec sleep 1000"], json!({})).await.unwrap();
    let pid_a = read_pids(&mut a, "p", 1).await[0];
    let mut late_clock = server.client().await;
    late_clock.start("c", &["sh", "-c", "echo $$; exec sleep 1000"], json!({})).await.unwrap();
    let pid_late = read_pids(&mut late_clock, "c", 1).await[0];
    let mut short_clock = clock_server.client().await;
    short_clock.start("c", &["sh", "-c", "echo $$; exec sleep 1000"], json!({})).await.unwrap();
    let pid_short = read_pids(&mut short_clock, "c", 1).await[0];

    // Several detach/resume cycles, each resume immediately (well within the TTL).
    // A successful resume proves the server processed the detach before it.
    for cycle in 0..3 {
        detach(&mut a).await;
        let (c, init) = resume_retrying(&server, &sid).await;
        a = c;
        assert_eq!(init["sessionId"], json!(sid), "cycle {cycle}");
        let read = a.ok("process/read", json!({"processId": "p"})).await;
        assert_eq!(read["exited"], false, "cycle {cycle}: {read}");
    }

    // Both clocks start after every detach so far (call the earliest one t0).
    detach(&mut late_clock).await; // expires at ~t0 + 2 s + a few ms
    detach(&mut short_clock).await; // expires at ~t0 + 1 s + a few ms
    eventually("the 1 s clock session to expire", || !alive(pid_short)).await;
    // Detach again at ~t0 + 1 s: the timers of the earlier detaches (~t0 + 2 s)
    // now fire while the session is detached; they must not expire it, since
    // this detach's own TTL runs until ~t0 + 3 s.
    detach(&mut a).await;
    eventually("the 2 s clock session to expire", || !alive(pid_late)).await;
    assert!(alive(pid_a), "the session was expired by the timer of an earlier detach");
    let (mut a, init) = resume_retrying(&server, &sid).await;
    assert_eq!(init["sessionId"], json!(sid));
    let read = a.ok("process/read", json!({"processId": "p"})).await;
    assert_eq!(read["exited"], false, "{read}");
    assert_eq!(a.ok("process/terminate", json!({"processId": "p"})).await, json!({"running": true}));
    assert_eq!(a.events_until_closed("p").await.exit_code, Some(137));
}

// ---------------------------------------------------------------------------
// 6. Closed-process retention
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_closed_process_stays_readable_for_its_ttl_then_its_id_is_free() {
    let server = Server::start(&["--closed-process-ttl-secs", "2"]);
    let mut c = server.client().await;
    // Still running (and exited-but-not-closed) processes are not subject to the TTL.
    c.start("running", &["sleep", "1000"], json!({})).await.unwrap();
    c.start("held", &["sh", "-c", "sleep 1000 & echo $!"], json!({})).await.unwrap();
    let holder = read_pids(&mut c, "held", 1).await[0];
    let exited = c.notification("process/exited", "held").await;
    assert_eq!(exited["exitCode"], 0, "{exited}");

    c.start("p", &["sh", "-c", "echo hi"], json!({})).await.unwrap();
    let run = c.events_until_closed("p").await;
    assert_eq!(run.stdout, b"hi\n");

    let read = c.ok("process/read", json!({"processId": "p"})).await;
    assert_eq!(read["closed"], true, "{read}");
    assert_eq!(read["exited"], true, "{read}");
    assert_eq!(chunks(&read), vec![(1, "stdout".into(), "hi\n".into())]);
    assert_eq!(c.start("p", &["true"], json!({})).await.unwrap_err(), (-32600, "process p already exists".into()));

    let gone = within("the closed process to be forgotten", async {
        loop {
            match c.call("process/read", json!({"processId": "p"})).await {
                Ok(r) => assert_eq!(r["closed"], true, "{r}"),
                Err(e) => return e,
            }
            retry_pause().await;
        }
    })
    .await;
    assert_eq!(gone, (-32600, "unknown process id p".to_owned()));

    // The id is free again: a new process starts with seq 1.
    c.start("p", &["sh", "-c", "echo again"], json!({})).await.expect("id reusable after retention");
    let run = c.events_until_closed("p").await;
    assert_eq!(run.stdout, b"again\n");
    assert_eq!(run.seqs(), vec![1, 2, 3]);

    // More than the TTL has passed since `running` and `held` started: still there.
    let read = c.ok("process/read", json!({"processId": "running"})).await;
    assert_eq!(read["exited"], false, "{read}");
    let read = c.ok("process/read", json!({"processId": "held"})).await;
    assert_eq!((read["exited"].clone(), read["closed"].clone()), (json!(true), json!(false)), "{read}");

    // Once the grandchild lets go of the output, `held` closes and becomes subject to the TTL.
    kill_pid(holder);
    c.notification("process/closed", "held").await;
    let read = c.ok("process/read", json!({"processId": "held"})).await;
    assert_eq!(read["closed"], true, "{read}");
    c.ok("process/terminate", json!({"processId": "running"})).await;
}

// ---------------------------------------------------------------------------
// 7. Concurrency
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ten_thousand_outstanding_requests_do_not_deadlock() {
    const N: usize = 10_000;
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let ids: Vec<i64> = (0..N).map(|_| c.send_request("environment/status", json!({}))).collect();
    let expected: HashSet<i64> = ids.iter().copied().collect();
    let mut seen = HashSet::new();
    while seen.len() < N {
        let v = c.recv().await.expect("connection closed during the burst");
        assert_eq!(v["result"], json!({"status": "ready"}), "{v}");
        let id = v["id"].as_i64().expect("id");
        assert!(expected.contains(&id), "response to an unknown id: {v}");
        assert!(seen.insert(id), "two responses to id {id}");
    }
    let rss = rss_kib(server.pid());
    assert!(rss < 200 * 1024, "server RSS after the burst is {rss} KiB");
    // The connection is still healthy.
    assert_eq!(c.ok("environment/status", json!({})).await, json!({"status": "ready"}));
}

#[tokio::test]
async fn pending_long_polls_do_not_block_later_requests() {
    const POLLS: usize = 200;
    let server = Server::start(&[]);
    let mut c = server.client().await;
    c.start("s", &["sleep", "1000"], json!({})).await.unwrap();
    let polls: Vec<i64> = (0..POLLS)
        .map(|_| c.send_request("process/read", json!({"processId": "s", "afterSeq": 0, "waitMs": 30000})))
        .collect();
    let status = c.send_request("environment/status", json!({}));
    let seen = messages_until_response(&mut c, status).await;
    let polls_set: HashSet<i64> = polls.iter().copied().collect();
    for v in &seen {
        assert!(
            !v["id"].as_i64().is_some_and(|id| polls_set.contains(&id)),
            "a long-poll completed before the process changed: {v}"
        );
    }
    assert_eq!(seen.last().expect("status")["result"], json!({"status": "ready"}));

    assert_eq!(c.ok("process/terminate", json!({"processId": "s"})).await, json!({"running": true}));
    for id in polls {
        let r = into_result(c.response(id).await).unwrap_or_else(|e| panic!("long-poll {id}: {e:?}"));
        assert_eq!(r["exited"], true, "{r}");
        assert_eq!(r["exitCode"], 137, "{r}");
        assert_eq!(r["chunks"], json!([]), "{r}");
    }
}

// ---------------------------------------------------------------------------
// 8. Resource hygiene
// ---------------------------------------------------------------------------

/// `process/start` extra params of the three kinds.
fn kind_params(i: usize) -> Value {
    match i % 3 {
        0 => json!({}),
        1 => json!({"pipeStdin": true}),
        _ => json!({"tty": true}),
    }
}

/// Starts `ids` concurrently (each with its kind) and waits until all closed.
async fn run_batch(c: &mut Client, ids: &[(String, usize)]) {
    let reqs: Vec<(i64, &str)> = ids
        .iter()
        .map(|(id, kind)| {
            let mut params = json!({
                "processId": id,
                "argv": ["true"],
                "cwd": "file:///tmp",
                "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
                "tty": false,
            });
            params.as_object_mut().unwrap().extend(kind_params(*kind).as_object().unwrap().clone());
            (c.send_request("process/start", params), id.as_str())
        })
        .collect();
    for (req, id) in &reqs {
        let r = into_result(c.response(*req).await).unwrap_or_else(|e| panic!("start {id}: {e:?}"));
        assert_eq!(r["processId"], json!(id));
    }
    for (_, id) in &reqs {
        let run = c.events_until_closed(id).await;
        assert_eq!(run.exit_code, Some(0), "{id}: {run:?}");
    }
}

#[tokio::test]
async fn a_thousand_processes_leave_no_fds_and_no_zombies() {
    let server = Server::start(&[]);
    let pid = server.pid();
    let mut c = server.client().await;
    // Warm up with one process of each kind (lazily created runtime descriptors).
    let warm: Vec<(String, usize)> = (0..3).map(|k| (format!("warm{k}"), k)).collect();
    run_batch(&mut c, &warm).await;
    // The baseline is a count that held for several consecutive readings.
    let baseline = poll_until("a stable fd count after warm-up", {
        let mut history = Vec::new();
        move || {
            history.push(fd_count(pid));
            match history.rchunks(5).next() {
                Some(last) if last.len() == 5 && last.iter().all(|n| *n == last[0]) => Ok(last[0]),
                _ => Err(format!("{history:?}")),
            }
        }
    })
    .await;

    let all: Vec<(String, usize)> = (0..1000).map(|i| (format!("h{i}"), i)).collect();
    for batch in all.chunks(50) {
        run_batch(&mut c, batch).await;
    }

    let zombies = zombie_children(pid);
    assert!(zombies.is_empty(), "zombie children of the server: {zombies:?}");
    poll_until("the server's fd count to return to its baseline", || {
        let n = fd_count(pid);
        if n == baseline {
            Ok(())
        } else {
            // Summarise the descriptors by kind (`pipe`, `/dev/ptmx`, `socket`, ...).
            let mut kinds: HashMap<String, usize> = HashMap::new();
            for e in std::fs::read_dir(format!("/proc/{pid}/fd")).into_iter().flatten().flatten() {
                let target = std::fs::read_link(e.path()).map(|p| p.display().to_string()).unwrap_or_default();
                *kinds.entry(target.split(':').next().unwrap_or_default().to_owned()).or_default() += 1;
            }
            Err(format!("{n} fds (baseline {baseline}): {kinds:?}"))
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 9. Ordering guarantees
// ---------------------------------------------------------------------------

#[tokio::test]
async fn events_are_ordered_and_never_precede_the_start_response() {
    const N: usize = 100;
    let server = Server::start(&[]);
    let mut c = server.client().await;
    let mut by_req: HashMap<i64, String> = HashMap::new();
    for i in 0..N {
        let id = format!("o{i}");
        let params = json!({
            "processId": id,
            "argv": ["sh", "-c", "echo out; echo err >&2"],
            "cwd": "file:///tmp",
            "env": {"PATH": "/usr/local/bin:/usr/bin:/bin"},
            "tty": false,
        });
        by_req.insert(c.send_request("process/start", params), id);
    }

    #[derive(Default)]
    struct Seen {
        started: bool,
        events: Vec<(u64, String)>,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        exit_code: Option<i64>,
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut closed = 0;
    while closed < N {
        let v = c.recv().await.expect("connection closed");
        if let Some(method) = v["method"].as_str() {
            let p = &v["params"];
            let id = p["processId"].as_str().unwrap_or_else(|| panic!("{v}")).to_owned();
            let s = seen.entry(id.clone()).or_default();
            assert!(s.started, "{method} for {id} arrived before its process/start response: {v}");
            assert!(!s.events.iter().any(|(_, k)| k == "closed"), "event after closed for {id}: {v}");
            let seq = p["seq"].as_u64().expect("seq");
            match method {
                "process/output" => {
                    assert!(!s.events.iter().any(|(_, k)| k == "exited"), "output after exited for {id}: {v}");
                    let bytes = unb64(p["chunk"].as_str().expect("chunk"));
                    match p["stream"].as_str() {
                        Some("stdout") => s.stdout.extend(bytes),
                        Some("stderr") => s.stderr.extend(bytes),
                        other => panic!("stream {other:?}"),
                    }
                    s.events.push((seq, "output".into()));
                }
                "process/exited" => {
                    s.exit_code = p["exitCode"].as_i64();
                    s.events.push((seq, "exited".into()));
                }
                "process/closed" => {
                    assert!(s.events.iter().any(|(_, k)| k == "exited"), "closed before exited for {id}: {v}");
                    s.events.push((seq, "closed".into()));
                    closed += 1;
                }
                other => panic!("unexpected notification {other}: {v}"),
            }
        } else {
            let req = v["id"].as_i64().expect("response id");
            let id = by_req.get(&req).unwrap_or_else(|| panic!("unexpected response {v}"));
            assert_eq!(v["result"], json!({"processId": id, "sandboxType": "none"}), "{v}");
            let s = seen.entry(id.clone()).or_default();
            assert!(!s.started, "two responses for {id}");
            s.started = true;
        }
    }

    // Nothing at all after closed: a later request's response is the next message.
    let status = c.send_request("environment/status", json!({}));
    let after = messages_until_response(&mut c, status).await;
    assert_eq!(after.len(), 1, "messages after every process closed: {after:?}");

    assert_eq!(seen.len(), N);
    for (id, s) in &seen {
        let seqs: Vec<u64> = s.events.iter().map(|(q, _)| *q).collect();
        let n = seqs.len() as u64;
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "{id}: {:?}", s.events);
        let kinds: Vec<&str> = s.events.iter().map(|(_, k)| k.as_str()).collect();
        assert_eq!(&kinds[kinds.len() - 2..], ["exited", "closed"], "{id}: {:?}", s.events);
        assert!(kinds[..kinds.len() - 2].iter().all(|k| *k == "output"), "{id}: {:?}", s.events);
        assert_eq!(s.stdout, b"out\n", "{id}");
        assert_eq!(s.stderr, b"err\n", "{id}");
        assert_eq!(s.exit_code, Some(0), "{id}");
    }
}

// ---------------------------------------------------------------------------
// 10. Server shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sigterm_to_the_server_kills_every_process() {
    let mut server = Server::start(&[]);
    let mut a = server.client().await;
    a.start("p", &["sh", "-c", "echo $$; exec sleep 1000"], json!({})).await.unwrap();
    a.start("g", &["sh", "-c", "sleep 1000 & echo $!; echo $$; wait"], json!({})).await.unwrap();
    let mut pids = read_pids(&mut a, "p", 1).await;
    pids.extend(read_pids(&mut a, "g", 2).await);
    // A detached session's processes are killed too.
    let mut d = server.client().await;
    d.start("d", &["sh", "-c", "echo $$; exec sleep 1000"], json!({})).await.unwrap();
    pids.extend(read_pids(&mut d, "d", 1).await);
    detach(&mut d).await;
    assert!(pids.iter().all(|p| alive(*p)), "{pids:?}");

    server.stop();
    eventually("every process to die after the server's SIGTERM", || pids.iter().all(|p| !alive(*p))).await;
    assert_eq!(a.closed().await, None, "the connection ends with the server");
}

/// With every pending slot taken (long-polls that will not end), a new request
/// is refused with -32001 before it has any effect, and a client that then goes
/// away is still noticed: its session detaches and can be resumed.
#[tokio::test]
async fn a_saturated_connection_refuses_requests_and_still_notices_a_disconnect() {
    let server = Server::start(&[]);
    let mut c = server.client().await;
    c.start("s", &["sleep", "1000"], json!({})).await.unwrap();
    for _ in 0..16_384 {
        c.send_request("process/read", json!({"processId": "s", "waitMs": 600_000}));
    }
    let refused = c.send_request(
        "process/start",
        json!({
            "processId": "never", "argv": ["true"], "cwd": "file:///tmp", "env": {}, "tty": false
        }),
    );
    let overloaded = "server overloaded: too many pending requests on this connection; retry later";
    assert_eq!(into_result(c.response(refused).await), Err((-32001, overloaded.to_owned())));
    let session = c.session_id.clone();
    detach(&mut c).await;
    let (mut resumed, _) = resume_retrying(&server, &session).await;
    let never = resumed.err("process/read", json!({"processId": "never"})).await;
    assert_eq!(never, (-32600, "unknown process id never".to_owned()), "the refused start had no effect");
    assert_eq!(resumed.ok("process/terminate", json!({"processId": "s"})).await, json!({"running": true}));
}
