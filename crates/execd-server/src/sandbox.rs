//! The `sandbox` parameter. execd does not sandbox yet, so a request that asks
//! for restrictions is refused rather than served unrestricted.

use crate::error::ServerError;
use execd_protocol::process::SandboxParams;

/// execd has no sandbox yet: a command that asked for restrictions is refused,
/// never run unrestricted. Profiles that restrict nothing are accepted.
pub fn refuse_restricting(sandbox: &SandboxParams) -> Result<(), ServerError> {
    let perms = &sandbox.permissions;
    let kind = perms.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let unrestricted = match kind {
        "disabled" => true,
        "managed" => {
            perms.pointer("/file_system/type").and_then(|t| t.as_str()) == Some("unrestricted")
                && perms.get("network").and_then(|n| n.as_str()) == Some("enabled")
        }
        _ => false,
    };
    if unrestricted {
        return Ok(());
    }
    Err(ServerError::InvalidParams(format!(
        "sandbox permissions of type `{kind}` are not supported by this execd build: refusing to run the command unsandboxed"
    )))
}
