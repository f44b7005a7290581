//! Application services: they load state, call the domain, and write through the event log. The
//! HTTP handlers and the CLI are thin adapters over them.

pub mod collector;
pub mod imports;
pub mod properties;
pub mod salts;
pub mod shared_links;

pub use collector::{Client, CollectError, Collector, Recorded};
pub use imports::{ImportError, Imports};
pub use properties::{Properties, PropertyRecord, RegisterError};
pub use salts::Salts;
pub use shared_links::SharedLinkRecord;
