//! Object-store URLs: parsing `s3://`, `file://` and `memory://` and opening
//! the store each one names.
//!
//! `s3://bucket[/prefix]` takes its endpoint, credentials and region from
//! [`S3Settings`] (by default the standard `AWS_*` environment variables);
//! plain `http` endpoints are allowed on loopback only. `file:///dir` is a
//! folder on this machine (created if missing). `memory://` is a new empty
//! store in this process, for tests. Anything else is an error that lists
//! what is accepted.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

/// Region used when `AWS_REGION` is unset (what S3-compatible servers expect).
pub const DEFAULT_REGION: &str = "us-east-1";

/// What the accepted URLs look like, for error messages.
const ACCEPTED: &str = "s3://BUCKET[/PREFIX], file:///ABSOLUTE/DIR or memory://";

/// A parsed object-store URL.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ObjectStoreUrl {
    /// An S3-compatible bucket; every key is under `prefix` (may be empty).
    S3 { bucket: String, prefix: String },
    /// A folder of the local filesystem (absolute).
    File { dir: PathBuf },
    /// A new in-memory store (each [`ObjectStoreUrl::open`] makes its own).
    Memory,
}

impl fmt::Display for ObjectStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::File { dir } => write!(f, "file://{}", dir.display()),
            Self::Memory => f.write_str("memory://"),
        }
    }
}

impl std::str::FromStr for ObjectStoreUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        Self::parse(text)
    }
}

