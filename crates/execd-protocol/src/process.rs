//! `process/*` methods and notifications of the exec-server dialect.
//!
//! A process has one sequence counter, starting at 1, shared by its
//! `process/output` chunks, its single `process/exited` and its single
//! `process/closed`; nothing follows `closed`.

use crate::environment::ShellInfo;
use crate::{Base64Bytes, EmptyResult, Method, Notification};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `process/start`: spawns a process under a client-chosen id.
pub struct ProcessStart;

impl Method for ProcessStart {
    const NAME: &'static str = "process/start";
    type Params = WireExecParams;
    type Result = StartResult;
}

/// Params of `process/start` (named as the reference names them, which shows in errors).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireExecParams {
    /// Client-chosen key, unique within the session among live and retained processes.
    pub process_id: String,
    /// Program and arguments; a bare program name is searched in the child's `PATH`.
    pub argv: Vec<String>,
    /// Working directory (absolute `file:` URI).
    pub cwd: String,
    /// The child's complete environment (unless `envPolicy` is given, then overlaid).
    pub env: BTreeMap<String, String>,
    /// Run under a pseudo-terminal.
    pub tty: bool,
    /// Keep stdin writable for a non-tty process.
    #[serde(default)]
    pub pipe_stdin: bool,
    /// Overrides the process-visible `argv[0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg0: Option<String>,
    /// Builds the environment from the server's own, then overlays `env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_policy: Option<EnvPolicy>,
    /// Sandbox intent; `null` or absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxParams>,
    /// Accepted; has no effect without a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce_managed_network: Option<bool>,
    /// Accepted; has no effect without a sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_network: Option<serde_json::Value>,
    /// Executor-launched network proxy configuration (accepted, validated for shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_proxy: Option<NetworkProxyParams>,
    /// Shell snapshot request (accepted, validated for shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_snapshot: Option<ShellSnapshotParams>,
    /// Correlation metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ProcessMetadata>,
    /// execd extension: the PTY's size from the start (`tty` only; default 24x80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<TerminalSize>,
    /// execd extension: kill the whole process tree after this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// execd extension: most bytes kept per output stream; the rest is read and dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes_cap: Option<u64>,
}

impl WireExecParams {
    /// A pipe process (no tty, stdin `/dev/null`) with every optional field unset;
    /// set the others with struct update syntax.
    pub fn new(
        process_id: impl Into<String>,
        argv: Vec<String>,
        cwd: impl Into<String>,
        env: BTreeMap<String, String>,
    ) -> Self {
        WireExecParams {
            process_id: process_id.into(),
            argv,
            cwd: cwd.into(),
            env,
            tty: false,
            pipe_stdin: false,
            arg0: None,
            env_policy: None,
            sandbox: None,
            enforce_managed_network: None,
            managed_network: None,
            network_proxy: None,
            shell_snapshot: None,
            metadata: None,
            size: None,
            timeout_ms: None,
            output_bytes_cap: None,
        }
    }
}

/// execd extension: a terminal size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    /// Rows (lines); at least 1.
    pub rows: u16,
    /// Columns; at least 1.
    pub cols: u16,
}

/// How to build a child environment from the server's own.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvPolicy {
    /// Which server variables to start from.
    pub inherit: EnvInherit,
    /// Keep variables whose names look like secrets (`*KEY*`, `*SECRET*`, `*TOKEN*`).
    pub ignore_default_excludes: bool,
    /// Case-insensitive glob patterns of names to drop.
    pub exclude: Vec<String>,
    /// Variables to set.
    pub set: BTreeMap<String, String>,
    /// If non-empty, keep only names matching one of these case-insensitive globs.
    pub include_only: Vec<String>,
}

/// The starting set of an [`EnvPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EnvInherit {
    /// A small core set (`HOME`, `LANG`, `LOGNAME`, `PATH`, `SHELL`, `TMPDIR`, `USER`, ...).
    Core,
    /// Every variable of the server.
    All,
    /// Nothing.
    None,
}

/// The `sandbox` object: Codex's permission profile (kept opaque here).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxParams {
    /// The permission profile (`type`: `managed`, `disabled` or `external`).
    pub permissions: serde_json::Value,
    /// Windows sandbox level; required on the wire, meaningless on Linux.
    pub windows_sandbox_level: serde_json::Value,
}

/// `networkProxy` of `process/start`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkProxyParams {
    /// Proxy configuration.
    pub proxy: serde_json::Value,
}

/// `shellSnapshot` of `process/start`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShellSnapshotParams {
    /// Snapshot scope.
    pub scope_id: String,
    /// The shell to snapshot.
    pub shell: ShellInfo,
}

/// `metadata` of `process/start`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessMetadata {
    /// The Codex thread this process belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<uuid::Uuid>,
    /// The tool call this process serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// Result of `process/start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartResult {
    /// The id, echoed.
    pub process_id: String,
    /// The sandbox applied: `none` when none was.
    pub sandbox_type: String,
}

