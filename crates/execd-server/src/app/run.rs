//! The task that owns one app-server dialect process: it streams or buffers
//! the output, then reports the end (a `process/exited` notification or the
//! deferred `command/exec` response) and frees the id in the same step.

use super::{text, AppConnection, AppProcess, Family};
use crate::session::lock;
use execd_process::{Event, ProcessEvents, SpawnSpec, StreamKind};
use execd_protocol::app::process::{ProcessExited, ProcessExitedNotification};
use execd_protocol::app::{json_quoted, notification_text, DeltaText, OutputStream};
use execd_protocol::Notification;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// The exit code reported when the timeout killed the process.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// What to start, and how to report it.
pub struct Start {
    /// The family (namespace, texts, final message).
    pub family: Family,
    /// The client's id; `None` for a `command/exec` without `processId`.
    pub id: Option<String>,
    /// The process, with its limits.
    pub spec: SpawnSpec,
    /// Whether stdin accepts writes.
    pub stream_stdin: bool,
    /// Stream output as deltas (else buffer it into the final message).
    pub stream_output: bool,
    /// Where the final message goes.
    pub finish: Finish,
}

/// Where the final message of a process goes.
pub enum Finish {
    /// A `process/exited` notification.
    Notify,
    /// The deferred `command/exec` response, built by its handler.
    Respond(oneshot::Sender<Outcome>),
}

/// How a process ended.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status, 128 + signal, or 124 after the timeout.
    pub exit_code: i32,
    /// A stream below its cap stayed open past the drain window.
    pub drain_timed_out: bool,
    /// Buffered stdout, decoded.
    pub stdout: String,
    /// Whether stdout reached its cap.
    pub stdout_cap_reached: bool,
    /// Buffered stderr, decoded.
    pub stderr: String,
    /// Whether stderr reached its cap.
    pub stderr_cap_reached: bool,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn delta_text(family: Family, id: &str) -> DeltaText {
    let (method, id_field) = match family {
        Family::Process => ("process/outputDelta", "processHandle"),
        Family::Command => ("command/exec/outputDelta", "processId"),
    };
    DeltaText { method, id_field, id_json: json_quoted(id) }
}

/// Drives the process to its end; see the module docs.
pub(super) async fn own(
    conn: Arc<AppConnection>,
    process: Arc<AppProcess>,
    mut events: ProcessEvents,
    start: Start,
    released: oneshot::Receiver<()>,
) {
    let _ = released.await;
    let delta = delta_text(start.family, process.id());
    let send_deltas = start.stream_output && conn.wants(delta.method);
    let mut buffers: [Vec<u8>; 2] = Default::default();
    let mut capped = [false; 2];
    let (mut exit_code, mut drain_timed_out) = (-1, false);
    while let Some(event) = events.next().await {
        match event {
            Event::Output { stream, data, cap_reached } => {
                let (i, stream) = match stream {
                    StreamKind::Stderr => (1, OutputStream::Stderr),
                    StreamKind::Stdout | StreamKind::Pty => (0, OutputStream::Stdout),
                };
                capped[i] |= cap_reached;
                if send_deltas {
                    // Awaiting queue space is the backpressure: a client that does
                    // not read stops this task, then the pipe, then the child.
                    if let Some(outbound) = conn.outbound() {
                        let _ = outbound.send(delta.text(stream, &data, cap_reached, now_ms())).await;
                    }
                } else if !start.stream_output {
                    buffers[i].extend_from_slice(&data);
                }
            }
            Event::Exited { code, timed_out, .. } => {
                exit_code = if timed_out { TIMEOUT_EXIT_CODE } else { code };
                lock(&process.state).running = false;
            }
            Event::Closed { drain_timed_out: undrained, .. } => drain_timed_out = undrained,
        }
    }
    drop(events);
    // Replies that must come first (a kill, a stdin close) are queued before the end.
    let held = std::mem::take(&mut lock(&process.state).held);
    for reply in held {
        let _ = reply.await;
    }
    // Whatever is left of the process group does not outlive the process.
    lock(&process.state).tree.kill();
    let [stdout, stderr] = buffers;
    let outcome = Outcome {
        exit_code,
        drain_timed_out,
        stdout: text::decode(&stdout),
        stdout_cap_reached: capped[0],
        stderr: text::decode(&stderr),
        stderr_cap_reached: capped[1],
    };
    // Free the id first: once the client sees the end, the id is reusable.
    conn.release(&process);
    match start.finish {
        Finish::Notify => {
            if let Some(outbound) = conn.outbound().filter(|_| conn.wants(ProcessExited::NAME)) {
                let params = ProcessExitedNotification {
                    process_handle: process.id().to_owned(),
                    exit_code: outcome.exit_code,
                    output_drain_timed_out: outcome.drain_timed_out,
                    stdout: outcome.stdout,
                    stdout_cap_reached: outcome.stdout_cap_reached,
                    stderr: outcome.stderr,
                    stderr_cap_reached: outcome.stderr_cap_reached,
                };
                let _ = outbound.send(notification_text::<ProcessExited>(&params, now_ms())).await;
            }
        }
        Finish::Respond(reply) => {
            let _ = reply.send(outcome);
        }
    }
}
