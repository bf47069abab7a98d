//! Choosing the agent for a new public connection, without I/O.
//!
//! [`Balancer`] picks the agent with the fewest active connections relative to its weight
//! (`active / weight`); agents tied for the least load take turns by smooth weighted
//! round-robin (as nginx does), so short connections that never overlap are still spread in
//! proportion to the weights.
//!
//! ```
//! use zs_nat::balance::Balancer;
//! let mut balancer = Balancer::new();
//! balancer.insert("a", 1);
//! balancer.insert("b", 1);
//! let first = balancer.pick().unwrap();
//! let second = balancer.pick().unwrap();
//! assert_ne!(first, second);           // both were idle: one each
//! balancer.release(first);             // `first`'s connection ended
//! assert_eq!(balancer.pick(), Some(first));
//! ```

/// Per-agent load.
#[derive(Debug, Clone)]
struct Entry<K> {
    key: K,
    weight: u32,
    active: u64,
    /// Smooth weighted round-robin credit, used among agents tied for the least load.
    credit: i64,
}

/// Least-active-connections choice with weights. `K` identifies an agent.
#[derive(Debug, Clone)]
pub struct Balancer<K> {
    entries: Vec<Entry<K>>,
}

impl<K> Default for Balancer<K> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Copy + Eq> Balancer<K> {
    /// An empty balancer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent with `weight` (0 counts as 1). False if it is already present.
    pub fn insert(&mut self, key: K, weight: u32) -> bool {
        if self.position(key).is_some() {
            return false;
        }
        self.entries.push(Entry {
            key,
            weight: weight.max(1),
            active: 0,
            credit: 0,
        });
        true
    }

    /// Removes an agent; false if it was not present.
    pub fn remove(&mut self, key: K) -> bool {
        match self.position(key) {
            Some(index) => {
                self.entries.remove(index);
                true
            }
            None => false,
        }
    }

    /// Agents present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no agent is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: K) -> bool {
        self.position(key).is_some()
    }

    /// The active connections counted for `key`.
    pub fn active(&self, key: K) -> Option<u64> {
        self.position(key).map(|index| self.entries[index].active)
    }

    /// Chooses an agent for a new connection and counts it as active there.
    pub fn pick(&mut self) -> Option<K> {
        self.pick_excluding(&[])
    }

    /// Like [`Self::pick`], skipping the agents in `excluded` (those that just failed).
    pub fn pick_excluding(&mut self, excluded: &[K]) -> Option<K> {
        let eligible = |entry: &Entry<K>| !excluded.contains(&entry.key);
        // The least load: a.active / a.weight < b.active / b.weight, compared exactly.
        let least = self
            .entries
            .iter()
            .filter(|entry| eligible(entry))
            .min_by(|a, b| load_cmp(a, b))?
            .clone();
        let tied = |entry: &Entry<K>| eligible(entry) && load_cmp(entry, &least).is_eq();
        let total: i64 = self
            .entries
            .iter()
            .filter(|entry| tied(entry))
            .map(|entry| i64::from(entry.weight))
            .sum();
        let mut chosen: Option<usize> = None;
        for index in 0..self.entries.len() {
            if !tied(&self.entries[index]) {
                continue;
            }
            self.entries[index].credit += i64::from(self.entries[index].weight);
            if chosen.is_none_or(|best| self.entries[index].credit > self.entries[best].credit) {
                chosen = Some(index);
            }
        }
        let entry = &mut self.entries[chosen?];
        entry.credit -= total;
        entry.active += 1;
        Some(entry.key)
    }

    /// A connection counted by [`Self::pick`] on `key` ended. No effect on agents no longer
    /// present.
    pub fn release(&mut self, key: K) {
        if let Some(index) = self.position(key) {
            let entry = &mut self.entries[index];
            entry.active = entry.active.saturating_sub(1);
        }
    }

    fn position(&self, key: K) -> Option<usize> {
        self.entries.iter().position(|entry| entry.key == key)
    }
}

fn load_cmp<K>(a: &Entry<K>, b: &Entry<K>) -> std::cmp::Ordering {
    (u128::from(a.active) * u128::from(b.weight))
        .cmp(&(u128::from(b.active) * u128::from(a.weight)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn least_active_wins() {
        let mut balancer = Balancer::new();
        balancer.insert(1, 1);
        balancer.insert(2, 1);
        let picks: Vec<_> = (0..4).map(|_| balancer.pick().unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&k| k == 1).count(), 2);
        assert_eq!(balancer.active(1), Some(2));
        balancer.release(1);
        balancer.release(1);
        // Agent 1 is idle now, agent 2 has two: the next two go to 1.
        assert_eq!(balancer.pick(), Some(1));
        assert_eq!(balancer.pick(), Some(1));
    }

    #[test]
    fn weights_scale_the_load() {
        let mut balancer = Balancer::new();
        balancer.insert('a', 3);
        balancer.insert('b', 1);
        let picks: Vec<_> = (0..8).map(|_| balancer.pick().unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&k| k == 'a').count(), 6);
        assert_eq!(balancer.active('b'), Some(2));
    }

    #[test]
    fn idle_ties_follow_the_weights() {
        let mut balancer = Balancer::new();
        balancer.insert('a', 3);
        balancer.insert('b', 1);
        let mut counts = [0, 0];
        for _ in 0..400 {
            let key = balancer.pick().unwrap();
            counts[usize::from(key == 'b')] += 1;
            balancer.release(key); // short connections: never overlap
        }
        assert_eq!(counts, [300, 100]);
    }

    #[test]
    fn excluded_and_removed_agents_are_skipped() {
        let mut balancer = Balancer::new();
        assert_eq!(balancer.pick(), None);
        balancer.insert(1, 1);
        balancer.insert(2, 1);
        assert!(!balancer.insert(2, 5));
        assert_eq!(balancer.pick_excluding(&[1]), Some(2));
        assert_eq!(balancer.pick_excluding(&[1, 2]), None);
        assert!(balancer.remove(2));
        assert!(!balancer.remove(2));
        balancer.release(2); // gone: no effect
        assert_eq!(balancer.pick(), Some(1));
        assert_eq!(balancer.len(), 1);
    }
}
