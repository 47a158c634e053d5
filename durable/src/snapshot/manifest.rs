//! The snapshot manifest: its in-memory form and its v1 byte format.
//!
//! Owns: [`Manifest`] encoding and decoding, [`ObjectHash`], and the format
//! limits ([`NAME_BYTES_MAX`], [`MIN_ENCODED_LEN`]).
//! Does not own: where manifests are stored or when they are trusted; the
//! repository checks that the offset inside matches the key it came from.
//!
//! v1 layout, all integers little-endian (`docs/design/snapshot.md` has the
//! full table):
//!
//! ```text
//! magic "ORRYSNAP" (8) | version u32 = 1 | tx_offset u64 | created_at_micros i64
//! | part_count u32 | metadata_len u32 | metadata (metadata_len bytes)
//! | part_count × { name_len u16 | name UTF-8 | blake3 [32] | len u64 | row_count u64 }
//! | checksum [32] = blake3(every preceding byte)
//! ```
//!
//! Invariants:
//! - `decode` never allocates more than the input's length: every length read
//!   from the bytes is checked against the bytes remaining before it is used.
//! - `decode(encode(m)) == m` for every manifest `encode` accepts; the
//!   repository asserts this on each write.

use std::fmt;

use orrery_api::TxOffset;

use super::error::ManifestError;

/// First bytes of every manifest.
pub const MAGIC: [u8; 8] = *b"ORRYSNAP";
/// The format version this code writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// Longest part name, in UTF-8 bytes.
pub const NAME_BYTES_MAX: usize = 1024;
/// Fixed header bytes before the metadata.
const HEADER_LEN: usize = 8 + 4 + 8 + 8 + 4 + 4;
/// Bytes of the trailing checksum.
const CHECKSUM_LEN: usize = 32;
/// Smallest possible manifest: header, no metadata, no parts, checksum.
pub const MIN_ENCODED_LEN: usize = HEADER_LEN + CHECKSUM_LEN;
/// Smallest encoded part entry (a one-byte name).
const MIN_PART_LEN: usize = 2 + 1 + 32 + 8 + 8;

/// A BLAKE3 hash of an object's bytes; displayed as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectHash(pub [u8; 32]);

impl ObjectHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        ObjectHash(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex, as used in object keys.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses exactly 64 lowercase hex digits (the only form this crate writes).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        blake3::Hash::from_hex(s)
            .ok()
            .map(|h| ObjectHash(*h.as_bytes()))
    }
}

impl fmt::Display for ObjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectHash({})", self.to_hex())
    }
}

/// One part as recorded in a manifest: a name and the identity of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPart {
    pub name: String,
    pub hash: ObjectHash,
    pub len: u64,
    pub row_count: u64,
}

/// The decoded contents of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub offset: TxOffset,
    pub created_at_micros: i64,
    /// Opaque caller bytes stored with the snapshot.
    pub metadata: Vec<u8>,
    pub parts: Vec<ManifestPart>,
}

impl Manifest {
    /// Whether `other` describes the same snapshot contents (everything but
    /// the creation time), used to make re-publishing idempotent.
    pub fn same_contents(&self, other: &Manifest) -> bool {
        self.offset == other.offset && self.metadata == other.metadata && self.parts == other.parts
    }

