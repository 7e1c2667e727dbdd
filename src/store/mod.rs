//! Durable storage: where the objects and the admin key live, behind the [`Store`] trait. One
//! file per backend: the embedded SQLite store ([`sqlite`]) and PostgreSQL for many nodes
//! ([`postgres`]). Shared here: the errors, the
//! durable file write used for key files (temporary file → fsync → rename → fsync directory), the
//! admin key, the secrets key that seals HS256 secrets ([`secrets`]), the import of an earlier
//! version's `state.json` ([`import`]), and the lock that keeps a second server off a data
//! directory in use ([`DataDirLock`]).

mod import;
mod lock;
pub mod postgres;
pub mod secrets;
mod sqlite;

pub use import::STATE_FILE;
pub use lock::{DataDirLock, LOCK_FILE};
pub use postgres::{NodeInfo, PgStore};
pub use secrets::{load_or_create_secrets_key, SecretsKey, SecretsKeySource};
pub use sqlite::{OpenEvent, SqliteStore, DB_FILE};

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::core::catalog::ChangeSet;
use crate::core::model::State;
use crate::core::token;

/// Name of the admin key file inside the data directory.
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Prefix of the temporary files written before the atomic rename.
pub(crate) const TEMP_PREFIX: &str = ".tmp-";

/// Rows other nodes committed that this node has not applied: the latest revision, and the
/// current value of every row those changes touched (a delete where the row is gone).
pub type Gap = Option<(u64, ChangeSet)>;

/// `prepare` of [`Store::commit_with`] gave up: nothing is written (the caller knows why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

/// Why [`Store::commit_with`] wrote nothing.
#[derive(Debug)]
pub enum CommitError {
    /// The store failed (unreachable, disk error): answer 503 `store_unavailable`.
    Store(StoreError),
    /// `prepare` aborted.
    Aborted,
}

/// One node as the store's `nodes` table sees it (SPEC §6).
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeStatus {
    /// The node's id (random per process).
    pub id: String,
    /// Data-plane and admin listen addresses.
    pub listen: String,
    /// The tokengate version it runs.
    pub version: String,
    /// The revision it has applied.
    pub applied_revision: u64,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_s: f64,
    /// Revisions it is behind the store.
    pub lag: u64,
    /// Whether its heartbeat is younger than 5 s.
    pub live: bool,
}

/// One profile's quota count for one window, as one node (or, read back, every other node)
/// counted it (SPEC §1 `quota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    /// The profile's id.
    pub profile_id: String,
    /// The window's first second, since the Unix epoch.
    pub window_start_s: u64,
    /// The second the window ends (so that ended windows can be dropped).
    pub window_end_s: u64,
    /// Requests counted.
    pub used: u64,
}

/// Where the objects live. Every call blocks: run them off the async workers
/// (`spawn_blocking`).
pub trait Store: Send + Sync {
    /// Reads every stored object, with secrets opened, and the revision they reflect. An empty
    /// store is an empty state at revision 0.
    fn load(&self) -> Result<State, StoreError>;

    /// Commits one change as one transaction, with writers on every node sharing the store held
    /// off until it ends. `prepare` runs inside it: it gets the [`Gap`] between `known_revision`
    /// and the store's latest revision (to apply first, so that it decides on current data) and
    /// returns the rows to write, or [`Aborted`]. Returns the change's revision; when this
    /// returns `Ok`, a crash loses nothing. On `Err` nothing was written.
    fn commit_with(
        &self,
        known_revision: u64,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
    ) -> Result<u64, CommitError>;

    /// Commits `change` as is (seeding, tools, tests); returns its revision.
    fn commit(&self, change: &ChangeSet) -> Result<u64, StoreError> {
        let mut once = Some(change.clone());
        match self.commit_with(u64::MAX, &mut |_| once.take().ok_or(Aborted)) {
            Ok(revision) => Ok(revision),
            Err(CommitError::Store(e)) => Err(e),
            Err(CommitError::Aborted) => Err(StoreError::unavailable("store", "commit aborted")),
        }
    }

