//! `head` and generation fencing against every store kind (memory, a
//! folder, the real S3 server): exactly one of many racing holders moves
//! `head` from the version they read; a deposed holder's update is fenced;
//! its late segments under the old generation are listed but never planned
//! for replay; a corrupt `head` is an error, never a guess.

#[macro_use]
#[path = "common/stores.rs"]
mod stores;

use std::sync::Arc;

use orrery_objstore::layout::{replay_plan, DatabaseKey, SegmentRef};
use orrery_objstore::object_store::path::Path as ObjectPath;
use orrery_objstore::object_store::{ObjectStore, PutPayload};
use orrery_objstore::{HeadError, Heads};
use stores::{Fixture, Kind};

for_each_store!(
    generations_begin_in_order,
    racing_holders_have_one_winner,
    a_deposed_holder_is_fenced_and_its_late_segments_are_not_replayed,
    a_corrupt_head_is_an_error,
);

fn heads(fx: &Fixture) -> Heads {
    Heads::over(&fx.url, fx.raw.clone())
}

fn db() -> DatabaseKey {
    DatabaseKey::new("db_test").unwrap()
}

async fn generations_begin_in_order(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "head_order") else {
        return;
    };
    let heads = heads(&fx);
    assert!(heads.read(&db()).await.unwrap().is_none());
    let (head, v1) = heads.begin_generation(&db(), 1, 0).await.unwrap();
    assert_eq!(head.current().unwrap().generation, 1);
    let (read, read_version) = heads.read(&db()).await.unwrap().unwrap();
    assert_eq!((&read, &read_version), (&head, &v1));
    let (head, _) = heads.begin_generation(&db(), 2, 500).await.unwrap();
    assert_eq!(head.generations.len(), 2);
    // Not newer, or starting before the current generation: fenced.
    for (generation, start) in [(2, 600), (1, 600), (3, 499)] {
        let refused = heads.begin_generation(&db(), generation, start).await;
        assert!(
            matches!(refused, Err(HeadError::Fenced { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(heads.read(&db()).await.unwrap().unwrap().0, head);
}

async fn racing_holders_have_one_winner(kind: Kind) {
    const RACERS: u64 = 12;
    let Some(fx) = Fixture::open(kind, "head_race") else {
        return;
    };
    let heads = heads(&fx);
    heads.begin_generation(&db(), 1, 0).await.unwrap();
    let (base, version) = heads.read(&db()).await.unwrap().unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..RACERS {
        let (heads, mut head, version, barrier) = (
            heads.clone(),
            base.clone(),
            version.clone(),
            barrier.clone(),
        );
        racers.spawn(async move {
            head.shipped_through = Some(racer);
            barrier.wait().await;
            heads.replace(&db(), &head, &version).await.map(|_| racer)
        });
    }
    let mut winners = Vec::new();
    while let Some(result) = racers.join_next().await {
        match result.unwrap() {
            Ok(racer) => winners.push(racer),
            Err(HeadError::Fenced { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (head, _) = heads.read(&db()).await.unwrap().unwrap();
    assert_eq!(head.shipped_through, Some(winners[0]));
}

async fn a_deposed_holder_is_fenced_and_its_late_segments_are_not_replayed(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "head_deposed") else {
        return;
    };
    let heads = heads(&fx);
    let db = db();
    // Holder A: generation 1 from offset 0, ships two segments.
    let (mut a_head, a_version) = heads.begin_generation(&db, 1, 0).await.unwrap();
    for first in [0, 100] {
        put_segment(
            &*fx.raw,
            &db,
            SegmentRef {
                generation: 1,
                first_offset: first,
            },
        )
        .await;
    }
    // Holder B takes over at 150 (A is partitioned, not told).
    heads.begin_generation(&db, 2, 150).await.unwrap();
    put_segment(
        &*fx.raw,
        &db,
        SegmentRef {
            generation: 2,
            first_offset: 150,
        },
    )
    .await;
    // A goes on: a late segment under generation 1, then a head update.
    put_segment(
        &*fx.raw,
        &db,
        SegmentRef {
            generation: 1,
            first_offset: 200,
        },
    )
    .await;
    a_head.shipped_through = Some(260);
    let fenced = heads.replace(&db, &a_head, &a_version).await;
    assert!(
        matches!(fenced, Err(HeadError::Fenced { .. })),
        "{fenced:?}"
    );

    // Recovery follows head: A's late segment is listed but not planned.
    let (head, _) = heads.read(&db).await.unwrap().unwrap();
    assert_eq!(head.shipped_through, None, "A's update never landed");
    let mut listed = Vec::new();
    for generation in 1..=2 {
        let objects: Vec<_> = futures_list(&*fx.raw, &db.log_prefix(generation)).await;
        listed.extend(objects.iter().filter_map(|p| db.parse_segment_path(p)));
    }
    assert_eq!(listed.len(), 4, "{listed:?}");
    let plan: Vec<SegmentRef> = replay_plan(&head.windows(), &listed, 0)
        .into_iter()
        .map(|p| p.segment)
        .collect();
    assert_eq!(
        plan,
        [
            SegmentRef {
                generation: 1,
                first_offset: 0
            },
            SegmentRef {
                generation: 1,
                first_offset: 100
            },
            SegmentRef {
                generation: 2,
                first_offset: 150
            },
        ]
    );
}

async fn a_corrupt_head_is_an_error(kind: Kind) {
    let Some(fx) = Fixture::open(kind, "head_corrupt") else {
        return;
    };
    let heads = heads(&fx);
    fx.raw
        .put(
            &db().head_path(),
            PutPayload::from_static(b"{\"format\": 1, \"generat"),
        )
        .await
        .unwrap();
    let read = heads.read(&db()).await;
    assert!(matches!(read, Err(HeadError::Corrupt { .. })), "{read:?}");
    fx.raw
        .put(
            &db().head_path(),
            PutPayload::from_static(b"{\"format\": 9, \"generations\": []}"),
        )
        .await
        .unwrap();
    let read = heads.read(&db()).await;
    assert!(
        matches!(&read, Err(HeadError::Corrupt { reason, .. }) if reason.contains("format 9")),
        "{read:?}"
    );
    // Nothing moves a corrupt head.
    let begun = heads.begin_generation(&db(), 1, 0).await;
    assert!(matches!(begun, Err(HeadError::Corrupt { .. })), "{begun:?}");
}

async fn put_segment(store: &dyn ObjectStore, db: &DatabaseKey, segment: SegmentRef) {
    store
        .put(
            &db.segment_path(segment),
            PutPayload::from_static(b"records"),
        )
        .await
        .unwrap();
}

async fn futures_list(store: &dyn ObjectStore, prefix: &ObjectPath) -> Vec<ObjectPath> {
    use futures_util::TryStreamExt;
    store
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .unwrap()
}
