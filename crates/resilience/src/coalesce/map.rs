//! The in-flight map: keys to flights, sharded, each shard behind a std `Mutex`.
//!
//! Why this shape:
//!
//! * A key alone in flight (no follower yet) costs no allocation: its slot holds only an id.
//!   The shared [`Flight`] is allocated when the first follower joins, so a call that nobody
//!   joins allocates nothing (beyond the map's own growth, kept between calls).
//! * A slot is found again by its hash and its id, never by the key, so a leader neither
//!   clones nor rehashes its key to remove it, and a leader whose key was
//!   [forgotten](super::Coalescer::forget) (and perhaps started again by someone else) can
//!   never remove the newer flight: ids are unique within a shard.
//! * Locks are taken in one order, shard then flight, and never across an await; wakers are
//!   woken after both are released.
//! * A forgotten key's flight still has followers to answer; it moves to the shard's
//!   `orphans` until its leader finishes, where new callers cannot join it.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use hashbrown::HashTable;

use super::state::{Abandoned, Flight, Outcome};

/// A flight behind its own lock, shared by the map, the leader and the followers.
pub(super) type Shared<V> = Arc<Mutex<Flight<V>>>;

/// Locks, recovering from poison: no code of ours panics while holding these locks, and the
/// state stays consistent at every point where one could.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct Map<K, V> {
    hasher: hashbrown::DefaultHashBuilder,
    shards: Box<[Mutex<Shard<K, V>>]>,
    mask: usize,
}

struct Shard<K, V> {
    table: HashTable<Slot<K, V>>,
    /// Flights of forgotten keys whose followers still wait, by id.
    orphans: Vec<(u64, Shared<V>)>,
    next_id: u64,
}

struct Slot<K, V> {
    hash: u64,
    key: K,
    id: u64,
    /// `None` while the leader is alone.
    flight: Option<Shared<V>>,
}

/// Where a leader's flight lives, to find it again without the key.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ticket {
    hash: u64,
    shard: usize,
    id: u64,
}

/// The answer to a call for a key.
pub(super) enum Joined<V> {
    /// The key was idle: the caller leads.
    Lead(Ticket),
    /// The key is in flight: the caller follows in `slot` of this flight.
    Follow(Ticket, Shared<V>, usize),
    /// Too many keys are in flight.
    Full,
}

impl<K, V> Map<K, V> {
    pub(super) fn new() -> Self {
        // A few shards per core, so two threads rarely meet on one lock.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let count = (cores * 4).next_power_of_two().min(256);
        Self {
            hasher: hashbrown::DefaultHashBuilder::default(),
            shards: (0..count)
                .map(|_| {
                    Mutex::new(Shard {
                        table: HashTable::new(),
                        orphans: Vec::new(),
                        next_id: 0,
                    })
                })
                .collect(),
            mask: count - 1,
        }
    }
}

impl<K: Hash + Eq, V> Map<K, V> {
    fn shard_of(&self, hash: u64) -> usize {
        // Middle bits: the table uses the low bits for buckets and the top ones for tags.
        (hash >> 24) as usize & self.mask
    }

    /// Joins `key`'s flight or starts one; `admit` is asked (under the shard lock) before a
    /// new key is added, and refuses when the bound is reached.
    pub(super) fn join(&self, key: K, admit: impl FnOnce() -> bool) -> Joined<V> {
        let hash = self.hasher.hash_one(&key);
        let shard_index = self.shard_of(hash);
        let mut shard = lock(&self.shards[shard_index]);
        if let Some(slot) = shard
            .table
            .find_mut(hash, |slot| slot.hash == hash && slot.key == key)
        {
            let flight = slot
                .flight
                .get_or_insert_with(|| Arc::new(Mutex::new(Flight::led())))
                .clone();
            let ticket = Ticket {
                hash,
                shard: shard_index,
                id: slot.id,
            };
            let follower = lock(&flight).join();
            return Joined::Follow(ticket, flight, follower);
        }
        if !admit() {
            return Joined::Full;
        }
        let id = shard.next_id;
        shard.next_id += 1;
        shard.table.insert_unique(
            hash,
            Slot {
                hash,
                key,
                id,
                flight: None,
            },
            |slot| slot.hash,
        );
        Joined::Lead(Ticket {
            hash,
            shard: shard_index,
            id,
        })
    }

