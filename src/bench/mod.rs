//! `shoal bench ...`: benchmarks that print one JSON object on their last line of stdout, with
//! figures named with their units, so runs can be compared.

pub mod api;
pub mod docker;
pub mod dockerd;
pub mod e2e;
pub mod join;
pub mod one_node;
pub mod stats;
pub mod store;