    /// Encodes as format v1.
    ///
    /// # Panics
    /// If a name is empty or longer than [`NAME_BYTES_MAX`], or there are more
    /// than `u32::MAX` parts or metadata bytes: callers validate these first,
    /// so reaching here with them is a bug.
    pub fn encode(&self) -> Vec<u8> {
        let part_count =
            u32::try_from(self.parts.len()).expect("part count validated by the caller");
        let metadata_len =
            u32::try_from(self.metadata.len()).expect("metadata length validated by the caller");
        let names: usize = self.parts.iter().map(|p| p.name.len()).sum();
        let mut out = Vec::with_capacity(
            MIN_ENCODED_LEN + self.metadata.len() + self.parts.len() * (MIN_PART_LEN - 1) + names,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.offset.0.to_le_bytes());
        out.extend_from_slice(&self.created_at_micros.to_le_bytes());
        out.extend_from_slice(&part_count.to_le_bytes());
        out.extend_from_slice(&metadata_len.to_le_bytes());
        out.extend_from_slice(&self.metadata);
        for p in &self.parts {
            assert!(
                !p.name.is_empty() && p.name.len() <= NAME_BYTES_MAX,
                "part name length {} validated by the caller",
                p.name.len()
            );
            out.extend_from_slice(&(p.name.len() as u16).to_le_bytes());
            out.extend_from_slice(p.name.as_bytes());
            out.extend_from_slice(&p.hash.0);
            out.extend_from_slice(&p.len.to_le_bytes());
            out.extend_from_slice(&p.row_count.to_le_bytes());
        }
        let checksum = blake3::hash(&out);
        out.extend_from_slice(checksum.as_bytes());
        out
    }

    /// Decodes and verifies v1 bytes. Untrusted input is fine: every failure is
    /// a [`ManifestError`], and nothing is allocated beyond `bytes.len()`.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() < MIN_ENCODED_LEN {
            return Err(ManifestError::TooShort {
                len: bytes.len(),
                min: MIN_ENCODED_LEN,
            });
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[..8]);
        if magic != MAGIC {
            return Err(ManifestError::BadMagic { found: magic });
        }
        // Version before checksum: a future version may checksum differently,
        // and "unsupported version" is the more useful error then.
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4-byte slice"));
        if version != FORMAT_VERSION {
            return Err(ManifestError::UnsupportedVersion { found: version });
        }
        let (body, stored) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        let computed = ObjectHash::of(body);
        let stored = ObjectHash(stored.try_into().expect("32-byte slice"));
        if computed != stored {
            return Err(ManifestError::Checksum { stored, computed });
        }

        // The checksum proves the bytes are what some writer produced, not that
        // the writer was correct, so parsing stays fully defensive.
        let mut r = Reader {
            bytes: body,
            at: 12,
        };
        let offset = TxOffset(r.u64("tx_offset")?);
        let created_at_micros = r.u64("created_at_micros")? as i64;
        let part_count = r.u32("part_count")?;
        let metadata_len = r.u32("metadata_len")?;
        let metadata = r.take("metadata", u64::from(metadata_len))?.to_vec();
        // Bound the capacity by what the remaining bytes could possibly hold.
        let mut parts = Vec::with_capacity((part_count as usize).min(r.remaining() / MIN_PART_LEN));
        let mut seen = std::collections::HashSet::new();
        for index in 0..part_count {
            let name_len = r.u16("name_len")?;
            let name_bytes = r.take("name", u64::from(name_len))?;
            if name_bytes.is_empty() {
                return Err(ManifestError::EmptyName { index });
            }
            let name = std::str::from_utf8(name_bytes)
                .map_err(|_| ManifestError::NameNotUtf8 { index })?
                .to_owned();
            let hash = ObjectHash(r.take("hash", 32)?.try_into().expect("32-byte slice"));
            let len = r.u64("len")?;
            let row_count = r.u64("row_count")?;
            if !seen.insert(name.clone()) {
                return Err(ManifestError::DuplicateName { name });
            }
            parts.push(ManifestPart {
                name,
                hash,
                len,
                row_count,
            });
        }
        if r.remaining() != 0 {
            return Err(ManifestError::TrailingBytes {
                count: r.remaining(),
            });
        }
        Ok(Manifest {
            offset,
            created_at_micros,
            metadata,
            parts,
        })
    }
}

