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

/// Tries to reach the host's own tables (such as `st_client`, which holds
/// every client's JWT payload): by name, by scanning every table id below 256
/// and by point-deleting `connection` through every index id below 256. Fails
/// if a name resolves, if any readable row contains `marker`, or if a delete
/// removes anything outside this module's own table.
#[reducer]
pub fn probe_system_tables(
    ctx: &ReducerContext,
    marker: String,
    connection: u128,
) -> Result<(), String> {
    use spacetimedb::sys;
    if sys::table_id_from_name("st_client").is_ok() {
        return Err("the table `st_client` resolves by name".into());
    }
    if sys::index_id_from_name("st_client_connection_id_idx_btree").is_ok() {
        return Err("the index of `st_client` resolves by name".into());
    }
    let mut readable = 0;
    for id in 0..256u32 {
        let Ok(mut iter) = sys::datastore_table_scan_bsatn(spacetimedb::TableId(id)) else {
            continue;
        };
        readable += 1;
        let mut buf = Vec::with_capacity(4096);
        while !iter.is_exhausted() {
            iter.read(&mut buf);
        }
        if buf.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            return Err(format!("table id {id} shows the marker"));
        }
    }
    // The bindings do not export `IndexId`; make one from a real id's type.
    let own = sys::index_id_from_name("marker_id_idx_btree").map_err(|e| e.to_string())?;
    let before = ctx.db.marker().count();
    let key = connection.to_le_bytes();
    for id in 0..256u32 {
        let _ = sys::datastore_delete_by_index_scan_point_bsatn(id_like(own, id), &key);
    }
    if ctx.db.marker().count() != before {
        return Err("a point delete removed rows of this module".into());
    }
    log::info!("probe could read {readable} tables");
    Ok(())
}

/// A value of `like`'s type holding `id`: `IndexId` is a `u32` newtype the
/// bindings use but do not export.
fn id_like<T: Copy>(like: T, id: u32) -> T {
    assert_eq!(std::mem::size_of_val(&like), 4);
    // SAFETY: `T` is four bytes (checked above) and any u32 is a valid id.
    unsafe { std::mem::transmute_copy::<u32, T>(&id) }
}
