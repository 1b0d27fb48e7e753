//! Errors of the server's layers and the one place they become JSON-RPC codes.

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
                | SessionError::AlreadyInitialized => codes::INVALID_REQUEST,
                SessionError::Busy(_) => codes::SESSION_BUSY,
                SessionError::Spawn(_) | SessionError::StdinWrite => codes::INTERNAL_ERROR,
            },
            ServerError::Fs(e) if e.is_not_found() => codes::NOT_FOUND,
            ServerError::Fs(e) if e.is_os_error() => codes::INTERNAL_ERROR,
            ServerError::Fs(_) => codes::INVALID_REQUEST,
        }
    }

    /// The wire error object.
    pub fn to_error_object(&self) -> ErrorObject {
        ErrorObject { code: self.code(), message: self.to_string() }
    }
}
