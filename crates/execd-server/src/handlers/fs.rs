//! `fs/*`: path methods, file handles and the missing-path watch. Validation
//! happens here; the work runs in the filesystem domain on the blocking pool.

use crate::dispatch::{Ctx, Gate, Router};
use crate::error::ServerError;
use crate::fs::{self, blocking, handles, ops, FsError};
use crate::sandbox::refuse_restricting;
use crate::uri::{file_path, path_to_uri};
use base64::Engine;
use execd_protocol::fs::*;
use execd_protocol::jsonrpc::{notification_text, RequestId};
use execd_protocol::process::SandboxParams;
use execd_protocol::{Base64Bytes, EmptyResult};
use std::future::Future;
use std::path::PathBuf;

const GATE: Gate = Gate::Family("filesystem");

pub(super) fn register(router: &mut Router) {
    router.add_prebuilt::<FsReadFile, _, _>(GATE, read_file);
    router.add::<FsWriteFile, _, _>(GATE, write_file);
    router.add::<FsCreateDirectory, _, _>(GATE, create_directory);
    router.add::<FsGetMetadata, _, _>(GATE, get_metadata);
    router.add::<FsReadDirectory, _, _>(GATE, read_directory);
    router.add::<FsRemove, _, _>(GATE, remove);
    router.add::<FsCopy, _, _>(GATE, copy);
    router.add::<FsCanonicalize, _, _>(GATE, canonicalize);
    router.add::<FsWalk, _, _>(GATE, walk);
    router.add::<FsOpen, _, _>(GATE, open);
    router.add::<FsReadBlock, _, _>(GATE, read_block);
    router.add::<FsWriteBlock, _, _>(GATE, write_block);
    router.add::<FsClose, _, _>(GATE, close);
    router.add::<FsWatchMissing, _, _>(GATE, watch_missing);
}

/// The local path of a request, refusing a restricting sandbox.
fn target(path: &str, sandbox: Option<&SandboxParams>) -> Result<PathBuf, ServerError> {
    if let Some(sandbox) = sandbox {
        refuse_restricting(sandbox)?;
    }
    Ok(file_path(path)?)
}

/// Runs validated work on the blocking pool, after every earlier filesystem
/// request of the connection (so pipelined requests see each other's effects).
/// Validation errors are answered without waiting.
fn run<T: Send + 'static>(
    ctx: &Ctx,
    validated: Result<impl FnOnce() -> Result<T, FsError> + Send + 'static, ServerError>,
) -> impl Future<Output = Result<T, ServerError>> {
    let conn = ctx.conn.clone();
    async move {
        let work = validated?;
        let _turn = conn.fs_order.lock().await;
        Ok(blocking(work).await?)
    }
}

