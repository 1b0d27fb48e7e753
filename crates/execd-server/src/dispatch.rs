//! Dispatch: from a method name and raw params to a reply, never touching a socket.
//!
//! Each route is registered with its protocol type ([`Method`]), so the name,
//! params and result types are tied together. For every request, in arrival
//! order, the router decodes the params (decoding errors come before the
//! handshake gate, as in the reference), checks the gate, then calls the handler.
//! Handlers run their synchronous part right there, which keeps per-process
//! effects (start, write, signal) in request order; the future they return is
//! awaited concurrently with later requests.

use crate::connection::ConnectionState;
use crate::error::ServerError;
use crate::ServerState;
use execd_protocol::jsonrpc::{codes, error_text, params_error_message, response_text, ErrorObject, RequestId};
use execd_protocol::Method;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Fired after a reply was queued, so that work held back for it may proceed
/// (e.g. a new process's notifications come after the `process/start` reply).
pub type AfterReply = oneshot::Sender<()>;

/// A reply ready to send.
pub struct Reply {
    /// The response's wire text.
    pub text: String,
    /// Fired once `text` is queued.
    pub after: Option<AfterReply>,
}

impl Reply {
    fn error(id: &RequestId, code: i64, message: String) -> Reply {
        Reply { text: error_text(id, &ErrorObject { code, message }), after: None }
    }
}

/// What a request needs before it may run.
#[derive(Clone, Copy, Debug)]
pub enum Gate {
    /// No gate (only `initialize`).
    Open,
    /// The handshake must be complete; the name appears in gate errors.
    Family(&'static str),
}

/// What handlers get: the server and the connection the request came on.
#[derive(Clone)]
pub struct Ctx {
    /// Server-wide state.
    pub server: Arc<ServerState>,
    /// The requesting connection.
    pub conn: Arc<ConnectionState>,
}

type Prepare = dyn Fn(Ctx, Option<&RawValue>, RequestId) -> BoxFuture<'static, Reply> + Send + Sync;

/// The method table.
#[derive(Default)]
pub struct Router {
    routes: HashMap<&'static str, Box<Prepare>>,
}

impl Router {
    /// Registers a handler returning the method's result.
    pub fn add<M, F, Fut>(&mut self, gate: Gate, handler: F)
    where
        M: Method,
        F: Fn(Ctx, M::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Result, ServerError>> + Send + 'static,
    {
        self.route::<M, _, _, _>(gate, handler, |r| (r, None));
    }

    /// Registers a handler returning the result and an [`AfterReply`] trigger.
    pub fn add_with_after_reply<M, F, Fut>(&mut self, gate: Gate, handler: F)
    where
        M: Method,
        F: Fn(Ctx, M::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(M::Result, AfterReply), ServerError>> + Send + 'static,
    {
        self.route::<M, _, _, _>(gate, handler, |(r, after)| (r, Some(after)));
    }

    /// Registers a handler that writes the whole response text itself (for large
    /// results built in place, such as `fs/readFile`). It must produce exactly
    /// what serializing `M::Result` would, given the request id.
    pub fn add_prebuilt<M, F, Fut>(&mut self, gate: Gate, handler: F)
    where
        M: Method,
        F: Fn(Ctx, M::Params, RequestId) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, ServerError>> + Send + 'static,
    {
        let prepare = move |ctx: Ctx, raw: Option<&RawValue>, id: RequestId| -> BoxFuture<'static, Reply> {
            let params = match decode::<M>(&ctx, gate, raw, &id) {
                Ok(params) => params,
                Err(reply) => return ready(reply),
            };
            handler(ctx, params, id.clone())
                .map(move |outcome| match outcome {
                    Ok(text) => Reply { text, after: None },
                    Err(e) => Reply::error(&id, e.code(), e.to_string()),
                })
                .boxed()
        };
        self.routes.insert(M::NAME, Box::new(prepare));
    }

    fn route<M, F, Fut, O>(&mut self, gate: Gate, handler: F, split: fn(O) -> (M::Result, Option<AfterReply>))
    where
        M: Method,
        F: Fn(Ctx, M::Params) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ServerError>> + Send + 'static,
        O: 'static,
    {
        let prepare = move |ctx: Ctx, raw: Option<&RawValue>, id: RequestId| -> BoxFuture<'static, Reply> {
            let params = match decode::<M>(&ctx, gate, raw, &id) {
                Ok(params) => params,
                Err(reply) => return ready(reply),
            };
            handler(ctx, params)
                .map(move |outcome| match outcome {
                    Ok(out) => {
                        let (result, after) = split(out);
                        Reply { text: response_text(&id, &result), after }
                    }
                    Err(e) => Reply::error(&id, e.code(), e.to_string()),
                })
                .boxed()
        };
        self.routes.insert(M::NAME, Box::new(prepare));
    }

    /// Starts handling one request. The synchronous part of the handler has run
    /// when this returns; the future yields the reply.
    pub fn prepare(
        &self,
        ctx: Ctx,
        method: &str,
        params: Option<&RawValue>,
        id: RequestId,
    ) -> BoxFuture<'static, Reply> {
        match self.routes.get(method) {
            Some(prepare) => prepare(ctx, params, id),
            None => ready(Reply::error(
                &id,
                codes::METHOD_NOT_FOUND,
                format!("exec-server stub does not implement `{method}` yet"),
            )),
        }
    }
}

/// Decodes a request's params (errors first, as the reference does), then checks the gate.
fn decode<M: Method>(ctx: &Ctx, gate: Gate, raw: Option<&RawValue>, id: &RequestId) -> Result<M::Params, Reply> {
    let params = serde_json::from_str::<M::Params>(raw.map_or("null", |r| r.get()))
        .map_err(|e| Reply::error(id, codes::INVALID_PARAMS, params_error_message(&e)))?;
    if let Gate::Family(family) = gate {
        ctx.conn.check_gate(family).map_err(|message| Reply::error(id, codes::INVALID_REQUEST, message))?;
    }
    Ok(params)
}

fn ready(reply: Reply) -> BoxFuture<'static, Reply> {
    std::future::ready(reply).boxed()
}