/// Why an object-store URL was refused.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("bad object-store URL `{url}`: {reason} (accepted: {ACCEPTED})")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The S3 endpoint is not an `http(s)://host[:port]` URL.
    #[error("bad S3 endpoint `{endpoint}` (AWS_ENDPOINT_URL): {reason}")]
    BadEndpoint { endpoint: String, reason: String },
    /// A plain-http endpoint that is not on loopback.
    #[error(
        "S3 endpoint `{endpoint}` uses plain http on a non-loopback host; use https \
         (http is allowed for 127.0.0.0/8, ::1 and localhost only)"
    )]
    InsecureEndpoint { endpoint: String },
    /// One of the key id and the secret is set without the other.
    #[error(
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (only {set} is set)"
    )]
    HalfCredentials { set: &'static str },
    /// The local folder could not be created or opened.
    #[error("object-store folder {}: {source}", dir.display())]
    Folder {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `object_store` refused the configuration.
    #[error("cannot open object store {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// Where an S3 store is and who we are to it; from the environment by default.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `AWS_ENDPOINT_URL`: `http(s)://host[:port]`; unset means AWS itself.
    pub endpoint: Option<String>,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN` (temporary credentials).
    pub session_token: Option<String>,
    /// `AWS_REGION` ([`DEFAULT_REGION`] when unset).
    pub region: Option<String>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: &Option<String>| value.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("region", &self.region)
            .finish()
    }
}

impl S3Settings {
    /// The settings in the standard `AWS_*` variables of this process (an
    /// empty variable counts as unset).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Self {
            endpoint: var("AWS_ENDPOINT_URL"),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            region: var("AWS_REGION"),
        }
    }
}

impl ObjectStoreUrl {
    /// Parses `s3://bucket[/prefix]`, `file:///absolute/dir` or `memory://`.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let error = |reason: &str| UrlError {
            url: text.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(error("no scheme"));
        };
        if rest.contains(['?', '#']) {
            return Err(error("query strings and fragments are not allowed"));
        }
        match scheme {
            "s3" => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                check_bucket(bucket).map_err(error)?;
                let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
                if !prefix.is_empty() {
                    let valid = prefix
                        .split('/')
                        .all(|part| !part.is_empty() && part != "." && part != "..")
                        && ObjectPath::parse(prefix).is_ok_and(|p| p.as_ref() == prefix);
                    if !valid {
                        return Err(error(
                            "the prefix must be `/`-separated names, none empty, `.` or `..`",
                        ));
                    }
                }
                Ok(Self::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                })
            }
            "file" => {
                if !rest.starts_with('/') {
                    return Err(error(
                        "a file URL names no host and an absolute folder: file:///path/to/dir",
                    ));
                }
                let dir = percent_decode(rest).ok_or_else(|| error("bad %-escape in the path"))?;
                if dir.split('/').any(|part| part == "." || part == "..") {
                    return Err(error("`.` and `..` are not allowed in the path"));
                }
                Ok(Self::File {
                    dir: PathBuf::from(dir),
                })
            }
            "memory" if rest.is_empty() => Ok(Self::Memory),
            "memory" => Err(error("memory:// takes nothing after the scheme")),
            "gs" | "az" | "azure" | "abfs" | "abfss" | "adl" => Err(error(
                "only S3-compatible stores are supported, not other clouds",
            )),
            "http" | "https" => Err(error(
                "an S3 store is s3://BUCKET; its endpoint goes in AWS_ENDPOINT_URL",
            )),
            _ => Err(error(&format!("unknown scheme `{scheme}`"))),
        }
    }

    /// Opens the store, taking S3 settings from the environment.
    pub fn open(&self) -> Result<Arc<dyn ObjectStore>, OpenError> {
        self.open_with(&S3Settings::from_env())
    }

    /// Opens the store with explicit S3 settings (ignored for other kinds).
    ///
    /// An S3 request is retried a few times within ten seconds
    /// ([`s3_retries`]) rather than `object_store`'s three minutes, so an
    /// outage reaches the caller (shipping's own backoff, its metrics and
    /// logs) while it lasts instead of hanging one request.
    pub fn open_with(&self, s3: &S3Settings) -> Result<Arc<dyn ObjectStore>, OpenError> {
        let store_error = |source| OpenError::Store {
            url: self.to_string(),
            source,
        };
        match self {
            Self::Memory => Ok(Arc::new(InMemory::new())),
            Self::File { dir } => {
                std::fs::create_dir_all(dir).map_err(|source| OpenError::Folder {
                    dir: dir.clone(),
                    source,
                })?;
                let store = LocalFileSystem::new_with_prefix(dir).map_err(store_error)?;
                Ok(Arc::new(store))
            }
            Self::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(s3.region.as_deref().unwrap_or(DEFAULT_REGION))
                    .with_retry(s3_retries())
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_connect_timeout(std::time::Duration::from_secs(5))
                            .with_timeout(std::time::Duration::from_secs(60)),
                    );
                if let Some(endpoint) = &s3.endpoint {
                    let loopback_http = check_endpoint(endpoint)?;
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_allow_http(loopback_http);
                }
                match (&s3.access_key_id, &s3.secret_access_key) {
                    (Some(id), Some(secret)) => {
                        builder = builder
                            .with_access_key_id(id)
                            .with_secret_access_key(secret);
                        if let Some(token) = &s3.session_token {
                            builder = builder.with_token(token);
                        }
                    }
                    (None, None) => {}
                    (Some(_), None) => {
                        return Err(OpenError::HalfCredentials {
                            set: "AWS_ACCESS_KEY_ID",
                        })
                    }
                    (None, Some(_)) => {
                        return Err(OpenError::HalfCredentials {
                            set: "AWS_SECRET_ACCESS_KEY",
                        })
                    }
                }
                let store = builder.build().map_err(store_error)?;
                if prefix.is_empty() {
                    Ok(Arc::new(store))
                } else {
                    Ok(Arc::new(PrefixStore::new(store, prefix.as_str())))
                }
            }
        }
    }
}

/// S3's bucket naming rules: 3 to 63 of `a-z 0-9 . -`, starting and ending
/// with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), &'static str> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = bucket.as_bytes();
    if bytes.is_empty() {
        return Err("no bucket name");
    }
    if !(3..=63).contains(&bytes.len())
        || !bytes.iter().all(|&b| alnum(b) || b == b'.' || b == b'-')
        || !alnum(bytes[0])
        || !alnum(bytes[bytes.len() - 1])
    {
        return Err("a bucket name is 3 to 63 of a-z, 0-9, `.` and `-`, starting and ending with a letter or digit");
    }
    Ok(())
}

