//! Facts about the executor reported by `environment/info`, gathered once at startup.

use crate::uri::path_to_uri;
use execd_protocol::environment::{EnvironmentInfo, ShellInfo};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The exec-server protocol version execd is wire-compatible with.
pub const EXECUTOR_VERSION: &str = "0.169.0";

/// Capabilities execd advertises. Names from the reference mean the same thing;
/// `execd*` names are execd's own guarantees and extensions (see docs/protocol.md).
pub const CAPABILITIES: &[(&str, bool)] = &[
    ("fsWatchMissing", true),
    ("environmentConfigRead", true),
    ("fileWriteStreaming", true),
    ("windowsMxc", false),
    ("execdConcurrentRequests", true),
    ("execdOrderedProcessEvents", true),
    ("execdSignalExitCodes", true),
    ("execdPtySize", true),
    ("execdStdinClose", true),
    ("execdSignals", true),
    ("execdTerminateGrace", true),
    ("execdProcessTimeout", true),
    ("execdOutputBytesCap", true),
    ("execdProcessList", true),
    ("execdReadEviction", true),
];

/// What the server knows about its host.
#[derive(Clone, Debug)]
pub struct Environment {
    /// The `environment/info` result.
    pub info: EnvironmentInfo,
    /// The user's home directory.
    pub home: PathBuf,
    /// The host name.
    pub hostname: String,
}

impl Environment {
    /// Reads the passwd entry, working directory and temporary directory.
    pub fn detect() -> Self {
        let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten();
        let shell_path = user
            .as_ref()
            .map(|u| u.shell.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let home = user
            .as_ref()
            .map(|u| u.dir.clone())
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/"));
        let tmpdir = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()).map(PathBuf::from);
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let shell_name =
            Path::new(&shell_path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let provider = Sha256::digest(format!("execd {}", env!("CARGO_PKG_VERSION")).as_bytes());
        let provider_hex: String = provider.iter().map(|b| format!("{b:02x}")).collect();
        let info = EnvironmentInfo {
            shell: ShellInfo { name: shell_name, path: shell_path },
            executor_version: EXECUTOR_VERSION.to_owned(),
            provider_id: format!("sha256:{provider_hex}"),
            cwd: path_to_uri(&cwd),
            user_home_dir: path_to_uri(&home),
            platform_os: std::env::consts::OS.to_owned(),
            prepend_path_dirs: Vec::new(),
            temporary_directories: tmpdir.iter().map(|t| path_to_uri(t)).collect(),
            temp_dir: path_to_uri(tmpdir.as_deref().unwrap_or(Path::new("/tmp"))),
            capabilities: CAPABILITIES
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .chain([(
                    "execdCgroupContainment".to_owned(),
                    execd_process::containment() == execd_process::Containment::Cgroup,
                )])
                .collect::<BTreeMap<_, _>>(),
        };
        let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
        Environment { info, home, hostname }
    }

    /// The login shell's path.
    pub fn shell_path(&self) -> &str {
        &self.info.shell.path
    }
}
