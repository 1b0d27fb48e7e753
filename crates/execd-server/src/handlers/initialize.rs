//! `initialize`: creates or resumes the connection's session.

use crate::dispatch::{Ctx, Gate, Router};
use crate::error::ServerError;
use execd_protocol::initialize::{Initialize, InitializeParams, InitializeResult};
use std::future::{ready, Ready};

pub(super) fn register(router: &mut Router) {
    router.add::<Initialize, _, _>(Gate::Open, initialize);
}

fn initialize(ctx: Ctx, params: InitializeParams) -> Ready<Result<InitializeResult, ServerError>> {
    let session = ctx.conn.initialize(&ctx.server.sessions, params.resume_session_id.as_deref());
    ready(session.map_err(ServerError::from).map(|s| InitializeResult {
        session_id: s.id().to_owned(),
        environment_info: ctx.server.environment.info.clone(),
    }))
}
