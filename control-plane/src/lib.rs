//! Control plane: who may do what. Accounts, sessions, API tokens, databases
//! and their names, module versions, and the audit log, over one metadata
//! store (docs/design/control-plane.md), and signed module artifacts.
//!
//! Owns: the metadata store ([`Store`]: `sqlx`, SQLite or PostgreSQL, one set
//! of migrations in `control-plane/migrations/`), passwords (argon2id),
//! sessions, API tokens and their format ([`token`]), scopes and
//! [`ControlPlane::authorize`], login and sign-up rate limits (`governor`),
//! database names (DNS labels, unique platform-wide), the record of published
//! module versions, the audit log, and the operator's functions.
//! Does not own: HTTP (the future `control-api` crate maps [`Error::code`] to
//! statuses 1:1), running modules or serving tenants (`tenant-host`, `edge`),
//! moving databases between hosts. Hosts register and heartbeat, and a
//! database is placed on the host of its first publish (`hosts`). It stores and signs modules ([`ModuleSigning`])
//! but never runs them: validation is a [`ModuleValidator`] the binary gives it.
//!
//! Start with [`Store::connect`], [`ControlPlane::new`],
//! [`ControlPlane::signup`], [`ControlPlane::authenticate`] and
//! [`ControlPlane::authorize`].
//! Invariant: no secret (password, session, API token, invite) is stored;
//! only argon2id hashes of passwords and SHA-256 hex of the others.

mod accounts;
mod api_tokens;
mod audit;
mod clock;
mod databases;
mod error;
mod hosts;
mod ids;
mod limits;
mod modules;
mod names;
mod password;
mod plane;
mod store;
pub mod token;

pub use accounts::{EMAIL_BYTES_MAX, INVITE_LIFETIME_MS, INVITE_PREFIX};
pub use api_tokens::{TOKEN_DATABASES_MAX, TOKEN_LIFETIME_MS_MAX, TOKEN_NAME_CHARS_MAX};
pub use audit::{AuditAction, AuditEntry, AUDIT_READ_ENTRIES_MAX};
pub use clock::{Clock, ManualClock, SystemClock};
pub use databases::{Database, ModuleVersion};
pub use error::{Error, ErrorCode, Unauthenticated};
pub use hosts::{HostInfo, Placement, HOST_ID_BYTES_MAX, LEASE_MS};
pub use ids::{AccountId, AuditId, DatabaseId, InviteId, SessionId, TokenId};
pub use modules::{ModuleSigning, ModuleValidator, SignedModule};
pub use names::{validate_database_name, DATABASE_NAME_BYTES_MAX};
pub use password::{check_password_rule, PASSWORD_BYTES_MAX, PASSWORD_CHARS_MIN};
pub use plane::{
    Account, Config, ControlPlane, CreatedToken, Credential, LoggedIn, NewToken, Principal, Role,
    SignupMode, TokenDatabases, TokenInfo, SESSION_LIFETIME_MS,
};
pub use store::{Backend, Store};
pub use token::{Scope, API_TOKEN_PREFIX, PLATFORM_ISSUER, SESSION_PREFIX};
