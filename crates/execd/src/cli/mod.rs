//! The client commands: `execd exec`, `execd fs …`, `execd ps`. Each connects
//! with [`execd_client`] and prints what a terminal user expects.

pub mod exec;
pub mod fs;
pub mod ps;

use execd_client::{Client, Endpoint, Options};
use std::path::Path;

/// How to reach the server (shared by every client command).
#[derive(clap::Args, Clone, Debug)]
pub struct Remote {
    /// The server's URL.
    #[arg(long, env = "EXECD_URL", default_value = "ws://127.0.0.1:8765")]
    pub url: String,
    /// A bearer token for servers started with `--ws-auth`.
    #[arg(long, env = "EXECD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Remote {
    /// Connects and opens a new session (or resumes `session`).
    pub async fn connect(&self, session: Option<&str>) -> anyhow::Result<Client> {
        if !self.url.starts_with("ws://") {
            anyhow::bail!("bad server URL `{}`: expected ws://HOST:PORT (set --url or EXECD_URL)", self.url);
        }
        let endpoint = Endpoint::WebSocket { url: self.url.clone(), token: self.token.clone() };
        let options = Options { client_name: format!("execd-cli {}", env!("CARGO_PKG_VERSION")), ..Options::default() };
        let client = match session {
            None => Client::connect(endpoint, options).await?,
            Some(id) => Client::resume(endpoint, options, id).await?,
        };
        Ok(client)
    }
}

/// An absolute path as a `file:` URI.
pub fn file_uri(path: &str) -> anyhow::Result<String> {
    anyhow::ensure!(Path::new(path).is_absolute(), "remote paths must be absolute: `{path}`");
    let url = url::Url::from_file_path(path).map_err(|()| anyhow::anyhow!("not a usable path: `{path}`"))?;
    Ok(url.to_string())
}

/// Turns a client error into a message that names the remote path, with a
/// hint for a path that does not exist.
pub fn not_found_hint<T>(result: Result<T, execd_client::ClientError>, path: &str) -> anyhow::Result<T> {
    result.map_err(|e| match e.code() {
        Some(-32004) => anyhow::anyhow!("{path}: no such file or directory on the server (check with `execd fs ls`)"),
        _ => anyhow::Error::new(e).context(format!("remote path {path}")),
    })
}
