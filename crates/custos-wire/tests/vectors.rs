//! Runs every vector under `vectors/`: each names its format and expected
//! outcome. An `ok` vector must decode and re-encode byte for byte; any other
//! must be refused with the named `WireError` variant.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use std::path::Path;

use custos_wire::WireError;
use custos_wire::announcement::{ChainAnnouncement, ChainRoot};
use custos_wire::envelope::Envelope;
use custos_wire::frames::{ClientFrame, ServerFrame, decode_delivery_batch, encode_delivery_batch};
use custos_wire::payload::Payload;

/// Decodes with the named format's decoder and re-encodes.
fn round_trip(format: &str, bytes: &[u8]) -> Result<Vec<u8>, WireError> {
    Ok(match format {
        "envelope" => Envelope::decode(bytes)?.encode()?,
        "announcement" => ChainAnnouncement::decode(bytes)?.encode()?,
        "chain_root" => ChainRoot::decode(bytes)?.encode().to_vec(),
        "payload" => Payload::decode(bytes)?.encode()?.to_vec(),
        "client_frame" => ClientFrame::decode(bytes)?.encode()?,
        "server_frame" => ServerFrame::decode(bytes)?.encode()?,
        "delivery_batch" => encode_delivery_batch(&decode_delivery_batch(bytes)?)?,
        other => panic!("unknown format {other}"),
    })
}

fn variant(e: &WireError) -> String {
    let dbg = format!("{e:?}");
    dbg.split([' ', '{', '(']).next().unwrap().to_owned()
}

#[test]
fn every_vector_has_its_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "vectors missing: {}", files.len());
    let mut formats = std::collections::BTreeSet::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut format = None;
        let mut expect = None;
        let mut hex = String::new();
        for line in text.lines() {
            if let Some(v) = line.strip_prefix("# format: ") {
                format = Some(v.trim().to_owned());
            } else if let Some(v) = line.strip_prefix("# expect: ") {
                expect = Some(v.trim().to_owned());
            } else if !line.starts_with('#') {
                hex.extend(line.chars().filter(|c| !c.is_whitespace()));
            }
        }
        let (format, expect) = (format.expect("format line"), expect.expect("expect line"));
        let bytes = hex::decode(&hex).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        match (expect.as_str(), round_trip(&format, &bytes)) {
            ("ok", Ok(again)) => assert_eq!(again, bytes, "{name}: re-encoding differs"),
            ("ok", Err(e)) => panic!("{name}: expected ok, got {e}"),
            (want, Ok(_)) => panic!("{name}: expected {want}, but it decoded"),
            (want, Err(e)) => assert_eq!(variant(&e), want, "{name}: {e}"),
        }
        formats.insert(format);
    }
    let want: std::collections::BTreeSet<String> = [
        "envelope",
        "announcement",
        "chain_root",
        "payload",
        "client_frame",
        "server_frame",
        "delivery_batch",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(formats, want, "every format has vectors");
}
