//! The pure core of a flight: who runs it, who waits, and what a waiter does when polled.
//!
//! A flight is the shared state of one execution for one key. It is plain data here; the
//! handle keeps it under a std `Mutex` (never held across an await) and wakes the wakers these
//! functions hand back *after* unlocking. Every function is a decision over that data, so the
//! hand-over rules are tested without a runtime.
//!
//! The invariant all of them keep: at most one caller runs a flight at a time (`leader` is
//! true for exactly that span), so no second execution for the same key can start while one
//! runs.

use std::task::Waker;

/// What a finished flight shares with its followers.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome<V> {
    /// The leader's result, cloned for each follower.
    Value(V),
    /// The leader's operation panicked: there is nothing to share.
    Panicked,
}

/// One flight's shared state.
#[derive(Debug)]
pub(super) struct Flight<V> {
    /// Set once, when the flight ends with a result or a panic.
    pub(super) outcome: Option<Outcome<V>>,
    /// Whether a caller is running the operation now.
    pub(super) leader: bool,
    /// Followers still waiting (registered and not yet answered or dropped).
    pub(super) followers: usize,
    /// One slot per follower that ever joined, by the index it was given; `None` once it is
    /// answered, gone, or has no waker registered yet.
    pub(super) wakers: Vec<Option<Waker>>,
}

/// What a polled follower does next.
#[derive(Debug, PartialEq)]
pub(super) enum Step<V> {
    /// The flight ended: here is its outcome.
    Done(Outcome<V>),
    /// The leader went away without an outcome; this follower now leads and runs its own
    /// operation.
    Lead,
    /// Still running: wait to be woken.
    Wait,
}

/// What happens to a flight whose leader went away without a result.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Abandoned {
    /// Nobody waits: the key is removed.
    Remove,
    /// Followers wait: the first one polled takes over; all of them are woken.
    HandOver,
}

impl<V> Flight<V> {
    /// A flight that its leader is running, with no follower yet.
    pub(super) fn led() -> Self {
        Self {
            outcome: None,
            leader: true,
            followers: 0,
            wakers: Vec::new(),
        }
    }

    /// Registers a new follower and returns its slot.
    pub(super) fn join(&mut self) -> usize {
        self.followers += 1;
        self.wakers.push(None);
        self.wakers.len() - 1
    }

    /// A follower in `slot` is polled: it gets the outcome, takes over, or waits with
    /// `waker` registered. A follower that is answered or takes over leaves the flight.
    pub(super) fn poll(&mut self, slot: usize, waker: &Waker) -> Step<V>
    where
        V: Clone,
    {
        if let Some(outcome) = &self.outcome {
            let outcome = outcome.clone();
            self.leave(slot);
            return Step::Done(outcome);
        }
        if !self.leader {
            self.leader = true;
            self.leave(slot);
            return Step::Lead;
        }
        match &mut self.wakers[slot] {
            Some(registered) if registered.will_wake(waker) => {}
            other => *other = Some(waker.clone()),
        }
        Step::Wait
    }

    /// The leader finished with `outcome`; the wakers of every follower, to wake after
    /// unlocking. The value is stored only when someone waits for it.
    pub(super) fn finish(&mut self, outcome: impl FnOnce() -> Outcome<V>) -> Vec<Waker> {
        self.leader = false;
        if self.followers > 0 {
            self.outcome = Some(outcome());
        }
        self.take_wakers()
    }

    /// The leader went away (dropped) before an outcome.
    pub(super) fn abandon(&mut self) -> (Abandoned, Vec<Waker>) {
        self.leader = false;
        if self.followers == 0 {
            (Abandoned::Remove, Vec::new())
        } else {
            (Abandoned::HandOver, self.take_wakers())
        }
    }

    /// A follower in `slot` went away (dropped) before it was answered. True when the flight
    /// is now dead (no leader, no follower, no outcome) and its key must be removed.
    pub(super) fn drop_follower(&mut self, slot: usize) -> bool {
        self.leave(slot);
        self.followers == 0 && !self.leader && self.outcome.is_none()
    }

    fn leave(&mut self, slot: usize) {
        self.followers -= 1;
        self.wakers[slot] = None;
    }

