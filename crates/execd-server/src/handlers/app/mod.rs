//! The app-server process dialect: `initialize` (with `clientInfo`), `process/*`
//! and `command/exec*`. Shared parts of the two families live here; the
//! processes themselves are the [`app`](crate::app) domain's.

use crate::app::{AppProcess, Family};
use crate::dispatch::{AfterReply, Ctx, Dialect, Router};
use crate::error::ServerError;
use base64::Engine;
use bytes::Bytes;
use execd_process::{Limits, PtySize};
use execd_protocol::EmptyResult;
use std::collections::BTreeMap;
use std::future::{ready, Future, Ready};
use std::sync::Arc;
use std::time::Duration;

mod command;
mod initialize;
mod process;

/// Default per-stream output cap.
const DEFAULT_OUTPUT_CAP: u64 = 1024 * 1024;
/// Default timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long output may keep draining after the exit.
const DRAIN_WINDOW: Duration = Duration::from_secs(2);
/// Target size of one output delta.
const DELTA_BYTES: usize = 64 * 1024;

/// The method table of the app-server dialect.
pub fn router() -> Router {
    let mut router = Router::new(Dialect::AppServer);
    initialize::register(&mut router);
    process::register(&mut router);
    command::register(&mut router);
    router
}

/// The server's own environment with `overrides` applied (`None` unsets).
fn environment(overrides: Option<BTreeMap<String, Option<String>>>) -> Vec<(String, String)> {
    let mut env: BTreeMap<String, String> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    for (name, value) in overrides.unwrap_or_default() {
        match value {
            Some(value) => env.insert(name, value),
            None => env.remove(&name),
        };
    }
    env.into_iter().collect()
}

/// The event-stream limits for a cap and a timeout (both `None` = unlimited).
fn limits(output_cap: Option<u64>, timeout_ms: Option<i64>) -> Limits {
    Limits {
        output_cap,
        timeout: timeout_ms.map(|ms| Duration::from_millis(ms.max(0) as u64)),
        drain: Some(DRAIN_WINDOW),
        batch_bytes: DELTA_BYTES,
    }
}

/// A terminal size, refusing zeros with the family's wording.
fn pty_size(rows: u16, cols: u16, family: Family) -> Result<PtySize, ServerError> {
    let subject = match family {
        Family::Process => "process ",
        Family::Command => "command/exec ",
    };
    super::pty_size(rows, cols, subject)
}

/// Checks a `timeoutMs` (absent handled by the caller).
fn check_timeout(method: &str, timeout_ms: Option<i64>) -> Result<(), ServerError> {
    match timeout_ms {
        Some(ms) if ms < 0 => {
            Err(ServerError::InvalidParams(format!("{method} timeoutMs must be non-negative, got {ms}")))
        }
        _ => Ok(()),
    }
}

/// `process/writeStdin` and `command/exec/write`: the checks in the
/// reference's order, then the bytes (and the close) queued in request order.
/// The reply comes once they are queued.
fn write(
    ctx: &Ctx,
    family: Family,
    method: &str,
    id: &str,
    delta_base64: Option<&str>,
    close: bool,
) -> impl Future<Output = Result<(EmptyResult, AfterReply), ServerError>> + Send + 'static {
    let queued = (|| {
        if delta_base64.is_none() && !close {
            return Err(ServerError::InvalidParams(format!("{method} requires deltaBase64 or closeStdin")));
        }
        let data = match delta_base64 {
            Some(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ServerError::InvalidParams(format!("invalid deltaBase64: {e}")))?,
            None => Vec::new(),
        };
        Ok(lookup(ctx, family, id)?.write(Bytes::from(data), close)?)
    })();
    async move {
        let (queued, after) = queued?;
        queued.await;
        Ok((EmptyResult {}, after.unwrap_or_else(|| tokio::sync::oneshot::channel().0)))
    }
}

/// `process/resizePty` and `command/exec/resize` (a zero size is refused before the lookup).
fn resize(ctx: &Ctx, family: Family, id: &str, rows: u16, cols: u16) -> Ready<Result<EmptyResult, ServerError>> {
    ready((|| {
        let size = pty_size(rows, cols, family)?;
        lookup(ctx, family, id)?.resize(size)?;
        Ok(EmptyResult {})
    })())
}

/// `process/kill` and `command/exec/terminate`.
fn kill(ctx: &Ctx, family: Family, id: &str) -> Ready<Result<(EmptyResult, AfterReply), ServerError>> {
    ready((|| Ok((EmptyResult {}, lookup(ctx, family, id)?.kill()?)))())
}

/// The process under a client id on this connection.
fn lookup(ctx: &Ctx, family: Family, id: &str) -> Result<Arc<AppProcess>, ServerError> {
    let app = ctx.conn.app().ok_or_else(|| ServerError::InvalidRequest("Not initialized".into()))?;
    Ok(app.lookup(family, id)?)
}
