//! Test module `bank`: accounts and transfers, the workload of the runtime's
//! concurrency and rollback tests. A transfer that fails returns `Err` and
//! must leave both balances untouched.

use spacetimedb::{reducer, table, ReducerContext, Table};

/// The balance every seeded account starts with.
pub const INITIAL_BALANCE: i64 = 1_000_000;

#[table(accessor = account, public)]
pub struct Account {
    #[primary_key]
    id: u64,
    balance: i64,
}

/// Inserts accounts `1..=n` with [`INITIAL_BALANCE`], skipping ids that exist.
#[reducer]
pub fn seed(ctx: &ReducerContext, n: u64) {
    for id in 1..=n {
        if ctx.db.account().id().find(id).is_none() {
            ctx.db.account().insert(Account {
                id,
                balance: INITIAL_BALANCE,
            });
        }
    }
}

/// Moves `amount` from account `from` to account `to`.
#[reducer]
pub fn transfer(ctx: &ReducerContext, from: u64, to: u64, amount: i64) -> Result<(), String> {
    if amount < 0 {
        return Err(format!("negative amount {amount}"));
    }
    let source = ctx
        .db
        .account()
        .id()
        .find(from)
        .ok_or_else(|| format!("no account {from}"))?;
    let target = ctx
        .db
        .account()
        .id()
        .find(to)
        .ok_or_else(|| format!("no account {to}"))?;
    if source.balance < amount {
        return Err(format!(
            "insufficient funds in account {from}: {} < {amount}",
            source.balance
        ));
    }
    if from == to {
        return Ok(());
    }
    ctx.db.account().id().update(Account {
        id: from,
        balance: source.balance - amount,
    });
    ctx.db.account().id().update(Account {
        id: to,
        balance: target.balance + amount,
    });
    Ok(())
}
