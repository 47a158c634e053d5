//! Views (module-abi §4.7, §4.8, §8.12): evaluating one view for one
//! caller.
//!
//! Owns: [`HostedModule::call_view`] and [`HostedModule::call_view_in_tx`]
//! (`__call_view__` for sender-aware views, `__call_view_anon__` for
//! anonymous ones, inside a transaction that is only read: the write imports
//! trap), decoding the result ([`ViewOutcome`]), [`ViewRef`], [`ViewKey`]
//! and [`ViewResult`] (with the set of tables the evaluation read).
//! Does not own: evaluating the SQL a query-builder view returns (the SQL
//! engine; such views come back as [`ViewOutcome::NeedsSql`]), storing
//! materialisations or deciding when to refresh them (`hosting::views`).
//!
//! Read sets ([`ViewReads`]) follow the reference's rule: a point lookup in
//! an index (`datastore_index_scan_point_bsatn`, e.g. `find` or `filter`
//! with one value) records the key it looked up, so only a write of a row
//! with that key in those columns makes the view stale; a table scan, a
//! range scan or a row count records the whole table. Views with parameters are not supported (upstream does not
//! support them end to end either, §8.12); the module definition does not
//! list parameters, so every view is called with empty arguments.

use std::collections::BTreeSet;

use spacetimedb_lib::Identity;
use spacetimedb_sats::{AlgebraicValue, ProductValue};
use storage::{ColId, Database, MutTx, TableId};

use super::guest_call::words;
use super::{Ended, HostedModule};
use crate::host::LogRecord;
use orrery_moduledef::ViewReturn;

/// A view named by position in [`orrery_moduledef::ModuleDef::views`] or by
/// source or canonical name.
#[derive(Clone, Copy, Debug)]
pub enum ViewRef<'a> {
    Index(usize),
    Name(&'a str),
}

impl From<usize> for ViewRef<'_> {
    fn from(index: usize) -> Self {
        ViewRef::Index(index)
    }
}

impl<'a> From<&'a str> for ViewRef<'a> {
    fn from(name: &'a str) -> Self {
        ViewRef::Name(name)
    }
}

/// What one evaluation of a view produced.
#[derive(Debug, PartialEq)]
pub enum ViewOutcome {
    /// The rows, decoded at the view's row type (0 or 1 for `Option` views).
    Rows {
        rows: Vec<ProductValue>,
    },
    /// A query-builder view: its rows are the result of this SQL query,
    /// which needs the SQL engine (not evaluated here).
    NeedsSql {
        query: String,
    },
    /// The view reported an error (code 1) with this message.
    Failed {
        message: String,
    },
    /// Trapped (panic, wasm trap, a write attempt); instance discarded.
    Trapped {
        message: String,
    },
    OutOfFuel,
    Timeout,
    /// A sender-aware view was called without a sender.
    NeedsSender {
        view: String,
    },
    NoSuchView {
        view: String,
    },
    /// The host could not run the call, or the guest broke the protocol.
    Internal {
        message: String,
    },
}

/// What one view evaluation read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewReads {
    /// Tables read whole (scans, range scans, row counts).
    pub tables: BTreeSet<TableId>,
    /// Keys looked up by point scans: table, index columns, key (a product
    /// for several columns).
    pub keys: BTreeSet<(TableId, Vec<ColId>, AlgebraicValue)>,
}

impl ViewReads {
    /// Reads of whole tables only.
    pub fn of_tables(tables: impl IntoIterator<Item = TableId>) -> ViewReads {
        ViewReads {
            tables: tables.into_iter().collect(),
            keys: BTreeSet::new(),
        }
    }

    /// Every table read, whole or by key.
    pub fn all_tables(&self) -> BTreeSet<TableId> {
        let mut all = self.tables.clone();
        all.extend(self.keys.iter().map(|(table, _, _)| *table));
        all
    }

