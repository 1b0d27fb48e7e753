//! `process/spawn`, `process/writeStdin`, `process/resizePty`, `process/kill`.

use super::{check_timeout, environment, limits, pty_size, DEFAULT_OUTPUT_CAP, DEFAULT_TIMEOUT};
use crate::app::{Family, Finish, Start};
use crate::dispatch::{AfterReply, Ctx, Gate, Router};
use crate::error::ServerError;
use execd_process::SpawnSpec;
use execd_protocol::app::process::{
    ProcessKill, ProcessKillParams, ProcessResizePty, ProcessResizePtyParams, ProcessSpawn, ProcessSpawnParams,
    ProcessWriteStdin, ProcessWriteStdinParams,
};
use execd_protocol::{EmptyResult, Method};
use std::future::{ready, Future, Ready};

pub(super) fn register(router: &mut Router) {
    router.add_with_after_reply::<ProcessSpawn, _, _>(Gate::AppExperimental(ProcessSpawn::NAME), spawn);
    router.add_with_after_reply::<ProcessWriteStdin, _, _>(Gate::AppExperimental(ProcessWriteStdin::NAME), write_stdin);
    router.add::<ProcessResizePty, _, _>(Gate::AppExperimental(ProcessResizePty::NAME), resize);
    router.add_with_after_reply::<ProcessKill, _, _>(Gate::AppExperimental(ProcessKill::NAME), kill);
}

/// Validates in the reference's order, spawns, and answers `{}` before any notification.
fn spawn(ctx: Ctx, p: ProcessSpawnParams) -> Ready<Result<(EmptyResult, AfterReply), ServerError>> {
    ready(spawn_now(&ctx, p).map(|after| (EmptyResult {}, after)))
}

fn spawn_now(ctx: &Ctx, p: ProcessSpawnParams) -> Result<AfterReply, ServerError> {
    if p.command.is_empty() {
        return Err(ServerError::InvalidRequest("command must not be empty".into()));
    }
    if p.process_handle.is_empty() {
        return Err(ServerError::InvalidRequest("processHandle must not be empty".into()));
    }
    if p.size.is_some() && !p.tty {
        return Err(ServerError::InvalidParams("process/spawn size requires tty: true".into()));
    }
    // Absent: the default; null: none.
    let timeout_ms = p.timeout_ms.unwrap_or(Some(DEFAULT_TIMEOUT.as_millis() as i64));
    check_timeout(ProcessSpawn::NAME, timeout_ms)?;
    let size = p.size.map(|s| pty_size(s.rows, s.cols, Family::Process)).transpose()?;
    let output_cap = p.output_bytes_cap.unwrap_or(Some(DEFAULT_OUTPUT_CAP as usize)).map(|c| c as u64);
    let start = Start {
        family: Family::Process,
        id: Some(p.process_handle),
        spec: SpawnSpec {
            argv: p.command,
            arg0: None,
            cwd: p.cwd.0,
            env: environment(p.env),
            pipe_stdin: p.stream_stdin && !p.tty,
            pty: p.tty.then(|| size.unwrap_or_default()),
            limits: limits(output_cap, timeout_ms),
        },
        stream_stdin: p.stream_stdin || p.tty,
        stream_output: p.stream_stdout_stderr || p.tty,
        finish: Finish::Notify,
    };
    super::command::launch(ctx, start)
}

fn write_stdin(
    ctx: Ctx,
    p: ProcessWriteStdinParams,
) -> impl Future<Output = Result<(EmptyResult, AfterReply), ServerError>> {
    super::write(
        &ctx,
        Family::Process,
        ProcessWriteStdin::NAME,
        &p.process_handle,
        p.delta_base64.as_deref(),
        p.close_stdin,
    )
}

fn resize(ctx: Ctx, p: ProcessResizePtyParams) -> Ready<Result<EmptyResult, ServerError>> {
    super::resize(&ctx, Family::Process, &p.process_handle, p.size.rows, p.size.cols)
}

fn kill(ctx: Ctx, p: ProcessKillParams) -> Ready<Result<(EmptyResult, AfterReply), ServerError>> {
    super::kill(&ctx, Family::Process, &p.process_handle)
}
