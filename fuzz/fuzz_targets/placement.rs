//! Reading a body in place: for any read buffer, slot room, guess, read length and consumer,
//! the bytes one read scattered over the read buffer and the slot come out in stream order,
//! whether the guess is taken or undone (with a spill when the slot's bytes do not fit back).
#![no_main]
use httpd_runner_core::place::model::{read_and_settle, MAX};
use httpd_runner_core::place::Guess;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, u16, u16, u16, u16, u8)| {
    let (rbuf, spare, head, body, n, consume) = input;
    let rbuf_len = 1 + usize::from(rbuf) % MAX;
    let guess = Guess {
        head: usize::from(head) % (rbuf_len + 2),
        body: usize::from(body) % (3 * MAX),
    };
    read_and_settle(
        guess,
        rbuf_len,
        usize::from(spare) % (MAX + 1),
        usize::from(n),
        usize::from(consume),
    );
});
