//! Signed module manifests: what the control plane vouches for when it
//! publishes a module, and how a host checks it before loading the module.
//!
//! Owns: the [`Manifest`] `{database, module_sha256, version, published_by,
//! published_at}`, its canonical byte encoding, the ed25519 keys that sign
//! and verify it ([`SigningKey`], [`VerifyingKey`], their text forms and the
//! signing-key file), [`SigningKey::sign`], [`verify`] and [`verify_module`].
//! Does not own: where manifests and modules are stored (orrery-objstore) or
//! which manifest a host should ask for (the control plane says).
//!
//! # Bytes of a signed manifest (format v1)
//!
//! ASCII lines, each ended by one `\n`, in exactly this order:
//!
//! ```text
//! orrery-manifest v1
//! database <name>
//! module_sha256 <64 lowercase hex digits>
//! version <decimal u64>
//! published_by <text>
//! published_at <decimal u64, Unix milliseconds>
//! key <16 lowercase hex digits: the signer's key id>
//! signature <128 lowercase hex digits>
//! ```
//!
//! The signature is ed25519 over every byte before the `signature` line (the
//! first seven lines, newlines included), so the format line acts as a domain
//! separator and the key id is signed too. Texts are 1 to
//! [`MANIFEST_TEXT_BYTES_MAX`] bytes of printable ASCII without spaces at
//! either end; decimals have no sign and no leading zeros. There is exactly
//! one encoding of each manifest, and [`verify`] accepts nothing else.
//!
//! The key id is the first 8 bytes of the SHA-256 of the 32-byte public key;
//! it only lets a refusal say "signed by another key" instead of "bad
//! signature", it is never trusted.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

/// The first line of every signed manifest (format and version).
const FORMAT_LINE: &str = "orrery-manifest v1";

/// Most bytes of a text field (`database`, `published_by`).
pub const MANIFEST_TEXT_BYTES_MAX: usize = 256;

/// Most bytes of a whole signed manifest; larger input is refused unread.
pub const SIGNED_MANIFEST_BYTES_MAX: usize = 1024;

/// Prefix of a public key's text form (host configuration).
const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// First line of a signing-key file; the second is the 32-byte seed in hex.
const KEY_FILE_HEADER: &str = "orrery-ed25519-signing-key v1";

/// What a publish vouches for: this database runs the module whose bytes hash
/// to `module_sha256`, as its `version`, published by `published_by` at
/// `published_at` (Unix milliseconds).
///
/// Built only by [`Manifest::new`] (or [`Manifest::for_module`]) and
/// [`verify`], so every value has a valid encoding.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Manifest {
    database: String,
    module_sha256: [u8; 32],
    version: u64,
    published_by: String,
    published_at: u64,
}

impl Manifest {
    /// A manifest, or [`ManifestError::Malformed`] when a text field is empty,
    /// too long, or not printable ASCII without outer spaces.
    pub fn new(
        database: impl Into<String>,
        module_sha256: [u8; 32],
        version: u64,
        published_by: impl Into<String>,
        published_at_unix_ms: u64,
    ) -> Result<Self, ManifestError> {
        let database = database.into();
        let published_by = published_by.into();
        check_text("database", &database)?;
        check_text("published_by", &published_by)?;
        Ok(Self {
            database,
            module_sha256,
            version,
            published_by,
            published_at: published_at_unix_ms,
        })
    }

    /// A manifest for the module `wasm` (its SHA-256 computed here).
    pub fn for_module(
        database: impl Into<String>,
        wasm: &[u8],
        version: u64,
        published_by: impl Into<String>,
        published_at_unix_ms: u64,
    ) -> Result<Self, ManifestError> {
        Self::new(
            database,
            sha256(wasm),
            version,
            published_by,
            published_at_unix_ms,
        )
    }

    /// The database this module is published to.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The SHA-256 of the module's bytes.
    pub fn module_sha256(&self) -> [u8; 32] {
        self.module_sha256
    }

    /// The SHA-256 of the module's bytes, as 64 lowercase hex digits (the
    /// name of its objects in the object store).
    pub fn module_sha256_hex(&self) -> String {
        to_hex(&self.module_sha256)
    }

