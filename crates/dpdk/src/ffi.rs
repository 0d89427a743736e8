//! Small helpers around DPDK's C conventions (error codes, C strings).

use std::ffi::{c_char, CStr};

use anycast6_dpdk_sys as sys;

/// DPDK's text for an errno value (positive or negated).
pub(crate) fn errno_text(code: i32) -> String {
    let code = code.saturating_abs();
    // SAFETY: rte_strerror accepts any value and returns a pointer to a static or
    // thread-local NUL-terminated string.
    let text = unsafe { c_str_to_string(sys::rte_strerror(code)) };
    format!("{text} (errno {code})")
}

/// DPDK's text for the calling thread's `rte_errno`.
pub(crate) fn last_error_text() -> String {
    // SAFETY: reads a thread-local int.
    errno_text(unsafe { sys::shim_rte_errno() })
}

/// Copies a C string; `""` for NULL.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn c_str_to_string(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller guarantees p is a valid NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Copies a NUL-terminated C string out of a fixed-size array (DPDK's `char name[N]`).
pub(crate) fn c_array_to_string(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
