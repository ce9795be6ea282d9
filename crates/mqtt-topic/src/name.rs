//! [`TopicName`]: the topic a message is published to.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::{Error, MqttString};

/// A topic name: a non-empty [`MqttString`] without the wildcard characters `+` and `#`
/// [MQTT-4.7.3-1, MQTT-3.3.2-2].
///
/// A leading `$` marks a server topic (such as `$SYS/...`): filters that start with a wildcard do
/// not match it [MQTT-4.7.2-1]; see [`TopicName::is_dollar`].
///
/// The one exception to "non-empty" is [`TopicName::empty`]: an MQTT 5 PUBLISH that relies on a
/// Topic Alias carries a zero-length topic name, and the codec represents it with that value.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(MqttString);

impl TopicName {
    /// Validates `bytes` as a topic name without copying them.
    ///
    /// # Errors
    /// The [`MqttString`] errors, [`Error::Empty`] or [`Error::WildcardInTopicName`].
    #[inline]
    pub fn from_bytes(bytes: Bytes) -> Result<Self, Error> {
        // The common case, plain ASCII, is settled in one vectorised pass.
        if !bytes.is_empty()
            && bytes.len() <= MqttString::MAX_LEN
            && crate::string::is_plain_ascii(&bytes, true)
        {
            return Ok(Self(MqttString::from_checked(bytes)));
        }
        Self::from_bytes_slow(bytes)
    }

    #[cold]
    fn from_bytes_slow(bytes: Bytes) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Err(Error::Empty);
        }
        if let Some(offset) = bytes.iter().position(|&b| b == b'+' || b == b'#') {
            return Err(Error::WildcardInTopicName { offset });
        }
        MqttString::from_bytes(bytes).map(Self)
    }

    /// A topic name known at compile time; validated all the same.
    ///
    /// # Errors
    /// As [`TopicName::from_bytes`].
    pub fn from_static(text: &'static str) -> Result<Self, Error> {
        Self::from_bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The zero-length topic name of an MQTT 5 PUBLISH that uses a Topic Alias instead of its
    /// topic name. Valid nowhere else.
    pub const fn empty() -> Self {
        Self(MqttString::new())
    }

    /// The same name in a buffer of its own, so that keeping it (as a retained message's topic,
    /// say) does not keep alive the packet it was decoded from.
    pub fn copied(&self) -> Self {
        Self(MqttString::from_checked(Bytes::copy_from_slice(
            self.as_str().as_bytes(),
        )))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The validated string.
    pub fn as_mqtt_str(&self) -> &MqttString {
        &self.0
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// The levels, split at `/`; empty levels are kept (`a//b` has three levels).
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.as_str().split('/')
    }

    /// Fails with [`Error::TooManyLevels`] if the name has more than `max` levels: the broker's
    /// configurable limit on topic depth.
    pub fn check_levels(&self, max: usize) -> Result<(), Error> {
        check_levels(self.as_str(), max)
    }

    /// Whether the name starts with `$`, which wildcard-first filters never match.
    pub fn is_dollar(&self) -> bool {
        self.as_str().starts_with('$')
    }
}

/// Fails if `text` has more than `max` levels.
pub(crate) fn check_levels(text: &str, max: usize) -> Result<(), Error> {
    let levels = text.bytes().filter(|&b| b == b'/').count() + 1;
    if levels > max {
        return Err(Error::TooManyLevels { levels, max });
    }
    Ok(())
}

impl Deref for TopicName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for TopicName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<Bytes> for TopicName {
    type Error = Error;
    fn try_from(bytes: Bytes) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

impl TryFrom<&str> for TopicName {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::from_bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl TryFrom<String> for TopicName {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Self::from_bytes(Bytes::from(text))
    }
}

impl TryFrom<MqttString> for TopicName {
    type Error = Error;
    fn try_from(text: MqttString) -> Result<Self, Error> {
        Self::from_bytes(text.into_bytes())
    }
}

impl From<TopicName> for MqttString {
    fn from(name: TopicName) -> MqttString {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Result<TopicName, Error> {
        TopicName::try_from(s)
    }

    /// MQTT-4.7.3-1: topic names are at least one character long.
    #[test]
    fn mqtt_4_7_3_1_rejects_empty_name() {
        assert_eq!(name(""), Err(Error::Empty));
        assert!(TopicName::empty().is_empty());
    }

    /// MQTT-3.3.2-2 (3.1.1 and 5.0): no wildcard characters in a PUBLISH topic name.
    #[test]
    fn mqtt_3_3_2_2_rejects_wildcards() {
        assert_eq!(
            name("sport/+"),
            Err(Error::WildcardInTopicName { offset: 6 })
        );
        assert_eq!(name("#"), Err(Error::WildcardInTopicName { offset: 0 }));
        assert_eq!(name("a/b#"), Err(Error::WildcardInTopicName { offset: 3 }));
    }

    /// Section 4.7.1.1 / 4.7.3: `/` alone, leading and trailing separators and empty levels are
    /// all valid and distinct; spaces are allowed.
    #[test]
    fn separators_and_empty_levels_are_significant() {
        for ok in [
            "/",
            "/finance",
            "finance/",
            "a//b",
            "ACCOUNTS",
            "Accounts payable",
        ] {
            assert!(name(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(
            name("a//b").unwrap().levels().collect::<Vec<_>>(),
            ["a", "", "b"]
        );
        assert_eq!(name("/").unwrap().levels().count(), 2);
        assert_ne!(name("ACCOUNTS").unwrap(), name("Accounts").unwrap());
    }

    #[test]
    fn level_limit() {
        let name = TopicName::try_from("a/b/c").unwrap();
        assert_eq!(name.check_levels(3), Ok(()));
        assert_eq!(
            name.check_levels(2),
            Err(Error::TooManyLevels { levels: 3, max: 2 })
        );
        let filter = crate::TopicFilter::try_from("$share/g/a/+/#").unwrap();
        assert_eq!(filter.check_levels(3), Ok(()));
        assert!(filter.check_levels(2).is_err());
    }

    #[test]
    fn dollar_topics_are_recognised() {
        assert!(name("$SYS/broker/load").unwrap().is_dollar());
        assert!(!name("SYS/$").unwrap().is_dollar());
    }

    #[test]
    fn string_rules_apply() {
        assert_eq!(name("a\0"), Err(Error::NullCharacter { offset: 1 }));
        assert!(matches!(
            TopicName::from_bytes(Bytes::from_static(&[0xFF])),
            Err(Error::InvalidUtf8 { .. })
        ));
    }
}
