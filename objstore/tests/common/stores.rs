//! Test support shared by the objstore tests: one fixture per store kind.
//!
//! The S3 kind runs against the server `scripts/s3` starts (it exports
//! `ORRERY_TEST_S3_ENDPOINT`, `ORRERY_TEST_S3_BUCKET` and the `AWS_*` keys).
//! Without it a test skips with a message on stderr, except under `CI=true`,
//! where a missing server fails the test.

#![allow(dead_code)]

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orrery_objstore::object_store::ObjectStore;
use orrery_objstore::{ModuleStore, ObjectStoreUrl, S3Settings};

/// The store kinds every test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Memory,
    File,
    S3,
}

/// One opened store: the URL it came from, the raw store and the module
/// store over it. Holds the temporary folder of a `file://` store.
pub(crate) struct Fixture {
    pub(crate) url: ObjectStoreUrl,
    pub(crate) settings: S3Settings,
    pub(crate) raw: Arc<dyn ObjectStore>,
    pub(crate) modules: ModuleStore,
    pub(crate) dir: Option<tempfile::TempDir>,
}

impl Fixture {
    /// A fresh, empty store of `kind` (a unique prefix of the test bucket for
    /// S3), or `None` when the S3 server is absent outside CI.
    pub(crate) fn open(kind: Kind, test: &str) -> Option<Self> {
        let (url, settings, dir) = match kind {
            Kind::Memory => (ObjectStoreUrl::Memory, S3Settings::default(), None),
            Kind::File => {
                let dir = tempfile::tempdir().expect("temporary folder");
                let url = ObjectStoreUrl::File {
                    dir: dir.path().join("objects"),
                };
                (url, S3Settings::default(), Some(dir))
            }
            Kind::S3 => {
                let settings = s3_settings(test)?;
                let url =
                    ObjectStoreUrl::parse(&format!("s3://{}/{}", s3_bucket(), unique_prefix(test)))
                        .expect("test URL parses");
                (url, settings, None)
            }
        };
        let raw = url.open_with(&settings).expect("open the test store");
        Some(Self {
            modules: ModuleStore::new(raw.clone()),
            url,
            settings,
            raw,
            dir,
        })
    }
}

/// The S3 test server's settings, or `None` (after saying so) when there is
/// none and this is not CI. Panics under `CI=true` without a server.
pub(crate) fn s3_settings(test: &str) -> Option<S3Settings> {
    match std::env::var("ORRERY_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(S3Settings {
            endpoint: Some(endpoint),
            ..S3Settings::from_env()
        }),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "CI=true but ORRERY_TEST_S3_ENDPOINT is unset: run the tests through \
             ./scripts/test, which starts the S3 server (scripts/s3)"
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} against S3: ORRERY_TEST_S3_ENDPOINT is unset \
                 (./scripts/test starts a SeaweedFS server; or `source scripts/s3 && s3_start`)"
            );
            None
        }
    }
}

/// The test bucket (`ORRERY_TEST_S3_BUCKET`, default `test`).
pub(crate) fn s3_bucket() -> String {
    std::env::var("ORRERY_TEST_S3_BUCKET")
        .ok()
        .filter(|bucket| !bucket.is_empty())
        .unwrap_or_else(|| "test".to_owned())
}

/// A prefix no other test or run uses: the test's name, the process id, the
/// time and a counter.
pub(crate) fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!(
        "orrery-tests/{}-{}-{nanos}-{}",
        test.replace('_', "-"),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Declares `mod $scenario { memory, file, s3 }`, three Tokio tests that run
/// `$scenario(Kind::…)` on a two-thread runtime (so racing tasks really race).
macro_rules! for_each_store {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario(Kind::Memory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn file() {
                super::$scenario(Kind::File).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$scenario(Kind::S3).await;
            }
        }
    )*};
}
