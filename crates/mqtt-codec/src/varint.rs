//! The Variable Byte Integer: 7 bits a byte, least significant group first, at most four bytes
//! (MQTT 3.1.1 section 2.2.3, MQTT 5.0 section 1.5.5).

use bytes::{BufMut, BytesMut};

use crate::Error;

/// The largest value four bytes can carry.
pub(crate) const MAX: u32 = 268_435_455;

/// How many bytes `value` takes (1 to 4; values above [`MAX`] are never written).
#[inline]
pub(crate) const fn len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// How many bytes a length of `value` takes; lengths past [`MAX`] count as four (they are
/// rejected before anything is written).
#[inline]
pub(crate) fn len_usize(value: usize) -> usize {
    len(u32::try_from(value).unwrap_or(u32::MAX))
}

/// Writes `value`, which the caller has checked is at most [`MAX`].
#[inline]
pub(crate) fn put(buf: &mut BytesMut, mut value: u32) {
    debug_assert!(value <= MAX);
    loop {
        let byte = (value & 0x7F) as u8;
        value >>= 7;
        if value == 0 {
            buf.put_u8(byte);
            return;
        }
        buf.put_u8(byte | 0x80);
    }
}

/// A decoded integer: its value and how many bytes it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) value: u32,
    pub(crate) len: usize,
}

impl Decoded {
    /// Whether fewer bytes could have carried the value [MQTT-1.5.5-1].
    pub(crate) fn is_minimal(self) -> bool {
        self.len == len(self.value)
    }
}

/// Reads an integer from the front of `bytes`: `Ok(None)` when the bytes end before the last
/// byte of the integer, an error when a fifth byte would be needed.
pub(crate) fn read(bytes: &[u8]) -> Result<Option<Decoded>, Error> {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(Decoded { value, len: i + 1 }));
        }
    }
    if bytes.len() >= 4 {
        Err(Error::VarIntTooLong)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: u32) -> Vec<u8> {
        let mut buf = BytesMut::new();
        put(&mut buf, value);
        buf.to_vec()
    }

    /// The boundary values of the table in MQTT 3.1.1 section 2.2.3 / 5.0 section 1.5.5.
    #[test]
    fn table_of_boundaries() {
        let table: &[(u32, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(value, bytes) in table {
            assert_eq!(encoded(value), bytes, "encoding {value}");
            assert_eq!(len(value), bytes.len());
            let decoded = read(bytes).ok().flatten().unwrap();
            assert_eq!(
                decoded,
                Decoded {
                    value,
                    len: bytes.len()
                }
            );
            assert!(decoded.is_minimal());
        }
    }

    #[test]
    fn incomplete_and_too_long() {
        assert!(matches!(read(&[]), Ok(None)));
        assert!(matches!(read(&[0x80, 0x80]), Ok(None)));
        assert!(matches!(
            read(&[0xFF, 0xFF, 0xFF, 0xFF]),
            Err(Error::VarIntTooLong)
        ));
        assert!(matches!(
            read(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(Error::VarIntTooLong)
        ));
    }

    /// MQTT-1.5.5-1 (5.0): the minimum number of bytes must be used.
    #[test]
    fn mqtt_1_5_5_1_detects_non_minimal_encodings() {
        let zero_in_two = read(&[0x80, 0x00]).ok().flatten().unwrap();
        assert_eq!(zero_in_two.value, 0);
        assert!(!zero_in_two.is_minimal());
        assert!(
            !read(&[0xFF, 0x80, 0x00])
                .ok()
                .flatten()
                .unwrap()
                .is_minimal()
        );
    }
}
