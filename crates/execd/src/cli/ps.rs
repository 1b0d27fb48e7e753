//! `execd ps`: the processes of a session.

use super::Remote;
use std::io::Write;

/// `execd ps` arguments.
#[derive(clap::Args, Debug)]
pub struct PsArgs {
    #[command(flatten)]
    remote: Remote,
    /// The session to list (a detached session is resumed for the listing).
    #[arg(long)]
    session: Option<String>,
}

/// Lists the processes as a table.
pub async fn run(args: PsArgs) -> anyhow::Result<i32> {
    let client = args.remote.connect(args.session.as_deref()).await?;
    let list = client.list().await?;
    client.close().await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<20} {:>8} {:<8} {:>5} {:>8}  COMMAND", "ID", "PID", "STATE", "EXIT", "NEXTSEQ")?;
    for p in list.processes {
        let state = match p.state {
            execd_protocol::process::ProcessState::Running => "running",
            execd_protocol::process::ProcessState::Exited => "exited",
            execd_protocol::process::ProcessState::Closed => "closed",
        };
        let exit = p.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{:<20} {:>8} {:<8} {:>5} {:>8}  {}",
            p.process_id,
            p.pid,
            state,
            exit,
            p.next_seq,
            p.argv.join(" ")
        )?;
    }
    Ok(0)
}
