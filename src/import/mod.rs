//! Adapters that bring history in from other systems' files: each turns its format into the
//! domain's hit requests, which go through the same command and log as live traffic.

pub mod access_log;
