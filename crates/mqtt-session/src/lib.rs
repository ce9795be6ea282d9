//! MQTT sessions, on the server side and on the client side: the session state that can outlive
//! a connection, and the per-connection protocol machine that drives it. No I/O, no clock: time
//! is a parameter (`now`), packets come in as decoded [`mqtt_codec::Packet`]s and go out as
//! [`Outgoing`] items for the driver to encode and write.
//!
//! # Data flow
//!
//! ```text
//!  client bytes ─▶ codec ─▶ Session::handle_packet(packet, now) ─▶ Action (route, subscribe, …)
//!                                  │                                         │ (the broker)
//!                                  ▼                                         ▼
//!                           Session::take_outbox()  ◀── Session::deliver(delivery, now)
//!                                  │
//!                                  ▼
//!                       driver encodes and writes
//! ```
//!
//! A [`Session`] is attached to at most one connection at a time ([`Session::attach`],
//! [`Session::detach`]). While attached it answers the client's packets, keeps the keepalive
//! deadline, and sends deliveries through an in-flight window of QoS 1 and 2 messages (the rest
//! wait in a bounded queue). Detached, a persistent session keeps its subscriptions' messages in
//! the same queue until the client comes back, when unacknowledged messages are sent again with
//! DUP, in their original order.
//!
//! What it deliberately does not do: routing, the subscription index, retained messages,
//! authentication and the session registry belong to the broker; the session only says what the
//! client asked for ([`Action`]).
//!
//! The client side is [`client::ClientSession`]: the same bookkeeping seen from the other end
//! (packet identifiers, messages in flight, QoS 2 receipts, keep alive), driven by `mqtt-client`.
//!
//! [`scram`] is SCRAM-SHA-256, the challenge-response behind MQTT 5.0 enhanced authentication,
//! for both ends.
//!
//! [`store`] keeps what must survive a restart: the [`store::SessionStore`] trait, which a
//! persistent session's [`Change`]s and the retained messages are recorded to;
//! [`store::MemoryStore`], which keeps nothing (persistence off); and [`store::DurableStore`],
//! the embedded durable store: an append-only log with a checksum per record, group commit,
//! snapshots and compaction, and recovery that keeps the valid prefix of a damaged store. It
//! is the one part of this crate that touches files (and it runs two threads of its own).

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod client;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod scram;
mod session;
pub mod store;

pub use session::{
    Action, Attach, Change, Close, Delivery, DeliveryExtras, Limits, Outgoing, Session,
    SessionStats, Spilled, StoredInflight, StoredSession,
};