    /// The changes committed after `known_revision` (by other nodes); `None` when there are none.
    /// A single-process store has none.
    fn changes_since(&self, known_revision: u64) -> Result<Gap, StoreError> {
        let _ = known_revision;
        Ok(None)
    }

    /// How many live nodes have applied `revision`, and how many nodes are live (SPEC §4's
    /// `propagation`). A single-process store: `(1, 1)`, this node.
    fn propagation(&self, revision: u64) -> Result<(u32, u32), StoreError> {
        let _ = revision;
        Ok((1, 1))
    }

    /// Every node sharing the store; empty for a single-process store.
    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        Ok(Vec::new())
    }

    /// Records `counts`, what the node run `node_id` has counted so far in each window (whole
    /// numbers, not increments: a retry after a failure writes the same rows again, and a row
    /// never goes down), drops rows of windows that ended a day before `now_s`, and returns
    /// the sum of every *other* node run's rows per profile and window not yet ended at
    /// `now_s` (this node's earlier runs included). A store that keeps no counts returns none.
    fn sync_usage(
        &self,
        node_id: &str,
        counts: &[UsageCount],
        now_s: u64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let _ = (node_id, counts, now_s);
        Ok(Vec::new())
    }
}

/// What went wrong in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// A file system operation failed.
    Io,
    /// A file exists but is not a valid document (torn, truncated, edited by hand).
    Corrupt,
    /// The state file was written by a newer build in a format this build does not know.
    UnsupportedFormat,
    /// The operating system's random generator failed.
    Random,
}

/// A store failure: what happened, to which file, and why.
#[derive(Debug)]
pub struct StoreError {
    /// The category, for callers that branch on it.
    kind: StoreErrorKind,
    /// The file or directory concerned.
    path: PathBuf,
    /// One human sentence saying what was being done or what is wrong.
    message: String,
    /// The underlying error, if any.
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    fn io(path: &Path, doing: &str, source: io::Error) -> Self {
        StoreError {
            kind: StoreErrorKind::Io,
            path: path.to_owned(),
            message: doing.to_owned(),
            source: Some(Box::new(source)),
        }
    }

    fn corrupt(path: &Path, message: String) -> Self {
        StoreError {
            kind: StoreErrorKind::Corrupt,
            path: path.to_owned(),
            message,
            source: None,
        }
    }

    /// The store cannot be reached or written right now (database down, disk full): what a
    /// backend, or a test double, returns so that the admin API answers 503
    /// `store_unavailable`. `message` is one sentence without secrets.
    pub fn unavailable(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        StoreError {
            kind: StoreErrorKind::Io,
            path: path.into(),
            message: message.into(),
            source: None,
        }
    }

