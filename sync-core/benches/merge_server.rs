//! The merge benchmark's cases on mimalloc, the allocator the server links
//! (server/src/main.rs). About half of a merge's instructions are
//! allocations (copies of JSON values), so the allocator is part of what
//! is measured; `merge` runs the same cases on the system allocator.
//! Run: `CARGO_TARGET_DIR=/work/target-core cargo bench -p seedling-sync-core --bench merge_server`.

use criterion::{criterion_group, criterion_main};

mod cases;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

criterion_group!(merge_benches, cases::benches);
criterion_main!(merge_benches);
