use proptest::prelude::*;

use super::*;

const MARKS: Marks = Marks {
    max_pending: 6,
    high: 4,
    low: 1,
};

fn admit_all(core: &mut Core<u32>, n: u32) -> Vec<Option<Switch>> {
    (0..n)
        .map(|_| match core.arrive(MARKS, Patience::Queue) {
            Arrival::Admitted(switch) => switch,
            other => panic!("expected an admission, got {other:?}"),
        })
        .collect()
}

#[test]
fn turns_on_at_the_high_mark_and_off_at_the_low_mark() {
    let mut core = Core::<u32>::new();
    let switches = admit_all(&mut core, 4);
    assert_eq!(
        switches,
        [None, None, None, Some(Switch::On { pending: 4 })],
        "on exactly when pending reaches the high mark"
    );
    assert!(core.active());
    // Hysteresis: below the high mark it stays on until the low mark.
    assert_eq!(core.release(MARKS), None);
    assert_eq!(core.release(MARKS), None);
    assert!(core.active());
    assert_eq!(
        core.arrive(MARKS, Patience::Never),
        Arrival::Rejected(RejectionReason::Backpressure)
    );
    assert_eq!(core.release(MARKS), Some(Switch::Off { pending: 1 }));
    assert!(!core.active());
    assert_eq!(core.arrive(MARKS, Patience::Never), Arrival::Admitted(None));
}

#[test]
fn newcomers_queue_behind_waiters_and_are_rejected_past_max_pending() {
    let mut core = Core::<u32>::new();
    admit_all(&mut core, 4);
    assert_eq!(core.arrive(MARKS, Patience::Queue), Arrival::Wait);
    core.enqueue(1);
    assert_eq!(core.arrive(MARKS, Patience::Queue), Arrival::Wait);
    core.enqueue(2);
    // pending 4 + waiting 2 = max_pending 6: no more room to wait.
    assert!(core.overloaded(MARKS));
    assert_eq!(
        core.arrive(MARKS, Patience::Queue),
        Arrival::Rejected(RejectionReason::Backpressure)
    );
    assert_eq!(
        core.arrive(MARKS, Patience::Always),
        Arrival::Wait,
        "a stream always waits"
    );
    // Still on between the marks: nobody is admitted, newcomers do not overtake (B11).
    core.release(MARKS);
    assert_eq!(core.grant(MARKS), None);
    assert_eq!(core.arrive(MARKS, Patience::Queue), Arrival::Wait);
}

#[test]
fn waiters_released_at_the_low_mark_are_rechecked_against_the_high_mark() {
    let marks = Marks {
        max_pending: 20,
        high: 4,
        low: 2,
    };
    let mut core = Core::<u32>::new();
    for _ in 0..4 {
        core.arrive(marks, Patience::Queue);
    }
    for id in 0..5 {
        core.enqueue(id);
    }
    core.release(marks);
    assert_eq!(core.release(marks), Some(Switch::Off { pending: 2 }));
    let mut granted = Vec::new();
    while let Some((id, switch)) = core.grant(marks) {
        granted.push((id, switch));
    }
    assert_eq!(
        granted,
        [(0, None), (1, Some(Switch::On { pending: 4 }))],
        "two admitted in order, then on again at the high mark with three still waiting"
    );
    assert_eq!((core.pending(), core.waiting()), (4, 3));
}

#[test]
fn a_cancelled_waiter_leaves_and_a_granted_one_is_gone_from_the_queue() {
    let mut core = Core::<u32>::new();
    admit_all(&mut core, 4);
    let first = core.enqueue(10);
    let second = core.enqueue(11);
    assert!(core.leave(first));
    assert!(!core.leave(first), "leaving twice finds nothing");
    for _ in 0..3 {
        core.release(MARKS);
    }
    assert_eq!(core.grant(MARKS), Some((11, None)));
    assert!(
        !core.leave(second),
        "already admitted: its slot must be handed on"
    );
}

#[test]
fn reconfiguring_moves_the_switch_at_once() {
    let mut core = Core::<u32>::new();
    admit_all(&mut core, 3);
    let lower = Marks { high: 3, ..MARKS };
    assert_eq!(core.reconfigure(lower), Some(Switch::On { pending: 3 }));
    let raised_low = Marks { low: 3, ..lower };
    assert_eq!(
        core.reconfigure(raised_low),
        Some(Switch::Off { pending: 3 })
    );
    assert_eq!(core.reconfigure(MARKS), None);
}