    /// The module version within its database.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Who published it (an account id or an operator name).
    pub fn published_by(&self) -> &str {
        &self.published_by
    }

    /// When it was published, in Unix milliseconds.
    pub fn published_at_unix_ms(&self) -> u64 {
        self.published_at
    }

    /// The signed part of the encoding: every line before `signature`.
    fn signed_part(&self, key_id: &KeyId) -> String {
        format!(
            "{FORMAT_LINE}\ndatabase {}\nmodule_sha256 {}\nversion {}\npublished_by {}\npublished_at {}\nkey {}\n",
            self.database,
            self.module_sha256_hex(),
            self.version,
            self.published_by,
            self.published_at,
            key_id,
        )
    }
}

/// A manifest with its signature, as the bytes that are stored and shipped.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedManifest {
    manifest: Manifest,
    bytes: Vec<u8>,
}

impl SignedManifest {
    /// The manifest that was signed.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The canonical bytes (format v1, signature included).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The canonical bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// The identifier of a public key: the first 8 bytes of its SHA-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct KeyId([u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&to_hex(&self.0))
    }
}

/// The control plane's signing key (ed25519). The secret never leaves this
/// type except through [`SigningKey::save`]; `Debug` shows only the key id.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(key {})", self.verifying_key().key_id())
    }
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        let key = Self::from_seed(seed);
        seed.fill(0);
        Ok(key)
    }

    /// The key whose 32-byte secret seed is `seed` (tests, key files).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public half, for hosts.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs `manifest` and returns its canonical bytes with the signature.
    pub fn sign(&self, manifest: &Manifest) -> SignedManifest {
        let key_id = self.verifying_key().key_id();
        let mut text = manifest.signed_part(&key_id);
        let signature = self.0.sign(text.as_bytes());
        text.push_str("signature ");
        text.push_str(&to_hex(&signature.to_bytes()));
        text.push('\n');
        SignedManifest {
            manifest: manifest.clone(),
            bytes: text.into_bytes(),
        }
    }

    /// Writes the key to `path` readable by its owner only (mode 0600): a
    /// temporary file next to it, fsynced, renamed over `path`, then the
    /// folder fsynced. Refuses nothing; overwrites an existing file.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let text = format!("{KEY_FILE_HEADER}\n{}\n", to_hex(self.0.as_bytes()));
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let file_name = path
            .file_name()
            .ok_or_else(|| io(std::io::Error::other("the key path names no file")))?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(io)?;
        // A file left by an earlier run keeps its mode on open: set it again.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        drop(file);
        std::fs::rename(&tmp, path).map_err(io)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }

    /// Reads a key written by [`SigningKey::save`]. On Unix a file that group
    /// or others may read is refused ([`KeyError::TooOpen`]), as ssh does.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let metadata = std::fs::metadata(path).map_err(io)?;
        #[cfg(unix)]
        {
            let mode = std::os::unix::fs::PermissionsExt::mode(&metadata.permissions());
            if mode & 0o077 != 0 {
                return Err(KeyError::TooOpen {
                    path: path.to_path_buf(),
                    mode: mode & 0o777,
                });
            }
        }
        if metadata.len() > 256 {
            return Err(KeyError::Malformed {
                path: path.to_path_buf(),
                reason: "longer than a key file",
            });
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_key_file_text(&text).map_err(|reason| KeyError::Malformed {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn from_key_file_text(text: &str) -> Result<Self, &'static str> {
        let mut lines = text.split('\n');
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err("the first line is not `orrery-ed25519-signing-key v1`");
        }
        let seed = lines
            .next()
            .and_then(from_hex::<32>)
            .ok_or("the second line is not 64 lowercase hex digits")?;
        if lines.next() != Some("") || lines.next().is_some() {
            return Err("text after the key");
        }
        Ok(Self::from_seed(seed))
    }
}

/// A public key that verifies manifests; hosts hold it in their config as
/// text (`ed25519:` and 64 lowercase hex digits, see [`VerifyingKey::parse`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

