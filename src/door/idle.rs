//! Idle timeouts on streamed bodies: a peer that stops sending mid-body is cut off.
//!
//! [`IdleTimeout`] wraps a body and fails it when no frame arrives for the given time (nginx's
//! `client_body_timeout` and `proxy_read_timeout`, Envoy's stream idle timeout). The request body
//! on its way upstream and the upstream's response body on its way back are both wrapped, so a
//! stalled peer on either side cannot hold a connection open for ever.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Which peer stopped sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stalled {
    /// The client stopped sending the request body.
    Client,
    /// The upstream stopped sending the response body.
    Upstream,
}

/// The error a stalled body fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyStalled(pub Stalled);

impl fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Stalled::Client => f.write_str("the client stopped sending the request body"),
            Stalled::Upstream => f.write_str("the upstream stopped sending the response body"),
        }
    }
}

impl std::error::Error for BodyStalled {}

/// A body that fails with [`BodyStalled`] when no frame arrives for `timeout`.
pub struct IdleTimeout<B> {
    inner: B,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    who: Stalled,
}

impl<B> IdleTimeout<B> {
    /// Wraps `inner`; the clock starts now and restarts at every frame.
    pub fn new(inner: B, timeout: Duration, who: Stalled) -> Self {
        IdleTimeout {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            who,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + this.timeout;
                this.deadline.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(this.who))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `error` or any of its sources is a [`BodyStalled`] of `who`.
pub fn is_stalled(error: &(dyn std::error::Error + 'static), who: Stalled) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<BodyStalled>() == Some(&BodyStalled(who)) {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// Sends one frame, then never another and never ends: a stalled peer.
    struct OneThenSilence(Option<Bytes>);

    impl Body for OneThenSilence {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.get_mut().0.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_after_the_timeout() {
        let mut body = IdleTimeout::new(
            OneThenSilence(Some(Bytes::from_static(b"a"))),
            Duration::from_secs(5),
            Stalled::Client,
        );
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), Bytes::from_static(b"a"));
        let started = Instant::now();
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(is_stalled(&*err, Stalled::Client));
        assert!(!is_stalled(&*err, Stalled::Upstream));
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_passes_through() {
        let body = IdleTimeout::new(
            Full::new(Bytes::from_static(b"hello")),
            Duration::from_secs(1),
            Stalled::Upstream,
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, Bytes::from_static(b"hello"));
    }
}
