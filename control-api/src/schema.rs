//! The JSON bodies of the API, with their OpenAPI schemas.
//!
//! Owns: the request and response types and their conversion from the
//! control plane's records. Times are Unix milliseconds (`…_at_ms`);
//! identities are 64 hex digits.

use control_plane::{Account, AuditEntry, CreatedToken, Database, LoggedIn, TokenInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `confirmation_required`, `rate_limited`,
    /// `internal`.
    pub code: String,
    pub message: String,
}

/// `POST /signup`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SignupRequest {
    pub email: String,
    pub password: String,
    /// An operator's invitation (`orri_…`), needed when sign-up is by
    /// invitation only.
    #[serde(default)]
    pub invite: Option<String>,
}

/// `POST /login`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// `POST /account/password`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// An account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountJson {
    pub id: String,
    pub email: String,
    /// `member` or `operator`.
    pub role: String,
    /// The account's identity: the owner of its databases.
    pub identity: String,
    pub created_at_ms: i64,
}

impl From<Account> for AccountJson {
    fn from(account: Account) -> AccountJson {
        AccountJson {
            id: account.id.to_string(),
            email: account.email,
            role: account.role.as_str().to_owned(),
            identity: account.identity.to_hex().to_string(),
            created_at_ms: account.created_at_ms,
        }
    }
}

/// A new session: also set as the `orrery_session` cookie.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionJson {
    pub account: AccountJson,
    /// `orrs_…`: a bearer credential, shown here only.
    pub session: String,
    pub expires_at_ms: i64,
}

impl From<LoggedIn> for SessionJson {
    fn from(logged_in: LoggedIn) -> SessionJson {
        SessionJson {
            account: logged_in.account.into(),
            session: logged_in.session,
            expires_at_ms: logged_in.expires_at_ms,
        }
    }
}

/// `POST /tokens`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// A label for people (1 to 100 characters).
    pub name: String,
    /// `read`, `deploy` or `admin`.
    pub scope: String,
    /// The databases the token is for; absent: the whole account.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Seconds until the token expires; absent: never.
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

/// What is known of an API token (never the token itself).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenInfoJson {
    pub id: String,
    pub name: String,
    pub scope: String,
    /// `null`: account-wide; otherwise the current names of its databases.
    pub databases: Option<Vec<String>>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

impl From<TokenInfo> for TokenInfoJson {
    fn from(info: TokenInfo) -> TokenInfoJson {
        TokenInfoJson {
            id: info.id.to_string(),
            name: info.name,
            scope: info.scope.as_str().to_owned(),
            databases: info.databases,
            created_at_ms: info.created_at_ms,
            expires_at_ms: info.expires_at_ms,
            revoked_at_ms: info.revoked_at_ms,
            last_used_at_ms: info.last_used_at_ms,
        }
    }
}

/// A new API token: `token` is shown this once and never again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedTokenJson {
    pub id: String,
    /// The bearer token (`Authorization: Bearer …`, `spacetime login --token …`).
    pub token: String,
    pub name: String,
    pub scope: String,
    pub databases: Option<Vec<String>>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

impl From<CreatedToken> for CreatedTokenJson {
    fn from(created: CreatedToken) -> CreatedTokenJson {
        let info = TokenInfoJson::from(created.info);
        CreatedTokenJson {
            id: info.id,
            token: created.token,
            name: info.name,
            scope: info.scope,
            databases: info.databases,
            created_at_ms: info.created_at_ms,
            expires_at_ms: info.expires_at_ms,
        }
    }
}

/// `POST /databases`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateDatabase {
    /// A DNS label: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending
    /// with `-`.
    pub name: String,
    /// `local` (durable at the host's fsync; the object store gets it
    /// within a second) or `object-store` (durable once the object store
    /// holds it); absent: the host's default.
    #[serde(default)]
    pub durability: Option<String>,
    /// Days of point-in-time history to keep in the object store (0 keeps
    /// everything, at most 3650); absent: the host's default (7 for
    /// `orrery start`).
    #[serde(default)]
    pub retention_days: Option<u32>,
}

