//! Account credentials at the edge: who may act as the owner of a database.
//!
//! Owns: the [`Authenticator`] seam (the control plane answers what a
//! session or API token may do, claims database names for accounts and
//! records what owners did), [`Grant`], [`Refusal`], [`Access`] (open
//! publishing for local development, or accounts) and the owner check every
//! owner route makes ([`owner_may`]).
//! Does not own: minting, storing or checking credentials (the control
//! plane, behind the trait), or app identities (`auth`).
//!
//! Rules: with accounts, an owner action (publish, logs, SQL as the owner,
//! private tables, rename, delete) needs an account credential of the
//! database's account whose scope covers the action and, for a token that
//! lists databases, names this database. An app identity is never an owner
//! then. With open publishing (`orrery start --dev`) a minted identity owns
//! what it publishes, as on a stock standalone server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::response::Response;
use orrery_api::access::Scope;
use spacetimedb_lib::Identity;

use crate::error::{fail, ErrorCode};

/// A future the [`Authenticator`] answers with.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What an account credential may do, as the control plane answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The account's identity: the owner of its databases, and the sender
    /// of calls made with the credential.
    pub identity: Identity,
    /// The account's id (the `sub` of its identity).
    pub account: String,
    /// The issuer of the account identities (the `iss` of its identity).
    pub issuer: String,
    pub scope: Scope,
    /// The databases the credential is for; `None`: every database of the account.
    pub databases: Option<Vec<String>>,
    /// The credential's id in the audit log (`tok_…`, or `session`).
    pub credential: String,
    /// What the authenticator keeps for its later calls on this grant.
    pub handle: Handle,
}

/// An authenticator's own value (its principal, say), carried by a
/// [`Grant`] and opaque to the edge.
#[derive(Clone)]
pub struct Handle(Arc<dyn std::any::Any + Send + Sync>);

impl Handle {
    pub fn new<T: std::any::Any + Send + Sync>(value: T) -> Handle {
        Handle(Arc::new(value))
    }

    /// A handle that holds nothing.
    pub fn none() -> Handle {
        Handle::new(())
    }

    pub fn get<T: std::any::Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handle(..)")
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Handle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Handle {}

impl Grant {
    /// True if the credential may do `needed` on a database named one of `names`.
    pub fn allows(&self, names: &[String], needed: Scope) -> bool {
        self.scope.covers(needed)
            && match &self.databases {
                None => true,
                Some(listed) => names.iter().any(|name| listed.contains(name)),
            }
    }

    /// The claims modules read with `get_jwt` for calls made with the credential.
    pub fn claims_payload(&self) -> String {
        serde_json::json!({
            "hex_identity": self.identity.to_hex().as_str(),
            "sub": self.account,
            "iss": self.issuer,
            "aud": ["orrery"],
        })
        .to_string()
    }
}

/// Why the control plane said no.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown, revoked or expired credential (401).
    Unauthorized(String),
    /// A valid credential without the right (403).
    Forbidden(String),
    /// The name belongs to another account (409).
    Conflict(String),
    /// The request itself is wrong, e.g. a name that is no DNS label (400).
    Invalid(String),
    /// The control plane could not answer (503).
    Unavailable(String),
}

impl Refusal {
    pub fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized(m) => fail(ErrorCode::Unauthorized, m),
            Refusal::Forbidden(m) => fail(ErrorCode::Forbidden, m),
            Refusal::Conflict(m) => fail(ErrorCode::Conflict, m),
            Refusal::Invalid(m) => fail(ErrorCode::InvalidRequest, m),
            Refusal::Unavailable(m) => fail(ErrorCode::Unavailable, m),
        }
    }
}

/// What an owner did that the control plane records (module versions, the
/// audit log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerEvent {
    Published {
        database: String,
        /// The module's wasm.
        module: axum::body::Bytes,
        created: bool,
    },
    Deleted {
        database: String,
    },
}

/// The control plane as the edge sees it. `orrery start` answers in
/// process; a pooled host asks the control plane over HTTP.
pub trait Authenticator: Send + Sync + 'static {
    /// What `credential` (a session or an API token) may do; `client` is
    /// the caller's address, for the audit log.
    fn authenticate<'a>(
        &'a self,
        credential: &'a str,
        client: Option<std::net::IpAddr>,
    ) -> BoxFuture<'a, Result<Grant, Refusal>>;

    /// Before a first publish creates database `name`: makes `name` the
    /// account's (or confirms it is), or refuses. Answers the settings the
    /// control plane chose for the database (durability mode, retention;
    /// each `None` leaves it to the host's default).
    fn claim_database<'a>(
        &'a self,
        grant: &'a Grant,
        name: &'a str,
    ) -> BoxFuture<'a, Result<orrery_api::DatabaseSettings, Refusal>>;

    /// Before a rename: moves the account's database `from` to the free
    /// name `to`, or refuses.
    fn rename_database<'a>(
        &'a self,
        grant: &'a Grant,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>>;

    /// After an owner action succeeded on the host. Failures are the
    /// implementation's to log: the action already happened.
    fn record<'a>(&'a self, grant: &'a Grant, event: OwnerEvent) -> BoxFuture<'a, ()>;
}

