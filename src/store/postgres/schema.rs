//! The PostgreSQL schema and its migration: created on the first start, checked on every start,
//! inside a transaction holding an advisory lock so that nodes starting at once migrate once.

use tokio_postgres::Client;

use super::pg_error;
use crate::store::{StoreError, StoreErrorKind};

/// The schema version this build creates and reads.
const SCHEMA_VERSION: i32 = 1;
/// Advisory lock held while migrating.
const MIGRATE_LOCK: i64 = 0x746f_6b65_6e67_0001;

const SCHEMA_V1: &str = "
CREATE TABLE tokengate_collections (id TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, body TEXT NOT NULL);
CREATE TABLE tokengate_clients (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE tokengate_profiles (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL REFERENCES tokengate_clients (id),
    body TEXT NOT NULL,
    secret_sealed BYTEA
);
CREATE INDEX tokengate_profiles_by_client ON tokengate_profiles (client_id);
CREATE TABLE tokengate_changes (
    revision BIGINT PRIMARY KEY,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    touched TEXT[] NOT NULL
);
CREATE TABLE tokengate_nodes (
    id TEXT PRIMARY KEY,
    listen TEXT NOT NULL,
    version TEXT NOT NULL,
    applied_revision BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

/// Creates the schema on an empty database, or checks that the stored version is this build's.
/// Errors: PostgreSQL unreachable, a schema from a newer build.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let err = |doing: &'static str| move |e| pg_error(doing, e);
    let tx = client
        .transaction()
        .await
        .map_err(err("cannot begin the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(err("cannot take the migration lock"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS tokengate_schema (version INTEGER NOT NULL)")
        .await
        .map_err(err("cannot create the schema table"))?;
    let version: Option<i32> = tx
        .query_opt("SELECT max(version) FROM tokengate_schema", &[])
        .await
        .map_err(err("cannot read the schema version"))?
        .and_then(|row| row.get(0));
    match version {
        None => {
            tx.batch_execute(SCHEMA_V1).await.map_err(err("cannot create the schema"))?;
            tx.execute("INSERT INTO tokengate_schema (version) VALUES ($1)", &[&SCHEMA_VERSION])
                .await
                .map_err(err("cannot record the schema version"))?;
            tracing::info!(version = SCHEMA_VERSION, "created the PostgreSQL schema");
        }
        Some(v) if v == SCHEMA_VERSION => {}
        Some(v) => {
            return Err(StoreError {
                kind: StoreErrorKind::UnsupportedFormat,
                path: "postgres".into(),
                message: format!(
                    "the database has schema version {v}, but this build reads only version {SCHEMA_VERSION}; use a newer tokengate"
                ),
                source: None,
            })
        }
    }
    tx.batch_execute(super::usage::USAGE_TABLE)
        .await
        .map_err(err("cannot create the quota usage table"))?;
    tx.commit()
        .await
        .map_err(err("cannot commit the migration"))
}
