//! Field merges per second for a typical visit and a child record, on the
//! fast-forward path and on the concurrent (three-way, conflicting) path,
//! on the system allocator, as a phone embedding the client runs them
//! (`merge_server` runs the same cases on the server's allocator).
//! Run: `CARGO_TARGET_DIR=/work/target-core cargo bench -p seedling-sync-core --bench merge`.

use criterion::{criterion_group, criterion_main};

mod cases;

criterion_group!(merge_benches, cases::benches);
criterion_main!(merge_benches);
