use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

fn config(max_requests: u32, max_queue_depth: u32) -> Limits {
    Limits::of(&settings(max_requests, max_queue_depth))
}

fn settings(max_requests: u32, max_queue_depth: u32) -> LoadShedderConfig {
    LoadShedderConfig {
        max_requests,
        max_queue_depth,
        ..LoadShedderConfig::default()
    }
}

fn at(active: u32, queued: u32) -> Counts {
    Counts { active, queued }
}

fn decision(active: u32, priority: Priority, config: &Limits) -> Decision {
    decide(at(active, 0), priority, config, None).0
}

#[test]
fn counts_pack_into_one_word() {
    let counts = at(u32::MAX, 7);
    assert_eq!(Counts::unpack(counts.pack()), counts);
    assert_eq!(Counts::unpack(0), Counts::default());
}

#[test]
fn each_priority_is_shed_just_above_its_threshold() {
    let config = config(100, 0);
    let shed = Decision::Shed(ShedReason::Utilization);
    for (priority, last_admitted) in [
        (Priority::Low, 60),
        (Priority::Normal, 75),
        (Priority::High, 90),
    ] {
        assert_eq!(decision(last_admitted, priority, &config), Decision::Admit);
        assert_eq!(decision(last_admitted + 1, priority, &config), shed);
    }
    assert_eq!(decision(99, Priority::Critical, &config), Decision::Admit);
    assert_eq!(
        decision(100, Priority::Critical, &config),
        Decision::Shed(ShedReason::MaxRequests)
    );
}

#[test]
fn at_the_cap_requests_queue_until_the_queue_is_full() {
    let config = config(2, 2);
    let (first, counts) = decide(at(2, 0), Priority::Critical, &config, None);
    assert_eq!((first, counts), (Decision::Queue, at(2, 1)));
    let (_, counts) = decide(counts, Priority::Critical, &config, None);
    assert_eq!(counts, at(2, 2));
    let (full, _) = decide(counts, Priority::Critical, &config, None);
    assert_eq!(full, Decision::Shed(ShedReason::QueueFull));
    // Nobody overtakes the queue, even with a slot free (after the cap was raised).
    assert_eq!(
        decide(at(1, 1), Priority::Critical, &config, None).0,
        Decision::Queue
    );
}

#[test]
fn a_threshold_of_one_lets_a_priority_queue_at_the_cap() {
    let config = Limits::of(&LoadShedderConfig {
        low_threshold: 1.0,
        normal_threshold: 1.0,
        high_threshold: 1.0,
        ..settings(1, 1)
    });
    assert_eq!(
        decide(at(1, 0), Priority::Low, &config, None).0,
        Decision::Queue
    );
}

#[test]
fn a_release_frees_the_slot_then_the_oldest_waiter_takes_it() {
    assert_eq!(free_slot(at(3, 0)), at(2, 0));
    // The handle frees a slot by subtracting one active request from the packed word.
    assert_eq!(
        Counts::unpack(at(3, 2).pack() - ONE_ACTIVE),
        free_slot(at(3, 2))
    );
    assert_eq!(admit_waiter(free_slot(at(3, 2)), 3), Some(at(3, 1)));
    assert_eq!(leave_queue(at(3, 2)), at(3, 1));
    // Above a lowered cap the slot is freed and nobody is admitted.
    assert_eq!(admit_waiter(free_slot(at(5, 2)), 3), None);
    assert_eq!(admit_waiter(at(2, 1), 3), Some(at(3, 0)));
    assert_eq!(admit_waiter(at(3, 1), 3), None);
}

#[test]
fn system_thresholds_are_strict_and_depend_on_priority() {
    let config = config(100, 0);
    let load = |cpu, memory| {
        Some(SystemLoad {
            cpu,
            memory,
            cpu_threshold: 0.85,
            memory_threshold: 0.85,
        })
    };
    let run = |priority, cpu, memory| decide(at(0, 0), priority, &config, load(cpu, memory)).0;
    assert_eq!(run(Priority::Normal, 0.85, 0.85), Decision::Admit);
    assert_eq!(
        run(Priority::Low, 0.851, 0.0),
        Decision::Shed(ShedReason::Cpu)
    );
    assert_eq!(
        run(Priority::Normal, 0.0, 0.851),
        Decision::Shed(ShedReason::Memory)
    );
    assert_eq!(run(Priority::High, 0.90, 0.90), Decision::Admit);
    assert_eq!(
        run(Priority::High, 0.901, 0.0),
        Decision::Shed(ShedReason::Cpu)
    );
    assert_eq!(run(Priority::Critical, 1.0, 1.0), Decision::Admit);
}

#[derive(Debug, Clone)]
enum Op {
    Acquire(Priority),
    Release(usize),
    Cancel(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => prop::sample::select(Priority::ALL.to_vec()).prop_map(Op::Acquire),
        2 => any::<usize>().prop_map(Op::Release),
        1 => any::<usize>().prop_map(Op::Cancel),
    ]
}

/// A size and a threshold: any of both, common thresholds, and thresholds that are a count
/// over the size exactly (`k / n`, whose product with `n` may round to just below `k`).
fn size_and_threshold() -> impl Strategy<Value = (u32, f64)> {
    let size = prop_oneof![1u32..2_000, any::<u32>().prop_map(|n| n.max(1))];
    let common = prop::sample::select(vec![0.0, 0.1, 0.29, 0.3, 0.57, 0.6, 0.75, 0.9, 1.0]);
    prop_oneof![
        (size.clone(), 0.0f64..=1.0),
        (size.clone(), common),
        size.prop_flat_map(|n| (Just(n), 0..=n))
            .prop_map(|(n, k)| (n, f64::from(k) / f64::from(n))),
    ]
}

