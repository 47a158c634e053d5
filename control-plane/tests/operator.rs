//! Invite-only sign-up and the operator's functions, on SQLite and
//! PostgreSQL.
//!
//! Protects: sign-up refused without an invitation, invitations used once
//! and only by their email, the operator role (list accounts, suspend and
//! delete any database, read the whole audit log) and its refusal to
//! members.

#[path = "support/harness.rs"]
mod harness;

use control_plane::{AuditAction, Error, Principal, Role};
use harness::Harness;

const PASSWORD: &str = "correct horse 7";

on_both_backends!(control_plane::SignupMode::InviteOnly =>
    invite_only_signup,
    operator_functions,
);

async fn operator(h: &Harness) -> Principal {
    let account =
        h.cp.bootstrap_operator("root@example.com", PASSWORD)
            .await
            .unwrap();
    assert_eq!(account.role, Role::Operator);
    let logged_in =
        h.cp.login("root@example.com", PASSWORD, None)
            .await
            .unwrap();
    h.cp.authenticate(&logged_in.session).await.unwrap()
}

async fn invite_only_signup(h: Harness) {
    let root = operator(&h).await;
    let error =
        h.cp.signup("ann@example.com", PASSWORD, None, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    let error =
        h.cp.signup("ann@example.com", PASSWORD, Some("orri_made_up"), None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");

    let open = h.cp.create_invite(&root, None).await.unwrap();
    assert!(open.starts_with(control_plane::INVITE_PREFIX));
    let ann =
        h.cp.signup("ann@example.com", PASSWORD, Some(&open), None)
            .await
            .unwrap();
    assert_eq!(ann.account.role, Role::Member);
    // Used once only.
    let error =
        h.cp.signup("ben@example.com", PASSWORD, Some(&open), None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");

    // An invitation for an email is for that email only.
    let for_cy =
        h.cp.create_invite(&root, Some("Cy@Example.com"))
            .await
            .unwrap();
    let error =
        h.cp.signup("ben@example.com", PASSWORD, Some(&for_cy), None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    h.cp.signup("cy@example.com", PASSWORD, Some(&for_cy), None)
        .await
        .unwrap();

    // Invitations expire after 7 days.
    let late = h.cp.create_invite(&root, None).await.unwrap();
    h.clock.advance_ms(control_plane::INVITE_LIFETIME_MS);
    let error =
        h.cp.signup("dee@example.com", PASSWORD, Some(&late), None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");

    // Members cannot invite.
    let ann = h.cp.authenticate(&ann.session).await.unwrap();
    assert!(matches!(
        h.cp.create_invite(&ann, None).await,
        Err(Error::Forbidden(_))
    ));
}

async fn operator_functions(h: Harness) {
    let root = operator(&h).await;
    // Accounts are listed oldest first.
    h.clock.advance_ms(1);
    let invite = h.cp.create_invite(&root, None).await.unwrap();
    let ann =
        h.cp.signup("ann@example.com", PASSWORD, Some(&invite), None)
            .await
            .unwrap();
    let ann = h.cp.authenticate(&ann.session).await.unwrap();
    h.cp.create_database(&ann, "chat", None).await.unwrap();
    h.cp.create_database(&ann, "blog", None).await.unwrap();

    let emails: Vec<String> =
        h.cp.list_accounts(&root)
            .await
            .unwrap()
            .into_iter()
            .map(|account| account.email)
            .collect();
    assert_eq!(emails, ["root@example.com", "ann@example.com"]);
    assert!(matches!(
        h.cp.list_accounts(&ann).await,
        Err(Error::Forbidden(_))
    ));

    h.cp.suspend_database(&root, "chat", None).await.unwrap();
    let chat = h.cp.get_database(&ann, "chat").await.unwrap();
    assert_eq!(chat.suspended_at_ms, Some(harness::START_MS + 1));
    let error =
        h.cp.record_publish(&ann, "chat", &"a".repeat(64), None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::Forbidden(_)), "{error}");
    assert!(h.cp.module_versions(&ann, "chat").await.unwrap().is_empty());

    h.cp.operator_delete_database(&root, "blog", None)
        .await
        .unwrap();
    assert!(matches!(
        h.cp.get_database(&ann, "blog").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        h.cp.operator_delete_database(&root, "blog", None).await,
        Err(Error::NotFound { .. })
    ));

    // The account sees what the operator did to its databases.
    let actions: Vec<_> =
        h.cp.audit_log(&ann, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|entry| (entry.action, entry.actor))
            .collect();
    assert_eq!(
        actions[..2],
        [
            (AuditAction::DatabaseDelete, root.account_id.to_string()),
            (AuditAction::DatabaseSuspend, root.account_id.to_string()),
        ]
    );
    // Failed logins for unknown emails are for operators only.
    let _ = h.cp.login("ghost@example.com", PASSWORD, None).await;
    let all = h.cp.operator_audit_log(&root, 1).await.unwrap();
    assert_eq!(all[0].action, AuditAction::LoginFailed);
    assert_eq!(all[0].account_id, None);
    assert_eq!(all[0].actor, "email:ghost@example.com");
    assert!(matches!(
        h.cp.operator_audit_log(&ann, 1).await,
        Err(Error::Forbidden(_))
    ));
}
