//! `ModuleStore` against every store kind: round trips, idempotent puts,
//! tampered and missing objects, and bad URLs.

#[macro_use]
#[path = "common/stores.rs"]
mod stores;

use orrery_api::manifest::{Manifest, ManifestError, SignedManifest, SigningKey};
use orrery_objstore::object_store::path::Path as ObjectPath;
use orrery_objstore::object_store::{ObjectStore, PutPayload};
use orrery_objstore::{ModuleHash, ModuleStore, ModuleStoreError, ObjectStoreUrl, OpenError};
use stores::{Fixture, Kind};

const WASM: &[u8] = b"\0asm\x01\0\0\0 the bytes of a module, long enough to flip a few";
const OTHER_WASM: &[u8] = b"\0asm\x01\0\0\0 another module";

fn key() -> SigningKey {
    SigningKey::from_seed([7; 32])
}

fn signed(wasm: &[u8]) -> SignedManifest {
    let manifest = Manifest::for_module("chat", wasm, 3, "acc_1", 1_765_000_000_000).unwrap();
    key().sign(&manifest)
}

async fn raw_get(store: &dyn ObjectStore, path: &ObjectPath) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// Replaces the object at `path` by its bytes with byte `at` XOR `mask`.
async fn flip_byte(store: &dyn ObjectStore, path: &ObjectPath, at: usize, mask: u8) {
    let mut bytes = raw_get(store, path).await;
    bytes[at] ^= mask;
    store.put(path, PutPayload::from(bytes)).await.unwrap();
}

for_each_store!(
    round_trip_and_idempotent_put,
    flipped_module_byte_is_refused,
    flipped_manifest_byte_is_refused,
    missing_objects_are_not_found,
    another_key_or_another_modules_manifest_is_refused,
);

async fn round_trip_and_idempotent_put(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "round_trip") else {
        return;
    };
    let signed = signed(WASM);
    let hash = fx.modules.publish(WASM, &signed).await.unwrap();
    assert_eq!(hash, ModuleHash::of(WASM));
    assert_eq!(
        hash.wasm_path().as_ref(),
        format!("modules/{hash}.wasm").as_str()
    );
    assert_eq!(fx.modules.get_module(&hash).await.unwrap(), WASM);
    assert_eq!(
        fx.modules.get_manifest(&hash).await.unwrap(),
        signed.as_bytes()
    );

    // The same put again (and each half again) succeeds and changes nothing.
    assert_eq!(fx.modules.publish(WASM, &signed).await.unwrap(), hash);
    assert_eq!(fx.modules.put_module(WASM).await.unwrap(), hash);
    fx.modules.put_manifest(&signed).await.unwrap();
    assert_eq!(raw_get(&*fx.raw, &hash.wasm_path()).await, WASM);
    assert_eq!(
        raw_get(&*fx.raw, &hash.manifest_path()).await,
        signed.as_bytes()
    );

    let loaded = fx
        .modules
        .load_verified(&hash, &key().verifying_key())
        .await
        .unwrap();
    assert_eq!(loaded.wasm, WASM);
    assert_eq!(&loaded.manifest, signed.manifest());

    // A second module lives beside the first.
    let other = fx
        .modules
        .publish(OTHER_WASM, &self::signed(OTHER_WASM))
        .await
        .unwrap();
    assert_ne!(other, hash);
    assert_eq!(fx.modules.get_module(&other).await.unwrap(), OTHER_WASM);
    assert_eq!(fx.modules.get_module(&hash).await.unwrap(), WASM);

    // The objects are where the layout says, under the URL's prefix.
    if kind == Kind::S3 {
        let ObjectStoreUrl::S3 { prefix, .. } = &fx.url else {
            unreachable!("an S3 fixture has an S3 URL")
        };
        let unprefixed = ObjectStoreUrl::parse(&format!("s3://{}", stores::s3_bucket()))
            .unwrap()
            .open_with(&fx.settings)
            .unwrap();
        let full = ObjectPath::from(format!("{prefix}/modules/{hash}.wasm"));
        assert_eq!(raw_get(&*unprefixed, &full).await, WASM);
    }
}