fn thresholds() -> impl Strategy<Value = [f64; 3]> {
    prop::collection::vec(
        prop::sample::select(vec![0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0]),
        3,
    )
    .prop_map(|mut values| {
        values.sort_by(f64::total_cmp);
        [values[0], values[1], values[2]]
    })
}

proptest! {
    /// Acquire, release and cancel in any order, against a reference model of holders and a
    /// FIFO queue: the counts always equal the model's, never go negative or past the limits,
    /// the queue is served in order, and a critical request is only shed at the hard cap.
    #[test]
    fn counts_match_a_reference_model(
        max_requests in 1u32..8,
        max_queue_depth in 0u32..5,
        [low, normal, high] in thresholds(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let settings = LoadShedderConfig {
            low_threshold: low,
            normal_threshold: normal,
            high_threshold: high,
            ..settings(max_requests, max_queue_depth)
        };
        settings.validate().unwrap();
        let config = Limits::of(&settings);
        let mut counts = Counts::default();
        let mut holders: Vec<u32> = Vec::new();
        let mut queue: VecDeque<u32> = VecDeque::new();
        let mut served: Vec<u32> = Vec::new();
        for (id, op) in (0u32..).zip(ops) {
            match op {
                Op::Acquire(priority) => {
                    let before = counts;
                    let (decision, after) = decide(counts, priority, &config, None);
                    match decision {
                        Decision::Admit => {
                            prop_assert!(before.active < max_requests && before.queued == 0);
                            holders.push(id);
                        }
                        Decision::Queue => queue.push_back(id),
                        Decision::Shed(ShedReason::Utilization) => {
                            let threshold = settings.threshold(priority);
                            prop_assert!(threshold.is_some(), "critical shed by utilisation");
                            let utilization = utilization(before.active, max_requests);
                            prop_assert!(utilization > threshold.unwrap());
                        }
                        Decision::Shed(_) => {
                            prop_assert!(before.active >= max_requests || before.queued > 0);
                            prop_assert!(before.queued >= max_queue_depth);
                        }
                    }
                    if priority == Priority::Critical && matches!(decision, Decision::Shed(_)) {
                        prop_assert!(before.active >= max_requests, "critical shed below the cap");
                    }
                    counts = after;
                }
                Op::Release(index) if !holders.is_empty() => {
                    holders.swap_remove(index % holders.len());
                    let queued = counts.queued > 0;
                    counts = free_slot(counts);
                    // Between the two steps a newcomer queues: nobody overtakes the queue.
                    if queued {
                        let (decision, _) = decide(counts, Priority::Critical, &config, None);
                        prop_assert_ne!(decision, Decision::Admit, "a newcomer took the freed slot");
                    }
                    while let Some(after) = admit_waiter(counts, max_requests) {
                        let next = queue.pop_front().unwrap();
                        served.push(next);
                        holders.push(next);
                        counts = after;
                    }
                }
                Op::Cancel(index) if !queue.is_empty() => {
                    queue.remove(index % queue.len());
                    counts = leave_queue(counts);
                }
                Op::Release(_) | Op::Cancel(_) => {}
            }
            prop_assert_eq!(counts.active as usize, holders.len());
            prop_assert_eq!(counts.queued as usize, queue.len());
            prop_assert!(counts.active <= max_requests);
            prop_assert!(counts.queued <= max_queue_depth);
        }
        prop_assert!(served.windows(2).all(|pair| pair[0] < pair[1]), "FIFO: {served:?}");
    }

    /// A request is shed by its threshold exactly when the utilisation is above it: the
    /// integer bound each config works out once agrees with the ratio for every count, at
    /// every size, for thresholds that land on a count exactly and ones that do not.
    #[test]
    fn the_bound_sheds_exactly_where_the_ratio_is_above_the_threshold(
        (max_requests, threshold) in size_and_threshold(),
        offsets in prop::collection::vec(-3i64..=3, 1..8),
    ) {
        let most = most_within(threshold, max_requests);
        let near = (threshold * f64::from(max_requests)) as i64;
        let counts = offsets
            .iter()
            .map(|offset| near + offset)
            .chain([0, i64::from(max_requests), i64::from(u32::MAX)]);
        for active in counts.filter_map(|active| u32::try_from(active).ok()) {
            prop_assert_eq!(
                active > most,
                utilization(active, max_requests) > threshold,
                "active {}, bound {}", active, most
            );
        }
    }
}

#[test]
fn the_bound_of_a_threshold() {
    // 75 % of 1000 is 750: 750 in flight is not above it, 751 is.
    assert_eq!(most_within(0.75, 1_000), 750);
    // 60 % of 7 is 4.2: 4 in flight (57 %) is within, 5 (71 %) is not.
    assert_eq!(most_within(0.6, 7), 4);
    assert_eq!(most_within(0.0, 10), 0);
    // 0.29 × 100 is 28.999…96 in floating point, but 29 in flight is 29 %, within.
    assert_eq!(most_within(0.29, 100), 29);
    // Utilisation never exceeds 1: a threshold of 1 never sheds, even above a lowered cap.
    assert_eq!(most_within(1.0, 10), u32::MAX);
    assert_eq!(most_within(1.0, u32::MAX), u32::MAX);
    assert_eq!(most_within(0.5, u32::MAX), u32::MAX / 2);
}
