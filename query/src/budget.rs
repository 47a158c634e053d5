//! The work budget of one query evaluation: rows examined, rows and bytes
//! returned, and wall time, charged while the evaluator runs so a costly
//! query (a cross product, say) stops as soon as it crosses a limit instead
//! of after materialising its result.
//!
//! Owns: [`QueryLimits`] (the ceilings of one evaluation, chosen from
//! `orrery_api::limits` by who asks and what for), [`Budget`] (the running
//! counts and the deadline) and [`LimitExceeded`] (which limit stopped a
//! query, with its value, for the caller).
//! Does not own: deciding who is owner (callers), the evaluation itself
//! (`sql::eval`, `subs`), or the locks a query holds while it runs (the
//! budget is what bounds how long that is).

use std::time::{Duration, Instant};

use orrery_api::limits;

/// The ceilings of one query evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// Rows scans and index lookups may hand the evaluator, all tables and
    /// all row-level-security fragments together.
    pub rows_examined_max: u64,
    /// Rows the result may hold (a `COUNT(*)` returns one).
    pub result_rows_max: u64,
    /// BSATN bytes of the result's rows.
    pub result_bytes_max: u64,
    /// Wall time from the budget's creation.
    pub wall_time_max: Duration,
}

impl QueryLimits {
    /// A one-off query (`/sql` SELECT, WebSocket `OneOffQuery`) of anyone
    /// but the database owner.
    pub const NON_OWNER: QueryLimits = QueryLimits {
        rows_examined_max: limits::QUERY_ROWS_EXAMINED_MAX,
        result_rows_max: limits::QUERY_RESULT_ROWS_MAX,
        result_bytes_max: limits::QUERY_RESULT_BYTES_MAX,
        wall_time_max: Duration::from_millis(limits::QUERY_WALL_TIME_MS_MAX),
    };

    /// A one-off query of the database owner (also the module's own view
    /// queries).
    pub const OWNER: QueryLimits = QueryLimits {
        rows_examined_max: limits::QUERY_ROWS_EXAMINED_OWNER_MAX,
        result_rows_max: limits::QUERY_RESULT_ROWS_OWNER_MAX,
        result_bytes_max: limits::QUERY_RESULT_BYTES_OWNER_MAX,
        wall_time_max: Duration::from_millis(limits::QUERY_WALL_TIME_OWNER_MS_MAX),
    };

    /// The initial rows of a subscription, for every caller: whole-table
    /// subscriptions are ordinary, so only the work and the bytes are capped.
    pub const SUBSCRIPTION_INITIAL: QueryLimits = QueryLimits {
        rows_examined_max: limits::SUBSCRIPTION_INITIAL_ROWS_EXAMINED_MAX,
        result_rows_max: limits::SUBSCRIPTION_INITIAL_ROWS_EXAMINED_MAX,
        result_bytes_max: limits::SUBSCRIPTION_INITIAL_BYTES_MAX,
        wall_time_max: Duration::from_millis(limits::SUBSCRIPTION_INITIAL_WALL_TIME_MS_MAX),
    };

    /// The limits of a one-off query by this caller.
    pub fn one_off(caller_is_owner: bool) -> QueryLimits {
        if caller_is_owner {
            QueryLimits::OWNER
        } else {
            QueryLimits::NON_OWNER
        }
    }
}

/// A query crossed one of its limits; nothing was returned. The text names
/// the limit and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error(
        "query refused by limit joins_per_query = {max}: it has {joins} joins; split it into smaller queries"
    )]
    Joins { joins: usize, max: usize },
    #[error(
        "query refused by limit rows_examined = {max}: it had to examine more rows than that; narrow it with a WHERE on an indexed column, or join ON indexed columns"
    )]
    RowsExamined { max: u64 },
    #[error(
        "query refused by limit result_rows = {max}: its result has more rows than that; add a LIMIT or a narrower WHERE"
    )]
    ResultRows { max: u64 },
    #[error(
        "query refused by limit result_bytes = {max}: its rows take more bytes than that; select fewer rows or columns"
    )]
    ResultBytes { max: u64 },
    #[error("query refused by limit wall_time_ms = {max_ms}: it ran longer than that")]
    WallTime { max_ms: u64 },
}

impl LimitExceeded {
    /// The limit's stable name, as the text says it.
    pub fn name(&self) -> &'static str {
        match self {
            LimitExceeded::Joins { .. } => "joins_per_query",
            LimitExceeded::RowsExamined { .. } => "rows_examined",
            LimitExceeded::ResultRows { .. } => "result_rows",
            LimitExceeded::ResultBytes { .. } => "result_bytes",
            LimitExceeded::WallTime { .. } => "wall_time_ms",
        }
    }
}

