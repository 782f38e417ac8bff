//! The worker's scratch folder. Everything an ingest stages (the downloaded object, the extract
//! child's folder, a container's members) lies in one folder of the worker's own under
//! `INGEST_TMP_DIR`, named `evidence-worker-…`, holding a lock file that the worker keeps locked
//! (`flock`) for as long as it runs. A worker that is killed cannot delete what it staged (a
//! large upload is gigabytes); the next worker to start on the machine finds that folder's lock
//! free and deletes it. Several workers may share `INGEST_TMP_DIR`: a live worker's folder is
//! locked, and the kernel releases the lock of a process that ends, however it ends.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{FlockOperation, flock};

const PREFIX: &str = "evidence-worker-";
const LOCK: &str = ".lock";
/// A folder without a lock file is deleted only once nothing changed in it for this long: its
/// worker was killed between making it and locking it.
const GRACE: Duration = Duration::from_secs(60);

/// This worker's scratch folder: locked while the value lives, deleted when it is dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
    _lock: File,
}

impl Scratch {
    /// Delete the scratch folders in `tmp_dir` of workers that ended without deleting theirs,
    /// then make and lock this worker's.
    pub fn create(tmp_dir: &Path) -> io::Result<Self> {
        for (path, bytes) in sweep(tmp_dir, GRACE) {
            tracing::info!(folder = %path.display(), bytes, "deleted the scratch folder of a worker that ended without deleting it");
        }
        let dir = tempfile::Builder::new().prefix(PREFIX).tempdir_in(tmp_dir)?;
        // Locked under another name first, so that a sweep never finds the lock file unlocked.
        let unnamed = dir.path().join(".lock-new");
        let lock = File::create(&unnamed)?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)?;
        std::fs::rename(&unnamed, dir.path().join(LOCK))?;
        Ok(Self { dir, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Delete the scratch folders in `tmp_dir` whose lock no process holds, and those without a
/// lock file in which nothing changed for `grace`; each deleted folder with the bytes it held.
/// What cannot be read or deleted is left for the next start.
pub fn sweep(tmp_dir: &Path, grace: Duration) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = std::fs::read_dir(tmp_dir) else { return Vec::new() };
    let mut deleted = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX));
        if !ours || !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // Held until the folder is gone, so that no other worker's sweep deletes it twice.
        let lock = match File::open(path.join(LOCK)) {
            Ok(lock) if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_ok() => Some(lock),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound && unchanged_for(&path, grace) => None,
            Err(_) => continue,
        };
        let bytes = bytes_under(&path);
        if std::fs::remove_dir_all(&path).is_ok() {
            deleted.push((path, bytes));
        }
        drop(lock);
    }
    deleted
}

fn unchanged_for(path: &Path, grace: Duration) -> bool {
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    modified.is_ok_and(|at| SystemTime::now().duration_since(at).is_ok_and(|age| age >= grace))
}

/// The bytes of the files under `path` (for the log line).
fn bytes_under(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}
