//! Outflow: a Kubernetes operator that activates customer-profile data to destinations.
//!
//! The layers, from the outside in: [`api`] (resource types, no I/O), [`plan`] (pure decisions:
//! validation, schedules, status), [`controller`] (kube-rs reconcilers), [`cli`] (the `outflow`
//! binary's commands). [`manifest`] reads the same resources from YAML files for the commands that
//! work without a cluster.

pub mod api;
pub mod cli;
pub mod connectors;
pub mod controller;
pub mod crds;
pub mod executor;
pub mod export;
pub mod local;
pub mod manifest;
pub mod plan;
pub mod sample;
