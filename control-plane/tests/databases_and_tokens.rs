//! Databases, API tokens, scopes and publishes, on SQLite and PostgreSQL.
//!
//! Protects: names (DNS labels, unique platform-wide), rename and delete,
//! tokens (shown once, account-wide or listed, scopes, expiry, revocation,
//! last use), the refusals of the list (a token for A used on B, a
//! read token publishing, revoked and expired tokens), first publish
//! creating a database, module versions, and the audit log's order.

#[path = "support/harness.rs"]
mod harness;

use control_plane::{
    AuditAction, Credential, Error, NewToken, Principal, Scope, TokenDatabases, Unauthenticated,
};
use harness::Harness;

const PASSWORD: &str = "correct horse 7";
const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

on_both_backends!(control_plane::SignupMode::Open =>
    database_names_are_dns_labels_unique_platform_wide,
    rename_and_delete,
    token_lifecycle,
    expired_tokens_are_refused,
    a_token_for_a_used_on_b_is_forbidden,
    a_read_token_cannot_publish,
    first_publish_creates_the_database,
    publishes_record_versions,
    concurrent_publishes_get_distinct_versions,
    audit_log_is_newest_first_and_per_account,
    account_level_actions_need_account_wide_admin,
    settings_are_kept_and_bounded,
);

async fn account(h: &Harness, email: &str) -> Principal {
    let logged_in = h.cp.signup(email, PASSWORD, None, None).await.unwrap();
    h.cp.authenticate(&logged_in.session).await.unwrap()
}

async fn token(
    h: &Harness,
    owner: &Principal,
    scope: Scope,
    databases: Option<&[&str]>,
    expires_in_ms: Option<i64>,
) -> (String, Principal) {
    let created =
        h.cp.create_token(
            owner,
            NewToken {
                name: format!("{} token", scope.as_str()),
                scope,
                databases: databases.map(|names| names.iter().map(|n| n.to_string()).collect()),
                expires_in_ms,
            },
            None,
        )
        .await
        .unwrap();
    let principal = h.cp.authenticate(&created.token).await.unwrap();
    (created.token, principal)
}

async fn database_names_are_dns_labels_unique_platform_wide(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let ben = account(&h, "ben@example.com").await;
    let chat = h.cp.create_database(&ann, "chat", None).await.unwrap();
    assert_eq!(chat.name, "chat");
    assert_eq!(chat.account_id, ann.account_id);
    assert_eq!(chat.owner_identity, ann.identity);
    assert!(chat.id.as_str().starts_with("db_"));

    let taken = h.cp.create_database(&ben, "chat", None).await.unwrap_err();
    assert!(matches!(taken, Error::Conflict(_)), "{taken}");
    assert_eq!(taken.code().http_status(), 409);
    for bad in [
        "Chat",
        "-chat",
        "chat-",
        "my_chat",
        "a.b",
        "",
        &"x".repeat(64),
    ] {
        let error = h.cp.create_database(&ben, bad, None).await.unwrap_err();
        assert!(
            matches!(error, Error::InvalidName { .. }),
            "{bad:?}: {error}"
        );
        assert_eq!(error.code().http_status(), 400);
    }
    // Nothing was created by the refusals.
    assert!(h.cp.list_databases(&ben).await.unwrap().is_empty());
    assert_eq!(h.cp.list_databases(&ann).await.unwrap(), vec![chat.clone()]);
    // Another account's database is not theirs to read.
    let error = h.cp.get_database(&ben, "chat").await.unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    let error = h.cp.get_database(&ben, "nothing").await.unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert_eq!(h.cp.get_database(&ann, "chat").await.unwrap(), chat);
}

