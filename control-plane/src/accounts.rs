//! Accounts and sessions: sign-up (open or by invitation), login, logout,
//! password changes, and the operator's account functions.
//!
//! Owns: email normalisation, the login path (rate limits first, then
//! argon2 even for unknown emails, one `invalid_credentials` answer, a
//! failed login in the audit log), session creation and deletion.
//! Invariant: a login answer never depends on whether the email exists.

use std::net::IpAddr;

use sqlx::any::AnyRow;

use crate::audit::{AuditAction, NewEntry};
use crate::error::{Error, StoreContext};
use crate::ids::{random_hex, AccountId, InviteId, SessionId};
use crate::password::{self, check_password_rule};
use crate::plane::{
    get, ip_text, is_unique_violation, Account, ControlPlane, Credential, LoggedIn, Principal,
    Role, SignupMode, SESSION_LIFETIME_MS,
};
use crate::token;

/// Longest email address, in bytes (RFC 5321's path limit).
pub const EMAIL_BYTES_MAX: usize = 254;

/// How long an invitation stays usable: 7 days.
pub const INVITE_LIFETIME_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The start of every invitation code.
pub const INVITE_PREFIX: &str = "orri_";

impl ControlPlane {
    /// Creates an account and logs it in. In invite-only mode `invite` must
    /// be an unused, unexpired invitation (for this email, if it names one).
    /// Sign-ups are rate limited per client IP.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        invite: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Error> {
        self.limits.check_signup(client_ip)?;
        let email = valid_email(email)?;
        check_password_rule(password, &email)?;
        if self.signup_mode == SignupMode::InviteOnly && invite.is_none() {
            return Err(Error::forbidden(
                "sign-up is by invitation only; ask the operator for an invitation",
            ));
        }
        let hash = hash_off_thread(password.to_owned()).await?;
        self.create_account(&email, hash, Role::Member, invite)
            .await
    }

    /// Creates the operator's account, or makes an existing account an
    /// operator (its password unchanged). For the process that starts the
    /// control plane, from its configuration: not reachable from the API.
    pub async fn bootstrap_operator(&self, email: &str, password: &str) -> Result<Account, Error> {
        let email = valid_email(email)?;
        if let Some(row) = self.account_row_by_email(&email).await? {
            let account = account_from_row(&row)?;
            sqlx::query("UPDATE accounts SET role = $1 WHERE id = $2")
                .bind(Role::Operator.as_str())
                .bind(account.id.as_str())
                .execute(self.store.pool())
                .await
                .context("make an account an operator")?;
            return Ok(Account {
                role: Role::Operator,
                ..account
            });
        }
        check_password_rule(password, &email)?;
        let hash = hash_off_thread(password.to_owned()).await?;
        Ok(self
            .create_account(&email, hash, Role::Operator, None)
            .await?
            .account)
    }

    async fn create_account(
        &self,
        email: &str,
        password_hash: String,
        role: Role,
        invite: Option<&str>,
    ) -> Result<LoggedIn, Error> {
        let now = self.now_ms();
        let account_id = AccountId::generate();
        let mut tx = self.store.begin_write().await?;
        if let Some(code) = invite {
            let used = sqlx::query(
                "UPDATE invites SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
                 AND expires_at > $1 AND (email IS NULL OR email = $3)",
            )
            .bind(now)
            .bind(token::secret_hash(code))
            .bind(email)
            .execute(&mut *tx)
            .await
            .context("use an invitation")?;
            if used.rows_affected() != 1 {
                return Err(Error::forbidden(
                    "the invitation is unknown, used, expired or for another email",
                ));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, email, password_hash, role, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account_id.as_str())
        .bind(email)
        .bind(&password_hash)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(Error::Conflict(
                    "an account with this email exists; log in instead".into(),
                ))
            }
            other => other.context("insert an account")?,
        };
        let (session_id, session, expires_at_ms) = new_session(&mut tx, &account_id, now).await?;
        tx.commit().await.context("commit a sign-up")?;
        Ok(LoggedIn {
            account: Account {
                identity: token::account_identity(account_id.as_str()),
                id: account_id,
                email: email.to_owned(),
                role,
                created_at_ms: now,
            },
            session_id,
            session,
            expires_at_ms,
        })
    }

    /// Logs in with email and password. Rate limited per email and per
    /// client IP (`rate_limited` with a retry delay). A wrong password and
    /// an unknown email get the same `invalid_credentials` answer after the
    /// same work; the failure goes to the audit log.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<LoggedIn, Error> {
        let email = normalize_email(email);
        self.limits.check_login(&email, client_ip)?;
        let row = self.account_row_by_email(&email).await?;
        let stored_hash = row
            .as_ref()
            .map(|row| get::<String>(row, "password_hash"))
            .transpose()?;
        let matches = verify_off_thread(password.to_owned(), stored_hash).await?;
        // `verify_password` never matches without a stored hash.
        let (Some(row), true) = (&row, matches) else {
            let account_id = row
                .as_ref()
                .map(|row| get::<String>(row, "id"))
                .transpose()?;
            self.record(NewEntry {
                account_id: account_id.map(AccountId::from_stored),
                actor: format!("email:{email}"),
                via: None,
                action: AuditAction::LoginFailed,
                target: None,
                client_ip: ip_text(client_ip),
                detail: None,
            })
            .await?;
            return Err(Error::InvalidCredentials);
        };
        let account = account_from_row(row)?;
        let now = self.now_ms();
        let mut tx = self.store.begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND expires_at <= $2")
            .bind(account.id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("delete expired sessions")?;
        let (session_id, session, expires_at_ms) = new_session(&mut tx, &account.id, now).await?;
        tx.commit().await.context("commit a login")?;
        Ok(LoggedIn {
            account,
            session_id,
            session,
            expires_at_ms,
        })
    }

    /// Ends the principal's session.
    pub async fn logout(&self, principal: &Principal) -> Result<(), Error> {
        let session_id = session_of(principal)?;
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id.as_str())
            .execute(self.store.pool())
            .await
            .context("delete a session")?;
        Ok(())
    }

    /// Changes the principal's password (a session only) and deletes every
    /// other session of the account. A wrong current password is
    /// `invalid_credentials` and counts against the login rate limit.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current_password: &str,
        new_password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        let session_id = session_of(principal)?.clone();
        let row = self
            .account_row_by_id(&principal.account_id)
            .await?
            .ok_or_else(|| Error::Internal("the session's account is gone".into()))?;
        let account = account_from_row(&row)?;
        check_password_rule(new_password, &account.email)?;
        self.limits.check_login(&account.email, client_ip)?;
        let stored = get::<String>(&row, "password_hash")?;
        if !verify_off_thread(current_password.to_owned(), Some(stored)).await? {
            self.record(NewEntry {
                account_id: Some(account.id.clone()),
                actor: account.id.to_string(),
                via: Some(principal.via()),
                action: AuditAction::LoginFailed,
                target: None,
                client_ip: ip_text(client_ip),
                detail: Some("wrong current password on a password change".into()),
            })
            .await?;
            return Err(Error::InvalidCredentials);
        }
        let hash = hash_off_thread(new_password.to_owned()).await?;
        let mut tx = self.store.begin_write().await?;
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
            .bind(&hash)
            .bind(account.id.as_str())
            .execute(&mut *tx)
            .await
            .context("store a new password hash")?;
        sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
            .bind(account.id.as_str())
            .bind(session_id.as_str())
            .execute(&mut *tx)
            .await
            .context("delete the other sessions")?;
        self.record_in(
            &mut tx,
            NewEntry {
                account_id: Some(account.id.clone()),
                actor: account.id.to_string(),
                via: Some(principal.via()),
                action: AuditAction::PasswordChange,
                target: None,
                client_ip: ip_text(client_ip),
                detail: None,
            },
        )
        .await?;
        tx.commit().await.context("commit a password change")?;
        Ok(())
    }

    /// The principal's account.
    pub async fn account(&self, principal: &Principal) -> Result<Account, Error> {
        let row = self
            .account_row_by_id(&principal.account_id)
            .await?
            .ok_or_else(|| Error::Internal("the principal's account is gone".into()))?;
        account_from_row(&row)
    }

    /// Operator: an invitation code (`orri_…`, shown once), usable once
    /// within 7 days, for `email` only when given.
    pub async fn create_invite(
        &self,
        principal: &Principal,
        email: Option<&str>,
    ) -> Result<String, Error> {
        self.require_operator(principal)?;
        let email = email.map(valid_email).transpose()?;
        let code = format!("{INVITE_PREFIX}{}", random_hex(token::SECRET_BYTES));
        let now = self.now_ms();
        sqlx::query(
            "INSERT INTO invites (id, code_hash, email, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(InviteId::generate().as_str())
        .bind(token::secret_hash(&code))
        .bind(email)
        .bind(principal.account_id.as_str())
        .bind(now)
        .bind(now + INVITE_LIFETIME_MS)
        .execute(self.store.pool())
        .await
        .context("insert an invitation")?;
        Ok(code)
    }

    /// Operator: every account, oldest first.
    pub async fn list_accounts(&self, principal: &Principal) -> Result<Vec<Account>, Error> {
        self.require_operator(principal)?;
        let rows =
            sqlx::query("SELECT id, email, role, created_at FROM accounts ORDER BY created_at, id")
                .fetch_all(self.store.pool())
                .await
                .context("list accounts")?;
        rows.iter().map(account_from_row).collect()
    }

    pub(crate) async fn account_row_by_email(&self, email: &str) -> Result<Option<AnyRow>, Error> {
        sqlx::query(
            "SELECT id, email, password_hash, role, created_at FROM accounts WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(self.store.pool())
        .await
        .context("look up an account by email")
    }

    async fn account_row_by_id(&self, id: &AccountId) -> Result<Option<AnyRow>, Error> {
        sqlx::query("SELECT id, email, password_hash, role, created_at FROM accounts WHERE id = $1")
            .bind(id.as_str())
            .fetch_optional(self.store.pool())
            .await
            .context("look up an account")
    }
}

pub(crate) fn account_from_row(row: &AnyRow) -> Result<Account, Error> {
    let id = AccountId::from_stored(get::<String>(row, "id")?);
    Ok(Account {
        identity: token::account_identity(id.as_str()),
        id,
        email: get(row, "email")?,
        role: Role::parse(&get::<String>(row, "role")?)?,
        created_at_ms: get(row, "created_at")?,
    })
}

fn session_of(principal: &Principal) -> Result<&SessionId, Error> {
    match &principal.credential {
        Credential::Session { session_id } => Ok(session_id),
        Credential::ApiToken { .. } => Err(Error::forbidden(
            "this needs a login session, not an API token",
        )),
    }
}

async fn new_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    account_id: &AccountId,
    now: i64,
) -> Result<(SessionId, String, i64), Error> {
    let session_id = SessionId::generate();
    let secret = token::mint_session_secret();
    let expires_at = now + SESSION_LIFETIME_MS;
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, account_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(session_id.as_str())
    .bind(token::secret_hash(&secret))
    .bind(account_id.as_str())
    .bind(now)
    .bind(expires_at)
    .execute(&mut **tx)
    .await
    .context("insert a session")?;
    Ok((session_id, secret, expires_at))
}

/// Trimmed and lowercased: one account per address, however it is typed.
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A normalised email with one `@`, a non-empty local part and domain, no
/// whitespace or control characters, at most 254 bytes.
pub(crate) fn valid_email(email: &str) -> Result<String, Error> {
    let email = normalize_email(email);
    let well_formed = email.len() <= EMAIL_BYTES_MAX
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !well_formed {
        return Err(Error::invalid("the email address is not valid"));
    }
    Ok(email)
}

async fn hash_off_thread(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || password::hash_password(&password))
        .await
        .map_err(|e| Error::Internal(format!("hash a password: {e}")))?
}

async fn verify_off_thread(password: String, stored: Option<String>) -> Result<bool, Error> {
    tokio::task::spawn_blocking(move || password::verify_password(&password, stored.as_deref()))
        .await
        .map_err(|e| Error::Internal(format!("verify a password: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            valid_email("  Ann@Example.COM ").unwrap(),
            "ann@example.com"
        );
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "a b@c.d",
            "a@b@c",
            &format!("{}@x.y", "a".repeat(260)),
        ] {
            assert!(valid_email(bad).is_err(), "{bad}");
        }
    }
}
