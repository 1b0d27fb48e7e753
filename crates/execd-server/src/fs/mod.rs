//! The filesystem domain behind `fs/*`: path operations, per-connection file
//! handles and the missing-path watch. Knows nothing of JSON-RPC framing.
//!
//! Every blocking system call runs on tokio's blocking pool ([`blocking`]).

pub mod handles;
mod nofollow;
pub mod ops;
mod walk;
pub mod watch;

pub use walk::walk;

use crate::error::os_message;
use std::io;
use std::path::{Path, PathBuf};

/// Largest file `fs/readFile` returns.
pub const MAX_READ_FILE_BYTES: u64 = 512 * 1024 * 1024;
/// Largest `fs/readBlock` / `fs/writeBlock`.
pub const MAX_BLOCK_BYTES: usize = 1024 * 1024;
/// Most entries `fs/readDirectory` returns.
pub const MAX_DIRECTORY_ENTRIES: usize = 50_000;

/// Errors of the filesystem domain. Codes are assigned in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// An operating-system error (`ENOENT` is "not found", the rest internal).
    #[error("{}", os_message(.0))]
    Io(#[from] io::Error),
    /// Not a regular file where one is needed.
    #[error("path `{}` is not a file", .0.display())]
    NotAFile(PathBuf),
    /// Over [`MAX_READ_FILE_BYTES`].
    #[error("file is too large to read: limit is {MAX_READ_FILE_BYTES} bytes")]
    TooLarge,
    /// `followSymlinks: false` met a symbolic link as the final component.
    #[error("path contains a symbolic link")]
    SymlinkInPath,
    /// `fs/writeFile` with bad base64.
    #[error("fs/writeFile requires valid base64 dataBase64: {0}")]
    InvalidBase64(base64::DecodeError),
    /// `fs/remove` with `followSymlinks: false` and `recursive`.
    #[error("recursive no-follow removal is unsupported")]
    RecursiveNoFollow,
    /// `fs/copy` of a directory without `recursive`.
    #[error("fs/copy requires recursive: true when sourcePath is a directory")]
    CopyNeedsRecursive,
    /// `fs/copy` of a directory into itself.
    #[error("fs/copy cannot copy a directory to itself or one of its descendants")]
    CopyIntoItself,
    /// `fs/copy` of a FIFO, socket or device.
    #[error("fs/copy only supports regular files, directories, and symlinks")]
    CopyUnsupported,
    /// `fs/readDirectory` over [`MAX_DIRECTORY_ENTRIES`].
    #[error("directory has more than {MAX_DIRECTORY_ENTRIES} entries")]
    TooManyEntries,
    /// `fs/walk` limits of zero.
    #[error("filesystem walk limits must be greater than zero")]
    WalkLimitsZero,
    /// `fs/walk` limits over the maximums.
    #[error("filesystem walk limits exceed maximums: depth=64, directories=10000, entries=50000")]
    WalkLimitsTooLarge,
    /// A handle id over 32 bytes.
    #[error("file handle ID must not exceed 32 bytes")]
    HandleIdTooLong,
    /// A handle id already open on this connection.
    #[error("file handle `{0}` already exists")]
    HandleExists(String),
    /// Over 128 handles on this connection.
    #[error("at most 128 file handles may be open per connection")]
    TooManyHandles,
    /// No such handle on this connection.
    #[error("unknown file handle `{0}`")]
    UnknownHandle(String),
    /// `fs/readBlock` length out of range.
    #[error("file read block length must be between 1 and 1048576")]
    ReadBlockLength,
    /// `fs/writeBlock` length out of range.
    #[error("file write block length must be between 1 and 1048576")]
    WriteBlockLength,
    /// `fs/writeBlock` past the largest file offset.
    #[error("file write range exceeds the signed 64-bit file offset limit")]
    WriteRange,
}

impl FsError {
    /// Whether this is a "not found" error (-32004).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::UnknownHandle(_))
            || matches!(self, FsError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// Whether this is an operating-system error other than "not found" (-32603).
    pub fn is_os_error(&self) -> bool {
        matches!(self, FsError::Io(_) | FsError::RecursiveNoFollow) && !self.is_not_found()
    }
}

/// Runs blocking filesystem work on tokio's blocking pool.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| Err(FsError::Io(io::Error::other(e.to_string()))))
}

/// An errno as an [`FsError`].
fn errno(code: rustix::io::Errno) -> FsError {
    FsError::Io(code.into())
}

/// Whether `path` is `/`.
fn is_root(path: &Path) -> bool {
    path.parent().is_none()
}