/// Rows examined between two readings of the clock: reading it per row
/// would cost as much as examining the row.
const ROWS_PER_CLOCK_READING: u32 = 1024;

/// The running counts of one evaluation against its [`QueryLimits`]. One
/// budget may span several evaluations (the fragments of a query under
/// row-level security, the queries of one subscribe request).
#[derive(Debug, Clone)]
pub struct Budget {
    limits: QueryLimits,
    examined: u64,
    rows: u64,
    bytes: u64,
    /// `None` when the wall time does not fit an `Instant` (no deadline).
    deadline: Option<Instant>,
    until_clock: u32,
}

impl Budget {
    /// A fresh budget; its wall time starts now.
    pub fn new(limits: QueryLimits) -> Budget {
        Budget {
            limits,
            examined: 0,
            rows: 0,
            bytes: 0,
            deadline: Instant::now().checked_add(limits.wall_time_max),
            until_clock: ROWS_PER_CLOCK_READING,
        }
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.limits
    }

    /// Rows examined so far.
    pub fn examined(&self) -> u64 {
        self.examined
    }

    /// Result rows charged so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Result bytes charged so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Charges one row handed to the evaluator by a scan or an index lookup.
    pub fn examine(&mut self) -> Result<(), LimitExceeded> {
        self.examined += 1;
        if self.examined > self.limits.rows_examined_max {
            return Err(LimitExceeded::RowsExamined {
                max: self.limits.rows_examined_max,
            });
        }
        self.until_clock -= 1;
        if self.until_clock == 0 {
            self.until_clock = ROWS_PER_CLOCK_READING;
            self.check_clock()?;
        }
        Ok(())
    }

    /// Charges one result row of `bytes` BSATN bytes.
    pub fn emit(&mut self, bytes: u64) -> Result<(), LimitExceeded> {
        self.rows += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        if self.rows > self.limits.result_rows_max {
            return Err(LimitExceeded::ResultRows {
                max: self.limits.result_rows_max,
            });
        }
        if self.bytes > self.limits.result_bytes_max {
            return Err(LimitExceeded::ResultBytes {
                max: self.limits.result_bytes_max,
            });
        }
        Ok(())
    }

    /// Fails if the wall time is used up (also checked every
    /// [`ROWS_PER_CLOCK_READING`] examined rows).
    pub fn check_clock(&self) -> Result<(), LimitExceeded> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(LimitExceeded::WallTime {
                max_ms: u64::try_from(self.limits.wall_time_max.as_millis()).unwrap_or(u64::MAX),
            }),
            _ => Ok(()),
        }
    }
}

/// BSATN bytes of `values` encoded back to back (a row or a projection).
pub fn bsatn_len<'v>(
    values: impl IntoIterator<Item = &'v spacetimedb_sats::AlgebraicValue>,
) -> u64 {
    values
        .into_iter()
        .map(|v| spacetimedb_sats::bsatn::to_len(v).map_or(0, |n| n as u64))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(examined: u64, rows: u64, bytes: u64) -> QueryLimits {
        QueryLimits {
            rows_examined_max: examined,
            result_rows_max: rows,
            result_bytes_max: bytes,
            wall_time_max: Duration::from_secs(3600),
        }
    }

    // Protects each counter's boundary: the limit itself is allowed, one
    // more is refused with the limit's name and value.
    #[test]
    fn each_limit_allows_its_value_and_refuses_one_more() {
        let mut budget = Budget::new(tiny(3, 10, 1000));
        for _ in 0..3 {
            budget.examine().unwrap();
        }
        let e = budget.examine().unwrap_err();
        assert_eq!(e, LimitExceeded::RowsExamined { max: 3 });
        assert!(e.to_string().contains("rows_examined = 3"), "{e}");

        let mut budget = Budget::new(tiny(100, 2, 1000));
        budget.emit(1).unwrap();
        budget.emit(1).unwrap();
        assert_eq!(budget.emit(1), Err(LimitExceeded::ResultRows { max: 2 }));

        let mut budget = Budget::new(tiny(100, 100, 10));
        budget.emit(10).unwrap();
        let e = budget.emit(1).unwrap_err();
        assert_eq!(e, LimitExceeded::ResultBytes { max: 10 });
        assert_eq!(e.name(), "result_bytes");
    }

    // Protects the wall-time backstop: with no time at all, the clock
    // reading that follows the first batch of examined rows refuses.
    #[test]
    fn wall_time_is_read_every_batch_of_rows() {
        let mut budget = Budget::new(QueryLimits {
            wall_time_max: Duration::ZERO,
            ..tiny(u64::MAX, u64::MAX, u64::MAX)
        });
        for _ in 1..ROWS_PER_CLOCK_READING {
            budget.examine().unwrap();
        }
        assert_eq!(budget.examine(), Err(LimitExceeded::WallTime { max_ms: 0 }));
    }
}
