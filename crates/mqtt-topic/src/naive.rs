//! A deliberately simple subscription index, kept as the test oracle of
//! [`SubscriptionIndex`](crate::SubscriptionIndex): a list of subscriptions scanned in full for
//! every message with [`crate::filter_matches`]. The property tests and the fuzz
//! target run random operations against both and compare. It is also the baseline of the
//! benchmark. Not for production use: matching costs time proportional to the number of
//! subscriptions.

use crate::index::{Delivery, SessionKey, SubscriptionData};
use crate::{TopicFilter, TopicName, filter_matches};

/// Subscriptions in a plain list.
#[derive(Debug, Clone, Default)]
pub struct NaiveIndex<K> {
    subscriptions: Vec<(K, TopicFilter, SubscriptionData)>,
    unavailable: Vec<K>,
}

/// What the oracle expects from one match: the merged deliveries of non-shared subscriptions,
/// and for each matching shared group, the sessions that may be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaiveMatch<K> {
    /// One delivery per session, sorted by session.
    pub deliveries: Vec<Delivery<K>>,
    /// Per matching group (sorted by filter text): the filter, and the candidate members with
    /// their subscription (the available ones if any, else all).
    pub groups: Vec<(TopicFilter, Vec<(K, SubscriptionData)>)>,
}

impl<K: SessionKey> NaiveMatch<K> {
    /// Checks what an index returned for the same message: the same merged deliveries (in any
    /// order, identifiers in any order), and exactly one delivery per matching shared group, to
    /// one of its candidates, with that member's subscription.
    ///
    /// # Errors
    /// A description of the first difference.
    pub fn check(&self, got: &[Delivery<K>]) -> Result<(), String> {
        let canonical = |d: &Delivery<K>| {
            let mut ids: Vec<u32> = d.identifiers.iter().map(|i| i.get()).collect();
            ids.sort_unstable();
            (d.session, d.qos, d.retain_as_published, ids)
        };
        let mut plain: Vec<_> = got
            .iter()
            .filter(|d| d.shared.is_none())
            .map(canonical)
            .collect();
        plain.sort();
        let want: Vec<_> = self.deliveries.iter().map(canonical).collect();
        if plain != want {
            return Err(format!("deliveries {plain:?}, expected {want:?}"));
        }
        let shared: Vec<&Delivery<K>> = got.iter().filter(|d| d.shared.is_some()).collect();
        if shared.len() != self.groups.len() {
            return Err(format!(
                "{} shared deliveries for {} matching groups",
                shared.len(),
                self.groups.len()
            ));
        }
        for (group, candidates) in &self.groups {
            let mut chosen = shared.iter().filter(|d| d.shared.as_ref() == Some(group));
            let (Some(d), None) = (chosen.next(), chosen.next()) else {
                return Err(format!("group {group}: not exactly one delivery"));
            };
            let Some((_, data)) = candidates.iter().find(|(s, _)| *s == d.session) else {
                return Err(format!(
                    "group {group} chose {:?}, not one of {candidates:?}",
                    d.session
                ));
            };
            let ids: Vec<_> = d.identifiers.iter().collect();
            if d.qos != data.options.qos || ids != data.identifier.into_iter().collect::<Vec<_>>() {
                return Err(format!("group {group}: delivery {d:?} for {data:?}"));
            }
        }
        Ok(())
    }
}

impl<K: SessionKey> NaiveIndex<K> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            subscriptions: Vec::new(),
            unavailable: Vec::new(),
        }
    }

    /// As [`SubscriptionIndex::insert`](crate::SubscriptionIndex::insert).
    pub fn insert(
        &mut self,
        session: K,
        filter: &TopicFilter,
        data: SubscriptionData,
    ) -> Option<SubscriptionData> {
        for (s, f, d) in &mut self.subscriptions {
            if *s == session && f == filter {
                return Some(std::mem::replace(d, data));
            }
        }
        self.subscriptions.push((session, filter.clone(), data));
        None
    }

    /// As [`SubscriptionIndex::remove`](crate::SubscriptionIndex::remove).
    pub fn remove(&mut self, session: &K, filter: &TopicFilter) -> Option<SubscriptionData> {
        let i = self
            .subscriptions
            .iter()
            .position(|(s, f, _)| s == session && f == filter)?;
        let removed = self.subscriptions.remove(i).2;
        self.forget_if_unsubscribed(session);
        Some(removed)
    }

    /// As [`SubscriptionIndex::remove_session`](crate::SubscriptionIndex::remove_session).
    pub fn remove_session(&mut self, session: &K) -> usize {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|(s, _, _)| s != session);
        self.forget_if_unsubscribed(session);
        before - self.subscriptions.len()
    }

    /// As [`SubscriptionIndex::set_available`](crate::SubscriptionIndex::set_available): only
    /// sessions with subscriptions are tracked.
    pub fn set_available(&mut self, session: K, available: bool) {
        if !self.subscriptions.iter().any(|(s, _, _)| *s == session) {
            return;
        }
        self.unavailable.retain(|s| *s != session);
        if !available {
            self.unavailable.push(session);
        }
    }

    fn forget_if_unsubscribed(&mut self, session: &K) {
        if !self.subscriptions.iter().any(|(s, _, _)| s == session) {
            self.unavailable.retain(|s| s != session);
        }
    }

    /// The number of subscriptions.
    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// Everything that matches `topic`, scanning every subscription.
    pub fn matches(&self, topic: &TopicName, publisher: Option<K>) -> NaiveMatch<K> {
        let mut deliveries: Vec<Delivery<K>> = Vec::new();
        let mut groups: Vec<(TopicFilter, Vec<(K, SubscriptionData)>)> = Vec::new();
        for (session, filter, data) in &self.subscriptions {
            if !filter_matches(filter.filter(), topic.as_str()) {
                continue;
            }
            if filter.is_shared() {
                match groups.iter_mut().find(|(f, _)| f == filter) {
                    Some((_, members)) => members.push((*session, *data)),
                    None => groups.push((filter.clone(), vec![(*session, *data)])),
                }
                continue;
            }
            if data.options.no_local && Some(*session) == publisher {
                continue;
            }
            let mut delivery = Delivery::new(*session, data);
            match deliveries.iter_mut().find(|d| d.session == *session) {
                Some(existing) => existing.merge(&delivery),
                None => {
                    delivery.shared = None;
                    deliveries.push(delivery);
                }
            }
        }
        deliveries.sort_by_key(|d| d.session);
        for (_, members) in &mut groups {
            if members.iter().any(|(s, _)| !self.unavailable.contains(s)) {
                members.retain(|(s, _)| !self.unavailable.contains(s));
            }
            members.sort_by_key(|(s, _)| *s);
        }
        groups.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        NaiveMatch { deliveries, groups }
    }
}
