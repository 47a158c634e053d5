//! An in-place restore of a hosted database (issue 15).
//!
//! Owns: [`HostedDatabase::restore_in_place`]: the module's tables are made
//! equal to those of an earlier point of the same history in one ordinary
//! transaction on the lane, with the usual after-commit work (views refresh
//! inside it, timers re-arm), and then every client is closed so that it
//! reconnects to the restored state. The log stays one line: the state the
//! restore replaced is the one at the offset before it, restorable like any
//! other point, which is how a restore is undone.
//! Does not own: producing the earlier state (the object store, in the
//! binary), the host's `st_*` tables and materialised views (kept and
//! refreshed, never copied), or the module (the current one keeps serving;
//! a schema that changed since that point is refused).

use orrery_query::sql::view_tables;
use storage::TxOffset;

use super::{HostedDatabase, DISCONNECTING_ALL_USERS, SYSTEM_TABLE_PREFIX};
use crate::clients::CLOSE_GOING_AWAY;
use crate::logs::LogLevel;

/// What an in-place restore did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoredInPlace {
    /// The last transaction before the restore: the state it replaced.
    pub replaced_through: Option<TxOffset>,
    /// The restore's own transaction (`None` if nothing differed).
    pub offset: Option<TxOffset>,
    pub replaced: storage::Replaced,
}

impl HostedDatabase {
    /// Makes the module's tables equal those of `target` (this database's
    /// state at an earlier point) in one transaction, then closes every
    /// client with 1001 and `reason`.
    pub fn restore_in_place(
        &self,
        target: storage::Database,
        reason: String,
    ) -> Result<RestoredInPlace, String> {
        let shared = self.shared.clone();
        self.run(move || {
            let target = target.read().map_err(|e| e.to_string())?;
            let mut tx = shared.storage.begin().map_err(|e| e.to_string())?;
            let replaced_through = tx.last_offset();
            let modules_own = |schema: &storage::TableSchema| {
                !schema.name.starts_with(SYSTEM_TABLE_PREFIX)
                    && !view_tables::is_view_table(&schema.name)
            };
            let replaced = match tx.replace_rows(&target, modules_own) {
                Ok(replaced) => replaced,
                Err(e) => {
                    tx.rollback();
                    return Err(e.to_string());
                }
            };
            let delta = tx.commit().map_err(|e| e.to_string())?;
            shared.after_commit(&delta);
            shared.log.append_host(
                LogLevel::Info,
                "",
                format!(
                    "restored in place: {} rows deleted, {} rows inserted ({reason})",
                    replaced.deleted, replaced.inserted
                ),
            );
            shared
                .log
                .append_host(LogLevel::Info, "", DISCONNECTING_ALL_USERS);
            shared.clients.close_all(CLOSE_GOING_AWAY, &reason);
            Ok(RestoredInPlace {
                replaced_through,
                offset: delta.offset,
                replaced,
            })
        })
        .map_err(|e| e.to_string())?
    }
}