/// Builds the whole response in place: `{"id":…,"result":{"dataBase64":"…"}}`.
fn read_file(ctx: Ctx, p: WireFsReadFileParams, id: RequestId) -> impl Future<Output = Result<String, ServerError>> {
    run(
        &ctx,
        target(&p.path, p.sandbox.as_ref()).map(|path| {
            move || {
                let prefix =
                    format!(r#"{{"id":{},"result":{{"dataBase64":"#, serde_json::to_string(&id).unwrap_or_default());
                ops::read_file_into(&path, p.follow_symlinks.unwrap_or(true), &prefix, "}}")
            }
        }),
    )
}

fn write_file(ctx: Ctx, p: WireFsWriteFileParams) -> impl Future<Output = Result<EmptyResult, ServerError>> {
    let validated = target(&p.path, p.sandbox.as_ref()).and_then(|path| {
        let data = base64::engine::general_purpose::STANDARD.decode(&p.data_base64).map_err(FsError::InvalidBase64)?;
        Ok((path, data))
    });
    run(
        &ctx,
        validated.map(|(path, data)| {
            move || ops::write_file(&path, &data, p.follow_symlinks.unwrap_or(true)).map(|()| EmptyResult {})
        }),
    )
}

fn create_directory(
    ctx: Ctx,
    p: WireFsCreateDirectoryParams,
) -> impl Future<Output = Result<EmptyResult, ServerError>> {
    let (recursive, follow) = (p.recursive.unwrap_or(true), p.follow_symlinks.unwrap_or(true));
    run(
        &ctx,
        target(&p.path, p.sandbox.as_ref())
            .map(|path| move || ops::create_directory(&path, recursive, follow).map(|()| EmptyResult {})),
    )
}

fn get_metadata(ctx: Ctx, p: WireFsGetMetadataParams) -> impl Future<Output = Result<Metadata, ServerError>> {
    let follow = p.follow_symlinks.unwrap_or(true);
    run(&ctx, target(&p.path, p.sandbox.as_ref()).map(|path| move || ops::get_metadata(&path, follow)))
}

fn read_directory(
    ctx: Ctx,
    p: WireFsReadDirectoryParams,
) -> impl Future<Output = Result<ReadDirectoryResult, ServerError>> {
    run(
        &ctx,
        target(&p.path, p.sandbox.as_ref())
            .map(|path| move || ops::read_directory(&path).map(|entries| ReadDirectoryResult { entries })),
    )
}

fn remove(ctx: Ctx, p: WireFsRemoveParams) -> impl Future<Output = Result<EmptyResult, ServerError>> {
    let (recursive, force, follow) =
        (p.recursive.unwrap_or(true), p.force.unwrap_or(true), p.follow_symlinks.unwrap_or(true));
    run(
        &ctx,
        target(&p.path, p.sandbox.as_ref())
            .map(|path| move || ops::remove(&path, recursive, force, follow).map(|()| EmptyResult {})),
    )
}

fn copy(ctx: Ctx, p: WireFsCopyParams) -> impl Future<Output = Result<EmptyResult, ServerError>> {
    let validated =
        target(&p.source_path, p.sandbox.as_ref()).and_then(|source| Ok((source, target(&p.destination_path, None)?)));
    run(
        &ctx,
        validated.map(|(source, destination)| {
            move || ops::copy(&source, &destination, p.recursive).map(|()| EmptyResult {})
        }),
    )
}

fn canonicalize(
    ctx: Ctx,
    p: WireFsCanonicalizeParams,
) -> impl Future<Output = Result<CanonicalizeResult, ServerError>> {
    run(
        &ctx,
        target(&p.path, p.sandbox.as_ref())
            .map(|path| move || ops::canonicalize(&path).map(|real| CanonicalizeResult { path: path_to_uri(&real) })),
    )
}

fn walk(ctx: Ctx, p: WireFsWalkParams) -> impl Future<Output = Result<WalkResult, ServerError>> {
    run(&ctx, target(&p.path, p.sandbox.as_ref()).map(|path| move || fs::walk(&path, p.options)))
}

fn open(ctx: Ctx, p: WireFsOpenParams) -> impl Future<Output = Result<OpenResult, ServerError>> {
    let mode = p.mode.unwrap_or_default();
    let conn = ctx.conn.clone();
    run(
        &ctx,
        target(&p.path, p.sandbox.as_ref()).map(|path| {
            move || conn.handles.open(&p.handle_id, &path, mode).map(|()| OpenResult { handle_id: p.handle_id })
        }),
    )
}

fn read_block(ctx: Ctx, p: FsReadBlockParams) -> impl Future<Output = Result<ReadBlockResult, ServerError>> {
    let conn = ctx.conn.clone();
    run(
        &ctx,
        Ok(move || {
            let file = conn.handles.for_read(&p.handle_id, p.len)?;
            let (chunk, eof) = handles::read_block(&file, p.offset, p.len)?;
            Ok(ReadBlockResult { chunk: Base64Bytes(chunk), eof })
        }),
    )
}

fn write_block(ctx: Ctx, p: FsWriteBlockParams) -> impl Future<Output = Result<EmptyResult, ServerError>> {
    let conn = ctx.conn.clone();
    run(
        &ctx,
        Ok(move || {
            let file = conn.handles.for_write(&p.handle_id, p.offset, p.chunk.0.len())?;
            handles::write_block(&file, p.offset, &p.chunk.0).map(|()| EmptyResult {})
        }),
    )
}

fn close(ctx: Ctx, p: FsCloseParams) -> impl Future<Output = Result<EmptyResult, ServerError>> {
    let conn = ctx.conn.clone();
    run(
        &ctx,
        Ok(move || {
            conn.handles.close(&p.handle_id);
            Ok(EmptyResult {})
        }),
    )
}

fn watch_missing(ctx: Ctx, p: FsWatchMissingParams) -> impl Future<Output = Result<WatchMissingResult, ServerError>> {
    let paths = p.missing.iter().map(|m| file_path(m)).collect::<Result<Vec<_>, _>>().map_err(ServerError::from);
    let conn = ctx.conn.clone();
    run(
        &ctx,
        paths.map(|paths| {
            move || {
                let outbound = conn.outbound().clone();
                let fire = move |watch_id| {
                    let text = notification_text::<FsMissingChanged>(&MissingChangedParams { watch_id });
                    // Runs on the watcher's own thread, outside the runtime.
                    let _ = outbound.blocking_send(text);
                };
                let watching = conn.missing_watch.watch(p.watch_id, &paths, fire)?;
                Ok(WatchMissingResult { watching })
            }
        }),
    )
}
