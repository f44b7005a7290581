//! footfall: an event-sourced, CQRS web-analytics backend.

pub mod api;
pub mod cache;
pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod eventlog;
pub mod import;
pub mod loadgen;
pub mod projections;
pub mod query;
pub mod readmodel;
pub mod services;
pub mod startup;
pub mod telemetry;
