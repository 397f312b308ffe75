use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;
use crate::manifest::Role;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// One example of every statement type (the vector set uses these).
pub(crate) fn examples() -> Vec<(&'static str, Statement)> {
    let w = [0x11u8; 32];
    vec![
        (
            "participant_key",
            Statement::ParticipantKey(ParticipantKey {
                name: "custodian-1.example".into(),
                role: Role::Custodian,
                purpose: KeyPurpose::Hpke,
                public_key: vec![0xAB; 32],
                valid_from: 1_795_000_000,
            }),
        ),
        (
            "escrow_day_key",
            Statement::EscrowDayKey(EscrowDayKey {
                day: 20_783,
                threshold: 3,
                custodians: 5,
                day_key: vec![0x42; 576],
            }),
        ),
        (
            "warrant_commitment",
            Statement::WarrantCommitment(WarrantCommitment {
                commitment: warrant_commitment(&[9u8; 32], b"warrant"),
                court: "court.example".into(),
                authority: "police.example".into(),
                issued_at: 1_795_000_000,
                embargo_until: 1_800_000_000,
                targets: 1,
                days: 2,
                court_signature: vec![0x5A; 64],
            }),
        ),
        (
            "key_release",
            Statement::KeyRelease(KeyRelease {
                warrant: w,
                custodian: "custodian-1.example".into(),
                conversation_days: 2,
                request_hash: [0x22; 32],
                released_at: 1_795_000_100,
            }),
        ),
        (
            "interception",
            Statement::Interception(Interception {
                warrant: w,
                provider: "provider.example".into(),
                conversations: 1,
                first_day: 20_783,
                last_day: 20_784,
                started_at: 1_795_000_200,
                recovery: vec![0x5C; 40],
            }),
        ),
        (
            "warrant_unsealing",
            Statement::WarrantUnsealing(WarrantUnsealing {
                warrant: warrant_commitment(&[9u8; 32], b"warrant"),
                salt: [9u8; 32],
                warrant_bytes: b"warrant".to_vec(),
                unsealed_at: 1_800_000_000,
            }),
        ),
        (
            "embargo_extension",
            Statement::EmbargoExtension(EmbargoExtension {
                warrant: w,
                court: "court.example".into(),
                embargo_until: 1_810_000_000,
                issued_at: 1_799_000_000,
            }),
        ),
        (
            "day_key_erasure",
            Statement::DayKeyErasure(DayKeyErasure {
                day: 20_783,
                custodian: "custodian-1.example".into(),
                erased_at: 1_795_800_000,
            }),
        ),
        (
            "provider_franking_key",
            Statement::ProviderFrankingKey(ProviderFrankingKey {
                provider: "provider.example".into(),
                public_key: [0x33; 32],
                valid_from: 1_795_000_000,
            }),
        ),
        (
            "warrant_revocation",
            Statement::WarrantRevocation(WarrantRevocation {
                warrant: warrant_commitment(&[9u8; 32], b"warrant"),
                court: "court.example".into(),
                revoked_at: 1_795_200_000,
            }),
        ),
        (
            "manifest_publication",
            Statement::ManifestPublication(ManifestPublication {
                log: "log.example".into(),
                manifest_hash: [0x44; 32],
            }),
        ),
        (
            "key_directory_epoch",
            Statement::KeyDirectoryEpoch(KeyDirectoryEpoch {
                provider: "provider.example".into(),
                epoch: 42,
                root_hash: [0x55; 32],
                changes: 3,
                published_at: 1_790_000_000,
            }),
        ),
        (
            "hash_list_root",
            Statement::HashListRoot(crate::statement::HashListRoot {
                provider: "provider.example".into(),
                root: [0x55; 32],
                list_size: 1_000,
                slots: 4,
                sample_bits: 40,
                org_a: [0x66; 32],
                org_b: [0x77; 32],
                published_at: 1_795_300_000,
            }),
        ),
        (
            "matching_policy",
            Statement::MatchingPolicy(crate::statement::MatchingPolicy {
                provider: "provider.example".into(),
                enabled: true,
                threshold: 10,
                synthetic_rate_ppm: 20_000,
                table_root: [0x55; 32],
            }),
        ),
        (
            "matching_cases",
            Statement::MatchingCases(crate::statement::MatchingCases {
                provider: "provider.example".into(),
                table_root: [0x55; 32],
                as_of: 1_795_400_000,
                accounts_matched: 2,
                cases_opened: 3,
                cases_confirmed: 1,
                cases_dismissed: 1,
            }),
        ),
    ]
}

