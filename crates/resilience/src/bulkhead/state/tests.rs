use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

#[test]
fn a_full_bulkhead_queues_only_within_its_limit_and_keeps_the_reasons_apart() {
    assert_eq!(join_queue(0, 0), Err(RejectionReason::CapacityFull));
    assert_eq!(join_queue(0, 2), Ok(1));
    assert_eq!(join_queue(1, 2), Ok(2));
    assert_eq!(join_queue(2, 2), Err(RejectionReason::QueueFull));
    assert_eq!(join_queue(7, 2), Err(RejectionReason::QueueFull));
}

#[test]
fn newcomers_take_a_free_slot_only_while_nobody_waits() {
    assert!(enters_at_once(1, 0));
    assert!(!enters_at_once(0, 0));
    assert!(
        !enters_at_once(1, 1),
        "the free slot is on its way to the waiting call"
    );
    assert_eq!(hand_over(0, 3), 0, "another release served them already");
    assert_eq!(hand_over(2, 3), 2);
    assert_eq!(hand_over(5, 3), 3, "the rest stay free");
    assert_eq!(hand_over(4, 0), 0, "the waiters left meanwhile");
}

#[test]
fn growth_pays_debt_first_and_shrinking_owes_what_is_not_free() {
    assert_eq!(grow(5, 0), (5, 0));
    assert_eq!(grow(5, 3), (2, 0));
    assert_eq!(grow(2, 3), (0, 1));
    assert_eq!(shrink(4, 0), 4, "owed first");
    assert_eq!(settle(4, 4), (0, 0), "all four were free");
    assert_eq!(
        settle(1, shrink(4, 2)),
        (0, 5),
        "three more are owed by running calls"
    );
    assert_eq!(
        settle(1, 0),
        (1, 0),
        "a returning slot paid the debt meanwhile: the free permit goes back"
    );
    assert_eq!(shrink(1, u32::MAX), u32::MAX);
    assert_eq!(on_release(0), (true, 0));
    assert_eq!(on_release(2), (false, 1));
}

#[test]
fn held_slots_are_derived_from_limit_debt_and_free_permits() {
    assert_eq!(held(10, 0, 10), 0);
    assert_eq!(held(10, 0, 3), 7);
    assert_eq!(held(2, 3, 0), 5, "two within the limit, three owed");
    assert_eq!(held(2, 0, 5), 0, "mid-resize readings saturate");
}

#[test]
fn ratios_are_clamped_and_averages_exact() {
    assert_eq!(ratio(0, 0), 0.0);
    assert_eq!(ratio(3, 4), 0.75);
    assert_eq!(
        ratio(5, 4),
        1.0,
        "active above a just-shrunk limit is still full"
    );
    assert_eq!(average(Duration::from_millis(300), 0), Duration::ZERO);
    assert_eq!(
        average(Duration::from_millis(300), 4),
        Duration::from_millis(75)
    );
}

/// A reference bulkhead on simulated FIFO slots, driven only through the functions
/// above, with the handle's bookkeeping (waiting count, debt, tallies). A release is two
/// steps, as in the handle: the slot is freed, and a release that found calls waiting
/// hands free slots over later (`Op::HandOver`), with other steps in between.
#[derive(Debug)]
struct Sim {
    max: u32,
    max_waiting: u32,
    timeout: Option<u64>,
    now: u64,
    /// The slots: the free ones and the FIFO queue of `(call id, deadline)`.
    available: u32,
    queue: VecDeque<(u32, Option<u64>)>,
    debt: u32,
    waiting: u32,
    /// Releases that found calls waiting and have yet to hand over.
    handing_over: u32,
    active: Vec<u32>,
    next_id: u32,
    arrivals: u64,
    accepted: u64,
    rejected: [u64; 3],
    cancelled: u64,
    finished: u64,
    /// Ids admitted from the queue, in admission order.
    from_queue: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Arrive,
    Finish(usize),
    Cancel(usize),
    Advance(u64),
    Resize(u32),
    HandOver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Arrive),
        3 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::Cancel),
        1 => (1..40_u64).prop_map(Op::Advance),
        1 => (1..6_u32).prop_map(Op::Resize),
        2 => Just(Op::HandOver),
    ]
}

fn reason_index(reason: RejectionReason) -> usize {
    match reason {
        RejectionReason::CapacityFull => 0,
        RejectionReason::QueueFull => 1,
        _ => 2,
    }
}

impl Sim {
    fn new(max: u32, max_waiting: u32, timeout: Option<u64>) -> Self {
        Self {
            max,
            max_waiting,
            timeout,
            now: 0,
            available: max,
            queue: VecDeque::new(),
            debt: 0,
            waiting: 0,
            handing_over: 0,
            active: Vec::new(),
            next_id: 0,
            arrivals: 0,
            accepted: 0,
            rejected: [0; 3],
            cancelled: 0,
            finished: 0,
            from_queue: Vec::new(),
        }
    }

