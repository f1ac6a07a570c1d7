//! `shoal bench ...`: benchmarks that print one JSON object on their last line of stdout, with
//! figures named with their units, so runs can be compared.

pub mod api;
pub mod apply;
pub mod apply_watchers;
pub mod dashboard;
pub mod docker;
pub mod dockerd;
pub mod e2e;
pub mod etcd_join;
pub mod etcd_store;
pub mod gitops;
pub mod hosts;
pub mod join;
pub mod net;
pub mod one_node;
pub mod stats;
pub mod store;
pub mod store_processes;

/// A temporary directory for a benchmark's data: under `dir` (a real disk the user names), or
/// the system's temp dir.
pub fn data_dir(dir: Option<&std::path::Path>) -> std::io::Result<tempfile::TempDir> {
    match dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
}
