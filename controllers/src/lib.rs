//! shoal's controllers: Docker Swarm's manager-side orchestration rebuilt as level-triggered
//! reconcilers over the replicated store.
//!
//! - [`runtime`]: a small controller runtime in kube-runtime's layers (watch, shared indexed
//!   cache, deduplicating work queues with debounce, backoff and read-your-writes, bounded
//!   concurrency, graceful shutdown).
//! - Reconcilers, with SwarmKit's names and defaults: the network [`allocator`], the
//!   replicated, global and jobs
//!   [`orchestrator`]s (with the restart and update supervisors), the [`scheduler`], the task
//!   [`reaper`], the constraint [`enforcer`], the [`role_manager`], the [`stack`] controller, the
//!   service [`health`] controller and the [`gitops`] controller.
//! - [`Controllers::start`] runs them on whichever manager leads the store, fencing every write
//!   to the leader's term.
//! - [`bench`]: the scheduler benchmark behind `shoal bench scheduler`.

pub mod allocator;
pub mod bench;
pub mod config;
pub mod enforcer;
pub mod gitops;
pub mod health;
pub mod leader;
pub mod orchestrator;
pub mod reaper;
pub mod role_manager;
pub mod runtime;
pub mod scheduler;
pub mod stack;

pub use config::{ControllersConfig, Enabled};
pub use leader::{Controllers, ControllersHandle, ControllersState};
