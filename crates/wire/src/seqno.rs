//! Binding Update sequence numbers, compared modulo 2^16 (RFC 6275 §9.5.1).
//!
//! A received number is not greater than the last accepted one when it lies in the window
//! made of the last accepted value and the 32768 values before it. With a last value of 15,
//! 0..=15 and 32783..=65535 are old; 16..=32782 are new.

/// True when `new` is greater than `last` modulo 2^16: `(int16_t)(new - last) > 0`, as UMIP's
/// `MIP6_SEQ_GT`. A difference of exactly 32768 is not greater.
pub fn seq_gt(new: u16, last: u16) -> bool {
    (new.wrapping_sub(last) as i16) > 0
}

/// True when `new` is not greater than `last` (the BU must be answered with BA status 135
/// carrying `last`, RFC 6275 §9.5.1).
pub fn seq_le(new: u16, last: u16) -> bool {
    !seq_gt(new, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_example_last_15() {
        for new in 0..=15u16 {
            assert!(!seq_gt(new, 15), "{new}");
        }
        for new in 32783..=65535u16 {
            assert!(!seq_gt(new, 15), "{new}");
        }
        for new in 16..=32782u16 {
            assert!(seq_gt(new, 15), "{new}");
        }
    }

    #[test]
    fn window_edges() {
        assert!(seq_gt(1, 0));
        assert!(!seq_gt(0, 0));
        assert!(seq_gt(32767, 0), "difference 32767 is greater");
        assert!(!seq_gt(32768, 0), "difference 32768 is not greater");
        assert!(!seq_gt(0, 32768), "nor the other way round");
        assert!(seq_gt(0, 65535), "wrap-around");
        assert!(seq_gt(10, 65530));
        assert!(seq_le(65530, 10));
    }

    proptest! {
        #[test]
        fn at_most_one_direction_is_greater(a in any::<u16>(), b in any::<u16>()) {
            prop_assert!(!(seq_gt(a, b) && seq_gt(b, a)));
            if a != b && a.wrapping_sub(b) != 32768 {
                prop_assert!(seq_gt(a, b) ^ seq_gt(b, a));
            }
            prop_assert!(seq_gt(b.wrapping_add(1), b));
        }
    }
}
