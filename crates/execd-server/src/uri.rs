//! `file:` URIs, the only way paths travel on the wire.

use std::path::{Path, PathBuf};
use url::Url;

/// A URI that cannot name a local path.
#[derive(Debug, thiserror::Error)]
pub enum UriError {
    /// Not a URI at all (e.g. a plain path).
    #[error("invalid URI: {0}")]
    Invalid(#[from] url::ParseError),
    /// A scheme other than `file`.
    #[error("unsupported path URI scheme `{0}`")]
    Scheme(String),
    /// A `file:` URI naming another host.
    #[error("path URI `{0}` is not valid on this exec-server host")]
    NotLocal(String),
    /// A `file:` URI naming another host, used as a working directory.
    #[error("cwd URI `{0}` is not valid on this exec-server host: '{0}' is invalid on 'linux'")]
    CwdNotLocal(String),
}

/// Parses a `file:` URI (percent-escapes decoded, `.`/`..` collapsed).
pub fn parse_file_uri(text: &str) -> Result<Url, UriError> {
    let url = Url::parse(text)?;
    if url.scheme() != "file" {
        return Err(UriError::Scheme(url.scheme().to_owned()));
    }
    Ok(url)
}

/// The local directory a `cwd` URI names.
pub fn cwd_path(text: &str) -> Result<PathBuf, UriError> {
    let url = parse_file_uri(text)?;
    url.to_file_path().map_err(|()| UriError::CwdNotLocal(url.to_string()))
}

/// The local path a `file:` URI names, without a trailing `/`.
pub fn file_path(text: &str) -> Result<PathBuf, UriError> {
    let url = parse_file_uri(text)?;
    let path = url.to_file_path().map_err(|()| UriError::NotLocal(url.to_string()))?;
    Ok(path.components().collect())
}

/// The `file:` URI of an absolute local path.
pub fn path_to_uri(path: &Path) -> String {
    Url::from_file_path(path).map(String::from).unwrap_or_else(|()| format!("file://{}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cwd_rules() {
        assert_eq!(cwd_path("file:///tmp").unwrap(), PathBuf::from("/tmp"));
        assert_eq!(cwd_path("file://localhost/tmp/a%20b/../c").unwrap(), PathBuf::from("/tmp/c"));
        assert_eq!(cwd_path("/tmp").unwrap_err().to_string(), "invalid URI: relative URL without a base");
        assert_eq!(cwd_path("tmp").unwrap_err().to_string(), "invalid URI: relative URL without a base");
        assert_eq!(cwd_path("http://x/tmp").unwrap_err().to_string(), "unsupported path URI scheme `http`");
        assert_eq!(
            cwd_path("file://tmp").unwrap_err().to_string(),
            "cwd URI `file://tmp/` is not valid on this exec-server host: 'file://tmp/' is invalid on 'linux'"
        );
        assert_eq!(path_to_uri(Path::new("/a b")), "file:///a%20b");
        assert_eq!(file_path("file:///tmp/x/").unwrap(), PathBuf::from("/tmp/x"));
        assert_eq!(file_path("file:///").unwrap(), PathBuf::from("/"));
    }
}
