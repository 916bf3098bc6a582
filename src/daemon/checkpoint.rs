//! The daemon's checkpoint on disk: `state.dir/checkpoint.json`, with the one
//! before it kept as `checkpoint.prev.json`, under an exclusive lock on the
//! directory (`LOCK`) so two processes never share one state.
//!
//! Every file carries a format version. At start-up a file that does not parse,
//! or has a version this build does not know, is moved aside (`….bad-<time>`)
//! with a log line and the previous one is used; when no good one is left the
//! daemon refuses to start unless told `--reset-state`, so a bad file never makes
//! it start from nothing silently. Formats 1 (before versions), 2 (closed
//! dispatches without their times) and 3 (open windows not in the checkpoint:
//! its offsets re-read their events) are read as they are.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::engine::EngineState;
use crate::error::{Error, Result};

/// The format this build writes.
pub const FORMAT: u32 = 4;
const CURRENT: &str = "checkpoint.json";
const PREVIOUS: &str = "checkpoint.prev.json";
const LOCK: &str = "LOCK";

use crate::source::kafka::Offsets;

/// What a checkpoint holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Absent in files written before formats were numbered: format 1.
    #[serde(default = "format_one")]
    pub format: u32,
    /// Counts checkpoints across processes (the state topic's and the state
    /// dir's newer one wins at start-up); 0 in files from before it.
    #[serde(default)]
    pub sequence: u64,
    pub engine: EngineState,
    /// Topic → partition → the offset to resume from.
    pub offsets: Offsets,
    /// Output topic → partition → its end offset when the checkpoint was taken:
    /// what a restart reads back to learn what was sent after it.
    #[serde(default)]
    pub outputs: Offsets,
    /// Topic → partition → the next offset not yet consumed: records below it that
    /// a restart reads again had their dead letters sent. (Since format 4 it is
    /// `offsets`; a format-3 restart re-read its open windows from below it.)
    #[serde(default)]
    pub consumed: Offsets,
    /// Open incidents (their latest alert) and tasks, as the API showed them.
    #[serde(default)]
    pub incidents: Vec<crate::alert::Alert>,
    #[serde(default)]
    pub tasks: Vec<crate::task::Task>,
}

fn format_one() -> u32 {
    1
}

/// The state directory, locked for this process's lifetime. The lock file also
/// says whether its last holder stopped cleanly (`stopped`) or not (`running`),
/// and its modification time is when that holder was last alive.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    lock: File,
    /// Cleared on drop: stops the keep-alive thread.
    running: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// When the previous process on this dir was last alive, if it did not stop
    /// cleanly (killed, crashed): it may still count as a member of the group.
    pub predecessor_crashed: Option<std::time::SystemTime>,
}

/// What [`StateDir::load`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub checkpoint: Option<Checkpoint>,
    /// Files moved aside, with why.
    pub set_aside: Vec<(PathBuf, String)>,
}

