//! Property tests of the codec as a whole:
//!
//! - every packet type of every protocol version survives encode → decode unchanged, with
//!   `encoded_len` exact and the encoding stable;
//! - a stream of packets split at arbitrary points decodes to the same packets ("need more
//!   bytes" is never an error and never loses data);
//! - arbitrary bytes, and corrupted valid packets, never panic the decoder and never make it
//!   grow the buffer beyond the maximum packet size.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use mqtt_codec::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Strategies for the field types.

fn mqtt_string() -> impl Strategy<Value = MqttString> {
    // Any characters but U+0000, including multi-byte ones.
    "[^\u{0}]{0,12}".prop_map(|s| MqttString::try_from(s).unwrap())
}

fn level() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _$é€-]{0,6}"
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    vec(level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("non-empty", |t| !t.is_empty())
        .prop_map(|t| TopicName::try_from(t).unwrap())
}

fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let level = prop_oneof![3 => level(), 1 => Just("+".to_string())];
    (vec(level, 1..5), any::<bool>(), of("[a-z0-9]{1,6}"))
        .prop_map(|(mut levels, hash, share)| {
            if hash {
                levels.push("#".into());
            }
            let filter = levels.join("/");
            let filter = if filter.is_empty() {
                "#".into()
            } else {
                filter
            };
            match share {
                Some(group) => format!("$share/{group}/{filter}"),
                None => filter,
            }
        })
        .prop_map(|f| TopicFilter::try_from(f).unwrap())
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1u16..=u16::MAX).prop_map(|id| PacketId::new(id).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec((mqtt_string(), mqtt_string()), 0..3)
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    (1u16..=u16::MAX).prop_map(|v| NonZeroU16::new(v).unwrap())
}

fn nz32() -> impl Strategy<Value = NonZeroU32> {
    (1u32..=u32::MAX).prop_map(|v| NonZeroU32::new(v).unwrap())
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    (1u32..=SubscriptionId::MAX).prop_map(|v| SubscriptionId::new(v).unwrap())
}

fn payload_format() -> impl Strategy<Value = PayloadFormat> {
    prop_oneof![Just(PayloadFormat::Unspecified), Just(PayloadFormat::Utf8)]
}

fn secret() -> impl Strategy<Value = Secret> {
    binary(24).prop_map(Secret::from)
}

fn reason(packet: PacketType) -> impl Strategy<Value = ReasonCode> {
    proptest::sample::select(ReasonCode::allowed_in(packet))
}

// ---------------------------------------------------------------------------------------------
// Strategies for the MQTT 5.0 property sets.

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        (of(any::<u32>()), of(nz16()), of(nz32()), of(any::<u16>())),
        (of(any::<bool>()), of(any::<bool>())),
        of((mqtt_string(), of(secret()))),
        user_properties(),
    )
        .prop_map(|((sei, rm, mps, tam), (rri, rpi), auth, user)| {
            let (method, data) = match auth {
                Some((m, d)) => (Some(m), d),
                None => (None, None),
            };
            ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                authentication_method: method,
                authentication_data: data,
                user_properties: user,
            }
        })
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        (of(any::<u32>()), of(payload_format()), of(any::<u32>())),
        (of(mqtt_string()), of(topic_name()), of(binary(16))),
        user_properties(),
    )
        .prop_map(|((delay, pf, expiry), (ct, rt, cd), user)| WillProperties {
            will_delay_interval: delay,
            payload_format_indicator: pf,
            message_expiry_interval: expiry,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: user,
        })
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    (
        (
            of(any::<u32>()),
            of(nz16()),
            of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
            of(any::<bool>()),
            of(nz32()),
            of(mqtt_string()),
        ),
        (
            of(any::<u16>()),
            of(mqtt_string()),
            user_properties(),
            of(any::<bool>()),
            of(any::<bool>()),
            of(any::<bool>()),
        ),
        (
            of(any::<u16>()),
            of(mqtt_string()),
            of(mqtt_string()),
            of((mqtt_string(), of(secret()))),
        ),
    )
        .prop_map(
            |((sei, rm, mq, ra, mps, aci), (tam, rs, user, wsa, sia, ssa), (ska, ri, sr, auth))| {
                let (method, data) = match auth {
                    Some((m, d)) => (Some(m), d),
                    None => (None, None),
                };
                ConnAckProperties {
                    session_expiry_interval: sei,
                    receive_maximum: rm,
                    maximum_qos: mq,
                    retain_available: ra,
                    maximum_packet_size: mps,
                    assigned_client_identifier: aci,
                    topic_alias_maximum: tam,
                    reason_string: rs,
                    user_properties: user,
                    wildcard_subscription_available: wsa,
                    subscription_identifiers_available: sia,
                    shared_subscription_available: ssa,
                    server_keep_alive: ska,
                    response_information: ri,
                    server_reference: sr,
                    authentication_method: method,
                    authentication_data: data,
                }
            },
        )
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        (of(payload_format()), of(any::<u32>()), of(nz16())),
        (of(topic_name()), of(binary(16)), of(mqtt_string())),
        user_properties(),
        vec(subscription_id(), 0..3),
    )
        .prop_map(
            |((pf, expiry, alias), (rt, cd, ct), user, ids)| PublishProperties {
                payload_format_indicator: pf,
                message_expiry_interval: expiry,
                topic_alias: alias,
                response_topic: rt,
                correlation_data: cd,
                user_properties: user,
                subscription_identifiers: ids,
                content_type: ct,
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (of(mqtt_string()), user_properties()).prop_map(|(rs, user)| AckProperties {
        reason_string: rs,
        user_properties: user,
    })
}

fn disconnect_properties() -> impl Strategy<Value = DisconnectProperties> {
    (
        of(any::<u32>()),
        of(mqtt_string()),
        user_properties(),
        of(mqtt_string()),
    )
        .prop_map(|(sei, rs, user, sr)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            user_properties: user,
            server_reference: sr,
        })
}