#[test]
fn matching_cases_refuses_more_decided_than_opened() {
    let st = |confirmed, dismissed| {
        Statement::MatchingCases(crate::statement::MatchingCases {
            provider: "p".into(),
            table_root: [1; 32],
            as_of: 7,
            accounts_matched: 1,
            cases_opened: 2,
            cases_confirmed: confirmed,
            cases_dismissed: dismissed,
        })
    };
    let ok = st(1, 1).encode().unwrap();
    assert_eq!(Statement::decode(&ok).unwrap(), st(1, 1));
    assert!(st(2, 1).encode().is_err());
    assert!(st(u32::MAX, u32::MAX).encode().is_err());
    // The same bytes with dismissed = 2 (the last field) are refused.
    let mut bad = ok.clone();
    let last = bad.len() - 1;
    bad[last] = 2;
    assert!(matches!(
        Statement::decode(&bad),
        Err(WireError::InvalidValue {
            field: "cases_dismissed",
            ..
        })
    ));
}

#[test]
fn matching_policy_refuses_a_bad_flag_and_rate() {
    let st = Statement::MatchingPolicy(crate::statement::MatchingPolicy {
        provider: "p".into(),
        enabled: true,
        threshold: 10,
        synthetic_rate_ppm: 5,
        table_root: [1; 32],
    });
    let mut bytes = st.encode().unwrap();
    // version, type, name length, "p", then the flag.
    bytes[4] = 2;
    assert!(Statement::decode(&bytes).is_err());
    let too_high = Statement::MatchingPolicy(crate::statement::MatchingPolicy {
        provider: "p".into(),
        enabled: false,
        threshold: 10,
        synthetic_rate_ppm: 1_000_001,
        table_root: [1; 32],
    });
    assert!(too_high.encode().is_err());
}

#[test]
fn every_type_round_trips_and_verifies() {
    for (name, st) in examples() {
        let signed = SignedStatement::sign(&st, &key()).unwrap();
        let bytes = signed.encode().unwrap();
        let back = SignedStatement::decode(&bytes).unwrap();
        assert_eq!(back, signed, "{name}");
        assert_eq!(back.encode().unwrap(), bytes, "{name}");
        assert_eq!(back.verify().unwrap(), st, "{name}");
        assert_eq!(st.kind().name(), name);
    }
}

#[test]
fn unsealing_opens_its_commitment() {
    for (_, st) in examples() {
        if let Statement::WarrantUnsealing(u) = st {
            assert!(u.opens_commitment());
            let mut bad = u.clone();
            bad.warrant_bytes.push(0);
            assert!(!bad.opens_commitment());
        }
    }
}

#[test]
fn forged_signature_and_swapped_author_are_refused() {
    let (_, st) = examples().remove(0);
    let signed = SignedStatement::sign(&st, &key()).unwrap();
    let mut sig = *signed.signature();
    sig[0] ^= 1;
    let forged = SignedStatement::from_parts(*signed.author(), signed.statement.clone(), sig);
    assert_eq!(forged.verify(), Err(StatementError::BadSignature));
    let other = SigningKey::from_bytes(&[8u8; 32])
        .verifying_key()
        .to_bytes();
    let swapped = SignedStatement::from_parts(other, signed.statement.clone(), *signed.signature());
    assert_eq!(swapped.verify(), Err(StatementError::BadSignature));
}

