//! `environment/info`, `environment/status` and `environmentConfig/read`.

use crate::{Method, NoParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `environment/info`: describes the executor.
pub struct EnvironmentInfoMethod;

impl Method for EnvironmentInfoMethod {
    const NAME: &'static str = "environment/info";
    type Params = NoParams;
    type Result = EnvironmentInfo;
}

/// A shell: its name and absolute path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellInfo {
    /// Short name, e.g. `bash`.
    pub name: String,
    /// Absolute path, e.g. `/bin/bash`.
    pub path: String,
}

/// What the executor is: shell, paths, platform and capabilities.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentInfo {
    /// The login shell from the user's passwd entry.
    pub shell: ShellInfo,
    /// The exec-server protocol version this executor is compatible with.
    pub executor_version: String,
    /// Opaque build identity, `sha256:<64 hex>`.
    pub provider_id: String,
    /// The server's working directory (file URI).
    pub cwd: String,
    /// The user's home directory (file URI).
    pub user_home_dir: String,
    /// The operating system, e.g. `linux`.
    pub platform_os: String,
    /// Directories a client should prepend to `PATH` (file URIs).
    pub prepend_path_dirs: Vec<String>,
    /// From `TMPDIR` (file URIs; empty when unset).
    pub temporary_directories: Vec<String>,
    /// The executor's temporary directory (file URI).
    pub temp_dir: String,
    /// Feature flags; a missing name means `false`.
    pub capabilities: BTreeMap<String, bool>,
}

/// `environment/status`: a cheap liveness check.
pub struct EnvironmentStatus;

impl Method for EnvironmentStatus {
    const NAME: &'static str = "environment/status";
    type Params = NoParams;
    type Result = EnvironmentStatusResult;
}

/// Result of `environment/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentStatusResult {
    /// Always `ready`.
    pub status: String,
}

/// `environmentConfig/read`: Codex configuration layers projected to key paths.
pub struct EnvironmentConfigRead;

impl Method for EnvironmentConfigRead {
    const NAME: &'static str = "environmentConfig/read";
    type Params = EnvironmentConfigReadParams;
    type Result = EnvironmentConfigReadResult;
}

/// Params of `environmentConfig/read`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfigReadParams {
    /// The project directory (file URI).
    pub cwd: String,
    /// TOML key paths to project from the config layers.
    pub config_paths: Vec<Vec<String>>,
    /// TOML key paths to project from the requirements layers.
    pub requirements_paths: Vec<Vec<String>>,
}

/// Result of `environmentConfig/read`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentConfigReadResult {
    /// The user's home directory (file URI).
    pub user_home_dir: String,
    /// The Codex home directory (file URI).
    pub codex_home_dir: String,
    /// The executor's host name.
    pub hostname: String,
    /// Configuration layers.
    pub config: ConfigLayers,
    /// Requirements layers.
    pub requirements: ConfigLayers,
}

/// An ordered list of configuration layers.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigLayers {
    /// The layers, lowest precedence first.
    pub layers: Vec<ConfigLayer>,
    /// Where cloud layers would be inserted.
    pub cloud_insertion_index: u32,
}

/// One configuration layer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigLayer {
    /// Where the layer came from.
    pub source: String,
    /// Directory relative paths resolve against (file URI).
    pub base_dir: String,
    /// The projected TOML text.
    pub toml: String,
}
