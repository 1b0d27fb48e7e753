//! `execd fs`: files on the server, like `ls`, `stat`, `cat`, `scp`, `rm`, `mkdir`.
//!
//! `get` and `put` stream the file in 1 MiB blocks over a file handle, a few
//! blocks in flight at a time (so memory stays constant whatever the size),
//! show a progress bar on a terminal, and verify a SHA-256 of both ends
//! afterwards (the remote one with `sha256sum`, when the server has it).

use super::{file_uri, not_found_hint, Remote};
use anyhow::Context;
use bytes::Bytes;
use execd_client::{Client, ProcessEvent};
use execd_protocol::fs::{
    FsClose, FsCloseParams, FsCreateDirectory, FsGetMetadata, FsOpen, FsReadBlock, FsReadBlockParams, FsReadDirectory,
    FsRemove, FsWriteBlock, FsWriteBlockParams, OpenMode, WireFsCreateDirectoryParams, WireFsGetMetadataParams,
    WireFsOpenParams, WireFsReadDirectoryParams, WireFsRemoveParams,
};
use execd_protocol::process::WireExecParams;
use execd_protocol::Base64Bytes;
use futures_util::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read, Write};

/// Bytes per block (the protocol's maximum).
const BLOCK: u64 = 1 << 20;
/// Blocks in flight during a transfer.
const WINDOW: usize = 4;
/// Transfers at least this large show a progress bar (on a terminal).
const PROGRESS_FROM: u64 = 8 << 20;

/// `execd fs` arguments.
#[derive(clap::Args, Debug)]
pub struct FsArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(subcommand)]
    command: FsCommand,
}

/// The `execd fs` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum FsCommand {
    /// List a remote directory.
    Ls {
        /// Absolute remote path.
        path: String,
    },
    /// Show a remote path's metadata.
    Stat {
        /// Absolute remote path.
        path: String,
    },
    /// Print a remote file.
    Cat {
        /// Absolute remote path.
        path: String,
    },
    /// Copy a remote file to a local path.
    Get {
        /// Absolute remote path.
        remote: String,
        /// Local path.
        local: std::path::PathBuf,
    },
    /// Copy a local file to a remote path (created or replaced).
    Put {
        /// Local path.
        local: std::path::PathBuf,
        /// Absolute remote path.
        remote: String,
    },
    /// Remove a remote file or directory (directories with their contents).
    Rm {
        /// Absolute remote path.
        path: String,
        /// Do not fail when the path does not exist.
        #[arg(short, long)]
        force: bool,
    },
    /// Create a remote directory.
    Mkdir {
        /// Absolute remote path.
        path: String,
        /// Create missing parents too.
        #[arg(short, long)]
        parents: bool,
    },
}

/// Runs one `execd fs` command.
pub async fn run(args: FsArgs) -> anyhow::Result<i32> {
    let client = args.remote.connect(None).await?;
    let result = match args.command {
        FsCommand::Ls { path } => ls(&client, &path).await,
        FsCommand::Stat { path } => stat(&client, &path).await,
        FsCommand::Cat { path } => cat(&client, &path).await,
        FsCommand::Get { remote, local } => get(&client, &remote, &local).await,
        FsCommand::Put { local, remote } => put(&client, &local, &remote).await,
        FsCommand::Rm { path, force } => {
            let params = WireFsRemoveParams {
                path: file_uri(&path)?,
                recursive: Some(true),
                force: Some(force),
                follow_symlinks: None,
                sandbox: None,
            };
            not_found_hint(client.call::<FsRemove>(params).await, &path).map(drop)
        }
        FsCommand::Mkdir { path, parents } => {
            let params = WireFsCreateDirectoryParams {
                path: file_uri(&path)?,
                recursive: Some(parents),
                follow_symlinks: None,
                sandbox: None,
            };
            not_found_hint(client.call::<FsCreateDirectory>(params).await, &path).map(drop)
        }
    };
    client.close().await;
    result.map(|()| 0)
}

async fn ls(client: &Client, path: &str) -> anyhow::Result<()> {
    let params = WireFsReadDirectoryParams { path: file_uri(path)?, sandbox: None };
    let mut entries = not_found_hint(client.call::<FsReadDirectory>(params).await, path)?.entries;
    entries.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    let mut out = std::io::stdout().lock();
    for e in entries {
        writeln!(out, "{}{}", e.file_name, if e.is_directory { "/" } else { "" })?;
    }
    Ok(())
}

async fn stat(client: &Client, path: &str) -> anyhow::Result<()> {
    let m = metadata(client, path).await?;
    let kind = if m.is_symlink {
        "symlink"
    } else if m.is_directory {
        "directory"
    } else if m.is_file {
        "file"
    } else {
        "other"
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "path: {path}\ntype: {kind}\nsize: {}\nmodified_ms: {}\ncreated_ms: {}",
        m.size, m.modified_at_ms, m.created_at_ms
    )?;
    Ok(())
}

async fn metadata(client: &Client, path: &str) -> anyhow::Result<execd_protocol::fs::Metadata> {
    let params = WireFsGetMetadataParams { path: file_uri(path)?, follow_symlinks: None, sandbox: None };
    not_found_hint(client.call::<FsGetMetadata>(params).await, path)
}