/// The control plane's module signing, as a publish asks for it before
/// the module reaches the registry (whose `ModuleVerifier` then loads the
/// signed copy).
pub trait ModuleSigner: Send + Sync + 'static {
    /// Has the control plane validate `wasm`, store it and sign its
    /// manifest as the next module of `database`, published with `grant`
    /// (an account credential) or, with open publishing, by `publisher`.
    fn sign<'a>(
        &'a self,
        grant: Option<&'a Grant>,
        publisher: Identity,
        database: &'a str,
        wasm: axum::body::Bytes,
    ) -> BoxFuture<'a, Result<(), Refusal>>;
}

/// Who may act as a database's owner on this server.
#[derive(Clone)]
pub struct Access {
    /// Checks account credentials; `None` on a server without accounts.
    pub authenticator: Option<Arc<dyn Authenticator>>,
    /// Whether app identities own what they publish (`orrery start --dev`).
    pub open_publishing: bool,
    /// Signs every published module before it is loaded; `None` on a
    /// server whose registry runs modules unsigned.
    pub signer: Option<Arc<dyn ModuleSigner>>,
}

impl Access {
    /// A server without accounts where anyone may publish (tests, `--dev`
    /// without a control plane).
    pub fn open() -> Access {
        Access {
            authenticator: None,
            open_publishing: true,
            signer: None,
        }
    }
}

/// What an app identity is told when it tries an owner action on a server
/// with accounts.
pub const NEEDS_ACCOUNT_TOKEN: &str = "this needs an account token: sign up or log in \
     (`orrery signup`, `orrery login`), then create one with `orrery token create --scope deploy` \
     and pass it as `Authorization: Bearer <token>` (or `spacetime login --token <token>`)";

/// The owner check of an owner route: the caller is `identity` with
/// `grant` (an account credential) or without (an app identity), and wants
/// `needed` on a database owned by `owner` and named `names`.
#[allow(clippy::result_large_err)]
pub fn owner_may(
    access: &Access,
    identity: Identity,
    grant: Option<&Grant>,
    owner: Identity,
    names: &[String],
    needed: Scope,
) -> Result<(), Response> {
    if identity != owner {
        return Err(fail(
            ErrorCode::Forbidden,
            "only the owner of the database may do this",
        ));
    }
    match grant {
        Some(grant) if !grant.scope.covers(needed) => Err(fail(
            ErrorCode::Forbidden,
            format!(
                "this token's scope is `{}`; this needs `{needed}` or more",
                grant.scope
            ),
        )),
        Some(grant) if !grant.allows(names, needed) => Err(fail(
            ErrorCode::Forbidden,
            "this token is not for this database",
        )),
        Some(_) => Ok(()),
        None if access.open_publishing => Ok(()),
        None => Err(fail(ErrorCode::Forbidden, NEEDS_ACCOUNT_TOKEN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scope: Scope, databases: Option<&[&str]>) -> Grant {
        Grant {
            identity: Identity::from_claims("iss", "acc_1"),
            account: "acc_1".into(),
            issuer: "iss".into(),
            scope,
            databases: databases.map(|d| d.iter().map(|s| s.to_string()).collect()),
            credential: "tok_1".into(),
            handle: Handle::none(),
        }
    }

    fn status(r: Result<(), Response>) -> u16 {
        r.map_or_else(|e| e.status().as_u16(), |()| 200)
    }

    #[test]
    fn the_owner_check_follows_identity_scope_and_listed_databases() {
        let accounts = Access {
            authenticator: None,
            open_publishing: false,
            signer: None,
        };
        let names = ["chat".to_string()];
        let g = grant(Scope::Deploy, None);
        let me = g.identity;
        let other = Identity::from_claims("iss", "acc_2");
        let check = |access: &Access, grant: Option<&Grant>, who, needed| {
            status(owner_may(access, who, grant, me, &names, needed))
        };
        assert_eq!(check(&accounts, Some(&g), me, Scope::Read), 200);
        assert_eq!(check(&accounts, Some(&g), me, Scope::Deploy), 200);
        assert_eq!(check(&accounts, Some(&g), me, Scope::Admin), 403);
        assert_eq!(check(&accounts, Some(&g), other, Scope::Read), 403);
        let listed = grant(Scope::Admin, Some(&["chat"]));
        assert_eq!(check(&accounts, Some(&listed), me, Scope::Admin), 200);
        let elsewhere = grant(Scope::Admin, Some(&["bank"]));
        assert_eq!(check(&accounts, Some(&elsewhere), me, Scope::Read), 403);
        // App identities own nothing with accounts, and what they published
        // with open publishing.
        assert_eq!(check(&accounts, None, me, Scope::Read), 403);
        assert_eq!(check(&Access::open(), None, me, Scope::Admin), 200);
        assert_eq!(check(&Access::open(), None, other, Scope::Read), 403);
    }
}
