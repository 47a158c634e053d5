//! The object stores of the platform, through the `object_store` crate.
//!
//! Owns: which stores exist and how they are named ([`url`]: `s3://bucket/prefix`
//! with endpoint and credentials from the standard `AWS_*` variables,
//! `file:///dir`, the embedded default, and `memory://` for tests), and the
//! content-addressed module objects `modules/<sha256>.wasm` and
//! `modules/<sha256>.manifest` ([`modules`]), loaded only after their signed
//! manifest and hash verify; where databases' logs and snapshots live and
//! which segments recovery replays ([`layout`]), and each database's `head`,
//! moved only by conditional put ([`head`]); shipping a database's log and
//! snapshots as the holder of a generation ([`ship`]) and reading them back
//! into a local copy ([`recover`]), and deleting what no retained restore
//! point needs ([`gc`]).
//! Does not own: signing and verification themselves (`orrery_api::manifest`),
//! which module a database runs (the control plane's metadata store), the
//! engine's log and snapshot formats (`durable`), or when hosts take databases.
//!
//! The API is async (`object_store`'s); callers bring a Tokio runtime.

pub mod gc;
pub mod head;
pub mod layout;
pub mod modules;
pub mod recover;
pub mod ship;
pub mod url;

pub use gc::{Collected, Retention};
pub use head::{Head, HeadError, HeadGeneration, HeadSnapshot, HeadVersion, Heads};
pub use modules::{ModuleHash, ModuleStore, ModuleStoreError, VerifiedModule};
pub use object_store;
pub use recover::{DatabaseStore, Hydrated, RecoverError, Remote, RestorePoint};
pub use ship::{follow, Holder, LocalCopy, LocalReadError, ShipError, ShipOptions, ShipStatus};
pub use url::{ObjectStoreUrl, OpenError, S3Settings, UrlError};
