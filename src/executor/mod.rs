//! Where runs happen: a task inside the controller (in-process) or a Kubernetes Job running the
//! same binary's `outflow export` (the distributed engine).

pub mod in_process;
pub mod job_spec;
pub mod jobs;
pub mod runner;
pub mod select;

pub use crate::plan::runs::{Observed, RunRequest};
