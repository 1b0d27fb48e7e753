//! Method handlers, one module per method family (the app-server dialect's in [`app`]). Each module registers its
//! routes; handlers are small and delegate to the domain (sessions, processes).

use crate::dispatch::{Ctx, Dialect, Router, Routers};
use crate::error::ServerError;
use crate::session::Session;
use execd_process::PtySize;
use std::sync::Arc;

mod app;
mod environment;
mod fs;
mod initialize;
mod process;

/// The method tables of both dialects.
pub fn routers() -> Routers {
    Routers { exec: exec_router(), app: app::router() }
}

/// The complete method table of the exec-server dialect.
fn exec_router() -> Router {
    let mut router = Router::new(Dialect::ExecServer);
    initialize::register(&mut router);
    environment::register(&mut router);
    fs::register(&mut router);
    process::register(&mut router);
    router
}

/// A terminal size from the wire: both dimensions must be positive. `subject`
/// starts the error text (`"process "`, `"command/exec "`, or `""`).
fn pty_size(rows: u16, cols: u16, subject: &str) -> Result<PtySize, ServerError> {
    if rows == 0 || cols == 0 {
        return Err(ServerError::InvalidParams(format!("{subject}size rows and cols must be greater than 0")));
    }
    Ok(PtySize { rows, cols })
}

impl Ctx {
    /// The connection's session (always present past the handshake gate).
    pub fn session(&self) -> Result<Arc<Session>, ServerError> {
        self.conn
            .session()
            .ok_or_else(|| ServerError::InvalidRequest("client must call initialize before using exec methods".into()))
    }
}
