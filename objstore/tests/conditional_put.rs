//! Conditional puts, which the generation fencing of `head` (platform.md,
//! issue 15) depends on: `PutMode::Create` has exactly one winner among
//! racing writers, and `PutMode::Update` with a stale ETag fails. Memory and
//! S3 support both; the local filesystem supports `Create` only.

#[macro_use]
#[path = "common/stores.rs"]
mod stores;

use std::sync::Arc;

use orrery_objstore::object_store::path::Path as ObjectPath;
use orrery_objstore::object_store::{
    Error, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use stores::{Fixture, Kind};

/// Writers racing for one key.
const RACERS: usize = 16;

for_each_store!(
    create_has_exactly_one_winner,
    update_with_a_stale_etag_fails
);

async fn put(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: &[u8],
    mode: PutMode,
) -> Result<UpdateVersion, Error> {
    let options = PutOptions {
        mode,
        ..PutOptions::default()
    };
    let result = store
        .put_opts(path, PutPayload::from(bytes.to_vec()), options)
        .await?;
    Ok(UpdateVersion {
        e_tag: result.e_tag,
        version: result.version,
    })
}

async fn read(store: &dyn ObjectStore, path: &ObjectPath) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

async fn create_has_exactly_one_winner(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "create_race") else {
        return;
    };
    let path = ObjectPath::from("db/race/head");
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..RACERS {
        let store = fx.raw.clone();
        let path = path.clone();
        let barrier = barrier.clone();
        racers.spawn(async move {
            barrier.wait().await;
            let body = format!("writer {racer}");
            let result = put(&*store, &path, body.as_bytes(), PutMode::Create).await;
            (body, result)
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(joined) = racers.join_next().await {
        let (body, result) = joined.unwrap();
        match result {
            Ok(_) => winners.push(body),
            Err(Error::AlreadyExists { .. }) => losers += 1,
            Err(other) => panic!("a racing create failed otherwise: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(losers, RACERS - 1);
    assert_eq!(read(&*fx.raw, &path).await, winners[0].as_bytes());

    // Once it exists, a later create fails too and leaves it as it was.
    assert!(matches!(
        put(&*fx.raw, &path, b"late", PutMode::Create).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(read(&*fx.raw, &path).await, winners[0].as_bytes());
}

async fn update_with_a_stale_etag_fails(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "stale_etag") else {
        return;
    };
    let path = ObjectPath::from("db/fence/head");
    let v1 = put(&*fx.raw, &path, b"generation 1", PutMode::Create)
        .await
        .unwrap();
    let updated = put(
        &*fx.raw,
        &path,
        b"generation 2",
        PutMode::Update(v1.clone()),
    )
    .await;
    if kind == Kind::File {
        // The local filesystem has no ETag-conditional update: say so, so
        // that nobody fences with it.
        assert!(matches!(updated, Err(Error::NotImplemented)), "{updated:?}");
        return;
    }
    let v2 = updated.unwrap();
    assert!(v1.e_tag.is_some() && v2.e_tag.is_some());
    assert_ne!(v1.e_tag, v2.e_tag);

    // The deposed writer still holds v1's ETag: its update fails.
    let stale = put(&*fx.raw, &path, b"deposed", PutMode::Update(v1)).await;
    assert!(
        matches!(stale, Err(Error::Precondition { .. })),
        "{stale:?}"
    );
    assert_eq!(read(&*fx.raw, &path).await, b"generation 2");

    // The current ETag still works, once.
    let v3 = put(
        &*fx.raw,
        &path,
        b"generation 3",
        PutMode::Update(v2.clone()),
    )
    .await
    .unwrap();
    assert!(matches!(
        put(&*fx.raw, &path, b"again", PutMode::Update(v2)).await,
        Err(Error::Precondition { .. })
    ));
    assert_eq!(read(&*fx.raw, &path).await, b"generation 3");

    // Racing updates from one ETag: exactly one wins.
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..RACERS {
        let store = fx.raw.clone();
        let path = path.clone();
        let barrier = barrier.clone();
        let version = v3.clone();
        racers.spawn(async move {
            barrier.wait().await;
            let body = format!("successor {racer}");
            let result = put(&*store, &path, body.as_bytes(), PutMode::Update(version)).await;
            (body, result)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = racers.join_next().await {
        match joined.unwrap() {
            (body, Ok(_)) => winners.push(body),
            (_, Err(Error::Precondition { .. })) => {}
            (_, Err(other)) => panic!("a racing update failed otherwise: {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(read(&*fx.raw, &path).await, winners[0].as_bytes());

    // An update of an object that does not exist fails as well.
    let missing = put(
        &*fx.raw,
        &ObjectPath::from("db/none/head"),
        b"x",
        PutMode::Update(UpdateVersion {
            e_tag: Some("\"0123\"".into()),
            version: None,
        }),
    )
    .await;
    assert!(
        matches!(
            missing,
            Err(Error::Precondition { .. } | Error::NotFound { .. })
        ),
        "{missing:?}"
    );
}