fn auth_properties() -> impl Strategy<Value = AuthProperties> {
    (
        of(mqtt_string()),
        of(secret()),
        of(mqtt_string()),
        user_properties(),
    )
        .prop_map(|(m, d, rs, user)| AuthProperties {
            authentication_method: m,
            authentication_data: d,
            reason_string: rs,
            user_properties: user,
        })
}

/// A property set for 5.0, or the default (the only thing 3.x can carry).
fn props<T: Default + std::fmt::Debug + Clone + 'static>(
    version: ProtocolVersion,
    strategy: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<T> {
    if version.is_v5() {
        strategy.boxed()
    } else {
        Just(T::default()).boxed()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies for the packets, per version: only what that version can express.

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (
        topic_name(),
        binary(32),
        qos(),
        any::<bool>(),
        props(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        mqtt_string(),
        of(will),
        of(mqtt_string()),
        of(secret()),
        props(version, connect_properties()),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // Before 5.0 a password needs a user name.
                let password = if version.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        reason(PacketType::ConnAck).boxed()
    } else {
        (0u8..=5)
            .prop_map(|c| ReasonCode::from_v3_connack(c).unwrap())
            .boxed()
    };
    (any::<bool>(), code, props(version, connack_properties())).prop_map(
        move |(session_present, reason_code, properties)| {
            let session_present = session_present
                && reason_code == ReasonCode::Success
                && version != ProtocolVersion::V3_1;
            Packet::ConnAck(Box::new(ConnAck {
                session_present,
                reason_code,
                properties,
            }))
        },
    )
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        qos(),
        packet_id(),
        any::<bool>(),
        topic_name(),
        binary(64),
        props(version, publish_properties()),
        any::<bool>(),
    )
        .prop_map(
            move |(dup, qos, id, retain, topic, payload, properties, alias_only)| {
                let qos = QosPid::new(qos, Some(id)).unwrap();
                // 5.0: a topic alias may stand for the topic name, which is then empty.
                let topic = if alias_only && properties.topic_alias.is_some() {
                    TopicName::empty()
                } else {
                    topic
                };
                let mut publish = Publish::new(topic, payload).with_properties(properties);
                publish.dup = dup && qos != QosPid::AtMostOnce;
                publish.qos = qos;
                publish.retain = retain;
                Packet::Publish(publish)
            },
        )
}

fn pub_ack(version: ProtocolVersion, packet: PacketType) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        reason(packet).boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (packet_id(), code, props(version, ack_properties())).prop_map(
        move |(packet_id, reason_code, properties)| match packet {
            PacketType::PubAck => Packet::PubAck(PubAck {
                packet_id,
                reason_code,
                properties,
            }),
            PacketType::PubRec => Packet::PubRec(PubRec {
                packet_id,
                reason_code,
                properties,
            }),
            PacketType::PubRel => Packet::PubRel(PubRel {
                packet_id,
                reason_code,
                properties,
            }),
            _ => Packet::PubComp(PubComp {
                packet_id,
                reason_code,
                properties,
            }),
        },
    )
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let options =
        (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(move |(qos, no_local, rap, rh)| {
            if version.is_v5() {
                SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published: rap,
                    retain_handling: RetainHandling::from_u8(rh).unwrap(),
                }
            } else {
                SubscriptionOptions::new(qos)
            }
        });
    let subscription = (topic_filter(), options).prop_map(|(filter, mut options)| {
        // No Local is a Protocol Error on a shared subscription.
        options.no_local &= !filter.is_shared();
        Subscription { filter, options }
    });
    let properties = props(
        version,
        (of(subscription_id()), user_properties()).prop_map(|(id, user)| SubscribeProperties {
            subscription_identifier: id,
            user_properties: user,
        }),
    );
    (packet_id(), vec(subscription, 1..4), properties).prop_map(
        |(packet_id, subscriptions, properties)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                subscriptions,
                properties,
            })
        },
    )
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        reason(PacketType::SubAck).boxed()
    } else {
        proptest::sample::select(vec![
            ReasonCode::Success,
            ReasonCode::GrantedQoS1,
            ReasonCode::GrantedQoS2,
            ReasonCode::UnspecifiedError,
        ])
        .boxed()
    };
    (
        packet_id(),
        vec(code, 1..4),
        props(version, ack_properties()),
    )
        .prop_map(|(packet_id, reason_codes, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = props(
        version,
        user_properties().prop_map(|user| UnsubscribeProperties {
            user_properties: user,
        }),
    );
    (packet_id(), vec(topic_filter(), 1..4), properties).prop_map(
        |(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        },
    )
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version.is_v5() {
        vec(reason(PacketType::UnsubAck), 1..4).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (packet_id(), codes, props(version, ack_properties())).prop_map(
        |(packet_id, reason_codes, properties)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reason_codes,
                properties,
            })
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let code = if version.is_v5() {
        // 0x8C is accepted in a DISCONNECT but never sent (docs/adr/0001).
        reason(PacketType::Disconnect)
            .prop_filter("not sent", |c| *c != ReasonCode::BadAuthenticationMethod)
            .boxed()
    } else {
        Just(ReasonCode::Success).boxed()
    };
    (code, props(version, disconnect_properties())).prop_map(|(reason_code, properties)| {
        Packet::from(Disconnect {
            reason_code,
            properties,
        })
    })
}

fn auth() -> impl Strategy<Value = Packet> {
    // Every AUTH but the empty short form names its method (MQTT 5.0 section 3.15.2.2.2).
    let full = (reason(PacketType::Auth), mqtt_string(), auth_properties()).prop_map(
        |(reason_code, method, mut properties)| {
            properties.authentication_method = Some(method);
            Packet::from(Auth {
                reason_code,
                properties,
            })
        },
    );
    prop_oneof![1 => Just(Packet::from(Auth::new(ReasonCode::Success))), 4 => full]
}

/// Any packet `version` can express.
fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let mut options = vec![
        connect(version).boxed(),
        connack(version).boxed(),
        publish(version).boxed(),
        publish(version).boxed(),
        pub_ack(version, PacketType::PubAck).boxed(),
        pub_ack(version, PacketType::PubRec).boxed(),
        pub_ack(version, PacketType::PubRel).boxed(),
        pub_ack(version, PacketType::PubComp).boxed(),
        subscribe(version).boxed(),
        suback(version).boxed(),
        unsubscribe(version).boxed(),
        unsuback(version).boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect(version).boxed(),
    ];
    if version.is_v5() {
        options.push(auth().boxed());
    }
    proptest::strategy::Union::new(options).boxed()
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    proptest::sample::select(ProtocolVersion::ALL.to_vec())
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| (Just(v), packet(v)))
}

fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    let written = packet
        .encode(version, PROTOCOL_MAX_PACKET_SIZE, &mut buf)
        .unwrap_or_else(|e| panic!("{e}: {packet:?}"));
    assert_eq!(written, buf.len());
    assert_eq!(packet.encoded_len(version).unwrap(), written);
    buf
}

// ---------------------------------------------------------------------------------------------
// The properties.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// encode → decode is the identity for every packet of every version, and encoding is
    /// deterministic.
    #[test]
    fn every_packet_round_trips((version, packet) in versioned_packet()) {
        let mut wire = encode(&packet, version);
        let copy = wire.clone();
        let decoded = Decoder::new(version).decode(&mut wire).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&packet));
        prop_assert!(wire.is_empty());
        prop_assert_eq!(encode(&decoded.unwrap(), version), copy);
    }

    /// `Publish::encode_head` followed by the payload is exactly `Publish::encode`.
    #[test]
    fn publish_head_plus_payload_is_the_packet(
        (version, packet) in version().prop_flat_map(|v| (Just(v), publish(v)))
    ) {
        let Packet::Publish(publish) = &packet else { unreachable!() };
        let mut head = BytesMut::new();
        let size = publish.encode_head(publish.envelope(), version, PROTOCOL_MAX_PACKET_SIZE, &mut head).unwrap();
        prop_assert_eq!(size, head.len() + publish.payload.len());
        head.extend_from_slice(&publish.payload);
        prop_assert_eq!(head, encode(&packet, version));
    }

    /// `Publish::encode_delivery` in 5.0 sends the message's own properties with the
    /// delivery's alias, expiry and subscription identifiers in place of the message's; its
    /// size is `delivery_len`; before 5.0 it is plain `encode`.
    #[test]
    fn publish_delivery_carries_the_delivery_properties(
        (version, packet) in version().prop_flat_map(|v| (Just(v), publish(v))),
        alias in of(1u16..=u16::MAX),
        omit in any::<bool>(),
        expiry in of(any::<u32>()),
        ids in vec(subscription_id(), 0..3),
    ) {
        let Packet::Publish(publish) = &packet else { unreachable!() };
        // A message received without its topic name (through an alias) has one by now.
        let alias = alias.or(publish.topic.is_empty().then_some(1));
        let delivery = DeliveryProperties {
            topic_alias: alias.and_then(NonZeroU16::new),
            omit_topic: omit && alias.is_some(),
            message_expiry_interval: expiry,
            subscription_identifiers: ids.clone(),
        };
        let envelope = publish.envelope();
        let mut wire = BytesMut::new();
        let size = publish
            .encode_delivery(envelope, &delivery, version, PROTOCOL_MAX_PACKET_SIZE, &mut wire)
            .unwrap();
        prop_assert_eq!(size, wire.len());
        prop_assert_eq!(publish.delivery_len(envelope, &delivery, version).unwrap(), size);
        if !version.is_v5() {
            prop_assert_eq!(wire, encode(&packet, version));
            return Ok(());
        }
        let Some(Packet::Publish(decoded)) = Decoder::new(version).decode(&mut wire).unwrap()
        else {
            panic!("not a PUBLISH");
        };
        let mut expected = publish.properties().clone();
        expected.topic_alias = delivery.topic_alias;
        expected.message_expiry_interval = expiry;
        expected.subscription_identifiers = ids;
        prop_assert_eq!(decoded.properties(), &expected);
        prop_assert_eq!(decoded.payload, publish.payload.clone());
        if delivery.omit_topic {
            prop_assert!(decoded.topic.is_empty());
        } else {
            prop_assert_eq!(decoded.topic, publish.topic.clone());
        }
    }

    /// A server decoder accepts any version's CONNECT and then speaks that version.
    #[test]
    fn server_decoder_adopts_the_connect_version(
        (version, connect, next) in version().prop_flat_map(|v| (Just(v), connect(v), packet(v)))
    ) {
        let mut wire = encode(&connect, version);
        wire.extend_from_slice(&encode(&next, version));
        let mut decoder = Decoder::server();
        prop_assert_eq!(decoder.decode(&mut wire).unwrap(), Some(connect));
        prop_assert_eq!(decoder.version(), Some(version));
        prop_assert_eq!(decoder.decode(&mut wire).unwrap(), Some(next));
    }

    /// Splitting a stream of packets at arbitrary points gives the same packets, in order.
    #[test]
    fn split_stream_yields_the_same_packets(
        (version, packets) in version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..8))),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for p in &packets {
            stream.extend_from_slice(&encode(p, version));
        }
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();

        let mut decoder = Decoder::new(version);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        let mut start = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[start..cut]);
            start = cut;
            while let Some(p) = decoder.decode(&mut buf).unwrap() {
                decoded.push(p);
            }
        }
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
    }

    /// Arbitrary bytes never panic the decoder, whatever its version and limit, and never make
    /// it grow the buffer past the larger of the limit and what the buffer already had.
    #[test]
    fn arbitrary_bytes_never_panic_or_overallocate(
        mode in 0u8..4,
        limit in 2u32..4096,
        bytes in vec(any::<u8>(), 0..600),
    ) {
        check_no_panic(mode, limit, &bytes);
    }

    /// Valid packets with a few bytes changed or cut off are the most searching input: they
    /// get past the framing into every body parser.
    #[test]
    fn corrupted_packets_never_panic(
        (version, packet) in versioned_packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = encode(&packet, version).to_vec();
        for (at, byte) in edits {
            let i = at.index(wire.len());
            wire[i] = byte;
        }
        wire.truncate(cut.index(wire.len() + 1).max(1));
        let mode = match version {
            ProtocolVersion::V3_1 => 1,
            ProtocolVersion::V3_1_1 => 2,
            ProtocolVersion::V5 => 3,
        };
        check_no_panic(mode, PROTOCOL_MAX_PACKET_SIZE, &wire);
        // Whatever decodes from corrupted bytes must still round-trip.
        let mut buf = BytesMut::from(&wire[..]);
        if let Ok(Some(p)) = Decoder::new(version).decode(&mut buf) {
            // DISCONNECT 0x8C is accepted but never sent (docs/adr/0001).
            if matches!(&p, Packet::Disconnect(d) if d.reason_code == ReasonCode::BadAuthenticationMethod) {
                return Ok(());
            }
            let mut again = encode(&p, version);
            prop_assert_eq!(Decoder::new(version).decode(&mut again).unwrap(), Some(p));
        }
    }
}

