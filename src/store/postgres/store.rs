//! [`Store`] for [`PgStore`]: each call blocks on the store's runtime handle.

use super::{latest_revision, pg_error, snapshot_read, PgStore, LIVE_SECONDS};
use crate::core::catalog::{ChangeSet, Row};
use crate::core::model::State;
use crate::store::{Aborted, CommitError, Gap, NodeStatus, Store, StoreError, UsageCount};

impl Store for PgStore {
    fn load(&self) -> Result<State, StoreError> {
        self.handle.block_on(self.with_client(async |client| {
            let tx = snapshot_read(client).await?;
            let revision = latest_revision(&tx).await?;
            let rows = self.read_rows(&tx, None).await?;
            let mut state = State {
                revision,
                ..State::default()
            };
            for row in rows {
                match row {
                    Row::Collection(c) => state.collections.push(c),
                    Row::Client(c) => state.clients.push(c),
                    Row::Profile(p) => state.profiles.push(p),
                }
            }
            tx.commit()
                .await
                .map_err(|e| pg_error("cannot end a read", e))?;
            Ok(state)
        }))
    }

    fn commit_with(
        &self,
        known_revision: u64,
        prepare: &mut dyn FnMut(Gap) -> Result<ChangeSet, Aborted>,
    ) -> Result<u64, CommitError> {
        self.handle
            .block_on(self.commit_async(known_revision, prepare))
    }

    fn changes_since(&self, known_revision: u64) -> Result<Gap, StoreError> {
        self.handle.block_on(self.with_client(async |client| {
            let tx = snapshot_read(client).await?;
            let latest = latest_revision(&tx).await?;
            let gap = if latest > known_revision {
                Some((latest, self.gap(&tx, known_revision).await?))
            } else {
                None
            };
            tx.commit()
                .await
                .map_err(|e| pg_error("cannot end a read", e))?;
            Ok(gap)
        }))
    }

    fn propagation(&self, revision: u64) -> Result<(u32, u32), StoreError> {
        self.handle.block_on(self.with_client(async |client| {
            let revision = i64::try_from(revision).unwrap_or(i64::MAX);
            let row = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE applied_revision >= $1), count(*)
                     FROM tokengate_nodes
                     WHERE heartbeat_at > now() - make_interval(secs => $2)",
                    &[&revision, &LIVE_SECONDS],
                )
                .await
                .map_err(|e| pg_error("cannot count the nodes", e))?;
            let count = |i: usize| u32::try_from(row.get::<_, i64>(i)).unwrap_or(u32::MAX);
            Ok((count(0), count(1)))
        }))
    }

    fn nodes(&self) -> Result<Vec<NodeStatus>, StoreError> {
        self.handle.block_on(self.with_client(async |client| {
            let latest = latest_revision(client).await?;
            let rows = client
                .query(
                    "SELECT id, listen, version, applied_revision,
                            EXTRACT(EPOCH FROM now() - heartbeat_at)::FLOAT8
                     FROM tokengate_nodes ORDER BY id",
                    &[],
                )
                .await
                .map_err(|e| pg_error("cannot list the nodes", e))?;
            Ok(rows
                .iter()
                .map(|row| {
                    let applied = u64::try_from(row.get::<_, i64>(3)).unwrap_or(0);
                    let age: f64 = row.get(4);
                    NodeStatus {
                        id: row.get(0),
                        listen: row.get(1),
                        version: row.get(2),
                        applied_revision: applied,
                        heartbeat_age_s: age,
                        lag: latest.saturating_sub(applied),
                        live: age < LIVE_SECONDS,
                    }
                })
                .collect())
        }))
    }

    fn sync_usage(
        &self,
        node_id: &str,
        counts: &[UsageCount],
        now_s: u64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        self.handle
            .block_on(self.sync_usage_async(node_id, counts, now_s))
    }
}
