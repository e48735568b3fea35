//! The handler's loop: one turn takes new connections and runners' answers, writes, wakes
//! runners and checks deadlines, then polls (or waits for quick runners instead), then
//! drives the connections the poll reported.

use super::*;

/// The loop's I/O ends: the poll and its events, the rings in, and the load bookkeeping
/// of loop turns.
struct Io {
    poll: Poll,
    events: Events,
    accepts: Consumer<'static, Accepted, ACCEPT_RING_SLOTS>,
    done: Vec<Consumer<'static, Done<'static>, RING_SLOTS>>,
    /// When deadlines are checked next (ms).
    next_tick: u64,
    /// Turns in a row that served at most one connection; the `LoadHint` mirrors whether it
    /// is a whole streak.
    light_turns: Streak,
    placement: Placement,
}

impl HandlerThread {
    /// The thread body: serves until shutdown has drained every connection.
    pub(crate) fn run(self, ready: impl FnOnce()) -> io::Result<()> {
        let HandlerThread {
            index,
            poll,
            accepts,
            jobs,
            done,
            memory,
            conns,
            runner_cores,
            shared,
            access,
        } = self;
        let mut io = Io {
            poll,
            events: Events::with_capacity(EVENTS),
            accepts,
            done,
            next_tick: 0,
            light_turns: Streak::default(),
            placement: Placement::for_current_thread(&runner_cores),
        };
        let mut st = State::new(index, shared, conns, memory, jobs);
        st.access = access;
        st.clock();
        ready();
        loop {
            st.clock();
            let work = st.chores(&mut io);
            if shared.shutdown.is_requested()
                && st.drain_for_shutdown(io.poll.registry(), &mut io.accepts)
            {
                shared.shutdown.handler_done();
                return Ok(());
            }
            let timeout = st.poll_timeout(&io, work);
            let polled = io.poll.poll(&mut io.events, Some(timeout));
            shared.handler_bells[index].awake();
            match polled {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            st.clock();
            st.serve_events(&mut io);
        }
    }
}

impl State {
    fn new(
        index: usize,
        shared: &'static Shared,
        conns: Vec<Connection>,
        memory: HandlerMemory,
        jobs: Vec<Producer<'static, Job<'static>, RING_SLOTS>>,
    ) -> Self {
        let cfg = &shared.cfg;
        let per_handler = conns.len();
        let runners = jobs.len();
        let slots_total = memory.slots.len();
        let sizes = class::Sizes::new(&cfg.limits());
        let own_len = conns.first().map_or(sizes.read, |c| c.rbuf.len());
        Self {
            index,
            shared,
            metrics: &shared.metrics.handlers[index],
            conns,
            free_conns: (0..per_handler as u32).rev().collect(),
            slots: SlotPool::new(
                memory.slots,
                memory.small_slots,
                memory.spares,
                vec![memory.own_spare],
            ),
            heads: HeadPool::new(memory.large_heads, own_len, per_handler),
            sizes,
            retry: VecDeque::with_capacity(per_handler),
            retrying: false,
            dirty: Vec::with_capacity(per_handler),
            gather: vec![0; GATHER_BYTES].into_boxed_slice(),
            in_flight: vec![0; runners],
            awaiting: Awaiting::default(),
            wake_runner: vec![false; runners],
            jobs,
            started: shared.started,
            limits: cfg.limits(),
            ring_capacity: cfg.ring_capacity_jobs() as usize,
            conn_cfg: cfg.conn(),
            now_ms: 0,
            date: [0; DATE_LEN],
            date_refresh_ms: 0,
            now_us: 0,
            round_robin: index,
            read_since_harvest: 0,
            shutdown_deadline_ms: None,
            newcomer_waiting: false,
            access: None,
            bursts: observe::Bursts::default(),
            shed_after_us: cfg.shed_after_us(),
            watch: Watchlist::new(vec![Watch::FREE; slots_total]),
            request_timeout_ms: cfg.request_timeout_ms(),
        }
    }

    /// A turn's work before polling: new connections, runners' answers, writes, waiting
    /// connections, runner wake-ups, deadlines. Returns whether anything needs another turn
    /// at once.
    fn chores(&mut self, io: &mut Io) -> bool {
        let registry = io.poll.registry();
        let mut work = false;
        while let Some(stream) = io.accepts.pop() {
            self.adopt(stream, registry);
            work = true;
        }
        work |= self.take_answers(&mut io.done);
        if self.now_us >= self.watch.next_due_us() {
            self.fire_deadlines();
        }
        // Flush first: slots it frees go to the connections queued for one.
        self.flush_dirty(registry);
        self.retry_waiting(registry);
        self.wake_runners();
        // Connections waiting for their next turn must not wait for a poll timeout; those
        // waiting for a slot are retried when a runner hands one back (which wakes us).
        work |= self.scan_retry();
        if self.now_ms >= io.next_tick {
            io.next_tick = self.now_ms + DEADLINE_TICK_MS;
            self.tick(registry);
        }
        if self.now_ms >= self.next_wait_expiry_ms() {
            self.refuse_expired_waits(registry);
        }
        work
    }

    /// How long the poll may wait: not at all with work left or answers awaited (see
    /// `await_runners`); else, having announced sleep on the doorbell, until the next
    /// deadline unless something arrived meanwhile.
    fn poll_timeout(&mut self, io: &Io, work: bool) -> Duration {
        if work || self.await_runners(&io.done) {
            return Duration::ZERO;
        }
        self.shared.handler_bells[self.index].prepare_sleep();
        if !io.accepts.is_empty() || io.done.iter().any(|r| !r.is_empty()) {
            return Duration::ZERO;
        }
        let until = io.next_tick.min(self.next_wait_expiry_ms());
        let ms = Duration::from_millis(until.saturating_sub(self.now_ms).max(1));
        // A request deadline is met to the millisecond, not the deadline tick.
        let due = self.watch.next_due_us();
        if due == deadline::NONE {
            return ms;
        }
        ms.min(Duration::from_micros(
            due.saturating_sub(self.now_us).max(1),
        ))
    }

    /// Serves the connections the poll reported, then records whether the turn was light.
    fn serve_events(&mut self, io: &mut Io) {
        let Io {
            poll, events, done, ..
        } = io;
        let registry = poll.registry();
        let mut driven = 0u32;
        for ev in events.iter() {
            if ev.token() == WAKE {
                continue;
            }
            driven += 1;
            let idx = ev.token().0 as u32;
            if ev.is_error() || ev.is_write_closed() {
                // Reset, or both directions shut: nothing can be written any more, so the
                // connection and everything it holds are freed now, whatever it was doing
                // (reading, waiting for a slot or a runner, writing).
                self.peer_gone(idx, registry);
                continue;
            }
            if ev.is_readable() || ev.is_read_closed() {
                self.conns[idx as usize]
                    .core
                    .on_readable(ev.is_read_closed());
            }
            self.drive(idx, registry);
            if self.read_since_harvest >= HARVEST_BYTES {
                self.harvest(done, registry);
            }
        }
        self.read_since_harvest = 0;
        let was_light = io.light_turns.is_light();
        let light = io.light_turns.observe(driven <= 1);
        if light != was_light {
            self.shared.handler_light[self.index].set(light);
        }
        if io.placement.observe(driven <= 1) {
            self.metrics.moves.inc();
        }
    }
}
