//! The MQTT broker: the broker core (sessions, routing, subscriptions, retained messages, wills,
//! `$SYS`) and the tokio driver around it, plus the `mqtt-broker` binary.
//!
//! - [`core::Broker`] is the shared state and every decision that spans sessions. It has no
//!   sockets and takes the time as a parameter, so tests drive it directly.
//! - The per-connection protocol is the session machine of `mqtt-session`.
//! - [`run`] and [`serve`] are the tokio driver: the listeners (plain TCP, TLS with
//!   [`tls`], WebSocket; several at once), one task per connection, the `$SYS` timer, reloads
//!   and graceful shutdown.
//! - [`config::Config`] and [`load`]: the configuration and how it is read (file, `MQTT_*`
//!   environment, flags).

pub mod auth;
pub mod config;
mod connection;
pub mod core;
pub mod load;
mod server;
pub mod sys;
pub mod tls;
mod transport;

pub use server::{Bound, bind, run, run_with_reload, serve, serve_listeners};
