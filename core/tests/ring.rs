//! Ring and doorbell behaviour on real threads (also run under miri, with smaller counts).
#![cfg(not(loom))]

use httpd_runner_core::ring::Ring;
use static_cell::StaticCell;
use std::sync::atomic::{AtomicUsize, Ordering};

const MESSAGES: usize = if cfg!(miri) { 200 } else { 200_000 };

#[test]
fn full_and_empty_edges_and_failed_push_returns_the_value() {
    let mut ring = Ring::<u32, 3>::new();
    let (mut tx, mut rx) = ring.split();
    assert_eq!(rx.pop(), None);
    assert!(rx.is_empty());
    assert_eq!(tx.free(), 3);
    for i in 0..3 {
        tx.push(i).unwrap();
    }
    assert_eq!(tx.push(99), Err(99), "full ring hands the value back");
    assert_eq!(tx.len(), 3);
    assert_eq!(rx.pop(), Some(0));
    tx.push(3).unwrap();
    // Wrap around many times.
    for i in 4..100u32 {
        assert_eq!(rx.pop(), Some(i - 3));
        tx.push(i).unwrap();
    }
    assert_eq!(rx.len(), 3);
    assert_eq!(
        [rx.pop(), rx.pop(), rx.pop(), rx.pop()],
        [Some(97), Some(98), Some(99), None]
    );
}

#[test]
fn capacity_one_works() {
    let mut ring = Ring::<u8, 1>::new();
    let (mut tx, mut rx) = ring.split();
    for i in 0..10 {
        tx.push(i).unwrap();
        assert_eq!(tx.push(i), Err(i));
        assert_eq!(rx.pop(), Some(i));
        assert_eq!(rx.pop(), None);
    }
}

/// Counts its drops in the static it points to (one static per test: tests run in parallel).
struct Counted(&'static AtomicUsize, u8);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

static DROPS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn dropping_the_ring_drops_what_is_left_once() {
    {
        let mut ring = Ring::<Counted, 4>::new();
        let (mut tx, mut rx) = ring.split();
        for _ in 0..4 {
            assert!(tx.push(Counted(&DROPS, 0)).is_ok());
        }
        drop(rx.pop());
        assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    }
    assert_eq!(DROPS.load(Ordering::Relaxed), 4);
}

#[test]
fn staged_values_wait_for_publish_and_count_toward_full() {
    let mut ring = Ring::<u32, 4>::new();
    let (mut tx, mut rx) = ring.split();
    tx.stage(0).unwrap();
    tx.stage(1).unwrap();
    assert_eq!(tx.staged(), 2);
    assert_eq!(rx.pop(), None, "staged values are invisible");
    assert!(rx.is_empty());
    tx.publish();
    assert_eq!(tx.staged(), 0);
    assert_eq!(rx.len(), 2);
    tx.stage(2).unwrap();
    tx.stage(3).unwrap();
    assert_eq!(tx.stage(4), Err(4), "staged values take room");
    assert_eq!([rx.pop(), rx.pop(), rx.pop()], [Some(0), Some(1), None]);
    tx.stage(4).unwrap();
    // `push` publishes what was staged before it, in order.
    tx.push(5).unwrap();
    assert_eq!(
        [rx.pop(), rx.pop(), rx.pop(), rx.pop(), rx.pop()],
        [Some(2), Some(3), Some(4), Some(5), None]
    );
    tx.publish();
    assert_eq!(rx.pop(), None, "publishing nothing shows nothing");
}

static STAGED_DROPS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn dropping_the_producer_publishes_what_it_staged() {
    {
        let mut ring = Ring::<Counted, 4>::new();
        let (mut tx, mut rx) = ring.split();
        assert!(tx.stage(Counted(&STAGED_DROPS, 7)).is_ok());
        assert!(tx.stage(Counted(&STAGED_DROPS, 8)).is_ok());
        drop(tx);
        assert_eq!(rx.pop().map(|v| v.1), Some(7));
        assert_eq!(STAGED_DROPS.load(Ordering::Relaxed), 1);
    }
    // The one left in the ring is dropped with it, not leaked.
    assert_eq!(STAGED_DROPS.load(Ordering::Relaxed), 2);
}

#[test]
fn a_static_ring_from_a_static_cell() {
    // A ring made once for the whole program, without `static mut` or a leaked box: the
    // cell hands out its one `&'static mut`, so the halves can move to other threads.
    static RING: StaticCell<Ring<u64, 8>> = StaticCell::new();
    let ring: &'static mut Ring<u64, 8> = RING.init(Ring::new());
    let (mut tx, mut rx) = ring.split();
    std::thread::spawn(move || tx.push(7).unwrap())
        .join()
        .unwrap();
    assert_eq!(rx.pop(), Some(7));
}

#[test]
fn two_threads_keep_fifo_order_without_loss() {
    let mut ring = Ring::<usize, 16>::new();
    let (mut tx, mut rx) = ring.split();
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..MESSAGES {
                let mut v = i;
                while let Err(back) = tx.push(v) {
                    v = back;
                    std::thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < MESSAGES {
            match rx.pop() {
                Some(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                None => std::thread::yield_now(),
            }
        }
    });
    assert_eq!(rx.pop(), None);
}