#[test]
fn non_canonical_inputs_are_refused() {
    let (_, st) = examples().remove(0);
    let bytes = st.encode().unwrap();
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        Statement::decode(&trailing),
        Err(WireError::TrailingBytes { count: 1 })
    ));
    let mut version = bytes.clone();
    version[0] = 2;
    assert!(matches!(
        Statement::decode(&version),
        Err(WireError::UnsupportedVersion { version: 2, .. })
    ));
    let mut tag = bytes.clone();
    tag[1] = 0;
    assert!(matches!(
        Statement::decode(&tag),
        Err(WireError::InvalidValue { field: "type", .. })
    ));
    for cut in 0..bytes.len() {
        assert!(Statement::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(Statement::decode(&vec![1u8; MAX_STATEMENT_LEN + 1]).is_err());
    let empty_name = Statement::DayKeyErasure(DayKeyErasure {
        day: 1,
        custodian: String::new(),
        erased_at: 0,
    });
    assert!(empty_name.encode().is_err());
}

/// The vector harness: every file in `vectors/statements/` is one case in
/// the one vector format (`custos-vectors`). A file named `*.valid.vector`
/// holds in `bytes` a signed statement that must decode, verify and
/// re-encode byte for byte; `*.invalid.vector` must be refused, and its
/// `error` field names the expected error's start.
#[test]
fn vectors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/statements");
    if std::env::var_os("CUSTOS_REGEN_VECTORS").is_some() {
        regenerate(&dir);
    }
    let mut count = 0;
    for v in custos_vectors::read_dir(&dir).unwrap() {
        let name = &v.name;
        let bytes = v.hex("bytes").unwrap();
        let result = SignedStatement::decode(&bytes)
            .map_err(StatementError::from)
            .and_then(|s| s.verify().map(|st| (s, st)));
        if name.ends_with(".valid.vector") {
            let (signed, _) = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(signed.encode().unwrap(), bytes, "{name}");
        } else if name.ends_with(".invalid.vector") {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("{name} was accepted"));
            let want = v.field("error").unwrap();
            assert!(err.to_string().starts_with(want), "{name}: got {err}");
        } else {
            panic!("{name}: neither .valid nor .invalid");
        }
        count += 1;
    }
    assert!(count >= 12, "only {count} vectors found");
}

fn regenerate(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let write = |file: &str, comment: &str, bytes: &[u8]| {
        let (comment, error) = match comment.split_once("\n# error: ") {
            Some((c, e)) => (c, Some(e)),
            None => (comment, None),
        };
        let mut v = custos_vectors::Vector::new(file, comment).with_hex("bytes", bytes);
        if let Some(e) = error {
            v = v.with("error", e);
        }
        custos_vectors::write(dir, &v).unwrap();
    };
    let mut first = None;
    for (name, st) in examples() {
        let bytes = SignedStatement::sign(&st, &key())
            .unwrap()
            .encode()
            .unwrap();
        write(
            &format!("{:02}-{name}.valid.vector", st.kind().tag()),
            &format!("{name}, signed by the Ed25519 key with seed 07 x 32"),
            &bytes,
        );
        first.get_or_insert(bytes);
    }
    let good = first.unwrap();
    let mut forged = good.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x01;
    write(
        "50-forged-signature.invalid.vector",
        "participant_key with one signature bit flipped\n# error: author signature does not verify",
        &forged,
    );
    write(
        "51-truncated.invalid.vector",
        "participant_key cut inside the signature\n# error: malformed statement: input ends inside field `signature`",
        &good[..good.len() - 10],
    );
    let mut trailing = good.clone();
    trailing.push(0);
    write(
        "52-trailing-byte.invalid.vector",
        "participant_key followed by one extra byte\n# error: malformed statement: 1 unexpected bytes",
        &trailing,
    );
    let mut version = good.clone();
    version[0] = 2;
    write(
        "53-unknown-version.invalid.vector",
        "signed statement version 2\n# error: malformed statement: unsupported signed statement version 2",
        &version,
    );
    let mut inner_version = good.clone();
    inner_version[35] = 9;
    write(
        "54-unknown-inner-version.invalid.vector",
        "statement version 9 inside a valid wrapper\n# error: malformed statement: unsupported statement version 9",
        &inner_version,
    );
    let mut tag = good.clone();
    tag[36] = 0xEE;
    write(
        "55-unknown-type.invalid.vector",
        "statement type 0xEE\n# error: malformed statement: field `type` has an invalid value",
        &tag,
    );
    let epoch_zero = Statement::KeyDirectoryEpoch(KeyDirectoryEpoch {
        provider: "provider.example".into(),
        epoch: 0,
        root_hash: [0x55; 32],
        changes: 0,
        published_at: 1_790_000_000,
    });
    write(
        "56-key-directory-epoch-zero.invalid.vector",
        "key_directory_epoch for epoch 0 (the first published epoch is 1)\n# error: malformed statement: field `epoch` has an invalid value",
        &SignedStatement::sign(&epoch_zero, &key())
            .unwrap()
            .encode()
            .unwrap(),
    );
    // matching_cases with one more case decided than opened: the statement
    // bytes are patched, then signed as they are.
    let cases = Statement::MatchingCases(crate::statement::MatchingCases {
        provider: "provider.example".into(),
        table_root: [0x55; 32],
        as_of: 1_795_400_000,
        accounts_matched: 2,
        cases_opened: 3,
        cases_confirmed: 2,
        cases_dismissed: 1,
    });
    let mut inner = cases.encode().unwrap();
    let last = inner.len() - 1;
    inner[last] = 2;
    let signature = {
        use ed25519_dalek::Signer as _;
        key().sign(&signing_message(&inner)).to_bytes()
    };
    write(
        "57-matching-cases-more-decided-than-opened.invalid.vector",
        "matching_cases with 2 confirmed and 2 dismissed of 3 opened\n# error: malformed statement: field `cases_dismissed` has an invalid value",
        &SignedStatement::from_parts(key().verifying_key().to_bytes(), inner, signature)
            .encode()
            .unwrap(),
    );
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,40}"
}

