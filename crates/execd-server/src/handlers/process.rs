//! `process/start`, `process/read`, `process/write`, `process/signal`, `process/terminate`,
//! and the execd extensions `process/resizePty`, `process/closeStdin`, `process/list`.

use crate::dispatch::{AfterReply, Ctx, Gate, Router};
use crate::env_policy;
use crate::error::ServerError;
use crate::session::{ProcessHandle, ReadRequest, SessionError, StartInfo};
use crate::uri;
use execd_process::{Limits, PtySize, Signal, SpawnSpec, CHUNK_BYTES};
use execd_protocol::process::{
    CloseStdinParams, ListResult, OutputChunk, ProcessCloseStdin, ProcessList, ProcessRead, ProcessResizePty,
    ProcessSignal, ProcessStart, ProcessTerminate, ProcessWrite, ReadParams, ReadResult, ResizePtyParams, SignalName,
    SignalParams, StartResult, TerminalSize, TerminateParams, TerminateResult, WireExecParams, WriteParams,
    WriteResult, WriteStatus,
};
use execd_protocol::{Base64Bytes, EmptyResult, NoParams};
use std::future::{ready, Future, Ready};
use std::sync::Arc;
use std::time::Duration;

const GATE: Gate = Gate::Family("exec");

pub(super) fn register(router: &mut Router) {
    router.add_with_after_reply::<ProcessStart, _, _>(GATE, start);
    router.add::<ProcessRead, _, _>(GATE, read);
    router.add::<ProcessWrite, _, _>(GATE, write);
    router.add::<ProcessSignal, _, _>(GATE, signal);
    router.add::<ProcessTerminate, _, _>(GATE, terminate);
    router.add::<ProcessResizePty, _, _>(GATE, resize_pty);
    router.add::<ProcessCloseStdin, _, _>(GATE, close_stdin);
    router.add::<ProcessList, _, _>(GATE, list);
}

fn start(ctx: Ctx, params: WireExecParams) -> Ready<Result<(StartResult, AfterReply), ServerError>> {
    ready(start_now(&ctx, params))
}

fn start_now(ctx: &Ctx, p: WireExecParams) -> Result<(StartResult, AfterReply), ServerError> {
    if p.argv.is_empty() {
        return Err(ServerError::InvalidParams("argv must not be empty".into()));
    }
    if let Some(sandbox) = &p.sandbox {
        crate::sandbox::refuse_restricting(sandbox)?;
    }
    let size = match (p.size, p.tty) {
        (Some(_), false) => return Err(ServerError::InvalidParams("size requires tty: true".into())),
        (Some(size), true) => pty_size(size)?,
        (None, _) => PtySize::default(),
    };
    let cwd = uri::cwd_path(&p.cwd)?;
    let server_env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let mut env = env_policy::build(p.env_policy.as_ref(), p.env, server_env);
    if p.tty {
        env.entry("SHELL".into()).or_insert_with(|| ctx.server.environment.shell_path().to_owned());
    }
    let limits = Limits {
        output_cap: p.output_bytes_cap,
        timeout: p.timeout_ms.map(Duration::from_millis),
        drain: None,
        batch_bytes: CHUNK_BYTES,
    };
    let info = StartInfo { argv: p.argv.clone(), tty: p.tty, capped: p.output_bytes_cap.is_some() };
    let spec = SpawnSpec {
        argv: p.argv,
        arg0: p.arg0,
        cwd,
        env: env.into_iter().collect(),
        pipe_stdin: p.pipe_stdin,
        pty: p.tty.then_some(size),
        limits,
    };
    let (_, after) = ctx.session()?.start_process(&p.process_id, &spec, info)?;
    Ok((StartResult { process_id: p.process_id, sandbox_type: "none".into() }, after))
}

/// A terminal size from the wire; both dimensions must be positive.
fn pty_size(size: TerminalSize) -> Result<PtySize, ServerError> {
    super::pty_size(size.rows, size.cols, "")
}

fn process(ctx: &Ctx, id: &str) -> Result<Option<Arc<ProcessHandle>>, ServerError> {
    Ok(ctx.session()?.process(id))
}

