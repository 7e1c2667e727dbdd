//! The data plane's wall clock: one clock read per request instead of two.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long a thread's wall-clock anchor serves before the system clock is read again.
const ANCHOR_LIFETIME: Duration = Duration::from_secs(1);

thread_local! {
    /// This thread's last reading of both clocks: (monotonic, wall-clock ms).
    static ANCHOR: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// The wall-clock time (milliseconds since the Unix epoch) at `at`, a monotonic reading taken
/// just now: the thread's anchor plus the monotonic time since it, so a request reads the clock
/// once, not twice. The anchor is renewed from [`now_ms`] once it is a second old (or `at` is
/// before it), so a stepped system clock is followed within a second, as `exp`/`nbf` leeways
/// (whole seconds) allow.
pub fn wall_clock_ms(at: Instant) -> u64 {
    ANCHOR.with(|anchor| {
        if let Some((since, wall_ms)) = anchor.get() {
            if let Some(age) = at.checked_duration_since(since) {
                if age < ANCHOR_LIFETIME {
                    return wall_ms.saturating_add(age.as_millis() as u64);
                }
            }
        }
        let wall_ms = now_ms();
        anchor.set(Some((at, wall_ms)));
        wall_ms
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchored_wall_clock_follows_the_system_clock() {
        for _ in 0..3 {
            let before = now_ms();
            let anchored = wall_clock_ms(Instant::now());
            let after = now_ms();
            assert!(
                before <= anchored + 1 && anchored <= after + 1,
                "{before} {anchored} {after}"
            );
            std::thread::sleep(Duration::from_millis(600));
        }
    }

    #[test]
    fn an_instant_before_the_anchor_renews_it() {
        let earlier = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let _ = wall_clock_ms(Instant::now());
        let at_earlier = wall_clock_ms(earlier);
        let wall = now_ms();
        assert!(
            at_earlier <= wall && wall - at_earlier < 1_000,
            "{at_earlier} {wall}"
        );
    }
}