fn arb_statement() -> impl Strategy<Value = Statement> {
    prop_oneof![
        (
            arb_name(),
            proptest::collection::vec(any::<u8>(), 0..100),
            any::<u64>()
        )
            .prop_map(|(name, public_key, valid_from)| {
                Statement::ParticipantKey(ParticipantKey {
                    name,
                    role: Role::Court,
                    purpose: KeyPurpose::Signing,
                    public_key,
                    valid_from,
                })
            }),
        (
            any::<u32>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..600)
        )
            .prop_map(|(day, threshold, day_key)| {
                Statement::EscrowDayKey(EscrowDayKey {
                    day,
                    threshold,
                    custodians: 5,
                    day_key,
                })
            }),
        (
            any::<[u8; 32]>(),
            arb_name(),
            arb_name(),
            any::<(u64, u64, u16, u16)>()
        )
            .prop_map(|(commitment, court, authority, (a, b, t, d))| {
                Statement::WarrantCommitment(WarrantCommitment {
                    commitment,
                    court,
                    authority,
                    issued_at: a,
                    embargo_until: b,
                    targets: t,
                    days: d,
                    court_signature: vec![1; 64],
                })
            }),
        (any::<[u8; 32]>(), arb_name(), any::<(u16, u64)>()).prop_map(
            |(warrant, custodian, (n, t))| {
                Statement::KeyRelease(KeyRelease {
                    warrant,
                    custodian,
                    conversation_days: n,
                    request_hash: warrant,
                    released_at: t,
                })
            }
        ),
        (any::<u32>(), arb_name(), any::<u64>()).prop_map(|(day, custodian, erased_at)| {
            Statement::DayKeyErasure(DayKeyErasure {
                day,
                custodian,
                erased_at,
            })
        }),
        (arb_name(), any::<[u8; 32]>()).prop_map(|(log, manifest_hash)| {
            Statement::ManifestPublication(ManifestPublication { log, manifest_hash })
        }),
        (
            arb_name(),
            1..u64::MAX,
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u64>()
        )
            .prop_map(|(provider, epoch, root_hash, changes, published_at)| {
                Statement::KeyDirectoryEpoch(KeyDirectoryEpoch {
                    provider,
                    epoch,
                    root_hash,
                    changes,
                    published_at,
                })
            }),
    ]
}

proptest! {
    #[test]
    fn prop_round_trip(st in arb_statement()) {
        let signed = SignedStatement::sign(&st, &key()).unwrap();
        let bytes = signed.encode().unwrap();
        let back = SignedStatement::decode(&bytes).unwrap();
        prop_assert_eq!(back.encode().unwrap(), bytes);
        prop_assert_eq!(back.verify().unwrap(), st);
    }

    #[test]
    fn prop_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(s) = SignedStatement::decode(&bytes) {
            prop_assert_eq!(&s.encode().unwrap(), &bytes);
        }
        if let Ok(s) = Statement::decode(&bytes) {
            prop_assert_eq!(&s.encode().unwrap(), &bytes);
        }
    }
}