async fn flipped_module_byte_is_refused(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "flipped_module") else {
        return;
    };
    let hash = fx.modules.publish(WASM, &signed(WASM)).await.unwrap();
    let public = key().verifying_key();
    for at in [0, WASM.len() / 2, WASM.len() - 1] {
        flip_byte(&*fx.raw, &hash.wasm_path(), at, 0x01).await;
        let err = fx.modules.load_verified(&hash, &public).await.unwrap_err();
        match &err {
            ModuleStoreError::BadModule {
                path,
                source: ManifestError::HashMismatch { expected, .. },
            } => {
                assert_eq!(path, &hash.wasm_path().to_string());
                assert_eq!(expected, &hash.to_string());
            }
            other => panic!("expected a hash mismatch, got {other:?}"),
        }
        assert!(err.is_refusal());
        assert!(
            err.to_string().contains("do not match their manifest"),
            "{err}"
        );
        // get checks nothing: it returns the tampered bytes.
        assert_ne!(fx.modules.get_module(&hash).await.unwrap(), WASM);
        // Putting the module again repairs it.
        fx.modules.put_module(WASM).await.unwrap();
        fx.modules.load_verified(&hash, &public).await.unwrap();
    }
    // A truncated module is refused the same way.
    fx.raw
        .put(&hash.wasm_path(), PutPayload::from(WASM[..10].to_vec()))
        .await
        .unwrap();
    assert!(matches!(
        fx.modules.load_verified(&hash, &public).await,
        Err(ModuleStoreError::BadModule { .. })
    ));
}

