//! The shared store: PostgreSQL through tokio-postgres, for any number of nodes (SPEC §6).
//!
//! Tables (prefixed `tokengate_`): `schema` (one version row), `collections`, `clients`,
//! `profiles` (one row per object, JSON text bodies, HS256 secrets sealed in their own column),
//! `changes` (the change log: revision, commit time, the rows touched), `nodes` (one row per
//! live process, with its heartbeat and applied revision) and `quota_counts` (each node run's
//! quota counts per profile and window, [`usage`]).
//!
//! - The schema is created and migrated on start inside a transaction holding an advisory lock,
//!   so nodes starting at once migrate it once.
//! - A change is one transaction that first takes the writers' advisory lock (so revisions are
//!   committed in order and no node decides on stale rows: the rows committed since the
//!   writer's revision are handed to it first), writes its rows and its change-log row, and
//!   `NOTIFY tokengate_changes, '<revision>'`; the notification is delivered at commit.
//! - Readers ([`Store::changes_since`], [`Store::load`]) read in one REPEATABLE READ snapshot,
//!   so the rows and the revision they report agree.
//!
//! The [`Store`] calls block on this store's runtime handle: call them from blocking threads.
//! The node's sync loop uses the async methods ([`PgStore::heartbeat`], [`PgStore::listen`]).

use std::collections::BTreeSet;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, Mutex};
use tokio_postgres::{AsyncMessage, Client, GenericClient, NoTls};

mod schema;
mod store;
mod usage;

use self::schema::migrate;
use super::secrets::SecretsKey;
use super::sqlite::{open_profile, seal_profile};
use super::{Aborted, CommitError, Gap, StoreError, StoreErrorKind};
use crate::core::catalog::{ChangeSet, Kind, Row, RowOp};
use crate::core::model::{Client as ClientRow, Collection, Profile};

/// Advisory lock held by every writing transaction.
const WRITE_LOCK: i64 = 0x746f_6b65_6e67_0002;
/// The channel changes are announced on.
pub const CHANNEL: &str = "tokengate_changes";
/// A node is live while its heartbeat is younger than this (SPEC §4).
const LIVE_SECONDS: f64 = 5.0;

/// Who this node is, for the `nodes` table.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Random per process.
    pub id: String,
    /// `data=<addr> admin=<addr>`.
    pub listen: String,
}

/// The PostgreSQL store of one node.
pub struct PgStore {
    /// The connection string (never logged: it may hold a password).
    url: String,
    /// Seals and opens HS256 secrets; every node sharing the database has the same key.
    secrets: SecretsKey,
    /// The runtime the connections run on, for the blocking [`Store`] calls.
    handle: Handle,
    /// The writer/reader connection; `None` after it broke, until the next call reconnects.
    client: Mutex<Option<Client>>,
    /// This node.
    node: NodeInfo,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore(node {})", self.node.id)
    }
}

pub(super) fn pg_error(doing: &str, e: tokio_postgres::Error) -> StoreError {
    // The driver's message names the server's error, never the connection string's password.
    StoreError::unavailable("postgres", format!("{doing}: {e}"))
}

async fn connect(
    url: &str,
) -> Result<
    (
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    StoreError,
> {
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio_postgres::connect(url, NoTls),
    )
    .await
    .map_err(|_| {
        StoreError::unavailable("postgres", "connecting to PostgreSQL timed out after 5 s")
    })?
    .map_err(|e| pg_error("cannot connect to PostgreSQL", e))
}

impl PgStore {
    /// Connects to `url`, creates or migrates the schema, and registers `node`.
    ///
    /// Errors: PostgreSQL unreachable, a schema from a newer build.
    pub async fn connect(
        url: &str,
        secrets: SecretsKey,
        node: NodeInfo,
    ) -> Result<PgStore, StoreError> {
        let store = PgStore {
            url: url.to_owned(),
            secrets,
            handle: Handle::current(),
            client: Mutex::new(None),
            node,
        };
        let mut guard = store.client().await?;
        let client = guard
            .as_mut()
            .ok_or_else(|| StoreError::unavailable("postgres", "no connection"))?;
        migrate(client).await?;
        drop(guard);
        store.heartbeat(0).await?;
        Ok(store)
    }

