//! `fs/*` methods and the `fs/missingChanged` notification of the exec-server dialect.
//!
//! Paths are absolute `file:` URIs. Every method accepts an optional `sandbox`.

use crate::process::SandboxParams;
use crate::{Base64Bytes, EmptyResult, Method, Notification};
use serde::{Deserialize, Serialize};

macro_rules! method {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $params:ty, $result:ty) => {
        $(#[$doc])*
        pub struct $ty;

        impl Method for $ty {
            const NAME: &'static str = $name;
            type Params = $params;
            type Result = $result;
        }
    };
}

method!(
    /// `fs/readFile`: a whole regular file.
    FsReadFile, "fs/readFile", WireFsReadFileParams, ReadFileResult
);
method!(
    /// `fs/writeFile`: creates or truncates a file.
    FsWriteFile, "fs/writeFile", WireFsWriteFileParams, EmptyResult
);
method!(
    /// `fs/createDirectory`.
    FsCreateDirectory, "fs/createDirectory", WireFsCreateDirectoryParams, EmptyResult
);
method!(
    /// `fs/getMetadata`.
    FsGetMetadata, "fs/getMetadata", WireFsGetMetadataParams, Metadata
);
method!(
    /// `fs/readDirectory`: one directory's entries.
    FsReadDirectory, "fs/readDirectory", WireFsReadDirectoryParams, ReadDirectoryResult
);
method!(
    /// `fs/remove`.
    FsRemove, "fs/remove", WireFsRemoveParams, EmptyResult
);
method!(
    /// `fs/copy`.
    FsCopy, "fs/copy", WireFsCopyParams, EmptyResult
);
method!(
    /// `fs/canonicalize`: `realpath`.
    FsCanonicalize, "fs/canonicalize", WireFsCanonicalizeParams, CanonicalizeResult
);
method!(
    /// `fs/walk`: a bounded breadth-first listing.
    FsWalk, "fs/walk", WireFsWalkParams, WalkResult
);
method!(
    /// `fs/open`: a per-connection file handle.
    FsOpen, "fs/open", WireFsOpenParams, OpenResult
);
method!(
    /// `fs/readBlock`: bytes at an offset of a `read` handle.
    FsReadBlock, "fs/readBlock", FsReadBlockParams, ReadBlockResult
);
method!(
    /// `fs/writeBlock`: bytes at an offset of a `replace` handle.
    FsWriteBlock, "fs/writeBlock", FsWriteBlockParams, EmptyResult
);
method!(
    /// `fs/close`: releases a handle (unknown handles are fine).
    FsClose, "fs/close", FsCloseParams, EmptyResult
);
method!(
    /// `fs/watchMissing`: one-shot notification when a missing path appears.
    FsWatchMissing, "fs/watchMissing", FsWatchMissingParams, WatchMissingResult
);

/// Params of `fs/readFile`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsReadFileParams {
    /// The file.
    pub path: String,
    /// Follow a symbolic link (default true).
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Result of `fs/readFile`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadFileResult {
    /// The contents.
    pub data_base64: Base64Bytes,
}

/// Params of `fs/writeFile`. `dataBase64` is decoded by the server so that a bad
/// encoding gets the reference's -32600 error.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsWriteFileParams {
    /// The file.
    pub path: String,
    /// The contents, standard base64 with padding.
    pub data_base64: String,
    /// Follow a symbolic link (default true).
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Params of `fs/createDirectory`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsCreateDirectoryParams {
    /// The directory.
    pub path: String,
    /// Create parents, and accept an existing directory (default true).
    #[serde(default)]
    pub recursive: Option<bool>,
    /// Follow symbolic links (default true).
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Params of `fs/getMetadata`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsGetMetadataParams {
    /// The path.
    pub path: String,
    /// Follow a symbolic link (default true).
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Result of `fs/getMetadata`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// A directory (after following a link).
    pub is_directory: bool,
    /// A regular file (after following a link).
    pub is_file: bool,
    /// The path itself is a symbolic link.
    pub is_symlink: bool,
    /// Size in bytes.
    pub size: u64,
    /// Birth time, ms since the epoch; 0 when unknown.
    pub created_at_ms: i64,
    /// Modification time, ms since the epoch.
    pub modified_at_ms: i64,
}

/// Params of `fs/readDirectory`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsReadDirectoryParams {
    /// The directory.
    pub path: String,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryEntry {
    /// The entry's name.
    pub file_name: String,
    /// A directory (symbolic links report their target's type).
    pub is_directory: bool,
    /// A regular file (symbolic links report their target's type).
    pub is_file: bool,
}

/// Result of `fs/readDirectory`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadDirectoryResult {
    /// The entries, in directory order; broken links omitted.
    pub entries: Vec<DirectoryEntry>,
}

