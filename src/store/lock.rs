//! The data directory lock: one `serve` process per data directory.
//!
//! Two servers on one directory would each overwrite the state with their own memory, and a
//! change one of them acknowledged would be lost. [`DataDirLock::acquire`] takes an exclusive
//! OS file lock (`flock`) on `<data-dir>/lock` and holds it for the life of the value; the OS
//! releases it when the process exits, `kill -9` included. The holder's pid is written into the
//! file so that a second server can say who holds it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "lock";

/// The held lock; released on drop.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `dir` (which must exist) for this process, waiting up to one second for a holder
    /// that is going away.
    ///
    /// Errors, as one sentence naming the directory: another process holds the lock (with its
    /// pid when known), or the lock file cannot be opened.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, String> {
        let path = dir.join(LOCK_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|e| {
            format!(
                "cannot open the lock file {} of the data directory: {e}",
                path.display()
            )
        })?;
        // A lock can outlive its holder by moments: a process that is exiting, or a child forked
        // by this process between fork and exec (it shares the open file until exec closes it).
        // Wait up to one second before calling the directory taken.
        let mut attempt = file.try_lock();
        let patience = std::time::Instant::now();
        while matches!(attempt, Err(TryLockError::WouldBlock))
            && patience.elapsed() < std::time::Duration::from_secs(1)
        {
            std::thread::sleep(std::time::Duration::from_millis(25));
            attempt = file.try_lock();
        }
        match attempt {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() || !holder.bytes().all(|b| b.is_ascii_digit()) {
                    "another process".to_owned()
                } else {
                    format!("another tokengate process (pid {holder})")
                };
                return Err(format!(
                    "the data directory {} is in use by {who}; stop it or give this server another --data-dir",
                    dir.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!(
                    "cannot lock the data directory {} ({}): {e}",
                    dir.display(),
                    path.display()
                ))
            }
        }
        // Ours now: say who holds it.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = writeln!(file, "{}", std::process::id());
        let _ = file.sync_all();
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_directory_is_refused_and_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("tokengate-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DataDirLock::acquire(&dir).unwrap();
        let err = DataDirLock::acquire(&dir).unwrap_err();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        let again = DataDirLock::acquire(&dir).unwrap();
        assert_eq!(again.path(), dir.join(LOCK_FILE));
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
