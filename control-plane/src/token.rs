//! The formats of sessions and API tokens, and scopes.
//!
//! Owns: [`Scope`], the session secret's shape (`orrs_` + 32 random bytes in
//! hex), and the API token format of docs/design/control-plane.md:
//! `HEADER.PAYLOAD.SECRET`, where HEADER is the constant [`API_TOKEN_PREFIX`]
//! (base64url of `{"typ":"JWT","alg":"none","kid":"orrery-api-token"}`),
//! PAYLOAD the base64url of the claims `hex_identity`, `sub`, `iss`, `aud`,
//! `iat`, `exp` (or `null`) and `jti`, and SECRET 32 random bytes in
//! base64url. It is JWT-shaped so the stock `spacetime` CLI, which decodes the
//! payload, accepts it; it is not signed: the store keeps the SHA-256 of the
//! whole token, and a token is valid only when that hash is found.
//! Does not own: whether a token is revoked or expired (the store says).
//!
//! The payload is written field by field in a fixed order, with `exp` and
//! `jti` last, so that its base64url form never holds `-` or `_` (the stock
//! CLI decodes it with the standard alphabet): in ASCII JSON those two
//! characters only come from a byte with low bits `11` followed by one of
//! `p`..`~`, or from `>`, `?`, `~`; random parts are hex, and the only text
//! whose position varies (`,"exp":…,"jti":"tok_…"}`) has no such pair. A
//! test checks it across every length of `iat` and `exp`; minting refuses a
//! payload that would break it rather than hand out a token the CLI rejects.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use spacetimedb_lib::Identity;

use crate::error::Error;
use crate::ids::{random_bytes, random_hex, AccountId, TokenId};

/// The issuer of account identities: each account's identity is
/// `Identity::from_claims(PLATFORM_ISSUER, account_id)`. A constant, so an
/// account keeps its identity whatever domain the platform is served at.
pub const PLATFORM_ISSUER: &str = "https://orrery.invalid/platform";

/// The audience claim of API tokens.
pub const API_TOKEN_AUDIENCE: &str = "orrery";

/// The first part of every API token (base64url of
/// `{"typ":"JWT","alg":"none","kid":"orrery-api-token"}`), followed by `.`.
pub const API_TOKEN_PREFIX: &str =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIiwia2lkIjoib3JyZXJ5LWFwaS10b2tlbiJ9";

/// The start of every session secret.
pub const SESSION_PREFIX: &str = "orrs_";

/// Random bytes in a session secret and in an API token's secret part.
pub const SECRET_BYTES: usize = 32;

/// What a credential may do; each scope includes the ones below it (the
/// platform's one definition, shared with the edge).
pub use orrery_api::access::Scope;

/// The claims of a well-formed API token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiTokenClaims {
    pub token_id: TokenId,
    pub account_id: AccountId,
    pub hex_identity: String,
    pub issued_at_s: i64,
    pub expires_at_s: Option<i64>,
}

/// Why a string is not a well-formed API token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenFormatError {
    TooLong,
    NotThreeParts,
    WrongHeader,
    PayloadNotBase64,
    PayloadNotClaims,
    WrongIssuerOrAudience,
    IdentityMismatch,
    SecretNotBase64,
    SecretWrongLength,
}

