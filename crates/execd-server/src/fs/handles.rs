//! Per-connection file handles (`fs/open`, `fs/readBlock`, `fs/writeBlock`,
//! `fs/close`). Dropping the table (the connection ending) closes every file.

use super::{ops, FsError, MAX_BLOCK_BYTES};
use crate::session::lock;
use bytes::Bytes;
use execd_protocol::fs::OpenMode;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Most handles one connection may hold.
pub const MAX_HANDLES: usize = 128;
/// Longest handle id, in bytes.
pub const MAX_HANDLE_ID_BYTES: usize = 32;

/// The open handles of one connection.
#[derive(Default)]
pub struct Handles {
    open: Mutex<HashMap<String, Arc<File>>>,
}

impl Handles {
    fn admit(&self, id: &str) -> Result<(), FsError> {
        if id.len() > MAX_HANDLE_ID_BYTES {
            return Err(FsError::HandleIdTooLong);
        }
        let open = lock(&self.open);
        if open.contains_key(id) {
            return Err(FsError::HandleExists(id.to_owned()));
        }
        if open.len() >= MAX_HANDLES {
            return Err(FsError::TooManyHandles);
        }
        Ok(())
    }

    /// `fs/open`: admission is checked before the file is touched.
    pub fn open(&self, id: &str, path: &Path, mode: OpenMode) -> Result<(), FsError> {
        self.admit(id)?;
        let file = match mode {
            OpenMode::Read => ops::open_regular(path, true)?.0,
            OpenMode::Replace => ops::open_for_write(path, true)?,
        };
        let mut open = lock(&self.open);
        // A concurrent open may have taken the id or the last slot meanwhile.
        if open.contains_key(id) {
            return Err(FsError::HandleExists(id.to_owned()));
        }
        if open.len() >= MAX_HANDLES {
            return Err(FsError::TooManyHandles);
        }
        open.insert(id.to_owned(), Arc::new(file));
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Arc<File>, FsError> {
        lock(&self.open).get(id).cloned().ok_or_else(|| FsError::UnknownHandle(id.to_owned()))
    }

    /// Checks a `fs/readBlock` and returns the file to read from.
    pub fn for_read(&self, id: &str, len: u64) -> Result<Arc<File>, FsError> {
        if len == 0 || len > MAX_BLOCK_BYTES as u64 {
            return Err(FsError::ReadBlockLength);
        }
        self.get(id)
    }

    /// Checks a `fs/writeBlock` and returns the file to write to.
    pub fn for_write(&self, id: &str, offset: u64, len: usize) -> Result<Arc<File>, FsError> {
        if len == 0 || len > MAX_BLOCK_BYTES {
            return Err(FsError::WriteBlockLength);
        }
        if offset.checked_add(len as u64).is_none_or(|end| end > i64::MAX as u64) {
            return Err(FsError::WriteRange);
        }
        self.get(id)
    }

    /// `fs/close` (unknown ids are fine).
    pub fn close(&self, id: &str) {
        lock(&self.open).remove(id);
    }
}

/// Reads up to `len` bytes at `offset`; `eof` when fewer came back.
pub fn read_block(file: &File, offset: u64, len: u64) -> Result<(Bytes, bool), FsError> {
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    buf.truncate(filled);
    Ok((Bytes::from(buf), (filled as u64) < len))
}

/// Writes all of `data` at `offset`.
pub fn write_block(file: &File, offset: u64, data: &[u8]) -> Result<(), FsError> {
    Ok(file.write_all_at(data, offset)?)
}
