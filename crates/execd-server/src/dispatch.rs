//! Dispatch: from a method name and raw params to a reply, never touching a socket.
//!
//! There is one [`Router`] per dialect ([`Routers`]); a connection's dialect is
//! chosen by its `initialize` (a `clientInfo` member selects the app-server
//! dialect). The dialects differ in how they word params errors and unknown
//! methods, and in their handshake gates.
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
use execd_protocol::app::INVALID_REQUEST_PREFIX;
use execd_protocol::jsonrpc::{
    codes, error_text, params_error_message, response_text, serde_message, ErrorObject, RequestId,
};
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
    /// The exec-server handshake must be complete; the name appears in gate errors.
    Family(&'static str),
    /// An app-server dialect connection (`Not initialized` otherwise).
    App,
    /// An app-server dialect connection that opted into `experimentalApi`; the
    /// method name appears in the error.
    AppExperimental(&'static str),
}

/// The protocol dialect a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The Codex exec-server protocol (the default).
    ExecServer,
    /// The Codex app-server process API.
    AppServer,
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

/// The method table of one dialect.
pub struct Router {
    dialect: Dialect,
    routes: HashMap<&'static str, Box<Prepare>>,
}

impl Router {
    /// An empty table for `dialect`.
    pub fn new(dialect: Dialect) -> Self {
        Router { dialect, routes: HashMap::new() }
    }

    /// Whether `method` is routed.
    pub fn has(&self, method: &str) -> bool {
        self.routes.contains_key(method)
    }

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
        let dialect = self.dialect;
        let prepare = move |ctx: Ctx, raw: Option<&RawValue>, id: RequestId| -> BoxFuture<'static, Reply> {
            let params = match decode::<M>(dialect, &ctx, gate, raw, &id) {
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
        let dialect = self.dialect;
        let prepare = move |ctx: Ctx, raw: Option<&RawValue>, id: RequestId| -> BoxFuture<'static, Reply> {
            let params = match decode::<M>(dialect, &ctx, gate, raw, &id) {
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
            None => ready(match self.dialect {
                Dialect::ExecServer => Reply::error(
                    &id,
                    codes::METHOD_NOT_FOUND,
                    format!("exec-server stub does not implement `{method}` yet"),
                ),
                Dialect::AppServer => Reply::error(&id, codes::INVALID_REQUEST, self.unknown_variant(method)),
            }),
        }
    }

    /// The app-server dialect's unknown-method text, listing the methods served.
    fn unknown_variant(&self, method: &str) -> String {
        let mut names: Vec<&str> = self.routes.keys().copied().filter(|m| *m != "initialize").collect();
        names.sort_unstable();
        let list: Vec<String> = std::iter::once("initialize").chain(names).map(|m| format!("`{m}`")).collect();
        format!("{INVALID_REQUEST_PREFIX}unknown variant `{method}`, expected one of {}", list.join(", "))
    }
}

/// The method tables of both dialects.
pub struct Routers {
    /// The exec-server dialect.
    pub exec: Router,
    /// The app-server process dialect.
    pub app: Router,
}

impl Routers {
    /// The table a request goes to: the connection's dialect once initialized.
    /// Before that, `initialize` with a `clientInfo` member and the methods only
    /// the app-server dialect has go to its table; the rest to the default one.
    pub fn select(&self, conn: &ConnectionState, method: &str, params: Option<&RawValue>) -> &Router {
        match conn.dialect() {
            Some(Dialect::AppServer) => &self.app,
            Some(Dialect::ExecServer) => &self.exec,
            None if method == "initialize" && has_member(params, "clientInfo") => &self.app,
            None if !self.exec.has(method) && self.app.has(method) => &self.app,
            // `process/resizePty` is in both dialects; the app-server one names a `processHandle`.
            None if self.app.has(method) && has_member(params, "processHandle") => &self.app,
            None => &self.exec,
        }
    }
}

/// Whether params are an object with a member `name` (only asked before `initialize`).
fn has_member(params: Option<&RawValue>, name: &str) -> bool {
    params
        .filter(|p| p.get().starts_with('{'))
        .and_then(|p| serde_json::from_str::<HashMap<String, serde::de::IgnoredAny>>(p.get()).ok())
        .is_some_and(|members| members.contains_key(name))
}

/// Decodes a request's params (errors first, as the reference does, worded per
/// dialect), then checks the gate.
fn decode<M: Method>(
    dialect: Dialect,
    ctx: &Ctx,
    gate: Gate,
    raw: Option<&RawValue>,
    id: &RequestId,
) -> Result<M::Params, Reply> {
    let params = match (dialect, raw) {
        (Dialect::AppServer, None) => {
            let message = format!("{INVALID_REQUEST_PREFIX}missing field `params`");
            return Err(Reply::error(id, codes::INVALID_REQUEST, message));
        }
        (Dialect::AppServer, Some(raw)) => serde_json::from_str::<M::Params>(raw.get()).map_err(|e| {
            Reply::error(id, codes::INVALID_REQUEST, format!("{INVALID_REQUEST_PREFIX}{}", serde_message(&e)))
        })?,
        (Dialect::ExecServer, raw) => serde_json::from_str::<M::Params>(raw.map_or("null", |r| r.get()))
            .map_err(|e| Reply::error(id, codes::INVALID_PARAMS, params_error_message(&e)))?,
    };
    ctx.conn.check_gate(gate).map_err(|message| Reply::error(id, codes::INVALID_REQUEST, message))?;
    Ok(params)
}

fn ready(reply: Reply) -> BoxFuture<'static, Reply> {
    std::future::ready(reply).boxed()
}
