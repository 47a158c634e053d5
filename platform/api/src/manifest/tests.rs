use proptest::prelude::*;

use super::*;

const WASM: &[u8] = b"\0asm\x01\0\0\0 a module's bytes";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed([seed; 32])
}

fn manifest() -> Manifest {
    Manifest::for_module("chat", WASM, 7, "acc_0123456789abcdef", 1_765_000_000_123).unwrap()
}

#[test]
fn sign_then_verify_round_trips() {
    let key = key(1);
    let signed = key.sign(&manifest());
    let verified = verify(signed.as_bytes(), &key.verifying_key()).unwrap();
    assert_eq!(verified, manifest());
    assert_eq!(signed.manifest(), &manifest());
    assert_eq!(verified.database(), "chat");
    assert_eq!(verified.version(), 7);
    assert_eq!(verified.published_by(), "acc_0123456789abcdef");
    assert_eq!(verified.published_at_unix_ms(), 1_765_000_000_123);
    verify_module(&verified, WASM).unwrap();
}

#[test]
fn encoding_is_the_documented_text() {
    let key = key(1);
    let signed = key.sign(&manifest());
    let text = std::str::from_utf8(signed.as_bytes()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0], "orrery-manifest v1");
    assert_eq!(lines[1], "database chat");
    assert_eq!(lines[2], format!("module_sha256 {}", to_hex(&sha256(WASM))));
    assert_eq!(lines[3], "version 7");
    assert_eq!(lines[4], "published_by acc_0123456789abcdef");
    assert_eq!(lines[5], "published_at 1765000000123");
    assert_eq!(lines[6], format!("key {}", key.verifying_key().key_id()));
    assert!(lines[7].starts_with("signature ") && lines[7].len() == 10 + 128);
    assert!(text.ends_with('\n'));
    // ed25519 is deterministic: the same manifest signs to the same bytes.
    assert_eq!(key.sign(&manifest()), signed);
}

#[test]
fn another_key_is_refused_as_wrong_key() {
    let signed = key(1).sign(&manifest());
    let err = verify(signed.as_bytes(), &key(2).verifying_key()).unwrap_err();
    assert_eq!(
        err,
        ManifestError::WrongKey {
            expected: key(2).verifying_key().key_id(),
            found: key(1).verifying_key().key_id(),
        }
    );
    assert!(err.to_string().contains("not by the trusted key"), "{err}");
}

#[test]
fn a_changed_field_is_a_bad_signature() {
    let key = key(1);
    let signed = key.sign(&manifest());
    let text = std::str::from_utf8(signed.as_bytes()).unwrap();
    let forged = text.replace("version 7\n", "version 8\n");
    let err = verify(forged.as_bytes(), &key.verifying_key()).unwrap_err();
    assert_eq!(
        err,
        ManifestError::BadSignature {
            key: key.verifying_key().key_id()
        }
    );
    assert!(
        err.to_string().contains("bad module manifest signature"),
        "{err}"
    );
}

#[test]
fn a_key_line_forged_to_the_trusted_key_is_still_a_bad_signature() {
    // Signed by key 1, the key line rewritten to name key 2: the id matches
    // the trusted key, the signature does not.
    let signed = key(1).sign(&manifest());
    let text = std::str::from_utf8(signed.as_bytes()).unwrap();
    let forged = text.replace(
        &key(1).verifying_key().key_id().to_string(),
        &key(2).verifying_key().key_id().to_string(),
    );
    let err = verify(forged.as_bytes(), &key(2).verifying_key()).unwrap_err();
    assert!(matches!(err, ManifestError::BadSignature { .. }), "{err}");
}

#[test]
fn other_modules_bytes_are_a_hash_mismatch() {
    let err = verify_module(&manifest(), b"\0asm other bytes").unwrap_err();
    match &err {
        ManifestError::HashMismatch { expected, actual } => {
            assert_eq!(expected, &to_hex(&sha256(WASM)));
            assert_eq!(actual, &to_hex(&sha256(b"\0asm other bytes")));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert!(
        err.to_string().contains("do not match their manifest"),
        "{err}"
    );
}

#[test]
fn malformed_input_says_what_is_wrong() {
    let key = key(1);
    let good = key.sign(&manifest()).into_bytes();
    let text = String::from_utf8(good.clone()).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "truncated"),
        (good[..good.len() - 1].to_vec(), "truncated"),
        (
            [good.clone(), b"x".to_vec()].concat(),
            "after the signature",
        ),
        (text.replace("v1", "v2").into_bytes(), "first line"),
        (
            text.replace("version 7", "version 07").into_bytes(),
            "leading zeros",
        ),
        (
            text.replace("version 7", "version +7").into_bytes(),
            "decimal",
        ),
        (
            text.replace("database chat", "database  chat").into_bytes(),
            "space",
        ),
        (
            text.replace("database chat", "db chat").into_bytes(),
            "`database` line",
        ),
        (
            text.replace("module_sha256 ", "module_sha256 A")
                .into_bytes(),
            "hex",
        ),
        (vec![0xff; 10], "UTF-8"),
        (vec![b'a'; SIGNED_MANIFEST_BYTES_MAX + 1], "more than"),
    ];
    for (bytes, expected) in cases {
        match verify(&bytes, &key.verifying_key()) {
            Err(ManifestError::Malformed { reason }) => assert!(
                reason.contains(expected),
                "reason {reason:?} should mention {expected:?}"
            ),
            other => panic!("expected malformed ({expected}), got {other:?}"),
        }
    }
}

