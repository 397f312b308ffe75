//! The signed-size record: the largest tree size the log has ever signed,
//! and its root, kept beside the log's key, outside the data directory.
//!
//! # Security meaning
//! A log that signs a size smaller than one it signed before has shrunk or
//! forked its public history. The log writes this record (durably) before a
//! checkpoint of a new size can be committed, and refuses to start from data
//! that is behind it (see [`crate::storage`]). Keeping it beside the key means
//! that restoring an old copy of the data directory, or deleting its
//! checkpoint, cannot roll it back; whoever can roll back the key directory
//! can also sign anything.
//!
//! # Format (version 1, canonical, text)
//! ```text
//! custos/v1/log-signed-size
//! <origin>
//! <size, decimal, no leading zeros>
//! <root, 64 lower-case hex digits>
//! ```
//! Each line ends with `\n`. Anything else, or a non-canonical encoding, is
//! refused.

use crate::merkle::Hash;

/// First line of the record: format and version.
pub const SIGNED_SIZE_LABEL: &str = "custos/v1/log-signed-size";

/// Longest record accepted (origin names are short).
const MAX_RECORD_LEN: usize = 1024;

/// The largest size the log has signed, with its root.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedSize {
    /// Tree size.
    pub size: u64,
    /// Root hash of the tree of that size.
    pub root: Hash,
}

/// Why a signed-size record was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignedSizeError {
    /// Not a canonical version-1 record.
    #[error(
        "signed-size record is malformed; it is written only by the log, restore it from the key's backup"
    )]
    Malformed,
    /// The record belongs to another log.
    #[error("signed-size record is for log {0}")]
    OtherLog(String),
}

impl SignedSize {
    /// The canonical encoding of this record for `origin`.
    pub fn encode(&self, origin: &str) -> Vec<u8> {
        format!(
            "{SIGNED_SIZE_LABEL}\n{origin}\n{}\n{}\n",
            self.size,
            hex::encode(self.root.0)
        )
        .into_bytes()
    }

    /// Parses a record, which must be canonical and name `origin`.
    pub fn decode(bytes: &[u8], origin: &str) -> Result<Self, SignedSizeError> {
        if bytes.len() > MAX_RECORD_LEN {
            return Err(SignedSizeError::Malformed);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| SignedSizeError::Malformed)?;
        let mut lines = text.split('\n');
        let (Some(label), Some(name), Some(size), Some(root), Some(""), None) = (
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
            lines.next(),
        ) else {
            return Err(SignedSizeError::Malformed);
        };
        if label != SIGNED_SIZE_LABEL {
            return Err(SignedSizeError::Malformed);
        }
        let size: u64 = size.parse().map_err(|_| SignedSizeError::Malformed)?;
        let root: [u8; 32] = hex::decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(SignedSizeError::Malformed)?;
        let record = Self {
            size,
            root: Hash(root),
        };
        if record.encode(name) != bytes {
            return Err(SignedSizeError::Malformed);
        }
        if name != origin {
            return Err(SignedSizeError::OtherLog(name.to_owned()));
        }
        Ok(record)
    }
}

/// The conventional path of the signed-size record of the key file `key`:
/// the key's file name with `.signed-size` appended, in the same directory.
pub fn signed_size_path(key: &std::path::Path) -> std::path::PathBuf {
    let mut name = key.file_name().unwrap_or_default().to_os_string();
    name.push(".signed-size");
    key.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_canonical_only() {
        let r = SignedSize {
            size: 42,
            root: Hash([0xab; 32]),
        };
        let bytes = r.encode("log.test");
        assert_eq!(SignedSize::decode(&bytes, "log.test").unwrap(), r);
        assert!(matches!(
            SignedSize::decode(&bytes, "log.other"),
            Err(SignedSizeError::OtherLog(_))
        ));
        let text = String::from_utf8(bytes).unwrap();
        for bad in [
            text.replace("\n42\n", "\n042\n"),
            text.replace("ab", "AB"),
            text.trim_end().to_owned(),
            format!("{text}\n"),
            text.replace("custos/v1", "custos/v2"),
        ] {
            assert!(
                SignedSize::decode(bad.as_bytes(), "log.test").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn path_is_beside_the_key() {
        let p = signed_size_path(std::path::Path::new("/keys/log.key"));
        assert_eq!(p, std::path::Path::new("/keys/log.key.signed-size"));
    }
}
