//! The one test-vector file format of Custos, shared by every crate's vector
//! tests (`crates/*/vectors/**.vector`, `crates/*/tests/vectors/**.vector`).
//!
//! A vector file is UTF-8 text:
//! - lines starting with `#` are comments: together they describe the case;
//! - every other non-empty line is `key = value`; keys are unique; binary
//!   values are lower-case hex on one line;
//! - by convention `expect` names the outcome (`ok`, or the refusal) and
//!   `bytes` holds the encoding under test.
//!
//! Each vector directory is checked by one test that reads every file in it;
//! the files are data, never code, so other implementations can use them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File extension of a vector file.
pub const EXTENSION: &str = "vector";

/// Why a vector file cannot be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum VectorError {
    /// The file could not be read.
    Io(PathBuf, std::io::Error),
    /// A line is neither a comment nor `key = value`.
    BadLine(String),
    /// A key appears twice.
    DuplicateKey(String),
    /// A key the test needs is missing.
    MissingKey(String),
    /// A value is not hex.
    NotHex(String),
}

impl std::fmt::Display for VectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "{}: {e}", p.display()),
            Self::BadLine(l) => write!(f, "not a comment or `key = value`: {l}"),
            Self::DuplicateKey(k) => write!(f, "key `{k}` appears twice"),
            Self::MissingKey(k) => write!(f, "key `{k}` is missing"),
            Self::NotHex(k) => write!(f, "the value of `{k}` is not hex"),
        }
    }
}

impl std::error::Error for VectorError {}

/// One vector: its file name, its comment and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vector {
    /// The file name, without the directory.
    pub name: String,
    /// The comment lines, without `# `, joined by newlines.
    pub comment: String,
    fields: BTreeMap<String, String>,
}

impl Vector {
    /// A vector named `name` with `comment` and no fields yet.
    pub fn new(name: &str, comment: &str) -> Self {
        Self {
            name: name.to_owned(),
            comment: comment.to_owned(),
            fields: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) field `key`.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Adds (or replaces) field `key` holding `bytes` in hex.
    pub fn with_hex(self, key: &str, bytes: &[u8]) -> Self {
        self.with(key, hex::encode(bytes))
    }

    /// Parses the text of file `name`.
    pub fn parse(name: &str, text: &str) -> Result<Self, VectorError> {
        let mut v = Self::new(name, "");
        let mut comment = Vec::new();
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if let Some(c) = trimmed.strip_prefix('#') {
                comment.push(c.strip_prefix(' ').unwrap_or(c).to_owned());
                continue;
            }
            let (key, value) = trimmed
                .split_once('=')
                .ok_or_else(|| VectorError::BadLine(line.to_owned()))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(VectorError::BadLine(line.to_owned()));
            }
            if v.fields
                .insert(key.to_owned(), value.trim().to_owned())
                .is_some()
            {
                return Err(VectorError::DuplicateKey(key.to_owned()));
            }
        }
        v.comment = comment.join("\n");
        Ok(v)
    }

    /// The text of the file: the comment, then the fields in key order.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in self.comment.lines() {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push_str(" = ");
            out.push_str(v);
            out.push('\n');
        }
        out
    }

    /// Field `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// Field `key`, which must be present.
    pub fn field(&self, key: &str) -> Result<&str, VectorError> {
        self.get(key)
            .ok_or_else(|| VectorError::MissingKey(key.to_owned()))
    }

    /// Field `key` decoded from hex.
    pub fn hex(&self, key: &str) -> Result<Vec<u8>, VectorError> {
        hex::decode(self.field(key)?).map_err(|_| VectorError::NotHex(key.to_owned()))
    }
}

/// Reads vector file `path`.
pub fn read(path: &Path) -> Result<Vector, VectorError> {
    let text = std::fs::read_to_string(path).map_err(|e| VectorError::Io(path.to_owned(), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Vector::parse(&name, &text)
}

/// Reads every `.vector` file of `dir`, sorted by name.
pub fn read_dir(dir: &Path) -> Result<Vec<Vector>, VectorError> {
    let entries = std::fs::read_dir(dir).map_err(|e| VectorError::Io(dir.to_owned(), e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| VectorError::Io(dir.to_owned(), e))?
            .path();
        if path.extension().is_some_and(|x| x == EXTENSION) {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| read(p)).collect()
}

/// Writes `vector` as `dir/NAME` (its `name`).
pub fn write(dir: &Path, vector: &Vector) -> Result<(), VectorError> {
    let path = dir.join(&vector.name);
    std::fs::write(&path, vector.render()).map_err(|e| VectorError::Io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parse_and_render_round_trip() {
        let text = "# a case\n# on two lines\nbytes = 00ff\nexpect = ok\n";
        let v = Vector::parse("x.vector", text).unwrap();
        assert_eq!(v.comment, "a case\non two lines");
        assert_eq!(v.hex("bytes").unwrap(), [0, 255]);
        assert_eq!(v.field("expect").unwrap(), "ok");
        assert_eq!(v.render(), text);
        assert!(matches!(
            Vector::parse("x", "a = 1\na = 2"),
            Err(VectorError::DuplicateKey(_))
        ));
        assert!(matches!(
            Vector::parse("x", "just words"),
            Err(VectorError::BadLine(_))
        ));
        assert!(matches!(v.hex("expect"), Err(VectorError::NotHex(_))));
        assert!(matches!(v.field("nope"), Err(VectorError::MissingKey(_))));
    }
}
