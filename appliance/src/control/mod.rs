//! The control plane: what the management thread does, written sans I/O.

pub mod health;
pub mod keys;
pub mod neighbour;
pub mod plane;
pub mod registration;
