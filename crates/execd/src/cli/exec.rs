//! `execd exec`: run a remote command like `ssh host cmd`.
//!
//! Remote stdout and stderr go to the local ones; local stdin is forwarded
//! (its EOF closes the remote stdin); the exit code is the remote one. With
//! `-t` the command gets a PTY sized like the local terminal, the local
//! terminal is in raw mode (restored on every exit path) and SIGWINCH becomes
//! a resize. Without `-t`, Ctrl-C interrupts the remote process group.

use super::Remote;
use anyhow::Context;
use bytes::Bytes;
use execd_client::{ClientError, ProcessEvent};
use execd_protocol::process::{EnvInherit, EnvPolicy, SignalName, StreamName, TerminalSize, WireExecParams};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use tokio::io::AsyncReadExt;

/// `execd exec` arguments.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    remote: Remote,
    /// Allocate a PTY (interactive programs, colours, line editing).
    #[arg(short = 't', long = "tty")]
    tty: bool,
    /// Remote working directory (absolute) [default: the server's].
    #[arg(long)]
    cwd: Option<String>,
    /// Extra environment variables, on top of the server's core set (HOME, PATH, ...).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Kill the remote command after this many seconds.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    /// The command and its arguments.
    #[arg(required = true, last = true)]
    command: Vec<String>,
}

/// Runs the command; returns the exit code to exit with.
pub async fn run(args: ExecArgs) -> anyhow::Result<i32> {
    let client = args.remote.connect(None).await?;
    let cwd = match &args.cwd {
        Some(dir) => checked_cwd(&client, dir).await?,
        None => client.environment().cwd.clone(),
    };
    let mut env = BTreeMap::new();
    for pair in &args.env {
        let (k, v) = pair.split_once('=').with_context(|| format!("--env `{pair}`: expected K=V"))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    let local_tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if args.tty {
        if let Ok(term) = std::env::var("TERM") {
            env.entry("TERM".into()).or_insert(term);
        }
    }
    let size = if args.tty { terminal_size() } else { None };
    let id = format!("exec-{}", uuid::Uuid::new_v4());
    let params = WireExecParams {
        tty: args.tty,
        pipe_stdin: !args.tty,
        env_policy: Some(EnvPolicy {
            inherit: EnvInherit::Core,
            ignore_default_excludes: false,
            exclude: Vec::new(),
            set: BTreeMap::new(),
            include_only: Vec::new(),
        }),
        size,
        timeout_ms: args.timeout.map(|s| s.saturating_mul(1000)),
        ..WireExecParams::new(id, args.command.clone(), cwd, env)
    };
    // Signal handlers exist before the process does, so no Ctrl-C or resize is missed.
    let (mut int, mut winch) = {
        use tokio::signal::unix::{signal, SignalKind};
        (signal(SignalKind::interrupt())?, signal(SignalKind::window_change())?)
    };
    // Raw mode before the start, so no keystroke is echoed twice; restored on drop.
    let _raw = if args.tty && local_tty { Some(RawMode::enter()?) } else { None };
    let mut process =
        client.start(params).await.with_context(|| format!("cannot start `{}`", args.command.join(" ")))?;
    let pid = process.id().to_owned();

    // Local stdin → remote stdin; EOF closes it.
    let stdin_client = client.clone();
    let stdin_id = pid.clone();
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if stdin_client.write(&stdin_id, Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = stdin_client.close_stdin(&stdin_id).await;
    });

    // Ctrl-C (without a PTY) and SIGWINCH (with one).
    let signal_client = client.clone();
    let signal_id = pid.clone();
    let tty = args.tty;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => { let _ = signal_client.signal(&signal_id, SignalName::Interrupt).await; }
                _ = winch.recv() => if tty {
                    if let Some(size) = terminal_size() {
                        let _ = signal_client.resize(&signal_id, size.rows, size.cols).await;
                    }
                },
            }
        }
    });

    let mut exit_code = 255;
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    while let Some(event) = process.next_event().await {
        match event {
            Ok(ProcessEvent::Output { stream: StreamName::Stderr, data, .. }) => {
                stderr.write_all(&data)?;
                stderr.flush()?;
            }
            Ok(ProcessEvent::Output { data, .. }) => {
                stdout.write_all(&data)?;
                stdout.flush()?;
            }
            Ok(ProcessEvent::Exited { exit_code: code, .. }) => exit_code = code.clamp(0, 255),
            Ok(ProcessEvent::Closed) => break,
            Err(e @ ClientError::Evicted { .. }) => eprintln!("execd: warning: {e}"),
            Err(e) => return Err(e).context("lost the remote command"),
        }
    }
    drop(process);
    client.close().await;
    Ok(exit_code)
}

/// `--cwd` as a URI, once the server confirmed it is a directory (so a typo is
/// named as such, not as a missing program).
async fn checked_cwd(client: &execd_client::Client, dir: &str) -> anyhow::Result<String> {
    let uri = super::file_uri(dir)?;
    let params =
        execd_protocol::fs::WireFsGetMetadataParams { path: uri.clone(), follow_symlinks: None, sandbox: None };
    match client.call::<execd_protocol::fs::FsGetMetadata>(params).await {
        Ok(m) if m.is_directory => Ok(uri),
        Ok(_) => anyhow::bail!("--cwd {dir}: not a directory on the server"),
        Err(e) if e.code() == Some(-32004) => anyhow::bail!("--cwd {dir}: no such directory on the server"),
        Err(e) => Err(e).context(format!("--cwd {dir}")),
    }
}

/// The local terminal's size, if stdout is one.
fn terminal_size() -> Option<TerminalSize> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some(TerminalSize { rows: ws.ws_row, cols: ws.ws_col })
}

/// The local terminal in raw mode; the previous mode comes back on drop.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> anyhow::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).context("cannot read the terminal mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .context("cannot put the terminal in raw mode")?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &self.saved);
    }
}
