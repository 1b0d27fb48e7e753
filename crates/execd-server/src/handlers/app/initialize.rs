//! `initialize` of the app-server dialect.

use crate::dispatch::{Ctx, Gate, Router};
use crate::error::ServerError;
use execd_protocol::app::initialize::{AppInitialize, ClientInfo, InitializeParams, InitializeResponse};
use std::future::{ready, Ready};
use std::sync::OnceLock;

/// The app-server version whose process API execd serves (it appears in `userAgent`).
pub const COMPATIBLE_VERSION: &str = "0.169.0";

pub(super) fn register(router: &mut Router) {
    router.add::<AppInitialize, _, _>(Gate::Open, initialize);
}

fn initialize(ctx: Ctx, p: InitializeParams) -> Ready<Result<InitializeResponse, ServerError>> {
    let caps = p.capabilities.unwrap_or_default();
    let opted_out = caps.opt_out_notification_methods.unwrap_or_default();
    ready(match ctx.conn.initialize_app(caps.experimental_api, opted_out) {
        Err(message) => Err(ServerError::InvalidRequest(message.into())),
        Ok(app) => {
            ctx.server.apps.add(&app);
            Ok(InitializeResponse {
                user_agent: user_agent(&p.client_info),
                codex_home: codex_home(),
                platform_family: if cfg!(unix) { "unix" } else { "windows" }.into(),
                platform_os: std::env::consts::OS.into(),
            })
        }
    })
}

/// `<name>/<version> (<os> <os version>; <arch>) <terminal> (<name>; <client version>)`.
fn user_agent(client: &ClientInfo) -> String {
    static HOST: OnceLock<String> = OnceLock::new();
    let host = HOST.get_or_init(|| {
        let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let field = |key: &str| {
            release.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(|v| v.trim_matches('"').to_owned())
        };
        let name = field("NAME").and_then(|n| n.split_whitespace().next().map(str::to_owned));
        let os = match (name, field("VERSION_ID")) {
            (Some(name), Some(version)) => format!("{name} {version}"),
            (Some(name), None) => name,
            _ => std::env::consts::OS.to_owned(),
        };
        let terminal = std::env::var("TERM").unwrap_or_else(|_| "unknown".into());
        format!("({os}; {}) {terminal}", std::env::consts::ARCH)
    });
    format!("{name}/{COMPATIBLE_VERSION} {host} ({name}; {version})", name = client.name, version = client.version)
}

/// `$CODEX_HOME`, else `~/.codex`.
fn codex_home() -> String {
    std::env::var("CODEX_HOME").unwrap_or_else(|_| format!("{}/.codex", std::env::var("HOME").unwrap_or_default()))
}
