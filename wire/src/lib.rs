//! WebSocket wire format of the SpacetimeDB client protocol (v2 and v3).
//!
//! Owns: the Rust types of every `ClientMessage` and `ServerMessage`
//! ([`messages`]), their exact BSATN bytes with strict, allocation-bounded
//! decoding ([`bsatn`]), payload framing per protocol version and the
//! server→client compression tag ([`framing`], [`compression`]), and choosing
//! the subprotocol and query options of an upgrade request ([`negotiate`]).
//! Written from `spec/client-protocol.md` §1 and §4.
//! Does not own: sockets, the HTTP upgrade itself, authentication, keep-alive,
//! or what the messages mean (subscriptions, reducer calls): those live in the
//! connection layer built on top of this module.
//!
//! v2 and v3 share one message schema; they differ only in framing (v2: one
//! message per payload; v3: one or more back to back, in both directions).

pub mod bsatn;
pub mod compression;
pub mod framing;
pub mod messages;
pub mod negotiate;

pub use bsatn::DecodeError;
pub use compression::Compression;
pub use framing::Protocol;
pub use messages::{ClientMessage, ServerMessage};

#[cfg(test)]
mod tests;
