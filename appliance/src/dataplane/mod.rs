//! The per-packet data plane (being written).
