//! Loom models of the ring and of the sleep/wake handshake.
//!
//! Run with: `RUSTFLAGS="--cfg loom" cargo test -p httpd-runner-core --test loom --release`
//! (see `.ci/loom`). Every interleaving the C11 memory model allows is explored, so a missing
//! Release/Acquire pair shows up as a wrong value or a race report, and a lost wake-up as a
//! deadlock.
#![cfg(loom)]

use httpd_runner_core::ring::Ring;
use httpd_runner_core::wake::Doorbell;
use loom::sync::Arc;
use loom::thread;

/// Sends `count` values through a ring of capacity `N`, receiver checks FIFO and no loss.
fn fifo<const N: usize>(count: usize) {
    loom::model(move || {
        let ring: &'static mut Ring<usize, N> = Box::leak(Box::new(Ring::new()));
        let (mut tx, mut rx) = ring.split();
        let producer = thread::spawn(move || {
            for i in 0..count {
                let mut v = i;
                loop {
                    match tx.push(v) {
                        Ok(()) => break,
                        Err(back) => {
                            v = back;
                            thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut next = 0;
        while next < count {
            match rx.pop() {
                Some(v) => {
                    assert_eq!(v, next, "FIFO order, nothing lost or duplicated");
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.pop(), None, "nothing extra");
    });
}

#[test]
fn capacity_2_wraps_around() {
    // 5 values through 2 places: fills, empties and wraps the 0..2N positions.
    fifo::<2>(5);
}

#[test]
fn capacity_4_fills_and_drains() {
    fifo::<4>(6);
}

#[test]
fn staged_batches_arrive_whole_and_in_order() {
    // The producer stages two values per batch and publishes once; the consumer must see each
    // batch complete (never a value without the one staged before it) and in order.
    loom::model(|| {
        let ring: &'static mut Ring<usize, 4> = Box::leak(Box::new(Ring::new()));
        let (mut tx, mut rx) = ring.split();
        let producer = thread::spawn(move || {
            for batch in 0..2 {
                while tx.free() < 2 {
                    thread::yield_now();
                }
                tx.stage(2 * batch).unwrap();
                tx.stage(2 * batch + 1).unwrap();
                tx.publish();
            }
        });
        let mut next = 0;
        while next < 4 {
            if next % 2 == 0 {
                assert!(rx.len() % 2 == 0, "a batch is seen whole or not at all");
            }
            match rx.pop() {
                Some(v) => {
                    assert_eq!(v, next);
                    next += 1;
                }
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.pop(), None);
    });
}

#[test]
fn full_push_hands_back_and_empty_pop_is_none() {
    loom::model(|| {
        let ring: &'static mut Ring<Box<u32>, 2> = Box::leak(Box::new(Ring::new()));
        let (mut tx, mut rx) = ring.split();
        let consumer = thread::spawn(move || {
            let mut got = Vec::new();
            while got.len() < 3 {
                if let Some(v) = rx.pop() {
                    got.push(*v);
                } else {
                    thread::yield_now();
                }
            }
            got
        });
        let mut sent = 0;
        while sent < 3 {
            match tx.push(Box::new(sent)) {
                Ok(()) => sent += 1,
                Err(back) => {
                    assert_eq!(*back, sent, "the refused value comes back intact");
                    thread::yield_now();
                }
            }
        }
        assert_eq!(consumer.join().unwrap(), vec![0, 1, 2]);
    });
}

/// The consumer sleeps only after `prepare_sleep` and a re-check; the producer wakes it only
/// when `should_wake` says so. A lost wake-up leaves the consumer parked forever, which loom
/// reports as a deadlock.
#[test]
fn doorbell_never_loses_a_wakeup() {
    loom::model(|| {
        let ring: &'static mut Ring<u32, 2> = Box::leak(Box::new(Ring::new()));
        let (mut tx, mut rx) = ring.split();
        let bell = Arc::new(Doorbell::new());
        let bell2 = bell.clone();
        let consumer = thread::spawn(move || {
            let mut got = 0;
            while got < 2 {
                if rx.pop().is_some() {
                    got += 1;
                    continue;
                }
                bell2.prepare_sleep();
                if rx.is_empty() {
                    thread::park();
                }
                bell2.awake();
            }
        });
        let consumer_thread = consumer.thread().clone();
        for i in 0..2 {
            tx.push(i).unwrap();
            if bell.should_wake() {
                consumer_thread.unpark();
            }
        }
        consumer.join().unwrap();
    });
}
