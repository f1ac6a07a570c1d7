//! shoal: the node runtime. Wires the store, the controllers and every socket together: the Raft
//! transport, the Docker-compatible API, the dispatcher, the agent and its executors, the CA.

pub mod bench;
pub mod ca;
pub mod net;