/// Whether `bearer` looks like an API token of this platform (its prefix).
pub fn is_api_token(bearer: &str) -> bool {
    bearer
        .strip_prefix(API_TOKEN_PREFIX)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether `bearer` looks like a session secret.
pub fn is_session_secret(bearer: &str) -> bool {
    bearer.strip_prefix(SESSION_PREFIX).is_some_and(|hex| {
        hex.len() == 2 * SECRET_BYTES
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Checks the shape of an API token and returns its claims. A well-formed
/// token is not yet a valid one: only the store knows its hash.
pub fn parse_api_token(token: &str) -> Result<ApiTokenClaims, TokenFormatError> {
    if token.len() > orrery_api::limits::TOKEN_BYTES_MAX {
        return Err(TokenFormatError::TooLong);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(secret), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenFormatError::NotThreeParts);
    };
    if header != API_TOKEN_PREFIX {
        return Err(TokenFormatError::WrongHeader);
    }
    let secret = URL_SAFE_NO_PAD
        .decode(secret)
        .map_err(|_| TokenFormatError::SecretNotBase64)?;
    if secret.len() != SECRET_BYTES {
        return Err(TokenFormatError::SecretWrongLength);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenFormatError::PayloadNotBase64)?;
    let claims: Value =
        serde_json::from_slice(&payload).map_err(|_| TokenFormatError::PayloadNotClaims)?;
    let text = |key: &str| claims.get(key).and_then(Value::as_str);
    let (Some(hex_identity), Some(sub), Some(iss), Some(jti), Some(iat)) = (
        text("hex_identity"),
        text("sub"),
        text("iss"),
        text("jti"),
        claims.get("iat").and_then(Value::as_i64),
    ) else {
        return Err(TokenFormatError::PayloadNotClaims);
    };
    let expires_at_s = match claims.get("exp") {
        Some(Value::Null) => None,
        Some(exp) => Some(exp.as_i64().ok_or(TokenFormatError::PayloadNotClaims)?),
        None => return Err(TokenFormatError::PayloadNotClaims),
    };
    if !AccountId::is_well_formed(sub) || !TokenId::is_well_formed(jti) {
        return Err(TokenFormatError::PayloadNotClaims);
    }
    let audience_ok = claims
        .get("aud")
        .and_then(Value::as_array)
        .is_some_and(|aud| aud.len() == 1 && aud[0].as_str() == Some(API_TOKEN_AUDIENCE));
    if iss != PLATFORM_ISSUER || !audience_ok {
        return Err(TokenFormatError::WrongIssuerOrAudience);
    }
    if account_identity_hex(sub) != hex_identity {
        return Err(TokenFormatError::IdentityMismatch);
    }
    Ok(ApiTokenClaims {
        token_id: TokenId::from_stored(jti),
        account_id: AccountId::from_stored(sub),
        hex_identity: hex_identity.to_owned(),
        issued_at_s: iat,
        expires_at_s,
    })
}

/// The identity of an account.
pub fn account_identity(account_id: &str) -> Identity {
    Identity::from_claims(PLATFORM_ISSUER, account_id)
}

fn account_identity_hex(account_id: &str) -> String {
    account_identity(account_id).to_hex().to_string()
}

/// The SHA-256 of a secret in hex: what the store keeps.
pub(crate) fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh session secret.
pub(crate) fn mint_session_secret() -> String {
    format!("{SESSION_PREFIX}{}", random_hex(SECRET_BYTES))
}

/// A fresh API token for `account_id` with a new token id.
pub(crate) fn mint_api_token(
    account_id: &AccountId,
    issued_at_s: i64,
    expires_at_s: Option<i64>,
) -> Result<(TokenId, String), Error> {
    let token_id = TokenId::generate();
    let payload = payload_json(account_id, &token_id, issued_at_s, expires_at_s);
    let payload = URL_SAFE_NO_PAD.encode(payload);
    if payload.contains(['-', '_']) {
        return Err(Error::Internal(
            "an API token payload would hold '-' or '_' (the stock CLI could not read it)".into(),
        ));
    }
    let secret = URL_SAFE_NO_PAD.encode(random_bytes(SECRET_BYTES));
    Ok((token_id, format!("{API_TOKEN_PREFIX}.{payload}.{secret}")))
}

/// The claims in their fixed order (see the module header for why).
fn payload_json(
    account_id: &AccountId,
    token_id: &TokenId,
    issued_at_s: i64,
    expires_at_s: Option<i64>,
) -> String {
    let exp = expires_at_s.map_or_else(|| "null".to_owned(), |exp| exp.to_string());
    format!(
        r#"{{"hex_identity":"{}","sub":"{account_id}","iss":"{PLATFORM_ISSUER}","aud":["{API_TOKEN_AUDIENCE}"],"iat":{issued_at_s},"exp":{exp},"jti":"{token_id}"}}"#,
        account_identity_hex(account_id.as_str()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Protects the constant prefix: it is the base64url of the design's header.
    #[test]
    fn the_prefix_is_the_header() {
        let header = URL_SAFE_NO_PAD.decode(API_TOKEN_PREFIX).unwrap();
        assert_eq!(
            std::str::from_utf8(&header).unwrap(),
            r#"{"typ":"JWT","alg":"none","kid":"orrery-api-token"}"#
        );
    }

    // Protects the claims the stock CLI reads (client-protocol §3.1).
    #[test]
    fn a_minted_token_carries_the_claims() {
        let account = AccountId::generate();
        let (token_id, token) = mint_api_token(&account, 1_767_225_600, None).unwrap();
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(claims["sub"], account.as_str());
        assert_eq!(claims["iss"], PLATFORM_ISSUER);
        assert_eq!(claims["aud"], serde_json::json!(["orrery"]));
        assert_eq!(claims["iat"], 1_767_225_600);
        assert_eq!(claims["exp"], Value::Null);
        assert_eq!(claims["jti"], token_id.as_str());
        assert_eq!(
            claims["hex_identity"],
            Identity::from_claims(PLATFORM_ISSUER, account.as_str())
                .to_hex()
                .as_str()
        );
        let secret = token.rsplit('.').next().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).unwrap().len(), 32);
        assert!(is_api_token(&token));
        assert!(!is_session_secret(&token));
    }

    #[test]
    fn session_secrets_have_their_shape() {
        let secret = mint_session_secret();
        assert!(is_session_secret(&secret), "{secret}");
        assert_eq!(secret.len(), SESSION_PREFIX.len() + 64);
        assert!(!is_api_token(&secret));
        assert!(!is_session_secret("orrs_00"));
    }

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin.covers(Scope::Deploy));
        assert!(Scope::Deploy.covers(Scope::Read));
        assert!(!Scope::Read.covers(Scope::Deploy));
        assert!(!Scope::Deploy.covers(Scope::Admin));
        // The edge tells account credentials apart by the same prefixes.
        assert_eq!(
            format!("{API_TOKEN_PREFIX}."),
            orrery_api::access::API_TOKEN_PREFIX
        );
        assert_eq!(SESSION_PREFIX, orrery_api::access::SESSION_PREFIX);
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("owner"), None);
    }

    proptest! {
        // Protects the stock CLI's reading of minted payloads: no `-` or `_`
        // whatever the lengths of `iat` and `exp`, and a minted token parses
        // back to what was minted.
        #[test]
        fn minted_tokens_are_cli_safe_and_round_trip(
            issued_at_s in 0i64..=i64::MAX / 2,
            expires_at_s in proptest::option::of(0i64..=i64::MAX),
        ) {
            let account = AccountId::generate();
            let (token_id, token) = mint_api_token(&account, issued_at_s, expires_at_s).unwrap();
            let claims = parse_api_token(&token).unwrap();
            prop_assert_eq!(claims.token_id, token_id);
            prop_assert_eq!(claims.account_id, account);
            prop_assert_eq!(claims.issued_at_s, issued_at_s);
            prop_assert_eq!(claims.expires_at_s, expires_at_s);
        }

        // Protects the parser against whatever a stranger sends.
        #[test]
        fn parsing_arbitrary_strings_never_panics(text in ".*") {
            let _ = parse_api_token(&text);
            let _ = is_session_secret(&text);
        }

        // Same, with strings that have the token's prefix and three parts.
        #[test]
        fn parsing_token_shaped_strings_never_panics(
            payload in "[A-Za-z0-9_-]{0,200}",
            secret in "[A-Za-z0-9_-]{0,60}",
        ) {
            let _ = parse_api_token(&format!("{API_TOKEN_PREFIX}.{payload}.{secret}"));
        }

        // Protects the shape check: a minted token with any one byte changed
        // to another printable byte is either refused by the parser or, when
        // the change lands where any value is accepted (the secret, the id's
        // hex digits, the times), parses to different claims or a different
        // hash. The store-level tests check that such a token is refused.
        #[test]
        fn a_mutated_token_is_never_the_same_token(
            index in any::<prop::sample::Index>(),
            replacement in 0x20u8..0x7f,
        ) {
            let account = AccountId::generate();
            let (_, token) = mint_api_token(&account, 1_767_225_600, Some(1_767_229_200)).unwrap();
            let mut bytes = token.clone().into_bytes();
            let at = index.index(bytes.len());
            prop_assume!(bytes[at] != replacement);
            bytes[at] = replacement;
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert_ne!(secret_hash(&mutated), secret_hash(&token));
            if let Ok(claims) = parse_api_token(&mutated) {
                // Only the parts the parser cannot check may have changed.
                prop_assert_eq!(claims.account_id, account);
            }
        }
    }
}
