//! Shared vocabulary of Orrery: identity newtypes, hard limits, and (later) the
//! control-plane ↔ host messages, module manifest signing and HTTP API types.
//!
//! Owns: the scopes of account credentials and their prefixes ([`access`]),
//! every id type that crosses a crate boundary ([`ids`]), every hard
//! ceiling the platform enforces ([`limits`]) and the metrics text format
//! every process serves ([`prometheus`]).
//! Does not own: behaviour. Nothing here does I/O or knows about tables,
//! WebAssembly or accounts; it may depend on the SpacetimeDB sats/lib crates only.

pub mod access;
pub mod ids;
pub mod limits;
pub mod prometheus;

pub use ids::TxOffset;