    /// Whether a write of `row` (inserted or deleted) into `table` can
    /// change what the view read.
    pub fn affected_by(&self, table: TableId, row: &[AlgebraicValue]) -> bool {
        if self.tables.contains(&table) {
            return true;
        }
        self.keys
            .iter()
            .filter(|(t, _, _)| *t == table)
            .any(|(_, columns, key)| {
                columns.iter().all(|c| c.idx() < row.len())
                    && storage::value::project_key(row, columns) == *key
            })
    }
}

/// One view evaluation: its outcome, logs, fuel and read set.
#[derive(Debug)]
pub struct ViewResult {
    pub outcome: ViewOutcome,
    pub logs: Vec<LogRecord>,
    pub fuel_used: u64,
    /// What the view read (tables, index keys).
    pub reads: ViewReads,
}

impl ViewResult {
    fn bare(outcome: ViewOutcome) -> ViewResult {
        ViewResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 0,
            reads: ViewReads::default(),
        }
    }
}

/// `__call_view__(id, sender_0..3, args, result_sink)`.
type CallViewParams = (i32, i64, i64, i64, i64, i32, i32);
/// `__call_view_anon__(id, args, result_sink)`.
type CallViewAnonParams = (i32, i32, i32);

impl HostedModule {
    /// Resolves a view reference to its position in the module definition.
    pub fn view_index(&self, view: ViewRef<'_>) -> Option<usize> {
        match view {
            ViewRef::Index(index) => (index < self.def.views.len()).then_some(index),
            ViewRef::Name(name) => self
                .def
                .views
                .iter()
                .position(|v| v.source_name == name || v.canonical_name == name),
        }
    }

    /// Evaluates `view` for `sender` (ignored by anonymous views) in a
    /// transaction of its own on `db`, which is rolled back: views only read.
    pub fn call_view<'a>(
        &self,
        db: &Database,
        view: impl Into<ViewRef<'a>>,
        sender: Option<Identity>,
    ) -> ViewResult {
        let tx = match db.begin() {
            Ok(tx) => tx,
            Err(e) => {
                return ViewResult::bare(ViewOutcome::Internal {
                    message: format!("cannot open a transaction: {e}"),
                })
            }
        };
        let (result, tx) = self.call_view_in_tx(tx, view, sender);
        tx.rollback();
        result
    }

    /// Evaluates `view` for `sender` inside the caller's open transaction
    /// (seeing its uncommitted writes, as a refresh before commit needs) and
    /// hands the transaction back unchanged.
    pub fn call_view_in_tx<'a>(
        &self,
        tx: MutTx,
        view: impl Into<ViewRef<'a>>,
        sender: Option<Identity>,
    ) -> (ViewResult, MutTx) {
        let view = view.into();
        let Some(index) = self.view_index(view) else {
            let outcome = ViewOutcome::NoSuchView {
                view: format!("{view:?}"),
            };
            return (ViewResult::bare(outcome), tx);
        };
        let info = &self.def.views[index];
        if !info.is_anonymous && sender.is_none() {
            let outcome = ViewOutcome::NeedsSender {
                view: info.source_name.clone(),
            };
            return (ViewResult::bare(outcome), tx);
        }
        let mut instance = match self.take_instance() {
            Ok(instance) => instance,
            Err(e) => {
                let outcome = ViewOutcome::Internal {
                    message: format!("cannot create an instance: {e}"),
                };
                return (ViewResult::bare(outcome), tx);
            }
        };
        let id = info.id as i32;
        let mut call = if info.is_anonymous {
            let Some(func) = instance.export::<CallViewAnonParams, i32>("__call_view_anon__")
            else {
                self.put_back(instance);
                return (missing_export("__call_view_anon__"), tx);
            };
            instance.store.data_mut().tx = Some(tx);
            instance.store.data_mut().view_reads = Some(ViewReads::default());
            instance.call_guest(
                &info.source_name,
                self.options.fuel_per_call,
                self.options.deadline_per_call,
                &[],
                |store, args, sink| func.call(store, (id, args as i32, sink as i32)),
            )
        } else {
            let Some(func) = instance.export::<CallViewParams, i32>("__call_view__") else {
                self.put_back(instance);
                return (missing_export("__call_view__"), tx);
            };
            let [s0, s1, s2, s3] = words::<4>(&sender.unwrap_or(Identity::ZERO).to_byte_array());
            instance.store.data_mut().tx = Some(tx);
            instance.store.data_mut().view_reads = Some(ViewReads::default());
            instance.call_guest(
                &info.source_name,
                self.options.fuel_per_call,
                self.options.deadline_per_call,
                &[],
                |store, args, sink| {
                    func.call(store, (id, s0, s1, s2, s3, args as i32, sink as i32))
                },
            )
        };
        let env = instance.store.data_mut();
        let tx = env
            .tx
            .take()
            .expect("the host never takes a view's transaction");
        let reads = env.view_reads.take().unwrap_or_default();
        let healthy = matches!(call.ended, Ended::Returned(0..=2));
        let outcome = match call.ended {
            Ended::Returned(0) => decode_rows(&info.row_type, info.returns, &call.output, false),
            Ended::Returned(2) => decode_rows(&info.row_type, info.returns, &call.output, true),
            Ended::Returned(1) => ViewOutcome::Failed {
                message: String::from_utf8_lossy(&call.output).into_owned(),
            },
            Ended::Returned(code) => ViewOutcome::Internal {
                message: format!("the view returned the unexpected code {code}"),
            },
            Ended::Trapped(trap) => ViewOutcome::Trapped {
                message: trap.report(&mut call.logs),
            },
            Ended::OutOfFuel => ViewOutcome::OutOfFuel,
            Ended::Timeout => ViewOutcome::Timeout,
        };
        if healthy {
            self.put_back(instance);
        }
        let result = ViewResult {
            outcome,
            logs: call.logs,
            fuel_used: call.fuel_used,
            reads,
        };
        (result, tx)
    }
}

