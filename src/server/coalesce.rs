//! Small vectored writes sent as one buffer: one `send(2)` instead of a `writev(2)`.
//!
//! hyper writes a response's head and body as two slices, and on a socket that supports
//! vectored writes they leave as one `writev`. For the small answers that are most of the front
//! door's work (fixed responses and refusals, a few hundred bytes), `writev`'s iovec import and
//! VFS path cost more in the kernel than copying the slices into one buffer costs in user space
//! (api-token, 4-second alternating runs at wrk -c32: 4.56-4.83 µs of server CPU a request with
//! `writev`, 4.52-4.68 with one `send`). Large writes keep `writev`, which spares copying a
//! proxied body: hyper's own `writev(false)`, which flattens every write, made a proxied 64 KiB
//! response cost 34.4-34.6 µs a request against 31.5-32.4.

use std::io::IoSlice;

use smallvec::SmallVec;

/// Largest write, bytes in all slices together, that is copied into one buffer.
pub const MAX_COALESCED: usize = 2048;

/// Room for one coalesced write, on the stack: a `SmallVec` so that it is not zeroed first.
pub type Scratch = SmallVec<[u8; MAX_COALESCED]>;

/// `bufs` copied one after the other into `scratch` (emptied first), when there are at least
/// two of them and they hold at most [`MAX_COALESCED`] bytes together; `None` otherwise (then
/// write them as they are). Returns the joined bytes; `scratch` never grows onto the heap.
pub fn coalesce<'s>(bufs: &[IoSlice<'_>], scratch: &'s mut Scratch) -> Option<&'s [u8]> {
    if bufs.len() < 2 {
        return None;
    }
    let total = bufs
        .iter()
        .try_fold(0usize, |total, buf| total.checked_add(buf.len()))?;
    if total > MAX_COALESCED {
        return None;
    }
    scratch.clear();
    for buf in bufs {
        scratch.extend_from_slice(buf);
    }
    Some(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_slices_are_joined_in_order() {
        let mut scratch = Scratch::new();
        let bufs = [
            IoSlice::new(b"HTTP/1.1 200 OK\r\n\r\n"),
            IoSlice::new(b"{\"ok\":true}"),
        ];
        assert_eq!(
            coalesce(&bufs, &mut scratch),
            Some(&b"HTTP/1.1 200 OK\r\n\r\n{\"ok\":true}"[..])
        );
    }

    #[test]
    fn one_slice_or_too_many_bytes_is_left_alone() {
        let mut scratch = Scratch::new();
        assert_eq!(coalesce(&[IoSlice::new(b"head")], &mut scratch), None);
        let big = vec![7u8; MAX_COALESCED];
        let bufs = [IoSlice::new(b"h"), IoSlice::new(&big)];
        assert_eq!(coalesce(&bufs, &mut scratch), None);
        let exact = vec![7u8; MAX_COALESCED - 1];
        let bufs = [IoSlice::new(b"h"), IoSlice::new(&exact)];
        assert_eq!(
            coalesce(&bufs, &mut scratch).map(<[u8]>::len),
            Some(MAX_COALESCED)
        );
        assert!(!scratch.spilled());
    }
}
