#![allow(clippy::unwrap_used)]

mod admin;
mod cardinality;
mod cluster;
mod collect;
mod dashboard;
mod eventlog;
mod funnels;
mod ga4;
mod graphql;
mod helpers;
mod imports;
mod loadgen;
mod openapi;
mod plausible_csv;
mod projections;
mod proptests;
mod protocols;
mod query;
mod readmodel;
mod reliability;
mod semantics;
