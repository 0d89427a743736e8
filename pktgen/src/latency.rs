//! Latency, loss and reordering accounting of stamped packets, sans I/O.
//!
//! The sender numbers its stamped packets 0, 1, 2, ... ([`crate::build::Stamp`]); the
//! receiver feeds each stamp it sees with its receive time to [`LatencyTracker::record`].
//! Loss is what was sent and never seen; a packet is *reordered* when a higher sequence
//! number arrived before it; a sequence number seen twice is a *duplicate* (counted, not
//! recorded again).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram holds (60 s, in ns); longer ones are clamped to it.
const MAX_TRACKABLE_NS: u64 = 60_000_000_000;

/// Receiver-side accounting.
#[derive(Debug, Clone)]
pub struct LatencyTracker {
    histogram: Histogram<u64>,
    /// Histogram of the current reporting interval (the live line).
    interval: Histogram<u64>,
    /// One bit per sequence number seen.
    seen: Vec<u64>,
    highest: Option<u64>,
    received: u64,
    reordered: u64,
    duplicates: u64,
    /// Receive time before send time (clock trouble): counted, not recorded.
    negative: u64,
    /// Sequence numbers too far ahead to track (corrupt or foreign stamps).
    out_of_range: u64,
}

/// Sequence numbers above this are not tracked (2^31 samples, 256 MiB of bitmap).
pub const MAX_SEQ: u64 = 1 << 31;

/// Percentiles of a histogram, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    pub samples: u64,
    pub min_ns: u64,
    pub mean_ns: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
}

/// The final account.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct LatencyReport {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub reordered: u64,
    pub duplicates: u64,
    pub negative: u64,
    #[serde(flatten)]
    pub percentiles: Percentiles,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    Percentiles {
        samples: h.len(),
        min_ns: h.min(),
        mean_ns: h.mean(),
        p50_ns: h.value_at_quantile(0.50),
        p90_ns: h.value_at_quantile(0.90),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        max_ns: h.max(),
    }
}

impl Default for LatencyTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyTracker {
    pub fn new() -> Self {
        // 3 significant digits: 0.1 % resolution at any magnitude.
        let h = Histogram::new_with_bounds(1, MAX_TRACKABLE_NS, 3)
            .expect("constant histogram bounds are valid");
        LatencyTracker {
            interval: h.clone(),
            histogram: h,
            seen: Vec::new(),
            highest: None,
            received: 0,
            reordered: 0,
            duplicates: 0,
            negative: 0,
            out_of_range: 0,
        }
    }