/// Bounds-checked little-endian reader over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, field: &'static str, n: u64) -> Result<&'a [u8], ManifestError> {
        let remaining = self.remaining();
        if n > remaining as u64 {
            return Err(ManifestError::Truncated {
                field,
                at: self.at,
                needed: n,
                remaining,
            });
        }
        let n = n as usize;
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, ManifestError> {
        Ok(u16::from_le_bytes(
            self.take(field, 2)?.try_into().expect("2-byte slice"),
        ))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ManifestError> {
        Ok(u32::from_le_bytes(
            self.take(field, 4)?.try_into().expect("4-byte slice"),
        ))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ManifestError> {
        Ok(u64::from_le_bytes(
            self.take(field, 8)?.try_into().expect("8-byte slice"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Manifest {
        Manifest {
            offset: TxOffset(42),
            created_at_micros: -7,
            metadata: b"schema v3".to_vec(),
            parts: vec![
                ManifestPart {
                    name: "users".into(),
                    hash: ObjectHash::of(b"u"),
                    len: 1,
                    row_count: 9,
                },
                ManifestPart {
                    name: "métadonnées".into(),
                    hash: ObjectHash::of(b""),
                    len: 0,
                    row_count: 0,
                },
            ],
        }
    }

    /// Re-seals a body with a correct checksum, to reach the structural checks.
    fn reseal(mut body: Vec<u8>) -> Vec<u8> {
        let c = blake3::hash(&body);
        body.extend_from_slice(c.as_bytes());
        body
    }

    // Protects: the exact v1 header layout (field order and little-endian encoding).
    #[test]
    fn header_layout_is_stable() {
        let m = Manifest {
            offset: TxOffset(0x0102),
            created_at_micros: 3,
            metadata: vec![],
            parts: vec![],
        };
        let b = m.encode();
        assert_eq!(b.len(), MIN_ENCODED_LEN);
        assert_eq!(&b[..8], b"ORRYSNAP");
        assert_eq!(&b[8..12], &[1, 0, 0, 0]);
        assert_eq!(&b[12..20], &[2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[20..28], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[28..36], &[0; 8]);
        assert_eq!(&b[36..], blake3::hash(&b[..36]).as_bytes());
    }

    // Protects: encode/decode round trip, including metadata and non-ASCII names.
    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::decode(&m.encode()), Ok(m));
    }

    // Protects: every truncation and every single-bit flip is rejected, never misread.
    #[test]
    fn damage_is_always_detected() {
        let b = sample().encode();
        for len in 0..b.len() {
            assert!(Manifest::decode(&b[..len]).is_err(), "truncated to {len}");
        }
        for bit in 0..b.len() * 8 {
            let mut d = b.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            assert!(Manifest::decode(&d).is_err(), "bit {bit}");
        }
    }

    // Protects: huge counts/lengths in a correctly checksummed manifest fail cleanly
    // without allocating from the untrusted number.
    #[test]
    fn untrusted_lengths_do_not_allocate() {
        let mut body = sample().encode();
        body.truncate(body.len() - CHECKSUM_LEN);
        let mut huge_parts = body.clone();
        huge_parts[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Manifest::decode(&reseal(huge_parts)),
            Err(ManifestError::Truncated { .. })
        ));
        let mut huge_meta = body.clone();
        huge_meta[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Manifest::decode(&reseal(huge_meta)),
            Err(ManifestError::Truncated {
                field: "metadata",
                ..
            })
        ));
        let mut trailing = body.clone();
        trailing.push(0);
        assert_eq!(
            Manifest::decode(&reseal(trailing)),
            Err(ManifestError::TrailingBytes { count: 1 })
        );
        let mut future = body;
        future[8] = 2;
        assert_eq!(
            Manifest::decode(&reseal(future)),
            Err(ManifestError::UnsupportedVersion { found: 2 })
        );
    }

    // Protects: hashes print and parse as the lowercase hex used in object keys.
    #[test]
    fn hash_hex() {
        let h = ObjectHash::of(b"abc");
        assert_eq!(ObjectHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(ObjectHash::from_hex(&h.to_hex().to_uppercase()), None);
        assert_eq!(ObjectHash::from_hex("abc"), None);
    }

    proptest! {
        // Protects: decode is total on arbitrary input (no panic, no huge allocation).
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Manifest::decode(&bytes);
            let mut sealed = MAGIC.to_vec();
            sealed.extend_from_slice(&1u32.to_le_bytes());
            sealed.extend_from_slice(&bytes);
            let _ = Manifest::decode(&reseal(sealed));
        }
    }
}
