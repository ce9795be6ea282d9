//! [`MqttString`]: the standard's "UTF-8 Encoded String" over zero-copy bytes.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

use crate::Error;

/// A UTF-8 Encoded String as MQTT defines it: well-formed UTF-8 (no surrogates, no overlong
/// forms), no U+0000, and at most [`MqttString::MAX_LEN`] bytes.
///
/// The text is held in a [`Bytes`], so a string decoded from a packet is a slice of that packet's
/// buffer, not a copy. Cloning is a reference-count increment.
///
/// Control characters and non-characters are allowed: the standard only says they SHOULD NOT be
/// sent, and leaves the decision to the application.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MqttString(Bytes);

impl MqttString {
    /// The longest string a two-byte length prefix can describe.
    pub const MAX_LEN: usize = u16::MAX as usize;

    /// The empty string.
    pub const fn new() -> Self {
        Self(Bytes::new())
    }

    /// Validates `bytes` without copying them.
    ///
    /// # Errors
    /// [`Error::TooLong`], [`Error::InvalidUtf8`] or [`Error::NullCharacter`].
    #[inline]
    pub fn from_bytes(bytes: Bytes) -> Result<Self, Error> {
        check(&bytes)?;
        Ok(Self(bytes))
    }

    /// Wraps bytes the caller has validated with [`check`] (or a stricter check).
    pub(crate) fn from_checked(bytes: Bytes) -> Self {
        Self(bytes)
    }

    /// A string known at compile time; validated all the same.
    ///
    /// # Errors
    /// As [`MqttString::from_bytes`].
    pub fn from_static(text: &'static str) -> Result<Self, Error> {
        Self::from_bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        #[allow(unsafe_code)]
        // SAFETY: every constructor validates the bytes as UTF-8 (`check`), and the bytes are
        // never mutated afterwards: `Bytes` is immutable and the field is private.
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes (a cheap clone of the shared buffer).
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives back the underlying bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

/// Whether every byte is ASCII other than NUL, and (with `no_wildcards`) other than `+` and
/// `#`: such bytes are a valid string (and topic name) without further checks. Written as a
/// branch-free fold so that it vectorises; it is the fast path of every string decoded.
#[inline]
pub(crate) fn is_plain_ascii(bytes: &[u8], no_wildcards: bool) -> bool {
    let wildcard_mask = if no_wildcards { 0xFF } else { 0 };
    let bad = bytes.iter().fold(0u8, |bad, &b| {
        // b - 1 >= 0x7F exactly when b is 0 or not ASCII.
        let not_plain = u8::from(b.wrapping_sub(1) >= 0x7F);
        let wildcard = u8::from(b == b'+' || b == b'#') & wildcard_mask;
        bad | not_plain | wildcard
    });
    bad == 0
}

/// Checks the rules shared by every MQTT string and returns the text.
pub(crate) fn check(bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() <= MqttString::MAX_LEN && is_plain_ascii(bytes, false) {
        return Ok(());
    }
    check_slow(bytes)
}

#[cold]
fn check_slow(bytes: &[u8]) -> Result<(), Error> {
    if bytes.len() > MqttString::MAX_LEN {
        return Err(Error::TooLong { len: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| Error::InvalidUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if let Some(offset) = text.bytes().position(|b| b == 0) {
        return Err(Error::NullCharacter { offset });
    }
    Ok(())
}

impl Deref for MqttString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MqttString {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// Hash as `str` does, so that `Borrow<str>` lookups in hash maps work.
impl Hash for MqttString {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<Bytes> for MqttString {
    type Error = Error;
    fn try_from(bytes: Bytes) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

impl TryFrom<&str> for MqttString {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::from_bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl TryFrom<String> for MqttString {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Self::from_bytes(Bytes::from(text))
    }
}

impl From<MqttString> for Bytes {
    fn from(s: MqttString) -> Bytes {
        s.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_bytes(bytes: &[u8]) -> Result<MqttString, Error> {
        MqttString::from_bytes(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn accepts_ordinary_text() {
        assert_eq!(check_bytes(b"hello/world").unwrap(), "hello/world");
        assert_eq!(check_bytes(b"").unwrap(), "");
        // U+2A6D4 (a four-byte sequence), the example of the standard's section 1.5.3/1.5.4.
        assert_eq!(check_bytes(&[0xF0, 0xAA, 0x9B, 0x94]).unwrap(), "\u{2A6D4}");
    }

    /// MQTT-1.5.3-1 (3.1.1) / MQTT-1.5.4-1 (5.0): ill-formed UTF-8, including the encoded
    /// surrogates U+D800..U+DFFF, is not a valid string.
    #[test]
    fn mqtt_1_5_3_1_rejects_ill_formed_utf8_and_surrogates() {
        assert_eq!(
            check_bytes(&[b'a', 0xED, 0xA0, 0x80]),
            Err(Error::InvalidUtf8 { valid_up_to: 1 })
        );
        assert_eq!(
            check_bytes(&[0xED, 0xBF, 0xBF]),
            Err(Error::InvalidUtf8 { valid_up_to: 0 })
        );
        // Overlong encoding of '/'.
        assert!(matches!(
            check_bytes(&[0xC0, 0xAF]),
            Err(Error::InvalidUtf8 { .. })
        ));
        // Truncated sequence.
        assert!(matches!(
            check_bytes(&[0xE2, 0x82]),
            Err(Error::InvalidUtf8 { .. })
        ));
    }

    /// MQTT-1.5.3-2 (3.1.1) / MQTT-1.5.4-2 (5.0): U+0000 is not allowed.
    #[test]
    fn mqtt_1_5_3_2_rejects_null_character() {
        assert_eq!(
            check_bytes(b"ab\0c"),
            Err(Error::NullCharacter { offset: 2 })
        );
    }

    /// MQTT-1.5.3-3 (3.1.1) / MQTT-1.5.4-3 (5.0): a BOM is kept, never stripped.
    #[test]
    fn mqtt_1_5_3_3_keeps_byte_order_mark() {
        let s = check_bytes(&[0xEF, 0xBB, 0xBF, b'a']).unwrap();
        assert_eq!(s.as_str(), "\u{FEFF}a");
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn length_limit_is_65535_bytes() {
        assert!(check_bytes(&vec![b'a'; 65_535]).is_ok());
        assert_eq!(
            check_bytes(&vec![b'a'; 65_536]),
            Err(Error::TooLong { len: 65_536 })
        );
    }

    #[test]
    fn hash_agrees_with_str_for_map_lookups() {
        let mut map = std::collections::HashMap::new();
        map.insert(MqttString::try_from("key").unwrap(), 1);
        assert_eq!(map.get("key"), Some(&1));
    }
}
