//! Tokens and identities for the client API (client-protocol §3).
//!
//! Owns: the host's ES256 signing key ([`Keys`], kept as PKCS#8 in the data
//! directory and created on first start), minting tokens (anonymous
//! identities and the short-lived WebSocket token), validating bearer tokens
//! signed by that key, and deriving identities from `(iss, sub)` (through
//! `spacetimedb_lib::Identity::from_claims`, which is Apache-licensed and
//! bit-exact with the stock clients).
//! Does not own: HTTP (which header or query parameter carries a token), or
//! foreign OpenID issuers: tokens not signed by our key are refused.
//!
//! Tokens are compact JWS with the header `{"typ":"JWT","alg":"ES256"}` and
//! claims `hex_identity`, `sub`, `iss`, `aud`, `iat`, `exp` (`null` for tokens
//! that never expire). Minted payloads are kept free of the base64url
//! characters `-` and `_`, because the stock CLI decodes the payload with the
//! standard alphabet (client-protocol §3.1).

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Map, Value};
use spacetimedb_lib::Identity;

/// The issuer of the tokens this host mints.
pub use tenant_host::registry::LOCAL_ISSUER;

/// The file holding the signing key (PKCS#8 DER), in the key directory.
pub const KEY_FILE_NAME: &str = "id_ecdsa.pk8";

/// How long a WebSocket token lives, in seconds.
pub const WEBSOCKET_TOKEN_SECONDS: i64 = 60;

/// Tolerance when checking `exp`, in seconds.
pub const EXPIRY_LEEWAY_SECONDS: i64 = 60;

pub use orrery_api::limits::TOKEN_BYTES_MAX;

const HEADER_JSON: &str = r#"{"typ":"JWT","alg":"ES256"}"#;

/// DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read or write the signing key: {0}")]
    Io(#[from] std::io::Error),
    #[error("the signing key file is not a valid P-256 PKCS#8 key: {0}")]
    BadKey(String),
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    #[error("the token is not signed by this server")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token's `{0}` claim is missing, empty or longer than 128 bytes")]
    BadClaim(&'static str),
    #[error("the token's hex_identity does not match its issuer and subject")]
    IdentityMismatch,
    #[error("the system random source failed")]
    Random,
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub identity: Identity,
    pub issuer: String,
    pub subject: String,
    /// The payload JSON as signed: what `get_jwt` hands to modules.
    pub payload: String,
}

/// A freshly minted token and the identity it stands for.
#[derive(Clone, Debug)]
pub struct Minted {
    pub identity: Identity,
    pub token: String,
}

/// The host's signing key.
pub struct Keys {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
}

impl Keys {
    /// Loads the key from `dir`, creating it (owner-only permissions,
    /// written atomically) if it does not exist yet.
    pub fn load_or_create(dir: &Path) -> Result<Keys, AuthError> {
        let path = dir.join(KEY_FILE_NAME);
        let rng = SystemRandom::new();
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                durable::fs::create_dir_all_durable(dir)?;
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| AuthError::Random)?;
                durable::fs::write_atomic_private(&path, doc.as_ref())?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(e.into()),
        };
        Keys::from_pkcs8(&pkcs8, rng)
    }

    /// A key that lives only in memory (tests, throwaway servers).
    pub fn ephemeral() -> Result<Keys, AuthError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| AuthError::Random)?;
        Keys::from_pkcs8(doc.as_ref(), rng)
    }

    fn from_pkcs8(pkcs8: &[u8], rng: SystemRandom) -> Result<Keys, AuthError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|e| AuthError::BadKey(e.to_string()))?;
        Ok(Keys { pair, rng })
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as `/v1/identity/public-key` serves it.
    pub fn public_key_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.pair.public_key().as_ref());
        let body = STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Mints a new anonymous identity: issuer [`LOCAL_ISSUER`], a random
    /// UUIDv4 subject, no expiry (client-protocol §2.3.1).
    pub fn mint_anonymous(&self, now_secs: i64) -> Result<Minted, AuthError> {
        loop {
            let subject = self.uuid_v4()?;
            let identity = Identity::from_claims(LOCAL_ISSUER, &subject);
            let mut claims = Map::new();
            claims.insert("hex_identity".into(), identity.to_hex().to_string().into());
            claims.insert("sub".into(), subject.into());
            claims.insert("iss".into(), LOCAL_ISSUER.into());
            claims.insert("aud".into(), json!(["spacetimedb"]));
            claims.insert("iat".into(), now_secs.into());
            claims.insert("exp".into(), Value::Null);
            let payload = Value::Object(claims).to_string();
            // Re-mint (new subject) in the unlikely case the payload would
            // trip the CLI's standard-alphabet decoding.
            if cli_safe(&payload) {
                let token = self.sign(&payload)?;
                return Ok(Minted { identity, token });
            }
        }
    }

    /// Re-signs a validated token's claims with a fresh `iat` and an `exp`
    /// [`WEBSOCKET_TOKEN_SECONDS`] later (client-protocol §2.3.2).
    pub fn websocket_token(&self, claims: &Claims, now_secs: i64) -> Result<String, AuthError> {
        let mut payload: Map<String, Value> = serde_json::from_str(&claims.payload)
            .map_err(|_| AuthError::Malformed("payload is not a JSON object"))?;
        payload.insert("iat".into(), now_secs.into());
        payload.insert("exp".into(), (now_secs + WEBSOCKET_TOKEN_SECONDS).into());
        self.sign(&Value::Object(payload).to_string())
    }

    /// Checks a bearer token: our signature, `sub` and `iss` present,
    /// not expired, `hex_identity` (if present) matching.
    pub fn validate(&self, token: &str, now_secs: i64) -> Result<Claims, AuthError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(AuthError::Malformed("longer than the limit"));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthError::Malformed("not three dot-separated parts"));
        };
        let header_json = decode_part(header)?;
        let header: Value = serde_json::from_slice(&header_json)
            .map_err(|_| AuthError::Malformed("header is not JSON"))?;
        if header.get("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(AuthError::BadSignature);
        }
        let signature_bytes = decode_part(signature)?;
        // The signed text is `header.payload`: everything before the last dot.
        let signed = &token[..token.len() - signature_part_len(token)];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(signed.as_bytes(), &signature_bytes)
            .map_err(|_| AuthError::BadSignature)?;
        let payload_bytes = decode_part(payload)?;
        let payload = String::from_utf8(payload_bytes)
            .map_err(|_| AuthError::Malformed("payload is not UTF-8"))?;
        let claims: Map<String, Value> = serde_json::from_str(&payload)
            .map_err(|_| AuthError::Malformed("payload is not a JSON object"))?;
        let text = |name: &'static str| -> Result<String, AuthError> {
            match claims.get(name).and_then(Value::as_str) {
                Some(value) if !value.is_empty() && value.len() <= 128 => Ok(value.to_owned()),
                _ => Err(AuthError::BadClaim(name)),
            }
        };
        let issuer = text("iss")?;
        let subject = text("sub")?;
        match claims.get("exp") {
            None | Some(Value::Null) => {}
            Some(exp) => match exp.as_i64() {
                Some(exp) if exp + EXPIRY_LEEWAY_SECONDS >= now_secs => {}
                Some(_) => return Err(AuthError::Expired),
                None => return Err(AuthError::BadClaim("exp")),
            },
        }
        let identity = Identity::from_claims(&issuer, &subject);
        if let Some(hex) = claims.get("hex_identity") {
            if hex.as_str() != Some(identity.to_hex().as_str()) {
                return Err(AuthError::IdentityMismatch);
            }
        }
        Ok(Claims {
            identity,
            issuer,
            subject,
            payload,
        })
    }

    fn sign(&self, payload: &str) -> Result<String, AuthError> {
        let mut token = URL_SAFE_NO_PAD.encode(HEADER_JSON);
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(payload));
        let signature = self
            .pair
            .sign(&self.rng, token.as_bytes())
            .map_err(|_| AuthError::Random)?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature.as_ref()));
        Ok(token)
    }

    fn uuid_v4(&self) -> Result<String, AuthError> {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes).map_err(|_| AuthError::Random)?;
        Ok(orrery_api::ids::uuid_v4_from(bytes))
    }
}

/// The length of a token's last part with its dot.
fn signature_part_len(token: &str) -> usize {
    token.rsplit('.').next().map_or(0, |part| part.len() + 1)
}

fn decode_part(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::Malformed("a part is not base64url"))
}

