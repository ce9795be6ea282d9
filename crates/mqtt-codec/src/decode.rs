//! The `nom` glue shared by every body parser: the error adapter, the context that turns
//! sub-slices of the frame into zero-copy [`Bytes`], and the primitive field parsers of the
//! standard's section 1.5 (integers, strings, binary data, variable byte integers).
//!
//! Parsers run over the complete frame only, so running out of input is never "need more
//! bytes" here: it means a length field pointed past the end of the packet (a malformed packet).

use bytes::Bytes;
use mqtt_topic::MqttString;
use nom::IResult;
use nom::error::{ErrorKind, ParseError};

use crate::{Error, PacketId, PacketType, ProtocolVersion, varint};

/// The error type our `nom` parsers carry: one of ours, or "ran out of input".
#[derive(Debug)]
pub(crate) struct Fail(pub(crate) Option<Error>);

impl<'a> ParseError<&'a [u8]> for Fail {
    fn from_error_kind(_input: &'a [u8], _kind: ErrorKind) -> Self {
        Fail(None)
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// A parser result over a frame's bytes.
pub(crate) type PResult<'a, T> = IResult<&'a [u8], T, Fail>;

/// Stops parsing with `error`.
pub(crate) fn fail<'a, T>(error: Error) -> PResult<'a, T> {
    Err(nom::Err::Failure(Fail(Some(error))))
}

/// What a body parser needs besides its input: the whole frame (to share sub-slices of it
/// without copying) and the packet being parsed (for error context).
pub(crate) struct Cx<'f> {
    frame: &'f Bytes,
    pub(crate) packet: PacketType,
    pub(crate) version: ProtocolVersion,
}

impl<'f> Cx<'f> {
    #[inline]
    pub(crate) fn new(frame: &'f Bytes, packet: PacketType, version: ProtocolVersion) -> Self {
        Self {
            frame,
            packet,
            version,
        }
    }

    /// The frame's bytes as a slice of the same buffer. `part` always comes from the frame:
    /// every parser input is a sub-slice of it.
    #[inline]
    pub(crate) fn share(&self, part: &[u8]) -> Bytes {
        self.frame.slice_ref(part)
    }

    /// Turns a `nom` result into ours, with "ran out of input" as [`Error::Truncated`].
    #[inline]
    pub(crate) fn finish<T>(&self, result: PResult<'_, T>) -> Result<T, Error> {
        self.finish_with_rest(result).map(|(_, value)| value)
    }

    /// As [`Cx::finish`], also giving the number of bytes the parser left unread.
    #[inline]
    pub(crate) fn finish_with_rest<T>(&self, result: PResult<'_, T>) -> Result<(usize, T), Error> {
        match result {
            Ok((rest, value)) => Ok((rest.len(), value)),
            Err(nom::Err::Error(Fail(e)) | nom::Err::Failure(Fail(e))) => {
                Err(e.unwrap_or(Error::Truncated {
                    packet: self.packet,
                }))
            }
            Err(nom::Err::Incomplete(_)) => Err(Error::Truncated {
                packet: self.packet,
            }),
        }
    }

    /// Binary Data: a two-byte length and that many bytes, shared with the frame.
    #[inline]
    pub(crate) fn binary<'a>(&self, input: &'a [u8]) -> PResult<'a, Bytes> {
        let (input, data) = length_prefixed(input)?;
        Ok((input, self.share(data)))
    }

    /// A UTF-8 Encoded String, validated [MQTT-1.5.3-1, MQTT-1.5.3-2]; `field` names it in
    /// errors.
    pub(crate) fn string<'a>(
        &self,
        input: &'a [u8],
        field: &'static str,
    ) -> PResult<'a, MqttString> {
        let (input, data) = self.binary(input)?;
        match MqttString::from_bytes(data) {
            Ok(s) => Ok((input, s)),
            Err(source) => fail(Error::InvalidString { field, source }),
        }
    }

    /// A non-zero packet identifier [MQTT-2.3.1-1].
    #[inline]
    pub(crate) fn packet_id<'a>(&self, input: &'a [u8]) -> PResult<'a, PacketId> {
        let (input, id) = u16(input)?;
        match PacketId::new(id) {
            Some(id) => Ok((input, id)),
            None => fail(Error::ZeroPacketId {
                packet: self.packet,
            }),
        }
    }

    /// Fails with [`Error::TrailingBytes`] unless `input` is empty.
    pub(crate) fn end<'a>(&self, input: &'a [u8]) -> PResult<'a, ()> {
        if input.is_empty() {
            Ok((input, ()))
        } else {
            fail(Error::TrailingBytes {
                packet: self.packet,
                count: input.len(),
            })
        }
    }
}

use nom::Parser;

/// One byte.
#[inline]
pub(crate) fn u8(input: &[u8]) -> PResult<'_, u8> {
    nom::number::complete::be_u8(input)
}

/// A Two Byte Integer, big-endian.
#[inline]
pub(crate) fn u16(input: &[u8]) -> PResult<'_, u16> {
    nom::number::complete::be_u16(input)
}

/// A Four Byte Integer, big-endian.
#[inline]
pub(crate) fn u32(input: &[u8]) -> PResult<'_, u32> {
    nom::number::complete::be_u32(input)
}

/// A Variable Byte Integer inside a packet (MQTT 5.0 only), which must be minimally encoded
/// [MQTT-1.5.5-1].
pub(crate) fn varint(input: &[u8]) -> PResult<'_, u32> {
    match varint::read(input) {
        Ok(Some(decoded)) if decoded.is_minimal() => {
            Ok((input.get(decoded.len..).unwrap_or_default(), decoded.value))
        }
        Ok(Some(_)) => fail(Error::NonMinimalVarInt),
        Ok(None) => Err(nom::Err::Error(Fail(None))),
        Err(e) => fail(e),
    }
}

/// A two-byte length and that many bytes.
#[inline]
pub(crate) fn length_prefixed(input: &[u8]) -> PResult<'_, &[u8]> {
    let (input, len) = u16(input)?;
    nom::bytes::complete::take(len).parse(input)
}

/// `len` bytes.
pub(crate) fn take(len: usize) -> impl Fn(&[u8]) -> PResult<'_, &[u8]> {
    move |input: &[u8]| nom::bytes::complete::take(len).parse(input)
}