fn check_no_panic(mode: u8, limit: u32, bytes: &[u8]) {
    let decoder = match mode {
        0 => Decoder::server(),
        1 => Decoder::new(ProtocolVersion::V3_1),
        2 => Decoder::new(ProtocolVersion::V3_1_1),
        _ => Decoder::new(ProtocolVersion::V5),
    };
    let mut decoder = decoder.with_max_packet_size(limit);
    let mut buf = BytesMut::from(bytes);
    let initial = buf.capacity();
    while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    let bound = initial.max(limit as usize);
    assert!(
        buf.capacity() <= bound,
        "capacity {} past {bound}",
        buf.capacity()
    );
}

/// A fixed header announcing 256 MiB must be refused at once, without reserving it.
#[test]
fn huge_remaining_length_is_refused_before_buffering() {
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let err = Decoder::new(ProtocolVersion::V3_1_1)
        .with_max_packet_size(1024)
        .decode(&mut buf)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::PacketTooLarge {
            size: 268_435_460,
            max: 1024
        }
    ));
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    assert!(buf.capacity() < 1024);
}

/// A peer that announces a large packet and sends little costs a small read buffer, not the
/// announced size; the buffer then grows with what arrives and ends at exactly the frame.
#[test]
fn buffer_follows_the_bytes_received_not_the_announced_size() {
    let frame_len = 1_000_000usize;
    let mut packet = BytesMut::new();
    Packet::Publish(Publish::new(
        TopicName::try_from("t").unwrap(),
        vec![7u8; frame_len - 7],
    ))
    .encode(
        ProtocolVersion::V3_1_1,
        PROTOCOL_MAX_PACKET_SIZE,
        &mut packet,
    )
    .unwrap();
    assert_eq!(packet.len(), frame_len);

    // A reader that, like a socket read into `BytesMut`, only fills the spare capacity the
    // decoder left.
    let mut decoder = Decoder::new(ProtocolVersion::V3_1_1);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut largest_ratio: f64 = 0.0;
    loop {
        if let Some(p) = decoder.decode(&mut buf).unwrap() {
            assert_eq!(fed, frame_len);
            assert!(matches!(p, Packet::Publish(_)));
            break;
        }
        if buf.capacity() == buf.len() {
            // Before a fixed header is complete, reading is the caller's business.
            assert!(
                buf.len() < 5,
                "Ok(None) mid-frame must leave room for the next read"
            );
            buf.reserve(64);
        }
        let room = buf.capacity() - buf.len();
        assert!(buf.capacity() <= frame_len);
        if buf.len() >= MIN_READ_BUFFER {
            largest_ratio = largest_ratio.max(buf.capacity() as f64 / buf.len() as f64);
        } else {
            assert!(buf.capacity() <= MIN_READ_BUFFER);
        }
        let chunk = room.min(16 * 1024).min(frame_len - fed);
        buf.extend_from_slice(&packet[fed..fed + chunk]);
        fed += chunk;
    }
    assert!(
        largest_ratio <= 2.0,
        "buffer ran {largest_ratio}x ahead of the data"
    );

    // Five bytes announcing 256 MiB within a 256 MiB limit reserve only a read buffer.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        Decoder::new(ProtocolVersion::V3_1_1)
            .decode(&mut buf)
            .unwrap(),
        None
    );
    assert!(buf.capacity() <= MIN_READ_BUFFER);
}