/// Where a chunk of output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamName {
    /// Standard output of a non-tty process.
    Stdout,
    /// Standard error of a non-tty process.
    Stderr,
    /// The merged output of a tty process.
    Pty,
}

/// `process/read`: retained output and state, optionally long-polling.
pub struct ProcessRead;

impl Method for ProcessRead {
    const NAME: &'static str = "process/read";
    type Params = ReadParams;
    type Result = ReadResult;
}

/// Params of `process/read`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadParams {
    /// The process.
    pub process_id: String,
    /// Only chunks with a greater seq (default 0).
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// Byte budget for the returned chunks (the first chunk is always returned).
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// Long-poll for up to this many milliseconds (default 0).
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// One retained output chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputChunk {
    /// Its seq.
    pub seq: u64,
    /// Its stream.
    pub stream: StreamName,
    /// Its bytes.
    pub chunk: Base64Bytes,
}

/// Result of `process/read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadResult {
    /// Retained chunks with `seq > afterSeq`, ascending.
    pub chunks: Vec<OutputChunk>,
    /// Where to continue reading (see the protocol notes for the exact rule).
    pub next_seq: u64,
    /// The exit status was collected.
    pub exited: bool,
    /// The exit code, once exited.
    pub exit_code: Option<i32>,
    /// No more output will come.
    pub closed: bool,
    /// Always `null` in this version.
    pub failure: Option<String>,
    /// The process ran sandboxed and failed the way a sandbox denial looks.
    pub sandbox_denied: bool,
    /// execd extension: present when output after `afterSeq` was evicted from
    /// the retention window, so the gap is never silent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted: Option<Evicted>,
    /// execd extension: the `timeoutMs` deadline killed the process (omitted when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub timed_out: bool,
    /// execd extension: the signal that ended the process (`"SIGKILL"`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// execd extension: bytes dropped past `outputBytesCap` so far (only with a cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_bytes: Option<DroppedBytes>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// execd extension: output the client asked for that is no longer retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evicted {
    /// The oldest output chunk still retained; seqs between `afterSeq` and it are gone.
    pub first_retained_seq: u64,
    /// Output bytes evicted from the process's retention window so far.
    pub bytes: u64,
}

/// execd extension: bytes dropped past `outputBytesCap`, per stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedBytes {
    /// Standard output (pipes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<u64>,
    /// Standard error (pipes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<u64>,
    /// The PTY's merged output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<u64>,
}

/// `process/write`: bytes to the process's stdin (pipe or PTY).
pub struct ProcessWrite;

impl Method for ProcessWrite {
    const NAME: &'static str = "process/write";
    type Params = WriteParams;
    type Result = WriteResult;
}

/// Params of `process/write`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteParams {
    /// The process.
    pub process_id: String,
    /// The bytes (may be empty).
    pub chunk: Base64Bytes,
    /// Idempotency key: a repeated id is acknowledged without writing again.
    pub write_id: String,
}

/// Result of `process/write`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResult {
    /// What happened.
    pub status: WriteStatus,
}

/// Status of a `process/write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteStatus {
    /// Queued to stdin, or this `writeId` was already accepted.
    Accepted,
    /// No such process in the session.
    UnknownProcess,
    /// The process has no writable stdin.
    StdinClosed,
    /// The process is still being spawned.
    Starting,
}

/// `process/signal`: delivers a signal.
pub struct ProcessSignal;

impl Method for ProcessSignal {
    const NAME: &'static str = "process/signal";
    type Params = SignalParams;
    type Result = EmptyResult;
}

/// Params of `process/signal`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalParams {
    /// The process.
    pub process_id: String,
    /// The signal.
    pub signal: SignalName,
}

/// Signals a client may send (the reference knows only `interrupt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SignalName {
    /// SIGINT.
    Interrupt,
    /// SIGTERM (execd extension).
    Terminate,
    /// SIGKILL (execd extension).
    Kill,
    /// SIGHUP (execd extension).
    Hangup,
    /// SIGQUIT (execd extension).
    Quit,
    /// SIGUSR1 (execd extension).
    User1,
    /// SIGUSR2 (execd extension).
    User2,
}

/// `process/terminate`: kills a running process (SIGKILL to its process group).
pub struct ProcessTerminate;

impl Method for ProcessTerminate {
    const NAME: &'static str = "process/terminate";
    type Params = TerminateParams;
    type Result = TerminateResult;
}

/// Params of `process/terminate`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParams {
    /// The process.
    pub process_id: String,
    /// execd extension: SIGTERM the tree first and SIGKILL it only after this
    /// many milliseconds, if it still runs. Absent: SIGKILL at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

/// `process/resizePty` (execd extension): resizes a tty process's terminal;
/// its foreground process group gets SIGWINCH.
pub struct ProcessResizePty;

impl Method for ProcessResizePty {
    const NAME: &'static str = "process/resizePty";
    type Params = ResizePtyParams;
    type Result = EmptyResult;
}

/// Params of `process/resizePty`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResizePtyParams {
    /// The process.
    pub process_id: String,
    /// The new size.
    pub size: TerminalSize,
}

