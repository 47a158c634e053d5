//! The seam to the database hosts: renames and deletions reach them after
//! the caller is authorized and before the control plane records the change;
//! restores run there once the control plane has made room for them.
//!
//! Owns: [`DatabaseHosts`] (implemented by `orrery start` over its
//! in-process host), [`HostError`] and [`HostRefusal`].
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

/// A host's refusal of work it was asked for: the HTTP status it answered
/// (409 a taken name, 400 a bad request, 503 a point it cannot reach or a
/// host it cannot reach) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRefusal {
    pub status: u16,
    pub message: String,
}

/// What the API tells the hosts serving databases.
pub trait DatabaseHosts: Send + Sync {
    /// The database `from` is now called `to`. Called again with the names
    /// swapped if the control plane then fails to record the rename.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), HostError>>;

    /// The database `name` is deleted: stop serving it and drop its data.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>>;

    /// Database `name` now keeps `days` of point-in-time history (0:
    /// everything): the host holding it collects garbage by that window.
    fn set_retention<'a>(
        &'a self,
        name: &'a str,
        days: u32,
    ) -> BoxFuture<'a, Result<(), HostError>>;

    /// Restores database `name` as `request` says (`into` a new database,
    /// which the control plane created and placed first, or `in_place`)
    /// and answers the host's JSON. Hosts without an object store cannot.
    fn restore<'a>(
        &'a self,
        name: &'a str,
        request: &'a crate::schema::RestoreDatabase,
    ) -> BoxFuture<'a, Result<serde_json::Value, HostRefusal>> {
        let _ = (name, request);
        Box::pin(async {
            Err(HostRefusal {
                status: 503,
                message: "no host here keeps backups".into(),
            })
        })
    }

    /// Restores a database of another object store into the new database
    /// `request.into` (created by the control plane) on a host of its
    /// choice, owned by `owner` (hex), and answers the host's JSON.
    fn import<'a>(
        &'a self,
        request: &'a crate::schema::HostImport,
    ) -> BoxFuture<'a, Result<serde_json::Value, HostRefusal>> {
        let _ = request;
        Box::pin(async {
            Err(HostRefusal {
                status: 503,
                message: "no host here keeps backups".into(),
            })
        })
    }

    /// The operator suspended `name` (it takes no new publish). Nothing by
    /// default: a suspended database keeps serving.
    fn suspend<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), HostError>> {
        let _ = name;
        Box::pin(async { Ok(()) })
    }
}
