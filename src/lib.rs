//! shoal: the node runtime. Wires the store, the controllers and every socket together: the Raft
//! transport, the Docker-compatible API, the dispatcher, the agent and its executors, the CA.

pub mod agent;
pub mod api;
pub mod bench;
pub mod ca;
pub mod chaos;
pub mod cli;
pub mod client;
pub mod compose;
pub mod dashboard;
pub mod dataplane;
pub mod dispatcher;
pub mod engine_proxy;
pub mod exec;
pub mod gitops;
pub mod native;
pub mod net;
pub mod node;
pub mod stack;

/// shoal's version, reported as the engine version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
