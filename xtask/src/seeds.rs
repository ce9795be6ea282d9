//! `cargo xtask fuzz-seeds`: the committed seed corpus, built from real packets.
//!
//! Every fuzz target reads its input as the codec's `fuzzing` module does: one byte choosing the
//! decoder (`% 4`: 0 a server awaiting CONNECT, 1 MQTT 3.1, 2 MQTT 3.1.1, 3 MQTT 5.0), one byte
//! choosing the maximum packet size (0: the protocol's, else `n * 64`), then the byte stream.
//! The seeds are valid streams covering every packet type of each version, with and without
//! the optional parts (will, credentials, MQTT 5.0 properties), so the fuzzer starts deep in
//! the parsers rather than at the fixed header.
//!
//! Output is deterministic: the same codec writes the same files. Each seed is decoded back
//! before it is written, so a seed the codec itself rejects fails the command.

// Property structs are filled field by field and still end in `..Default::default()`, so that
// a property the codec adds later does not break this file.
#![allow(clippy::needless_update)]

use std::fs;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Decoder, Disconnect, DisconnectProperties, MqttString, PROTOCOL_MAX_PACKET_SIZE, Packet,
    PacketId, PayloadFormat, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish,
    PublishProperties, QoS, QosPid, ReasonCode, RetainHandling, Secret, SubAck, Subscribe,
    SubscribeProperties, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
    UnsubAck, Unsubscribe, UnsubscribeProperties, UserProperty, Will, WillProperties,
};

/// The mode byte of the server decoder, which awaits a CONNECT of any version.
const SERVER_MODE: u8 = 0;

/// The limit byte of the `session` seeds: 16 * 64 = 1 KiB, which every seed packet fits in,
/// so the limit check runs without cutting the stream short.
const SESSION_LIMIT: u8 = 16;

/// One seed file: its name, the two selector bytes and the packets that follow.
struct Seed {
    /// The file name, `seed-...`.
    name: String,
    /// Decoder mode (first byte).
    mode: u8,
    /// Maximum packet size selector (second byte).
    limit: u8,
    /// The stream, all in one protocol version (a server stream starts with its CONNECT).
    packets: Vec<Packet>,
}

impl Seed {
    /// The version the stream is encoded in.
    fn version(&self) -> Result<ProtocolVersion> {
        Ok(match (self.mode % 4, self.packets.first()) {
            (1, _) => ProtocolVersion::V3_1,
            (2, _) => ProtocolVersion::V3_1_1,
            (3, _) => ProtocolVersion::V5,
            (_, Some(Packet::Connect(connect))) => connect.protocol,
            _ => bail!("server seed `{}` must start with a CONNECT", self.name),
        })
    }

    /// The file contents: the selector bytes and the encoded packets.
    fn bytes(&self) -> Result<Vec<u8>> {
        let version = self.version()?;
        let mut buf = BytesMut::new();
        for packet in &self.packets {
            packet
                .encode(version, PROTOCOL_MAX_PACKET_SIZE, &mut buf)
                .with_context(|| format!("seed `{}`: cannot encode {packet:?}", self.name))?;
        }
        let mut bytes = vec![self.mode, self.limit];
        bytes.extend_from_slice(&buf);
        Ok(bytes)
    }

    /// Decodes `bytes` the way the fuzz targets do and checks it gives back exactly the packets.
    fn check(&self, bytes: &[u8]) -> Result<()> {
        let decoder = match self.mode % 4 {
            0 => Decoder::server(),
            _ => Decoder::new(self.version()?),
        };
        let max = match self.limit {
            0 => PROTOCOL_MAX_PACKET_SIZE,
            n => u32::from(n) * 64,
        };
        let mut decoder = decoder.with_max_packet_size(max);
        let mut buf = BytesMut::from(bytes.get(2..).unwrap_or_default());
        for packet in &self.packets {
            let decoded = decoder
                .decode(&mut buf)
                .with_context(|| format!("seed `{}` does not decode at {packet:?}", self.name))?;
            ensure!(
                decoded.as_ref() == Some(packet),
                "seed `{}`: {packet:?} decodes as {decoded:?}",
                self.name
            );
        }
        ensure!(buf.is_empty(), "seed `{}` has trailing bytes", self.name);
        Ok(())
    }
}

