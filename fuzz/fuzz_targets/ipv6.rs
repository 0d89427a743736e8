#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| anycast6_fuzz_targets::ipv6(data));
