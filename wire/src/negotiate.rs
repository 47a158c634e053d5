//! Choosing the subprotocol and connection options of a WebSocket upgrade
//! (spec §4.1–§4.2).
//!
//! Owns: picking v3 over v2 among the offered `Sec-WebSocket-Protocol`
//! tokens, and parsing the `compression`, `confirmed` and `light` query
//! parameters into [`Negotiated`]; errors map to HTTP 400.
//! Does not own: `token` and `connection_id` (authentication), nor the
//! upgrade response itself.

use super::compression::Compression;
use super::framing::Protocol;

/// What an upgrade request settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub protocol: Protocol,
    pub compression: Compression,
    /// Hold messages carrying query results until durable (default true).
    pub confirmed: bool,
}

/// Why an upgrade is refused (all HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no valid protocol selected")]
    NoValidProtocol,
    #[error("invalid compression {0:?} (expected None, Brotli or Gzip)")]
    BadCompression(String),
    #[error("invalid value {value:?} for {param} (expected true or false)")]
    BadBool { param: &'static str, value: String },
}

/// Picks the best protocol among the offers; each item is one
/// `Sec-WebSocket-Protocol` header value (a comma-separated list).
/// Preference is the server's: v3, then v2. Unknown tokens (v1) are ignored.
pub fn choose_protocol<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
) -> Result<Protocol, NegotiationError> {
    header_values
        .into_iter()
        .flat_map(|value| value.split(','))
        .filter_map(|token| Protocol::from_token(token.trim()))
        .max()
        .ok_or(NegotiationError::NoValidProtocol)
}

fn parse_bool(param: &'static str, value: &str) -> Result<bool, NegotiationError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(NegotiationError::BadBool {
            param,
            value: value.to_owned(),
        }),
    }
}

/// Settles protocol and options from the offered subprotocols and the
/// (already percent-decoded) query parameters. Unknown parameters and
/// `light` (meaningful only for v1) are ignored.
pub fn negotiate<'a>(
    header_values: impl IntoIterator<Item = &'a str>,
    query: &[(&str, &str)],
) -> Result<Negotiated, NegotiationError> {
    let protocol = choose_protocol(header_values)?;
    let mut compression = Compression::default();
    let mut confirmed = true;
    for &(key, value) in query {
        match key {
            "compression" => {
                compression = Compression::from_query(value)
                    .ok_or_else(|| NegotiationError::BadCompression(value.to_owned()))?;
            }
            "confirmed" => confirmed = parse_bool("confirmed", value)?,
            _ => {}
        }
    }
    Ok(Negotiated {
        protocol,
        compression,
        confirmed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_prefers_v3_whatever_the_order() {
        let ts = "v3.bsatn.spacetimedb, v2.bsatn.spacetimedb";
        assert_eq!(choose_protocol([ts]), Ok(Protocol::V3));
        assert_eq!(
            choose_protocol(["v2.bsatn.spacetimedb,v3.bsatn.spacetimedb"]),
            Ok(Protocol::V3)
        );
        assert_eq!(
            choose_protocol(["v1.json.spacetimedb", "v2.bsatn.spacetimedb"]),
            Ok(Protocol::V2)
        );
        assert_eq!(Protocol::V3.token(), "v3.bsatn.spacetimedb");
    }

    #[test]
    fn no_acceptable_token_is_refused() {
        for offers in [
            vec![],
            vec!["v1.json.spacetimedb, v1.bsatn.spacetimedb"],
            vec!["V2.BSATN.SPACETIMEDB"],
        ] {
            let err = choose_protocol(offers).unwrap_err();
            assert_eq!(err, NegotiationError::NoValidProtocol);
            assert_eq!(err.to_string(), "no valid protocol selected");
        }
    }

    #[test]
    fn sdk_requests_negotiate_as_the_spec_says() {
        // TS SDK (§7): v3 + gzip, confirmed defaults to true.
        let ts = negotiate(
            ["v3.bsatn.spacetimedb, v2.bsatn.spacetimedb"],
            &[("compression", "Gzip"), ("light", "true")],
        );
        assert_eq!(
            ts,
            Ok(Negotiated {
                protocol: Protocol::V3,
                compression: Compression::Gzip,
                confirmed: true
            })
        );
        // Rust SDK: v2, default Brotli, explicit confirmed=false.
        let rust = negotiate(
            ["v2.bsatn.spacetimedb"],
            &[("confirmed", "false"), ("connection_id", "ab")],
        );
        assert_eq!(
            rust,
            Ok(Negotiated {
                protocol: Protocol::V2,
                compression: Compression::Brotli,
                confirmed: false
            })
        );
    }

    #[test]
    fn bad_parameters_are_refused() {
        let v2 = ["v2.bsatn.spacetimedb"];
        assert_eq!(
            negotiate(v2, &[("compression", "gzip")]),
            Err(NegotiationError::BadCompression("gzip".into()))
        );
        assert_eq!(
            negotiate(v2, &[("confirmed", "yes")]),
            Err(NegotiationError::BadBool {
                param: "confirmed",
                value: "yes".into()
            })
        );
    }
}