async fn rename_and_delete(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let ben = account(&h, "ben@example.com").await;
    let chat = h.cp.create_database(&ann, "chat", None).await.unwrap();
    h.cp.create_database(&ben, "taken", None).await.unwrap();
    let (_, listed) = token(&h, &ann, Scope::Read, Some(&["chat"]), None).await;

    let error =
        h.cp.rename_database(&ann, "chat", "taken", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error}");
    let error =
        h.cp.rename_database(&ann, "chat", "Bad Name", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::InvalidName { .. }), "{error}");
    let error =
        h.cp.rename_database(&ben, "chat", "stolen", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");

    let renamed =
        h.cp.rename_database(&ann, "chat", "chat-2", None)
            .await
            .unwrap();
    assert_eq!(renamed.id, chat.id);
    assert_eq!(renamed.name, "chat-2");
    assert!(matches!(
        h.cp.get_database(&ann, "chat").await,
        Err(Error::NotFound { .. })
    ));
    // A token listing the database keeps it across the rename.
    assert_eq!(
        h.cp.get_database(&listed, "chat-2").await.unwrap().id,
        chat.id
    );

    h.cp.record_publish(&ann, "chat-2", SHA_A, None)
        .await
        .unwrap();
    let error =
        h.cp.delete_database(&ben, "chat-2", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    h.cp.delete_database(&ann, "chat-2", None).await.unwrap();
    assert!(h.cp.list_databases(&ann).await.unwrap().is_empty());
    assert!(h.cp.list_databases(&listed).await.unwrap().is_empty());
    // The name is free again, for anyone.
    h.cp.create_database(&ben, "chat-2", None).await.unwrap();
}

async fn token_lifecycle(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let created =
        h.cp.create_token(
            &ann,
            NewToken {
                name: "ci".into(),
                scope: Scope::Deploy,
                databases: None,
                expires_in_ms: None,
            },
            Some("192.0.2.44".parse().unwrap()),
        )
        .await
        .unwrap();
    assert!(created
        .token
        .starts_with(&format!("{}.", control_plane::API_TOKEN_PREFIX)));
    assert!(created.info.id.as_str().starts_with("tok_"));
    let claims = control_plane::token::parse_api_token(&created.token).unwrap();
    assert_eq!(claims.token_id, created.info.id);
    assert_eq!(claims.account_id, ann.account_id);
    assert_eq!(claims.hex_identity, ann.identity.to_hex().to_string());
    assert_eq!(claims.issued_at_s, harness::START_MS / 1000);
    assert_eq!(claims.expires_at_s, None);

    let listed = h.cp.list_tokens(&ann).await.unwrap();
    assert_eq!(listed, vec![created.info.clone()]);
    assert_eq!(listed[0].last_used_at_ms, None);

    h.clock.advance_ms(5_000);
    let who = h.cp.authenticate(&created.token).await.unwrap();
    assert_eq!(who.account_id, ann.account_id);
    assert_eq!(who.identity, ann.identity);
    assert_eq!(
        who.credential,
        Credential::ApiToken {
            token_id: created.info.id.clone(),
            scope: Scope::Deploy,
            databases: TokenDatabases::All,
        }
    );
    let listed = h.cp.list_tokens(&ann).await.unwrap();
    assert_eq!(listed[0].last_used_at_ms, Some(harness::START_MS + 5_000));

    // Revoking another account's token finds nothing.
    let ben = account(&h, "ben@example.com").await;
    let error =
        h.cp.revoke_token(&ben, created.info.id.as_str(), None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    h.cp.authenticate(&created.token).await.unwrap();

    h.cp.revoke_token(&ann, created.info.id.as_str(), None)
        .await
        .unwrap();
    let error = h.cp.authenticate(&created.token).await.unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized(Unauthenticated::Revoked)),
        "{error}"
    );
    assert_eq!(error.code().http_status(), 401);
    // Revoking again changes nothing and writes no second entry.
    h.cp.revoke_token(&ann, created.info.id.as_str(), None)
        .await
        .unwrap();
    let listed = h.cp.list_tokens(&ann).await.unwrap();
    assert_eq!(listed[0].revoked_at_ms, Some(harness::START_MS + 5_000));
    let entries = h.cp.audit_log(&ann, 10).await.unwrap();
    let actions: Vec<_> = entries.iter().map(|entry| entry.action).collect();
    assert_eq!(
        actions,
        [AuditAction::TokenRevoke, AuditAction::TokenCreate]
    );
    assert_eq!(entries[1].client_ip.as_deref(), Some("192.0.2.44"));
    assert_eq!(entries[1].target.as_deref(), Some(created.info.id.as_str()));
    assert_eq!(entries[1].via.as_deref(), Some("session"));
}

