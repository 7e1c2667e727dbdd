//! The header-read timeout, kept beside hyper rather than inside it: a request head must arrive
//! within the timeout of the connection opening or of the previous response ending, or the
//! connection is closed without an answer (nginx's `client_header_timeout` and
//! `keepalive_timeout` in one, Envoy's `request_headers_timeout`).
//!
//! hyper 1.x has this built in (`http1::Builder::header_read_timeout` with a `Timer`), but when it
//! is on, hyper goes round its dispatch loop once more after every response just to start the
//! next head's timer (`proto/h1/conn.rs`, `State::idle` sets `notify_read`): one more head parse
//! of an empty buffer, one more read, write and flush poll, and a timer poll, for every request
//! on a keep-alive connection. Under callgrind that was about 1 500 instructions a request
//! (hs256, wrk -c8), half the difference to bare hyper, which runs with no timeout at all.
//!
//! Here the service is wrapped ([`HeadWatch::service`]): a request counts as in flight from the
//! moment hyper hands over its head until its response body is dropped (fully written, failed or
//! abandoned), which also stamps the time the connection went idle. The connection's task owns
//! one tokio `Sleep` ([`HeadWatch::poll_expired`]); it is moved only when it fires, about once
//! per timeout period, and then finds the deadline from that stamp. Per request that is two
//! atomic stores, one coarse clock read and one reference-count pair; the timeout is as exact as
//! hyper's but for the coarse clock's tick (1-10 ms, never early while ticks come on time).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use http::Response;
use hyper::body::{Body, Frame, SizeHint};
use hyper::service::Service;
use pin_project_lite::pin_project;
use tokio::time::Instant;

use crate::door::clock::{coarse_ns, Stamp};

/// What the service side tells the watch: whether a request is in flight, and since when the
/// connection has been idle.
struct Shared {
    /// When the connection was opened; `idle_since_ns` counts from here (tokio's clock, which
    /// is the system's monotonic clock outside tests).
    opened: Instant,
    /// Nanoseconds after `opened` at which the last response ended (0: none yet).
    idle_since_ns: AtomicU64,
    /// A head has arrived and its response has not ended yet.
    in_flight: AtomicBool,
    /// The clock that stamps the end of a response.
    clock: IdleClock,
}

/// How a response's end is stamped.
#[derive(Clone, Copy)]
enum IdleClock {
    /// The coarse system clock ([`coarse_ns`]) since `opened_ns` ([`Stamp`] when opened): a
    /// sixth of a precise read, and a tick late at most, which a timeout in seconds does not see.
    Coarse { opened_ns: u64 },
    /// tokio's clock since `opened`, which tests pause and advance.
    #[cfg_attr(not(test), allow(dead_code))]
    Tokio,
}

/// One connection's header-read timeout: wrap its service with [`HeadWatch::service`] and poll
/// [`HeadWatch::poll_expired`] whenever the connection itself is pending.
pub struct HeadWatch {
    shared: Arc<Shared>,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// The waker the `Sleep` was last polled with (a task's waker does not change between polls).
    waker: Option<Waker>,
}

impl HeadWatch {
    /// A watch for a connection opened now whose heads must each arrive within `timeout`
    /// (a timeout too large for the clock never fires).
    pub fn new(timeout: Duration) -> HeadWatch {
        let opened_ns = Stamp::now().as_nanos();
        HeadWatch::on_clock(timeout, IdleClock::Coarse { opened_ns })
    }

    fn on_clock(timeout: Duration, clock: IdleClock) -> HeadWatch {
        let opened = Instant::now();
        HeadWatch {
            shared: Arc::new(Shared {
                opened,
                idle_since_ns: AtomicU64::new(0),
                in_flight: AtomicBool::new(false),
                clock,
            }),
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            waker: None,
        }
    }

    /// `inner`, with every request marked in flight until its response body is dropped.
    pub fn service<S>(&self, inner: S) -> Watched<S> {
        Watched {
            inner,
            shared: self.shared.clone(),
        }
    }

    /// Ready once no request is in flight and the connection has been idle (no complete head
    /// since it opened or since the last response ended) for the timeout; otherwise pending, with
    /// the task woken when that may have changed. Cheap when nothing is due: a flag check and a
    /// waker comparison.
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let same_waker = self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same_waker && !self.sleep.is_elapsed() {
            return Poll::Pending;
        }
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                if !same_waker {
                    self.waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            let now = Instant::now();
            let next = if self.shared.in_flight.load(Ordering::Acquire) {
                // The request's own timeouts govern it; look again a period from now.
                now.checked_add(self.timeout)
            } else {
                let idle_since =
                    Duration::from_nanos(self.shared.idle_since_ns.load(Ordering::Relaxed));
                let deadline = idle_since
                    .checked_add(self.timeout)
                    .and_then(|after_open| self.shared.opened.checked_add(after_open));
                match deadline {
                    Some(deadline) if deadline <= now => return Poll::Ready(()),
                    deadline => deadline,
                }
            };
            match next {
                Some(next) => self.sleep.as_mut().reset(next),
                // Beyond the clock's range: it never fires.
                None => return Poll::Pending,
            }
        }
    }
}

