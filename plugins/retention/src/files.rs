//! The file sweep: deletes regular files older than the age under the given directories and
//! removes the directories that sweep left empty.
//!
//! Symlinks are never followed and never deleted: a link could point outside the swept tree
//! (or be swapped while the sweep runs), and leaving it costs nothing but an entry under
//! `skipped`. A directory is removed only when this sweep emptied it, and a root never is.
//! Under WASI only the directories granted to the plugin exist, so a path that cannot be
//! opened is reported as skipped rather than failing the run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// How deep the walk goes below a root; deeper directories are reported as skipped.
const MAX_DEPTH: usize = 64;
/// How many skipped entries are listed; the rest are summed up in one last entry.
const MAX_SKIPPED: usize = 100;

/// What the file sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FilesReport {
    /// Old files reached (on a dry run: the files that would be deleted).
    pub matched: u64,
    /// Files deleted (0 on a dry run).
    pub deleted: u64,
    /// Bytes freed (on a dry run: that would be freed).
    pub bytes: u64,
    /// Whether the batch ran out before every old file was reached.
    pub more: bool,
    /// Paths left alone and why: missing or ungranted roots, symlinks, unreadable entries.
    pub skipped: Vec<Skipped>,
}

/// A path the sweep did not touch, so an operator can see why something stayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The path as the guest sees it.
    pub path: String,
    /// Why it was left alone.
    pub reason: String,
}

/// Sweeps every root in `paths` for regular files modified more than `older_than` seconds
/// before `now`, reaching at most `batch` of them.
pub fn sweep(
    paths: &[String],
    older_than: u64,
    batch: u32,
    dry_run: bool,
    now: SystemTime,
) -> FilesReport {
    let mut walk = Walk {
        report: FilesReport::default(),
        budget: batch,
        max_age: Duration::from_secs(older_than),
        now,
        dry_run,
        unlisted: 0,
    };
    for root in paths {
        if walk.report.more {
            break;
        }
        let path = Path::new(root);
        match fs::symlink_metadata(path) {
            Err(err) => walk.skip(path, root_reason(&err)),
            Ok(meta) if meta.file_type().is_symlink() => {
                walk.skip(path, "a symlink: never followed".to_string())
            }
            Ok(meta) if !meta.is_dir() => walk.skip(path, "not a directory".to_string()),
            Ok(_) => {
                walk.dir(path, 0);
            }
        }
    }
    if walk.unlisted > 0 {
        walk.report.skipped.push(Skipped {
            path: "...".to_string(),
            reason: format!("{} more skipped paths not listed", walk.unlisted),
        });
    }
    walk.report
}

fn root_reason(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => {
            "does not exist, or is not a directory granted to this plugin".to_string()
        }
        _ => format!("cannot be opened: {err}"),
    }
}

struct Walk {
    report: FilesReport,
    budget: u32,
    max_age: Duration,
    now: SystemTime,
    dry_run: bool,
    unlisted: u64,
}

impl Walk {
    fn skip(&mut self, path: &Path, reason: String) {
        if self.report.skipped.len() < MAX_SKIPPED {
            self.report.skipped.push(Skipped {
                path: path.display().to_string(),
                reason,
            });
        } else {
            self.unlisted += 1;
        }
    }

    /// Sweeps one directory; `true` when this sweep removed something directly inside it, so
    /// it may have left it empty.
    fn dir(&mut self, dir: &Path, depth: usize) -> bool {
        // Listed up front (and sorted, so batches are predictable) rather than deleting while
        // the directory is being read.
        let mut entries: Vec<PathBuf> = match fs::read_dir(dir) {
            Ok(iter) => {
                let mut out = Vec::new();
                for entry in iter {
                    match entry {
                        Ok(e) => out.push(e.path()),
                        Err(err) => self.skip(dir, format!("cannot be listed fully: {err}")),
                    }
                }
                out
            }
            Err(err) => {
                self.skip(dir, format!("cannot be listed: {err}"));
                return false;
            }
        };
        entries.sort();
        let mut removed = false;
        for path in entries {
            if self.report.more {
                break;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => {
                    self.skip(&path, format!("cannot be inspected: {err}"));
                    continue;
                }
            };
            let kind = meta.file_type();
            if kind.is_symlink() {
                self.skip(&path, "a symlink: left alone, never followed".to_string());
            } else if kind.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    self.skip(&path, format!("deeper than {MAX_DEPTH} levels"));
                } else if self.dir(&path, depth + 1) && !self.dry_run {
                    removed |= self.remove_if_empty(&path);
                }
            } else if kind.is_file() {
                removed |= self.file(&path, &meta);
            } else {
                self.skip(&path, "not a regular file".to_string());
            }
        }
        removed
    }

    /// Deletes one file if it is old enough and the batch allows; `true` when it was deleted.
    fn file(&mut self, path: &Path, meta: &fs::Metadata) -> bool {
        let modified = match meta.modified() {
            Ok(t) => t,
            Err(err) => {
                self.skip(path, format!("no modification time: {err}"));
                return false;
            }
        };
        // A time in the future (clock skew) is not old.
        let old = self
            .now
            .duration_since(modified)
            .is_ok_and(|age| age > self.max_age);
        if !old {
            return false;
        }
        if self.budget == 0 {
            self.report.more = true;
            return false;
        }
        self.budget -= 1;
        self.report.matched += 1;
        if self.dry_run {
            self.report.bytes += meta.len();
            return false;
        }
        match fs::remove_file(path) {
            Ok(()) => {
                self.report.deleted += 1;
                self.report.bytes += meta.len();
                true
            }
            // Gone already (another run got there first): nothing to do.
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => {
                self.skip(path, format!("cannot be deleted: {err}"));
                false
            }
        }
    }

    /// Removes a directory this sweep emptied; one that still holds anything stays.
    fn remove_if_empty(&mut self, dir: &Path) -> bool {
        let empty = fs::read_dir(dir).is_ok_and(|mut it| it.next().is_none());
        if !empty {
            return false;
        }
        match fs::remove_dir(dir) {
            Ok(()) => true,
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => {
                self.skip(dir, format!("emptied but cannot be removed: {err}"));
                false
            }
        }
    }
}