async fn expired_tokens_are_refused(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let (token, _) = token(&h, &ann, Scope::Admin, None, Some(3_600_000)).await;
    let claims = control_plane::token::parse_api_token(&token).unwrap();
    assert_eq!(claims.expires_at_s, Some(harness::START_MS / 1000 + 3_600));
    h.clock.advance_ms(3_600_000 - 1);
    h.cp.authenticate(&token).await.unwrap();
    h.clock.advance_ms(1);
    let error = h.cp.authenticate(&token).await.unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized(Unauthenticated::Expired)),
        "{error}"
    );
    for bad in [Some(0), Some(-5), Some(i64::MAX)] {
        let error =
            h.cp.create_token(
                &ann,
                NewToken {
                    name: "bad".into(),
                    scope: Scope::Read,
                    databases: None,
                    expires_in_ms: bad,
                },
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(error.code().as_str(), "invalid_request", "{bad:?}: {error}");
    }
}

async fn a_token_for_a_used_on_b_is_forbidden(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "alpha", None).await.unwrap();
    h.cp.create_database(&ann, "beta", None).await.unwrap();
    let (_, alpha_only) = token(&h, &ann, Scope::Admin, Some(&["alpha"]), None).await;
    let Credential::ApiToken { databases, .. } = &alpha_only.credential else {
        panic!("a token principal");
    };
    assert!(matches!(databases, TokenDatabases::Listed(ids) if ids.len() == 1));

    h.cp.authorize(&alpha_only, "alpha", Scope::Admin)
        .await
        .unwrap();
    for needed in Scope::ALL {
        let error =
            h.cp.authorize(&alpha_only, "beta", needed)
                .await
                .unwrap_err();
        assert!(matches!(error, Error::Forbidden(_)), "{needed:?}: {error}");
        assert_eq!(error.code().http_status(), 403);
    }
    let error =
        h.cp.record_publish(&alpha_only, "beta", SHA_A, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    let error =
        h.cp.delete_database(&alpha_only, "beta", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    // Nothing changed on beta; the token sees only alpha.
    assert!(h.cp.module_versions(&ann, "beta").await.unwrap().is_empty());
    let names: Vec<String> =
        h.cp.list_databases(&alpha_only)
            .await
            .unwrap()
            .into_iter()
            .map(|database| database.name)
            .collect();
    assert_eq!(names, ["alpha"]);
    // A listed token cannot create databases, even by first publish.
    let error =
        h.cp.create_database(&alpha_only, "gamma", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    let error =
        h.cp.record_publish(&alpha_only, "gamma", SHA_A, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    // A token cannot list another account's database.
    let ben = account(&h, "ben@example.com").await;
    let error =
        h.cp.create_token(
            &ben,
            NewToken {
                name: "theirs".into(),
                scope: Scope::Read,
                databases: Some(vec!["alpha".into()]),
                expires_in_ms: None,
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
}

async fn a_read_token_cannot_publish(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "chat", None).await.unwrap();
    let (_, reader) = token(&h, &ann, Scope::Read, None, None).await;
    h.cp.get_database(&reader, "chat").await.unwrap();
    let error =
        h.cp.record_publish(&reader, "chat", SHA_A, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    assert!(error.to_string().contains("read"), "{error}");
    let error =
        h.cp.authorize(&reader, "chat", Scope::Deploy)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    let error =
        h.cp.create_database(&reader, "other", None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    // Nothing changed.
    assert!(h.cp.module_versions(&ann, "chat").await.unwrap().is_empty());
    assert_eq!(h.cp.list_databases(&ann).await.unwrap().len(), 1);
}

async fn first_publish_creates_the_database(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let (_, deployer) = token(&h, &ann, Scope::Deploy, None, None).await;
    let version =
        h.cp.record_publish(
            &deployer,
            "fresh",
            SHA_A,
            Some("192.0.2.9".parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(version.version, 1);
    let database = h.cp.get_database(&ann, "fresh").await.unwrap();
    assert_eq!(database.id, version.database_id);
    assert_eq!(database.owner_identity, ann.identity);
    let error =
        h.cp.record_publish(&deployer, "Not_A_Label", SHA_A, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::InvalidName { .. }), "{error}");
    let actions: Vec<_> =
        h.cp.audit_log(&ann, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|entry| (entry.action, entry.via.unwrap_or_default()))
            .collect();
    let token_id = match &deployer.credential {
        Credential::ApiToken { token_id, .. } => token_id.to_string(),
        Credential::Session { .. } => unreachable!(),
    };
    assert_eq!(
        actions,
        [
            (AuditAction::Publish, token_id.clone()),
            (AuditAction::DatabaseCreate, token_id),
            (AuditAction::TokenCreate, "session".to_owned()),
        ]
    );
}

async fn publishes_record_versions(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "chat", None).await.unwrap();
    let first =
        h.cp.record_publish(&ann, "chat", SHA_A, None)
            .await
            .unwrap();
    h.clock.advance_ms(1_000);
    let second =
        h.cp.record_publish(&ann, "chat", SHA_B, None)
            .await
            .unwrap();
    assert_eq!((first.version, second.version), (1, 2));
    assert_eq!(second.published_by, ann.account_id);
    assert_eq!(second.published_at_ms, harness::START_MS + 1_000);
    let versions = h.cp.module_versions(&ann, "chat").await.unwrap();
    assert_eq!(versions, vec![second.clone(), first.clone()]);
    for bad in ["", "ABCD", &SHA_A.to_uppercase(), &SHA_A[1..]] {
        let error =
            h.cp.record_publish(&ann, "chat", bad, None)
                .await
                .unwrap_err();
        assert_eq!(error.code().as_str(), "invalid_request", "{bad}: {error}");
    }
    let entries = h.cp.audit_log(&ann, 1).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].action, AuditAction::Publish);
    assert_eq!(entries[0].target.as_deref(), Some("chat"));
    assert_eq!(
        entries[0].detail.as_deref(),
        Some(format!("version 2 sha256 {SHA_B}").as_str())
    );
}

async fn concurrent_publishes_get_distinct_versions(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "chat", None).await.unwrap();
    let mut publishes = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let cp = h.cp.clone();
        let ann = ann.clone();
        publishes.spawn(async move { cp.record_publish(&ann, "chat", SHA_A, None).await });
    }
    let mut versions = Vec::new();
    while let Some(published) = publishes.join_next().await {
        versions.push(published.unwrap().expect("a concurrent publish").version);
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<i64>>());
    assert_eq!(h.cp.audit_log(&ann, 100).await.unwrap().len(), 9);
}

async fn audit_log_is_newest_first_and_per_account(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let ben = account(&h, "ben@example.com").await;
    // Several entries in the same millisecond keep their order.
    h.cp.create_database(&ann, "one", None).await.unwrap();
    h.cp.rename_database(&ann, "one", "two", None)
        .await
        .unwrap();
    h.cp.record_publish(&ann, "two", SHA_A, None).await.unwrap();
    h.clock.advance_ms(10);
    h.cp.delete_database(&ann, "two", None).await.unwrap();
    h.cp.create_database(&ben, "bens", None).await.unwrap();

    let entries = h.cp.audit_log(&ann, 100).await.unwrap();
    let actions: Vec<_> = entries.iter().map(|entry| entry.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::DatabaseDelete,
            AuditAction::Publish,
            AuditAction::DatabaseRename,
            AuditAction::DatabaseCreate,
        ]
    );
    assert_eq!(entries[0].at_ms, harness::START_MS + 10);
    assert_eq!(entries[2].detail.as_deref(), Some("renamed from one"));
    assert!(entries
        .iter()
        .all(|entry| entry.actor == ann.account_id.as_str()));
    assert_eq!(h.cp.audit_log(&ann, 2).await.unwrap(), entries[..2]);
    assert_eq!(h.cp.audit_log(&ben, 100).await.unwrap().len(), 1);
}

async fn account_level_actions_need_account_wide_admin(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    h.cp.create_database(&ann, "chat", None).await.unwrap();
    let (_, deployer) = token(&h, &ann, Scope::Deploy, None, None).await;
    let (_, listed_admin) = token(&h, &ann, Scope::Admin, Some(&["chat"]), None).await;
    let (_, admin) = token(&h, &ann, Scope::Admin, None, None).await;
    for principal in [&deployer, &listed_admin] {
        assert!(matches!(
            h.cp.audit_log(principal, 10).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            h.cp.list_tokens(principal).await,
            Err(Error::Forbidden(_))
        ));
        let error =
            h.cp.create_token(
                principal,
                NewToken {
                    name: "escalate".into(),
                    scope: Scope::Admin,
                    databases: None,
                    expires_in_ms: None,
                },
                None,
            )
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Forbidden(_)), "{error}");
        // Logout and password changes are for sessions: a valid credential
        // without that right (403, as the API documents).
        assert_eq!(
            h.cp.logout(principal).await.unwrap_err().code().as_str(),
            "forbidden"
        );
    }
    assert_eq!(h.cp.list_tokens(&admin).await.unwrap().len(), 3);
    h.cp.audit_log(&admin, 10).await.unwrap();
    // Operator functions are refused to members, whatever the credential.
    for principal in [&ann, &admin] {
        assert!(matches!(
            h.cp.list_accounts(principal).await,
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            h.cp.suspend_database(principal, "chat", None).await,
            Err(Error::Forbidden(_))
        ));
    }
}

