//! Server→client body compression (spec §4.4).
//!
//! Owns: the `compression` query values, the tag byte that starts every
//! server payload (`0` none, `1` Brotli, `2` gzip), the "only above 1024
//! bytes" rule, and the reference settings (Brotli quality 1, gzip fast).
//! Decompression is bounded so a hostile body cannot expand without limit.
//! Does not own: how bodies are built or batched (`framing`).

use std::io::{Read, Write};

use super::bsatn::DecodeError;

/// Bodies up to this many bytes are always sent uncompressed (tag 0).
pub const COMPRESSION_THRESHOLD: usize = 1024;

/// Tag byte of an uncompressed body.
pub const TAG_NONE: u8 = 0;
/// Tag byte of a Brotli body.
pub const TAG_BROTLI: u8 = 1;
/// Tag byte of a gzip body.
pub const TAG_GZIP: u8 = 2;

/// The compression a client asked for with `?compression=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    /// The server default when the parameter is absent.
    #[default]
    Brotli,
    Gzip,
}

impl Compression {
    /// Parses the query value; exact case (`None`, `Brotli`, `Gzip`).
    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Compression::None),
            "Brotli" => Some(Compression::Brotli),
            "Gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }

    /// The tag byte a body compressed this way carries.
    pub fn tag(self) -> u8 {
        match self {
            Compression::None => TAG_NONE,
            Compression::Brotli => TAG_BROTLI,
            Compression::Gzip => TAG_GZIP,
        }
    }
}

/// Builds a server payload: tag byte then body, compressed only when the
/// client asked for it and the body is larger than [`COMPRESSION_THRESHOLD`].
pub fn encode_payload(body: &[u8], compression: Compression) -> Vec<u8> {
    let mode = if body.len() > COMPRESSION_THRESHOLD {
        compression
    } else {
        Compression::None
    };
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(mode.tag());
    match mode {
        Compression::None => out.extend_from_slice(body),
        Compression::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: 1,
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)
                .expect("brotli into a Vec cannot fail");
        }
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            enc.write_all(body).expect("gzip into a Vec cannot fail");
            out = enc.finish().expect("gzip into a Vec cannot fail");
        }
    }
    out
}

/// Reads a server payload's tag byte and returns the decompressed body,
/// refusing bodies that expand beyond `max_body` bytes. (The server never
/// receives compressed data; this is the client side, for tests and tools.)
pub fn decode_payload(payload: &[u8], max_body: usize) -> Result<Vec<u8>, DecodeError> {
    let (&tag, body) = payload.split_first().ok_or(DecodeError::EmptyPayload)?;
    let mut out = Vec::new();
    let limit = max_body as u64 + 1;
    let read = match tag {
        TAG_NONE => {
            out.extend_from_slice(body);
            Ok(body.len())
        }
        TAG_BROTLI => brotli::Decompressor::new(body, 4096)
            .take(limit)
            .read_to_end(&mut out),
        TAG_GZIP => flate2::read::GzDecoder::new(body)
            .take(limit)
            .read_to_end(&mut out),
        other => return Err(DecodeError::UnknownCompression(other)),
    };
    read.map_err(|e| DecodeError::Decompress(e.to_string()))?;
    if out.len() > max_body {
        return Err(DecodeError::TooLarge {
            len: out.len(),
            limit: max_body,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big_body() -> Vec<u8> {
        (0..5000u32).flat_map(|i| (i % 7).to_le_bytes()).collect()
    }

    #[test]
    fn small_bodies_are_never_compressed() {
        let body = vec![7u8; COMPRESSION_THRESHOLD];
        for mode in [Compression::None, Compression::Brotli, Compression::Gzip] {
            let payload = encode_payload(&body, mode);
            assert_eq!(payload[0], TAG_NONE);
            assert_eq!(&payload[1..], &body[..]);
        }
    }

    #[test]
    fn large_bodies_round_trip_through_each_mode() {
        let body = big_body();
        for (mode, tag) in [
            (Compression::None, TAG_NONE),
            (Compression::Brotli, TAG_BROTLI),
            (Compression::Gzip, TAG_GZIP),
        ] {
            let payload = encode_payload(&body, mode);
            assert_eq!(payload[0], tag);
            if mode != Compression::None {
                assert!(payload.len() < body.len() / 4, "{mode:?} did not compress");
            }
            assert_eq!(decode_payload(&payload, body.len()).unwrap(), body);
        }
    }

    #[test]
    fn gzip_uses_the_standard_container() {
        let payload = encode_payload(&big_body(), Compression::Gzip);
        // gzip magic and deflate method (RFC 1952).
        assert_eq!(&payload[1..4], &[0x1f, 0x8b, 0x08]);
    }

    #[test]
    fn decompression_is_bounded() {
        let body = big_body();
        for mode in [Compression::Brotli, Compression::Gzip] {
            let payload = encode_payload(&body, mode);
            assert_eq!(
                decode_payload(&payload, 100),
                Err(DecodeError::TooLarge {
                    len: 101,
                    limit: 100
                })
            );
        }
    }

    #[test]
    fn bad_tags_and_bodies_are_errors() {
        assert_eq!(decode_payload(&[], 10), Err(DecodeError::EmptyPayload));
        assert_eq!(
            decode_payload(&[3, 1, 2], 10),
            Err(DecodeError::UnknownCompression(3))
        );
        assert!(matches!(
            decode_payload(&[TAG_GZIP, 1, 2, 3], 10),
            Err(DecodeError::Decompress(_))
        ));
    }

    #[test]
    fn query_values_are_case_sensitive() {
        assert_eq!(Compression::from_query("Gzip"), Some(Compression::Gzip));
        assert_eq!(Compression::from_query("gzip"), None);
        assert_eq!(Compression::from_query("None"), Some(Compression::None));
        assert_eq!(Compression::default(), Compression::Brotli);
    }
}
