//! `initialize` of the app-server dialect (selected by a `clientInfo` member).

use crate::Method;
use serde::{Deserialize, Serialize};

/// `initialize` with `clientInfo`: opens an app-server dialect connection.
pub struct AppInitialize;

impl Method for AppInitialize {
    const NAME: &'static str = "initialize";
    type Params = InitializeParams;
    type Result = InitializeResponse;
}

/// Params of the app-server `initialize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// Who the client is.
    pub client_info: ClientInfo,
    /// Opt-in features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<InitializeCapabilities>,
}

/// The client's name and version (they appear in `userAgent`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientInfo {
    /// Client name.
    pub name: String,
    /// Display title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Client version.
    pub version: String,
}

/// Capabilities the client opts into.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeCapabilities {
    /// Required for `process/*` and `command/exec.permissionProfile`.
    #[serde(default)]
    pub experimental_api: bool,
    /// Notification methods this connection does not want.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_out_notification_methods: Option<Vec<String>>,
}

/// Result of the app-server `initialize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResponse {
    /// `<client>/<version> (<os> <os version>; <arch>) <terminal> (<client>; <client version>)`.
    pub user_agent: String,
    /// The server's state directory.
    pub codex_home: String,
    /// `unix` or `windows`.
    pub platform_family: String,
    /// E.g. `linux`.
    pub platform_os: String,
}
