//! Per-database call statistics: reducer, procedure and HTTP handler calls
//! and their durations by outcome, and fuel used, as plain atomics read at
//! scrape time.
//!
//! Owns: [`CallStats`] (recorded after every reducer, procedure and handler
//! call), [`Outcome`] (the metric label of a [`ReducerOutcome`]),
//! [`FnOutcome`] (the label of a procedure's or handler's outcome) and
//! [`Histogram`], a fixed-bucket duration histogram.
//! Does not own: rendering (`crate::metrics`) or client fan-out counters
//! (`crate::clients::ClientStats`).
//!
//! Invariants: a histogram's per-bucket counts sum to its count; bucket `i`
//! counts durations up to `bounds[i]` above the previous bound, the last
//! bucket everything slower.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orrery_module::{
    CallResult, HttpHandlerOutcome, HttpHandlerResult, ProcedureOutcome, ProcedureResult,
    ReducerOutcome,
};

/// Upper bounds, in seconds, of the reducer duration buckets.
pub const CALL_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a reducer call ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    Failed,
    Trapped,
    OutOfFuel,
    Timeout,
    BadArguments,
    NoSuchReducer,
    NotCallable,
    Internal,
}

impl Outcome {
    pub const ALL: [Outcome; 9] = [
        Outcome::Committed,
        Outcome::Failed,
        Outcome::Trapped,
        Outcome::OutOfFuel,
        Outcome::Timeout,
        Outcome::BadArguments,
        Outcome::NoSuchReducer,
        Outcome::NotCallable,
        Outcome::Internal,
    ];

