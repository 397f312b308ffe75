//! Received DKG messages, per day and phase, until the DKG collects them.
//!
//! Bounded: one message per (day, phase, sender), first wins; the HTTP
//! handler admits only custodians of the manifest and days in the
//! generation window, so memory is bounded by `days × 3 × n` messages.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use custos_escrow::dkg::Phase;
use zeroize::Zeroizing;

type Messages = BTreeMap<[u8; 32], Zeroizing<Vec<u8>>>;

#[derive(Default)]
struct DayInbox {
    phases: [Messages; 3],
    active: bool,
}

/// Messages waiting for the DKG of their day.
#[derive(Default)]
pub struct Inbox {
    days: Mutex<HashMap<u32, DayInbox>>,
    /// Days whose last DKG attempt failed: messages are dropped until then,
    /// so stale messages cannot leak into the next attempt.
    cooling: Mutex<HashMap<u32, Instant>>,
    arrived: Condvar,
}

fn slot(phase: Phase) -> usize {
    match phase {
        Phase::Deal => 0,
        Phase::Ack => 1,
        Phase::Log => 2,
    }
}

impl Inbox {
    /// Stores a message. Returns `false` if it was dropped (a duplicate, or
    /// the day is cooling down after a failed attempt).
    pub fn push(&self, day: u32, phase: Phase, from: [u8; 32], bytes: Zeroizing<Vec<u8>>) -> bool {
        if self.is_cooling(day) {
            return false;
        }
        let Ok(mut days) = self.days.lock() else {
            return false;
        };
        let inbox = days.entry(day).or_default();
        let Some(msgs) = inbox.phases.get_mut(slot(phase)) else {
            return false;
        };
        if msgs.contains_key(&from) {
            return false;
        }
        msgs.insert(from, bytes);
        self.arrived.notify_all();
        true
    }

    /// Whether a DKG of `day` is running here.
    pub fn is_active(&self, day: u32) -> bool {
        self.days
            .lock()
            .map(|d| d.get(&day).is_some_and(|i| i.active))
            .unwrap_or(false)
    }

    /// Whether `day` is cooling down after a failed attempt.
    pub fn is_cooling(&self, day: u32) -> bool {
        let Ok(mut c) = self.cooling.lock() else {
            return true;
        };
        match c.get(&day) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                c.remove(&day);
                false
            }
            None => false,
        }
    }

    /// Marks the DKG of `day` as running.
    pub fn begin(&self, day: u32) {
        if let Ok(mut days) = self.days.lock() {
            days.entry(day).or_default().active = true;
        }
    }

    /// Ends the DKG of `day`: drops its messages; after a failure, drops
    /// further messages for `cooldown`.
    pub fn end(&self, day: u32, failed: bool, cooldown: Duration) {
        if let Ok(mut days) = self.days.lock() {
            days.remove(&day);
        }
        if failed && let Ok(mut c) = self.cooling.lock() {
            c.insert(day, Instant::now() + cooldown);
        }
    }

    /// Drops the messages of days before `first` (their DKG can no longer run).
    pub fn prune(&self, first: u32) {
        if let Ok(mut days) = self.days.lock() {
            days.retain(|d, i| *d >= first || i.active);
        }
    }

    /// Waits until `expected` messages of `phase` arrived for `day`, or
    /// until `deadline`; returns what arrived, by sender.
    pub fn collect(
        &self,
        day: u32,
        phase: Phase,
        expected: usize,
        deadline: Instant,
    ) -> Vec<([u8; 32], Zeroizing<Vec<u8>>)> {
        let Ok(mut days) = self.days.lock() else {
            return Vec::new();
        };
        loop {
            let count = days
                .get(&day)
                .and_then(|i| i.phases.get(slot(phase)))
                .map_or(0, BTreeMap::len);
            let now = Instant::now();
            if count >= expected || now >= deadline {
                break;
            }
            match self.arrived.wait_timeout(days, deadline - now) {
                Ok((d, _)) => days = d,
                Err(_) => return Vec::new(),
            }
        }
        days.get_mut(&day)
            .and_then(|i| i.phases.get_mut(slot(phase)))
            .map(std::mem::take)
            .unwrap_or_default()
            .into_iter()
            .collect()
    }
}
