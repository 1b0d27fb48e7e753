//! `process/*`: spawn a process under a client-chosen handle, feed it, resize
//! it, kill it; output as `process/outputDelta`, the end as `process/exited`.

use super::{nullable, AbsolutePath, OutputStream};
use crate::{EmptyResult, Method, Notification};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `process/spawn`: starts a process; answered `{}` once it runs.
pub struct ProcessSpawn;

impl Method for ProcessSpawn {
    const NAME: &'static str = "process/spawn";
    type Params = ProcessSpawnParams;
    type Result = EmptyResult;
}

/// Params of `process/spawn`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessSpawnParams {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Connection-scoped, client-chosen, non-empty.
    pub process_handle: String,
    /// Absolute working directory.
    pub cwd: AbsolutePath,
    /// Run under a PTY (implies both streaming flags).
    #[serde(default)]
    pub tty: bool,
    /// Allow `process/writeStdin`; otherwise stdin is `/dev/null`.
    #[serde(default)]
    pub stream_stdin: bool,
    /// Stream output as `process/outputDelta`; otherwise buffer it into `process/exited`.
    #[serde(default)]
    pub stream_stdout_stderr: bool,
    /// Per-stream cap: absent = 1 MiB, `null` = none.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub output_bytes_cap: Option<Option<usize>>,
    /// Timeout: absent = 10 s, `null` = none, 0 = at once.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<Option<i64>>,
    /// Overrides on the server's environment; a `null` value unsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// Initial PTY size (only with `tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ProcessTerminalSize>,
}

/// A terminal size of `process/*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessTerminalSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// `process/writeStdin`: queues bytes for stdin and/or closes it.
pub struct ProcessWriteStdin;

impl Method for ProcessWriteStdin {
    const NAME: &'static str = "process/writeStdin";
    type Params = ProcessWriteStdinParams;
    type Result = EmptyResult;
}

/// Params of `process/writeStdin`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessWriteStdinParams {
    /// The process.
    pub process_handle: String,
    /// Standard base64 (padded) bytes to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_base64: Option<String>,
    /// Close stdin after writing.
    #[serde(default)]
    pub close_stdin: bool,
}

/// `process/resizePty`: resizes a PTY process's terminal.
pub struct ProcessResizePty;

impl Method for ProcessResizePty {
    const NAME: &'static str = "process/resizePty";
    type Params = ProcessResizePtyParams;
    type Result = EmptyResult;
}

/// Params of `process/resizePty`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessResizePtyParams {
    /// The process.
    pub process_handle: String,
    /// The new size.
    pub size: ProcessTerminalSize,
}

/// `process/kill`: SIGKILLs the process group.
pub struct ProcessKill;

impl Method for ProcessKill {
    const NAME: &'static str = "process/kill";
    type Params = ProcessKillParams;
    type Result = EmptyResult;
}

/// Params of `process/kill`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessKillParams {
    /// The process.
    pub process_handle: String,
}

/// `process/outputDelta`: streamed output.
pub struct ProcessOutputDelta;

impl Notification for ProcessOutputDelta {
    const NAME: &'static str = "process/outputDelta";
    type Params = ProcessOutputDeltaNotification;
}

/// Params of `process/outputDelta`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessOutputDeltaNotification {
    /// The process.
    pub process_handle: String,
    /// The stream.
    pub stream: OutputStream,
    /// The bytes, standard base64; empty only on a cap-reached delta.
    pub delta_base64: String,
    /// The stream's cap is reached; nothing more follows on it.
    pub cap_reached: bool,
}

/// `process/exited`: the process ended and its output is drained.
pub struct ProcessExited;

impl Notification for ProcessExited {
    const NAME: &'static str = "process/exited";
    type Params = ProcessExitedNotification;
}

/// Params of `process/exited`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessExitedNotification {
    /// The process.
    pub process_handle: String,
    /// Exit status, 128 + signal, or 124 after a timeout.
    pub exit_code: i32,
    /// A stream below its cap stayed open past the drain window.
    pub output_drain_timed_out: bool,
    /// Buffered stdout as text; `""` when streamed.
    pub stdout: String,
    /// Whether stdout reached its cap.
    pub stdout_cap_reached: bool,
    /// Buffered stderr as text; `""` when streamed.
    pub stderr: String,
    /// Whether stderr reached its cap.
    pub stderr_cap_reached: bool,
}
