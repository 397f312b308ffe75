//! The one error type of every decoder in this crate.

/// Why bytes could not be decoded (or a value could not be encoded).
///
/// A decoder returns this for any malformed, non-canonical or out-of-bounds
/// input; none of them panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended inside a field.
    #[error("input ends inside field `{field}`")]
    Truncated {
        /// Field being read.
        field: &'static str,
    },
    /// A length-prefixed field is longer than its bound.
    #[error("field `{field}` is longer than its limit of {max} bytes")]
    TooLong {
        /// Field being read or written.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Bytes were left after a complete value.
    #[error("{count} unexpected bytes after the end of the value")]
    TrailingBytes {
        /// Number of trailing bytes.
        count: usize,
    },
    /// The format version is not one this build understands.
    #[error("unsupported {format} version {version}; this build reads version {supported}")]
    UnsupportedVersion {
        /// Which format.
        format: &'static str,
        /// Version found.
        version: u8,
        /// Version supported.
        supported: u8,
    },
    /// A field holds a value outside its allowed set.
    #[error("field `{field}` has an invalid value: {reason}")]
    InvalidValue {
        /// Field being read.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A text field is not UTF-8.
    #[error("field `{field}` is not valid UTF-8")]
    InvalidUtf8 {
        /// Field being read.
        field: &'static str,
    },
}