/// Targets whose input is not a packet stream: their seeds are kept as committed (the
/// `topic_index` target reads a script of index operations, seeded with random scripts; the
/// `store_recovery` target reads store files, written by
/// `cargo run -p mqtt-session --example store_seeds`).
const OWN_SEEDS: &[&str] = &["topic_index", "store_recovery"];

/// Writes the seeds into `fuzz/corpus/<target>/` for every packet-stream target in
/// `fuzz/fuzz_targets/` (the codec's and the session machines'), replacing the `seed-*` files
/// there (and nothing else).
pub(crate) fn write_all(root: &Path) -> Result<()> {
    let seeds = all_seeds()?;
    let mut files = Vec::with_capacity(seeds.len());
    for seed in &seeds {
        let bytes = seed.bytes()?;
        seed.check(&bytes)?;
        files.push((seed.name.as_str(), bytes));
    }
    let fuzz = root.join("fuzz");
    for target in fuzz_targets(&fuzz)? {
        if OWN_SEEDS.contains(&target.as_str()) {
            continue;
        }
        let dir = fuzz.join("corpus").join(&target);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let is_seed = path
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("seed-"));
            if is_seed {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        for (name, bytes) in &files {
            let path = dir.join(name);
            fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        println!("{}: {} seeds", dir.display(), files.len());
    }
    Ok(())
}

/// The names of the fuzz targets: the `.rs` files of `fuzz/fuzz_targets/`, sorted.
fn fuzz_targets(fuzz: &Path) -> Result<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs")
            && let Some(stem) = path.file_stem()
        {
            targets.push(stem.to_string_lossy().into_owned());
        }
    }
    targets.sort();
    ensure!(!targets.is_empty(), "no fuzz targets in {}", dir.display());
    Ok(targets)
}

/// Every seed: one per packet group for each client-side version mode, a whole session per
/// version, and a whole session per version for the server mode.
fn all_seeds() -> Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    for (mode, version) in [
        (1, ProtocolVersion::V3_1),
        (2, ProtocolVersion::V3_1_1),
        (3, ProtocolVersion::V5),
    ] {
        let short = short_name(version);
        let groups = Packets { version }.groups()?;
        let session: Vec<Packet> = groups.iter().flat_map(|(_, p)| p.clone()).collect();
        for (group, packets) in groups {
            seeds.push(Seed {
                name: format!("seed-{short}-{group}"),
                mode,
                limit: 0,
                packets,
            });
        }
        seeds.push(Seed {
            name: format!("seed-{short}-session"),
            mode,
            limit: SESSION_LIMIT,
            packets: session.clone(),
        });
        seeds.push(Seed {
            name: format!("seed-server-{short}-session"),
            mode: SERVER_MODE,
            limit: 0,
            packets: session,
        });
    }
    Ok(seeds)
}

/// The version as it appears in seed names.
fn short_name(version: ProtocolVersion) -> &'static str {
    match version {
        ProtocolVersion::V3_1 => "v31",
        ProtocolVersion::V3_1_1 => "v311",
        ProtocolVersion::V5 => "v5",
    }
}

/// A string known to be valid.
fn s(text: &'static str) -> Result<MqttString> {
    MqttString::from_static(text).with_context(|| format!("bad seed string {text:?}"))
}

/// A topic name known to be valid.
fn topic(text: &'static str) -> Result<TopicName> {
    TopicName::from_static(text).with_context(|| format!("bad seed topic {text:?}"))
}

/// A topic filter known to be valid.
fn filter(text: &'static str) -> Result<TopicFilter> {
    TopicFilter::from_static(text).with_context(|| format!("bad seed filter {text:?}"))
}

/// A non-zero packet identifier.
fn pid(id: u16) -> Result<PacketId> {
    PacketId::new(id).context("packet identifier 0")
}

/// Two user properties with the same name (order and repetition must survive).
fn user_properties() -> Result<Vec<UserProperty>> {
    Ok(vec![(s("region")?, s("eu")?), (s("region")?, s("us")?)])
}

/// Builds the packets of one version, grouped by the part of the protocol they exercise.
struct Packets {
    /// The version every packet is made for.
    version: ProtocolVersion,
}

impl Packets {
    /// Whether the MQTT 5.0 extras (properties, reason codes, AUTH) apply.
    fn v5(&self) -> bool {
        self.version.is_v5()
    }

