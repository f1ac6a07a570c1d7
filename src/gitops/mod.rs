//! GitOps on the server: the binary's half of the GitOps controller
//! ([`shoal_controllers::gitops`], which schedules syncs and keeps each source's status).
//!
//! This half lives in `src/` because it touches the outside world and the compose loader:
//! it runs the `git` program ([`git`]), renders a commit's compose files exactly as
//! `shoal apply` does ([`render`], [`crate::compose`]) and applies them through the
//! server-side declarative apply ([`sync`], [`crate::stack`]). [`spec`] checks what
//! `shoal gitops add` sends; [`webhook`] verifies push notifications; [`age`] decrypts files
//! encrypted in the repository; [`events`] turns status changes into `docker events`-style
//! events.

pub mod age;
pub mod events;
pub mod git;
pub mod render;
pub mod spec;
pub mod sync;
pub mod webhook;