/// Operations on the core, as a handle would apply them.
#[derive(Debug, Clone, Copy)]
enum Op {
    Arrive(Patience),
    Finish(usize),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Arrive(Patience::Queue)),
        1 => Just(Op::Arrive(Patience::Never)),
        1 => Just(Op::Arrive(Patience::Always)),
        4 => any::<usize>().prop_map(Op::Finish),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

fn marks() -> impl Strategy<Value = Marks> {
    (1..8_u32, 0..8_u32, 0..8_u32).prop_map(|(high, low, extra)| Marks {
        max_pending: high + extra,
        high,
        low: low.min(high),
    })
}

proptest! {
    #[test]
    fn invariants_hold_and_the_queue_is_fifo(
        marks in marks(),
        ops in prop::collection::vec(op(), 1..300),
    ) {
        let mut core = Core::<u64>::new();
        // The model: who holds a slot, who waits (id and patience), what was switched.
        let mut holders: Vec<u64> = Vec::new();
        let mut queued: Vec<(u64, u64, Patience)> = Vec::new(); // (ticket, id, patience)
        let mut admitted_from_queue: Vec<u64> = Vec::new();
        let mut switches: Vec<Switch> = Vec::new();
        let mut next_id = 0;
        for op in ops {
            match op {
                Op::Arrive(patience) => {
                    let id = next_id;
                    next_id += 1;
                    let waiters_before = core.waiting();
                    let at_once = !core.active() && admits_at_once(core.pending(), marks.high);
                    let arrival = core.arrive(marks, patience);
                    // The handle's lock-free admission is exactly the core's quiet one.
                    prop_assert_eq!(at_once, arrival == Arrival::Admitted(None));
                    match arrival {
                        Arrival::Admitted(switch) => {
                            prop_assert_eq!(waiters_before, 0, "a newcomer overtook a waiter");
                            holders.push(id);
                            switches.extend(switch);
                        }
                        Arrival::Wait => {
                            prop_assert!(patience != Patience::Never);
                            queued.push((core.enqueue(id), id, patience));
                        }
                        Arrival::Rejected(reason) => {
                            prop_assert_eq!(reason, RejectionReason::Backpressure);
                            prop_assert!(patience != Patience::Always);
                        }
                    }
                }
                Op::Finish(index) if !holders.is_empty() => {
                    holders.remove(index % holders.len());
                    let at_once = releases_at_once(core.active(), false);
                    let switch = core.release(marks);
                    if at_once {
                        prop_assert_eq!(switch, None);
                        prop_assert_eq!(core.waiting(), 0, "a lock-free release skips a waiter");
                    }
                    switches.extend(switch);
                    while let Some((id, switch)) = core.grant(marks) {
                        let position = queued.iter().position(|(_, queued, _)| *queued == id);
                        prop_assert_eq!(position, Some(0), "waiters are admitted in arrival order");
                        queued.remove(0);
                        holders.push(id);
                        admitted_from_queue.push(id);
                        switches.extend(switch);
                    }
                }
                Op::Cancel(index) if !queued.is_empty() => {
                    let (ticket, _, _) = queued.remove(index % queued.len());
                    prop_assert!(core.leave(ticket));
                }
                Op::Finish(_) | Op::Cancel(_) => {}
            }
            // Counts add up: pending is exactly the slots held, waiting the producers queued.
            prop_assert_eq!(core.pending() as usize, holders.len());
            prop_assert_eq!(core.waiting() as usize, queued.len());
            prop_assert!(core.pending() <= marks.high, "never above the high water mark");
            if !core.active() {
                prop_assert_eq!(core.waiting(), 0, "nobody waits while backpressure is off");
                prop_assert!(core.pending() < marks.high);
            }
            let patient = queued.iter().filter(|(_, _, p)| *p == Patience::Always).count();
            prop_assert!(
                core.pending() as usize + queued.len() <= marks.max_pending as usize + patient
            );
        }
        prop_assert!(admitted_from_queue.windows(2).all(|pair| pair[0] < pair[1]));
        // Switches alternate, starting with on, each at its own mark.
        for (index, switch) in switches.iter().enumerate() {
            match *switch {
                Switch::On { pending } => {
                    prop_assert_eq!(index % 2, 0);
                    prop_assert_eq!(pending, marks.high);
                }
                Switch::Off { pending } => {
                    prop_assert_eq!(index % 2, 1);
                    prop_assert!(pending <= marks.low);
                }
            }
        }
    }
}