impl StateDir {
    /// Creates and locks `dir`; a second process on the same directory is refused.
    pub fn open(dir: &Path) -> Result<StateDir> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK);
        let mut lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(Error::Other(format!(
                    "the state directory {} is in use by another yujing process ({}); give each instance its own [state] dir",
                    dir.display(),
                    holder.trim()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let before = std::fs::read_to_string(&path).unwrap_or_default();
        let predecessor_crashed = if before.starts_with("running") {
            lock.metadata().and_then(|m| m.modified()).ok()
        } else {
            None
        };
        // Who holds it, for the message above; the lock itself is what counts.
        let _ = lock.set_len(0);
        let _ = write!(lock, "running {}", std::process::id());
        Ok(StateDir {
            dir: dir.to_path_buf(),
            lock,
            running: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
            predecessor_crashed,
        })
    }

    /// Keeps the lock file's modification time at most `every` old while this
    /// process lives, from a thread of its own (the main loop may be busy for
    /// seconds): after a crash it tells the next process when this one died.
    pub fn keep_alive(&self, every: std::time::Duration) {
        // A file handle of its own, not a clone of the locked one, so the lock
        // goes with this StateDir.
        let Ok(file) = std::fs::OpenOptions::new()
            .write(true)
            .open(self.dir.join(LOCK))
        else {
            return;
        };
        let running = self.running.clone();
        let _ = std::thread::Builder::new()
            .name("state-alive".into())
            .spawn(move || {
                while running.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = file.set_modified(std::time::SystemTime::now());
                    std::thread::sleep(every);
                }
            });
    }

    /// Marks a clean stop: the next process need not wait for this one's session.
    pub fn stopped(&mut self) {
        use std::io::{Seek, SeekFrom};
        let _ = self.lock.set_len(0);
        let _ = self.lock.seek(SeekFrom::Start(0));
        let _ = self.lock.write_all(b"stopped");
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The newest good checkpoint. Bad files are moved aside when a good one
    /// replaces them, or when `reset` allows starting without one.
    pub fn load(&self, reset: bool) -> Result<Loaded> {
        let mut out = Loaded::default();
        let mut bad = Vec::new();
        for name in [CURRENT, PREVIOUS] {
            let path = self.dir.join(name);
            match read(&path) {
                Ok(None) => {}
                Ok(Some(cp)) => {
                    out.checkpoint = Some(cp);
                    break;
                }
                Err(why) => bad.push((path, why)),
            }
        }
        if out.checkpoint.is_none() && !bad.is_empty() && !reset {
            let list: Vec<String> = bad
                .iter()
                .map(|(p, why)| format!("{}: {why}", p.display()))
                .collect();
            return Err(Error::Other(format!(
                "no usable checkpoint in {} ({}); start with --reset-state to set the bad files aside and start afresh",
                self.dir.display(),
                list.join("; ")
            )));
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for (path, why) in bad {
            let aside = path.with_extension(format!("json.bad-{stamp}"));
            std::fs::rename(&path, &aside).map_err(|e| Error::io(&path, e))?;
            tracing::error!(file = %path.display(), moved_to = %aside.display(), reason = %why, "checkpoint set aside");
            out.set_aside.push((aside, why));
        }
        Ok(out)
    }

    /// Writes a checkpoint's bytes (see [`Checkpoint::to_bytes`]) atomically (a
    /// temporary file, synced, renamed; the directory synced); the checkpoint
    /// it replaces becomes the previous one.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        let tmp = self.dir.join(format!("{CURRENT}.tmp"));
        {
            let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
            f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        }
        let current = self.dir.join(CURRENT);
        if current.exists() {
            let previous = self.dir.join(PREVIOUS);
            std::fs::rename(&current, &previous).map_err(|e| Error::io(&current, e))?;
        }
        std::fs::rename(&tmp, &current).map_err(|e| Error::io(&current, e))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        self.running
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Checkpoint {
    /// The checkpoint as the state dir and the state topic hold it.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Other(e.to_string()))
    }
}

/// `Ok(None)`: no file. `Err`: why the file cannot be used.
fn read(path: &Path) -> std::result::Result<Option<Checkpoint>, String> {
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// A checkpoint from its bytes, or why they cannot be used.
pub fn parse(bytes: &[u8]) -> std::result::Result<Checkpoint, String> {
    // The version first, so a newer format is named as such, not as corrupt.
    #[derive(Deserialize)]
    struct Version {
        #[serde(default = "format_one")]
        format: u32,
    }
    let version: Version = serde_json::from_slice(bytes).map_err(|e| format!("corrupt: {e}"))?;
    if version.format > FORMAT || version.format == 0 {
        return Err(format!(
            "format {} is not one this build reads (up to {FORMAT})",
            version.format
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| format!("corrupt: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(n: i64) -> Checkpoint {
        serde_json::from_value(serde_json::json!({
            "format": FORMAT,
            "engine": {"pipelines": {}, "compounds": {}, "tasks": null, "max_time": n},
            "offsets": {"t": {"0": n}},
        }))
        .expect("checkpoint")
    }

    fn offset(cp: &Checkpoint) -> i64 {
        cp.offsets["t"][&0]
    }

    #[test]
    fn a_second_process_on_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        let err = StateDir::open(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another yujing"), "{err}");
        drop(first);
        assert!(StateDir::open(dir.path()).is_ok());
    }

    #[test]
    fn a_process_that_did_not_stop_cleanly_is_noticed_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateDir::open(dir.path()).unwrap();
        assert!(first.predecessor_crashed.is_none());
        first.keep_alive(std::time::Duration::from_millis(10));
        // Dropped without `stopped`: as after kill -9.
        drop(first);
        let mut second = StateDir::open(dir.path()).unwrap();
        let when = second.predecessor_crashed.expect("crashed");
        assert!(when.elapsed().unwrap() < std::time::Duration::from_secs(60));
        second.stopped();
        drop(second);
        assert!(
            StateDir::open(dir.path())
                .unwrap()
                .predecessor_crashed
                .is_none()
        );
    }

    #[test]
    fn a_corrupt_checkpoint_is_set_aside_for_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state.write(&checkpoint(1).to_bytes().unwrap()).unwrap();
        state.write(&checkpoint(2).to_bytes().unwrap()).unwrap();
        assert_eq!(offset(&state.load(false).unwrap().checkpoint.unwrap()), 2);
        // Torn or overwritten: the previous checkpoint is used.
        std::fs::write(dir.path().join(CURRENT), b"{\"format\": 2, \"engine\": {").unwrap();
        let loaded = state.load(false).unwrap();
        assert_eq!(offset(&loaded.checkpoint.unwrap()), 1);
        assert_eq!(loaded.set_aside.len(), 1);
        assert!(loaded.set_aside[0].1.starts_with("corrupt"));
        assert!(!dir.path().join(CURRENT).exists());
        assert!(loaded.set_aside[0].0.exists());
    }

    #[test]
    fn with_no_good_checkpoint_left_only_reset_state_starts_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(CURRENT), b"not json").unwrap();
        let err = state.load(false).unwrap_err().to_string();
        assert!(err.contains("--reset-state"), "{err}");
        // Nothing was moved: the operator can look at the file first.
        assert!(dir.path().join(CURRENT).exists());
        let loaded = state.load(true).unwrap();
        assert!(loaded.checkpoint.is_none());
        assert_eq!(loaded.set_aside.len(), 1);
        assert!(state.load(false).unwrap().checkpoint.is_none());
    }

    #[test]
    fn formats_this_build_does_not_know_are_not_read_and_format_one_is() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let mut newer = serde_json::to_value(checkpoint(5)).unwrap();
        newer["format"] = (FORMAT + 1).into();
        std::fs::write(dir.path().join(CURRENT), newer.to_string()).unwrap();
        let err = state.load(false).unwrap_err().to_string();
        let newer = format!("format {} is not one this build reads", FORMAT + 1);
        assert!(err.contains(&newer), "{err}");
        // Format 1 had no version field.
        let mut old = serde_json::to_value(checkpoint(7)).unwrap();
        old.as_object_mut().unwrap().remove("format");
        std::fs::write(dir.path().join(CURRENT), old.to_string()).unwrap();
        let cp = state.load(false).unwrap().checkpoint.unwrap();
        assert_eq!((cp.format, offset(&cp)), (1, 7));
    }
}
