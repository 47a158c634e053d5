//! Accounts, sessions and logins, on SQLite and on PostgreSQL.
//!
//! Protects: sign-up and its refusals, login with one generic answer for a
//! wrong password and an unknown email, the login rate limits, logout,
//! password changes ending other sessions, session expiry, and the audit
//! entries of failed logins.

#[path = "support/harness.rs"]
mod harness;

use std::net::IpAddr;

use control_plane::{
    AuditAction, Credential, Error, LoggedIn, Principal, Unauthenticated, PLATFORM_ISSUER,
    SESSION_LIFETIME_MS,
};
use harness::Harness;
use spacetimedb_lib::Identity;

const PASSWORD: &str = "correct horse 7";

on_both_backends!(control_plane::SignupMode::Open =>
    signup_logs_in_with_the_account_identity,
    signup_refusals,
    login_logout_and_sessions,
    wrong_password_and_unknown_email_get_the_same_answer,
    login_flood_is_rate_limited_per_email,
    login_flood_is_rate_limited_per_ip,
    signup_flood_is_rate_limited_per_ip,
    change_password_ends_other_sessions,
    sessions_expire_after_30_days,
    malformed_and_unknown_credentials,
);

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

async fn signup(h: &Harness, email: &str) -> LoggedIn {
    h.cp.signup(email, PASSWORD, None, ip("192.0.2.1"))
        .await
        .expect("sign up")
}

async fn principal(h: &Harness, bearer: &str) -> Principal {
    h.cp.authenticate(bearer).await.expect("authenticate")
}

async fn signup_logs_in_with_the_account_identity(h: Harness) {
    let logged_in = signup(&h, " Ann@Example.COM ").await;
    assert_eq!(logged_in.account.email, "ann@example.com");
    assert!(logged_in.session.starts_with("orrs_"));
    assert_eq!(logged_in.session.len(), 5 + 64);
    assert_eq!(
        logged_in.expires_at_ms,
        harness::START_MS + SESSION_LIFETIME_MS
    );
    let who = principal(&h, &logged_in.session).await;
    assert_eq!(who.account_id, logged_in.account.id);
    assert_eq!(
        who.identity,
        Identity::from_claims(PLATFORM_ISSUER, logged_in.account.id.as_str())
    );
    assert_eq!(logged_in.account.identity, who.identity);
    assert_eq!(
        who.credential,
        Credential::Session {
            session_id: logged_in.session_id.clone()
        }
    );
    assert_eq!(h.cp.account(&who).await.unwrap(), logged_in.account);
}

async fn signup_refusals(h: Harness) {
    signup(&h, "ann@example.com").await;
    let taken =
        h.cp.signup("ANN@example.com", "another pass 8", None, None)
            .await
            .unwrap_err();
    assert!(matches!(taken, Error::Conflict(_)), "{taken}");
    assert_eq!(taken.code().as_str(), "conflict");
    for weak in ["short1A", "alllowercaseletters", "ben@example.com"] {
        let error =
            h.cp.signup("ben@example.com", weak, None, None)
                .await
                .unwrap_err();
        assert!(matches!(error, Error::WeakPassword(_)), "{weak}: {error}");
        assert_eq!(error.code().as_str(), "invalid_request");
    }
    let error =
        h.cp.signup("not an email", PASSWORD, None, None)
            .await
            .unwrap_err();
    assert_eq!(error.code().as_str(), "invalid_request", "{error}");
    // Nothing was created by the refusals.
    let error =
        h.cp.login("ben@example.com", PASSWORD, None)
            .await
            .unwrap_err();
    assert!(matches!(error, Error::InvalidCredentials), "{error}");
}

async fn login_logout_and_sessions(h: Harness) {
    let first = signup(&h, "ann@example.com").await;
    let second =
        h.cp.login("Ann@Example.com", PASSWORD, ip("192.0.2.2"))
            .await
            .unwrap();
    assert_ne!(first.session, second.session);
    assert_eq!(first.account.id, second.account.id);
    let who = principal(&h, &second.session).await;
    h.cp.logout(&who).await.unwrap();
    let error = h.cp.authenticate(&second.session).await.unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized(Unauthenticated::Unknown)),
        "{error}"
    );
    // The other session lives on.
    principal(&h, &first.session).await;
}

async fn wrong_password_and_unknown_email_get_the_same_answer(h: Harness) {
    let ann = signup(&h, "ann@example.com").await;
    let wrong =
        h.cp.login("ann@example.com", "wrong horse 7", ip("198.51.100.9"))
            .await
            .unwrap_err();
    let unknown =
        h.cp.login("nobody@example.com", PASSWORD, ip("198.51.100.9"))
            .await
            .unwrap_err();
    assert!(matches!(wrong, Error::InvalidCredentials), "{wrong}");
    assert!(matches!(unknown, Error::InvalidCredentials), "{unknown}");
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(wrong.code(), unknown.code());
    assert_eq!(wrong.code().as_str(), "unauthorized");
    // The failed login on Ann's account is in her audit log, with where it
    // came from; the unknown email's is not.
    let who = principal(&h, &ann.session).await;
    let entries = h.cp.audit_log(&who, 10).await.unwrap();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].action, AuditAction::LoginFailed);
    assert_eq!(entries[0].actor, "email:ann@example.com");
    assert_eq!(entries[0].client_ip.as_deref(), Some("198.51.100.9"));
    assert_eq!(entries[0].at_ms, harness::START_MS);
}

