//! Who may do what on the platform: the scopes of account credentials and
//! how the edge tells an account credential from an app's identity token.
//!
//! Owns: [`Scope`] (read < deploy < admin), the recognisable prefixes of
//! sessions ([`SESSION_PREFIX`]) and API tokens ([`API_TOKEN_PREFIX`]), and
//! [`is_account_credential`].
//! Does not own: minting, storing or checking credentials (the control
//! plane) or deciding what a route needs (the edge and the control-plane API).

use std::fmt;

/// What an account credential may do, each level including the ones below:
/// `read` (logs, SQL queries, private tables, describe), `deploy` (publish,
/// plus read), `admin` (delete, rename, tokens, audit, plus deploy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Read,
    Deploy,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Deploy, Scope::Admin];

    /// The scope named `text` (`read`, `deploy`, `admin`).
    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }

    /// True if a credential of this scope may do what `needed` allows.
    pub fn covers(self, needed: Scope) -> bool {
        self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sessions (console and CLI logins) start with this.
pub const SESSION_PREFIX: &str = "orrs_";

/// The header of every API token, `{"typ":"JWT","alg":"none","kid":"orrery-api-token"}`.
pub const API_TOKEN_HEADER_JSON: &str = r#"{"typ":"JWT","alg":"none","kid":"orrery-api-token"}"#;

/// Every API token starts with the base64url of [`API_TOKEN_HEADER_JSON`]
/// and a dot: the token is JWT-shaped so that the stock CLI accepts it, and
/// this prefix is what tells it apart from a signed identity token.
pub const API_TOKEN_PREFIX: &str =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIiwia2lkIjoib3JyZXJ5LWFwaS10b2tlbiJ9.";

/// True if `bearer` is an account credential (a session or an API token)
/// rather than an app's identity token.
pub fn is_account_credential(bearer: &str) -> bool {
    bearer.starts_with(SESSION_PREFIX) || bearer.starts_with(API_TOKEN_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered_and_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert!(Scope::Admin.covers(Scope::Deploy) && Scope::Deploy.covers(Scope::Read));
        assert!(!Scope::Read.covers(Scope::Deploy) && !Scope::Deploy.covers(Scope::Admin));
        assert_eq!(Scope::parse("Admin"), None);
    }

    #[test]
    fn the_prefix_is_the_header_in_base64url() {
        // base64url without padding, by hand: 3 bytes → 4 characters.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut encoded = String::new();
        for chunk in API_TOKEN_HEADER_JSON.as_bytes().chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                encoded.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        assert_eq!(format!("{encoded}."), API_TOKEN_PREFIX);
        assert!(is_account_credential(&format!(
            "{API_TOKEN_PREFIX}e30.c2VjcmV0"
        )));
        assert!(is_account_credential("orrs_00ff"));
        assert!(!is_account_credential(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.e30.sig"
        ));
    }
}
