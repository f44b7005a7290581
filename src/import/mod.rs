//! Adapters that bring history in from other systems' files, and take it out again: access logs
//! become the domain's hit requests, which go through the same command and log as live traffic;
//! Plausible's CSV export becomes imported aggregates (and is what `GET /api/v1/export` writes).

pub mod access_log;
pub mod csv;
pub mod plausible_csv;
pub mod zip;
