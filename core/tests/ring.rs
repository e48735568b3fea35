//! Ring and doorbell behaviour on real threads (also run under miri, with smaller counts).
#![cfg(not(loom))]

use httpd_runner_core::ring::Ring;
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

static DROPS: AtomicUsize = AtomicUsize::new(0);
struct Counted;
impl Drop for Counted {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn dropping_the_ring_drops_what_is_left_once() {
    {
        let mut ring = Ring::<Counted, 4>::new();
        let (mut tx, mut rx) = ring.split();
        for _ in 0..4 {
            assert!(tx.push(Counted).is_ok());
        }
        drop(rx.pop());
        assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    }
    assert_eq!(DROPS.load(Ordering::Relaxed), 4);
}

#[test]
fn static_ring_through_a_const_constructor() {
    static mut RING: Ring<u64, 8> = Ring::new();
    // SAFETY: this test is the only user of RING and takes one &mut to it.
    #[allow(static_mut_refs)]
    let ring: &'static mut Ring<u64, 8> = unsafe { &mut RING };
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
