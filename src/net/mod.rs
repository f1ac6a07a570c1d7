//! Sockets between nodes: the store's peer transport (gRPC over mutual TLS).

pub mod store_peer;
