//! The audit log: who did what, when and from where.
//!
//! Owns: [`AuditAction`], writing entries (in the transaction of the action
//! they record, where there is one), and reading them newest first: an
//! account's admins read their account's entries, operators read all.
//! Recorded: publishes, database creation, renames, deletions and
//! suspensions, token creation and revocation, failed logins, password
//! changes.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection};

use crate::error::{Error, StoreContext};
use crate::ids::{AccountId, AuditId};
use crate::plane::{get, ControlPlane, Principal};
use crate::token::Scope;

/// Most entries one read returns.
pub const AUDIT_READ_ENTRIES_MAX: u32 = 1000;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    Publish,
    DatabaseCreate,
    DatabaseRename,
    DatabaseDelete,
    DatabaseSuspend,
    DatabaseRestore,
    DatabaseRetention,
    TokenCreate,
    TokenRevoke,
    LoginFailed,
    PasswordChange,
}

impl AuditAction {
    const ALL: [AuditAction; 11] = [
        AuditAction::Publish,
        AuditAction::DatabaseCreate,
        AuditAction::DatabaseRename,
        AuditAction::DatabaseDelete,
        AuditAction::DatabaseSuspend,
        AuditAction::DatabaseRestore,
        AuditAction::DatabaseRetention,
        AuditAction::TokenCreate,
        AuditAction::TokenRevoke,
        AuditAction::LoginFailed,
        AuditAction::PasswordChange,
    ];

    /// The stable name stored and shown (`database.rename`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Publish => "publish",
            AuditAction::DatabaseCreate => "database.create",
            AuditAction::DatabaseRename => "database.rename",
            AuditAction::DatabaseDelete => "database.delete",
            AuditAction::DatabaseSuspend => "database.suspend",
            AuditAction::DatabaseRestore => "database.restore",
            AuditAction::DatabaseRetention => "database.retention",
            AuditAction::TokenCreate => "token.create",
            AuditAction::TokenRevoke => "token.revoke",
            AuditAction::LoginFailed => "login.failed",
            AuditAction::PasswordChange => "password.change",
        }
    }

    fn parse(text: &str) -> Result<AuditAction, Error> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("unknown audit action {text:?} in the store")))
    }
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at_ms: i64,
    /// The account whose admins may read the entry.
    pub account_id: Option<AccountId>,
    /// Who: an account id, or `email:…` for a failed login.
    pub actor: String,
    /// With what: `session` or an API token id.
    pub via: Option<String>,
    pub action: AuditAction,
    /// On what: a database name, a token id.
    pub target: Option<String>,
    /// From where: the client's IP address.
    pub client_ip: Option<String>,
    pub detail: Option<String>,
}

/// An entry to write.
pub(crate) struct NewEntry {
    pub(crate) account_id: Option<AccountId>,
    pub(crate) actor: String,
    pub(crate) via: Option<String>,
    pub(crate) action: AuditAction,
    pub(crate) target: Option<String>,
    pub(crate) client_ip: Option<String>,
    pub(crate) detail: Option<String>,
}

impl NewEntry {
    /// An entry for something `principal` did to `target`.
    pub(crate) fn by(
        principal: &Principal,
        action: AuditAction,
        target: impl Into<String>,
        client_ip: Option<String>,
    ) -> NewEntry {
        NewEntry {
            account_id: Some(principal.account_id.clone()),
            actor: principal.account_id.to_string(),
            via: Some(principal.via()),
            action,
            target: Some(target.into()),
            client_ip,
            detail: None,
        }
    }

    pub(crate) fn detail(self, detail: impl Into<String>) -> NewEntry {
        NewEntry {
            detail: Some(detail.into()),
            ..self
        }
    }
}

impl ControlPlane {
    /// The account's audit log, newest first, at most `limit` entries (1 to
    /// 1000). Needs an account-wide admin credential.
    pub async fn audit_log(
        &self,
        principal: &Principal,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, Error> {
        self.require_account_scope(principal, Scope::Admin)?;
        let rows = sqlx::query(
            "SELECT at, account_id, actor, via, action, target, client_ip, detail FROM audit_log \
             WHERE account_id = $1 ORDER BY at DESC, seq DESC LIMIT $2",
        )
        .bind(principal.account_id.as_str())
        .bind(i64::from(clamp_limit(limit)))
        .fetch_all(self.store.pool())
        .await
        .context("read the audit log")?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Operator: the whole platform's audit log, newest first.
    pub async fn operator_audit_log(
        &self,
        principal: &Principal,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, Error> {
        self.require_operator(principal)?;
        let rows = sqlx::query(
            "SELECT at, account_id, actor, via, action, target, client_ip, detail FROM audit_log \
             ORDER BY at DESC, seq DESC LIMIT $1",
        )
        .bind(i64::from(clamp_limit(limit)))
        .fetch_all(self.store.pool())
        .await
        .context("read the audit log")?;
        rows.iter().map(entry_from_row).collect()
    }

    /// Writes an entry on its own.
    pub(crate) async fn record(&self, entry: NewEntry) -> Result<(), Error> {
        let mut connection = self
            .store
            .pool()
            .acquire()
            .await
            .context("write the audit log")?;
        self.record_in(&mut connection, entry).await
    }

    /// Writes an entry on `connection` (a transaction's, so the entry
    /// commits with what it records).
    pub(crate) async fn record_in(
        &self,
        connection: &mut AnyConnection,
        entry: NewEntry,
    ) -> Result<(), Error> {
        // `seq` orders entries of one millisecond; two writers racing may
        // take the same one, which leaves only their order undecided.
        let seq: i64 =
            sqlx::query_scalar::<Any, i64>("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log")
                .fetch_one(&mut *connection)
                .await
                .context("number an audit entry")?;
        sqlx::query(
            "INSERT INTO audit_log (id, seq, at, account_id, actor, via, action, target, \
             client_ip, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(AuditId::generate().as_str())
        .bind(seq)
        .bind(self.now_ms())
        .bind(entry.account_id.as_ref().map(|id| id.as_str()))
        .bind(&entry.actor)
        .bind(entry.via.as_deref())
        .bind(entry.action.as_str())
        .bind(entry.target.as_deref())
        .bind(entry.client_ip.as_deref())
        .bind(entry.detail.as_deref())
        .execute(&mut *connection)
        .await
        .context("write the audit log")?;
        Ok(())
    }
}

fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, AUDIT_READ_ENTRIES_MAX)
}

fn entry_from_row(row: &AnyRow) -> Result<AuditEntry, Error> {
    Ok(AuditEntry {
        at_ms: get(row, "at")?,
        account_id: get::<Option<String>>(row, "account_id")?.map(AccountId::from_stored),
        actor: get(row, "actor")?,
        via: get(row, "via")?,
        action: AuditAction::parse(&get::<String>(row, "action")?)?,
        target: get(row, "target")?,
        client_ip: get(row, "client_ip")?,
        detail: get(row, "detail")?,
    })
}
