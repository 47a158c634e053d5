//! [`ControlPlane`]: the domain API over the [`Store`], and who is asking.
//!
//! Owns: the public record types ([`Account`], [`Principal`], [`TokenInfo`]
//! …), [`ControlPlane::authenticate`] (a bearer credential to a
//! [`Principal`]) and [`ControlPlane::authorize`] (a principal, a database
//! and a needed [`Scope`]). The operations live beside it: accounts and
//! sessions in `accounts.rs`, API tokens in `api_tokens.rs`, databases and
//! module versions in `databases.rs`, the audit log in `audit.rs`.
//! Invariant: every operation on an account's data first checks the
//! principal's scope and coverage; operator functions check the role.

use std::net::IpAddr;
use std::sync::Arc;

use spacetimedb_lib::Identity;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::clock::{Clock, SystemClock};
use crate::databases::Database;
use crate::error::{Error, StoreContext, Unauthenticated};
use crate::ids::{AccountId, DatabaseId, SessionId, TokenId};
use crate::limits::RateLimits;
use crate::store::Store;
use crate::token::{self, Scope};

/// How long a session lives: 30 days.
pub const SESSION_LIFETIME_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// How often `last_used_at` of an API token is written at most.
const TOKEN_LAST_USED_GRANULARITY_MS: i64 = 60 * 1000;

/// Who may sign up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignupMode {
    /// Anyone with an email address.
    Open,
    /// Only holders of an operator's invitation.
    InviteOnly,
}

/// Settings of a [`ControlPlane`].
pub struct Config {
    pub signup: SignupMode,
    /// Where "now" comes from (a [`crate::ManualClock`] in tests).
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            signup: SignupMode::Open,
            clock: Arc::new(SystemClock),
        }
    }
}

/// An account's role on the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A tenant: rights over its own account only.
    Member,
    /// The platform's operator: may also list accounts, invite, and suspend
    /// or delete any database.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Operator => "operator",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Role, Error> {
        match text {
            "member" => Ok(Role::Member),
            "operator" => Ok(Role::Operator),
            other => Err(Error::Internal(format!(
                "unknown role {other:?} in the store"
            ))),
        }
    }
}

/// An account (never its password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub email: String,
    pub role: Role,
    /// `Identity::from_claims(PLATFORM_ISSUER, id)`: the owner of the
    /// account's databases.
    pub identity: Identity,
    pub created_at_ms: i64,
}

/// A new session: the secret is shown here only.
#[derive(Clone, Debug)]
pub struct LoggedIn {
    pub account: Account,
    pub session_id: SessionId,
    /// `orrs_…`: the `orrery_session` cookie or a bearer token.
    pub session: String,
    pub expires_at_ms: i64,
}

/// The databases an API token covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenDatabases {
    /// Every database of the account, present and future.
    All,
    /// Only these (by id, so a rename keeps them covered).
    Listed(Vec<DatabaseId>),
}

/// The credential a request came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A login session: admin over the whole account.
    Session { session_id: SessionId },
    ApiToken {
        token_id: TokenId,
        scope: Scope,
        databases: TokenDatabases,
    },
}

impl Credential {
    /// The credential's scope (sessions are admin).
    pub fn scope(&self) -> Scope {
        match self {
            Credential::Session { .. } => Scope::Admin,
            Credential::ApiToken { scope, .. } => *scope,
        }
    }

    /// Whether the credential covers every database of the account.
    pub fn is_account_wide(&self) -> bool {
        match self {
            Credential::Session { .. } => true,
            Credential::ApiToken { databases, .. } => *databases == TokenDatabases::All,
        }
    }

    /// Whether the credential covers `database` (of its own account).
    pub fn covers(&self, database: &DatabaseId) -> bool {
        match self {
            Credential::Session { .. } => true,
            Credential::ApiToken { databases, .. } => match databases {
                TokenDatabases::All => true,
                TokenDatabases::Listed(listed) => listed.contains(database),
            },
        }
    }

    /// The scope check of [`ControlPlane::authorize`], for a database of the
    /// credential's own account.
    pub fn check(&self, database: &DatabaseId, needed: Scope) -> Result<(), Error> {
        if !self.covers(database) {
            return Err(Error::forbidden(
                "this API token is not valid for this database; create one that lists it",
            ));
        }
        if !self.scope().covers(needed) {
            return Err(Error::forbidden(format!(
                "this API token has scope {}; this needs {}",
                self.scope().as_str(),
                needed.as_str()
            )));
        }
        Ok(())
    }
}

