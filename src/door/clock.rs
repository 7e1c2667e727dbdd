//! The data plane's clocks: one monotonic reading per request as plain nanoseconds, the wall
//! clock derived from it, and a coarse reading for stamps that need only milliseconds.
//!
//! `std::time::Instant` reads the same clock (CLOCK_MONOTONIC), but its arithmetic (`elapsed`,
//! `checked_duration_since`, `as_micros`) goes through `timespec` borrows and `u128`: about 130
//! instructions a request on the hot path under callgrind, where a `u64` subtraction does.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A reading of the monotonic clock (CLOCK_MONOTONIC, the clock `Instant` reads), in
/// nanoseconds since an unspecified start (the host's boot on Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp(u64);

impl Stamp {
    /// The monotonic clock now.
    #[inline]
    pub fn now() -> Stamp {
        Stamp(read(libc::CLOCK_MONOTONIC))
    }

    /// Nanoseconds since the start of the clock.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Nanoseconds from this stamp to now (0 if the clock reads earlier, which it does not).
    #[inline]
    pub fn elapsed_ns(self) -> u64 {
        Stamp::now().0.saturating_sub(self.0)
    }

    /// [`Stamp::elapsed_ns`] as a `Duration`.
    pub fn elapsed(self) -> Duration {
        Duration::from_nanos(self.elapsed_ns())
    }
}

/// The coarse monotonic clock in nanoseconds, on the scale of [`Stamp::as_nanos`]: Linux's
/// CLOCK_MONOTONIC_COARSE (the time of the last timer tick: about 6 ns to read instead of about
/// 30) plus its resolution (one tick, 1-10 ms), so that it is not behind the precise clock while
/// ticks come on time; for stamps where a tick does not matter. Other systems read
/// CLOCK_MONOTONIC.
#[inline]
pub fn coarse_ns() -> u64 {
    #[cfg(target_os = "linux")]
    {
        static RESOLUTION_NS: LazyLock<u64> = LazyLock::new(|| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `ts` is a valid, writable timespec; clock_getres writes only it.
            let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
            if rc == 0 {
                nanos(ts)
            } else {
                // A tick at HZ=100, the coarsest Linux has.
                10_000_000
            }
        });
        read(libc::CLOCK_MONOTONIC_COARSE).saturating_add(*RESOLUTION_NS)
    }
    #[cfg(not(target_os = "linux"))]
    {
        read(libc::CLOCK_MONOTONIC)
    }
}

/// `clock` in nanoseconds (0 if the system refuses, which it does not for the monotonic
/// clocks, whose reads cannot fail on a valid pointer).
#[inline]
fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only it.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc == 0 {
        nanos(ts)
    } else {
        0
    }
}

fn nanos(ts: libc::timespec) -> u64 {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let subsec = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(subsec)
}

/// How long a thread's wall-clock anchor serves before the system clock is read again (ns).
const ANCHOR_LIFETIME_NS: u64 = 1_000_000_000;

thread_local! {
    /// This thread's last reading of both clocks: (monotonic, wall-clock ms).
    static ANCHOR: Cell<Option<(Stamp, u64)>> = const { Cell::new(None) };
}

/// The wall-clock time (milliseconds since the Unix epoch) at `at`, a monotonic reading taken
/// just now: the thread's anchor plus the monotonic time since it, so a request reads the clock
/// once, not twice. The anchor is renewed from [`now_ms`] once it is a second old (or `at` is
/// before it), so a stepped system clock is followed within a second, as `exp`/`nbf` leeways
/// (whole seconds) allow.
pub fn wall_clock_ms(at: Stamp) -> u64 {
    ANCHOR.with(|anchor| {
        if let Some((since, wall_ms)) = anchor.get() {
            if let Some(age_ns) = at.0.checked_sub(since.0) {
                if age_ns < ANCHOR_LIFETIME_NS {
                    return wall_ms.saturating_add(age_ns / 1_000_000);
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
    use std::time::Instant;

    #[test]
    fn the_anchored_wall_clock_follows_the_system_clock() {
        for _ in 0..3 {
            let before = now_ms();
            let anchored = wall_clock_ms(Stamp::now());
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
        let earlier = Stamp::now();
        std::thread::sleep(Duration::from_millis(20));
        let _ = wall_clock_ms(Stamp::now());
        let at_earlier = wall_clock_ms(earlier);
        let wall = now_ms();
        assert!(
            at_earlier <= wall && wall - at_earlier < 1_000,
            "{at_earlier} {wall}"
        );
    }

    #[test]
    fn a_stamp_reads_the_clock_instant_reads() {
        let instant = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let stamp = Stamp::now();
        let by_instant = instant.elapsed();
        std::thread::sleep(Duration::from_millis(30));
        let by_stamp = stamp.elapsed();
        // 30 ms and more by both, and the stamp taken later measures less.
        assert!(by_stamp >= Duration::from_millis(30), "{by_stamp:?}");
        assert!(by_instant >= Duration::from_millis(30), "{by_instant:?}");
        assert!(by_stamp < instant.elapsed(), "{by_stamp:?} {instant:?}");
    }

    #[test]
    fn the_coarse_clock_keeps_within_a_tick_of_the_precise_one() {
        for _ in 0..1_000 {
            let precise = Stamp::now().as_nanos();
            let coarse = coarse_ns();
            // Two ticks of the coarsest kernel (HZ=100) either way.
            assert!(
                coarse.abs_diff(precise) < 20_000_000,
                "{coarse} vs {precise}"
            );
        }
    }
}
