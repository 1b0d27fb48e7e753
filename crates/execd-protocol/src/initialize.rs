//! The handshake: `initialize` (request) then `initialized` (notification).

use crate::environment::EnvironmentInfo;
use crate::{Method, NoParams, Notification};
use serde::{Deserialize, Serialize};

/// `initialize`: opens a session, or resumes a detached one.
pub struct Initialize;

impl Method for Initialize {
    const NAME: &'static str = "initialize";
    type Params = InitializeParams;
    type Result = InitializeResult;
}

/// Params of `initialize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// Free text naming the client; may be empty.
    pub client_name: String,
    /// Re-attach to this detached session instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_session_id: Option<String>,
}

/// Result of `initialize`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The session id (a lowercase UUIDv4); the same value when resuming.
    pub session_id: String,
    /// Same as the result of `environment/info`.
    pub environment_info: EnvironmentInfo,
}

/// `initialized`: the client's acknowledgement that completes the handshake.
pub struct Initialized;

impl Notification for Initialized {
    const NAME: &'static str = "initialized";
    type Params = NoParams;
}