#[test]
fn invalid_fields_are_refused_when_building() {
    let hash = sha256(WASM);
    for bad in ["", " chat", "chat ", "ch\nat", "chät", &"x".repeat(257)] {
        assert!(
            matches!(
                Manifest::new(bad, hash, 1, "me", 0),
                Err(ManifestError::Malformed { .. })
            ),
            "{bad:?}"
        );
        assert!(Manifest::new("chat", hash, 1, bad, 0).is_err(), "{bad:?}");
    }
    // The widest valid texts and numbers round-trip.
    let wide = Manifest::new("a b~".repeat(64), hash, u64::MAX, "!".repeat(256), u64::MAX).unwrap();
    let key = key(3);
    assert_eq!(
        verify(key.sign(&wide).as_bytes(), &key.verifying_key()).unwrap(),
        wide
    );
}

#[test]
fn public_key_text_round_trips_and_refuses_garbage() {
    let public = key(1).verifying_key();
    let text = public.to_string();
    assert!(text.starts_with("ed25519:") && text.len() == 8 + 64);
    assert_eq!(VerifyingKey::parse(&text).unwrap(), public);
    assert_eq!(
        format!(" {text}\n").parse::<VerifyingKey>().unwrap(),
        public
    );
    for bad in [
        "",
        "ed25519:",
        "ed25519:00",
        &text.to_uppercase(),
        &text[8..],
    ] {
        assert!(
            matches!(VerifyingKey::parse(bad), Err(KeyError::BadPublicKey(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn generated_keys_differ_and_debug_hides_the_secret() {
    let a = SigningKey::generate().unwrap();
    let b = SigningKey::generate().unwrap();
    assert_ne!(a.verifying_key(), b.verifying_key());
    let shown = format!("{a:?}");
    assert!(shown.contains(&a.verifying_key().key_id().to_string()));
    assert!(!shown.contains(&to_hex(a.0.as_bytes())));
}

#[test]
fn key_file_round_trips_with_owner_only_mode() {
    let dir = std::env::temp_dir().join(format!("orrery-key-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("signing.key");
    let key = SigningKey::generate().unwrap();
    key.save(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let loaded = SigningKey::load(&path).unwrap();
    assert_eq!(loaded.verifying_key(), key.verifying_key());
    // Saving again over the file keeps it private and replaces the key.
    let other = SigningKey::generate().unwrap();
    other.save(&path).unwrap();
    assert_eq!(
        SigningKey::load(&path).unwrap().verifying_key(),
        other.verifying_key()
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(
            matches!(err, KeyError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::write(&path, "orrery-ed25519-signing-key v1\nnot hex\n").unwrap();
    assert!(matches!(
        SigningKey::load(&path),
        Err(KeyError::Malformed { .. })
    ));
    assert!(matches!(
        SigningKey::load(&dir.join("missing.key")),
        Err(KeyError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

proptest! {
    // Any single flipped byte anywhere in a signed manifest is refused.
    #[test]
    fn any_flipped_manifest_byte_is_refused(
        version in any::<u64>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let key = key(9);
        let manifest = Manifest::for_module("db", WASM, version, "acc", 42).unwrap();
        let mut bytes = key.sign(&manifest).into_bytes();
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(verify(&bytes, &key.verifying_key()).is_err());
    }

    // Any single flipped byte of the module is refused by its manifest.
    #[test]
    fn any_flipped_module_byte_is_refused(
        wasm in prop::collection::vec(any::<u8>(), 1..512),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let manifest = Manifest::for_module("db", &wasm, 1, "acc", 42).unwrap();
        let mut tampered = wasm.clone();
        let i = at.index(tampered.len());
        tampered[i] ^= flip;
        let refused = matches!(
            verify_module(&manifest, &tampered),
            Err(ManifestError::HashMismatch { .. })
        );
        prop_assert!(refused);
        prop_assert!(verify_module(&manifest, &wasm).is_ok());
    }

    // Whatever bytes come in, verify never panics and accepts only what the
    // key signed.
    #[test]
    fn arbitrary_bytes_never_verify(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        prop_assert!(verify(&bytes, &key(9).verifying_key()).is_err());
    }
}
