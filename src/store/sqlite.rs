//! The embedded store: SQLite in `<data-dir>/tokengate.db` (rusqlite with its bundled SQLite, so
//! nothing needs installing), WAL journal, `synchronous=FULL`, one row per object.
//!
//! A change is one transaction: its row puts and deletes plus the bump of the stored revision;
//! when [`Store::commit`] returns, the change is on disk (the WAL is fsynced at commit). HS256
//! secrets are sealed ([`SecretsKey`]) in their own column; the JSON body of a profile never holds
//! one. On the first start a `state.json` of an earlier version is imported in one transaction
//! and then renamed, never deleted.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;

use super::import::{
    imported_name, read_state_file, remove_leftover_temp_files, rename_state_file,
};
use super::secrets::SecretsKey;
use super::{
    ensure_data_dir, Aborted, CommitError, Gap, Store, StoreError, StoreErrorKind, UsageCount,
};
use crate::core::catalog::{ChangeSet, Kind, Row, RowOp};
use crate::core::model::{AuthConfig, Profile, State};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "tokengate.db";
/// The schema this build creates and reads.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL, text TEXT);
CREATE TABLE IF NOT EXISTS collections (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    body TEXT NOT NULL,
    secret_sealed BLOB
);
CREATE INDEX IF NOT EXISTS profiles_by_client ON profiles (client_id);
CREATE TABLE IF NOT EXISTS quota_counts (
    profile_id TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    node_id TEXT NOT NULL,
    used INTEGER NOT NULL,
    PRIMARY KEY (profile_id, window_start, window_end, node_id)
);
INSERT OR IGNORE INTO meta (key, value) VALUES ('revision', 0);
";

/// What opening the store did besides opening it; the caller logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenEvent {
    /// A `state.json` was imported and renamed to this path.
    Imported {
        /// The renamed state file.
        renamed_to: PathBuf,
        /// Collections, clients and profiles imported.
        counts: (usize, usize, usize),
    },
}

