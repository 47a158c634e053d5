//! The seam to the database hosts: renames and deletions reach them after
//! the caller is authorized and before the control plane records the change.
//!
//! Owns: [`DatabaseHosts`] (implemented by `orrery start` over its
//! in-process host) and [`HostError`].
//! Does not own: the hosts.

use std::future::Future;
use std::pin::Pin;

/// A future a [`DatabaseHosts`] answers with.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A host could not do what was asked; the request fails with `internal`
/// and the control plane records nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError(pub String);

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the API tells the hosts serving databases.
pub trait DatabaseHosts: Send + Sync {
    /// The database `from` is now called `to`. Called again with the names
    /// swapped if the control plane then fails to record the rename.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), HostError>>;

    /// The database `name` is deleted: stop serving it and drop its data.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>>;

    /// The operator suspended `name` (it takes no new publish). Nothing by
    /// default: a suspended database keeps serving.
    fn suspend<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        let _ = name;
        Box::pin(async { Ok(()) })
    }
}
