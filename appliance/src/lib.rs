//! anycast6: the appliance library.

pub mod control;
pub mod dataplane;
pub mod decode;