fn missing_export(name: &str) -> ViewResult {
    ViewResult::bare(ViewOutcome::Internal {
        message: format!("the module does not export `{name}` with the expected signature"),
    })
}

/// Decodes a view's output: with `header`, a `ViewResultHeader` (tag 0 =
/// rows follow, tag 1 = an SQL string) first; then a `u32` row count and the
/// rows at `row_type`, with nothing after them.
fn decode_rows(
    row_type: &spacetimedb_sats::ProductType,
    returns: ViewReturn,
    bytes: &[u8],
    header: bool,
) -> ViewOutcome {
    let bad = |what: String| ViewOutcome::Internal {
        message: format!("the view's result does not decode: {what}"),
    };
    let mut reader = bytes;
    if header {
        let Some((&tag, rest)) = reader.split_first() else {
            return bad("no header".into());
        };
        reader = rest;
        match tag {
            0 => {}
            1 => {
                return match spacetimedb_lib::bsatn::from_slice::<String>(reader) {
                    Ok(query) => ViewOutcome::NeedsSql { query },
                    Err(e) => bad(format!("SQL header: {e}")),
                }
            }
            other => return bad(format!("unknown header tag {other}")),
        }
    }
    let Some((count, rest)) = reader.split_first_chunk::<4>() else {
        return bad("no row count".into());
    };
    reader = rest;
    let count = u32::from_le_bytes(*count);
    if returns == ViewReturn::Option && count > 1 {
        return bad(format!("an `Option` view returned {count} rows"));
    }
    let mut rows = Vec::new();
    for _ in 0..count {
        match ProductValue::decode(row_type, &mut reader) {
            Ok(row) => rows.push(row),
            Err(e) => return bad(format!("row {}: {e}", rows.len())),
        }
    }
    if !reader.is_empty() {
        return bad(format!("{} trailing bytes", reader.len()));
    }
    ViewOutcome::Rows { rows }
}

/// Which materialisation: a view and, for sender-aware views, the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewKey {
    /// Position in [`orrery_moduledef::ModuleDef::views`].
    pub view: usize,
    /// `None` for anonymous views, which are materialised once.
    pub sender: Option<Identity>,
}