/// Streams a remote file's blocks, in order, into `sink`; returns its size and SHA-256.
async fn download(
    client: &Client,
    path: &str,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> anyhow::Result<(u64, [u8; 32])> {
    let size = metadata(client, path).await?.size;
    let handle = open(client, path, OpenMode::Read).await?;
    let progress = progress(size);
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    // Blocks are requested a few at a time and consumed in order, until one comes back short.
    let mut blocks = futures_util::stream::iter((0u64..).map(|i| i * BLOCK))
        .map(|offset| {
            let params = FsReadBlockParams { handle_id: handle.clone(), offset, len: BLOCK };
            async move { client.call::<FsReadBlock>(params).await }
        })
        .buffered(WINDOW);
    while let Some(block) = blocks.next().await {
        let block = block.with_context(|| format!("reading {path}"))?;
        let data = block.chunk.0;
        hasher.update(&data);
        sink(&data)?;
        total += data.len() as u64;
        progress.set_position(total);
        if block.eof || data.len() < BLOCK as usize {
            break;
        }
    }
    drop(blocks);
    progress.finish_and_clear();
    let _ = client.call::<FsClose>(FsCloseParams { handle_id: handle }).await;
    Ok((total, hasher.finalize().into()))
}

async fn cat(client: &Client, path: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    download(client, path, |data| out.write_all(data)).await?;
    out.flush()?;
    Ok(())
}

/// Downloads into `LOCAL.execd-part` and renames it over `local` only once the
/// transfer is complete and verified, so a failure never clobbers `local`.
async fn get(client: &Client, remote: &str, local: &std::path::Path) -> anyhow::Result<()> {
    let mut part = local.as_os_str().to_owned();
    part.push(".execd-part");
    let part = std::path::PathBuf::from(part);
    metadata(client, remote).await?;
    let outcome = async {
        let mut file = std::fs::File::create(&part).with_context(|| format!("cannot create {}", part.display()))?;
        let (size, digest) = download(client, remote, |data| file.write_all(data)).await?;
        file.sync_all()?;
        verify(client, remote, size, digest).await
    }
    .await;
    match outcome {
        Ok(()) => std::fs::rename(&part, local).with_context(|| format!("cannot write {}", local.display())),
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            Err(e)
        }
    }
}

async fn put(client: &Client, local: &std::path::Path, remote: &str) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
    let size = file.metadata()?.len();
    let handle = open(client, remote, OpenMode::Replace).await?;
    let progress = progress(size);
    let mut hasher = Sha256::new();
    // Blocks are read in order and written a few at a time (each at its offset).
    let reader = std::iter::from_fn({
        let mut offset = 0u64;
        move || {
            let mut buf = vec![0u8; BLOCK as usize];
            match read_full(&mut file, &mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let block = (offset, Bytes::from(buf));
                    offset += n as u64;
                    Some(Ok(block))
                }
                Err(e) => Some(Err(anyhow::Error::new(e))),
            }
        }
    });
    let mut written = 0u64;
    futures_util::stream::iter(reader)
        .map_ok(|(offset, data): (u64, Bytes)| {
            hasher.update(&data);
            let len = data.len() as u64;
            let params = FsWriteBlockParams { handle_id: handle.clone(), offset, chunk: Base64Bytes(data) };
            async move { client.call::<FsWriteBlock>(params).await.map(|_| len).map_err(anyhow::Error::new) }
        })
        .try_buffer_unordered(WINDOW)
        .try_for_each(|len| {
            written += len;
            progress.set_position(written);
            std::future::ready(Ok(()))
        })
        .await
        .with_context(|| format!("writing {remote}"))?;
    progress.finish_and_clear();
    client.call::<FsClose>(FsCloseParams { handle_id: handle }).await.with_context(|| format!("closing {remote}"))?;
    verify(client, remote, size, hasher.finalize().into()).await
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Compares the remote file's size and SHA-256 (from `sha256sum` on the server) with ours.
async fn verify(client: &Client, remote: &str, size: u64, digest: [u8; 32]) -> anyhow::Result<()> {
    let remote_size = metadata(client, remote).await?.size;
    anyhow::ensure!(
        remote_size == size,
        "size mismatch after transfer: {remote} has {remote_size} bytes, expected {size}"
    );
    let ours: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    match remote_sha256(client, remote).await {
        Some(theirs) if theirs == ours => Ok(()),
        Some(theirs) => {
            anyhow::bail!("checksum mismatch after transfer: {remote} has SHA-256 {theirs}, expected {ours}")
        }
        None => {
            eprintln!("execd: note: {remote}: size verified; no sha256sum on the server to verify the checksum");
            Ok(())
        }
    }
}

async fn remote_sha256(client: &Client, path: &str) -> Option<String> {
    let argv = vec!["sha256sum".into(), "--".into(), path.into()];
    let env = [("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())].into_iter().collect();
    let params = WireExecParams {
        timeout_ms: Some(600_000),
        output_bytes_cap: Some(4096),
        ..WireExecParams::new(format!("sha256-{}", handle_id()), argv, "file:///", env)
    };
    let mut process = client.start(params).await.ok()?;
    let (mut out, mut code) = (Vec::new(), None);
    while let Some(Ok(event)) = process.next_event().await {
        match event {
            ProcessEvent::Output { data, .. } => out.extend_from_slice(&data),
            ProcessEvent::Exited { exit_code, .. } => code = Some(exit_code),
            ProcessEvent::Closed => break,
        }
    }
    let text = String::from_utf8(out).ok()?;
    (code == Some(0)).then(|| text.split_whitespace().next().map(str::to_owned)).flatten()
}

/// Opens a remote file handle; returns its id.
async fn open(client: &Client, path: &str, mode: OpenMode) -> anyhow::Result<String> {
    let handle = handle_id();
    let params = WireFsOpenParams { handle_id: handle.clone(), path: file_uri(path)?, mode: Some(mode), sandbox: None };
    not_found_hint(client.call::<FsOpen>(params).await, path)?;
    Ok(handle)
}

fn handle_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A progress bar on a terminal for long transfers; hidden otherwise.
fn progress(size: u64) -> indicatif::ProgressBar {
    if size < PROGRESS_FROM || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} {eta}")
    {
        bar.set_style(style);
    }
    bar
}