    /// Slots given back: freed in one step, handed over in a later one if calls wait.
    fn add_permits(&mut self, permits: u32) {
        self.available += permits;
        if self.waiting > 0 {
            self.handing_over += 1;
        }
    }

    /// A release that found calls waiting hands free slots to the longest waiting ones.
    fn hand_over(&mut self) {
        self.handing_over -= 1;
        let served = hand_over(self.available, self.waiting);
        self.available -= served;
        self.waiting -= served;
        for _ in 0..served {
            let (id, _) = self.queue.pop_front().expect("one queued call per waiter");
            self.accepted += 1;
            self.active.push(id);
            self.from_queue.push(id);
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Arrive => {
                let id = self.next_id;
                self.next_id += 1;
                self.arrivals += 1;
                if enters_at_once(self.available, self.waiting) {
                    assert!(self.queue.is_empty(), "a newcomer went ahead of the queue");
                    self.available -= 1;
                    self.accepted += 1;
                    self.active.push(id);
                } else {
                    match join_queue(self.waiting, self.max_waiting) {
                        Ok(waiting) => {
                            self.waiting = waiting;
                            let deadline = self.timeout.map(|t| self.now + t);
                            self.queue.push_back((id, deadline));
                        }
                        Err(reason) => self.rejected[reason_index(reason)] += 1,
                    }
                }
            }
            Op::Finish(index) if !self.active.is_empty() => {
                self.active.remove(index % self.active.len());
                self.finished += 1;
                let (give_back, debt) = on_release(self.debt);
                self.debt = debt;
                if give_back {
                    self.add_permits(1);
                }
            }
            Op::Cancel(index) if !self.queue.is_empty() => {
                self.queue.remove(index % self.queue.len());
                self.waiting -= 1;
                self.cancelled += 1;
            }
            Op::Advance(ms) => {
                self.now += ms;
                let now = self.now;
                let before = self.queue.len();
                self.queue
                    .retain(|(_, deadline)| deadline.is_none_or(|at| at > now));
                let expired = (before - self.queue.len()) as u32;
                self.waiting -= expired;
                self.rejected[2] += u64::from(expired);
            }
            Op::Resize(to) if to > self.max => {
                let (add, debt) = grow(to - self.max, self.debt);
                self.debt = debt;
                self.max = to;
                self.add_permits(add);
            }
            Op::Resize(to) => {
                let removed = self.max - to;
                self.debt = shrink(removed, self.debt);
                let forgotten = removed.min(self.available);
                self.available -= forgotten;
                let (back, debt) = settle(forgotten, self.debt);
                self.debt = debt;
                self.max = to;
                self.add_permits(back);
            }
            Op::HandOver if self.handing_over > 0 => self.hand_over(),
            Op::Finish(_) | Op::Cancel(_) | Op::HandOver => {}
        }
    }

    fn check(&self) {
        let active = self.active.len() as u32;
        assert_eq!(held(self.max, self.debt, self.available), active);
        assert_eq!(
            self.available + active,
            self.max + self.debt,
            "every permit is free, held, or owed"
        );
        assert!(self.debt <= active, "only running calls can owe a slot");
        assert!(
            self.queue.is_empty() || self.available == 0 || self.handing_over > 0,
            "a slot is free while calls wait, and no release is on its way to hand it over"
        );
        assert_eq!(self.waiting as usize, self.queue.len());
        assert!(self.waiting <= self.max_waiting);
        let rejected: u64 = self.rejected.iter().sum();
        assert_eq!(
            self.arrivals,
            self.accepted + rejected + self.cancelled + u64::from(self.waiting),
            "every arrival is accepted, rejected, cancelled or still waiting, once"
        );
        assert_eq!(self.accepted, self.finished + u64::from(active));
        assert!(
            self.from_queue.windows(2).all(|pair| pair[0] < pair[1]),
            "queued calls are admitted in arrival order: {:?}",
            self.from_queue
        );
        if self.max_waiting == 0 {
            assert_eq!(self.rejected[1] + self.rejected[2], 0);
        }
    }
}

proptest! {
    #[test]
    fn permits_are_conserved_counts_add_up_and_the_queue_is_fifo(
        max in 1..5_u32,
        max_waiting in 0..4_u32,
        timeout in prop::option::of(1..60_u64),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let mut sim = Sim::new(max, max_waiting, timeout);
        for op in ops {
            sim.apply(op);
            sim.check();
        }
        // Drain: every hand-over lands, every call ends and every waiter gives up; the full
        // capacity is back.
        while !sim.active.is_empty() || !sim.queue.is_empty() || sim.handing_over > 0 {
            if sim.handing_over > 0 {
                sim.apply(Op::HandOver);
            } else if sim.active.is_empty() {
                sim.apply(Op::Cancel(0));
            } else {
                sim.apply(Op::Finish(0));
            }
            sim.check();
        }
        prop_assert_eq!(sim.debt, 0);
        prop_assert_eq!(sim.available, sim.max);
        prop_assert_eq!(sim.waiting, 0);
    }
}