/// A database's durability mode and retention are stored as chosen (each
/// absent leaves it to the host), read back by every query, and a
/// retention over the ceiling is refused with nothing created.
async fn settings_are_kept_and_bounded(h: Harness) {
    let ann = account(&h, "ann@example.com").await;
    let chosen = orrery_api::DatabaseSettings {
        durability: Some(orrery_api::Durability::ObjectStore),
        retention_days: Some(30),
    };
    let made =
        h.cp.create_database_with(&ann, "ledger", chosen, None)
            .await
            .unwrap();
    assert_eq!(made.settings(), chosen);
    let read = h.cp.get_database(&ann, "ledger").await.unwrap();
    assert_eq!(read.settings(), chosen);
    let plain = h.cp.create_database(&ann, "plain", None).await.unwrap();
    assert_eq!(plain.settings(), orrery_api::DatabaseSettings::default());
    let forever = orrery_api::DatabaseSettings {
        retention_days: Some(0),
        ..Default::default()
    };
    h.cp.create_database_with(&ann, "forever", forever, None)
        .await
        .unwrap();
    let listed = h.cp.list_databases(&ann).await.unwrap();
    let forever_read = listed.iter().find(|d| d.name == "forever").unwrap();
    assert_eq!(forever_read.retention_days, Some(0));
    let too_long = orrery_api::DatabaseSettings {
        retention_days: Some(orrery_api::limits::RETENTION_DAYS_MAX + 1),
        ..Default::default()
    };
    let error =
        h.cp.create_database_with(&ann, "ancient", too_long, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)), "{error}");
    assert!(h.cp.get_database(&ann, "ancient").await.is_err());
    // Changed later by an admin credential, recorded in the audit log.
    let changed = h.cp.set_retention(&ann, "plain", 90, None).await.unwrap();
    assert_eq!(changed.retention_days, Some(90));
    let read = h.cp.get_database(&ann, "plain").await.unwrap();
    assert_eq!(read.retention_days, Some(90));
    let error =
        h.cp.set_retention(
            &ann,
            "plain",
            orrery_api::limits::RETENTION_DAYS_MAX + 1,
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidRequest(_)), "{error}");
    let (_, reader) = token(&h, &ann, Scope::Read, None, None).await;
    let error =
        h.cp.set_retention(&reader, "plain", 1, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    let log = h.cp.audit_log(&ann, 10).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == AuditAction::DatabaseRetention
                && e.target.as_deref() == Some("plain")
                && e.detail.as_deref() == Some("90 days (was the host's default)")),
        "{log:?}"
    );
}
