//! Opening paths component by component without following any symbolic link
//! (`followSymlinks: false`). A link in an intermediate component fails with
//! `ENOTDIR`; what a link as the final component means is up to the caller.

use rustix::fs::{Mode, OFlags, CWD};
use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

/// Opens `dir` as a directory relative to `at`, refusing a symbolic link.
fn open_dir(at: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(at, name, flags, Mode::empty())?)
}

/// The names of an absolute path's components below `/`.
fn names(path: &Path) -> impl Iterator<Item = &OsStr> {
    path.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    })
}

/// The directory holding `path`'s final component, reached without following
/// links, and that component's name. `None` for `/` itself.
pub fn parent(path: &Path) -> io::Result<Option<(OwnedFd, &OsStr)>> {
    let all: Vec<&OsStr> = names(path).collect();
    let Some((last, dirs)) = all.split_last() else { return Ok(None) };
    let mut dir = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    for name in dirs {
        dir = open_dir(&dir, name)?;
    }
    Ok(Some((dir, last)))
}

/// Opens the file at `path` with `flags`, following no link anywhere (a final
/// link gives `ELOOP`).
pub fn open(path: &Path, flags: OFlags, mode: Mode) -> io::Result<OwnedFd> {
    match parent(path)? {
        Some((dir, name)) => Ok(rustix::fs::openat(&dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, mode)?),
        None => Ok(rustix::fs::openat(CWD, "/", flags | OFlags::CLOEXEC, mode)?),
    }
}

/// Creates the directory `path` (and, if `recursive`, its missing parents),
/// following no link. An existing directory is fine only if `recursive`.
pub fn create_dir(path: &Path, recursive: bool) -> io::Result<()> {
    let mode = Mode::from_raw_mode(0o777);
    if !recursive {
        return match parent(path)? {
            Some((dir, name)) => Ok(rustix::fs::mkdirat(&dir, name, mode)?),
            None => Err(rustix::io::Errno::EXIST.into()),
        };
    }
    let mut dir = rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    for name in names(path) {
        dir = match open_dir(&dir, name) {
            Ok(next) => next,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match rustix::fs::mkdirat(&dir, name, mode) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_dir(&dir, name)?
            }
            Err(e) => return Err(e),
        };
    }
    Ok(())
}