async fn login_flood_is_rate_limited_per_email(h: Harness) {
    signup(&h, "ann@example.com").await;
    for attempt in 0..5 {
        let error =
            h.cp.login("ann@example.com", "wrong horse 7", None)
                .await
                .unwrap_err();
        assert!(
            matches!(error, Error::InvalidCredentials),
            "{attempt}: {error}"
        );
    }
    // Over the limit even the right password is refused, with a delay.
    let limited =
        h.cp.login("ann@example.com", PASSWORD, None)
            .await
            .unwrap_err();
    let Error::RateLimited { retry_after } = limited else {
        panic!("expected rate_limited, got {limited}");
    };
    assert_eq!(limited.code().as_str(), "rate_limited");
    assert_eq!(limited.code().http_status(), 429);
    assert!(
        retry_after.as_secs() >= 11 && retry_after.as_secs() <= 12,
        "{retry_after:?}"
    );
    // An unknown email is limited the same way (no difference to observe).
    for _ in 0..5 {
        let _ = h.cp.login("nobody@example.com", PASSWORD, None).await;
    }
    assert!(matches!(
        h.cp.login("nobody@example.com", PASSWORD, None).await,
        Err(Error::RateLimited { .. })
    ));
    h.clock.advance_ms(12_000);
    h.cp.login("ann@example.com", PASSWORD, None)
        .await
        .expect("one attempt refilled after 12 s");
}

async fn login_flood_is_rate_limited_per_ip(h: Harness) {
    signup(&h, "ann@example.com").await;
    let flooder = ip("203.0.113.5");
    for n in 0..20 {
        let error =
            h.cp.login(&format!("user{n}@example.com"), PASSWORD, flooder)
                .await
                .unwrap_err();
        assert!(matches!(error, Error::InvalidCredentials), "{n}: {error}");
    }
    let limited =
        h.cp.login("ann@example.com", PASSWORD, flooder)
            .await
            .unwrap_err();
    assert!(matches!(limited, Error::RateLimited { .. }), "{limited}");
    // Another address is not held back.
    h.cp.login("ann@example.com", PASSWORD, ip("203.0.113.6"))
        .await
        .unwrap();
}

async fn signup_flood_is_rate_limited_per_ip(h: Harness) {
    let flooder = ip("203.0.113.7");
    // Attempts count before anything else is checked, so refused ones too.
    for n in 0..20 {
        let error =
            h.cp.signup(&format!("not an email {n}"), PASSWORD, None, flooder)
                .await
                .unwrap_err();
        assert_eq!(error.code().as_str(), "invalid_request", "{n}: {error}");
    }
    let limited =
        h.cp.signup("ann@example.com", PASSWORD, None, flooder)
            .await
            .unwrap_err();
    assert!(matches!(limited, Error::RateLimited { .. }), "{limited}");
    h.clock.advance_ms(3_000);
    h.cp.signup("ann@example.com", PASSWORD, None, flooder)
        .await
        .expect("one sign-up refilled after 3 s");
}

async fn change_password_ends_other_sessions(h: Harness) {
    let first = signup(&h, "ann@example.com").await;
    let second = h.cp.login("ann@example.com", PASSWORD, None).await.unwrap();
    let who = principal(&h, &first.session).await;
    let wrong =
        h.cp.change_password(&who, "wrong horse 7", "new horse 99", None)
            .await
            .unwrap_err();
    assert!(matches!(wrong, Error::InvalidCredentials), "{wrong}");
    let weak =
        h.cp.change_password(&who, PASSWORD, "short", None)
            .await
            .unwrap_err();
    assert!(matches!(weak, Error::WeakPassword(_)), "{weak}");
    // Nothing changed yet: both sessions live.
    principal(&h, &second.session).await;

    h.cp.change_password(&who, PASSWORD, "new horse 99", None)
        .await
        .unwrap();
    principal(&h, &first.session).await;
    let ended = h.cp.authenticate(&second.session).await.unwrap_err();
    assert!(
        matches!(ended, Error::Unauthorized(Unauthenticated::Unknown)),
        "{ended}"
    );
    assert!(matches!(
        h.cp.login("ann@example.com", PASSWORD, None).await,
        Err(Error::InvalidCredentials)
    ));
    h.cp.login("ann@example.com", "new horse 99", None)
        .await
        .unwrap();
    let actions: Vec<AuditAction> =
        h.cp.audit_log(&who, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|entry| entry.action)
            .collect();
    assert_eq!(
        actions,
        [
            AuditAction::LoginFailed,
            AuditAction::PasswordChange,
            AuditAction::LoginFailed
        ]
    );
}

async fn sessions_expire_after_30_days(h: Harness) {
    let ann = signup(&h, "ann@example.com").await;
    h.clock.advance_ms(SESSION_LIFETIME_MS - 1);
    principal(&h, &ann.session).await;
    h.clock.advance_ms(1);
    let error = h.cp.authenticate(&ann.session).await.unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized(Unauthenticated::Expired)),
        "{error}"
    );
    assert_eq!(error.code().as_str(), "unauthorized");
}

async fn malformed_and_unknown_credentials(h: Harness) {
    signup(&h, "ann@example.com").await;
    for malformed in [
        "",
        "garbage",
        "orrs_",
        "orrs_XYZ",
        "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
        &format!("{}.{}.{}", control_plane::API_TOKEN_PREFIX, "e30", "AAAA"),
    ] {
        let error = h.cp.authenticate(malformed).await.unwrap_err();
        assert!(
            matches!(error, Error::Unauthorized(Unauthenticated::Malformed)),
            "{malformed:?}: {error}"
        );
    }
    let never_issued = format!("orrs_{}", "ab".repeat(32));
    let error = h.cp.authenticate(&never_issued).await.unwrap_err();
    assert!(
        matches!(error, Error::Unauthorized(Unauthenticated::Unknown)),
        "{error}"
    );
}