/// The embedded SQLite store.
pub struct SqliteStore {
    /// The one connection; SQLite serializes writers anyway, and the data-dir lock keeps other
    /// processes out.
    conn: Mutex<Connection>,
    /// Seals and opens HS256 secrets.
    secrets: SecretsKey,
    /// `<data-dir>/tokengate.db`, for error messages.
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/tokengate.db`, migrates its schema, and imports a
    /// `state.json` left by an earlier version when the database is empty.
    ///
    /// Errors: the data directory cannot be created, the database cannot be opened or is from a
    /// newer build, a `state.json` to import is unreadable.
    pub fn open(
        data_dir: &Path,
        secrets: SecretsKey,
    ) -> Result<(SqliteStore, Option<OpenEvent>), StoreError> {
        ensure_data_dir(data_dir)?;
        remove_leftover_temp_files(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let conn =
            Connection::open(&path).map_err(|e| sql_error(&path, "cannot open the database", e))?;
        restrict_mode(&path);
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(|e| sql_error(&path, "cannot configure the database", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| sql_error(&path, "cannot create the schema", e))?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            secrets,
            path,
        };
        store.check_schema_version()?;
        let event = store.import_state_file(data_dir)?;
        Ok((store, event))
    }

    fn check_schema_version(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        let stored: Option<i64> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error("cannot read the schema version", e))?;
        match stored {
            None => conn
                .execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION],
                )
                .map(|_| ())
                .map_err(|e| self.error("cannot write the schema version", e)),
            Some(v) if v == SCHEMA_VERSION => Ok(()),
            Some(v) => Err(StoreError {
                kind: StoreErrorKind::UnsupportedFormat,
                path: self.path.clone(),
                message: format!(
                    "the database has schema version {v}, but this build reads only version {SCHEMA_VERSION}; use a newer tokengate"
                ),
                source: None,
            }),
        }
    }

    fn import_state_file(&self, data_dir: &Path) -> Result<Option<OpenEvent>, StoreError> {
        let marker: Option<String> = {
            let conn = self.lock();
            conn.query_row(
                "SELECT text FROM meta WHERE key = 'imported_state_file'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error("cannot read the import marker", e))?
        };
        if let Some(name) = marker {
            let state_file = data_dir.join(super::import::STATE_FILE);
            if state_file.exists() {
                if data_dir.join(&name).exists() {
                    // Never rename over the kept copy, never import twice: the operator decides.
                    return Err(StoreError {
                        kind: StoreErrorKind::Corrupt,
                        path: state_file,
                        message: format!(
                            "a state.json sits beside a database that already imported one (kept as {name}); move it aside: the database is what tokengate serves"
                        ),
                        source: None,
                    });
                }
                // Imported before a crash that came ahead of the rename: finish the rename only.
                rename_state_file(data_dir, &name)?;
            }
            return Ok(None);
        }
        let Some(state) = read_state_file(data_dir)? else {
            return Ok(None);
        };
        if !self.load()?.is_empty_of_objects() {
            return Err(StoreError {
                kind: StoreErrorKind::Corrupt,
                path: data_dir.join(super::import::STATE_FILE),
                message: "a state.json sits beside a database that already holds objects; move one of them aside so that tokengate knows which to keep".to_owned(),
                source: None,
            });
        }
        let now_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = imported_name(now_s);
        let mut rows = Some(ChangeSet::from_state(&state));
        self.write(
            &mut |_| rows.take().ok_or(Aborted),
            Some((state.revision, &name)),
        )
        .map_err(|e| match e {
            CommitError::Store(e) => e,
            CommitError::Aborted => StoreError::unavailable(&self.path, "the import was aborted"),
        })?;
        let renamed_to = rename_state_file(data_dir, &name)?;
        Ok(Some(OpenEvent::Imported {
            renamed_to,
            counts: (
                state.collections.len(),
                state.clients.len(),
                state.profiles.len(),
            ),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-written transaction (it rolls back on
        // drop), so the connection is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn error(&self, doing: &str, e: rusqlite::Error) -> StoreError {
        sql_error(&self.path, doing, e)
    }

    /// Writes what `prepare` returns in one transaction; with `import`, sets the revision to its
    /// first member and records the import under its second, else bumps the revision. Returns
    /// the revision. One process owns the database (the data-dir lock), so there is never a gap.
    fn write(
        &self,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
        import: Option<(u64, &str)>,
    ) -> Result<u64, CommitError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| CommitError::Store(self.error("cannot begin a transaction", e)))?;
        let change = prepare(None).map_err(|Aborted| CommitError::Aborted)?;
        self.write_rows(&tx, &change, import)
            .map_err(CommitError::Store)
            .and_then(|revision| {
                tx.commit()
                    .map_err(|e| CommitError::Store(self.error("cannot commit the change", e)))?;
                Ok(revision)
            })
    }

    fn write_rows(
        &self,
        tx: &rusqlite::Transaction<'_>,
        change: &ChangeSet,
        import: Option<(u64, &str)>,
    ) -> Result<u64, StoreError> {
        for op in &change.ops {
            match op {
                RowOp::Put(row) => self.put(tx, row)?,
                RowOp::Delete(kind, id) => {
                    tx.execute(&format!("DELETE FROM {} WHERE id = ?1", table(*kind)), [id])
                        .map_err(|e| self.error("cannot delete a row", e))?;
                }
            }
        }
        let revision: i64 = match import {
            Some((revision, name)) => {
                let revision = i64::try_from(revision).unwrap_or(i64::MAX);
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'revision'",
                    [revision],
                )
                .map_err(|e| self.error("cannot set the revision", e))?;
                tx.execute(
                    "INSERT INTO meta (key, value, text) VALUES ('imported_state_file', 1, ?1)",
                    [name],
                )
                .map_err(|e| self.error("cannot record the import", e))?;
                revision
            }
            None => tx
                .query_row(
                    "UPDATE meta SET value = value + 1 WHERE key = 'revision' RETURNING value",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| self.error("cannot bump the revision", e))?,
        };
        Ok(u64::try_from(revision).unwrap_or(0))
    }

    fn put(&self, tx: &rusqlite::Transaction<'_>, row: &Row) -> Result<(), StoreError> {
        let encode = |value: serde_json::Result<String>| {
            value.map_err(|e| StoreError {
                kind: StoreErrorKind::Io,
                path: self.path.clone(),
                message: format!("cannot encode a row ({e})"),
                source: None,
            })
        };
        let result = match row {
            Row::Collection(c) => tx.execute(
                "INSERT OR REPLACE INTO collections (id, body) VALUES (?1, ?2)",
                params![c.id, encode(serde_json::to_string(c))?],
            ),
            Row::Client(c) => tx.execute(
                "INSERT OR REPLACE INTO clients (id, body) VALUES (?1, ?2)",
                params![c.id, encode(serde_json::to_string(c))?],
            ),
            Row::Profile(p) => {
                let (body, sealed) = seal_profile(&self.secrets, p)?;
                tx.execute(
                    "INSERT OR REPLACE INTO profiles (id, client_id, body, secret_sealed) VALUES (?1, ?2, ?3, ?4)",
                    params![p.id, p.client_id, encode(serde_json::to_string(&body))?, sealed],
                )
            }
        };
        result
            .map(|_| ())
            .map_err(|e| self.error("cannot write a row", e))
    }

    fn rows<T: DeserializeOwned>(
        &self,
        conn: &Connection,
        sql: &str,
        mut each: impl FnMut(T, Option<Vec<u8>>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut statement = conn
            .prepare(sql)
            .map_err(|e| self.error("cannot read the rows", e))?;
        let mut rows = statement
            .query([])
            .map_err(|e| self.error("cannot read the rows", e))?;
        while let Some(row) = rows
            .next()
            .map_err(|e| self.error("cannot read a row", e))?
        {
            let id: String = row.get(0).map_err(|e| self.error("cannot read a row", e))?;
            let body: String = row.get(1).map_err(|e| self.error("cannot read a row", e))?;
            let sealed: Option<Vec<u8>> =
                row.get(2).map_err(|e| self.error("cannot read a row", e))?;
            let value = serde_json::from_str(&body).map_err(|e| StoreError {
                kind: StoreErrorKind::Corrupt,
                path: self.path.clone(),
                message: format!("row {id} does not hold a valid object ({e}); tokengate refuses to start rather than drop it"),
                source: None,
            })?;
            each(value, sealed)?;
        }
        Ok(())
    }
}

impl State {
    fn is_empty_of_objects(&self) -> bool {
        self.collections.is_empty() && self.clients.is_empty() && self.profiles.is_empty()
    }
}

impl Store for SqliteStore {
    fn sync_usage(
        &self,
        node_id: &str,
        counts: &[UsageCount],
        now_s: u64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut conn = self.lock();
        let tx = conn
            .transaction()
            .map_err(|e| self.error("cannot begin a usage write", e))?;
        for count in counts {
            tx.execute(
                "INSERT INTO quota_counts (profile_id, window_start, node_id, window_end, used)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (profile_id, window_start, window_end, node_id)
                 DO UPDATE SET used = max(used, excluded.used)",
                rusqlite::params![
                    count.profile_id,
                    int(count.window_start_s),
                    node_id,
                    int(count.window_end_s),
                    int(count.used)
                ],
            )
            .map_err(|e| self.error("cannot write a quota count", e))?;
        }
        tx.execute(
            "DELETE FROM quota_counts WHERE window_end < ?1",
            [int(now_s.saturating_sub(86_400))],
        )
        .map_err(|e| self.error("cannot drop ended quota windows", e))?;
        let others = {
            let mut statement = tx
                .prepare(
                    "SELECT profile_id, window_start, window_end, sum(used) FROM quota_counts
                     WHERE node_id <> ?1 AND window_end > ?2
                     GROUP BY profile_id, window_start, window_end",
                )
                .map_err(|e| self.error("cannot read the quota counts", e))?;
            let rows = statement
                .query_map(rusqlite::params![node_id, int(now_s)], |r| {
                    Ok(UsageCount {
                        profile_id: r.get(0)?,
                        window_start_s: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                        window_end_s: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                        used: u64::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    })
                })
                .map_err(|e| self.error("cannot read the quota counts", e))?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.error("cannot read the quota counts", e))?
        };
        tx.commit()
            .map_err(|e| self.error("cannot commit the quota counts", e))?;
        Ok(others)
    }

    fn load(&self) -> Result<State, StoreError> {
        let conn = self.lock();
        let revision = conn
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| u64::try_from(v).unwrap_or(0))
            .map_err(|e| self.error("cannot read the revision", e))?;
        let mut state = State {
            revision,
            ..State::default()
        };
        self.rows(
            &conn,
            "SELECT id, body, NULL FROM collections ORDER BY id",
            |c, _| {
                state.collections.push(c);
                Ok(())
            },
        )?;
        self.rows(
            &conn,
            "SELECT id, body, NULL FROM clients ORDER BY id",
            |c, _| {
                state.clients.push(c);
                Ok(())
            },
        )?;
        let secrets = &self.secrets;
        let path = &self.path;
        self.rows(
            &conn,
            "SELECT id, body, secret_sealed FROM profiles ORDER BY id",
            |mut p: Profile, sealed| {
                open_profile(secrets, &mut p, sealed.as_deref(), path)?;
                state.profiles.push(p);
                Ok(())
            },
        )?;
        Ok(state)
    }

    fn commit_with(
        &self,
        _known_revision: u64,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
    ) -> Result<u64, CommitError> {
        self.write(prepare, None)
    }
}

/// A profile's JSON body without its HS256 secret, and the secret sealed for its row.
pub(crate) fn seal_profile(
    secrets: &SecretsKey,
    profile: &Profile,
) -> Result<(Profile, Option<Vec<u8>>), StoreError> {
    let mut body = profile.clone();
    let sealed = match &mut body.auth {
        AuthConfig::Jwt(jwt) => match jwt.secret.take() {
            Some(secret) => Some(secrets.seal(&profile.id, secret.as_bytes())?),
            None => None,
        },
        AuthConfig::Token => None,
    };
    Ok((body, sealed))
}

/// Puts the opened secret back into a profile read from a row. Errors when the key cannot open
/// it: the node was started with another secrets key than the one that sealed it.
pub(crate) fn open_profile(
    secrets: &SecretsKey,
    profile: &mut Profile,
    sealed: Option<&[u8]>,
    path: &Path,
) -> Result<(), StoreError> {
    let Some(sealed) = sealed else {
        return Ok(());
    };
    let undecryptable = || {
        StoreError {
        kind: StoreErrorKind::Corrupt,
        path: path.to_owned(),
        message: format!(
            "the secrets key cannot decrypt the HS256 secret of profile {}; start with the key that sealed it ({} or secrets.key in the data directory)",
            profile.id,
            super::secrets::SECRETS_KEY_ENV
        ),
        source: None,
    }
    };
    let plain = secrets
        .open(&profile.id, sealed)
        .map_err(|_| undecryptable())?;
    let secret = String::from_utf8(plain).map_err(|_| undecryptable())?;
    if let AuthConfig::Jwt(jwt) = &mut profile.auth {
        jwt.secret = Some(secret);
    }
    Ok(())
}

fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::Collection => "collections",
        Kind::Client => "clients",
        Kind::Profile => "profiles",
    }
}

fn sql_error(path: &Path, doing: &str, e: rusqlite::Error) -> StoreError {
    StoreError {
        kind: StoreErrorKind::Io,
        path: path.to_owned(),
        message: doing.to_owned(),
        source: Some(Box::new(e)),
    }
}

/// The database holds digests and sealed secrets only, but still: owner-only, like the data dir.
fn restrict_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}
