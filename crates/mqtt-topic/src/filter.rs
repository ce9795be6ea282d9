//! [`TopicFilter`]: what a subscription asks for, including shared subscriptions.

use std::fmt;

use bytes::Bytes;

use crate::name::check_levels;
use crate::{Error, MqttString, TopicName};

/// The prefix of a shared subscription (MQTT 5.0 section 4.8.2).
const SHARE_PREFIX: &str = "$share/";

/// A topic filter: a non-empty [`MqttString`] in which `+` is only ever a whole level and `#` only
/// the whole last level (MQTT 3.1.1 MQTT-4.7.1-2 and -3; MQTT 5.0 MQTT-4.7.1-1 and -2).
///
/// A filter of the form `$share/{ShareName}/{filter}` is a shared subscription: the share name is
/// non-empty and contains neither `/`, `+` nor `#`, and the filter after it is a non-empty valid
/// filter (MQTT 5.0 section 4.8.2). It is recognised whatever the protocol version, so 3.1.1
/// clients can join shared groups too.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter {
    text: MqttString,
    /// Byte offset of the filter proper: 0, or just past `$share/{ShareName}/`.
    filter_start: u16,
}

impl TopicFilter {
    /// Validates `bytes` as a topic filter without copying them.
    ///
    /// # Errors
    /// The [`MqttString`] errors, [`Error::Empty`], [`Error::InvalidWildcard`],
    /// [`Error::EmptyShareName`], [`Error::InvalidShareName`] or [`Error::EmptySharedFilter`].
    #[inline]
    pub fn from_bytes(bytes: Bytes) -> Result<Self, Error> {
        if is_plain_ascii_filter(&bytes) {
            return Ok(Self::plain(bytes));
        }
        let text = MqttString::from_bytes(bytes)?;
        let filter_start = validate(text.as_str())?;
        Ok(Self { text, filter_start })
    }

    /// A filter that passed [`is_plain_ascii_filter`].
    fn plain(bytes: Bytes) -> Self {
        Self {
            text: MqttString::from_checked(bytes),
            filter_start: 0,
        }
    }

    /// As [`TopicFilter::from_bytes`], for MQTT 3.x, which gives `$share` no meaning: a filter
    /// that starts with `$share/` but is not a valid shared subscription (`$share/#`,
    /// `$share//x`) is taken as the plain filter it also is, rather than refused. A valid
    /// `$share/{ShareName}/{filter}` is still a shared subscription.
    ///
    /// # Errors
    /// As [`TopicFilter::from_bytes`], for filters that are not valid plain filters either.
    #[inline]
    pub fn from_bytes_v3(bytes: Bytes) -> Result<Self, Error> {
        if is_plain_ascii_filter(&bytes) {
            return Ok(Self::plain(bytes));
        }
        Self::from_mqtt_string_v3(MqttString::from_bytes(bytes)?)
    }

    /// As [`TopicFilter::from_bytes_v3`], from a validated string.
    ///
    /// # Errors
    /// As [`TopicFilter::from_bytes_v3`].
    pub fn from_mqtt_string_v3(text: MqttString) -> Result<Self, Error> {
        let filter_start = match validate(text.as_str()) {
            Ok(start) => start,
            Err(_) if text.starts_with(SHARE_PREFIX) => {
                validate_plain(text.as_str(), 0)?;
                0
            }
            Err(e) => return Err(e),
        };
        Ok(Self { text, filter_start })
    }

    /// A filter known at compile time; validated all the same.
    ///
    /// # Errors
    /// As [`TopicFilter::from_bytes`].
    pub fn from_static(text: &'static str) -> Result<Self, Error> {
        Self::from_bytes(Bytes::from_static(text.as_bytes()))
    }

    /// The same filter in a buffer of its own, so that keeping it does not keep alive the
    /// (possibly much larger) packet it was decoded from.
    pub fn copied(&self) -> Self {
        Self {
            text: MqttString::from_checked(Bytes::copy_from_slice(self.as_str().as_bytes())),
            filter_start: self.filter_start,
        }
    }

    /// The whole text, including any `$share/{ShareName}/` prefix.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The validated string.
    pub fn as_mqtt_str(&self) -> &MqttString {
        &self.text
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        self.text.as_bytes()
    }

    /// The filter that is matched against topic names: the whole text, or for a shared
    /// subscription the part after `$share/{ShareName}/`.
    pub fn filter(&self) -> &str {
        self.as_str()
            .get(usize::from(self.filter_start)..)
            .unwrap_or_default()
    }

    /// The share name of a shared subscription.
    pub fn share_name(&self) -> Option<&str> {
        if self.filter_start == 0 {
            return None;
        }
        self.as_str()
            .get(SHARE_PREFIX.len()..usize::from(self.filter_start) - 1)
    }

    /// Whether this is a shared subscription (`$share/...`).
    pub fn is_shared(&self) -> bool {
        self.filter_start != 0
    }

