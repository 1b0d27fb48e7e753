//! Finding the program to run in the child's own `PATH`, as `execvp` would.
//!
//! Resolving here (instead of letting the standard library search) lets the
//! spawn use `posix_spawn`, which is much cheaper than `fork` + `exec`.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The search path `execvp` uses when the environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Resolves `program` against `path` (a `PATH` value) relative to `cwd`.
///
/// A name containing `/` is used as is (relative to `cwd`). Otherwise the first
/// directory holding an executable regular file of that name wins; if only
/// non-executable candidates exist the error is `EACCES`, else `ENOENT`, as
/// `execvp` reports.
pub fn resolve_program(program: &str, path: Option<&str>, cwd: &Path) -> io::Result<PathBuf> {
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc_enoent()));
    }
    if program.contains('/') {
        return Ok(cwd.join(program));
    }
    let mut denied = false;
    for dir in path.unwrap_or(DEFAULT_PATH).split(':') {
        let candidate = cwd.join(if dir.is_empty() { "." } else { dir }).join(program);
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => return Ok(candidate),
            Ok(_) => denied = true,
            Err(_) => {}
        }
    }
    Err(io::Error::from_raw_os_error(if denied { libc_eacces() } else { libc_enoent() }))
}

fn libc_enoent() -> i32 {
    rustix::io::Errno::NOENT.raw_os_error()
}

fn libc_eacces() -> i32 {
    rustix::io::Errno::ACCESS.raw_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_like_execvp() {
        let root = Path::new("/");
        assert_eq!(resolve_program("sh", Some("/nonexistent:/bin"), root).unwrap(), Path::new("/bin/sh"));
        assert_eq!(resolve_program("sh", None, root).unwrap(), Path::new("/bin/sh"));
        let missing = resolve_program("sh", Some("/nonexistent"), root).unwrap_err();
        assert_eq!(missing.to_string(), "No such file or directory (os error 2)");
        // A directory of that name is found but cannot be executed.
        let denied = resolve_program("bin", Some("/"), root).unwrap_err();
        assert_eq!(denied.to_string(), "Permission denied (os error 13)");
        assert_eq!(resolve_program("./x", None, Path::new("/tmp")).unwrap(), Path::new("/tmp/./x"));
    }
}
