//! A database's `head` in the object store (`db/<id>/head`): the
//! generations of its lease with the offset each started at, its newest
//! snapshot, and how far its log is shipped. `head` moves only by a
//! conditional put, so a holder that lost its lease cannot move it.
//!
//! Owns: [`Head`] and its JSON, [`Heads`] (read, create, conditional
//! replace, [`Heads::begin_generation`]) and [`HeadVersion`]. S3 and memory
//! stores replace with If-Match on the ETag. The local filesystem has no
//! conditional update, so for `file://` stores `Heads` does the same under
//! an exclusive lock file beside `head` (written with
//! `durable::fs::write_atomic`), with the SHA-256 of its bytes as
//! the ETag: atomic among the processes of one machine, which is what a
//! folder store serves.
//! Does not own: the keys ([`crate::layout`]), leases (the control plane),
//! or what is shipped.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use crate::layout::{DatabaseKey, Generation};
use crate::url::{ObjectStoreUrl, OpenError};

/// Largest `head` read; a bigger object is corrupt.
pub const HEAD_BYTES_MAX: usize = 1 << 20;

/// The format of [`Head`] this code writes and reads.
pub const HEAD_FORMAT: u32 = 1;

/// What `head` says of a database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub format: u32,
    /// Every generation, oldest first, with the offset it started at.
    pub generations: Vec<HeadGeneration>,
    /// The newest complete snapshot, if any.
    #[serde(default)]
    pub latest_snapshot: Option<HeadSnapshot>,
    /// The last offset whose segment is in the store, if any.
    #[serde(default)]
    pub shipped_through: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadGeneration {
    pub generation: u64,
    pub start_offset: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadSnapshot {
    pub generation: u64,
    pub offset: u64,
}

impl Head {
    /// The generations as [`crate::layout::replay_plan`] takes them.
    pub fn windows(&self) -> Vec<Generation> {
        self.generations
            .iter()
            .map(|g| Generation {
                generation: g.generation,
                start_offset: g.start_offset,
            })
            .collect()
    }

    /// The newest generation, if any.
    pub fn current(&self) -> Option<HeadGeneration> {
        self.generations.last().copied()
    }
}

/// The version of `head` a holder read: its replace succeeds only while
/// `head` is still that version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadVersion(UpdateVersion);

/// Why `head` could not be read or moved.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// Someone else moved `head` (or created it) first: the caller's view
    /// is stale, and a holder must assume it lost its lease.
    #[error("head of database {database} moved since it was read (another holder?): {reason}")]
    Fenced { database: String, reason: String },
    /// `head` does not parse, is too large, or is of an unknown format.
    #[error("head of database {database} is corrupt: {reason}")]
    Corrupt { database: String, reason: String },
    #[error("object store failed on the head of database {database}: {reason}")]
    Store { database: String, reason: String },
}

/// The heads of the databases of one store.
#[derive(Clone, Debug)]
pub struct Heads {
    store: Arc<dyn ObjectStore>,
    /// The folder of a `file://` store: heads move under a lock file there.
    folder: Option<PathBuf>,
}

impl Heads {
    /// Heads in `store`; `folder` must be the folder of a `file://` store
    /// and `None` for any other.
    pub fn new(store: Arc<dyn ObjectStore>, folder: Option<PathBuf>) -> Heads {
        Heads { store, folder }
    }

    /// Opens the store `url` names.
    pub fn open(url: &ObjectStoreUrl) -> Result<Heads, OpenError> {
        Ok(Heads::over(url, url.open()?))
    }

    /// The heads of `store`, which `url` opened (a folder store moves them
    /// under lock files in its folder).
    pub fn over(url: &ObjectStoreUrl, store: Arc<dyn ObjectStore>) -> Heads {
        let folder = match url {
            ObjectStoreUrl::File { dir } => Some(dir.clone()),
            _ => None,
        };
        Heads::new(store, folder)
    }

    /// The head of `db` and its version, or `None` before the first generation.
    pub async fn read(&self, db: &DatabaseKey) -> Result<Option<(Head, HeadVersion)>, HeadError> {
        match &self.folder {
            Some(folder) => {
                let path = folder.join(db.head_path().as_ref());
                let db = db.clone();
                blocking(move || {
                    local::read(&path)
                        .map_err(|e| store(&db, e))?
                        .map(|b| parse(&db, &b))
                        .transpose()
                })
                .await
            }
            None => {
                let path = db.head_path();
                let got = match self.store.get(&path).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(store(db, e)),
                };
                if got.meta.size > HEAD_BYTES_MAX as u64 {
                    return Err(corrupt(db, format!("{} bytes", got.meta.size)));
                }
                let version = UpdateVersion {
                    e_tag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(|e| store(db, e))?;
                let (head, _) = parse(db, &bytes)?;
                Ok(Some((head, HeadVersion(version))))
            }
        }
    }

    /// Writes the first head of `db`; fenced if one exists.
    pub async fn create(&self, db: &DatabaseKey, head: &Head) -> Result<HeadVersion, HeadError> {
        self.put(db, head, None).await
    }

    /// Replaces the head of `db` if it is still `version`; fenced otherwise.
    pub async fn replace(
        &self,
        db: &DatabaseKey,
        head: &Head,
        version: &HeadVersion,
    ) -> Result<HeadVersion, HeadError> {
        self.put(db, head, Some(version)).await
    }

