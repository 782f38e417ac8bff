//! A worker's scratch folder outlives a worker that is killed; the next one to start deletes it,
//! and never the folder of a worker still running (evidence::scratch).

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use evidence::scratch::{Scratch, sweep};
use rustix::fs::{FlockOperation, flock};

/// Whether some process holds the lock on `path` (ours is let go at once if we get it).
fn held(path: &Path) -> bool {
    let file = File::open(path).unwrap();
    flock(&file, FlockOperation::NonBlockingLockExclusive).is_err()
}

/// A process group, killed (SIGKILL) when dropped: also when an assertion fails first, so that
/// no `sleep` outlives the test.
struct Group(std::process::Child);

impl Group {
    fn kill(&mut self) {
        let group = rustix::process::Pid::from_raw(self.0.id() as i32).unwrap();
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn a_killed_workers_scratch_folder_is_deleted_and_a_running_ones_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = Scratch::create(tmp.path()).unwrap();
    std::fs::write(ours.path().join("staged"), b"the bytes of an upload").unwrap();
    let ours_name = ours.path().file_name().unwrap().to_string_lossy().into_owned();

    // Another worker, as another process: `flock` holds the lock of its folder (and only
    // `flock`: `-o` closes it in the command it runs), in a process group of its own.
    let other = tmp.path().join("evidence-worker-other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("staged"), vec![7u8; 4096]).unwrap();
    let mut holder = Group(
        Command::new("flock")
            .args(["-o", other.join(".lock").to_str().unwrap(), "sleep", "600"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("run flock(1) (util-linux)"),
    );
    let mut waited = Duration::ZERO;
    while !(other.join(".lock").exists() && held(&other.join(".lock"))) {
        assert!(waited < Duration::from_secs(10), "flock(1) did not take the lock");
        std::thread::sleep(Duration::from_millis(10));
        waited += Duration::from_millis(10);
    }
    // Both running: nothing is deleted, however old.
    assert!(sweep(tmp.path(), Duration::ZERO).is_empty());
    let mut both = vec!["evidence-worker-other".to_owned(), ours_name.clone()];
    both.sort();
    assert_eq!(names(tmp.path()), both);

    // The other worker is killed: its lock is released, and the next sweep deletes its folder.
    holder.kill();
    assert_eq!(sweep(tmp.path(), Duration::ZERO), [(other, 4096)]);
    assert_eq!(names(tmp.path()), [ours_name]);

    // A folder that its worker never locked: left alone while recent, deleted once old.
    let half = tmp.path().join("evidence-worker-half");
    std::fs::create_dir(&half).unwrap();
    assert!(sweep(tmp.path(), Duration::from_secs(60)).is_empty());
    assert_eq!(sweep(tmp.path(), Duration::ZERO), [(half, 0)]);

    // A worker that stops deletes its own folder; other names in the folder are not ours.
    std::fs::create_dir(tmp.path().join("someone-else")).unwrap();
    drop(ours);
    assert_eq!(names(tmp.path()), ["someone-else"]);
    assert!(sweep(tmp.path(), Duration::ZERO).is_empty());
}
