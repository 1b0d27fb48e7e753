//! The event stream's limits (caps, batching, timeout, drain window) and the
//! ordered stdin queue, driven against real children.

use bytes::Bytes;
use execd_process::{spawn, Dropped, Event, Limits, ProcessEvents, SpawnSpec, StdinFeeder, StreamKind};
use std::time::Duration;

fn spec(script: &str, limits: Limits) -> SpawnSpec {
    SpawnSpec {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        cwd: "/tmp".into(),
        env: vec![("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into())],
        limits,
        ..SpawnSpec::default()
    }
}

/// Every event until the stream ends, under a 30 s deadline.
async fn all_events(mut events: ProcessEvents) -> Vec<Event> {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut all = Vec::new();
        while let Some(e) = events.next().await {
            all.push(e);
        }
        all
    })
    .await
    .expect("events within 30 s")
}

fn output(events: &[Event], kind: StreamKind) -> (Vec<u8>, Vec<bool>) {
    let mut bytes = Vec::new();
    let mut caps = Vec::new();
    for e in events {
        if let Event::Output { stream, data, cap_reached } = e {
            if *stream == kind {
                bytes.extend_from_slice(data);
                caps.push(*cap_reached);
            }
        }
    }
    (bytes, caps)
}

#[tokio::test]
async fn caps_cut_each_stream_and_keep_draining() {
    let limits = Limits { output_cap: Some(10), ..Limits::default() };
    let script = "head -c 3000000 /dev/zero | tr '\\0' a; printf 12345 >&2; exit 7";
    let events = all_events(spawn(&spec(script, limits)).expect("spawn").events).await;
    let (out, out_caps) = output(&events, StreamKind::Stdout);
    assert_eq!(out, b"aaaaaaaaaa");
    assert_eq!(out_caps.last(), Some(&true));
    assert_eq!(out_caps.iter().filter(|c| **c).count(), 1, "capReached only on the last chunk");
    let (err, err_caps) = output(&events, StreamKind::Stderr);
    assert_eq!((err.as_slice(), err_caps.last()), (&b"12345"[..], Some(&false)));
    assert!(events.contains(&Event::Exited { code: 7, signal: None, timed_out: false }), "{events:?}");
    assert_eq!(
        events.last(),
        Some(&Event::Closed { drain_timed_out: false, dropped: Dropped { stdout: 2_999_990, stderr: 0 } })
    );
}

#[tokio::test]
async fn a_zero_cap_reports_once_with_no_bytes() {
    let limits = Limits { output_cap: Some(0), ..Limits::default() };
    let events = all_events(spawn(&spec("printf abc", limits)).expect("spawn").events).await;
    let outputs: Vec<_> = events.iter().filter(|e| matches!(e, Event::Output { .. })).collect();
    assert_eq!(
        outputs,
        [&Event::Output { stream: StreamKind::Stdout, data: Bytes::new(), cap_reached: true }],
        "{events:?}"
    );
}

#[tokio::test]
async fn batches_gather_what_is_buffered_up_to_the_target() {
    // The child fills the pipe (1 MiB), then says so through a FIFO, so every
    // read finds a full batch waiting.
    let mark = std::env::temp_dir().join(format!("execd-batch-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    assert!(std::process::Command::new("mkfifo").arg(&mark).status().expect("mkfifo").success());
    let limits = Limits { batch_bytes: 64 * 1024, ..Limits::default() };
    let script = format!("head -c 600000 /dev/zero; echo done > {}", mark.display());
    let spawned = spawn(&spec(&script, limits)).expect("spawn");
    let fifo = mark.clone();
    let said = tokio::time::timeout(Duration::from_secs(30), tokio::task::spawn_blocking(move || std::fs::read(fifo)))
        .await
        .expect("the child wrote everything within 30 s");
    assert_eq!(said.expect("reader").expect("read the FIFO"), b"done\n");
    let events = all_events(spawned.events).await;
    let _ = std::fs::remove_file(&mark);
    let sizes: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::Output { data, .. } => Some(data.len()),
            _ => None,
        })
        .collect();
    let mut expected = vec![65536; 9];
    expected.push(600000 - 9 * 65536);
    assert_eq!(sizes, expected);
}

#[tokio::test]
async fn the_timeout_kills_the_group_and_is_reported() {
    let limits = Limits { timeout: Some(Duration::from_millis(100)), ..Limits::default() };
    let events = all_events(spawn(&spec("sleep 300 & wait", limits)).expect("spawn").events).await;
    assert_eq!(
        events,
        [
            Event::Exited { code: 137, signal: Some(9), timed_out: true },
            Event::Closed { drain_timed_out: false, dropped: Dropped::default() }
        ]
    );
}

#[tokio::test]
async fn the_drain_window_closes_on_a_held_pipe() {
    let limits = Limits { drain: Some(Duration::from_millis(200)), ..Limits::default() };
    let spawned = spawn(&spec("printf early; sleep 300 &", limits)).expect("spawn");
    let group = spawned.group.clone();
    let events = all_events(spawned.events).await;
    group.signal(execd_process::Signal::Kill).expect("kill the held-open background child");
    assert_eq!(
        events,
        [
            Event::Output { stream: StreamKind::Stdout, data: Bytes::from_static(b"early"), cap_reached: false },
            Event::Exited { code: 0, signal: None, timed_out: false },
            Event::Closed { drain_timed_out: true, dropped: Dropped::default() },
        ]
    );
}

#[tokio::test]
async fn stdin_writes_and_the_close_arrive_in_order() {
    let mut s = spec("cat", Limits::default());
    s.pipe_stdin = true;
    let spawned = spawn(&s).expect("spawn");
    let feeder = StdinFeeder::start(spawned.stdin.expect("stdin"));
    let first = feeder.queue(Bytes::from_static(b"one ")).await;
    let second = feeder.queue(Bytes::from_static(b"two")).await;
    let closed = feeder.close().await;
    assert!(first.await && second.await && closed.await);
    let events = all_events(spawned.events).await;
    assert_eq!(output(&events, StreamKind::Stdout).0, b"one two");
    assert!(events.contains(&Event::Exited { code: 0, signal: None, timed_out: false }), "cat saw EOF: {events:?}");
}
