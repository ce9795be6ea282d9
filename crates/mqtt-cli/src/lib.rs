//! The `mqtt` command as a library: `mqtt pub` and `mqtt sub`, drop-in replacements for
//! Mosquitto's `mosquitto_pub` and `mosquitto_sub` (same options, same output, same exit
//! statuses), and `mqtt bench`, a load generator.
//!
//! - [`connection`]: the options `pub` and `sub` share, checked with Mosquitto's messages, and
//!   the defaults under them (`~/.config/mqtt/config.toml`, `MQTT_*` variables).
//! - [`properties`]: `-D command identifier value`, MQTT 5 properties by Mosquitto's names, and
//!   `-x`.
//! - [`publish`], [`subscribe`] and [`request`]: the commands, on [`mqtt_client`].
//! - [`format`](mod@format) renders received messages exactly as `mosquitto_sub` 2.0.11 prints them (plain,
//!   `-v`, `-N`, `-F` format strings, `%j`/`%J` JSON and `--pretty`). It does no I/O: it
//!   writes into a caller's buffer.
//! - `bench`: the load generator.

pub mod bench;
pub mod connection;
pub mod format;
pub mod properties;
pub mod publish;
pub mod request;
pub mod subscribe;
