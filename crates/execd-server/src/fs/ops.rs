//! The path-based `fs/*` operations. Blocking; callers run them via [`super::blocking`].

use super::{errno, is_root, nofollow, FsError, MAX_DIRECTORY_ENTRIES, MAX_READ_FILE_BYTES};
use execd_protocol::fs::{DirectoryEntry, Metadata};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags, CWD};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Raw bytes read per step while encoding a file; a multiple of 3, so the
/// base64 of consecutive blocks concatenates without padding in between.
const ENCODE_BLOCK: usize = 3 * 1024 * 1024;

/// Opens a file for reading without blocking on a FIFO, and checks it is a
/// regular file of at most [`MAX_READ_FILE_BYTES`]. Returns it and its size.
pub fn open_regular(path: &Path, follow: bool) -> Result<(File, u64), FsError> {
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd: OwnedFd = if follow {
        rustix::fs::open(path, flags, Mode::empty()).map_err(errno)?
    } else {
        nofollow::open(path, flags, Mode::empty())?
    };
    let stat = rustix::fs::fstat(&fd).map_err(errno)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(FsError::NotAFile(path.to_owned()));
    }
    // Regular files ignore O_NONBLOCK; clear it anyway so reads behave plainly.
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(errno)?;
    Ok((File::from(fd), stat.st_size as u64))
}

/// `fs/readFile`: returns `prefix` + `"<base64 of the file>"` + `suffix`, read and
/// encoded block by block into a buffer of the exact final size, so the raw
/// contents are never held whole and the text is never copied.
pub fn read_file_into(path: &Path, follow: bool, prefix: &str, suffix: &str) -> Result<String, FsError> {
    let (mut file, size) = open_regular(path, follow)?;
    if size > MAX_READ_FILE_BYTES {
        return Err(FsError::TooLarge);
    }
    let encoded = base64_simd::STANDARD.encoded_length(size as usize);
    let mut out = String::with_capacity(prefix.len() + encoded + suffix.len() + 2);
    out.push_str(prefix);
    out.push('"');
    let mut block = vec![0u8; ENCODE_BLOCK.min(size as usize).max(3)];
    let mut total = 0u64;
    loop {
        // Fill the block completely (except at EOF) so padding only ever ends the text.
        let mut filled = 0;
        while filled < block.len() {
            match file.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        total += filled as u64;
        if total > MAX_READ_FILE_BYTES {
            return Err(FsError::TooLarge);
        }
        base64_simd::STANDARD.encode_append(&block[..filled], &mut out);
        if filled < block.len() {
            break;
        }
    }
    out.push('"');
    out.push_str(suffix);
    Ok(out)
}

/// Opens `path` for writing (created or truncated, in place: hard links keep
/// sharing the file) without ever blocking: a FIFO is refused as not a file.
pub fn open_for_write(path: &Path, follow: bool) -> Result<File, FsError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o666);
    let opened = if follow {
        rustix::fs::open(path, flags, mode).map_err(io::Error::from)
    } else {
        nofollow::open(path, flags, mode)
    };
    let fd = match opened {
        Ok(fd) => fd,
        // A FIFO without a reader: refusing beats blocking until one appears.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
            return Err(FsError::NotAFile(path.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    let stat = rustix::fs::fstat(&fd).map_err(errno)?;
    if FileType::from_raw_mode(stat.st_mode) == FileType::Fifo {
        return Err(FsError::NotAFile(path.to_owned()));
    }
    rustix::fs::fcntl_setfl(&fd, OFlags::empty()).map_err(errno)?;
    // Truncate only once the target is known to be writable in place.
    if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
        rustix::fs::ftruncate(&fd, 0).map_err(errno)?;
    }
    Ok(File::from(fd))
}

/// `fs/writeFile`: creates or truncates in place (hard links keep sharing the file).
pub fn write_file(path: &Path, data: &[u8], follow: bool) -> Result<(), FsError> {
    open_for_write(path, follow)?.write_all(data)?;
    Ok(())
}

/// `fs/createDirectory`.
pub fn create_directory(path: &Path, recursive: bool, follow: bool) -> Result<(), FsError> {
    match (follow, recursive) {
        (true, true) => std::fs::create_dir_all(path)?,
        (true, false) => std::fs::create_dir(path)?,
        (false, _) => nofollow::create_dir(path, recursive)?,
    }
    Ok(())
}

fn statx_at(dir: impl AsFd, name: &Path, follow: bool) -> Result<rustix::fs::Statx, FsError> {
    let flags = if follow { AtFlags::empty() } else { AtFlags::SYMLINK_NOFOLLOW };
    rustix::fs::statx(dir, name, flags, StatxFlags::BASIC_STATS | StatxFlags::BTIME).map_err(errno)
}

fn metadata_of(stx: &rustix::fs::Statx, is_symlink: bool) -> Metadata {
    let kind = FileType::from_raw_mode(u32::from(stx.stx_mode));
    let ms =
        |t: rustix::fs::StatxTimestamp| t.tv_sec.saturating_mul(1000).saturating_add(i64::from(t.tv_nsec / 1_000_000));
    let has_btime = StatxFlags::from_bits_retain(stx.stx_mask).contains(StatxFlags::BTIME);
    Metadata {
        is_directory: kind == FileType::Directory,
        is_file: kind == FileType::RegularFile,
        is_symlink,
        size: stx.stx_size,
        created_at_ms: if has_btime { ms(stx.stx_btime) } else { 0 },
        modified_at_ms: ms(stx.stx_mtime),
    }
}

fn is_link(stx: &rustix::fs::Statx) -> bool {
    FileType::from_raw_mode(u32::from(stx.stx_mode)) == FileType::Symlink
}

/// `fs/getMetadata`: type, size and times of the target; `isSymlink` of the path itself.
pub fn get_metadata(path: &Path, follow: bool) -> Result<Metadata, FsError> {
    if follow {
        let own = statx_at(CWD, path, false)?;
        if !is_link(&own) {
            return Ok(metadata_of(&own, false));
        }
        return Ok(metadata_of(&statx_at(CWD, path, true)?, true));
    }
    let stx = match nofollow::parent(path)? {
        Some((dir, name)) => statx_at(&dir, Path::new(name), false)?,
        None => statx_at(CWD, path, false)?,
    };
    if is_link(&stx) {
        return Err(FsError::SymlinkInPath);
    }
    Ok(metadata_of(&stx, false))
}

/// `fs/readDirectory`: links report their target's type; broken links are left out.
pub fn read_directory(path: &Path) -> Result<Vec<DirectoryEntry>, FsError> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let mut kind = entry.file_type()?;
        if kind.is_symlink() {
            match std::fs::metadata(entry.path()) {
                Ok(target) => kind = target.file_type(),
                Err(_) => continue,
            }
        }
        if entries.len() == MAX_DIRECTORY_ENTRIES {
            return Err(FsError::TooManyEntries);
        }
        entries.push(DirectoryEntry {
            file_name: entry.file_name().to_string_lossy().into_owned(),
            is_directory: kind.is_dir(),
            is_file: kind.is_file(),
        });
    }
    Ok(entries)
}