async fn flipped_manifest_byte_is_refused(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "flipped_manifest") else {
        return;
    };
    let signed = signed(WASM);
    let hash = fx.modules.publish(WASM, &signed).await.unwrap();
    let public = key().verifying_key();
    let text = std::str::from_utf8(signed.as_bytes()).unwrap();
    let at = |needle: &str| text.find(needle).unwrap() + needle.len();

    // A flipped digit of the version: still well formed, signature fails.
    flip_byte(&*fx.raw, &hash.manifest_path(), at("version "), 0x01).await;
    let err = fx.modules.load_verified(&hash, &public).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ModuleStoreError::BadManifest { path, source: ManifestError::BadSignature { .. } }
                if *path == hash.manifest_path().to_string()
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("bad module manifest signature"),
        "{err}"
    );
    fx.modules.put_manifest(&signed).await.unwrap();

    // A flipped signature digit: the signature fails, or the manifest is
    // malformed when the digit stops being lowercase hex.
    for (offset, mask) in [(0, 0x01), (77, 0x01), (127, 0x20)] {
        flip_byte(
            &*fx.raw,
            &hash.manifest_path(),
            at("signature ") + offset,
            mask,
        )
        .await;
        let err = fx.modules.load_verified(&hash, &public).await.unwrap_err();
        assert!(
            matches!(
                &err,
                ModuleStoreError::BadManifest {
                    source: ManifestError::BadSignature { .. } | ManifestError::Malformed { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        fx.modules.put_manifest(&signed).await.unwrap();
    }

    // A flipped byte of the format line: malformed.
    flip_byte(&*fx.raw, &hash.manifest_path(), 0, 0x20).await;
    let err = fx.modules.load_verified(&hash, &public).await.unwrap_err();
    assert!(
        matches!(
            &err,
            ModuleStoreError::BadManifest {
                source: ManifestError::Malformed { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_refusal());
    fx.modules.put_manifest(&signed).await.unwrap();
    fx.modules.load_verified(&hash, &public).await.unwrap();

    // A manifest replaced by a huge object is refused without reading it whole.
    fx.raw
        .put(
            &hash.manifest_path(),
            PutPayload::from(vec![b'x'; 64 * 1024]),
        )
        .await
        .unwrap();
    assert!(matches!(
        fx.modules.load_verified(&hash, &public).await,
        Err(ModuleStoreError::BadManifest {
            source: ManifestError::Malformed { .. },
            ..
        })
    ));
}

async fn missing_objects_are_not_found(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "missing") else {
        return;
    };
    let public = key().verifying_key();
    let hash = ModuleHash::of(WASM);
    let not_found = |result: Result<_, ModuleStoreError>, path: ObjectPath| match result {
        Err(ModuleStoreError::NotFound { path: found }) => {
            assert_eq!(found, path.to_string())
        }
        other => panic!("expected not found at {path}, got {other:?}"),
    };
    not_found(
        fx.modules.get_module(&hash).await.map(|_| ()),
        hash.wasm_path(),
    );
    not_found(
        fx.modules.get_manifest(&hash).await.map(|_| ()),
        hash.manifest_path(),
    );
    not_found(
        fx.modules.load_verified(&hash, &public).await.map(|_| ()),
        hash.manifest_path(),
    );

    // A manifest without its module: the module is what is missing.
    fx.modules.put_manifest(&signed(WASM)).await.unwrap();
    let err = fx.modules.load_verified(&hash, &public).await.unwrap_err();
    assert!(!err.is_refusal());
    assert!(err.to_string().contains("not found"), "{err}");
    not_found(Err(err), hash.wasm_path());

    // A module without its manifest is not loadable (unsigned).
    let other = fx.modules.put_module(OTHER_WASM).await.unwrap();
    not_found(
        fx.modules.load_verified(&other, &public).await.map(|_| ()),
        other.manifest_path(),
    );

    // Deleted after a good load: not found again.
    fx.modules.put_module(WASM).await.unwrap();
    fx.modules.load_verified(&hash, &public).await.unwrap();
    fx.raw.delete(&hash.wasm_path()).await.unwrap();
    not_found(
        fx.modules.load_verified(&hash, &public).await.map(|_| ()),
        hash.wasm_path(),
    );
}

async fn another_key_or_another_modules_manifest_is_refused(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "foreign") else {
        return;
    };
    let hash = fx.modules.publish(WASM, &signed(WASM)).await.unwrap();
    let stranger = SigningKey::from_seed([8; 32]).verifying_key();
    match fx.modules.load_verified(&hash, &stranger).await {
        Err(ModuleStoreError::BadManifest {
            source: ManifestError::WrongKey { expected, found },
            ..
        }) => {
            assert_eq!(expected, stranger.key_id());
            assert_eq!(found, key().verifying_key().key_id());
        }
        other => panic!("expected wrong key, got {other:?}"),
    }

    // A genuine manifest of another module, copied over this one's.
    let other = fx
        .modules
        .publish(OTHER_WASM, &signed(OTHER_WASM))
        .await
        .unwrap();
    let other_manifest = fx.modules.get_manifest(&other).await.unwrap();
    fx.raw
        .put(&hash.manifest_path(), PutPayload::from(other_manifest))
        .await
        .unwrap();
    let err = fx
        .modules
        .load_verified(&hash, &key().verifying_key())
        .await
        .unwrap_err();
    match &err {
        ModuleStoreError::ManifestForAnotherModule {
            expected, found, ..
        } => {
            assert_eq!((*expected, *found), (hash, other));
        }
        other => panic!("expected a foreign manifest, got {other:?}"),
    }
    assert!(err.to_string().contains("signed for module"), "{err}");
}

#[tokio::test]
async fn publish_refuses_a_manifest_for_other_bytes() {
    let fx = Fixture::open(Kind::Memory, "mismatched").unwrap();
    let err = fx
        .modules
        .publish(OTHER_WASM, &signed(WASM))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ModuleStoreError::MismatchedPut { .. }),
        "{err:?}"
    );
    assert!(fx
        .modules
        .get_module(&ModuleHash::of(OTHER_WASM))
        .await
        .is_err());
}

#[tokio::test]
async fn file_store_persists_and_refuses_bytes_changed_on_disk() {
    let fx = Fixture::open(Kind::File, "file_disk").unwrap();
    let hash = fx.modules.publish(WASM, &signed(WASM)).await.unwrap();
    let ObjectStoreUrl::File { dir } = &fx.url else {
        unreachable!("a file fixture has a file URL")
    };

    // Reopened from its URL, as a restarted host would: still there.
    let url = ObjectStoreUrl::parse(&format!("file://{}", dir.display())).unwrap();
    let reopened = ModuleStore::open(&url).unwrap();
    let public = key().verifying_key();
    reopened.load_verified(&hash, &public).await.unwrap();

    // The layout on disk is modules/<sha256>.{wasm,manifest}.
    let wasm_file = dir.join(format!("modules/{hash}.wasm"));
    let manifest_file = dir.join(format!("modules/{hash}.manifest"));
    assert_eq!(std::fs::read(&wasm_file).unwrap(), WASM);

    let mut bytes = std::fs::read(&wasm_file).unwrap();
    bytes[9] ^= 0x80;
    std::fs::write(&wasm_file, &bytes).unwrap();
    assert!(matches!(
        reopened.load_verified(&hash, &public).await,
        Err(ModuleStoreError::BadModule { .. })
    ));
    std::fs::write(&wasm_file, WASM).unwrap();

    let mut bytes = std::fs::read(&manifest_file).unwrap();
    let at = bytes.len() - 2;
    bytes[at] ^= 0x02;
    std::fs::write(&manifest_file, &bytes).unwrap();
    assert!(matches!(
        reopened.load_verified(&hash, &public).await,
        Err(ModuleStoreError::BadManifest { .. })
    ));
}

#[test]
fn bad_urls_and_folders_are_clear_errors() {
    for (text, expected) in [
        ("gs://bucket/x", "other clouds"),
        ("s3:/bucket", "no scheme"),
        ("file:relative", "no scheme"),
        ("redis://localhost", "unknown scheme"),
    ] {
        let err = ObjectStoreUrl::parse(text).unwrap_err();
        assert!(err.to_string().contains(expected), "{text}: {err}");
    }
    // A file URL whose folder cannot be made (a file is in the way).
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    let url = ObjectStoreUrl::parse(&format!("file://{}/objects", blocker.display())).unwrap();
    let err = ModuleStore::open(&url).unwrap_err();
    assert!(matches!(err, OpenError::Folder { .. }), "{err:?}");
    assert!(err.to_string().contains("blocker"), "{err}");
}
