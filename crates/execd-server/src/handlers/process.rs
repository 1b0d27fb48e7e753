//! `process/start`, `process/read`, `process/write`, `process/signal`, `process/terminate`.

use crate::dispatch::{AfterReply, Ctx, Gate, Router};
use crate::env_policy;
use crate::error::ServerError;
use crate::session::{ProcessHandle, ReadRequest, SessionError};
use crate::uri;
use execd_process::{Limits, PtySize, SpawnSpec};
use execd_protocol::process::{
    OutputChunk, ProcessRead, ProcessSignal, ProcessStart, ProcessTerminate, ProcessWrite, ReadParams, ReadResult,
    SignalParams, StartResult, TerminateParams, TerminateResult, WireExecParams, WriteParams, WriteResult, WriteStatus,
};
use execd_protocol::{Base64Bytes, EmptyResult};
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
    let cwd = uri::cwd_path(&p.cwd)?;
    let server_env = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
    let mut env = env_policy::build(p.env_policy.as_ref(), p.env, server_env);
    if p.tty {
        env.entry("SHELL".into()).or_insert_with(|| ctx.server.environment.shell_path().to_owned());
    }
    let spec = SpawnSpec {
        argv: p.argv,
        arg0: p.arg0,
        cwd,
        env: env.into_iter().collect(),
        pipe_stdin: p.pipe_stdin,
        pty: p.tty.then(PtySize::default),
        limits: Limits::default(),
    };
    let (_, after) = ctx.session()?.start_process(&p.process_id, &spec)?;
    Ok((StartResult { process_id: p.process_id, sandbox_type: "none".into() }, after))
}

fn process(ctx: &Ctx, id: &str) -> Result<Option<Arc<ProcessHandle>>, ServerError> {
    Ok(ctx.session()?.process(id))
}

fn read(ctx: Ctx, p: ReadParams) -> impl Future<Output = Result<ReadResult, ServerError>> {
    let handle = process(&ctx, &p.process_id)
        .and_then(|h| h.ok_or_else(|| SessionError::UnknownProcess(p.process_id.clone()).into()));
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
    ready(process(&ctx, &p.process_id).map(|h| {
        if let Some(h) = h {
            h.interrupt();
        }
        EmptyResult {}
    }))
}

fn terminate(ctx: Ctx, p: TerminateParams) -> Ready<Result<TerminateResult, ServerError>> {
    ready(process(&ctx, &p.process_id).map(|h| TerminateResult { running: h.is_some_and(|h| h.terminate()) }))
}