    /// Starts generation `generation` at `start_offset`: appended to `head`
    /// by a conditional put, so of holders racing for one database at most
    /// one moves `head` from the version it read. Fenced when `head` already
    /// names `generation` or a later one, or a start before the current one.
    pub async fn begin_generation(
        &self,
        db: &DatabaseKey,
        generation: u64,
        start_offset: u64,
    ) -> Result<(Head, HeadVersion), HeadError> {
        let next = HeadGeneration {
            generation,
            start_offset,
        };
        match self.read(db).await? {
            None => {
                let head = Head {
                    format: HEAD_FORMAT,
                    generations: vec![next],
                    latest_snapshot: None,
                    shipped_through: None,
                };
                let version = self.create(db, &head).await?;
                Ok((head, version))
            }
            Some((mut head, version)) => {
                if let Some(current) = head.current() {
                    if current.generation >= generation || current.start_offset > start_offset {
                        return Err(HeadError::Fenced {
                            database: db.as_str().to_owned(),
                            reason: format!(
                                "head is at generation {} from offset {}; generation {generation} from {start_offset} cannot follow it",
                                current.generation, current.start_offset
                            ),
                        });
                    }
                }
                head.generations.push(next);
                let version = self.replace(db, &head, &version).await?;
                Ok((head, version))
            }
        }
    }

    async fn put(
        &self,
        db: &DatabaseKey,
        head: &Head,
        expected: Option<&HeadVersion>,
    ) -> Result<HeadVersion, HeadError> {
        let bytes = serde_json::to_vec(head).map_err(|e| corrupt(db, e.to_string()))?;
        if let Some(folder) = &self.folder {
            let path = folder.join(db.head_path().as_ref());
            let expected = expected.map(|v| v.0.e_tag.clone().unwrap_or_default());
            let db = db.clone();
            return blocking(
                move || match local::put(&path, &bytes, expected.as_deref()) {
                    Ok(Ok(tag)) => Ok(HeadVersion(UpdateVersion {
                        e_tag: Some(tag),
                        version: None,
                    })),
                    Ok(Err(reason)) => Err(fenced(&db, reason)),
                    Err(e) => Err(store(&db, e)),
                },
            )
            .await;
        }
        let mode = match expected {
            None => PutMode::Create,
            Some(version) => PutMode::Update(version.0.clone()),
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(&db.head_path(), PutPayload::from(bytes), options)
            .await
        {
            Ok(result) => Ok(HeadVersion(UpdateVersion {
                e_tag: result.e_tag,
                version: result.version,
            })),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Err(fenced(db, "head exists already".into()))
            }
            Err(object_store::Error::Precondition { .. }) => {
                Err(fenced(db, "head is not the version read".into()))
            }
            Err(e) => Err(store(db, e)),
        }
    }
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, HeadError> + Send + 'static,
) -> Result<T, HeadError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| HeadError::Store {
            database: String::new(),
            reason: format!("the head task failed: {e}"),
        })?
}

fn parse(db: &DatabaseKey, bytes: &[u8]) -> Result<(Head, HeadVersion), HeadError> {
    if bytes.len() > HEAD_BYTES_MAX {
        return Err(corrupt(db, format!("{} bytes", bytes.len())));
    }
    let head: Head = serde_json::from_slice(bytes).map_err(|e| corrupt(db, e.to_string()))?;
    if head.format != HEAD_FORMAT {
        return Err(corrupt(
            db,
            format!("format {} (this build reads {HEAD_FORMAT})", head.format),
        ));
    }
    let tag = local::tag(bytes);
    Ok((
        head,
        HeadVersion(UpdateVersion {
            e_tag: Some(tag),
            version: None,
        }),
    ))
}

fn fenced(db: &DatabaseKey, reason: String) -> HeadError {
    HeadError::Fenced {
        database: db.as_str().to_owned(),
        reason,
    }
}

fn corrupt(db: &DatabaseKey, reason: String) -> HeadError {
    HeadError::Corrupt {
        database: db.as_str().to_owned(),
        reason,
    }
}

fn store(db: &DatabaseKey, e: impl std::fmt::Display) -> HeadError {
    HeadError::Store {
        database: db.as_str().to_owned(),
        reason: e.to_string(),
    }
}

/// `head` in a folder: read and conditional write under an exclusive lock
/// file, the SHA-256 of the bytes as the ETag.
mod local {
    use std::fs::{File, OpenOptions};
    use std::io::ErrorKind;
    use std::path::Path;

    pub(super) fn tag(bytes: &[u8]) -> String {
        orrery_api::manifest::to_hex(&orrery_api::manifest::sha256(bytes))
    }

    fn lock(path: &Path) -> std::io::Result<File> {
        let dir = path.parent().expect("head has a folder");
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("head.lock"))?;
        file.lock()?;
        Ok(file)
    }

    pub(super) fn read(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
        let _lock = lock(path)?;
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` if `head`'s tag is `expected` (`None`: only if there is
    /// no head); `Ok(Err(why))` when it is not.
    pub(super) fn put(
        path: &Path,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> std::io::Result<Result<String, String>> {
        let _lock = lock(path)?;
        let current = match std::fs::read(path) {
            Ok(current) => Some(tag(&current)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match (expected, current.as_deref()) {
            (None, None) => {}
            (None, Some(_)) => return Ok(Err("head exists already".into())),
            (Some(want), Some(have)) if want == have => {}
            (Some(_), _) => return Ok(Err("head is not the version read".into())),
        }
        durable::fs::write_atomic(path, bytes)?;
        Ok(Ok(tag(bytes)))
    }
}
