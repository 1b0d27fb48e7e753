//! `environment/info`, `environment/status`, `environmentConfig/read`.

use crate::dispatch::{Ctx, Gate, Router};
use crate::error::ServerError;
use crate::uri::{parse_file_uri, path_to_uri};
use execd_protocol::environment::{
    ConfigLayers, EnvironmentConfigRead, EnvironmentConfigReadParams, EnvironmentConfigReadResult, EnvironmentInfo,
    EnvironmentInfoMethod, EnvironmentStatus, EnvironmentStatusResult,
};
use execd_protocol::NoParams;
use std::future::{ready, Ready};
use std::path::PathBuf;

pub(super) fn register(router: &mut Router) {
    router.add::<EnvironmentInfoMethod, _, _>(Gate::Family("environment info"), info);
    router.add::<EnvironmentStatus, _, _>(Gate::Family("environment status"), status);
    router.add::<EnvironmentConfigRead, _, _>(Gate::Family("environment config"), config_read);
}

fn info(ctx: Ctx, _: NoParams) -> Ready<Result<EnvironmentInfo, ServerError>> {
    ready(Ok(ctx.server.environment.info.clone()))
}

fn status(_: Ctx, _: NoParams) -> Ready<Result<EnvironmentStatusResult, ServerError>> {
    ready(Ok(EnvironmentStatusResult { status: "ready".into() }))
}

/// execd reads no Codex configuration: the layers are always empty.
fn config_read(
    ctx: Ctx,
    params: EnvironmentConfigReadParams,
) -> Ready<Result<EnvironmentConfigReadResult, ServerError>> {
    ready(config_read_now(&ctx, &params))
}

fn config_read_now(
    ctx: &Ctx,
    params: &EnvironmentConfigReadParams,
) -> Result<EnvironmentConfigReadResult, ServerError> {
    parse_file_uri(&params.cwd)?;
    if params.config_paths.iter().chain(&params.requirements_paths).any(Vec::is_empty) {
        return Err(ServerError::InvalidParams("TOML paths must contain at least one key segment".into()));
    }
    let env = &ctx.server.environment;
    let codex_home = std::env::var_os("CODEX_HOME").map(PathBuf::from).unwrap_or_else(|| env.home.join(".codex"));
    Ok(EnvironmentConfigReadResult {
        user_home_dir: env.info.user_home_dir.clone(),
        codex_home_dir: path_to_uri(&codex_home),
        hostname: env.hostname.clone(),
        config: ConfigLayers::default(),
        requirements: ConfigLayers::default(),
    })
}