    /// The groups, in the order a session would use them.
    fn groups(&self) -> Result<Vec<(&'static str, Vec<Packet>)>> {
        let mut groups = vec![
            ("connect", self.connect()?),
            ("connack", self.connack()?),
            ("subscribe", self.subscribe()?),
            ("publish-qos0", self.publish_qos0()?),
            ("publish-qos1", self.publish_qos1()?),
            ("publish-qos2", self.publish_qos2()?),
            ("ping", vec![Packet::PingReq, Packet::PingResp]),
            ("disconnect", self.disconnect()?),
        ];
        if self.v5() {
            groups.insert(2, ("auth", self.auth()?));
        }
        Ok(groups)
    }

    /// A CONNECT with everything (will, credentials, properties), then a minimal one.
    fn connect(&self) -> Result<Vec<Packet>> {
        let v5 = self.v5();
        let will = Will {
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: if v5 {
                WillProperties {
                    will_delay_interval: Some(5),
                    payload_format_indicator: Some(PayloadFormat::Utf8),
                    message_expiry_interval: Some(600),
                    content_type: Some(s("text/plain")?),
                    response_topic: Some(topic("replies/seed")?),
                    correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                    user_properties: user_properties()?,
                    ..WillProperties::default()
                }
            } else {
                WillProperties::default()
            },
            ..Will::new(topic("status/seed-client")?, Bytes::from_static(b"offline"))
        };
        let full = Connect {
            clean_start: false,
            keep_alive: 30,
            will: Some(will),
            username: Some(s("seed-user")?),
            password: Some(Secret::new("seed-pass")),
            properties: if v5 {
                ConnectProperties {
                    session_expiry_interval: Some(3600),
                    receive_maximum: NonZeroU16::new(20),
                    maximum_packet_size: NonZeroU32::new(1 << 20),
                    topic_alias_maximum: Some(10),
                    request_response_information: Some(true),
                    request_problem_information: Some(false),
                    authentication_method: Some(s("SCRAM-SHA-256")?),
                    authentication_data: Some(Secret::new("client-first")),
                    user_properties: user_properties()?,
                    ..ConnectProperties::default()
                }
            } else {
                ConnectProperties::default()
            },
            ..Connect::new(self.version, s("seed-client")?)
        };
        // MQTT 3.1 needs a client identifier of 1 to 23 characters; later versions accept an
        // empty one with clean start.
        let minimal_id = if self.version == ProtocolVersion::V3_1 {
            "c"
        } else {
            ""
        };
        let minimal = Connect::new(self.version, s(minimal_id)?);
        Ok(vec![
            Packet::Connect(Box::new(full)),
            Packet::Connect(Box::new(minimal)),
        ])
    }

    /// An accepting CONNACK (with every CONNACK property in 5.0), then a refusal.
    fn connack(&self) -> Result<Vec<Packet>> {
        let accepted = ConnAck {
            // MQTT 3.1 has no Session Present flag.
            session_present: self.version != ProtocolVersion::V3_1,
            properties: if self.v5() {
                ConnAckProperties {
                    session_expiry_interval: Some(7200),
                    receive_maximum: NonZeroU16::new(10),
                    maximum_qos: Some(QoS::AtLeastOnce),
                    retain_available: Some(true),
                    maximum_packet_size: NonZeroU32::new(65_536),
                    assigned_client_identifier: Some(s("auto-0001")?),
                    topic_alias_maximum: Some(5),
                    reason_string: Some(s("welcome")?),
                    user_properties: user_properties()?,
                    wildcard_subscription_available: Some(true),
                    subscription_identifiers_available: Some(true),
                    shared_subscription_available: Some(false),
                    server_keep_alive: Some(45),
                    response_information: Some(s("replies/")?),
                    authentication_method: Some(s("SCRAM-SHA-256")?),
                    authentication_data: Some(Secret::new("server-final")),
                    ..ConnAckProperties::default()
                }
            } else {
                ConnAckProperties::default()
            },
            ..ConnAck::new(ReasonCode::Success)
        };
        let refused = ConnAck::new(ReasonCode::BadUserNameOrPassword);
        Ok(vec![
            Packet::ConnAck(Box::new(accepted)),
            Packet::ConnAck(Box::new(refused)),
        ])
    }