    pub fn of(outcome: &ReducerOutcome) -> Outcome {
        match outcome {
            ReducerOutcome::Committed { .. } => Outcome::Committed,
            ReducerOutcome::Failed { .. } => Outcome::Failed,
            ReducerOutcome::Trapped { .. } => Outcome::Trapped,
            ReducerOutcome::OutOfFuel => Outcome::OutOfFuel,
            ReducerOutcome::Timeout => Outcome::Timeout,
            ReducerOutcome::BadArguments { .. } | ReducerOutcome::ArgumentsTooLarge { .. } => {
                Outcome::BadArguments
            }
            ReducerOutcome::NoSuchReducer { .. } => Outcome::NoSuchReducer,
            ReducerOutcome::NotCallable { .. } => Outcome::NotCallable,
            ReducerOutcome::Internal { .. } => Outcome::Internal,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Committed => "committed",
            Outcome::Failed => "failed",
            Outcome::Trapped => "trapped",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::Timeout => "timeout",
            Outcome::BadArguments => "bad_arguments",
            Outcome::NoSuchReducer => "no_such_reducer",
            Outcome::NotCallable => "not_callable",
            Outcome::Internal => "internal",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a procedure or HTTP handler call ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FnOutcome {
    /// The procedure returned, or the handler answered (whatever its status).
    Returned,
    Trapped,
    OutOfFuel,
    Timeout,
    BadArguments,
    /// No such procedure, or no handler routed at the request's method and path.
    NotFound,
    NotCallable,
    Internal,
}

impl FnOutcome {
    pub const ALL: [FnOutcome; 8] = [
        FnOutcome::Returned,
        FnOutcome::Trapped,
        FnOutcome::OutOfFuel,
        FnOutcome::Timeout,
        FnOutcome::BadArguments,
        FnOutcome::NotFound,
        FnOutcome::NotCallable,
        FnOutcome::Internal,
    ];

    pub fn of_procedure(outcome: &ProcedureOutcome) -> FnOutcome {
        match outcome {
            ProcedureOutcome::Returned { .. } => FnOutcome::Returned,
            ProcedureOutcome::Trapped { .. } => FnOutcome::Trapped,
            ProcedureOutcome::OutOfFuel => FnOutcome::OutOfFuel,
            ProcedureOutcome::Timeout => FnOutcome::Timeout,
            ProcedureOutcome::BadArguments { .. } => FnOutcome::BadArguments,
            ProcedureOutcome::NoSuchProcedure { .. } => FnOutcome::NotFound,
            ProcedureOutcome::NotCallable { .. } => FnOutcome::NotCallable,
            ProcedureOutcome::Internal { .. } => FnOutcome::Internal,
        }
    }

    pub fn of_http_handler(outcome: &HttpHandlerOutcome) -> FnOutcome {
        match outcome {
            HttpHandlerOutcome::Responded(_) => FnOutcome::Returned,
            HttpHandlerOutcome::Trapped { .. } => FnOutcome::Trapped,
            HttpHandlerOutcome::OutOfFuel => FnOutcome::OutOfFuel,
            HttpHandlerOutcome::Timeout => FnOutcome::Timeout,
            HttpHandlerOutcome::NoSuchHandler { .. } => FnOutcome::NotFound,
            HttpHandlerOutcome::Internal { .. } => FnOutcome::Internal,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            FnOutcome::Returned => "returned",
            FnOutcome::Trapped => "trapped",
            FnOutcome::OutOfFuel => "out_of_fuel",
            FnOutcome::Timeout => "timeout",
            FnOutcome::BadArguments => "bad_arguments",
            FnOutcome::NotFound => "not_found",
            FnOutcome::NotCallable => "not_callable",
            FnOutcome::Internal => "internal",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A fixed-bucket histogram of durations.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

/// What a [`Histogram`] holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds in seconds.
    pub bounds: &'static [f64],
    /// Per-bucket (not cumulative) counts; one more than `bounds`.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum: Duration,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = self
            .bounds
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            bounds: self.bounds,
            count: buckets.iter().sum(),
            buckets,
            sum: Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// Reducer, procedure and HTTP handler calls of one database.
#[derive(Debug)]
pub struct CallStats {
    /// Reducer calls, indexed by [`Outcome`].
    durations: [Histogram; 9],
    /// Procedure calls, indexed by [`FnOutcome`].
    procedures: [Histogram; 8],
    /// HTTP handler calls, indexed by [`FnOutcome`].
    http_handlers: [Histogram; 8],
    fuel_used: AtomicU64,
    /// Evaluations of views (one per materialisation made or refreshed).
    view_evaluations: AtomicU64,
}

impl Default for CallStats {
    fn default() -> CallStats {
        CallStats {
            durations: std::array::from_fn(|_| Histogram::new(CALL_BUCKETS)),
            procedures: std::array::from_fn(|_| Histogram::new(CALL_BUCKETS)),
            http_handlers: std::array::from_fn(|_| Histogram::new(CALL_BUCKETS)),
            fuel_used: AtomicU64::new(0),
            view_evaluations: AtomicU64::new(0),
        }
    }
}

impl CallStats {
    /// Counts one call that ended with `result` after `took`.
    pub fn record(&self, result: &CallResult, took: Duration) {
        self.durations[Outcome::of(&result.outcome).index()].record(took);
        self.fuel_used
            .fetch_add(result.fuel_used, Ordering::Relaxed);
    }

    /// Reducer calls that ended with `outcome`: count and durations.
    pub fn durations(&self, outcome: Outcome) -> HistogramSnapshot {
        self.durations[outcome.index()].snapshot()
    }

    /// Counts one procedure call that ended with `result` after `took`.
    pub fn record_procedure(&self, result: &ProcedureResult, took: Duration) {
        self.procedures[FnOutcome::of_procedure(&result.outcome).index()].record(took);
        self.fuel_used
            .fetch_add(result.fuel_used, Ordering::Relaxed);
    }

    /// Procedure calls that ended with `outcome`: count and durations.
    pub fn procedure_durations(&self, outcome: FnOutcome) -> HistogramSnapshot {
        self.procedures[outcome.index()].snapshot()
    }

    /// Counts one HTTP handler call that ended with `result` after `took`.
    pub fn record_http_handler(&self, result: &HttpHandlerResult, took: Duration) {
        self.http_handlers[FnOutcome::of_http_handler(&result.outcome).index()].record(took);
        self.fuel_used
            .fetch_add(result.fuel_used, Ordering::Relaxed);
    }

    /// HTTP handler calls that ended with `outcome`: count and durations.
    pub fn http_handler_durations(&self, outcome: FnOutcome) -> HistogramSnapshot {
        self.http_handlers[outcome.index()].snapshot()
    }

    /// Counts one evaluation of a view.
    pub fn record_view_evaluation(&self) {
        self.view_evaluations.fetch_add(1, Ordering::Relaxed);
    }

    /// Views evaluated so far (materialisations made or refreshed).
    pub fn view_evaluations(&self) -> u64 {
        self.view_evaluations.load(Ordering::Relaxed)
    }

    /// Fuel used by every call counted.
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_index_their_slot() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn fn_outcomes_index_their_slot() {
        for (i, o) in FnOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn procedures_and_handlers_are_counted_apart_from_reducers() {
        let s = CallStats::default();
        let procedure = |outcome| ProcedureResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 3,
            commits: Vec::new(),
            immediate: Vec::new(),
        };
        let handler = |outcome| HttpHandlerResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 4,
            commits: Vec::new(),
            immediate: Vec::new(),
        };
        s.record_procedure(
            &procedure(ProcedureOutcome::Returned { value: Vec::new() }),
            Duration::from_millis(1),
        );
        s.record_procedure(
            &procedure(ProcedureOutcome::Timeout),
            Duration::from_secs(30),
        );
        s.record_http_handler(
            &handler(HttpHandlerOutcome::NoSuchHandler { handler: 0 }),
            Duration::ZERO,
        );
        assert_eq!(s.procedure_durations(FnOutcome::Returned).count, 1);
        assert_eq!(s.procedure_durations(FnOutcome::Timeout).count, 1);
        assert_eq!(s.http_handler_durations(FnOutcome::NotFound).count, 1);
        assert_eq!(s.http_handler_durations(FnOutcome::Returned).count, 0);
        assert!(Outcome::ALL.iter().all(|&o| s.durations(o).count == 0));
        assert_eq!(s.fuel_used(), 10);
    }

    #[test]
    fn records_by_outcome() {
        let s = CallStats::default();
        let result = |outcome| CallResult {
            outcome,
            logs: Vec::new(),
            fuel_used: 10,
            immediate: Vec::new(),
        };
        s.record(&result(ReducerOutcome::OutOfFuel), Duration::from_millis(2));
        s.record(
            &result(ReducerOutcome::ArgumentsTooLarge { bytes: 2, limit: 1 }),
            Duration::from_secs(60),
        );
        assert_eq!(s.fuel_used(), 20);
        let fuel = s.durations(Outcome::OutOfFuel);
        assert_eq!(
            (fuel.count, fuel.buckets[2]),
            (1, 1),
            "2 ms is in the 2.5 ms bucket"
        );
        let bad = s.durations(Outcome::BadArguments);
        assert_eq!(bad.buckets[CALL_BUCKETS.len()], 1);
        assert_eq!(s.durations(Outcome::Committed).count, 0);
    }
}
