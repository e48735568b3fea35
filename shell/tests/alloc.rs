//! The counting allocator counts (so a zero in the end-to-end test can mean something).

use httpd_runner::alloc::{self, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn counts_allocations_reallocations_and_bytes_after_the_mark() {
    let mut v: Vec<u8> = Vec::with_capacity(16);
    v.push(1);
    assert!(alloc::installed());
    alloc::mark_startup_complete();
    let before = alloc::after_startup();
    let boxed = std::hint::black_box(Box::new([7u8; 4096]));
    v.reserve(100_000);
    let after = alloc::after_startup();
    drop(boxed);
    assert!(
        after.allocations > before.allocations,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.reallocations > before.reallocations,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.bytes >= before.bytes + 4096 + 100_000,
        "{before:?} -> {after:?}"
    );
}