    /// (5.0) The enhanced authentication exchange and a re-authentication.
    fn auth(&self) -> Result<Vec<Packet>> {
        let method = || s("SCRAM-SHA-256");
        Ok(vec![
            Packet::from(Auth {
                properties: AuthProperties {
                    authentication_method: Some(method()?),
                    authentication_data: Some(Secret::new("server-first")),
                    ..AuthProperties::default()
                },
                ..Auth::new(ReasonCode::ContinueAuthentication)
            }),
            Packet::from(Auth {
                properties: AuthProperties {
                    authentication_method: Some(method()?),
                    authentication_data: Some(Secret::new("client-final")),
                    reason_string: Some(s("again")?),
                    user_properties: user_properties()?,
                    ..AuthProperties::default()
                },
                ..Auth::new(ReasonCode::ReAuthenticate)
            }),
            Packet::from(Auth::new(ReasonCode::Success)),
        ])
    }

    /// SUBSCRIBE and SUBACK, UNSUBSCRIBE and UNSUBACK.
    fn subscribe(&self) -> Result<Vec<Packet>> {
        let v5 = self.v5();
        let mut subscriptions = vec![
            Subscription {
                filter: filter("sensors/+/temp")?,
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
            },
            Subscription {
                filter: filter("alerts/#")?,
                options: if v5 {
                    SubscriptionOptions {
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                        ..SubscriptionOptions::new(QoS::ExactlyOnce)
                    }
                } else {
                    SubscriptionOptions::new(QoS::ExactlyOnce)
                },
            },
            Subscription {
                filter: filter("#")?,
                options: SubscriptionOptions::new(QoS::AtMostOnce),
            },
        ];
        let mut granted = vec![
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::Success,
        ];
        if v5 {
            subscriptions.push(Subscription {
                filter: filter("$share/workers/jobs/+")?,
                options: SubscriptionOptions {
                    retain_handling: RetainHandling::SendAtSubscribeIfNew,
                    ..SubscriptionOptions::new(QoS::AtLeastOnce)
                },
            });
            granted.push(ReasonCode::NotAuthorized);
        } else {
            // Any failure is 0x80 before 5.0, which decodes as "unspecified error".
            granted.push(ReasonCode::UnspecifiedError);
            subscriptions.push(Subscription {
                filter: filter("private/+")?,
                options: SubscriptionOptions::new(QoS::AtMostOnce),
            });
        }
        let subscribe = Subscribe {
            packet_id: pid(3)?,
            subscriptions,
            properties: if v5 {
                SubscribeProperties {
                    subscription_identifier: SubscriptionId::new(42),
                    user_properties: user_properties()?,
                    ..SubscribeProperties::default()
                }
            } else {
                SubscribeProperties::default()
            },
        };
        let suback = SubAck {
            properties: self.ack_properties("granted")?,
            ..SubAck::new(pid(3)?, granted)
        };
        let unsubscribe = Unsubscribe {
            filters: vec![filter("sensors/+/temp")?, filter("alerts/#")?],
            properties: if v5 {
                UnsubscribeProperties {
                    user_properties: user_properties()?,
                    ..UnsubscribeProperties::default()
                }
            } else {
                UnsubscribeProperties::default()
            },
            ..Unsubscribe::new(pid(4)?, filter("sensors/+/temp")?)
        };
        // UNSUBACK has no reason codes before 5.0.
        let codes = if v5 {
            vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
        } else {
            Vec::new()
        };
        let unsuback = UnsubAck {
            properties: self.ack_properties("removed")?,
            ..UnsubAck::new(pid(4)?, codes)
        };
        Ok(vec![
            Packet::Subscribe(subscribe),
            Packet::SubAck(suback),
            Packet::Unsubscribe(unsubscribe),
            Packet::UnsubAck(unsuback),
        ])
    }

    /// (5.0) A reason string and user properties for an acknowledgement; nothing in 3.x.
    fn ack_properties(&self, reason: &'static str) -> Result<AckProperties> {
        Ok(if self.v5() {
            AckProperties {
                reason_string: Some(s(reason)?),
                user_properties: user_properties()?,
                ..AckProperties::default()
            }
        } else {
            AckProperties::default()
        })
    }