/// Params of `fs/remove`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsRemoveParams {
    /// The path.
    pub path: String,
    /// Remove directories with their contents (default true).
    #[serde(default)]
    pub recursive: Option<bool>,
    /// A missing path is not an error (default true).
    #[serde(default)]
    pub force: Option<bool>,
    /// Follow symbolic links in the path (default true).
    #[serde(default)]
    pub follow_symlinks: Option<bool>,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Params of `fs/copy`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsCopyParams {
    /// What to copy.
    pub source_path: String,
    /// Where to.
    pub destination_path: String,
    /// Required for a directory source.
    pub recursive: bool,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Params of `fs/canonicalize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsCanonicalizeParams {
    /// The path.
    pub path: String,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Result of `fs/canonicalize`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanonicalizeResult {
    /// The canonical path (file URI).
    pub path: String,
}

/// Params of `fs/walk`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsWalkParams {
    /// The root directory.
    pub path: String,
    /// The bounds.
    pub options: WalkOptions,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// Bounds of `fs/walk`; all required.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WalkOptions {
    /// 0 lists only the root's children; at most 64.
    pub max_depth: u32,
    /// Directories read, the root included (1 ..= 10,000).
    pub max_directories: u32,
    /// Entries listed (1 ..= 50,000).
    pub max_entries: u32,
    /// Descend into directory symlinks (each real directory once).
    pub follow_directory_symlinks: bool,
}

/// One `fs/walk` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkEntry {
    /// Its path (file URI).
    pub path: String,
    /// `file` or `directory`.
    pub kind: WalkKind,
}

/// Kinds of `fs/walk` entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WalkKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// A descendant `fs/walk` could not read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkError {
    /// Its path (file URI).
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// Result of `fs/walk`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkResult {
    /// Breadth first; names sorted within a directory; the root not included.
    pub entries: Vec<WalkEntry>,
    /// Per-path errors (not fatal).
    pub errors: Vec<WalkError>,
    /// A limit cut the walk short.
    pub truncated: bool,
}

/// Params of `fs/open`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireFsOpenParams {
    /// Client-chosen id (at most 32 bytes), unique per connection.
    pub handle_id: String,
    /// The file.
    pub path: String,
    /// `read` (default) or `replace`.
    #[serde(default)]
    pub mode: Option<OpenMode>,
    /// Sandbox intent.
    #[serde(default)]
    pub sandbox: Option<SandboxParams>,
}

/// How `fs/open` opens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OpenMode {
    /// An existing regular file, read-only.
    #[default]
    Read,
    /// Created or truncated, write-only.
    Replace,
}

/// Result of `fs/open`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenResult {
    /// The id, echoed.
    pub handle_id: String,
}

/// Params of `fs/readBlock`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsReadBlockParams {
    /// The handle.
    pub handle_id: String,
    /// Absolute offset.
    pub offset: u64,
    /// Bytes wanted (1 ..= 1 MiB).
    pub len: u64,
}

/// Result of `fs/readBlock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadBlockResult {
    /// The bytes read.
    pub chunk: Base64Bytes,
    /// Fewer than `len` bytes were read.
    pub eof: bool,
}

/// Params of `fs/writeBlock`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsWriteBlockParams {
    /// The handle.
    pub handle_id: String,
    /// Absolute offset.
    pub offset: u64,
    /// The bytes (1 ..= 1 MiB).
    pub chunk: Base64Bytes,
}

/// Params of `fs/close`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsCloseParams {
    /// The handle.
    pub handle_id: String,
}

/// Params of `fs/watchMissing`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FsWatchMissingParams {
    /// Must exceed every earlier id of the connection to take effect.
    pub watch_id: u64,
    /// Paths that do not exist yet (file URIs).
    pub missing: Vec<String>,
}

/// Result of `fs/watchMissing`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchMissingResult {
    /// A watch was armed.
    pub watching: bool,
}

/// `fs/missingChanged` notification.
pub struct FsMissingChanged;

impl Notification for FsMissingChanged {
    const NAME: &'static str = "fs/missingChanged";
    type Params = MissingChangedParams;
}

/// Params of `fs/missingChanged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingChangedParams {
    /// The watch that fired.
    pub watch_id: u64,
}