/// A service whose requests are watched by a [`HeadWatch`].
pub struct Watched<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<R, S, B> Service<R> for Watched<S>
where
    S: Service<R, Response = Response<B>>,
{
    type Response = Response<WatchedBody<B>>;
    type Error = S::Error;
    type Future = WatchedFuture<S::Future>;

    fn call(&self, request: R) -> Self::Future {
        self.shared.in_flight.store(true, Ordering::Relaxed);
        // Made before the inner call, so a response future that is dropped unfinished (or
        // panics) still ends the request.
        let end = RequestEnd(self.shared.clone());
        WatchedFuture {
            inner: self.inner.call(request),
            end: Some(end),
        }
    }
}

/// Ends the request it belongs to when dropped: the connection is idle from then on.
struct RequestEnd(Arc<Shared>);

impl Drop for RequestEnd {
    fn drop(&mut self) {
        let shared = &self.0;
        let since = match shared.clock {
            IdleClock::Coarse { opened_ns } => coarse_ns().saturating_sub(opened_ns),
            IdleClock::Tokio => {
                u64::try_from(shared.opened.elapsed().as_nanos()).unwrap_or(u64::MAX)
            }
        };
        shared.idle_since_ns.store(since, Ordering::Relaxed);
        // Release: a watch that sees the request ended sees when it ended.
        shared.in_flight.store(false, Ordering::Release);
    }
}

pin_project! {
    /// The response future of a [`Watched`] service.
    pub struct WatchedFuture<F> {
        #[pin]
        inner: F,
        end: Option<RequestEnd>,
    }
}

impl<F, B, E> Future for WatchedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<WatchedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let end = this.end.take();
        Poll::Ready(result.map(|response| response.map(|inner| WatchedBody { inner, _end: end })))
    }
}

pin_project! {
    /// A response body that ends its request when dropped; otherwise `B` itself.
    pub struct WatchedBody<B> {
        #[pin]
        inner: B,
        _end: Option<RequestEnd>,
    }
}

impl<B: Body> Body for WatchedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;

    /// A service answering every request with `hello`.
    #[derive(Clone)]
    struct Hello;

    impl Service<()> for Hello {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn call(&self, _request: ()) -> Self::Future {
            std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"hello")))))
        }
    }

    /// A watch on tokio's clock, which these tests pause and advance.
    fn watch(timeout: Duration) -> HeadWatch {
        HeadWatch::on_clock(timeout, IdleClock::Tokio)
    }

    async fn expired(watch: &mut HeadWatch) {
        std::future::poll_fn(|cx| watch.poll_expired(cx)).await
    }

    fn pending(watch: &mut HeadWatch) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        watch.poll_expired(&mut cx).is_pending()
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_expires_after_the_timeout() {
        let mut watch = watch(Duration::from_secs(10));
        assert!(pending(&mut watch));
        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert!(pending(&mut watch));
        tokio::time::timeout(Duration::from_millis(200), expired(&mut watch))
            .await
            .expect("expired 10 s after opening");
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_never_expires_and_its_end_restarts_the_clock() {
        let mut watch = watch(Duration::from_secs(10));
        let service = watch.service(Hello);
        let response = service.call(()).await.unwrap();
        // The response is ready but its body is not written yet: still in flight, however long.
        tokio::time::advance(Duration::from_secs(35)).await;
        assert!(pending(&mut watch));
        drop(response);
        // Idle from now: 10 s more.
        tokio::time::advance(Duration::from_millis(9_900)).await;
        assert!(pending(&mut watch));
        tokio::time::timeout(Duration::from_millis(200), expired(&mut watch))
            .await
            .expect("expired 10 s after the response ended");
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_keep_coming_outlive_the_timeout() {
        let mut watch = watch(Duration::from_secs(10));
        let service = watch.service(Hello);
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(4)).await;
            assert!(pending(&mut watch));
            drop(service.call(()).await.unwrap());
        }
        assert!(pending(&mut watch));
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_future_dropped_unfinished_ends_the_request() {
        let mut watch = watch(Duration::from_secs(1));
        let service = watch.service(Hello);
        drop(service.call(()));
        tokio::time::timeout(Duration::from_millis(1_100), expired(&mut watch))
            .await
            .expect("expired: the abandoned request is not in flight");
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_beyond_the_clock_never_fires() {
        let mut watch = watch(Duration::MAX / 2);
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(pending(&mut watch));
    }

    #[tokio::test]
    async fn on_the_coarse_clock_the_timeout_counts_from_the_end_of_the_response() {
        let mut watch = HeadWatch::new(Duration::from_millis(200));
        let service = watch.service(Hello);
        let response = service.call(()).await.unwrap();
        // In flight for longer than the timeout: not expired.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pending(&mut watch));
        let ended = std::time::Instant::now();
        drop(response);
        tokio::time::timeout(Duration::from_secs(2), expired(&mut watch))
            .await
            .expect("expired after the response ended");
        let idle = ended.elapsed();
        assert!(
            idle >= Duration::from_millis(190),
            "expired early: {idle:?}"
        );
    }
}
