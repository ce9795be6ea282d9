//! Where persistent sessions are kept while their client is away, and across restarts.
//!
//! The broker keeps every session in memory while it runs; the store is written behind it: the
//! broker saves a persistent session's state when it changes in ways that must survive (its
//! client goes away, it subscribes or unsubscribes) and removes it when the session ends, and at
//! start-up loads what was saved. The in-memory [`MemoryStore`] is the default and keeps nothing
//! across restarts; a durable store implements the same trait.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Session;

/// Storage for persistent sessions, keyed by client identifier.
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Saves (or replaces) the state of a persistent session.
    fn save(&self, session: &Session);

    /// Forgets a session that ended.
    fn remove(&self, client_id: &str);

    /// Every saved session, for the broker to restore at start-up.
    fn load_all(&self) -> Vec<Session>;

    /// How many sessions are saved.
    fn len(&self) -> usize;

    /// Whether no session is saved.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sessions kept in memory: what the broker uses when persistence is off. A session saved here
/// survives its client's disconnection, not a restart of the broker.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<HashMap<String, Session>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionStore for MemoryStore {
    fn save(&self, session: &Session) {
        self.sessions()
            .insert(session.client_id().to_string(), session.clone());
    }

    fn remove(&self, client_id: &str) {
        self.sessions().remove(client_id);
    }

    fn load_all(&self) -> Vec<Session> {
        self.sessions().values().cloned().collect()
    }

    fn len(&self) -> usize {
        self.sessions().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use mqtt_topic::MqttString;

    #[test]
    fn memory_store_saves_replaces_and_removes() {
        let store = MemoryStore::new();
        let id = MqttString::try_from("c1").unwrap();
        let mut session = Session::new(id.clone(), true, Limits::default());
        store.save(&session);
        session.set_persistent(false);
        store.save(&session);
        assert_eq!(store.len(), 1);
        assert!(!store.load_all()[0].is_persistent());
        store.remove("c1");
        assert!(store.is_empty());
    }
}