    /// Whether the filter (after any share prefix) contains `+` or `#`.
    pub fn has_wildcards(&self) -> bool {
        self.filter().bytes().any(|b| b == b'+' || b == b'#')
    }

    /// Whether this filter (without its share prefix) matches `topic`; see [`filter_matches`].
    ///
    /// [`filter_matches`]: crate::filter_matches
    pub fn matches(&self, topic: &TopicName) -> bool {
        crate::filter_matches(self.filter(), topic.as_str())
    }

    /// Fails with [`Error::TooManyLevels`] if the filter (without its share prefix) has more than
    /// `max` levels: the broker's configurable limit on topic depth.
    pub fn check_levels(&self, max: usize) -> Result<(), Error> {
        check_levels(self.filter(), max)
    }

    /// The levels of [`TopicFilter::filter`], split at `/`.
    pub fn levels(&self) -> std::str::Split<'_, char> {
        self.filter().split('/')
    }
}

/// The common case settled in one pass over the bytes: a valid filter that is plain ASCII
/// (no NUL), not a shared subscription, with every wildcard in its place. `false` sends the
/// caller to the exact (and slower) checks, which also name what is wrong.
#[inline]
fn is_plain_ascii_filter(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.len() > MqttString::MAX_LEN || bytes.starts_with(b"$share/") {
        return false;
    }
    let mut previous = b'/';
    for (i, &b) in bytes.iter().enumerate() {
        // b - 1 >= 0x7F exactly when b is 0 or not ASCII.
        if b.wrapping_sub(1) >= 0x7F {
            return false;
        }
        if b == b'+' || b == b'#' {
            let next = bytes.get(i + 1);
            let fills_level = previous == b'/' && matches!(next, None | Some(b'/'));
            if !fills_level || (b == b'#' && next.is_some()) {
                return false;
            }
        }
        previous = b;
    }
    true
}

/// Checks the filter rules and returns where the filter proper starts.
fn validate(text: &str) -> Result<u16, Error> {
    let Some(rest) = text.strip_prefix(SHARE_PREFIX) else {
        validate_plain(text, 0)?;
        return Ok(0);
    };
    let (share_name, filter) = rest.split_once('/').unwrap_or((rest, ""));
    if share_name.is_empty() {
        return Err(Error::EmptyShareName);
    }
    if share_name.contains(['+', '#']) || share_name.len() == rest.len() {
        return Err(Error::InvalidShareName);
    }
    if filter.is_empty() {
        return Err(Error::EmptySharedFilter);
    }
    let start = SHARE_PREFIX.len() + share_name.len() + 1;
    validate_plain(filter, start)?;
    // An MqttString is at most 65,535 bytes, so the offset always fits.
    u16::try_from(start).map_err(|_| Error::TooLong { len: text.len() })
}

/// Checks the wildcard rules of a filter without share prefix; `base` offsets error positions.
fn validate_plain(filter: &str, base: usize) -> Result<(), Error> {
    if filter.is_empty() {
        return Err(Error::Empty);
    }
    // One pass over the bytes: a wildcard must fill its level, and `#` must be the last one.
    let bytes = filter.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'+' && b != b'#' {
            continue;
        }
        let starts_level = i == 0 || bytes.get(i - 1) == Some(&b'/');
        let ends_level = matches!(bytes.get(i + 1), None | Some(b'/'));
        let last = i + 1 == bytes.len();
        if !(starts_level && ends_level && (b == b'+' || last)) {
            return Err(Error::InvalidWildcard {
                offset: base + i,
                wildcard: char::from(b),
            });
        }
    }
    Ok(())
}

impl AsRef<str> for TopicFilter {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for TopicFilter {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<Bytes> for TopicFilter {
    type Error = Error;
    fn try_from(bytes: Bytes) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

impl TryFrom<&str> for TopicFilter {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self, Error> {
        Self::from_bytes(Bytes::copy_from_slice(text.as_bytes()))
    }
}

impl TryFrom<String> for TopicFilter {
    type Error = Error;
    fn try_from(text: String) -> Result<Self, Error> {
        Self::from_bytes(Bytes::from(text))
    }
}

impl TryFrom<MqttString> for TopicFilter {
    type Error = Error;
    fn try_from(text: MqttString) -> Result<Self, Error> {
        let filter_start = validate(text.as_str())?;
        Ok(Self { text, filter_start })
    }
}

impl From<TopicFilter> for MqttString {
    fn from(filter: TopicFilter) -> MqttString {
        filter.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<(), Error>) {
        assert_eq!(
            TopicFilter::try_from(text).map(|_| ()),
            expected,
            "filter {text:?}"
        );
    }

