#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{
    DayKeyErasure, EmbargoExtension, EscrowDayKey, KeyRelease, Statement, WarrantCommitment,
};

use super::{FigureOptions, Figures};

fn manifest() -> Manifest {
    let p = |name: &str, role, seed: u8| Participant {
        name: name.into(),
        role,
        jurisdiction: "EU".into(),
        endpoint: None,
        public_key: hex::encode(
            ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        ),
    };
    Manifest::new(
        1,
        2,
        Policy::default(),
        vec![
            p("log.test", Role::Log, 1),
            p("witness.test", Role::Witness, 2),
            p("court.test", Role::Court, 3),
            p("police.test", Role::Authority, 4),
            p("c0", Role::Custodian, 5),
            p("c1", Role::Custodian, 6),
            p("c2", Role::Custodian, 7),
            p("provider.test", Role::Provider, 8),
            p("other.test", Role::Provider, 9),
        ],
    )
    .unwrap()
}

fn commitment(byte: u8) -> WarrantCommitment {
    WarrantCommitment {
        commitment: [byte; 32],
        court: "court.test".into(),
        authority: "police.test".into(),
        issued_at: 1_000 * 86_400,
        embargo_until: 1_010 * 86_400,
        targets: 1,
        days: 1,
        court_signature: vec![0; 64],
    }
}

#[test]
fn authors_must_be_who_they_say_and_extensions_move_the_deadline() {
    let m = manifest();
    let who = |name: &str| m.participant(name).unwrap().clone();
    let mut f = Figures::new(&m, FigureOptions::default());
    f.add(
        0,
        &who("police.test"),
        &Statement::WarrantCommitment(commitment(1)),
    );
    // A custodian releasing in another's name is refused and not counted.
    let release = |custodian: &str| {
        Statement::KeyRelease(KeyRelease {
            warrant: [1; 32],
            custodian: custodian.into(),
            conversation_days: 1,
            request_hash: [0; 32],
            released_at: 1_000 * 86_400,
        })
    };
    f.add(1, &who("c0"), &release("c1"));
    f.add(2, &who("c0"), &release("c0"));
    // Extended to day 1_020: not overdue on day 1_015.
    let ext = Statement::EmbargoExtension(EmbargoExtension {
        warrant: [1; 32],
        court: "court.test".into(),
        embargo_until: 1_020 * 86_400,
        issued_at: 1_005 * 86_400,
    });
    f.add(3, &who("court.test"), &ext);
    // One issued at the very end of the (extended) embargo comes too late.
    let late = Statement::EmbargoExtension(EmbargoExtension {
        warrant: [1; 32],
        court: "court.test".into(),
        embargo_until: 1_030 * 86_400,
        issued_at: 1_020 * 86_400,
    });
    f.add(20, &who("court.test"), &late);
    // A day key held by all three custodians, erased by two of them.
    for (i, c) in ["c0", "c1", "c2"].iter().enumerate() {
        let st = Statement::EscrowDayKey(EscrowDayKey {
            day: 1_000,
            threshold: 2,
            custodians: 3,
            day_key: vec![7; 10],
        });
        f.add(4 + i as u64, &who(c), &st);
    }
    for (i, c) in ["c0", "c1"].iter().enumerate() {
        let st = Statement::DayKeyErasure(DayKeyErasure {
            day: 1_000,
            custodian: (*c).into(),
            erased_at: 1_001 * 86_400,
        });
        f.add(7 + i as u64, &who(c), &st);
    }
    let out = f.finish(1_015 * 86_400);
    assert_eq!(out.totals.releases, 1);
    assert_eq!(out.totals.embargo_extensions, 1);
    assert_eq!(out.flags.refused_statements.len(), 2);
    assert_eq!(out.flags.refused_statements[0].index, 1);
    assert_eq!(out.flags.refused_statements[1].index, 20);
    assert_eq!(
        out.flags.refused_statements[1].reason,
        "issued after the embargo ended"
    );
    assert!(out.flags.overdue_unsealings.is_empty());
    // One holder left of three, below t = 2: flagged, but not openable.
    assert_eq!(out.flags.missing_erasures.len(), 1);
    let m0 = &out.flags.missing_erasures[0];
    assert_eq!(m0.not_erased_by, vec!["c2".to_owned()]);
    assert!(!m0.still_openable);
    assert_eq!(out.custodians["c2"].day_keys_generated, 1);
    assert_eq!(out.custodians["c2"].day_keys_erased, 0);
}

#[test]
fn matching_figures_are_the_providers_latest_and_never_go_down() {
    use custos_wire::statement::MatchingCases;
    let m = manifest();
    let who = |name: &str| m.participant(name).unwrap().clone();
    let cases = |provider: &str, as_of, opened, confirmed, dismissed| {
        Statement::MatchingCases(MatchingCases {
            provider: provider.into(),
            table_root: [5; 32],
            as_of,
            accounts_matched: opened,
            cases_opened: opened,
            cases_confirmed: confirmed,
            cases_dismissed: dismissed,
        })
    };
    let mut f = Figures::new(&m, FigureOptions::default());
    let provider = who("provider.test");
    f.add(0, &provider, &cases("provider.test", 100, 1, 0, 0));
    f.add(1, &provider, &cases("provider.test", 200, 3, 1, 1));
    // Refused: in another provider's name, earlier, a figure down.
    f.add(2, &who("other.test"), &cases("provider.test", 300, 9, 0, 0));
    f.add(3, &provider, &cases("provider.test", 199, 4, 1, 1));
    f.add(4, &provider, &cases("provider.test", 400, 3, 0, 1));
    let figures = f.finish(1_000);
    let got = &figures.matching["provider.test"];
    assert_eq!(got.statements, 2);
    assert_eq!(got.as_of, 200);
    assert_eq!(
        (got.accounts_matched, got.cases_opened, got.cases_confirmed),
        (3, 3, 1)
    );
    assert_eq!((got.cases_dismissed, got.cases_pending), (1, 1));
    let refused: Vec<u64> = figures
        .flags
        .refused_statements
        .iter()
        .map(|r| r.index)
        .collect();
    assert_eq!(refused, [2, 3, 4]);
    assert!(
        figures.flags.refused_statements[2]
            .reason
            .contains("went down")
    );
}
