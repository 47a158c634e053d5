//! What the host keeps for itself in a module's database, as the runtime
//! sees it.
//!
//! Owns: the [`HostTables`] seam through which the hosting layer tells the
//! runtime which storage tables are its own (so guests never see them),
//! where the JWT of a connected client is recorded (the `get_jwt` import)
//! and what the host records in the transaction that creates, migrates or
//! clears a database ([`HostTables::record_module`]), and [`NoHostTables`],
//! the policy of a database without host tables.
//! Does not own: the host's tables themselves, their names or layout
//! (`tenant_host::hosting` implements this trait).

use std::fmt;

use spacetimedb_lib::ConnectionId;
use storage::MutTx;

/// The host's side of a module's database. Implemented by the hosting layer
/// and handed to the runtime in [`crate::CallOptions::host_tables`].
pub trait HostTables: Send + Sync + fmt::Debug {
    /// Whether the storage table `name` belongs to the host: such tables and
    /// their indexes do not exist for the guest, so a module cannot read
    /// another client's JWT or forge host records.
    fn is_host_table(&self, name: &str) -> bool;

    /// The JWT payload the client of `connection` presented, read in `tx`;
    /// `None` if the connection is not recorded or presented none.
    fn jwt(&self, tx: &MutTx, connection: ConnectionId) -> Option<String>;

    /// Writes, in `tx`, the host's record that the database's schema now
    /// belongs to the module these host tables were handed with. Called in
    /// the one transaction that creates the database (after the host's
    /// system tables, before `init`), that migrates it and that clears and
    /// re-creates it, so the record commits or rolls back with the schema.
    /// An error rolls the transaction back.
    fn record_module(&self, tx: &mut MutTx) -> Result<(), String> {
        let _ = tx;
        Ok(())
    }
}

/// A database whose every table is the module's and which records no
/// clients (tests, tools that only describe a module).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHostTables;

impl HostTables for NoHostTables {
    fn is_host_table(&self, _name: &str) -> bool {
        false
    }

    fn jwt(&self, _tx: &MutTx, _connection: ConnectionId) -> Option<String> {
        None
    }
}