    /// The connection, reconnecting if it broke.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            *guard = None;
            let (client, connection) = connect(&self.url).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *guard = Some(client);
        }
        Ok(guard)
    }

    /// Runs `f` with the connection; a failure drops it so that the next call reconnects.
    async fn with_client<T>(
        &self,
        f: impl for<'c> AsyncFnOnce(&'c mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.client().await?;
        let client = guard
            .as_mut()
            .ok_or_else(|| StoreError::unavailable("postgres", "no connection"))?;
        let result = f(client).await;
        if result.is_err() && client.is_closed() {
            *guard = None;
        }
        result
    }

    /// Records this node's heartbeat and applied revision (never lowering it: a heartbeat that
    /// read the revision just before this node's own commit must not undo the commit's record;
    /// registering the node again if its row was removed) and returns the store's latest revision: the round trip `--max-staleness-s`
    /// counts on.
    pub async fn heartbeat(&self, applied: u64) -> Result<u64, StoreError> {
        let node = self.node.clone();
        self.with_client(async move |client| {
            let applied = i64::try_from(applied).unwrap_or(i64::MAX);
            client
                .execute(
                    "INSERT INTO tokengate_nodes (id, listen, version, applied_revision)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(),
                         applied_revision = GREATEST(tokengate_nodes.applied_revision, $4)",
                    &[&node.id, &node.listen, &env!("CARGO_PKG_VERSION"), &applied],
                )
                .await
                .map_err(|e| pg_error("cannot record the heartbeat", e))?;
            latest_revision(client).await
        })
        .await
    }

    /// Seconds from the commit of `revision` to now, both on the database's clock (so nodes'
    /// clocks do not matter); `None` when the change log has no such revision.
    pub async fn commit_age(&self, revision: u64) -> Result<Option<f64>, StoreError> {
        let revision = i64::try_from(revision).unwrap_or(i64::MAX);
        self.with_client(async move |client| {
            let row = client
                .query_opt(
                    "SELECT EXTRACT(EPOCH FROM clock_timestamp() - committed_at)::FLOAT8
                     FROM tokengate_changes WHERE revision = $1",
                    &[&revision],
                )
                .await
                .map_err(|e| pg_error("cannot read a change's commit time", e))?;
            Ok(row.map(|r| r.get::<_, f64>(0)))
        })
        .await
    }

    /// Removes this node's row (a clean shutdown), so that it stops counting as live at once.
    pub async fn deregister(&self) {
        let id = self.node.id.clone();
        let _ = self
            .with_client(async move |client| {
                client
                    .execute("DELETE FROM tokengate_nodes WHERE id = $1", &[&id])
                    .await
                    .map_err(|e| pg_error("cannot remove the node", e))
            })
            .await;
    }

    /// Opens a second connection that `LISTEN`s on [`CHANNEL`]; each notification's revision
    /// arrives on the returned channel, which closes when the connection is lost.
    pub async fn listen(&self) -> Result<(Client, mpsc::Receiver<u64>), StoreError> {
        let (client, mut connection) = connect(&self.url).await?;
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
                match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        let revision = n.payload().parse().unwrap_or(u64::MAX);
                        if tx.send(revision).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(|e| pg_error("cannot LISTEN for changes", e))?;
        Ok((client, rx))
    }

    async fn read_rows(
        &self,
        client: &impl GenericClient,
        only: Option<&Touched>,
    ) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::new();
        for kind in [Kind::Collection, Kind::Client, Kind::Profile] {
            let (table, extra) = match kind {
                Kind::Collection => ("tokengate_collections", "NULL::BYTEA"),
                Kind::Client => ("tokengate_clients", "NULL::BYTEA"),
                Kind::Profile => ("tokengate_profiles", "secret_sealed"),
            };
            let found = match only {
                None => client
                    .query(&format!("SELECT id, body, {extra} FROM {table} ORDER BY id"), &[])
                    .await,
                Some(touched) => {
                    let ids: Vec<&str> = touched.ids(kind).collect();
                    if ids.is_empty() {
                        continue;
                    }
                    client
                        .query(
                            &format!("SELECT id, body, {extra} FROM {table} WHERE id = ANY($1) ORDER BY id"),
                            &[&ids],
                        )
                        .await
                }
            }
            .map_err(|e| pg_error("cannot read rows", e))?;
            for row in found {
                let id: String = row.get(0);
                let body: String = row.get(1);
                let sealed: Option<Vec<u8>> = row.get(2);
                let corrupt = |e: serde_json::Error| StoreError {
                    kind: StoreErrorKind::Corrupt,
                    path: table.into(),
                    message: format!("row {id} does not hold a valid object ({e})"),
                    source: None,
                };
                rows.push(match kind {
                    Kind::Collection => {
                        Row::Collection(serde_json::from_str::<Collection>(&body).map_err(corrupt)?)
                    }
                    Kind::Client => {
                        Row::Client(serde_json::from_str::<ClientRow>(&body).map_err(corrupt)?)
                    }
                    Kind::Profile => {
                        let mut profile: Profile = serde_json::from_str(&body).map_err(corrupt)?;
                        open_profile(
                            &self.secrets,
                            &mut profile,
                            sealed.as_deref(),
                            table.as_ref(),
                        )?;
                        Row::Profile(profile)
                    }
                });
            }
        }
        Ok(rows)
    }

    /// The rows touched after `known` as a change: puts of the rows as they are now, deletes of
    /// the ones that are gone.
    async fn gap(&self, client: &impl GenericClient, known: u64) -> Result<ChangeSet, StoreError> {
        let known = i64::try_from(known).unwrap_or(i64::MAX);
        let logged = client
            .query(
                "SELECT touched FROM tokengate_changes WHERE revision > $1",
                &[&known],
            )
            .await
            .map_err(|e| pg_error("cannot read the change log", e))?;
        let mut touched = Touched::default();
        for row in logged {
            let entries: Vec<String> = row.get(0);
            for entry in entries {
                if let Some((kind, id)) = entry
                    .split_once(':')
                    .and_then(|(k, id)| Some((Kind::parse(k)?, id)))
                {
                    touched.0.insert((kind, id.to_owned()));
                }
            }
        }
        let found = self.read_rows(client, Some(&touched)).await?;
        let mut change = ChangeSet::default();
        let present: BTreeSet<(Kind, String)> = found
            .iter()
            .map(|r| (r.kind(), r.id().to_owned()))
            .collect();
        for row in found {
            change.put(row);
        }
        // Deletes last, profiles before clients before collections.
        for kind in [Kind::Profile, Kind::Client, Kind::Collection] {
            for id in touched.ids(kind) {
                if !present.contains(&(kind, id.to_owned())) {
                    change.delete(kind, id);
                }
            }
        }
        Ok(change)
    }

    async fn commit_async(
        &self,
        known: u64,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
    ) -> Result<u64, CommitError> {
        let mut guard = self.client().await.map_err(CommitError::Store)?;
        let Some(client) = guard.as_mut() else {
            return Err(CommitError::Store(StoreError::unavailable(
                "postgres",
                "no connection",
            )));
        };
        let result = self.commit_on(client, known, prepare).await;
        if matches!(result, Err(CommitError::Store(_))) && client.is_closed() {
            *guard = None;
        }
        result
    }

    async fn commit_on(
        &self,
        client: &mut Client,
        known: u64,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
    ) -> Result<u64, CommitError> {
        let store = |doing: &'static str| move |e| CommitError::Store(pg_error(doing, e));
        let tx = client
            .transaction()
            .await
            .map_err(store("cannot begin a transaction"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])
            .await
            .map_err(store("cannot take the writers' lock"))?;
        let latest = latest_revision(&tx).await.map_err(CommitError::Store)?;
        let gap = if known != u64::MAX && latest > known {
            Some((
                latest,
                self.gap(&tx, known).await.map_err(CommitError::Store)?,
            ))
        } else {
            None
        };
        let change = prepare(gap).map_err(|Aborted| CommitError::Aborted)?;
        let mut touched = Vec::with_capacity(change.ops.len());
        for op in &change.ops {
            let (kind, id) = op.key();
            touched.push(format!("{}:{id}", kind.as_str()));
            self.write_op(&tx, op).await.map_err(CommitError::Store)?;
        }
        let revision = latest + 1;
        let revision_sql = i64::try_from(revision).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO tokengate_changes (revision, touched) VALUES ($1, $2)",
            &[&revision_sql, &touched],
        )
        .await
        .map_err(store("cannot write the change log"))?;
        // The writer applies its own change as soon as this commits: count it as applied.
        tx.execute(
            "UPDATE tokengate_nodes SET applied_revision = $2 WHERE id = $1",
            &[&self.node.id, &revision_sql],
        )
        .await
        .map_err(store("cannot record the applied revision"))?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &revision.to_string()],
        )
        .await
        .map_err(store("cannot notify the other nodes"))?;
        tx.commit()
            .await
            .map_err(store("cannot commit the change"))?;
        Ok(revision)
    }

    async fn write_op(&self, tx: &impl GenericClient, op: &RowOp) -> Result<(), StoreError> {
        let encode = |e: serde_json::Error| {
            StoreError::unavailable("postgres", format!("cannot encode a row ({e})"))
        };
        let result = match op {
            RowOp::Put(Row::Collection(c)) => {
                let body = serde_json::to_string(c).map_err(encode)?;
                tx.execute(
                    "INSERT INTO tokengate_collections (id, path, body) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET path = $2, body = $3",
                    &[&c.id, &c.path, &body],
                )
                .await
            }
            RowOp::Put(Row::Client(c)) => {
                let body = serde_json::to_string(c).map_err(encode)?;
                tx.execute(
                    "INSERT INTO tokengate_clients (id, body) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET body = $2",
                    &[&c.id, &body],
                )
                .await
            }
            RowOp::Put(Row::Profile(p)) => {
                let (stripped, sealed) = seal_profile(&self.secrets, p)?;
                let body = serde_json::to_string(&stripped).map_err(encode)?;
                tx.execute(
                    "INSERT INTO tokengate_profiles (id, client_id, body, secret_sealed) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET client_id = $2, body = $3, secret_sealed = $4",
                    &[&p.id, &p.client_id, &body, &sealed],
                )
                .await
            }
            RowOp::Delete(kind, id) => {
                let table = match kind {
                    Kind::Collection => "tokengate_collections",
                    Kind::Client => "tokengate_clients",
                    Kind::Profile => "tokengate_profiles",
                };
                tx.execute(&format!("DELETE FROM {table} WHERE id = $1"), &[id])
                    .await
            }
        };
        result
            .map(|_| ())
            .map_err(|e| pg_error("cannot write a row", e))
    }
}

/// The (kind, id) pairs a run of changes touched.
#[derive(Default)]
struct Touched(BTreeSet<(Kind, String)>);

impl Touched {
    fn ids(&self, kind: Kind) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, id)| id.as_str())
    }
}

async fn latest_revision(client: &impl GenericClient) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT COALESCE(max(revision), 0) FROM tokengate_changes",
            &[],
        )
        .await
        .map_err(|e| pg_error("cannot read the latest revision", e))?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

/// A read-only REPEATABLE READ transaction: every query in it sees one snapshot, so the rows
/// and the revision read together agree.
async fn snapshot_read(client: &mut Client) -> Result<tokio_postgres::Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| pg_error("cannot begin a read", e))
}
