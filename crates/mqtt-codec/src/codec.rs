//! `tokio_util::codec` adapter (feature `tokio-codec`).

use bytes::BytesMut;

use crate::{Decoder, Error, Packet, ProtocolVersion};

/// [`Decoder`] plus an encoder, as a `tokio_util::codec::{Decoder, Encoder}` pair for `Framed`.
///
/// Decoding follows the [`Decoder`] it wraps (so a [`MqttCodec::server`] switches to the
/// CONNECT's version); encoding uses the same version, and the peer's maximum packet size set
/// with [`MqttCodec::set_peer_max_packet_size`].
#[derive(Debug, Clone)]
pub struct MqttCodec {
    decoder: Decoder,
    peer_max_packet_size: u32,
}

impl MqttCodec {
    /// A codec for a connection whose version is known.
    pub fn new(version: ProtocolVersion) -> Self {
        Self::from_decoder(Decoder::new(version))
    }

    /// A codec for the server side of a new connection (see [`Decoder::server`]).
    pub fn server() -> Self {
        Self::from_decoder(Decoder::server())
    }

    /// Wraps a configured decoder.
    pub fn from_decoder(decoder: Decoder) -> Self {
        Self {
            decoder,
            peer_max_packet_size: crate::PROTOCOL_MAX_PACKET_SIZE,
        }
    }

    /// The decoder, to change its limits or version.
    pub fn decoder_mut(&mut self) -> &mut Decoder {
        &mut self.decoder
    }

    /// The largest packet the peer accepts (its MQTT 5.0 Maximum Packet Size).
    pub fn set_peer_max_packet_size(&mut self, max: u32) {
        self.peer_max_packet_size = max;
    }
}

impl tokio_util::codec::Decoder for MqttCodec {
    type Item = Packet;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, Error> {
        self.decoder.decode(src)
    }
}

impl tokio_util::codec::Encoder<&Packet> for MqttCodec {
    type Error = Error;

    fn encode(&mut self, packet: &Packet, dst: &mut BytesMut) -> Result<(), Error> {
        // Before CONNECT has been seen, only CONNECT (which carries its version) or a CONNACK
        // refusing an unknown version can be sent; 3.1.1 framing is the neutral choice.
        let version = self.decoder.version().unwrap_or(ProtocolVersion::V3_1_1);
        packet
            .encode(version, self.peer_max_packet_size, dst)
            .map(|_| ())
    }
}

impl tokio_util::codec::Encoder<Packet> for MqttCodec {
    type Error = Error;

    fn encode(&mut self, packet: Packet, dst: &mut BytesMut) -> Result<(), Error> {
        tokio_util::codec::Encoder::<&Packet>::encode(self, &packet, dst)
    }
}

#[cfg(test)]
mod tests {
    use tokio_util::codec::{Decoder as _, Encoder as _};

    use super::*;

    #[test]
    fn server_codec_follows_the_connect_version() {
        let mut codec = MqttCodec::server();
        let connect = Packet::Connect(Box::new(crate::Connect::new(
            ProtocolVersion::V5,
            crate::MqttString::try_from("c").unwrap(),
        )));
        let mut buf = BytesMut::new();
        codec.encode(&connect, &mut buf).unwrap();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(connect));
        assert_eq!(codec.decoder_mut().version(), Some(ProtocolVersion::V5));

        codec.set_peer_max_packet_size(3);
        let too_big = Packet::from(crate::Disconnect::new(
            crate::ReasonCode::ServerShuttingDown,
        ));
        // 1 + 1 + reason byte = 3 fits; a reason string would not.
        codec.encode(&too_big, &mut buf).unwrap();
        let mut with_reason = crate::Disconnect::new(crate::ReasonCode::ServerShuttingDown);
        with_reason.properties.reason_string = Some(crate::MqttString::try_from("bye").unwrap());
        assert!(matches!(
            codec.encode(Packet::from(with_reason), &mut buf),
            Err(Error::PacketTooLarge { max: 3, .. })
        ));
        assert_eq!(buf.len(), 3);
    }
}
