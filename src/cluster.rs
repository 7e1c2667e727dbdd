//! One node among many on a PostgreSQL store (SPEC §6): the loop that keeps this node's
//! snapshot in step with the database.
//!
//! - A second connection `LISTEN`s for change notifications; each one newer than this node's
//!   revision makes the node read the changes after its revision and apply them incrementally.
//! - Every second: a heartbeat (this node's applied revision, which the revocation barrier
//!   counts) that also reads the latest revision, so a missed notification is caught within a
//!   second; each success is a round trip for `--max-staleness-s`.
//! - When either connection is lost: retry every second; once back, resynchronize in full
//!   (only the difference is applied), then go on listening.
//!
//! The data plane never waits on any of this: it reads whatever snapshot is installed.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::admin::Admin;
use crate::server::freshness::Freshness;
use crate::store::PgStore;

/// How often the node heartbeats and checks the latest revision.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns `true` (then removes this node from the `nodes` table).
pub async fn run(
    admin: Arc<Admin>,
    store: Arc<PgStore>,
    freshness: Arc<Freshness>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut was_down = false;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match follow(&admin, &store, &freshness, &mut shutdown, &mut was_down).await {
            Ok(()) => break,
            Err(e) => {
                freshness.mark_down();
                if !was_down {
                    tracing::warn!(error = %e, "lost the store; serving from memory, retrying every second");
                }
                was_down = true;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = shutdown.changed() => break,
        }
    }
    store.deregister().await;
}

/// Listens and heartbeats until shutdown (`Ok`) or a lost connection (`Err`).
async fn follow(
    admin: &Admin,
    store: &PgStore,
    freshness: &Freshness,
    shutdown: &mut watch::Receiver<bool>,
    was_down: &mut bool,
) -> Result<(), crate::store::StoreError> {
    let (_listener, mut notifications) = store.listen().await?;
    // Listening before reading: a change committed in between is both read and announced.
    if *was_down {
        let revision = admin.resync().await?;
        tracing::info!(revision, "store back; resynchronized in full");
        *was_down = false;
    } else {
        admin.catch_up().await?;
    }
    store.heartbeat(admin.revision().await).await?;
    freshness.mark_ok();
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            notified = notifications.recv() => {
                let Some(revision) = notified else {
                    return Err(crate::store::StoreError::unavailable("postgres", "the LISTEN connection was lost"));
                };
                if revision > admin.revision().await {
                    let applied = admin.catch_up().await?;
                    store.heartbeat(applied).await?;
                    freshness.mark_ok();
                    if let Some(age) = store.commit_age(applied).await? {
                        freshness.record_propagation(Duration::from_secs_f64(age.max(0.0)));
                    }
                }
            }
            _ = tick.tick() => {
                let latest = store.heartbeat(admin.revision().await).await?;
                freshness.mark_ok();
                if latest > admin.revision().await {
                    let applied = admin.catch_up().await?;
                    store.heartbeat(applied).await?;
                }
            }
            _ = shutdown.changed() => return Ok(()),
        }
    }
}
