//! Software prefetch: start loading memory the decision will read some checks later, so that it
//! is in cache by then. On keep-alive load, the connections take turns, and a connection's own
//! data (its memo, its remembered token) is evicted between two of its requests by the other
//! connections' buffers and the kernel's: `perf` on the cached RS256 path (wrk -c32) put a fifth
//! of the decision's samples on the first load of the remembered token's bytes.
//!
//! A hint only: a prefetch reads nothing into the program and never faults, so no decision
//! depends on it. On targets other than x86-64 it does nothing.

/// The cache line size these hints step by (bytes): 64 on every x86-64 CPU.
const LINE: usize = 64;

/// At most this many lines of one byte string are hinted (1 KiB, a large RS256 JWT); the
/// hardware prefetcher follows a longer sequential read by itself.
const MAX_LINES: usize = 16;

/// Starts loading the cache line holding `address` (x86-64 `prefetcht0`, into every level).
#[inline(always)]
pub fn prefetch_line<T>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing into the program and never faults, whatever
    // the address. The intrinsic needs SSE, which is in every x86-64 CPU's baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Starts loading the cache lines of `bytes`: every line of the first [`MAX_LINES`] (1 KiB).
#[inline]
pub fn prefetch_bytes(bytes: &[u8]) {
    let misalign = bytes.as_ptr() as usize % LINE;
    let first = bytes.as_ptr().wrapping_sub(misalign);
    let span = misalign + bytes.len().min(MAX_LINES * LINE);
    for offset in (0..span).step_by(LINE) {
        prefetch_line(first.wrapping_add(offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_change_nothing() {
        let bytes = vec![7u8; 5_000];
        prefetch_bytes(&bytes);
        prefetch_bytes(&bytes[3..70]);
        prefetch_bytes(&[]);
        prefetch_line(std::ptr::null::<u8>());
        assert!(bytes.iter().all(|&b| b == 7));
    }
}
