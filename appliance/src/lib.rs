//! anycast6: the appliance library.

pub mod dataplane;
pub mod decode;
