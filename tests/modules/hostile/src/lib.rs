//! Test module `hostile`: reducers that misbehave on purpose (endless loops,
//! memory exhaustion, log floods, traps, huge arguments, deep recursion), plus
//! one well-behaved reducer, `ok`, to show the module still works afterwards.

use spacetimedb::{reducer, table, ReducerContext, Table};

#[table(accessor = marker, public)]
pub struct Marker {
    #[primary_key]
    #[auto_inc]
    id: u64,
    note: String,
}

/// Never returns: only fuel or a deadline can stop it.
#[reducer]
pub fn spin(_ctx: &ReducerContext) {
    let mut counter: u64 = 0;
    loop {
        // `black_box` keeps the optimiser from proving the loop side-effect free.
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks, touching every page, until allocation fails
/// (which aborts: the global allocator's failure path traps on wasm32).
#[reducer]
pub fn grow_memory(_ctx: &ReducerContext) {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(std::hint::black_box(block));
        log::debug!("holding {} MiB", blocks.len());
    }
}

/// Logs `n` lines.
#[reducer]
pub fn log_flood(_ctx: &ReducerContext, n: u64) {
    for line in 0..n {
        log::info!("log flood line {line} of {n}");
    }
}

/// Panics, which traps the instance.
#[reducer]
pub fn trap(_ctx: &ReducerContext) {
    panic!("hostile: deliberate trap");
}

/// Accepts an argument of any size and does nothing with it but measure it.
#[reducer]
pub fn huge_arg(_ctx: &ReducerContext, data: Vec<u8>) {
    log::info!("huge_arg received {} bytes", data.len());
}

/// Recurses `n` levels deep; each frame keeps a buffer live across the call,
/// so the compiler cannot turn it into a loop.
#[reducer]
pub fn deep_recursion(_ctx: &ReducerContext, n: u64) {
    let total = recurse(n);
    log::info!("deep_recursion({n}) = {total}");
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let frame = std::hint::black_box([n; 16]);
    let below = recurse(n - 1);
    std::hint::black_box(frame.iter().sum::<u64>()).wrapping_add(below)
}

/// Well behaved: inserts one row.
#[reducer]
pub fn ok(ctx: &ReducerContext) {
    ctx.db.marker().insert(Marker {
        id: 0,
        note: "ok".to_string(),
    });
}
