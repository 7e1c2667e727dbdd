//! A send timeout on accepted connections: a peer that stops reading is cut off.
//!
//! hyper has a header-read timeout but none for writes, so a client that sends a request and
//! then never reads the response (a slow-read attack, or a dead peer behind a full window) would
//! hold its connection, and the upstream stream feeding it, for ever. [`SendTimeout`] wraps the
//! socket and fails a write that has made no progress for the given time, like nginx's
//! `send_timeout`: the time between two successful writes, not for the whole response.
//!
//! Being the one wrapper every accepted socket has, it is also where a small vectored write is
//! joined into one buffer before it is sent ([`crate::server::coalesce`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::server::coalesce::{coalesce, Scratch};

/// A stream whose writes fail with `TimedOut` after `timeout` without progress. A small
/// vectored write goes to the stream as one buffer ([`coalesce`]).
pub struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write or flush is pending.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl<S> SendTimeout<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, timeout: Duration) -> Self {
        SendTimeout {
            inner,
            timeout,
            deadline: None,
        }
    }

    /// After a pending write: arm the clock if needed and fail once it has run out.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the peer stopped reading (send timeout)",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A small response's head and body: one send(2), not a writev(2) (coalesce.rs).
        let mut scratch = Scratch::new();
        if let Some(joined) = coalesce(bufs, &mut scratch) {
            return self.poll_write(cx, joined);
        }
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(result) => {
                this.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                this.deadline = None;
                Poll::Ready(result)
            }
            Poll::Pending => this.pending(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::coalesce::MAX_COALESCED;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_that_never_drains_fails_after_the_timeout() {
        // A pipe with a 16-byte buffer that nobody reads.
        let (writer, _reader) = tokio::io::duplex(16);
        let mut stream = SendTimeout::new(writer, Duration::from_secs(3));
        stream.write_all(&[0u8; 16]).await.unwrap();
        let started = Instant::now();
        let err = stream.write_all(&[0u8; 16]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    /// Records how it is written to: `(vectored, bytes)` for each call.
    #[derive(Default)]
    struct Recorder(Vec<(bool, Vec<u8>)>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.get_mut().0.push((false, buf.to_vec()));
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let bytes: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let written = bytes.len();
            self.get_mut().0.push((true, bytes));
            Poll::Ready(Ok(written))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_small_vectored_write_is_one_plain_write_a_large_one_stays_vectored() {
        let mut stream = SendTimeout::new(Recorder::default(), Duration::from_secs(1));
        let small = [io::IoSlice::new(b"head\r\n\r\n"), io::IoSlice::new(b"body")];
        assert_eq!(stream.write_vectored(&small).await.unwrap(), 12);
        let body = vec![b'x'; MAX_COALESCED];
        let large = [io::IoSlice::new(b"head\r\n\r\n"), io::IoSlice::new(&body)];
        let written = stream.write_vectored(&large).await.unwrap();
        assert_eq!(written, 8 + MAX_COALESCED);
        let calls = &stream.inner.0;
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0], (false, b"head\r\n\r\nbody".to_vec()));
        assert!(calls[1].0, "a large write keeps writev");
        assert_eq!(calls[1].1.len(), 8 + MAX_COALESCED);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_progress_never_time_out() {
        let (writer, mut reader) = tokio::io::duplex(16);
        let mut stream = SendTimeout::new(writer, Duration::from_secs(1));
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut sink)
                .await
                .unwrap();
            sink.len()
        });
        for _ in 0..100 {
            stream.write_all(&[1u8; 64]).await.unwrap();
        }
        drop(stream);
        assert_eq!(drain.await.unwrap(), 6400);
    }
}