/// `process/closeStdin` (execd extension): ends the process's input after
/// every write accepted before it (a pipe is closed; a PTY gets its EOF character).
pub struct ProcessCloseStdin;

impl Method for ProcessCloseStdin {
    const NAME: &'static str = "process/closeStdin";
    type Params = CloseStdinParams;
    type Result = WriteResult;
}

/// Params of `process/closeStdin`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CloseStdinParams {
    /// The process.
    pub process_id: String,
}

/// `process/list` (execd extension): the session's processes.
pub struct ProcessList;

impl Method for ProcessList {
    const NAME: &'static str = "process/list";
    type Params = crate::NoParams;
    type Result = ListResult;
}

/// Result of `process/list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    /// The session's processes, live and retained, ordered by id.
    pub processes: Vec<ProcessInfo>,
}

/// One process in `process/list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessInfo {
    /// The client's id.
    pub process_id: String,
    /// The operating system's pid (also its process group id).
    pub pid: u32,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Runs under a PTY.
    pub tty: bool,
    /// `running`, `exited` (output still open) or `closed`.
    pub state: ProcessState,
    /// The exit code, once exited.
    pub exit_code: Option<i32>,
    /// The next seq the process will assign.
    pub next_seq: u64,
    /// The `timeoutMs` deadline killed it.
    pub timed_out: bool,
}

/// Lifecycle state in [`ProcessInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProcessState {
    /// Not yet exited.
    Running,
    /// Exited; output may still come (a descendant holds it open).
    Exited,
    /// Exited and all output delivered.
    Closed,
}

/// Result of `process/terminate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminateResult {
    /// The process was running and has been killed.
    pub running: bool,
}

/// `process/output` notification.
pub struct ProcessOutput;

impl Notification for ProcessOutput {
    const NAME: &'static str = "process/output";
    type Params = OutputParams;
}

/// Params of `process/output`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParams {
    /// The process.
    pub process_id: Arc<str>,
    /// The event's seq.
    pub seq: u64,
    /// The stream.
    pub stream: StreamName,
    /// The bytes.
    pub chunk: Base64Bytes,
}

/// `process/exited` notification.
pub struct ProcessExited;

impl Notification for ProcessExited {
    const NAME: &'static str = "process/exited";
    type Params = ExitedParams;
}

/// Params of `process/exited`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitedParams {
    /// The process.
    pub process_id: Arc<str>,
    /// The event's seq.
    pub seq: u64,
    /// Exit status, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// See [`ReadResult::sandbox_denied`].
    pub sandbox_denied: bool,
    /// execd extension: the `timeoutMs` deadline killed the process (omitted when false).
    #[serde(default, skip_serializing_if = "is_false")]
    pub timed_out: bool,
    /// execd extension: the signal that ended the process (`"SIGKILL"`), if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `process/closed` notification: the last event of a process.
pub struct ProcessClosed;

impl Notification for ProcessClosed {
    const NAME: &'static str = "process/closed";
    type Params = ClosedParams;
}

/// Params of `process/closed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedParams {
    /// The process.
    pub process_id: Arc<str>,
    /// The event's seq.
    pub seq: u64,
    /// execd extension: bytes dropped past `outputBytesCap` (only with a cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_bytes: Option<DroppedBytes>,
}

impl StreamName {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamName::Stdout => "stdout",
            StreamName::Stderr => "stderr",
            StreamName::Pty => "pty",
        }
    }
}

impl ProcessOutput {
    /// The complete `process/output` notification text, built in one pass: the
    /// base64 is SIMD-encoded straight into a buffer of the exact final size.
    /// Byte-for-byte the same as serializing [`OutputParams`].
    /// `process_id_json` is the process id as a JSON string literal (quoted, escaped).
    pub fn text(process_id_json: &str, seq: u64, stream: StreamName, chunk: &[u8]) -> String {
        use std::fmt::Write;
        const HEAD: &str = r#"{"method":"process/output","params":{"processId":"#;
        let b64 = base64_simd::STANDARD.encoded_length(chunk.len());
        let mut out = String::with_capacity(HEAD.len() + process_id_json.len() + 64 + b64);
        out.push_str(HEAD);
        out.push_str(process_id_json);
        let _ = write!(out, r#","seq":{seq},"stream":"{}","chunk":""#, stream.as_str());
        base64_simd::STANDARD.encode_append(chunk, &mut out);
        out.push_str("\"}}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::notification_text;

    #[test]
    fn fast_output_text_matches_serde() {
        for (id, data) in [("p1", &b"hi\n"[..]), ("we\"ird\n\u{1F600}", &[0u8, 255, 10, 13][..]), ("", &b""[..])] {
            let params = OutputParams {
                process_id: Arc::from(id),
                seq: 42,
                stream: StreamName::Stderr,
                chunk: Base64Bytes(bytes::Bytes::copy_from_slice(data)),
            };
            let id_json = serde_json::to_string(id).unwrap();
            assert_eq!(
                ProcessOutput::text(&id_json, 42, StreamName::Stderr, data),
                notification_text::<ProcessOutput>(&params)
            );
        }
    }
}