/// `fs/remove`. `/` is never removed (`EBUSY`), whatever the flags.
pub fn remove(path: &Path, recursive: bool, force: bool, follow: bool) -> Result<(), FsError> {
    if is_root(path) {
        return Err(errno(rustix::io::Errno::BUSY));
    }
    if !follow && recursive {
        return Err(FsError::RecursiveNoFollow);
    }
    let missing_ok = |e: FsError| if force && e.is_not_found() { Ok(()) } else { Err(e) };
    if !follow {
        let Some((dir, name)) =
            nofollow::parent(path).map_err(FsError::from).or_else(|e| missing_ok(e).map(|()| None))?
        else {
            return Ok(());
        };
        let stx = match statx_at(&dir, Path::new(name), false) {
            Ok(stx) => stx,
            Err(e) => return missing_ok(e),
        };
        if is_link(&stx) {
            return Err(FsError::SymlinkInPath);
        }
        let is_dir = FileType::from_raw_mode(u32::from(stx.stx_mode)) == FileType::Directory;
        let flags = if is_dir { AtFlags::REMOVEDIR } else { AtFlags::empty() };
        return rustix::fs::unlinkat(&dir, name, flags).map_err(errno);
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return missing_ok(e.into()),
    };
    let result = if meta.is_dir() {
        if recursive {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_dir(path)
        }
    } else {
        std::fs::remove_file(path)
    };
    result.map_err(FsError::from).or_else(missing_ok)
}

/// `fs/copy`: files are overwritten, directories merged, links copied as links.
pub fn copy(source: &Path, destination: &Path, recursive: bool) -> Result<(), FsError> {
    let meta = std::fs::symlink_metadata(source)?;
    let kind = meta.file_type();
    if kind.is_dir() {
        if !recursive {
            return Err(FsError::CopyNeedsRecursive);
        }
        let src = std::fs::canonicalize(source)?;
        // Where the copy would really land: the destination itself if it exists
        // (it may be a link into the source), else its canonical parent + name.
        let dst = match std::fs::canonicalize(destination) {
            Ok(real) => real,
            Err(_) => {
                let parent = destination.parent().map(std::fs::canonicalize).transpose()?;
                parent.map(|p| p.join(destination.file_name().unwrap_or_default())).unwrap_or_default()
            }
        };
        if dst.starts_with(&src) {
            return Err(FsError::CopyIntoItself);
        }
        return copy_dir(source, destination);
    }
    copy_entry(source, destination, kind)
}

fn copy_entry(source: &Path, destination: &Path, kind: std::fs::FileType) -> Result<(), FsError> {
    if kind.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(source)?, destination)?;
    } else if kind.is_file() {
        let mut from = File::open(source)?;
        let mut to = open_for_write(destination, true)?;
        io::copy(&mut from, &mut to)?;
        to.set_permissions(from.metadata()?.permissions())?;
    } else if kind.is_dir() {
        copy_dir(source, destination)?;
    } else {
        return Err(FsError::CopyUnsupported);
    }
    Ok(())
}

fn copy_dir(source: &Path, destination: &Path) -> Result<(), FsError> {
    match std::fs::create_dir(destination) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && destination.is_dir() => {}
        Err(e) => return Err(e.into()),
    }
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        copy_entry(&entry.path(), &destination.join(entry.file_name()), entry.file_type()?)?;
    }
    Ok(())
}

/// `fs/canonicalize`: `realpath`.
pub fn canonicalize(path: &Path) -> Result<std::path::PathBuf, FsError> {
    Ok(std::fs::canonicalize(path)?)
}
