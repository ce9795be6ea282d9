//! Conformance tests for the MQTT wire codec, against MQTT 3.1 (`MQIsdp`, level 3), MQTT 3.1.1
//! (level 4) and MQTT 5.0 (level 5).
//!
//! Every byte vector here is written by hand from the standards (field by field, with a comment
//! on each), never produced by our encoder. Each test is named after the normative statement it
//! checks (`mqtt_x_y_z_n_...`), or after the section when the rule has no statement identifier
//! (`v5_x_y_z_...`), and its doc comment gives the identifiers and versions.
//!
//! Where we deliberately depart from a strict reading, the test says so and names the decision
//! (`adr_0001_...`, see `docs/adr/0001-codec-packet-model.md`).

mod helpers;

mod auth_disconnect;
mod connack;
mod connect;
mod encode;
mod framing;
mod properties;
mod publish;
mod strings;
mod subscribe;
mod zero_copy;
