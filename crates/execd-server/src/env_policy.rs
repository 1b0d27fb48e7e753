//! Building a child's environment: `env` alone, or `envPolicy` applied to the
//! server's own environment with `env` overlaid.

use execd_protocol::process::{EnvInherit, EnvPolicy};
use std::collections::BTreeMap;

/// Variables kept by `inherit: "core"`.
const CORE_VARS: &[&str] =
    &["HOME", "LANG", "LC_ALL", "LC_CTYPE", "LOGNAME", "PATH", "SHELL", "TEMP", "TMP", "TMPDIR", "USER", "USERNAME"];

/// Names dropped unless `ignoreDefaultExcludes` (they tend to hold secrets).
const DEFAULT_EXCLUDES: &[&str] = &["*KEY*", "*SECRET*", "*TOKEN*"];

/// The complete environment for a child.
pub fn build(
    policy: Option<&EnvPolicy>,
    env: BTreeMap<String, String>,
    server_env: impl Iterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let Some(policy) = policy else { return env };
    let mut out: BTreeMap<String, String> = match policy.inherit {
        EnvInherit::None => BTreeMap::new(),
        EnvInherit::All => server_env.collect(),
        EnvInherit::Core => server_env.filter(|(k, _)| CORE_VARS.contains(&k.as_str())).collect(),
    };
    if !policy.ignore_default_excludes {
        out.retain(|k, _| !DEFAULT_EXCLUDES.iter().any(|p| glob_match(p, k)));
    }
    out.retain(|k, _| !policy.exclude.iter().any(|p| glob_match(p, k)));
    out.extend(policy.set.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !policy.include_only.is_empty() {
        out.retain(|k, _| policy.include_only.iter().any(|p| glob_match(p, k)));
    }
    out.extend(env);
    out
}

/// Case-insensitive glob match supporting `*` (any run) and `?` (one character).
fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let n: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> impl Iterator<Item = (String, String)> {
        [("HOME", "/root"), ("PATH", "/bin"), ("API_KEY", "s"), ("MY_TOKEN", "t"), ("X_TEST", "1"), ("OTHER", "o")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
    }

    fn policy(inherit: EnvInherit, ignore: bool, exclude: &[&str], include_only: &[&str]) -> EnvPolicy {
        EnvPolicy {
            inherit,
            ignore_default_excludes: ignore,
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            set: BTreeMap::from([("S".to_owned(), "2".to_owned())]),
            include_only: include_only.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn keys(m: &BTreeMap<String, String>) -> Vec<&str> {
        m.keys().map(String::as_str).collect()
    }

    #[test]
    fn policies() {
        let env = BTreeMap::from([("Z".to_owned(), "1".to_owned())]);
        assert_eq!(keys(&build(None, env.clone(), server())), ["Z"]);
        let core = build(Some(&policy(EnvInherit::Core, false, &[], &[])), env.clone(), server());
        assert_eq!(keys(&core), ["HOME", "PATH", "S", "Z"]);
        let all = build(Some(&policy(EnvInherit::All, false, &["x_*"], &[])), env.clone(), server());
        assert_eq!(keys(&all), ["HOME", "OTHER", "PATH", "S", "Z"]);
        let only = build(Some(&policy(EnvInherit::All, true, &[], &["*token*", "x_*"])), env, server());
        assert_eq!(keys(&only), ["MY_TOKEN", "X_TEST", "Z"]);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*KEY*", "api_key"));
        assert!(glob_match("a?c", "ABC"));
        assert!(!glob_match("a?c", "abbc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("x_*", "y_x"));
    }
}