/// `PUT /databases/{name}/retention`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionRequest {
    /// Days of point-in-time history to keep (0 keeps everything, at most
    /// 3650).
    pub retention_days: u32,
}

/// `POST /databases/{name}/restore`: one of `snapshot`, `offset` and
/// `at`, and either `into` or `in_place`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreDatabase {
    /// A new database of the account to restore into (a DNS label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Restore the database itself: every client is disconnected, and the
    /// state it replaces stays restorable (`replaced_through`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_place: bool,
    /// A backup id, as the host's `GET /v1/database/{name}/backups` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Right after the transaction at this offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Right after the last transaction committed by this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// `POST /admin/restores`: a database of another object store (another
/// bucket or deployment) restored into a new database of the account
/// `account` names (the operator's without it); at most one of `snapshot`,
/// `offset` and `at` (none: the newest point).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFromStore {
    /// The other store: `s3://bucket/prefix` (credentials and endpoint
    /// from the host's `AWS_*` environment) or `file:///dir` on the host.
    pub store: String,
    /// The database's identity there (64 hex digits): its `db/<id>/`.
    pub database: String,
    /// The new database's name (a DNS label).
    pub into: String,
    /// The email of the account the new database belongs to; absent: the
    /// operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// What the control plane asks a host to import: the operator's request and
/// the owner identity of the new database.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostImport {
    pub owner: String,
    pub restore: RestoreFromStore,
}

/// What a restore did.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RestoredJson {
    /// The database that now holds the restored state.
    pub database: String,
    /// Its identity (hex).
    pub identity: String,
    /// Into a new database: the last transaction it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// In place: the last transaction of the restored point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_offset: Option<u64>,
    /// In place: the last transaction before the restore; restoring to it
    /// undoes the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_through: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_deleted: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_inserted: Option<u64>,
}

/// `PATCH /databases/{name}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DatabaseName {
    /// A DNS label: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending
    /// with `-`.
    pub name: String,
}

/// A database of an account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DatabaseJson {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub owner_identity: String,
    pub created_at_ms: i64,
    /// When an operator suspended it (no new publish), if it is.
    pub suspended_at_ms: Option<i64>,
    /// Its durability mode (`local`, `object-store`), if one was chosen.
    pub durability: Option<String>,
    /// Days of point-in-time history it keeps (0: everything), if chosen.
    pub retention_days: Option<u32>,
}

impl From<Database> for DatabaseJson {
    fn from(database: Database) -> DatabaseJson {
        DatabaseJson {
            id: database.id.to_string(),
            name: database.name,
            account_id: database.account_id.to_string(),
            owner_identity: database.owner_identity.to_hex().to_string(),
            created_at_ms: database.created_at_ms,
            suspended_at_ms: database.suspended_at_ms,
            durability: database.durability.map(|mode| mode.as_str().to_owned()),
            retention_days: database.retention_days,
        }
    }
}

/// One entry of the audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryJson {
    pub at_ms: i64,
    /// An account id, or `email:…` for a failed login.
    pub actor: String,
    /// `session` or an API token id.
    pub via: Option<String>,
    /// `publish`, `database.create`, `database.rename`, `database.delete`,
    /// `database.suspend`, `database.restore`, `token.create`,
    /// `token.revoke`, `login.failed`,
    /// `password.change`.
    pub action: String,
    pub target: Option<String>,
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

impl From<AuditEntry> for AuditEntryJson {
    fn from(entry: AuditEntry) -> AuditEntryJson {
        AuditEntryJson {
            at_ms: entry.at_ms,
            actor: entry.actor,
            via: entry.via,
            action: entry.action.as_str().to_owned(),
            target: entry.target,
            client_ip: entry.client_ip,
            detail: entry.detail,
        }
    }
}

/// `POST /admin/invites`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct InviteRequest {
    /// Only this email may use the invitation; absent: anyone.
    #[serde(default)]
    pub email: Option<String>,
}

/// A new invitation, shown once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InviteJson {
    /// `orri_…`: usable once within 7 days.
    pub invite: String,
}