fn read(ctx: Ctx, p: ReadParams) -> impl Future<Output = Result<ReadResult, ServerError>> {
    let handle = known(&ctx, &p.process_id);
    let req = ReadRequest {
        after_seq: p.after_seq.unwrap_or(0),
        max_bytes: p.max_bytes,
        wait: Duration::from_millis(p.wait_ms.unwrap_or(0)),
    };
    async move {
        let snap = handle?.read(req).await;
        Ok(ReadResult {
            chunks: snap
                .chunks
                .into_iter()
                .map(|c| OutputChunk {
                    seq: c.seq,
                    stream: crate::session::stream_name(c.stream),
                    chunk: Base64Bytes(c.data),
                })
                .collect(),
            next_seq: snap.next_seq,
            exited: snap.exit_code.is_some(),
            exit_code: snap.exit_code,
            closed: snap.closed,
            failure: None,
            sandbox_denied: false,
            evicted: snap.evicted,
            timed_out: snap.timed_out,
            signal: snap.signal,
            dropped_bytes: snap.dropped,
        })
    }
}

/// The write is queued here, in request order; the reply waits until the bytes reached the child.
fn write(ctx: Ctx, p: WriteParams) -> impl Future<Output = Result<WriteResult, ServerError>> {
    let queued = queue_write(&ctx, p);
    async move {
        let status = match queued? {
            Ok(status) => status,
            Err(pending) => pending.await?,
        };
        Ok(WriteResult { status })
    }
}

/// `Ok(Ok(status))`: answered at once; `Ok(Err(future))`: queued, pending delivery.
#[allow(clippy::type_complexity)]
fn queue_write(
    ctx: &Ctx,
    p: WriteParams,
) -> Result<Result<WriteStatus, impl Future<Output = Result<WriteStatus, SessionError>>>, ServerError> {
    if p.write_id.is_empty() {
        return Err(ServerError::InvalidParams("writeId must not be empty".into()));
    }
    let Some(handle) = process(ctx, &p.process_id)? else {
        return Ok(Ok(WriteStatus::UnknownProcess));
    };
    Ok(match handle.write(p.chunk.0, &p.write_id) {
        Err(status) => Ok(status),
        Ok(pending) => Err(pending),
    })
}

fn signal(ctx: Ctx, p: SignalParams) -> Ready<Result<EmptyResult, ServerError>> {
    let sig = match p.signal {
        SignalName::Interrupt => Signal::Interrupt,
        SignalName::Terminate => Signal::Terminate,
        SignalName::Kill => Signal::Kill,
        SignalName::Hangup => Signal::Hangup,
        SignalName::Quit => Signal::Quit,
        SignalName::User1 => Signal::User1,
        SignalName::User2 => Signal::User2,
    };
    ready(process(&ctx, &p.process_id).map(|h| {
        if let Some(h) = h {
            h.signal(sig);
        }
        EmptyResult {}
    }))
}

fn terminate(ctx: Ctx, p: TerminateParams) -> Ready<Result<TerminateResult, ServerError>> {
    let grace = p.grace_ms.map(Duration::from_millis);
    ready(process(&ctx, &p.process_id).map(|h| TerminateResult { running: h.is_some_and(|h| h.terminate(grace)) }))
}

fn known(ctx: &Ctx, id: &str) -> Result<Arc<ProcessHandle>, ServerError> {
    process(ctx, id)?.ok_or_else(|| SessionError::UnknownProcess(id.to_owned()).into())
}

fn resize_pty(ctx: Ctx, p: ResizePtyParams) -> Ready<Result<EmptyResult, ServerError>> {
    ready(pty_size(p.size).and_then(|size| {
        known(&ctx, &p.process_id)?.resize(size)?;
        Ok(EmptyResult {})
    }))
}

/// Queued behind earlier writes, in request order; the reply comes once stdin is closed.
fn close_stdin(ctx: Ctx, p: CloseStdinParams) -> impl Future<Output = Result<WriteResult, ServerError>> {
    let closing = process(&ctx, &p.process_id).map(|h| match h {
        None => Err(WriteStatus::UnknownProcess),
        Some(h) => h.close_stdin(),
    });
    async move {
        let status = match closing? {
            Ok(pending) => pending.await,
            Err(status) => status,
        };
        Ok(WriteResult { status })
    }
}

fn list(ctx: Ctx, _: NoParams) -> Ready<Result<ListResult, ServerError>> {
    ready(ctx.session().map(|s| ListResult { processes: s.processes().iter().map(|p| p.info()).collect() }))
}