/// Whether the base64url form of `payload` avoids `-` and `_`, so that the
/// stock CLI's standard-alphabet decoding reads it.
fn cli_safe(payload: &str) -> bool {
    !URL_SAFE_NO_PAD
        .encode(payload)
        .bytes()
        .any(|b| b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;

    #[test]
    fn identities_match_the_spec_vectors() {
        let vectors = [
            (
                "localhost",
                "test-subject",
                "c200b3ce65d91b79ecfb7d881cd65bf8da2f647d590af1474ad19faa7aa87e38",
            ),
            (
                "a",
                "b",
                "c20031e002707e94276b24b96c568ece2f159386738e646c6107b45b26fd0396",
            ),
            (
                "localhost",
                "00000000-0000-4000-8000-000000000001",
                "c200fe02ebe7d75ecbb0a80c12bab105a9c55dd0a80ffd8f3eea46506114bf93",
            ),
        ];
        for (iss, sub, hex) in vectors {
            assert_eq!(Identity::from_claims(iss, sub).to_hex().as_str(), hex);
        }
    }

    #[test]
    fn minted_tokens_validate_and_carry_their_identity() {
        let keys = Keys::ephemeral().unwrap();
        let minted = keys.mint_anonymous(NOW).unwrap();
        let claims = keys.validate(&minted.token, NOW + 10_000_000).unwrap();
        assert_eq!(claims.identity, minted.identity);
        assert_eq!(claims.issuer, LOCAL_ISSUER);
        assert_eq!(
            claims.identity,
            Identity::from_claims(LOCAL_ISSUER, &claims.subject)
        );
        let payload: Value = serde_json::from_str(&claims.payload).unwrap();
        assert_eq!(payload["exp"], Value::Null);
        assert_eq!(payload["aud"], json!(["spacetimedb"]));
        assert_eq!(payload["hex_identity"], minted.identity.to_hex().as_str());
        // The header is exactly the reference one, and the payload reads
        // with the standard alphabet too.
        let mut parts = minted.token.split('.');
        assert_eq!(
            URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap(),
            HEADER_JSON.as_bytes()
        );
        let payload_part = parts.next().unwrap();
        assert!(!payload_part.contains(['-', '_']));
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(payload_part)
            .unwrap();
        // Two anonymous mints are two identities.
        assert_ne!(keys.mint_anonymous(NOW).unwrap().identity, minted.identity);
    }

    #[test]
    fn websocket_tokens_expire_after_a_minute() {
        let keys = Keys::ephemeral().unwrap();
        let minted = keys.mint_anonymous(NOW).unwrap();
        let claims = keys.validate(&minted.token, NOW).unwrap();
        let short = keys.websocket_token(&claims, NOW).unwrap();
        let again = keys.validate(&short, NOW + 30).unwrap();
        assert_eq!(again.identity, claims.identity);
        assert!(matches!(
            keys.validate(
                &short,
                NOW + WEBSOCKET_TOKEN_SECONDS + EXPIRY_LEEWAY_SECONDS + 1
            ),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn forged_tampered_and_malformed_tokens_are_refused() {
        let keys = Keys::ephemeral().unwrap();
        let other = Keys::ephemeral().unwrap();
        let minted = keys.mint_anonymous(NOW).unwrap();
        assert!(matches!(
            other.validate(&minted.token, NOW),
            Err(AuthError::BadSignature)
        ));
        // Swap in a payload with another subject, keeping the signature.
        let parts: Vec<&str> = minted.token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"iss":"localhost","sub":"admin"}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(matches!(
            keys.validate(&forged, NOW),
            Err(AuthError::BadSignature)
        ));
        // `alg: none` is not accepted.
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let none = format!("{none_header}.{}.", parts[1]);
        assert!(keys.validate(&none, NOW).is_err());
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.??.**",
            &"x".repeat(TOKEN_BYTES_MAX + 1),
        ] {
            assert!(keys.validate(bad, NOW).is_err(), "{bad:.20}");
        }
        // A correctly signed token whose hex_identity lies is refused.
        let lying = keys
            .sign(r#"{"hex_identity":"c200000000000000000000000000000000000000000000000000000000000000","iss":"localhost","sub":"x"}"#)
            .unwrap();
        assert!(matches!(
            keys.validate(&lying, NOW),
            Err(AuthError::IdentityMismatch)
        ));
        let no_sub = keys.sign(r#"{"iss":"localhost"}"#).unwrap();
        assert!(matches!(
            keys.validate(&no_sub, NOW),
            Err(AuthError::BadClaim("sub"))
        ));
    }

    #[test]
    fn the_key_is_created_once_owner_only_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load_or_create(dir.path()).unwrap();
        let minted = keys.mint_anonymous(NOW).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE_NAME))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let reloaded = Keys::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.public_key_pem(), keys.public_key_pem());
        assert!(reloaded.validate(&minted.token, NOW).is_ok());
        assert!(keys
            .public_key_pem()
            .starts_with("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
        std::fs::write(dir.path().join(KEY_FILE_NAME), b"not a key").unwrap();
        assert!(matches!(
            Keys::load_or_create(dir.path()),
            Err(AuthError::BadKey(_))
        ));
    }
}
