//! Errors of the server's layers and the one place they become JSON-RPC codes.

use crate::app::AppError;
use crate::fs::FsError;
use crate::session::SessionError;
use crate::uri::UriError;
use execd_protocol::jsonrpc::{codes, ErrorObject};

/// An error a handler reports to the client.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Parameters that decode but do not validate (-32602).
    #[error("{0}")]
    InvalidParams(String),
    /// A request that is not valid in the current state (-32600).
    #[error("{0}")]
    InvalidRequest(String),
    /// A bad `file:` URI (-32602).
    #[error(transparent)]
    Uri(#[from] UriError),
    /// A session or process error.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A filesystem error.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// An app-server dialect process error.
    #[error(transparent)]
    App(#[from] AppError),
}

impl ServerError {
    /// The JSON-RPC error code. This is the only mapping from errors to codes.
    pub fn code(&self) -> i64 {
        match self {
            ServerError::InvalidParams(_) | ServerError::Uri(_) => codes::INVALID_PARAMS,
            ServerError::InvalidRequest(_) => codes::INVALID_REQUEST,
            ServerError::Session(e) => match e {
                SessionError::UnknownSession(_)
                | SessionError::UnknownProcess(_)
                | SessionError::ProcessExists(_)
                | SessionError::AlreadyInitialized
                | SessionError::NotATty(_) => codes::INVALID_REQUEST,
                SessionError::Busy(_) => codes::SESSION_BUSY,
                SessionError::Spawn(_) | SessionError::StdinWrite | SessionError::Resize(_) => codes::INTERNAL_ERROR,
            },
            ServerError::Fs(e) if e.is_not_found() => codes::NOT_FOUND,
            ServerError::Fs(e) if e.is_os_error() => codes::INTERNAL_ERROR,
            ServerError::Fs(_) => codes::INVALID_REQUEST,
            ServerError::App(AppError::Spawn(..) | AppError::Resize(_)) => codes::INTERNAL_ERROR,
            ServerError::App(_) => codes::INVALID_REQUEST,
        }
    }

    /// The wire error object.
    pub fn to_error_object(&self) -> ErrorObject {
        ErrorObject { code: self.code(), message: self.to_string() }
    }
}

/// An OS error as `<text> (os error N)`, with the reference's wording (it is
/// built with musl) for the errors whose text differs from glibc's.
pub fn os_message(e: &std::io::Error) -> String {
    let musl = match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
        Some(rustix::io::Errno::LOOP) => "Symbolic link loop",
        Some(rustix::io::Errno::BUSY) => "Resource busy",
        Some(rustix::io::Errno::XDEV) => "Cross-device link",
        Some(rustix::io::Errno::NAMETOOLONG) => "Filename too long",
        Some(rustix::io::Errno::MFILE) => "No file descriptors available",
        _ => return e.to_string(),
    };
    format!("{musl} (os error {})", e.raw_os_error().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn os_messages_use_the_reference_wording() {
        let e = |code| os_message(&io::Error::from_raw_os_error(code));
        assert_eq!(e(40), "Symbolic link loop (os error 40)");
        assert_eq!(e(16), "Resource busy (os error 16)");
        assert_eq!(e(2), "No such file or directory (os error 2)");
        assert_eq!(FsError::Io(io::Error::from_raw_os_error(40)).to_string(), "Symbolic link loop (os error 40)");
        let spawn = SessionError::Spawn(execd_process::SpawnError::Io(io::Error::from_raw_os_error(40)));
        assert_eq!(spawn.to_string(), "Symbolic link loop (os error 40)");
    }
}