    /// Takes a flight's slot out of the map (or the orphans), returning its shared state if
    /// a follower ever joined. `in_map` says whether it was counted among the keys.
    fn take(shard: &mut Shard<K, V>, ticket: Ticket) -> Option<(Option<Shared<V>>, bool)> {
        if let Ok(slot) = shard
            .table
            .find_entry(ticket.hash, |slot| slot.id == ticket.id)
        {
            return Some((slot.remove().0.flight, true));
        }
        let at = shard.orphans.iter().position(|(id, _)| *id == ticket.id)?;
        Some((Some(shard.orphans.swap_remove(at).1), false))
    }

    /// The leader finished with `outcome`: the key leaves the map and followers are answered.
    /// Returns (followers answered, whether the key was still counted in the map).
    pub(super) fn finish(
        &self,
        ticket: Ticket,
        outcome: impl FnOnce() -> Outcome<V>,
    ) -> (usize, bool) {
        let taken = Self::take(&mut lock(&self.shards[ticket.shard]), ticket);
        let Some((flight, in_map)) = taken else {
            return (0, false);
        };
        let Some(flight) = flight else {
            return (0, in_map);
        };
        let (followers, wakers) = {
            let mut flight = lock(&flight);
            let followers = flight.followers;
            (followers, flight.finish(outcome))
        };
        wake(wakers);
        (followers, in_map)
    }

    /// The leader went away without an outcome. Returns whether the key left the map (nobody
    /// waited); otherwise a follower takes over and the key stays.
    pub(super) fn abandon(&self, ticket: Ticket) -> bool {
        let mut shard = lock(&self.shards[ticket.shard]);
        let flight = match shard
            .table
            .find(ticket.hash, |slot| slot.id == ticket.id)
            .map(|slot| slot.flight.clone())
        {
            Some(flight) => flight,
            None => shard
                .orphans
                .iter()
                .find(|(id, _)| *id == ticket.id)
                .map(|(_, flight)| Some(Arc::clone(flight)))
                .unwrap_or_default(),
        };
        let (abandoned, wakers) = match &flight {
            Some(flight) => lock(flight).abandon(),
            None => (Abandoned::Remove, Vec::new()),
        };
        let removed = match abandoned {
            Abandoned::Remove => Self::take(&mut shard, ticket).is_some_and(|(_, in_map)| in_map),
            Abandoned::HandOver => false,
        };
        drop(shard);
        wake(wakers);
        removed
    }

    /// A follower went away before it was answered. Returns whether the key left the map (it
    /// was the last one of a leaderless flight).
    pub(super) fn drop_follower(&self, ticket: Ticket, flight: &Shared<V>, slot: usize) -> bool {
        let mut shard = lock(&self.shards[ticket.shard]);
        if lock(flight).drop_follower(slot) {
            return Self::take(&mut shard, ticket).is_some_and(|(_, in_map)| in_map);
        }
        false
    }

    /// Removes `key` from the map so the next call starts a new execution. Followers of the
    /// current one still get its result. Returns whether the key was in flight.
    pub(super) fn forget<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let mut shard = lock(&self.shards[self.shard_of(hash)]);
        let Ok(slot) = shard
            .table
            .find_entry(hash, |slot| slot.hash == hash && slot.key.borrow() == key)
        else {
            return false;
        };
        let Slot { id, flight, .. } = slot.remove().0;
        if let Some(flight) = flight {
            shard.orphans.push((id, flight));
        }
        true
    }

    /// Whether `key` is in flight.
    pub(super) fn contains<Q>(&self, key: &Q) -> bool
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        lock(&self.shards[self.shard_of(hash)])
            .table
            .find(hash, |slot| slot.hash == hash && slot.key.borrow() == key)
            .is_some()
    }
}

fn wake(wakers: Vec<Waker>) {
    for waker in wakers {
        waker.wake();
    }
}
