//! End-to-end tests across processes, and repository-wide checks (tidy,
//! dependency licences and crate boundaries) in `tests/tests/`.
//!
//! Owns: tests that start real `orrery` processes and the test modules under
//! `tests/modules/` (built for wasm32 by the harness).
//! Does not own: crate API tests, which live in each crate's own `tests/`.
