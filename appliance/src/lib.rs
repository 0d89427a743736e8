//! anycast6: the appliance library.

pub mod config;
pub mod control;
pub mod ctl;
pub mod dataplane;
pub mod decode;
pub mod explain;
pub mod runtime;