    fn take_wakers(&mut self) -> Vec<Waker> {
        self.wakers.iter_mut().filter_map(Option::take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::task::Waker;

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    #[test]
    fn followers_get_the_leaders_value() {
        let mut flight = Flight::led();
        let (a, b) = (flight.join(), flight.join());
        assert_eq!(flight.poll(a, &noop()), Step::Wait);
        let wakers = flight.finish(|| Outcome::Value(7));
        assert_eq!(wakers.len(), 1, "only a registered follower has a waker");
        assert_eq!(flight.poll(a, &noop()), Step::Done(Outcome::Value(7)));
        assert_eq!(flight.poll(b, &noop()), Step::Done(Outcome::Value(7)));
        assert_eq!(flight.followers, 0);
    }

    #[test]
    fn a_finish_without_followers_stores_nothing() {
        let mut flight = Flight::<u32>::led();
        let wakers = flight.finish(|| unreachable!("nobody waits, so nothing is cloned"));
        assert!(wakers.is_empty());
        assert_eq!(flight.outcome, None);
    }

    #[test]
    fn an_abandoned_flight_is_taken_over_by_exactly_one_follower() {
        let mut flight = Flight::<u32>::led();
        let (a, b) = (flight.join(), flight.join());
        flight.poll(a, &noop());
        flight.poll(b, &noop());
        let (abandoned, wakers) = flight.abandon();
        assert_eq!((abandoned, wakers.len()), (Abandoned::HandOver, 2));
        assert_eq!(flight.poll(b, &noop()), Step::Lead);
        assert_eq!(flight.poll(a, &noop()), Step::Wait, "b leads now");
        flight.finish(|| Outcome::Value(1));
        assert_eq!(flight.poll(a, &noop()), Step::Done(Outcome::Value(1)));
    }

    #[test]
    fn an_abandoned_flight_without_followers_is_removed() {
        let mut flight = Flight::<u32>::led();
        assert_eq!(flight.abandon().0, Abandoned::Remove);
    }

    #[test]
    fn the_last_follower_of_a_leaderless_flight_removes_it() {
        let mut flight = Flight::<u32>::led();
        let (a, b) = (flight.join(), flight.join());
        flight.abandon();
        assert!(!flight.drop_follower(a), "b may still take over");
        assert!(flight.drop_follower(b));
    }

    #[test]
    fn a_follower_leaving_a_led_flight_removes_nothing() {
        let mut flight = Flight::<u32>::led();
        let a = flight.join();
        assert!(!flight.drop_follower(a));
        assert_eq!(flight.followers, 0);
    }

    #[test]
    fn a_panic_reaches_every_follower() {
        let mut flight = Flight::<u32>::led();
        let (a, b) = (flight.join(), flight.join());
        flight.finish(|| Outcome::Panicked);
        assert_eq!(flight.poll(a, &noop()), Step::Done(Outcome::Panicked));
        assert_eq!(flight.poll(b, &noop()), Step::Done(Outcome::Panicked));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join,
        Poll(usize),
        DropFollower(usize),
        LeaderFinishes,
        LeaderDropped,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Join),
            4 => (0..16usize).prop_map(Op::Poll),
            2 => (0..16usize).prop_map(Op::DropFollower),
            1 => Just(Op::LeaderFinishes),
            1 => Just(Op::LeaderDropped),
        ]
    }

    proptest! {
        /// Against a model: never two leaders, every follower is answered or leads, a dead
        /// flight is reported exactly when nobody is left.
        #[test]
        fn at_most_one_leader_and_nobody_is_stranded(ops in proptest::collection::vec(op(), 0..60)) {
            let mut flight = Flight::<u32>::led();
            // Followers still in the flight, by slot.
            let mut waiting: Vec<usize> = Vec::new();
            let mut dead = false;
            for op in ops {
                if dead || flight.outcome.is_some() && waiting.is_empty() {
                    break;
                }
                match op {
                    Op::Join if flight.outcome.is_none() => waiting.push(flight.join()),
                    Op::Poll(i) if !waiting.is_empty() => {
                        let slot = waiting[i % waiting.len()];
                        let was_leading = flight.leader;
                        match flight.poll(slot, &noop()) {
                            Step::Done(_) => { waiting.retain(|&s| s != slot); }
                            Step::Lead => {
                                prop_assert!(!was_leading, "a second leader while one runs");
                                waiting.retain(|&s| s != slot);
                            }
                            Step::Wait => prop_assert!(flight.leader),
                        }
                    }
                    Op::DropFollower(i) if !waiting.is_empty() => {
                        let slot = waiting.remove(i % waiting.len());
                        let removed = flight.drop_follower(slot);
                        prop_assert_eq!(removed, waiting.is_empty() && !flight.leader && flight.outcome.is_none());
                        dead = removed;
                    }
                    Op::LeaderFinishes if flight.leader => {
                        flight.finish(|| Outcome::Value(1));
                        prop_assert!(waiting.is_empty() || flight.outcome.is_some());
                    }
                    Op::LeaderDropped if flight.leader => {
                        let (abandoned, _) = flight.abandon();
                        prop_assert_eq!(abandoned == Abandoned::Remove, waiting.is_empty());
                        dead = waiting.is_empty();
                    }
                    _ => {}
                }
                prop_assert_eq!(flight.followers, waiting.len());
            }
        }
    }
}