    /// The category of the failure.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The file or directory the failure concerns.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a stored file exists but cannot be understood (corrupt or from a newer build).
    pub fn is_unreadable_document(&self) -> bool {
        matches!(
            self.kind,
            StoreErrorKind::Corrupt | StoreErrorKind::UnsupportedFormat
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Creates the data directory (mode 0700, parents included) if it does not exist.
pub fn ensure_data_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    if dir.exists() && !dir.is_dir() {
        return Err(StoreError {
            kind: StoreErrorKind::Io,
            path: dir.to_owned(),
            message:
                "the data directory path is a file, not a directory; give --data-dir a directory"
                    .to_owned(),
            source: None,
        });
    }
    builder
        .create(dir)
        .map_err(|e| StoreError::io(dir, "cannot create the data directory", e))?;
    if !dir.is_dir() {
        return Err(StoreError::io(
            dir,
            "the data directory path is not a directory",
            io::Error::from(io::ErrorKind::AlreadyExists),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `target` durably: temporary file (0600) → fsync → rename → fsync directory.
pub(crate) fn write_atomically(dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let suffix = token::random_id().map_err(|_| StoreError {
        kind: StoreErrorKind::Random,
        path: target.to_owned(),
        message: "the operating system's random generator failed".to_owned(),
        source: None,
    })?;
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!("{TEMP_PREFIX}{file_name}-{suffix}"));
    let result = write_temp_and_rename(&temp, target, bytes);
    if result.is_err() {
        // Best effort: a leftover would also be removed by the next `SqliteStore::open`.
        let _ = fs::remove_file(&temp);
        return result;
    }
    sync_dir(dir)
}

pub(crate) fn write_temp_and_rename(
    temp: &Path,
    target: &Path,
    bytes: &[u8],
) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(temp)
        .map_err(|e| StoreError::io(temp, "cannot create a temporary file", e))?;
    file.write_all(bytes)
        .map_err(|e| StoreError::io(temp, "cannot write a temporary file", e))?;
    file.sync_all()
        .map_err(|e| StoreError::io(temp, "cannot flush a temporary file to disk", e))?;
    drop(file);
    fs::rename(temp, target).map_err(|e| StoreError::io(target, "cannot replace the file", e))
}

/// Flushes the directory entry of a rename to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StoreError::io(dir, "cannot flush the data directory to disk", e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The admin API key, kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct AdminKey {
    /// SHA-256 of the key's UTF-8 bytes.
    digest: [u8; 32],
}

impl AdminKey {
    /// The key whose text is `key`.
    pub fn from_secret(key: &str) -> AdminKey {
        AdminKey {
            digest: token::token_digest(key.as_bytes()),
        }
    }

    /// Whether `presented` is the admin key. Compares digests in constant time, so neither the
    /// key's length nor its prefix leaks through timing.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented = token::token_digest(presented);
        let difference = presented
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminKey(<redacted>)")
    }
}

/// Where the admin key came from; the caller logs it (the path, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminKeySource {
    /// From the `TOKENGATE_ADMIN_KEY` environment variable.
    Environment,
    /// Read from this existing file.
    File(PathBuf),
    /// Generated on this first start and written to this file (mode 0600).
    Created(PathBuf),
}

/// Returns the admin key: `env_override` (the value of `TOKENGATE_ADMIN_KEY`) when set and not
/// blank; else the contents of `<data-dir>/admin.key`; else, on the first start, a new key of 32
/// random bytes as 64 hex characters, written durably to `<data-dir>/admin.key` with mode 0600.
pub fn load_or_create_admin_key(
    data_dir: &Path,
    env_override: Option<String>,
) -> Result<(AdminKey, AdminKeySource), StoreError> {
    if let Some(key) = env_override {
        let key = key.trim();
        if !key.is_empty() {
            return Ok((AdminKey::from_secret(key), AdminKeySource::Environment));
        }
    }
    ensure_data_dir(data_dir)?;
    let path = data_dir.join(ADMIN_KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let key = text.trim();
            if key.is_empty() {
                return Err(StoreError::corrupt(
                    &path,
                    "the admin key file is empty; delete it to have a new key generated, \
                     or set TOKENGATE_ADMIN_KEY"
                        .to_owned(),
                ));
            }
            Ok((AdminKey::from_secret(key), AdminKeySource::File(path)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let new = token::generate().map_err(|_| StoreError {
                kind: StoreErrorKind::Random,
                path: path.clone(),
                message: "the operating system's random generator failed".to_owned(),
                source: None,
            })?;
            let mut text = new.raw;
            text.push('\n');
            write_atomically(data_dir, &path, text.as_bytes())?;
            Ok((
                AdminKey::from_secret(text.trim()),
                AdminKeySource::Created(path),
            ))
        }
        Err(e) => Err(StoreError::io(&path, "cannot read the admin key file", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_key_matches_only_itself() {
        let key = AdminKey::from_secret("correct horse");
        assert!(key.matches(b"correct horse"));
        assert!(!key.matches(b"correct hors"));
        assert!(!key.matches(b""));
        assert_eq!(format!("{key:?}"), "AdminKey(<redacted>)");
    }
}
