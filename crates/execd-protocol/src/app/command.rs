//! `command/exec*`: a one-off command whose response is deferred until it has
//! finished, optionally streamed and controlled through a client `processId`.

use super::OutputStream;
use crate::{EmptyResult, Method, Notification};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `command/exec`: runs a command; answered when it is done.
pub struct CommandExec;

impl Method for CommandExec {
    const NAME: &'static str = "command/exec";
    type Params = CommandExecParams;
    type Result = CommandExecResponse;
}

/// Params of `command/exec`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecParams {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Client-chosen id (needed for streaming, tty and control requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// Run under a PTY (implies both streaming flags).
    #[serde(default)]
    pub tty: bool,
    /// Allow `command/exec/write`.
    #[serde(default)]
    pub stream_stdin: bool,
    /// Stream output as `command/exec/outputDelta`.
    #[serde(default)]
    pub stream_stdout_stderr: bool,
    /// Per-stream cap; absent or `null` = 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes_cap: Option<usize>,
    /// No output cap.
    #[serde(default)]
    pub disable_output_cap: bool,
    /// Timeout; absent or `null` = 10 s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<i64>,
    /// No timeout.
    #[serde(default)]
    pub disable_timeout: bool,
    /// Working directory; relative paths are joined to the server's cwd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Overrides on the server's environment; a `null` value unsets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, Option<String>>>,
    /// Initial PTY size (only with `tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<CommandExecTerminalSize>,
    /// Sandbox policy; absent = the server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_policy: Option<SandboxPolicy>,
    /// Permission profile id (experimental).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_profile: Option<String>,
}

/// A terminal size of `command/exec*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandExecTerminalSize {
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// A sandbox policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SandboxPolicy {
    /// No restrictions.
    DangerFullAccess,
    /// Read-only filesystem.
    #[serde(rename_all = "camelCase")]
    ReadOnly {
        /// Whether the network is reachable.
        #[serde(default)]
        network_access: bool,
    },
    /// Sandboxed by something outside the server.
    #[serde(rename_all = "camelCase")]
    ExternalSandbox {
        /// Network policy.
        #[serde(default)]
        network_access: NetworkAccess,
    },
    /// Writable workspace roots.
    #[serde(rename_all = "camelCase")]
    WorkspaceWrite {
        /// Extra writable roots.
        #[serde(default)]
        writable_roots: Vec<String>,
        /// Whether the network is reachable.
        #[serde(default)]
        network_access: bool,
        /// Do not make `$TMPDIR` writable.
        #[serde(default)]
        exclude_tmpdir_env_var: bool,
        /// Do not make `/tmp` writable.
        #[serde(default)]
        exclude_slash_tmp: bool,
    },
}

impl SandboxPolicy {
    /// The policy's `type` name on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            SandboxPolicy::DangerFullAccess => "dangerFullAccess",
            SandboxPolicy::ReadOnly { .. } => "readOnly",
            SandboxPolicy::ExternalSandbox { .. } => "externalSandbox",
            SandboxPolicy::WorkspaceWrite { .. } => "workspaceWrite",
        }
    }
}

/// Network access of an external sandbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NetworkAccess {
    /// No network.
    #[default]
    Restricted,
    /// Network allowed.
    Enabled,
}

/// Result of `command/exec`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecResponse {
    /// Exit status, 128 + signal, or 124 after a timeout.
    pub exit_code: i32,
    /// Buffered stdout as text; `""` when streamed.
    pub stdout: String,
    /// Buffered stderr as text; `""` when streamed.
    pub stderr: String,
}

/// `command/exec/write`: queues bytes for stdin and/or closes it.
pub struct CommandExecWrite;

impl Method for CommandExecWrite {
    const NAME: &'static str = "command/exec/write";
    type Params = CommandExecWriteParams;
    type Result = EmptyResult;
}

/// Params of `command/exec/write`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecWriteParams {
    /// The command.
    pub process_id: String,
    /// Standard base64 (padded) bytes to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_base64: Option<String>,
    /// Close stdin after writing.
    #[serde(default)]
    pub close_stdin: bool,
}

/// `command/exec/resize`: resizes a PTY command's terminal.
pub struct CommandExecResize;

impl Method for CommandExecResize {
    const NAME: &'static str = "command/exec/resize";
    type Params = CommandExecResizeParams;
    type Result = EmptyResult;
}

/// Params of `command/exec/resize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecResizeParams {
    /// The command.
    pub process_id: String,
    /// The new size.
    pub size: CommandExecTerminalSize,
}

/// `command/exec/terminate`: SIGKILLs the command's process group.
pub struct CommandExecTerminate;

impl Method for CommandExecTerminate {
    const NAME: &'static str = "command/exec/terminate";
    type Params = CommandExecTerminateParams;
    type Result = EmptyResult;
}

/// Params of `command/exec/terminate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecTerminateParams {
    /// The command.
    pub process_id: String,
}

/// `command/exec/outputDelta`: streamed output of a command.
pub struct CommandExecOutputDelta;

impl Notification for CommandExecOutputDelta {
    const NAME: &'static str = "command/exec/outputDelta";
    type Params = CommandExecOutputDeltaNotification;
}

/// Params of `command/exec/outputDelta`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandExecOutputDeltaNotification {
    /// The command.
    pub process_id: String,
    /// The stream.
    pub stream: OutputStream,
    /// The bytes, standard base64; empty only on a cap-reached delta.
    pub delta_base64: String,
    /// The stream's cap is reached; nothing more follows on it.
    pub cap_reached: bool,
}
