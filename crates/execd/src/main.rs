//! `execd`: the command line. `execd serve` runs the server; `execd exec`,
//! `execd fs` and `execd ps` are its client (see [`cli`]).

mod cli;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use execd_server::auth::{WsAuth, WsAuthArgs};
use execd_server::session::SessionConfig;
use execd_server::ServerState;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "execd", version, about = "Remote execution server for AI agents and developer tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (exec-server and app-server process dialects on one endpoint).
    Serve(ServeArgs),
    /// Run a command on the server, like `ssh host cmd` (exits with its exit code).
    Exec(cli::exec::ExecArgs),
    /// Work on the server's files: ls, stat, cat, get, put, rm, mkdir.
    Fs(cli::fs::FsArgs),
    /// List the processes of a session.
    Ps(cli::ps::PsArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where to listen: `ws://IP:PORT` (port 0 picks a free port) or `stdio`.
    #[arg(long, default_value = "ws://127.0.0.1:8765")]
    listen: String,
    /// Seconds a detached session stays resumable before its processes are killed.
    #[arg(long, default_value_t = 80)]
    session_ttl_secs: u64,
    /// Seconds a closed process stays readable.
    #[arg(long, default_value_t = 80)]
    closed_process_ttl_secs: u64,
    /// Require a bearer token on WebSocket upgrades: `capability-token` or `signed-bearer-token`.
    #[arg(long, value_name = "MODE")]
    ws_auth: Option<String>,
    /// capability-token: file holding the token (surrounding whitespace trimmed).
    #[arg(long, value_name = "PATH")]
    ws_token_file: Option<PathBuf>,
    /// capability-token: SHA-256 of the token, 64 hex digits.
    #[arg(long, value_name = "HEX")]
    ws_token_sha256: Option<String>,
    /// signed-bearer-token: file holding the HS256 secret (at least 32 bytes).
    #[arg(long, value_name = "PATH")]
    ws_shared_secret_file: Option<PathBuf>,
    /// signed-bearer-token: required `iss` claim.
    #[arg(long)]
    ws_issuer: Option<String>,
    /// signed-bearer-token: required `aud` claim.
    #[arg(long)]
    ws_audience: Option<String>,
    /// signed-bearer-token: tolerance for `exp` and `nbf`, in seconds [default: 30].
    #[arg(long, value_name = "SECONDS")]
    ws_max_clock_skew_seconds: Option<u64>,
    /// The sandbox policy of a `command/exec` that names none. execd has no
    /// sandbox yet, so `danger-full-access` is the only value; commands that ask
    /// for a restricting policy are refused, never run unrestricted.
    #[arg(long, value_name = "POLICY", default_value = "danger-full-access", value_parser = ["danger-full-access"])]
    default_sandbox: String,
    /// Do not put processes in cgroups; contain their trees by process group,
    /// session and parent links instead (best effort). Without a writable
    /// cgroup v2 hierarchy this is what happens anyway.
    #[arg(long)]
    no_cgroups: bool,
}

impl ServeArgs {
    fn ws_auth_args(&self) -> WsAuthArgs {
        WsAuthArgs {
            mode: self.ws_auth.clone(),
            token_file: self.ws_token_file.clone(),
            token_sha256: self.ws_token_sha256.clone(),
            shared_secret_file: self.ws_shared_secret_file.clone(),
            issuer: self.ws_issuer.clone(),
            audience: self.ws_audience.clone(),
            max_clock_skew_seconds: self.ws_max_clock_skew_seconds,
        }
    }
}

/// A parsed `--listen` value.
enum Listen {
    Ws(SocketAddr),
    Stdio,
}

fn parse_listen(url: &str) -> anyhow::Result<Listen> {
    if url == "stdio" || url == "stdio://" {
        return Ok(Listen::Stdio);
    }
    let Some(rest) = url.strip_prefix("ws://") else {
        bail!("unsupported --listen URL `{url}`; expected `ws://IP:PORT` or `stdio`");
    };
    let addr = rest.strip_suffix('/').unwrap_or(rest);
    addr.parse::<SocketAddr>()
        .map(Listen::Ws)
        .map_err(|_| anyhow::anyhow!("invalid websocket --listen URL `{url}`; expected `ws://IP:PORT`"))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: killing every process");
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let listen = parse_listen(&args.listen)?;
    if args.no_cgroups {
        execd_process::disable_cgroups();
    }
    // Orphaned descendants are re-parented to execd and reaped here, so none lingers as a zombie.
    tokio::spawn(async {
        if let Err(e) = execd_process::reap_orphans().await {
            tracing::warn!("cannot reap orphaned descendants: {e}");
        }
    });
    let ws_auth =
        WsAuth::from_args(&args.ws_auth_args(), matches!(listen, Listen::Stdio)).map_err(anyhow::Error::msg)?;
    let server = ServerState::new(
        SessionConfig {
            session_ttl: Duration::from_secs(args.session_ttl_secs),
            closed_process_ttl: Duration::from_secs(args.closed_process_ttl_secs),
        },
        ws_auth,
    );
    match listen {
        Listen::Stdio => execd_server::serve_stdio(server, shutdown_signal()).await,
        Listen::Ws(addr) => {
            let listener =
                tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
            let bound = listener.local_addr()?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "ws://{bound}")?;
            stdout.flush()?;
            tracing::info!("listening on ws://{bound}");
            execd_server::serve_ws(server, listener, shutdown_signal()).await?;
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The server logs its lifecycle; the client commands only what went wrong.
    let default_level = if matches!(cli.command, Command::Serve(_)) { "info" } else { "warn" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let client = match cli.command {
        Command::Serve(args) => {
            runtime.block_on(serve(args))?;
            None
        }
        Command::Exec(args) => Some(runtime.block_on(cli::exec::run(args))),
        Command::Fs(args) => Some(runtime.block_on(cli::fs::run(args))),
        Command::Ps(args) => Some(runtime.block_on(cli::ps::run(args))),
    };
    // Do not wait for lingering tasks (long-polls, retention timers, a blocked stdin read).
    runtime.shutdown_background();
    match client {
        None => Ok(()),
        Some(Ok(code)) => std::process::exit(code),
        // A closed pipe (`execd fs cat … | head`) ends the command quietly, as SIGPIPE would.
        Some(Err(e))
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            std::process::exit(141)
        }
        Some(Err(e)) => {
            eprintln!("execd: {e:#}");
            std::process::exit(255)
        }
    }
}
