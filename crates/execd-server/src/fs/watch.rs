//! `fs/watchMissing`: a one-shot notification when any of a set of missing
//! paths (or a missing ancestor of one) is created. One watch per connection;
//! a watch id not above every earlier one of the connection is ignored.
//! Uses the kernel's file notifications (inotify, through `notify`).

use super::FsError;
use crate::session::lock;
use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The watch state of one connection.
#[derive(Default)]
pub struct MissingWatch {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    highest_id: Option<u64>,
    /// The armed watcher; dropping it cancels the watch.
    active: Option<notify::RecommendedWatcher>,
}

/// The first missing component of `path` (the path that will appear first) and
/// the existing directory that will hold it; `None` if `path` exists.
fn first_missing(path: &Path) -> Option<(PathBuf, PathBuf)> {
    let mut candidate = path;
    loop {
        let parent = candidate.parent()?;
        if std::fs::symlink_metadata(candidate).is_ok() {
            return None;
        }
        if std::fs::symlink_metadata(parent).is_ok() {
            return Some((candidate.to_owned(), parent.to_owned()));
        }
        candidate = parent;
    }
}

fn is_creation(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both | RenameMode::Any))
    )
}

impl MissingWatch {
    /// Replaces the connection's watch if `watch_id` is the highest seen, and
    /// arms it unless a path already exists. `fire` runs at most once, on a
    /// watcher thread, when a watched path appears. Returns whether it armed.
    pub fn watch(
        &self,
        watch_id: u64,
        paths: &[PathBuf],
        fire: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<bool, FsError> {
        let mut state = lock(&self.state);
        if state.highest_id.is_some_and(|highest| watch_id <= highest) {
            return Ok(false);
        }
        state.highest_id = Some(watch_id);
        state.active = None;
        let mut triggers = HashSet::new();
        let mut dirs = HashSet::new();
        for path in paths {
            let Some((trigger, dir)) = first_missing(path) else { return Ok(false) };
            triggers.insert(trigger);
            dirs.insert(dir);
        }
        if triggers.is_empty() {
            return Ok(false);
        }
        let fired = Arc::new(AtomicBool::new(false));
        let fire = Arc::new(fire);
        let (fired_in, fire_in, triggers) = (fired.clone(), fire.clone(), Arc::new(triggers));
        let triggers_in = triggers.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
            let Ok(event) = event else { return };
            if is_creation(&event.kind)
                && event.paths.iter().any(|p| triggers_in.contains(p))
                && !fired_in.swap(true, Ordering::SeqCst)
            {
                fire_in(watch_id);
            }
        })
        .map_err(|e| FsError::Io(std::io::Error::other(e.to_string())))?;
        for dir in &dirs {
            watcher
                .watch(dir, RecursiveMode::NonRecursive)
                .map_err(|e| FsError::Io(std::io::Error::other(e.to_string())))?;
        }
        // A path created between the check above and arming would be missed: look again.
        if triggers.iter().any(|t| std::fs::symlink_metadata(t).is_ok()) && !fired.swap(true, Ordering::SeqCst) {
            fire(watch_id);
        }
        state.active = Some(watcher);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_missing_component() {
        let base = std::env::temp_dir();
        let p = base.join("execd-nope-1/a/b");
        assert_eq!(first_missing(&p), Some((base.join("execd-nope-1"), base.clone())));
        assert_eq!(first_missing(&base), None);
    }
}
