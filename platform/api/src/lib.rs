//! Shared vocabulary of Orrery: identity newtypes, hard limits, the metrics
//! text format, signed module manifests, and (later) the control-plane ↔ host
//! messages and HTTP API types.
//!
//! Owns: the scopes of account credentials and their prefixes ([`access`]),
//! the durability modes of databases ([`durability`]),
//! every id type that crosses a crate boundary ([`ids`]), every hard
//! ceiling the platform enforces ([`limits`]), the metrics text format every
//! process serves ([`prometheus`]), and the signed module manifest the
//! control plane writes and hosts verify ([`manifest`]).
//! Does not own: behaviour. Nothing here knows about tables or WebAssembly,
//! and the only I/O is reading and writing the signing-key file
//! (`manifest::SigningKey::{load, save}`); its external dependencies are
//! ed25519-dalek, sha2 and getrandom (key generation).

pub mod access;
pub mod durability;
pub mod ids;
pub mod limits;
pub mod manifest;
pub mod prometheus;

pub use durability::{DatabaseSettings, Durability};
pub use ids::TxOffset;
