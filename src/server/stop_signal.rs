//! The stop signal open connections watch: one atomic load per poll of a connection.
//!
//! Each connection used to race its hyper future against a `watch` receiver's `wait_for` in a
//! `select!`, which re-polled the receiver (a read lock and a waiter check) on every wake-up of
//! the connection: about 580 instructions a request under callgrind. Here a connection registers
//! its task's waker once, and every later poll only loads a flag.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Waker};

/// Set once, when the listener stops; wakes every registered connection.
#[derive(Default)]
pub struct StopSignal {
    stopping: AtomicBool,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, Waker>>,
}

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> Arc<StopSignal> {
        Arc::new(StopSignal::default())
    }

    /// Gives the signal: every registered connection is woken, and every later
    /// [`Registration::is_stopping`] returns true.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *self.lock());
        for waker in waiting.into_values() {
            waker.wake();
        }
    }

    /// A connection's registration; it leaves the signal when dropped.
    pub fn register(self: &Arc<Self>) -> Registration {
        Registration {
            signal: self.clone(),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            waker: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waker>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place on a [`StopSignal`].
pub struct Registration {
    signal: Arc<StopSignal>,
    id: u64,
    /// The waker registered last (a task's waker does not change between its polls).
    waker: Option<Waker>,
}

impl Registration {
    /// Whether the signal was given; the task polling is woken when it is (registered on the
    /// first call, and again only if the task's waker changed).
    pub fn is_stopping(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            let waker = cx.waker().clone();
            self.signal.lock().insert(self.id, waker.clone());
            self.waker = Some(waker);
        }
        // After the registration: a `stop` that drained the map before it is seen here.
        self.signal.stopping.load(Ordering::SeqCst)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if self.waker.is_some() {
            self.signal.lock().remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::task::Poll;
    use std::time::Duration;

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_stop() {
        let signal = StopSignal::new();
        let mut registration = signal.register();
        let waiting = tokio::spawn(poll_fn(move |cx| {
            if registration.is_stopping(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert_eq!(signal.lock().len(), 1);
        signal.stop();
        tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(signal.lock().is_empty(), "stop empties the waiting list");
    }

    #[tokio::test]
    async fn a_registration_after_stop_sees_it_at_once() {
        let signal = StopSignal::new();
        signal.stop();
        let mut registration = signal.register();
        let stopping = poll_fn(|cx| Poll::Ready(registration.is_stopping(cx))).await;
        assert!(stopping);
    }

    #[tokio::test]
    async fn a_dropped_registration_leaves_the_signal() {
        let signal = StopSignal::new();
        let mut registration = signal.register();
        let stopping = poll_fn(|cx| Poll::Ready(registration.is_stopping(cx))).await;
        assert!(!stopping);
        assert_eq!(signal.lock().len(), 1);
        drop(registration);
        assert!(signal.lock().is_empty());
    }
}
