//! The header-read timer one connection gives hyper: one tokio `Sleep` per connection, re-armed
//! lazily, instead of a new `Sleep` for every request head.
//!
//! hyper 1.x asks its [`Timer`] for `sleep_until(now + header_read_timeout)` each time it starts
//! reading a request head, polls it while it waits and drops it once the head is in
//! (`proto/h1/conn.rs`, `poll_read_head`). With tokio's timer that is an allocation, an insert
//! into the timer wheel and a removal from it for every request on a keep-alive connection
//! (perf, hs256, wrk -c32: about 0.25 µs per request in tokio's wheel; with no timer at all,
//! user CPU fell by about 0.4 µs per request). Here hyper's deadlines share
//! the connection's one `Sleep`. The `Sleep` only moves when it fires before the deadline of the
//! head being read, that is about once per timeout period per connection, the way nginx and
//! Netty re-arm idle timers. The timeout itself is unchanged: a head is cut off at its deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// A connection's tokio `Sleep`, armed on first use.
type SharedSleep = Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>;

/// Far enough never to fire, for deadlines that overflow [`Instant`] (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The [`Timer`] for one connection ([`hyper::server::conn::http1::Builder::timer`]); make one
/// per connection, since its deadlines share one `Sleep` and must belong to one task.
#[derive(Clone, Default)]
pub struct ConnectionTimer {
    shared: SharedSleep,
}

impl Timer for ConnectionTimer {
    /// A deadline `duration` from now (saturating at about 30 years).
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        let now = Instant::now();
        let deadline = now
            .checked_add(duration)
            .or_else(|| now.checked_add(FAR_FUTURE))
            .unwrap_or(now);
        self.sleep_until(deadline)
    }

    /// A future that completes at `deadline`, sharing this connection's `Sleep`.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(HeadDeadline {
            deadline: tokio::time::Instant::from_std(deadline),
            shared: self.shared.clone(),
        })
    }
}

/// One deadline hyper waits on; completes once the shared `Sleep` has fired at or after it.
struct HeadDeadline {
    deadline: tokio::time::Instant,
    shared: SharedSleep,
}

impl Future for HeadDeadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        let mut guard = lock(&self.shared);
        let sleep = guard.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        // Never later than this deadline, or it would fire late (hyper's deadlines only grow,
        // so this is for completeness).
        if sleep.deadline() > deadline {
            sleep.as_mut().reset(deadline);
        }
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if sleep.deadline() >= deadline {
                return Poll::Ready(());
            }
            // It fired for an earlier head: move it to this one's deadline and wait again.
            sleep.as_mut().reset(deadline);
        }
    }
}

impl Sleep for HeadDeadline {}

/// The shared `Sleep`, even if a panic elsewhere poisoned the lock (it holds no invariant).
fn lock(shared: &SharedSleep) -> MutexGuard<'_, Option<Pin<Box<tokio::time::Sleep>>>> {
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_later_deadline_waits_past_the_earlier_one_it_shares_a_sleep_with() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        // The first head's deadline arms the shared sleep, then the head arrives (dropped).
        let mut first = timer.sleep(Duration::from_millis(50));
        assert!(futures_poll_once(first.as_mut()).is_pending());
        drop(first);
        // The second head's deadline is later: it must not complete when the first would have.
        timer.sleep(Duration::from_millis(150)).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(150),
            "completed early: {took:?}"
        );
        assert!(took < Duration::from_secs(2), "completed late: {took:?}");
    }

    #[tokio::test]
    async fn an_earlier_deadline_is_not_held_up_by_a_later_one() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        let mut late = timer.sleep(Duration::from_secs(60));
        assert!(futures_poll_once(late.as_mut()).is_pending());
        drop(late);
        timer.sleep(Duration::from_millis(50)).await;
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn a_deadline_that_overflows_never_fires_and_a_past_one_fires_at_once() {
        let timer = ConnectionTimer::default();
        let mut never = timer.sleep(Duration::MAX);
        assert!(futures_poll_once(never.as_mut()).is_pending());
        drop(never);
        timer.sleep_until(Instant::now()).await;
    }

    /// Polls `future` once with a no-op waker.
    fn futures_poll_once(future: Pin<&mut dyn Sleep>) -> Poll<()> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        future.poll(&mut cx)
    }
}