/// Checks an endpoint URL; returns whether it is plain http on loopback
/// (which must be allowed explicitly).
fn check_endpoint(endpoint: &str) -> Result<bool, OpenError> {
    let bad = |reason: &str| OpenError::BadEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let (http, rest) = if let Some(rest) = endpoint.strip_prefix("http://") {
        (true, rest)
    } else if let Some(rest) = endpoint.strip_prefix("https://") {
        (false, rest)
    } else {
        return Err(bad("it must begin with http:// or https://"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("it must name a host (and no user)"));
    }
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed
            .split_once(']')
            .map(|(host, _)| host)
            .ok_or_else(|| bad("unclosed `[` in the host"))?
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if !http {
        return Ok(false);
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(OpenError::InsecureEndpoint {
            endpoint: endpoint.to_owned(),
        });
    }
    Ok(true)
}

/// Decodes `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The retries of one S3 request: transient failures (connection refused or
/// reset, 5xx, throttling) are retried with backoff from 100 ms, at most 4
/// times and 10 s in all.
pub fn s3_retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            ObjectStoreUrl::parse("s3://orrery-prod/eu/1").unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "orrery-prod".into(),
                prefix: "eu/1".into()
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("s3://test/").unwrap(),
            ObjectStoreUrl::S3 {
                bucket: "test".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("file:///var/lib/orrery%20data/objects").unwrap(),
            ObjectStoreUrl::File {
                dir: PathBuf::from("/var/lib/orrery data/objects")
            }
        );
        assert_eq!(
            ObjectStoreUrl::parse("memory://").unwrap(),
            ObjectStoreUrl::Memory
        );
        for text in ["s3://test/a/b", "s3://test", "memory://", "file:///tmp/x"] {
            assert_eq!(ObjectStoreUrl::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn refuses_other_urls_saying_why() {
        let cases = [
            ("", "no scheme"),
            ("/tmp/objects", "no scheme"),
            ("s3://", "no bucket name"),
            ("s3://ab", "bucket name"),
            ("s3://Upper", "bucket name"),
            ("s3://-dash", "bucket name"),
            ("s3://bucket//x", "prefix"),
            ("s3://bucket/a/../b", "prefix"),
            ("s3://bucket/a?x=1", "query"),
            ("file://host/dir", "names no host"),
            ("file://relative", "names no host"),
            ("file:///a/../b", "`..`"),
            ("file:///a%zz", "%-escape"),
            ("memory://x", "nothing after"),
            ("gs://bucket", "other clouds"),
            ("az://container", "other clouds"),
            ("https://s3.amazonaws.com/b", "AWS_ENDPOINT_URL"),
            ("ftp://x", "unknown scheme `ftp`"),
        ];
        for (text, expected) in cases {
            let err = ObjectStoreUrl::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(
                message.contains(expected) && message.contains("accepted: s3://"),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn http_endpoints_only_on_loopback() {
        for ok in [
            "http://127.0.0.1:8333",
            "http://127.1.2.3",
            "http://localhost:9000/",
            "http://[::1]:9000",
            "https://s3.example.com",
        ] {
            assert!(check_endpoint(ok).is_ok(), "{ok}");
        }
        assert!(check_endpoint("http://127.0.0.1:8333").unwrap());
        assert!(!check_endpoint("https://s3.example.com").unwrap());
        for insecure in [
            "http://10.0.0.1:9000",
            "http://s3.example.com",
            "http://[::2]",
        ] {
            assert!(
                matches!(
                    check_endpoint(insecure),
                    Err(OpenError::InsecureEndpoint { .. })
                ),
                "{insecure}"
            );
        }
        for bad in [
            "127.0.0.1:9000",
            "ftp://x",
            "http://",
            "http://u:p@127.0.0.1",
        ] {
            assert!(
                matches!(check_endpoint(bad), Err(OpenError::BadEndpoint { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn opening_s3_checks_endpoint_and_credentials() {
        let url = ObjectStoreUrl::parse("s3://test/p").unwrap();
        let settings = |endpoint: &str, id: Option<&str>, secret: Option<&str>| S3Settings {
            endpoint: Some(endpoint.to_owned()),
            access_key_id: id.map(str::to_owned),
            secret_access_key: secret.map(str::to_owned),
            ..S3Settings::default()
        };
        assert!(url
            .open_with(&settings("http://127.0.0.1:1", Some("k"), Some("s")))
            .is_ok());
        let err = url
            .open_with(&settings("http://192.168.1.1:9000", Some("k"), Some("s")))
            .unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        let err = url
            .open_with(&settings("http://127.0.0.1:1", Some("k"), None))
            .unwrap_err();
        assert!(err.to_string().contains("must be set together"), "{err}");
        // Secrets never appear in Debug output.
        let shown = format!(
            "{:?}",
            settings("http://127.0.0.1:1", Some("k"), Some("s3cret"))
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