    /// MQTT-4.7.1-2 (3.1.1) / MQTT-4.7.1-1 (5.0): `#` alone or after a separator, and only last.
    #[test]
    fn mqtt_4_7_1_2_multi_level_wildcard_placement() {
        for ok in ["#", "sport/#", "sport/tennis/#", "/#", "+/#"] {
            check(ok, Ok(()));
        }
        check(
            "sport/tennis#",
            Err(Error::InvalidWildcard {
                offset: 12,
                wildcard: '#',
            }),
        );
        check(
            "sport/tennis/#/ranking",
            Err(Error::InvalidWildcard {
                offset: 13,
                wildcard: '#',
            }),
        );
        check(
            "#/",
            Err(Error::InvalidWildcard {
                offset: 0,
                wildcard: '#',
            }),
        );
        check(
            "##",
            Err(Error::InvalidWildcard {
                offset: 0,
                wildcard: '#',
            }),
        );
    }

    /// MQTT-4.7.1-3 (3.1.1) / MQTT-4.7.1-2 (5.0): `+` must occupy an entire level.
    #[test]
    fn mqtt_4_7_1_3_single_level_wildcard_placement() {
        for ok in ["+", "+/tennis/#", "sport/+/player1", "/+", "+/+", "a/+/"] {
            check(ok, Ok(()));
        }
        check(
            "sport+",
            Err(Error::InvalidWildcard {
                offset: 5,
                wildcard: '+',
            }),
        );
        check(
            "sport/+x",
            Err(Error::InvalidWildcard {
                offset: 6,
                wildcard: '+',
            }),
        );
        check(
            "a/b+/c",
            Err(Error::InvalidWildcard {
                offset: 3,
                wildcard: '+',
            }),
        );
    }

    /// MQTT-4.7.3-1: at least one character.
    #[test]
    fn mqtt_4_7_3_1_rejects_empty_filter() {
        check("", Err(Error::Empty));
    }

    /// MQTT 5.0 section 4.8.2: `$share/{ShareName}/{filter}`.
    #[test]
    fn shared_subscriptions_are_parsed_and_checked() {
        let f = TopicFilter::try_from("$share/consumer1/sport/tennis/+").unwrap();
        assert!(f.is_shared());
        assert_eq!(f.share_name(), Some("consumer1"));
        assert_eq!(f.filter(), "sport/tennis/+");
        assert_eq!(f.levels().count(), 3);
        assert!(f.has_wildcards());

        let g = TopicFilter::try_from("$share/g/#").unwrap();
        assert_eq!((g.share_name(), g.filter()), (Some("g"), "#"));

        check("$share/", Err(Error::EmptyShareName));
        check("$share/group", Err(Error::InvalidShareName));
        check("$share//sport", Err(Error::EmptyShareName));
        check("$share/gr+oup/sport", Err(Error::InvalidShareName));
        check("$share/gr#/sport", Err(Error::InvalidShareName));
        check("$share/group/", Err(Error::EmptySharedFilter));
        check(
            "$share/group/sp+",
            Err(Error::InvalidWildcard {
                offset: 15,
                wildcard: '+',
            }),
        );
        // Not a share prefix: ordinary filters.
        let plain = TopicFilter::try_from("$share").unwrap();
        assert!(!plain.is_shared());
        assert_eq!(plain.filter(), "$share");
        assert!(!TopicFilter::try_from("$SHARE/a/b").unwrap().is_shared());
    }

    /// MQTT 3.x: `$share/` forms that are not shared subscriptions are plain filters.
    #[test]
    fn v3_share_prefix_falls_back_to_a_plain_filter() {
        let v3 = |t: &'static str| TopicFilter::from_bytes_v3(Bytes::from_static(t.as_bytes()));
        for plain in [
            "$share/#",
            "$share//x",
            "$share/+/x",
            "$share/g",
            "$share/g/",
        ] {
            let f = v3(plain).unwrap();
            assert!(!f.is_shared(), "{plain}");
            assert_eq!(f.filter(), plain);
        }
        assert_eq!(v3("$share/g/a/#").unwrap().share_name(), Some("g"));
        assert!(matches!(
            v3("$share/a+/x"),
            Err(Error::InvalidWildcard { .. })
        ));
        assert!(TopicFilter::try_from("$share/#").is_err());
    }

    proptest::proptest! {
        /// The one-pass fast path only ever accepts what the full checks accept, as a plain
        /// (not shared) filter.
        #[test]
        fn fast_path_agrees_with_the_full_checks(text in "(\\$share/)?[ab/+#\u{0}é]{0,10}") {
            let bytes = Bytes::from(text);
            let full = MqttString::from_bytes(bytes.clone()).and_then(|t| validate(t.as_str()));
            if is_plain_ascii_filter(&bytes) {
                proptest::prop_assert_eq!(full, Ok(0));
            }
            let fast = TopicFilter::from_bytes(bytes);
            proptest::prop_assert_eq!(fast.as_ref().map(|f| f.filter_start).ok(), full.ok());
        }
    }

    #[test]
    fn plain_filter_accessors() {
        let f = TopicFilter::try_from("sport/tennis").unwrap();
        assert_eq!(f.share_name(), None);
        assert_eq!(f.filter(), "sport/tennis");
        assert!(!f.has_wildcards());
    }
}
