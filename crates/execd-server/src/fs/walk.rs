//! `fs/walk`: a bounded breadth-first listing.

use super::FsError;
use crate::uri::path_to_uri;
use execd_protocol::fs::{WalkEntry, WalkError, WalkKind, WalkOptions, WalkResult};
use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAX_DEPTH: u32 = 64;
const MAX_DIRECTORIES: u32 = 10_000;
const MAX_ENTRIES: u32 = 50_000;
/// Bytes of paths a walk may return before it stops as truncated.
const MAX_PATH_BYTES: usize = 32 << 20;

/// Walks `root` breadth first, names sorted within each directory, within `options`.
pub fn walk(root: &Path, options: WalkOptions) -> Result<WalkResult, FsError> {
    if options.max_directories == 0 || options.max_entries == 0 {
        return Err(FsError::WalkLimitsZero);
    }
    if options.max_depth > MAX_DEPTH || options.max_directories > MAX_DIRECTORIES || options.max_entries > MAX_ENTRIES {
        return Err(FsError::WalkLimitsTooLarge);
    }
    let root_meta = std::fs::symlink_metadata(root)?;
    let mut result = WalkResult { entries: Vec::new(), errors: Vec::new(), truncated: false };
    let root_is_dir = root_meta.is_dir()
        || (options.follow_directory_symlinks && root_meta.is_symlink() && root.metadata().is_ok_and(|m| m.is_dir()));
    if !root_is_dir {
        return Ok(result);
    }
    // Real directories already queued, by (device, inode): each is read once.
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    if let Ok(m) = root.metadata() {
        seen.insert((m.dev(), m.ino()));
    }
    let mut queue: VecDeque<(PathBuf, u32)> = VecDeque::from([(root.to_owned(), 0)]);
    let (mut directories_read, mut path_bytes) = (0u32, 0usize);
    while let Some((dir, depth)) = queue.pop_front() {
        if directories_read == options.max_directories {
            result.truncated = true;
            break;
        }
        directories_read += 1;
        let mut children: Vec<_> = match std::fs::read_dir(&dir).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
            Ok(children) => children,
            Err(e) => {
                result.errors.push(WalkError { path: path_to_uri(&dir), message: e.to_string() });
                continue;
            }
        };
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let path = child.path();
            let Ok(kind) = child.file_type() else { continue };
            let (entry_kind, descend) = if kind.is_file() {
                (WalkKind::File, false)
            } else if kind.is_dir() {
                (WalkKind::Directory, true)
            } else if kind.is_symlink() && options.follow_directory_symlinks {
                match path.metadata() {
                    Ok(m) if m.is_dir() => (WalkKind::Directory, true),
                    _ => continue,
                }
            } else {
                continue;
            };
            let uri = path_to_uri(&path);
            path_bytes += uri.len();
            if result.entries.len() as u32 == options.max_entries || path_bytes > MAX_PATH_BYTES {
                result.truncated = true;
                return Ok(result);
            }
            result.entries.push(WalkEntry { path: uri, kind: entry_kind });
            if descend && depth < options.max_depth {
                let first_visit = path.metadata().map(|m| seen.insert((m.dev(), m.ino()))).unwrap_or(false);
                if first_visit {
                    queue.push_back((path, depth + 1));
                }
            }
        }
    }
    Ok(result)
}
