//! The ICMPv6 error rate limiter: a token bucket (RFC 4443 §2.4(f)).
//!
//! RFC 4443 recommends a token bucket over a fixed-interval timer because a timer breaks
//! traceroute (several probes in quick succession must each get their Time Exceeded). One
//! bucket per worker, owned outright: plain integers, no atomics. Tokens are counted in
//! thousandths so that a rate in tokens per second refills exactly with millisecond ticks,
//! without floating point or division.

/// A token bucket of `burst` tokens refilled at `per_second` tokens per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    per_second: u32,
    burst: u32,
    /// Thousandths of a token.
    milli_tokens: u64,
    /// Time of the last refill, in milliseconds.
    last_ms: u64,
}

/// Thousandths per token.
const MILLI: u64 = 1000;

impl TokenBucket {
    /// A full bucket as of `now_ms`.
    pub fn new(per_second: u32, burst: u32, now_ms: u64) -> Self {
        TokenBucket {
            per_second,
            burst,
            milli_tokens: u64::from(burst) * MILLI,
            last_ms: now_ms,
        }
    }

    /// The parameters in force.
    pub fn params(&self) -> (u32, u32) {
        (self.per_second, self.burst)
    }

    /// Changes the parameters (a new snapshot), keeping the tokens already earned up to
    /// the new bucket size.
    pub fn reconfigure(&mut self, per_second: u32, burst: u32) {
        self.per_second = per_second;
        self.burst = burst;
        self.milli_tokens = self.milli_tokens.min(u64::from(burst) * MILLI);
    }

    /// Takes one token if there is one at `now_ms`. Time going backwards adds nothing.
    #[inline]
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        if elapsed > 0 {
            // tokens/s == thousandths/ms.
            let earned = elapsed.saturating_mul(u64::from(self.per_second));
            self.milli_tokens = self
                .milli_tokens
                .saturating_add(earned)
                .min(u64::from(self.burst) * MILLI);
            self.last_ms = now_ms;
        }
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(10, 3, 1000);
        assert!(b.try_take(1000));
        assert!(b.try_take(1000));
        assert!(b.try_take(1000));
        assert!(!b.try_take(1000), "burst spent");
        assert!(!b.try_take(1099), "99 ms earn 0.99 token");
        assert!(b.try_take(1100), "100 ms at 10/s earn one");
        assert!(!b.try_take(1100));
        // A long pause refills to the burst, not beyond.
        for _ in 0..3 {
            assert!(b.try_take(100_000));
        }
        assert!(!b.try_take(100_000));
        // Time going backwards earns nothing and does not panic.
        assert!(!b.try_take(5));
    }

    #[test]
    fn rate_over_a_second() {
        let mut b = TokenBucket::new(10, 10, 0);
        let sent = (0..=1000u64).filter(|&ms| b.try_take(ms)).count();
        assert_eq!(sent, 20, "a full bucket of 10 plus 10 earned in one second");
    }

    #[test]
    fn zero_rate_or_burst_sends_nothing_more() {
        let mut b = TokenBucket::new(0, 2, 0);
        assert!(b.try_take(0) && b.try_take(0));
        assert!(!b.try_take(1_000_000));
        let mut z = TokenBucket::new(100, 0, 0);
        assert!(!z.try_take(10_000));
        z.reconfigure(100, 1);
        assert!(z.try_take(20_000));
        assert_eq!(z.params(), (100, 1));
    }
}