    /// (5.0) Every PUBLISH property.
    fn publish_properties(&self) -> Result<PublishProperties> {
        Ok(PublishProperties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            message_expiry_interval: Some(60),
            topic_alias: NonZeroU16::new(1),
            response_topic: Some(topic("replies/seed-client")?),
            correlation_data: Some(Bytes::from_static(b"req-7")),
            user_properties: user_properties()?,
            subscription_identifiers: [1, 42, SubscriptionId::MAX]
                .into_iter()
                .filter_map(SubscriptionId::new)
                .collect(),
            content_type: Some(s("application/json")?),
            ..PublishProperties::default()
        })
    }

    /// QoS 0: a plain PUBLISH, a retained one, and in 5.0 one with every property and one
    /// that uses the topic alias instead of its topic name.
    fn publish_qos0(&self) -> Result<Vec<Packet>> {
        let mut retained = Publish::new(topic("status/seed-client")?, "online");
        retained.retain = true;
        let mut packets = vec![
            Packet::Publish(Publish::new(topic("sensors/1/temp")?, "21.5")),
            Packet::Publish(retained),
        ];
        if self.v5() {
            packets.push(Packet::Publish(
                Publish::new(topic("sensors/1/json")?, r#"{"t":21.5}"#)
                    .with_properties(self.publish_properties()?),
            ));
            packets.push(Packet::Publish(
                Publish::new(TopicName::empty(), r#"{"t":21.6}"#).with_properties(
                    PublishProperties {
                        topic_alias: NonZeroU16::new(1),
                        ..PublishProperties::default()
                    },
                ),
            ));
        }
        Ok(packets)
    }

    /// QoS 1: PUBLISH (a retry, with DUP) and PUBACK; in 5.0 again with properties and a
    /// reason code.
    fn publish_qos1(&self) -> Result<Vec<Packet>> {
        let mut retry = Publish::new(topic("sensors/1/raw")?, Bytes::from_static(&[0, 0xFF, 1]));
        retry.dup = true;
        retry.qos = QosPid::AtLeastOnce(pid(1)?);
        let mut packets = vec![Packet::Publish(retry), Packet::PubAck(PubAck::new(pid(1)?))];
        if self.v5() {
            let mut publish = Publish::new(topic("sensors/1/json")?, r#"{"t":22}"#)
                .with_properties(self.publish_properties()?);
            publish.qos = QosPid::AtLeastOnce(pid(5)?);
            packets.push(Packet::Publish(publish));
            packets.push(Packet::PubAck(PubAck {
                reason_code: ReasonCode::NoMatchingSubscribers,
                properties: self.ack_properties("nobody listens")?,
                ..PubAck::new(pid(5)?)
            }));
        }
        Ok(packets)
    }

    /// QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP; in 5.0 again with properties.
    fn publish_qos2(&self) -> Result<Vec<Packet>> {
        let flow = |id: u16, with_properties: bool| -> Result<Vec<Packet>> {
            let id = pid(id)?;
            let mut publish = Publish::new(topic("billing/invoice")?, Bytes::new());
            publish.qos = QosPid::ExactlyOnce(id);
            let mut properties = AckProperties::default();
            if with_properties {
                publish.set_properties(self.publish_properties()?);
                properties = self.ack_properties("ok")?;
            }
            Ok(vec![
                Packet::Publish(publish),
                Packet::PubRec(PubRec {
                    properties: properties.clone(),
                    ..PubRec::new(id)
                }),
                Packet::PubRel(PubRel {
                    properties: properties.clone(),
                    ..PubRel::new(id)
                }),
                Packet::PubComp(PubComp {
                    properties,
                    ..PubComp::new(id)
                }),
            ])
        };
        let mut packets = flow(2, false)?;
        if self.v5() {
            packets.extend(flow(65_535, true)?);
        }
        Ok(packets)
    }

    /// DISCONNECT: the plain one, and in 5.0 a client's with a will request and properties and
    /// a server's with a server reference.
    fn disconnect(&self) -> Result<Vec<Packet>> {
        let mut packets = vec![Packet::from(Disconnect::new(ReasonCode::Success))];
        if self.v5() {
            packets.push(Packet::from(Disconnect {
                properties: DisconnectProperties {
                    session_expiry_interval: Some(0),
                    reason_string: Some(s("bye")?),
                    user_properties: user_properties()?,
                    ..DisconnectProperties::default()
                },
                ..Disconnect::new(ReasonCode::DisconnectWithWillMessage)
            }));
            packets.push(Packet::from(Disconnect {
                properties: DisconnectProperties {
                    server_reference: Some(s("other.example:1883")?),
                    ..DisconnectProperties::default()
                },
                ..Disconnect::new(ReasonCode::ServerShuttingDown)
            }));
        }
        Ok(packets)
    }
}
