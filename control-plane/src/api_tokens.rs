//! API tokens: create (shown once), list, revoke.
//!
//! Owns: the rules of token creation (a name, a scope, account-wide or
//! listed databases of the account, an optional expiry) and the rows of
//! `api_tokens` and `api_token_databases`. Their format is [`crate::token`];
//! checking them is [`ControlPlane::authenticate`].
//! Managing tokens needs an account-wide admin credential.

use std::net::IpAddr;

use sqlx::any::AnyRow;

use crate::audit::{AuditAction, NewEntry};
use crate::error::{Error, StoreContext};
use crate::ids::TokenId;
use crate::plane::{
    get, ip_text, parse_scope, ControlPlane, CreatedToken, NewToken, Principal, TokenInfo,
};
use crate::token::{self, Scope};

/// Longest token name, in characters.
pub const TOKEN_NAME_CHARS_MAX: usize = 100;
/// Most databases one token lists.
pub const TOKEN_DATABASES_MAX: usize = 100;
/// Longest lifetime a token may be given: 10 years.
pub const TOKEN_LIFETIME_MS_MAX: i64 = 10 * 366 * 24 * 60 * 60 * 1000;

impl ControlPlane {
    /// Creates an API token. The returned `token` is the only time it is
    /// shown; the store keeps its SHA-256.
    pub async fn create_token(
        &self,
        principal: &Principal,
        request: NewToken,
        client_ip: Option<IpAddr>,
    ) -> Result<CreatedToken, Error> {
        self.require_account_scope(principal, Scope::Admin)?;
        let name = request.name.trim();
        if name.is_empty()
            || name.chars().count() > TOKEN_NAME_CHARS_MAX
            || name.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "a token name is 1 to 100 characters, without control characters",
            ));
        }
        if let Some(expires_in_ms) = request.expires_in_ms {
            if !(1..=TOKEN_LIFETIME_MS_MAX).contains(&expires_in_ms) {
                return Err(Error::invalid(
                    "a token expires between 1 ms and 10 years after its creation",
                ));
            }
        }
        let databases = match &request.databases {
            None => None,
            Some(names) => {
                if names.is_empty() || names.len() > TOKEN_DATABASES_MAX {
                    return Err(Error::invalid(
                        "a token lists 1 to 100 databases, or none for the whole account",
                    ));
                }
                let mut listed = Vec::with_capacity(names.len());
                for name in names {
                    let database = self.database_by_name(name).await?;
                    if database.account_id != principal.account_id {
                        return Err(Error::forbidden(format!(
                            "database {name:?} belongs to another account"
                        )));
                    }
                    if !listed.contains(&database) {
                        listed.push(database);
                    }
                }
                Some(listed)
            }
        };
        let now = self.now_ms();
        let expires_at_ms = request.expires_in_ms.map(|ms| now + ms);
        let (token_id, token) = token::mint_api_token(
            &principal.account_id,
            now.div_euclid(1000),
            expires_at_ms.map(|ms| ms.div_euclid(1000)),
        )?;
        let mut tx = self.store.begin_write().await?;
        sqlx::query(
            "INSERT INTO api_tokens (id, account_id, name, token_hash, scope, all_databases, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token_id.as_str())
        .bind(principal.account_id.as_str())
        .bind(name)
        .bind(token::secret_hash(&token))
        .bind(request.scope.as_str())
        .bind(i64::from(databases.is_none()))
        .bind(now)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await
        .context("insert an API token")?;
        for database in databases.iter().flatten() {
            sqlx::query("INSERT INTO api_token_databases (token_id, database_id) VALUES ($1, $2)")
                .bind(token_id.as_str())
                .bind(database.id.as_str())
                .execute(&mut *tx)
                .await
                .context("list a database on an API token")?;
        }
        let listed_names = databases
            .as_ref()
            .map(|databases| databases.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
        let detail = format!(
            "name {name:?}, scope {}, databases {}, expires {}",
            request.scope.as_str(),
            listed_names
                .as_ref()
                .map_or_else(|| "all".to_owned(), |names| names.join(",")),
            expires_at_ms.map_or_else(|| "never".to_owned(), |ms| ms.to_string()),
        );
        self.record_in(
            &mut tx,
            NewEntry::by(
                principal,
                AuditAction::TokenCreate,
                token_id.as_str(),
                ip_text(client_ip),
            )
            .detail(detail),
        )
        .await?;
        tx.commit().await.context("commit a token creation")?;
        Ok(CreatedToken {
            info: TokenInfo {
                id: token_id,
                name: name.to_owned(),
                scope: request.scope,
                databases: listed_names,
                created_at_ms: now,
                expires_at_ms,
                revoked_at_ms: None,
                last_used_at_ms: None,
            },
            token,
        })
    }

    /// The account's API tokens, newest first, revoked ones included.
    pub async fn list_tokens(&self, principal: &Principal) -> Result<Vec<TokenInfo>, Error> {
        self.require_account_scope(principal, Scope::Admin)?;
        let rows = sqlx::query(
            "SELECT id, name, scope, all_databases, created_at, expires_at, revoked_at, \
             last_used_at FROM api_tokens WHERE account_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(principal.account_id.as_str())
        .fetch_all(self.store.pool())
        .await
        .context("list API tokens")?;
        let mut tokens = Vec::with_capacity(rows.len());
        for row in &rows {
            tokens.push(self.token_info_from_row(row).await?);
        }
        Ok(tokens)
    }

    /// Revokes an API token of the account; it is refused from then on.
    /// Revoking a revoked token changes nothing.
    pub async fn revoke_token(
        &self,
        principal: &Principal,
        token_id: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<(), Error> {
        self.require_account_scope(principal, Scope::Admin)?;
        let mut tx = self.store.begin_write().await?;
        let exists = sqlx::query("SELECT id FROM api_tokens WHERE id = $1 AND account_id = $2")
            .bind(token_id)
            .bind(principal.account_id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("look up an API token")?;
        if exists.is_none() {
            return Err(Error::NotFound {
                what: "API token",
                name: token_id.to_owned(),
            });
        }
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(self.now_ms())
        .bind(token_id)
        .execute(&mut *tx)
        .await
        .context("revoke an API token")?;
        if revoked.rows_affected() == 1 {
            self.record_in(
                &mut tx,
                NewEntry::by(
                    principal,
                    AuditAction::TokenRevoke,
                    token_id,
                    ip_text(client_ip),
                ),
            )
            .await?;
        }
        tx.commit().await.context("commit a revocation")?;
        Ok(())
    }

    async fn token_info_from_row(&self, row: &AnyRow) -> Result<TokenInfo, Error> {
        let id = TokenId::from_stored(get::<String>(row, "id")?);
        let databases = if get::<i64>(row, "all_databases")? != 0 {
            None
        } else {
            let rows = sqlx::query(
                "SELECT d.name FROM api_token_databases t JOIN databases d ON d.id = t.database_id \
                 WHERE t.token_id = $1 ORDER BY d.name",
            )
            .bind(id.as_str())
            .fetch_all(self.store.pool())
            .await
            .context("read the databases of an API token")?;
            Some(
                rows.iter()
                    .map(|row| get::<String>(row, "name"))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(TokenInfo {
            id,
            name: get(row, "name")?,
            scope: parse_scope(&get::<String>(row, "scope")?)?,
            databases,
            created_at_ms: get(row, "created_at")?,
            expires_at_ms: get(row, "expires_at")?,
            revoked_at_ms: get(row, "revoked_at")?,
            last_used_at_ms: get(row, "last_used_at")?,
        })
    }
}