/// An authenticated caller: an account, through a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub account_id: AccountId,
    pub identity: Identity,
    pub role: Role,
    pub credential: Credential,
}

impl Principal {
    /// `session` or the token id, for the audit log.
    pub(crate) fn via(&self) -> String {
        match &self.credential {
            Credential::Session { .. } => "session".to_owned(),
            Credential::ApiToken { token_id, .. } => token_id.to_string(),
        }
    }
}

/// What [`ControlPlane::create_token`] needs.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// A label for people (1 to 100 characters).
    pub name: String,
    pub scope: Scope,
    /// `None`: every database of the account; otherwise these names.
    pub databases: Option<Vec<String>>,
    /// `None`: never expires.
    pub expires_in_ms: Option<i64>,
}

/// What is known of an API token (never the token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    pub scope: Scope,
    /// `None`: account-wide; otherwise the current names of its databases.
    pub databases: Option<Vec<String>>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

/// A new API token: `token` is shown this once and never again.
#[derive(Clone, Debug)]
pub struct CreatedToken {
    pub info: TokenInfo,
    pub token: String,
}

/// The control plane's domain API. Cheap to share behind an `Arc`.
pub struct ControlPlane {
    pub(crate) store: Store,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signup_mode: SignupMode,
    pub(crate) limits: RateLimits,
    /// Module validation, storage and signing; `None` until
    /// [`ControlPlane::with_module_signing`].
    pub(crate) modules: Option<Arc<crate::modules::ModuleSigning>>,
}

impl ControlPlane {
    pub fn new(store: Store, config: Config) -> ControlPlane {
        ControlPlane {
            store,
            limits: RateLimits::new(config.clock.clone()),
            clock: config.clock,
            signup_mode: config.signup,
            modules: None,
        }
    }

