//! A log-bucketed latency histogram in the manner of HDR: constant relative precision
//! (≤ 1/32 ≈ 3 %) from 1 ns to `u64::MAX` ns in a fixed array of counters.
//!
//! Each generator connection owns one histogram and records into it without any sharing;
//! the harness merges them when the scenario is over. Values are nanoseconds.
//!
//! Bucketing: values below `2^SUB_BITS` get one bucket each. Above, a value whose highest set
//! bit is `e` keeps its top `SUB_BITS` bits: the bucket is `(e - SUB_BITS + 1) * HALF + top`
//! where `top = v >> (e - SUB_BITS + 1)` lies in `[HALF, 2 * HALF)`. The buckets of one power
//! of two are therefore `2^(e - SUB_BITS + 1)` wide: 32 per doubling.

/// Significant bits kept per value: 2^6 = 64 sub-buckets, 32 per power of two above 64.
const SUB_BITS: u32 = 6;
/// Half the sub-bucket count: the buckets per power of two.
const HALF: u64 = 1 << (SUB_BITS - 1);
/// Buckets needed to cover every `u64`.
const BUCKETS: usize = ((64 - SUB_BITS as u64) * HALF + 2 * HALF) as usize;

/// Counts of recorded values, log-bucketed.
#[derive(Clone)]
pub struct Histogram {
    /// One counter per bucket.
    counts: Box<[u64]>,
    /// Values recorded.
    total: u64,
    /// Smallest value recorded (`u64::MAX` when empty).
    min: u64,
    /// Largest value recorded.
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("min", &self.min())
            .field("max", &self.max)
            .finish()
    }
}

/// The bucket of a value.
#[inline]
fn bucket_of(value: u64) -> usize {
    if value < 2 * HALF {
        return value as usize;
    }
    let highest_bit = 63 - value.leading_zeros();
    let shift = highest_bit - SUB_BITS + 1;
    let top = value >> shift;
    (u64::from(shift) * HALF + top) as usize
}

/// The smallest and largest value of a bucket.
fn bucket_bounds(bucket: usize) -> (u64, u64) {
    let bucket = bucket as u64;
    if bucket < 2 * HALF {
        return (bucket, bucket);
    }
    let shift = bucket / HALF - 1;
    let top = bucket % HALF + HALF;
    let low = top << shift;
    let width_minus_one = (1u64 << shift) - 1;
    (low, low.saturating_add(width_minus_one))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, value: u64) {
        // `bucket_of` returns at most BUCKETS - 1 for any u64; the index check stays for safety.
        if let Some(count) = self.counts.get_mut(bucket_of(value)) {
            *count += 1;
        }
        self.total += 1;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Smallest value recorded (0 when empty).
    pub fn min(&self) -> u64 {
        if self.total == 0 {
            0
        } else {
            self.min
        }
    }

    /// Largest value recorded (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value below or at which `percent` % of the recorded values lie, to the bucket's
    /// precision (the bucket's midpoint, clamped to the recorded min and max); 0 when empty.
    pub fn percentile(&self, percent: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let fraction = (percent / 100.0).clamp(0.0, 1.0);
        let rank = ((fraction * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, high) = bucket_bounds(bucket);
                let middle = low + (high - low) / 2;
                return middle.clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_and_are_ordered() {
        let mut samples: Vec<u64> = (0..10_000).collect();
        for shift in 0..64 {
            let base = 1u64 << shift;
            samples.extend([
                base - 1,
                base,
                base + 1,
                base | (base >> 1),
                base | (base >> 3),
            ]);
        }
        samples.push(u64::MAX);
        for value in samples {
            let bucket = bucket_of(value);
            assert!(bucket < BUCKETS, "{value} → bucket {bucket}");
            let (low, high) = bucket_bounds(bucket);
            assert!(
                low <= value && value <= high,
                "{value} not in [{low}, {high}]"
            );
            // Relative width at most 1/32.
            assert!(
                (high - low) as f64 <= low as f64 / 32.0 + 1.0,
                "{low}..{high}"
            );
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for bucket in 1..BUCKETS {
            assert_eq!(bucket_bounds(bucket).0, bucket_bounds(bucket - 1).1 + 1);
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut histogram = Histogram::new();
        // 1 µs .. 10 ms in 1 µs steps, in nanoseconds.
        for micros in 1..=10_000u64 {
            histogram.record(micros * 1000);
        }
        assert_eq!(histogram.count(), 10_000);
        let close = |got: u64, want: u64| {
            let error = (got as f64 - want as f64).abs() / want as f64;
            assert!(error < 0.02, "got {got}, want about {want}");
        };
        close(histogram.percentile(50.0), 5_000_000);
        close(histogram.percentile(90.0), 9_000_000);
        close(histogram.percentile(99.0), 9_900_000);
        assert_eq!(histogram.percentile(100.0), 10_000_000);
        assert_eq!(histogram.percentile(0.0), 1000);
        assert_eq!(histogram.min(), 1000);
        assert_eq!(histogram.max(), 10_000_000);
    }

    #[test]
    fn percentiles_see_the_tail() {
        let mut histogram = Histogram::new();
        for _ in 0..980 {
            histogram.record(100_000);
        }
        for _ in 0..20 {
            histogram.record(5_000_000);
        }
        let p50 = histogram.percentile(50.0);
        assert!((97_000..=103_000).contains(&p50), "{p50}");
        let p99 = histogram.percentile(99.0);
        assert!((4_850_000..=5_000_000).contains(&p99), "{p99}");
    }

    #[test]
    fn merge_adds_counts_and_extremes() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.min(), 10);
        assert_eq!(a.max(), 1_000_000);
        assert_eq!(a.percentile(50.0), 20);
        assert_eq!(Histogram::new().percentile(99.0), 0);
        assert_eq!(Histogram::new().min(), 0);
    }
}
