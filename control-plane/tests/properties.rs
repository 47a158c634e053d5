//! Token parsing and scope checks against small models.
//!
//! Protects: that a minted token with any one byte changed is refused by a
//! real store (every position, on both backends); that the scope check
//! agrees with a model written independently of `Scope`'s ordering, as a
//! property of `Credential::check` and exhaustively through `authorize` on
//! both backends.

#[path = "support/harness.rs"]
mod harness;

use control_plane::{
    Credential, DatabaseId, Error, NewToken, Principal, Scope, TokenDatabases, TokenId,
    Unauthenticated,
};
use harness::Harness;
use proptest::prelude::*;

on_both_backends!(control_plane::SignupMode::Open =>
    every_single_byte_mutation_of_a_token_is_refused,
    authorize_agrees_with_the_model_for_every_token_shape,
);

/// The model: what each scope may do, as a table (not `Scope`'s `Ord`).
fn model_allows(scope: Scope, listed: Option<&[usize]>, database: usize, needed: Scope) -> bool {
    let rank = |scope: Scope| match scope {
        Scope::Read => 1,
        Scope::Deploy => 2,
        Scope::Admin => 3,
    };
    let covered = listed.is_none_or(|listed| listed.contains(&database));
    covered && rank(scope) >= rank(needed)
}

fn scope_strategy() -> impl Strategy<Value = Scope> {
    prop_oneof![Just(Scope::Read), Just(Scope::Deploy), Just(Scope::Admin)]
}

proptest! {
    #[test]
    fn credential_check_agrees_with_the_model(
        scope in scope_strategy(),
        listed in proptest::option::of(proptest::collection::btree_set(0usize..4, 0..4)),
        database in 0usize..4,
        needed in scope_strategy(),
    ) {
        let ids: Vec<DatabaseId> = (0..4)
            .map(|n| DatabaseId::from_stored(format!("db_{n:032x}")))
            .collect();
        let listed: Option<Vec<usize>> = listed.map(|set| set.into_iter().collect());
        let credential = Credential::ApiToken {
            token_id: TokenId::from_stored(format!("tok_{:032x}", 1)),
            scope,
            databases: match &listed {
                None => TokenDatabases::All,
                Some(listed) => TokenDatabases::Listed(listed.iter().map(|n| ids[*n].clone()).collect()),
            },
        };
        let expected = model_allows(scope, listed.as_deref(), database, needed);
        let actual = credential.check(&ids[database], needed);
        prop_assert_eq!(actual.is_ok(), expected, "{:?}", actual);
        if let Err(error) = actual {
            prop_assert_eq!(error.code().as_str(), "forbidden");
        }
        // A session may do everything on its account.
        let session = Credential::Session {
            session_id: control_plane::SessionId::from_stored("ses_x"),
        };
        prop_assert!(session.check(&ids[database], needed).is_ok());
    }
}

async fn owner(h: &Harness) -> Principal {
    let logged_in =
        h.cp.signup("ann@example.com", "correct horse 7", None, None)
            .await
            .unwrap();
    h.cp.authenticate(&logged_in.session).await.unwrap()
}

async fn every_single_byte_mutation_of_a_token_is_refused(h: Harness) {
    let ann = owner(&h).await;
    let created =
        h.cp.create_token(
            &ann,
            NewToken {
                name: "target".into(),
                scope: Scope::Admin,
                databases: None,
                expires_in_ms: Some(3_600_000),
            },
            None,
        )
        .await
        .unwrap();
    let token = created.token;
    h.cp.authenticate(&token)
        .await
        .expect("the token itself works");
    // Every position, with a replacement byte that cycles through the
    // base64url alphabet and a few others: refused, as malformed or unknown.
    let replacements = b"AQgw09_-azMN.=+/ %";
    for at in 0..token.len() {
        let replacement = replacements
            .iter()
            .copied()
            .cycle()
            .skip(at % replacements.len())
            .find(|b| *b != token.as_bytes()[at])
            .unwrap();
        let mutated = with_byte(&token, at, replacement);
        match h.cp.authenticate(&mutated).await {
            Err(Error::Unauthorized(Unauthenticated::Unknown | Unauthenticated::Malformed)) => {}
            other => panic!(
                "byte {at} changed to {:?} was not refused: {other:?}",
                replacement as char
            ),
        }
    }
    // Within the secret (but its last character, which also carries
    // padding bits) a base64url replacement keeps the token well formed:
    // the store is what refuses it.
    let secret_start = token.rfind('.').unwrap() + 1;
    for at in secret_start..token.len() - 1 {
        let replacement = if token.as_bytes()[at] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let mutated = with_byte(&token, at, replacement);
        let error = h.cp.authenticate(&mutated).await.unwrap_err();
        assert!(
            matches!(error, Error::Unauthorized(Unauthenticated::Unknown)),
            "byte {at}: {error}"
        );
    }
    h.cp.authenticate(&token)
        .await
        .expect("the token still works");
}

fn with_byte(text: &str, at: usize, byte: u8) -> String {
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = byte;
    String::from_utf8(bytes).expect("ASCII stays UTF-8")
}

async fn authorize_agrees_with_the_model_for_every_token_shape(h: Harness) {
    let ann = owner(&h).await;
    let names = ["alpha", "beta"];
    for name in names {
        h.cp.create_database(&ann, name, None).await.unwrap();
    }
    let ben =
        h.cp.signup("ben@example.com", "correct horse 7", None, None)
            .await
            .unwrap();
    let ben = h.cp.authenticate(&ben.session).await.unwrap();
    h.cp.create_database(&ben, "theirs", None).await.unwrap();

    let coverages: [Option<&[usize]>; 4] = [None, Some(&[0]), Some(&[1]), Some(&[0, 1])];
    let mut checked = 0;
    for scope in Scope::ALL {
        for listed in coverages {
            let created =
                h.cp.create_token(
                    &ann,
                    NewToken {
                        name: "model".into(),
                        scope,
                        databases: listed.map(|l| l.iter().map(|n| names[*n].to_owned()).collect()),
                        expires_in_ms: None,
                    },
                    None,
                )
                .await
                .unwrap();
            let principal = h.cp.authenticate(&created.token).await.unwrap();
            for needed in Scope::ALL {
                for (database, name) in names.iter().enumerate() {
                    let expected = model_allows(scope, listed, database, needed);
                    let actual = h.cp.authorize(&principal, name, needed).await;
                    assert_eq!(
                        actual.is_ok(),
                        expected,
                        "{scope:?} {listed:?} on {name} needing {needed:?}: {actual:?}"
                    );
                    if let Err(error) = actual {
                        assert!(matches!(error, Error::Forbidden(_)), "{error}");
                    }
                    checked += 1;
                }
                // Another account's database: never.
                let error =
                    h.cp.authorize(&principal, "theirs", needed)
                        .await
                        .unwrap_err();
                assert!(matches!(error, Error::Forbidden(_)), "{error}");
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 3 * 2);
}