/// The text form: `ed25519:<64 lowercase hex digits>`.
impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_KEY_PREFIX}{}", to_hex(self.0.as_bytes()))
    }
}

impl std::str::FromStr for VerifyingKey {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Self, KeyError> {
        Self::parse(text)
    }
}

impl VerifyingKey {
    /// Parses the text form written by `Display` (surrounding whitespace is
    /// ignored, so a key pasted from a file with its newline works).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .and_then(from_hex::<32>)
            .ok_or(KeyError::BadPublicKey(
                "expected `ed25519:` and 64 lowercase hex digits",
            ))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| KeyError::BadPublicKey("not a point of the ed25519 curve"))
    }

    /// The key id manifests name their signer by.
    pub fn key_id(&self) -> KeyId {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

/// Checks `bytes` as a signed manifest under `key` and returns the manifest.
///
/// Refuses, in this order: input that is not exactly the canonical encoding
/// ([`ManifestError::Malformed`]), a manifest signed by another key
/// ([`ManifestError::WrongKey`]), and a signature that does not verify
/// ([`ManifestError::BadSignature`]).
pub fn verify(bytes: &[u8], key: &VerifyingKey) -> Result<Manifest, ManifestError> {
    if bytes.len() > SIGNED_MANIFEST_BYTES_MAX {
        return Err(malformed(format!(
            "{} bytes, more than the {SIGNED_MANIFEST_BYTES_MAX} a manifest may have",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
    let mut fields = Fields::new(text);
    if fields.next_line()? != FORMAT_LINE {
        return Err(malformed("the first line is not `orrery-manifest v1`"));
    }
    let database = fields.text("database")?;
    let module_sha256 = fields.hex::<32>("module_sha256")?;
    let version = fields.decimal("version")?;
    let published_by = fields.text("published_by")?;
    let published_at = fields.decimal("published_at")?;
    let found_key = KeyId(fields.hex::<8>("key")?);
    let signed_len = fields.consumed;
    let signature = fields.hex::<64>("signature")?;
    if fields.consumed != text.len() {
        return Err(malformed("bytes after the signature line"));
    }
    let manifest = Manifest {
        database: database.to_owned(),
        module_sha256,
        version,
        published_by: published_by.to_owned(),
        published_at,
    };
    let expected_key = key.key_id();
    if found_key != expected_key {
        return Err(ManifestError::WrongKey {
            expected: expected_key,
            found: found_key,
        });
    }
    let signature = ed25519_dalek::Signature::from_bytes(&signature);
    key.0
        .verify(&bytes[..signed_len], &signature)
        .map_err(|_| ManifestError::BadSignature { key: expected_key })?;
    Ok(manifest)
}

/// Checks that `wasm` is the module `manifest` vouches for (its SHA-256).
pub fn verify_module(manifest: &Manifest, wasm: &[u8]) -> Result<(), ManifestError> {
    let actual = sha256(wasm);
    if actual != manifest.module_sha256 {
        return Err(ManifestError::HashMismatch {
            expected: manifest.module_sha256_hex(),
            actual: to_hex(&actual),
        });
    }
    Ok(())
}

/// The SHA-256 of `bytes` (the content address of a module).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0xf)] as char);
    }
    text
}

/// Exactly `2 * N` lowercase hex digits as bytes, or `None`.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut bytes = [0u8; N];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = (value(digits[2 * i])? << 4) | value(digits[2 * i + 1])?;
    }
    Some(bytes)
}

/// Why a manifest or a module was refused.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ManifestError {
    /// The bytes are not a canonical signed manifest (or a field is invalid).
    Malformed { reason: String },
    /// The manifest names a signer other than the key it was checked with.
    WrongKey { expected: KeyId, found: KeyId },
    /// The signature does not verify under the key it names.
    BadSignature { key: KeyId },
    /// The module's bytes do not hash to the manifest's `module_sha256`.
    HashMismatch { expected: String, actual: String },
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed { reason } => write!(f, "malformed module manifest: {reason}"),
            Self::WrongKey { expected, found } => write!(
                f,
                "module manifest signed by key {found}, not by the trusted key {expected}"
            ),
            Self::BadSignature { key } => write!(
                f,
                "bad module manifest signature: it does not verify under key {key} (tampered)"
            ),
            Self::HashMismatch { expected, actual } => write!(
                f,
                "module bytes do not match their manifest: SHA-256 {actual}, manifest says {expected}"
            ),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Why a key could not be made, read, written or parsed.
#[derive(Debug)]
pub enum KeyError {
    /// The operating system's random generator failed.
    Random(String),
    /// Reading or writing the key file failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The key file may be read by group or others (`mode` is its permission bits).
    TooOpen { path: PathBuf, mode: u32 },
    /// The key file is not one [`SigningKey::save`] writes.
    Malformed { path: PathBuf, reason: &'static str },
    /// The text is not a public key.
    BadPublicKey(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Random(e) => write!(f, "cannot generate a signing key: {e}"),
            Self::Io { path, source } => {
                write!(f, "signing key file {}: {source}", path.display())
            }
            Self::TooOpen { path, mode } => write!(
                f,
                "signing key file {} has mode {mode:o}; it must be readable by its owner only (chmod 600)",
                path.display()
            ),
            Self::Malformed { path, reason } => {
                write!(f, "signing key file {} is malformed: {reason}", path.display())
            }
            Self::BadPublicKey(reason) => write!(f, "bad manifest public key: {reason}"),
        }
    }
}

impl std::error::Error for KeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn malformed(reason: impl Into<String>) -> ManifestError {
    ManifestError::Malformed {
        reason: reason.into(),
    }
}

/// A text field's rule: 1 to MANIFEST_TEXT_BYTES_MAX bytes of printable
/// ASCII (space included) with no space at either end.
fn check_text(field: &str, value: &str) -> Result<(), ManifestError> {
    if value.is_empty() || value.len() > MANIFEST_TEXT_BYTES_MAX {
        return Err(malformed(format!(
            "`{field}` must have 1 to {MANIFEST_TEXT_BYTES_MAX} bytes"
        )));
    }
    if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(malformed(format!("`{field}` must be printable ASCII")));
    }
    if value.starts_with(' ') || value.ends_with(' ') {
        return Err(malformed(format!(
            "`{field}` must not begin or end with a space"
        )));
    }
    Ok(())
}

