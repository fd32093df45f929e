//! Integration tests against the real control plane (`scripts/kube-env.sh`), in one binary so
//! the heavy dependencies are linked once.

mod support;

mod access;
mod api;
mod controller;
mod gitops;
mod runs;
mod smoke;
