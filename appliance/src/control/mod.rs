//! The control plane: what the management thread does, written sans I/O.

pub mod admin;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod neighbour;
pub mod plane;
pub mod registration;
pub mod ro;
pub mod view;
