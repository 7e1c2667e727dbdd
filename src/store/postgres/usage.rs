//! Quota counts on PostgreSQL (SPEC §1 `quota`, §6): one row per profile, window (its start and
//! end: a changed `per_days` is another window even where the two start together) and node run,
//! holding what that run has counted so far. A node writes its own rows (whole numbers, so a
//! retry is harmless) and reads the sum of everyone else's, in one transaction, at least every
//! second (`crate::usage`).

use super::{pg_error, PgStore};
use crate::store::{StoreError, UsageCount};

/// The table, created on start when missing (an addition that older builds ignore).
pub(super) const USAGE_TABLE: &str = "
CREATE TABLE IF NOT EXISTS tokengate_quota_counts (
    profile_id TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    node_id TEXT NOT NULL,
    window_end BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (profile_id, window_start, window_end, node_id)
);
CREATE INDEX IF NOT EXISTS tokengate_quota_counts_by_end ON tokengate_quota_counts (window_end);
";

impl PgStore {
    /// [`crate::store::Store::sync_usage`]: upserts `counts` as `node_id`'s rows (never
    /// lowering one), drops windows that ended a day before `now_s`, and returns the other
    /// node runs' sums for windows not yet ended.
    pub(super) async fn sync_usage_async(
        &self,
        node_id: &str,
        counts: &[UsageCount],
        now_s: u64,
    ) -> Result<Vec<UsageCount>, StoreError> {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let ids: Vec<&str> = counts.iter().map(|c| c.profile_id.as_str()).collect();
        let starts: Vec<i64> = counts.iter().map(|c| int(c.window_start_s)).collect();
        let ends: Vec<i64> = counts.iter().map(|c| int(c.window_end_s)).collect();
        let used: Vec<i64> = counts.iter().map(|c| int(c.used)).collect();
        let now = int(now_s);
        self.with_client(async move |client| {
            let err = |doing: &'static str| move |e| pg_error(doing, e);
            let tx = client
                .transaction()
                .await
                .map_err(err("cannot begin a usage write"))?;
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO tokengate_quota_counts
                         (profile_id, window_start, node_id, window_end, used)
                     SELECT p, s, $5, e, u FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
                         AS t (p, s, e, u)
                     ON CONFLICT (profile_id, window_start, window_end, node_id)
                     DO UPDATE SET used = GREATEST(tokengate_quota_counts.used, excluded.used)",
                    &[&ids, &starts, &ends, &used, &node_id],
                )
                .await
                .map_err(err("cannot write the quota counts"))?;
            }
            tx.execute(
                "DELETE FROM tokengate_quota_counts WHERE window_end < $1",
                &[&(now - 86_400)],
            )
            .await
            .map_err(err("cannot drop ended quota windows"))?;
            let rows = tx
                .query(
                    "SELECT profile_id, window_start, window_end, sum(used)::BIGINT
                     FROM tokengate_quota_counts
                     WHERE node_id <> $1 AND window_end > $2
                     GROUP BY profile_id, window_start, window_end",
                    &[&node_id, &now],
                )
                .await
                .map_err(err("cannot read the quota counts"))?;
            tx.commit()
                .await
                .map_err(err("cannot commit the quota counts"))?;
            let whole = |n: i64| u64::try_from(n).unwrap_or(0);
            Ok(rows
                .iter()
                .map(|row| UsageCount {
                    profile_id: row.get(0),
                    window_start_s: whole(row.get(1)),
                    window_end_s: whole(row.get(2)),
                    used: whole(row.get(3)),
                })
                .collect())
        })
        .await
    }
}
