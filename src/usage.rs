//! Quota counts between this node and the store (SPEC §1 `quota`), and the live-node count for
//! cluster-scoped rate limits.
//!
//! Every second: this node's counts of every quota window go to the store (whole numbers,
//! only those that grew), every other node's come back into the counters, and the live-node
//! count (SPEC §6) goes to the gate. On start it runs once before the data plane opens, so that
//! a restarted node knows what its earlier run counted; on shutdown once more. The data plane
//! never waits on it: a store that is away only delays what the others' counts say.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::core::gate::Gate;
use crate::core::registry::Registry;
use crate::store::{Store, StoreError, UsageCount};

/// How often the counts are synced.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// One node's quota sync.
pub struct UsageSync {
    registry: Arc<Registry>,
    store: Arc<dyn Store>,
    /// This node run's id in the store's count rows.
    node_id: String,
    /// What the store already holds from this run, per profile: window start, end and count.
    sent: HashMap<Box<str>, (u64, u64, u64)>,
    /// Whether the last sync failed (to log once per outage).
    failing: bool,
    /// How far ahead the data plane's clock runs (tests only; see `ServeConfig::clock_skew`).
    pub clock_skew_s: u64,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl UsageSync {
    /// A sync of the counters in `registry`'s snapshots with `store`, as `node_id`.
    pub fn new(registry: Arc<Registry>, store: Arc<dyn Store>, node_id: String) -> UsageSync {
        UsageSync {
            registry,
            store,
            node_id,
            sent: HashMap::new(),
            failing: false,
            clock_skew_s: 0,
        }
    }

    /// One round trip: sends the counts that grew, reads the others' into the counters, and
    /// sets `gate`'s live-node count. Errors: the store is unreachable (nothing is lost: the
    /// next round sends the same whole numbers).
    pub async fn sync_once(&mut self, gate: &Gate) -> Result<(), StoreError> {
        let now = now_s().saturating_add(self.clock_skew_s);
        let snapshot = self.registry.snapshot();
        let mut counts = Vec::new();
        let mut counters = Vec::new();
        for (profile, quota) in snapshot.quotas() {
            let (window, mut local) = quota.local_at(now);
            let start = quota.window_start_s(window);
            let end = start + quota.window_s();
            counters.push((profile.id.clone(), window, (start, end), quota.clone()));
            let already = match self.sent.get(&profile.id) {
                Some(&(s, e, used)) if (s, e) == (start, end) => used,
                _ => 0,
            };
            if local < already {
                // The counter was rebuilt (the quota removed and given back, say): this run
                // already counted `already` in this window.
                quota.restore_local(window, already);
                local = already;
            }
            if local > already {
                counts.push(UsageCount {
                    profile_id: profile.id.to_string(),
                    window_start_s: start,
                    window_end_s: end,
                    used: local,
                });
            }
        }
        drop(snapshot);
        let store = self.store.clone();
        let node_id = self.node_id.clone();
        let to_send = counts.clone();
        let (others, live) = tokio::task::spawn_blocking(move || {
            let others = store.sync_usage(&node_id, &to_send, now)?;
            let (_, live) = store.propagation(0)?;
            Ok::<_, StoreError>((others, live))
        })
        .await
        .map_err(|e| StoreError::unavailable("usage", format!("the sync task failed: {e}")))??;
        // What the store holds now: this round's counts, and earlier ones of windows still
        // current (a deleted profile or an ended window is forgotten).
        let mut sent = HashMap::with_capacity(counters.len());
        for (id, _, bounds, _) in &counters {
            if let Some(&(s, e, used)) = self.sent.get(id) {
                if (s, e) == *bounds {
                    sent.insert(id.clone(), (s, e, used));
                }
            }
        }
        for count in counts {
            sent.insert(
                count.profile_id.into_boxed_str(),
                (count.window_start_s, count.window_end_s, count.used),
            );
        }
        self.sent = sent;
        let others: HashMap<(&str, u64, u64), u64> = others
            .iter()
            .map(|c| {
                (
                    (c.profile_id.as_str(), c.window_start_s, c.window_end_s),
                    c.used,
                )
            })
            .collect();
        for (id, window, (start, end), quota) in &counters {
            let used = others.get(&(&**id, *start, *end)).copied().unwrap_or(0);
            quota.set_others(*window, used);
        }
        gate.set_live_nodes(live);
        Ok(())
    }

    /// [`UsageSync::sync_once`], logging a failure once per outage.
    async fn sync_logged(&mut self, gate: &Gate) {
        match self.sync_once(gate).await {
            Ok(()) => {
                if self.failing {
                    tracing::info!("quota counts synced with the store again");
                }
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %e, "cannot sync quota counts with the store; counting on this node alone until it is back");
                }
                self.failing = true;
            }
        }
    }

    /// Syncs every [`SYNC_INTERVAL`] until `shutdown` turns `true`, then once more.
    pub async fn run(
        mut self,
        gate: Arc<crate::door::FrontDoor>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(SYNC_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sync_logged(&gate.gate).await,
                _ = shutdown.changed() => break,
            }
        }
        self.sync_logged(&gate.gate).await;
    }
}
