//! The one error type of this crate.

/// Why a string is not a valid MQTT string, topic name or topic filter.
///
/// Offsets are byte offsets into the rejected input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Longer than the 65,535 bytes a length prefix can express.
    #[error("string of {len} bytes is longer than the 65535 bytes MQTT allows")]
    TooLong {
        /// The length of the rejected input in bytes.
        len: usize,
    },
    /// Not well-formed UTF-8 (this includes encoded surrogates and overlong forms).
    #[error("invalid UTF-8 at byte {valid_up_to}")]
    InvalidUtf8 {
        /// Length of the longest valid prefix.
        valid_up_to: usize,
    },
    /// Contains the null character U+0000.
    #[error("null character U+0000 at byte {offset}")]
    NullCharacter {
        /// Where the null character is.
        offset: usize,
    },
    /// A topic name or topic filter must be at least one character long.
    #[error("empty topic")]
    Empty,
    /// A topic name contains `+` or `#`.
    #[error("wildcard character in a topic name at byte {offset}")]
    WildcardInTopicName {
        /// Where the wildcard is.
        offset: usize,
    },
    /// In a filter, `+` or `#` that is not a whole level, or `#` that is not the last level.
    #[error("misplaced wildcard {wildcard:?} in a topic filter at byte {offset}")]
    InvalidWildcard {
        /// Where the wildcard is.
        offset: usize,
        /// Which one: `+` or `#`.
        wildcard: char,
    },
    /// More levels than the configured maximum.
    #[error("{levels} topic levels, more than the maximum of {max}")]
    TooManyLevels {
        /// How many levels the topic has.
        levels: usize,
        /// The maximum.
        max: usize,
    },
    /// `$share/` followed directly by `/` (or by nothing): the share name is empty.
    #[error("empty share name in a shared subscription")]
    EmptyShareName,
    /// A share name containing `+` or `#`, or not followed by `/`.
    #[error("invalid share name in a shared subscription")]
    InvalidShareName,
    /// `$share/{ShareName}/` not followed by a non-empty topic filter.
    #[error("shared subscription without a topic filter")]
    EmptySharedFilter,
}
