//! openraft on RocksDB: type configuration, log storage, state machine, snapshots, network.

pub mod db;
pub mod log_store;
pub mod network;
pub mod seal;
pub mod snapshot;
pub mod state_machine;
pub mod types;
