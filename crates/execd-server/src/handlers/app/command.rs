//! `command/exec` (answered when the command is done), `command/exec/write`,
//! `command/exec/resize`, `command/exec/terminate`.

use super::{check_timeout, environment, limits, pty_size, DEFAULT_OUTPUT_CAP, DEFAULT_TIMEOUT};
use crate::app::{Family, Finish, Start};
use crate::dispatch::{AfterReply, Ctx, Gate, Router};
use crate::error::ServerError;
use execd_process::SpawnSpec;
use execd_protocol::app::command::{
    CommandExec, CommandExecParams, CommandExecResize, CommandExecResizeParams, CommandExecResponse,
    CommandExecTerminate, CommandExecTerminateParams, CommandExecWrite, CommandExecWriteParams, SandboxPolicy,
};
use execd_protocol::{EmptyResult, Method};
use std::future::{Future, Ready};
use std::path::PathBuf;

pub(super) fn register(router: &mut Router) {
    router.add::<CommandExec, _, _>(Gate::App, exec);
    router.add_with_after_reply::<CommandExecWrite, _, _>(Gate::App, exec_write);
    router.add::<CommandExecResize, _, _>(Gate::App, resize);
    router.add_with_after_reply::<CommandExecTerminate, _, _>(Gate::App, terminate);
}

/// Starts a process of either family.
pub(super) fn launch(ctx: &Ctx, start: Start) -> Result<AfterReply, ServerError> {
    let app = ctx.conn.app().ok_or_else(|| ServerError::InvalidRequest("Not initialized".into()))?;
    Ok(app.start(start)?)
}

fn exec(ctx: Ctx, p: CommandExecParams) -> impl Future<Output = Result<CommandExecResponse, ServerError>> {
    let started = exec_now(&ctx, p);
    async move {
        let outcome = started?.await.map_err(|_| ServerError::InvalidRequest("command/exec was cancelled".into()))?;
        Ok(CommandExecResponse { exit_code: outcome.exit_code, stdout: outcome.stdout, stderr: outcome.stderr })
    }
}

/// Validates in the reference's order and spawns; the receiver yields the outcome.
fn exec_now(
    ctx: &Ctx,
    p: CommandExecParams,
) -> Result<tokio::sync::oneshot::Receiver<crate::app::Outcome>, ServerError> {
    let experimental = ctx.conn.app().is_some_and(|a| a.experimental_api);
    if p.permission_profile.is_some() && !experimental {
        return Err(ServerError::InvalidRequest(
            "command/exec.permissionProfile requires experimentalApi capability".into(),
        ));
    }
    if p.command.is_empty() {
        return Err(ServerError::InvalidRequest("command must not be empty".into()));
    }
    if p.permission_profile.is_some() && p.sandbox_policy.is_some() {
        return Err(ServerError::InvalidRequest("`permissionProfile` cannot be combined with `sandboxPolicy`".into()));
    }
    if p.size.is_some() && !p.tty {
        return Err(ServerError::InvalidParams("command/exec size requires tty: true".into()));
    }
    if p.output_bytes_cap.is_some() && p.disable_output_cap {
        return Err(ServerError::InvalidParams(
            "command/exec cannot set both outputBytesCap and disableOutputCap".into(),
        ));
    }
    if p.timeout_ms.is_some() && p.disable_timeout {
        return Err(ServerError::InvalidParams("command/exec cannot set both timeoutMs and disableTimeout".into()));
    }
    check_timeout(CommandExec::NAME, p.timeout_ms)?;
    refuse_sandboxing(&p)?;
    let size = p.size.map(|s| pty_size(s.rows, s.cols, Family::Command)).transpose()?;
    let streaming = p.tty || p.stream_stdin || p.stream_stdout_stderr;
    if streaming && p.process_id.is_none() {
        return Err(ServerError::InvalidRequest(
            "command/exec tty or streaming requires a client-supplied processId".into(),
        ));
    }
    let output_cap = (!p.disable_output_cap).then(|| p.output_bytes_cap.map_or(DEFAULT_OUTPUT_CAP, |c| c as u64));
    let timeout_ms = (!p.disable_timeout).then(|| p.timeout_ms.unwrap_or(DEFAULT_TIMEOUT.as_millis() as i64));
    let server_cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let (reply, outcome) = tokio::sync::oneshot::channel();
    let start = Start {
        family: Family::Command,
        id: p.process_id,
        spec: SpawnSpec {
            argv: p.command,
            arg0: None,
            cwd: p.cwd.map_or_else(|| server_cwd.clone(), |cwd| server_cwd.join(cwd)),
            env: environment(p.env),
            pipe_stdin: p.stream_stdin && !p.tty,
            pty: p.tty.then(|| size.unwrap_or_default()),
            limits: limits(output_cap, timeout_ms),
        },
        stream_stdin: p.stream_stdin || p.tty,
        stream_output: p.stream_stdout_stderr || p.tty,
        finish: Finish::Respond(reply),
    };
    // Nothing is sent before the deferred response, so nothing waits for the trigger.
    drop(launch(ctx, start)?);
    Ok(outcome)
}

/// Until execd has a sandbox, only `dangerFullAccess` (also the server default
/// for an absent policy) runs; anything that asks for restrictions is refused
/// rather than run unrestricted.
fn refuse_sandboxing(p: &CommandExecParams) -> Result<(), ServerError> {
    if p.permission_profile.is_some() {
        return Err(ServerError::InvalidParams(
            "command/exec permissionProfile is not supported: execd has no sandbox yet, and a restricted command is \
             refused rather than run unrestricted"
                .into(),
        ));
    }
    match &p.sandbox_policy {
        None | Some(SandboxPolicy::DangerFullAccess) => Ok(()),
        Some(policy) => Err(ServerError::InvalidParams(format!(
            "command/exec sandboxPolicy `{}` is not supported: execd has no sandbox yet, so only `dangerFullAccess` \
             runs; a restricted command is refused rather than run unrestricted",
            policy.type_name()
        ))),
    }
}

fn exec_write(
    ctx: Ctx,
    p: CommandExecWriteParams,
) -> impl Future<Output = Result<(EmptyResult, AfterReply), ServerError>> {
    super::write(&ctx, Family::Command, CommandExecWrite::NAME, &p.process_id, p.delta_base64.as_deref(), p.close_stdin)
}

fn resize(ctx: Ctx, p: CommandExecResizeParams) -> Ready<Result<EmptyResult, ServerError>> {
    super::resize(&ctx, Family::Command, &p.process_id, p.size.rows, p.size.cols)
}

fn terminate(ctx: Ctx, p: CommandExecTerminateParams) -> Ready<Result<(EmptyResult, AfterReply), ServerError>> {
    super::kill(&ctx, Family::Command, &p.process_id)
}