    /// This control plane signs modules with `signing` (publishing needs it).
    pub fn with_module_signing(mut self, signing: crate::modules::ModuleSigning) -> ControlPlane {
        self.modules = Some(Arc::new(signing));
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Who is calling with `bearer` (a session secret or an API token, as
    /// sent in `Authorization: Bearer` or the session cookie). Refusals say
    /// whether the credential is malformed, unknown, revoked or expired. A
    /// used API token's `last_used_at` is recorded (to the minute).
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, Error> {
        let now = self.now_ms();
        if token::is_session_secret(bearer) {
            return self.authenticate_session(bearer, now).await;
        }
        if !token::is_api_token(bearer) {
            return Err(Error::Unauthorized(Unauthenticated::Malformed));
        }
        let claims = token::parse_api_token(bearer)
            .map_err(|_| Error::Unauthorized(Unauthenticated::Malformed))?;
        let row = sqlx::query(
            "SELECT t.id, t.account_id, t.scope, t.all_databases, t.expires_at, t.revoked_at, \
             t.last_used_at, a.role FROM api_tokens t JOIN accounts a ON a.id = t.account_id \
             WHERE t.token_hash = $1",
        )
        .bind(token::secret_hash(bearer))
        .fetch_optional(self.store.pool())
        .await
        .context("look up an API token")?
        .ok_or(Error::Unauthorized(Unauthenticated::Unknown))?;
        let token_id = TokenId::from_stored(get::<String>(&row, "id")?);
        let account_id = AccountId::from_stored(get::<String>(&row, "account_id")?);
        if token_id != claims.token_id || account_id != claims.account_id {
            return Err(Error::Internal(format!(
                "API token {token_id} is stored with other claims than it carries"
            )));
        }
        if get::<Option<i64>>(&row, "revoked_at")?.is_some() {
            return Err(Error::Unauthorized(Unauthenticated::Revoked));
        }
        if get::<Option<i64>>(&row, "expires_at")?.is_some_and(|expires_at| expires_at <= now) {
            return Err(Error::Unauthorized(Unauthenticated::Expired));
        }
        let scope = parse_scope(&get::<String>(&row, "scope")?)?;
        let databases = if get::<i64>(&row, "all_databases")? != 0 {
            TokenDatabases::All
        } else {
            TokenDatabases::Listed(self.token_database_ids(&token_id).await?)
        };
        let last_used = get::<Option<i64>>(&row, "last_used_at")?;
        if last_used.is_none_or(|at| now - at >= TOKEN_LAST_USED_GRANULARITY_MS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(token_id.as_str())
                .execute(self.store.pool())
                .await
                .context("record the last use of an API token")?;
        }
        Ok(Principal {
            identity: token::account_identity(account_id.as_str()),
            account_id,
            role: Role::parse(&get::<String>(&row, "role")?)?,
            credential: Credential::ApiToken {
                token_id,
                scope,
                databases,
            },
        })
    }

    async fn authenticate_session(&self, secret: &str, now: i64) -> Result<Principal, Error> {
        let row = sqlx::query(
            "SELECT s.id, s.account_id, s.expires_at, a.role FROM sessions s \
             JOIN accounts a ON a.id = s.account_id WHERE s.token_hash = $1",
        )
        .bind(token::secret_hash(secret))
        .fetch_optional(self.store.pool())
        .await
        .context("look up a session")?
        .ok_or(Error::Unauthorized(Unauthenticated::Unknown))?;
        let session_id = SessionId::from_stored(get::<String>(&row, "id")?);
        if get::<i64>(&row, "expires_at")? <= now {
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(session_id.as_str())
                .execute(self.store.pool())
                .await
                .context("delete an expired session")?;
            return Err(Error::Unauthorized(Unauthenticated::Expired));
        }
        let account_id = AccountId::from_stored(get::<String>(&row, "account_id")?);
        Ok(Principal {
            identity: token::account_identity(account_id.as_str()),
            account_id,
            role: Role::parse(&get::<String>(&row, "role")?)?,
            credential: Credential::Session { session_id },
        })
    }

    /// The database named `name`, if `principal` may act on it with
    /// `needed`: it belongs to the principal's account, the credential lists
    /// it (or is account-wide) and its scope includes `needed`. A database of
    /// another account is `forbidden` (names are public: they are hostnames).
    pub async fn authorize(
        &self,
        principal: &Principal,
        database: &str,
        needed: Scope,
    ) -> Result<Database, Error> {
        let database = self.database_by_name(database).await?;
        if database.account_id != principal.account_id {
            return Err(Error::forbidden(format!(
                "database {:?} belongs to another account",
                database.name
            )));
        }
        principal.credential.check(&database.id, needed)?;
        Ok(database)
    }

    /// Refuses unless the credential is account-wide with at least `needed`.
    pub(crate) fn require_account_scope(
        &self,
        principal: &Principal,
        needed: Scope,
    ) -> Result<(), Error> {
        if !principal.credential.is_account_wide() {
            return Err(Error::forbidden(
                "this needs an account-wide credential; this API token lists databases",
            ));
        }
        if !principal.credential.scope().covers(needed) {
            return Err(Error::forbidden(format!(
                "this API token has scope {}; this needs {}",
                principal.credential.scope().as_str(),
                needed.as_str()
            )));
        }
        Ok(())
    }

    /// Refuses unless the principal is an operator acting with full rights.
    pub(crate) fn require_operator(&self, principal: &Principal) -> Result<(), Error> {
        if principal.role != Role::Operator {
            return Err(Error::forbidden("this needs the operator role"));
        }
        self.require_account_scope(principal, Scope::Admin)
    }

    async fn token_database_ids(&self, token_id: &TokenId) -> Result<Vec<DatabaseId>, Error> {
        let rows = sqlx::query("SELECT database_id FROM api_token_databases WHERE token_id = $1")
            .bind(token_id.as_str())
            .fetch_all(self.store.pool())
            .await
            .context("read the databases of an API token")?;
        rows.iter()
            .map(|row| get::<String>(row, "database_id").map(DatabaseId::from_stored))
            .collect()
    }
}

/// A client address as the audit log stores it.
pub(crate) fn ip_text(client_ip: Option<IpAddr>) -> Option<String> {
    client_ip.map(|ip| ip.to_string())
}

/// A column of a row, with the column named in the error.
pub(crate) fn get<T>(row: &AnyRow, column: &str) -> Result<T, Error>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(column)
        .map_err(|e| Error::Internal(format!("read column {column}: {e}")))
}

pub(crate) fn parse_scope(text: &str) -> Result<Scope, Error> {
    Scope::parse(text)
        .ok_or_else(|| Error::Internal(format!("unknown scope {text:?} in the store")))
}

/// Whether a store error is a UNIQUE violation (a taken name or email).
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.is_unique_violation())
}
