//! shoal's replicated store: the object model, transactions with per-object versions, revisions,
//! the watch hub, and the openraft log and state machine on RocksDB.

pub mod model;