    /// Records stamp `seq` sent at `tx_ns` and received at `rx_ns` (same clock).
    pub fn record(&mut self, seq: u64, tx_ns: u64, rx_ns: u64) {
        if seq >= MAX_SEQ {
            self.out_of_range += 1;
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.seen.len() {
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.received += 1;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        let Some(latency) = rx_ns.checked_sub(tx_ns) else {
            self.negative += 1;
            return;
        };
        let v = latency.clamp(1, MAX_TRACKABLE_NS);
        // Both values are within the bounds given to the histograms, so recording cannot
        // fail.
        let _ = self.histogram.record(v);
        let _ = self.interval.record(v);
    }

    /// Stamps received (each sequence number once).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Percentiles since the last call (for the live line), then starts a new interval.
    pub fn take_interval(&mut self) -> Percentiles {
        let p = percentiles(&self.interval);
        self.interval.reset();
        p
    }

    /// The account, given how many stamped packets were sent.
    pub fn report(&self, sent: u64) -> LatencyReport {
        let lost = sent.saturating_sub(self.received);
        LatencyReport {
            sent,
            received: self.received,
            lost,
            loss_ratio: if sent == 0 {
                0.0
            } else {
                lost as f64 / sent as f64
            },
            reordered: self.reordered,
            duplicates: self.duplicates,
            negative: self.negative,
            percentiles: percentiles(&self.histogram),
        }
    }

    /// Adds another tracker's samples (two receivers of one sender).
    pub fn merge(&mut self, other: &LatencyTracker) {
        let _ = self.histogram.add(&other.histogram);
        if other.seen.len() > self.seen.len() {
            self.seen.resize(other.seen.len(), 0);
        }
        for (w, o) in self.seen.iter_mut().zip(&other.seen) {
            self.duplicates += u64::from((*w & o).count_ones());
            *w |= o;
        }
        self.received = self.seen.iter().map(|w| u64::from(w.count_ones())).sum();
        self.reordered += other.reordered;
        self.negative += other.negative;
        self.duplicates += other.duplicates;
        self.highest = self.highest.max(other.highest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_without_loss() {
        let mut t = LatencyTracker::new();
        for seq in 0..1000 {
            // Latency 1000 + seq ns: 1000..=1999.
            t.record(seq, seq * 10_000, seq * 10_000 + 1000 + seq);
        }
        let r = t.report(1000);
        assert_eq!(
            (r.received, r.lost, r.reordered, r.duplicates),
            (1000, 0, 0, 0)
        );
        assert_eq!(r.loss_ratio, 0.0);
        let p = r.percentiles;
        assert_eq!(p.samples, 1000);
        assert_eq!(p.min_ns, 1000);
        // 3 significant digits: values within 0.1 %.
        let near = |v: u64, want: u64| (v as f64 - want as f64).abs() <= want as f64 * 0.001 + 1.0;
        assert!(near(p.p50_ns, 1499), "{p:?}");
        assert!(near(p.p90_ns, 1899), "{p:?}");
        assert!(near(p.p99_ns, 1989), "{p:?}");
        assert!(near(p.p999_ns, 1998), "{p:?}");
        assert!(near(p.max_ns, 1999), "{p:?}");
        assert!((p.mean_ns - 1499.5).abs() < 2.0, "{p:?}");
    }

    #[test]
    fn loss_reorder_and_duplicates() {
        let mut t = LatencyTracker::new();
        // 0..100 sent; 10..20 lost; 50 arrives after 51..=55; 70 arrives twice.
        let mut order: Vec<u64> = (0..100)
            .filter(|s| !(10..20).contains(s) && *s != 50)
            .collect();
        let at = order.iter().position(|s| *s == 55).unwrap() + 1;
        order.insert(at, 50);
        order.push(70);
        for s in order {
            t.record(s, 0, 5000);
        }
        let r = t.report(100);
        assert_eq!(r.received, 90);
        assert_eq!(r.lost, 10);
        assert!((r.loss_ratio - 0.1).abs() < 1e-12);
        assert_eq!(r.reordered, 1);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.percentiles.samples, 90);
    }

    #[test]
    fn reversed_sequence_counts_every_late_packet() {
        let mut t = LatencyTracker::new();
        for s in (0..10).rev() {
            t.record(s, 0, 100);
        }
        assert_eq!(t.report(10).reordered, 9);
    }

    #[test]
    fn interval_resets_and_clock_trouble_is_counted() {
        let mut t = LatencyTracker::new();
        t.record(0, 0, 2_000_000);
        let i = t.take_interval();
        assert_eq!(i.samples, 1);
        assert!(i.max_ns >= 1_999_000);
        assert_eq!(t.take_interval().samples, 0);
        t.record(1, 500, 100);
        let r = t.report(2);
        assert_eq!((r.received, r.negative, r.percentiles.samples), (2, 1, 1));
        t.record(MAX_SEQ, 0, 1);
        assert_eq!(t.report(2).received, 2);
    }

    #[test]
    fn merge_of_two_receivers() {
        let (mut a, mut b) = (LatencyTracker::new(), LatencyTracker::new());
        for s in 0..50 {
            a.record(s * 2, 0, 100);
            b.record(s * 2 + 1, 0, 300);
        }
        a.merge(&b);
        let r = a.report(100);
        assert_eq!((r.received, r.lost, r.duplicates), (100, 0, 0));
        assert_eq!(r.percentiles.samples, 100);
        assert_eq!(r.percentiles.min_ns, 100);
    }
}