/// The line reader of [`verify`]: `name value\n` lines in a fixed order.
struct Fields<'a> {
    text: &'a str,
    consumed: usize,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, consumed: 0 }
    }

    fn next_line(&mut self) -> Result<&'a str, ManifestError> {
        let rest = &self.text[self.consumed..];
        let end = rest
            .find('\n')
            .ok_or_else(|| malformed("truncated: a line has no newline"))?;
        self.consumed += end + 1;
        Ok(&rest[..end])
    }

    fn value(&mut self, name: &str) -> Result<&'a str, ManifestError> {
        let line = self.next_line()?;
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .ok_or_else(|| malformed(format!("expected the `{name}` line")))
    }

    fn text(&mut self, name: &str) -> Result<&'a str, ManifestError> {
        let value = self.value(name)?;
        check_text(name, value)?;
        Ok(value)
    }

    fn hex<const N: usize>(&mut self, name: &str) -> Result<[u8; N], ManifestError> {
        let value = self.value(name)?;
        from_hex::<N>(value)
            .ok_or_else(|| malformed(format!("`{name}` must be {} lowercase hex digits", 2 * N)))
    }

    fn decimal(&mut self, name: &str) -> Result<u64, ManifestError> {
        let value = self.value(name)?;
        let canonical = !value.is_empty()
            && value.bytes().all(|b| b.is_ascii_digit())
            && (value == "0" || !value.starts_with('0'));
        canonical
            .then(|| value.parse().ok())
            .flatten()
            .ok_or_else(|| {
                malformed(format!(
                    "`{name}` must be a decimal u64 without leading zeros"
                ))
            })
    }
}

#[cfg(test)]
mod tests;
