//! The audit's figures against a real log on loopback (two witnesses,
//! quorum 2), with statements signed by the manifest's courts,
//! authorities, custodians and provider, and warrants built with the
//! court's and authority's own functions. The test keeps its own tally of
//! what it did, statement by statement, and the audit must report exactly
//! that; each flag is provoked and checked, on an explicit audit clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failure is a test failure"
)]

use std::collections::BTreeMap;

use custos_authority::court::{WarrantOrder, extend_embargo, revoke, sign_warrant};
use custos_authority::log_and_wait;
use custos_authority::submit::{commitment_statement, submit};
use custos_log_server::LogConfig;
use custos_tlog::{ALG_COSIGNATURE_V1, ALG_ED25519, LogClient, NamedKey, TrustPolicy, Verifier};
use custos_verify::dates::utc_month;
use custos_verify::figures::{
    AuditFigures, Counts, CustodianFigures, FigureOptions, Figures, MissingErasure, Row,
};
use custos_wire::ConversationId;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{
    DayKeyErasure, EscrowDayKey, Interception, KeyRelease, SignedStatement, Statement,
    WarrantUnsealing, warrant_commitment,
};
use custos_wire::warrant::Warrant;
use custos_witness_server::WitnessConfig;
use ed25519_dalek::SigningKey;

const DAY: u64 = 86_400;
const COURT_A: &str = "court-a.test";
const COURT_B: &str = "court-b.test";
const POLICE_X: &str = "police-x.test";
const POLICE_Y: &str = "police-y.test";
const PROVIDER: &str = "provider.test";
const N: usize = 3;
const T: usize = 2;

fn custodian(i: usize) -> String {
    format!("custodian-{i}.test")
}

struct Net {
    _dir: tempfile::TempDir,
    manifest: Manifest,
    log: LogClient,
    verifier: Verifier,
    court_a: SigningKey,
    court_b: SigningKey,
    police_x: SigningKey,
    police_y: SigningKey,
    provider: SigningKey,
    custodians: Vec<SigningKey>,
    _handle: custos_log_server::LogHandle,
}

impl Net {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log_key = NamedKey::from_seed("log.test", ALG_ED25519, &[1; 32]).unwrap();
        let p = |name: &str, role, key: [u8; 32], endpoint: Option<String>| Participant {
            name: name.into(),
            role,
            jurisdiction: "EU".into(),
            endpoint,
            public_key: hex::encode(key),
        };
        let mut ps = vec![p(
            "log.test",
            Role::Log,
            log_key.verifying_key().to_bytes(),
            None,
        )];
        for i in 0..2u8 {
            let name = format!("witness-{i}.test");
            let key = NamedKey::from_seed(&name, ALG_COSIGNATURE_V1, &[10 + i; 32]).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = custos_witness_server::spawn_witness(
                listener,
                WitnessConfig {
                    data: dir.path().join(format!("witness-{i}")),
                    logs: vec![("log.test".into(), log_key.verifying_key())],
                    key: NamedKey::from_seed(&name, ALG_COSIGNATURE_V1, &[10 + i; 32]).unwrap(),
                    clock: custos_clock::system(),
                },
            )
            .await
            .unwrap();
            ps.push(p(
                &name,
                Role::Witness,
                key.verifying_key().to_bytes(),
                Some(format!("http://{addr}")),
            ));
        }
        let key = |seed: u8| SigningKey::from_bytes(&[seed; 32]);
        let (court_a, court_b, police_x, police_y, provider) =
            (key(2), key(3), key(4), key(5), key(6));
        let custodians: Vec<SigningKey> = (0..N).map(|i| key(30 + i as u8)).collect();
        for (name, role, k) in [
            (COURT_A, Role::Court, &court_a),
            (COURT_B, Role::Court, &court_b),
            (POLICE_X, Role::Authority, &police_x),
            (POLICE_Y, Role::Authority, &police_y),
            (PROVIDER, Role::Provider, &provider),
        ] {
            ps.push(p(name, role, k.verifying_key().to_bytes(), None));
        }
        for (i, c) in custodians.iter().enumerate() {
            ps.push(p(
                &custodian(i),
                Role::Custodian,
                c.verifying_key().to_bytes(),
                None,
            ));
        }
        let manifest = Manifest::new(2, T, Policy::default(), ps).unwrap();
        let log_signing = log_key.signing_key().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = custos_log_server::spawn_log(
            listener,
            LogConfig {
                data: dir.path().join("log"),
                signed_size: dir.path().join("log.signed-size"),
                key: log_key,
                manifest: manifest.clone(),
                clock: custos_clock::system(),
                max_batch: 64,
            },
        )
        .await
        .unwrap();
        let log = LogClient::new(&format!("http://{}", handle.addr)).unwrap();
        // The log publishes the manifest; from the first witnessed
        // checkpoint on, every statement waits for its own.
        let policy = TrustPolicy::from_manifest(&manifest).unwrap();
        let sub = log.publish_manifest(&log_signing, &manifest).await.unwrap();
        let mut witnessed = false;
        for _ in 0..800 {
            let note = log.checkpoint().await.unwrap();
            if policy
                .verify_checkpoint(&note)
                .is_ok_and(|cp| cp.size() > sub.index)
            {
                witnessed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(
            witnessed,
            "the witnesses never cosigned the manifest's publication"
        );
        let verifier = Verifier::open(
            TrustPolicy::from_manifest(&manifest).unwrap(),
            &dir.path().join("verifier"),
        )
        .unwrap();
        Self {
            _dir: dir,
            manifest,
            log,
            verifier,
            court_a,
            court_b,
            police_x,
            police_y,
            provider,
            custodians,
            _handle: handle,
        }
    }

    /// Logs `st` signed by `key` and waits for the witnesses; its index.
    async fn log(&mut self, st: Statement, key: &SigningKey) -> u64 {
        let signed = SignedStatement::sign(&st, key).unwrap();
        log_and_wait(&self.log, &mut self.verifier, &signed)
            .await
            .unwrap()
    }

    fn warrant(&self, court: &str, authority: &str, targets: u8, days: (u32, u32)) -> Warrant {
        let issued_at = u64::from(days.0) * DAY;
        sign_warrant(
            WarrantOrder {
                court: court.into(),
                authority: authority.into(),
                authority_hpke_key: [7; 32],
                legal_basis: "s. 100a StPO".into(),
                targets: (1..=targets).map(|t| ConversationId([t; 16])).collect(),
                days,
                issued_at,
                not_after: issued_at + 10 * DAY,
                embargo_until: issued_at + 20 * DAY,
            },
            if court == COURT_A {
                &self.court_a
            } else {
                &self.court_b
            },
        )
        .unwrap()
    }

    /// The audit of the log as it is now, at the audit clock `now`.
    async fn audit(&self, now: u64) -> AuditFigures {
        let mut figures = Figures::new(&self.manifest, FigureOptions::default());
        let mut seen = 0;
        let report = custos_tlog::audit::audit_streaming(
            &self.log,
            &self.manifest,
            &mut figures,
            |done, _| seen = done,
        )
        .await
        .unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(seen, report.tree_size);
        figures.finish(now)
    }
}

/// What the test did, counted as the audit must count it.
#[derive(Default)]
struct Tally {
    totals: Counts,
    by_court: BTreeMap<String, Counts>,
    by_authority: BTreeMap<String, Counts>,
    by_month: BTreeMap<String, Counts>,
    rows: BTreeMap<(String, String, String), Counts>,
    custodians: BTreeMap<String, CustodianFigures>,
}

impl Tally {
    fn did(&mut self, who: Option<(&str, &str)>, time: u64, f: impl Fn(&mut Counts)) {
        let month = utc_month(time);
        f(&mut self.totals);
        f(self.by_month.entry(month.clone()).or_default());
        if let Some((court, authority)) = who {
            f(self.by_court.entry(court.into()).or_default());
            f(self.by_authority.entry(authority.into()).or_default());
            f(self
                .rows
                .entry((court.into(), authority.into(), month))
                .or_default());
        }
    }

    fn custodian(&mut self, i: usize) -> &mut CustodianFigures {
        self.custodians.entry(custodian(i)).or_default()
    }

    fn check(&self, f: &AuditFigures) {
        assert_eq!(f.totals, self.totals);
        assert_eq!(f.by_court, self.by_court);
        assert_eq!(f.by_authority, self.by_authority);
        assert_eq!(f.by_month, self.by_month);
        let rows: Vec<Row> = self
            .rows
            .iter()
            .map(|((court, authority, month), counts)| Row {
                court: court.clone(),
                authority: authority.clone(),
                month: month.clone(),
                counts: counts.clone(),
            })
            .collect();
        assert_eq!(f.rows, rows);
        assert_eq!(f.custodians, self.custodians);
    }
}

fn day_key(day: u32) -> Statement {
    let (key, _) =
        custos_escrow::dangerous::trusted_deal(day, N, T, &mut rand_core::OsRng).unwrap();
    Statement::EscrowDayKey(EscrowDayKey {
        day,
        threshold: T as u8,
        custodians: N as u8,
        day_key: key.to_bytes(),
    })
}

fn release(warrant: [u8; 32], i: usize, conversation_days: u16, at: u64) -> Statement {
    Statement::KeyRelease(KeyRelease {
        warrant,
        custodian: custodian(i),
        conversation_days,
        request_hash: [i as u8; 32],
        released_at: at,
    })
}

fn erasure(day: u32, i: usize, at: u64) -> Statement {
    Statement::DayKeyErasure(DayKeyErasure {
        day,
        custodian: custodian(i),
        erased_at: at,
    })
}

fn unsealing(warrant: &Warrant, salt: [u8; 32], at: u64) -> Statement {
    let bytes = warrant.encode().unwrap();
    Statement::WarrantUnsealing(WarrantUnsealing {
        warrant: warrant_commitment(&salt, &bytes),
        salt,
        warrant_bytes: bytes,
        unsealed_at: at,
    })
}

fn unhex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_reports_what_was_logged_statement_by_statement_and_flags_each_breach() {
    let mut net = Net::start().await;
    let mut tally = Tally::default();
    // Day 20410 is 2025-11-18.
    let d0: u32 = 20_410;
    let t = |day: u32| u64::from(day) * DAY;

    // Day keys: three days live (all custodians), one published by a
    // single custodian (never live).
    for day in [d0, d0 + 1, d0 + 59] {
        let st = day_key(day);
        for i in 0..N {
            let k = net.custodians[i].clone();
            net.log(st.clone(), &k).await;
            tally.custodian(i).day_keys_generated += 1;
        }
    }
    let k2 = net.custodians[2].clone();
    net.log(day_key(d0 + 40), &k2).await;
    tally.custodian(2).day_keys_generated += 1;

    // W1: court A for police X, 2 targets, 3 days; two releases and an
    // interception; never unsealed.
    let w1 = net.warrant(COURT_A, POLICE_X, 2, (d0, d0 + 2));
    let s1 = submit(&net.log, &mut net.verifier, &w1, &net.police_x.clone())
        .await
        .unwrap();
    let c1 = unhex32(&s1.commitment);
    tally.did(Some((COURT_A, POLICE_X)), t(d0), |c| {
        c.warrants += 1;
        c.targets += 2;
        c.days += 3;
    });
    for i in 0..2 {
        let k = net.custodians[i].clone();
        net.log(release(c1, i, 6, t(d0) + 3_600), &k).await;
        tally.did(Some((COURT_A, POLICE_X)), t(d0) + 3_600, |c| {
            c.releases += 1;
            c.conversation_days_released += 6;
        });
        tally.custodian(i).releases += 1;
        tally.custodian(i).conversation_days_released += 6;
    }
    let provider = net.provider.clone();
    let interception = |warrant, at| {
        Statement::Interception(Interception {
            warrant,
            provider: PROVIDER.into(),
            conversations: 2,
            first_day: d0,
            last_day: d0 + 2,
            started_at: at,
            recovery: Vec::new(),
        })
    };
    net.log(interception(c1, t(d0) + 7_200), &provider).await;
    tally.did(Some((COURT_A, POLICE_X)), t(d0) + 7_200, |c| {
        c.interceptions += 1
    });

    // W3: court A for police Y; its embargo ends and a custodian unseals
    // it, the court repeats the unsealing, and a bad salt is refused.
    let w3 = net.warrant(COURT_A, POLICE_Y, 1, (d0 + 2, d0 + 3));
    let s3 = submit(&net.log, &mut net.verifier, &w3, &net.police_y.clone())
        .await
        .unwrap();
    tally.did(Some((COURT_A, POLICE_Y)), t(d0 + 2), |c| {
        c.warrants += 1;
        c.targets += 1;
        c.days += 2;
    });
    let salt3: [u8; 32] = unhex32(&s3.salt);
    let k0 = net.custodians[0].clone();
    net.log(unsealing(&w3, salt3, t(d0 + 23)), &k0).await;
    tally.did(Some((COURT_A, POLICE_Y)), t(d0 + 23), |c| c.unsealings += 1);
    let court_a = net.court_a.clone();
    net.log(unsealing(&w3, salt3, t(d0 + 24)), &court_a).await;
    tally.did(Some((COURT_A, POLICE_Y)), t(d0 + 24), |c| {
        c.repeated_unsealings += 1
    });
    let mut bad = unsealing(&w3, salt3, t(d0 + 24));
    if let Statement::WarrantUnsealing(u) = &mut bad {
        u.salt[0] ^= 1;
    }
    let k1 = net.custodians[1].clone();
    let bad_unsealing = net.log(bad, &k1).await;

    // W2: court B for police Y, issued the next month; extended once by
    // court B; court A's extension and one beyond 180 days are refused;
    // then court B revokes it.
    let w2 = net.warrant(COURT_B, POLICE_Y, 1, (d0 + 14, d0 + 14));
    let s2 = submit(&net.log, &mut net.verifier, &w2, &net.police_y.clone())
        .await
        .unwrap();
    let c2 = unhex32(&s2.commitment);
    tally.did(Some((COURT_B, POLICE_Y)), t(d0 + 14), |c| {
        c.warrants += 1;
        c.targets += 1;
        c.days += 1;
    });
    let court_b = net.court_b.clone();
    let (log, v) = (net.log.clone(), &mut net.verifier);
    extend_embargo(&log, v, COURT_B, &court_b, c2, t(d0 + 74), t(d0 + 20))
        .await
        .unwrap();
    tally.did(Some((COURT_B, POLICE_Y)), t(d0 + 20), |c| {
        c.embargo_extensions += 1
    });
    let wrong_court = extend_embargo(&log, v, COURT_A, &court_a, c2, t(d0 + 90), t(d0 + 21))
        .await
        .unwrap();
    let too_long = extend_embargo(&log, v, COURT_B, &court_b, c2, t(d0 + 14 + 181), t(d0 + 21))
        .await
        .unwrap();
    revoke(&log, v, COURT_B, &court_b, c2, t(d0 + 22))
        .await
        .unwrap();
    tally.did(Some((COURT_B, POLICE_Y)), t(d0 + 22), |c| {
        c.revocations += 1
    });

    // A release under a commitment never logged, and an interception
    // under W4 before W4's commitment is logged.
    let k2 = net.custodians[2].clone();
    let orphan = net.log(release([0xab; 32], 2, 2, t(d0 + 30)), &k2).await;
    tally.did(None, t(d0 + 30), |c| {
        c.releases += 1;
        c.conversation_days_released += 2;
    });
    tally.custodian(2).releases += 1;
    tally.custodian(2).conversation_days_released += 2;
    let w4 = net.warrant(COURT_A, POLICE_X, 1, (d0 + 45, d0 + 45));
    let salt4 = [4u8; 32];
    let c4 = warrant_commitment(&salt4, &w4.encode().unwrap());
    let early = net.log(interception(c4, t(d0 + 45)), &provider).await;
    tally.did(None, t(d0 + 45), |c| c.interceptions += 1);
    let police_x = net.police_x.clone();
    let w4_index = net
        .log(commitment_statement(&w4, &salt4).unwrap(), &police_x)
        .await;
    tally.did(Some((COURT_A, POLICE_X)), t(d0 + 45), |c| {
        c.warrants += 1;
        c.targets += 1;
        c.days += 1;
    });

    // Erasures: day d0 by everyone (custodian 0 twice: counted once),
    // day d0 + 1 by custodian 0 only.
    for i in 0..N {
        let k = net.custodians[i].clone();
        net.log(erasure(d0, i, t(d0 + 2)), &k).await;
        tally.did(None, t(d0 + 2), |c| c.day_key_erasures += 1);
        tally.custodian(i).day_keys_erased += 1;
    }
    net.log(erasure(d0, 0, t(d0 + 3)), &k0).await;
    net.log(erasure(d0 + 1, 0, t(d0 + 3)), &k0).await;
    tally.did(None, t(d0 + 3), |c| c.day_key_erasures += 1);
    tally.custodian(0).day_keys_erased += 1;

    // Audited on 2026-01-17 (day d0 + 60).
    let now = t(d0 + 60) + 3_600;
    let f = net.audit(now).await;
    tally.check(&f);
    assert_eq!(f.as_of, now);
    assert_eq!(f.unsealing_grace_secs, DAY);

    // Overdue: W1 only (W2's embargo was extended past now, W3 is unsealed,
    // W4's embargo has not ended).
    assert_eq!(f.flags.overdue_unsealings.len(), 1, "{:?}", f.flags);
    let o = &f.flags.overdue_unsealings[0];
    assert_eq!(
        (
            o.warrant.as_str(),
            o.index,
            o.court.as_str(),
            o.authority.as_str()
        ),
        (s1.commitment.as_str(), s1.index, COURT_A, POLICE_X)
    );
    assert_eq!(o.embargo_until, t(d0 + 20));
    assert_eq!(o.due_at, t(d0 + 21));
    assert_eq!(o.overdue_secs, now - t(d0 + 21));
    assert!(!o.revoked);

    // Missing erasures: day d0 + 1, two shares left (still openable).
    assert_eq!(
        f.flags.missing_erasures,
        vec![MissingErasure {
            day: d0 + 1,
            date: "2025-11-19".into(),
            due_at: t(d0 + 3),
            holders: (0..N).map(custodian).collect(),
            erased_by: vec![custodian(0)],
            not_erased_by: vec![custodian(1), custodian(2)],
            still_openable: true,
        }]
    );

    // Statements under warrants the log did not hold before them.
    let unlogged: Vec<_> = f
        .flags
        .unlogged_warrants
        .iter()
        .map(|u| {
            (
                u.index,
                u.kind.as_str(),
                u.author.clone(),
                u.logged_later_at,
            )
        })
        .collect();
    assert_eq!(
        unlogged,
        vec![
            (orphan, "key_release", custodian(2), None),
            (early, "interception", PROVIDER.to_owned(), Some(w4_index)),
        ]
    );
    assert_eq!(
        f.flags.unlogged_warrants[0].warrant,
        hex::encode([0xab; 32])
    );

    // Refused, in log order: the bad unsealing and the two extensions.
    let refused: Vec<_> = f
        .flags
        .refused_statements
        .iter()
        .map(|r| (r.index, r.kind.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        refused,
        vec![
            (
                bad_unsealing,
                "warrant_unsealing",
                "the salt and warrant do not open the logged commitment"
            ),
            (
                wrong_court,
                "embargo_extension",
                "the court did not issue this warrant"
            ),
            (
                too_long,
                "embargo_extension",
                "beyond the policy's maximum embargo"
            ),
        ]
    );
    assert!(!f.clean());

    // The same log on an earlier audit clock: nothing is overdue yet.
    let early_f = net.audit(t(d0 + 2) + 3_600).await;
    tally.check(&early_f);
    assert!(early_f.flags.overdue_unsealings.is_empty());
    assert!(early_f.flags.missing_erasures.is_empty());
    // Just after W1's grace ends, W1 is overdue; just before, it is not.
    assert!(
        net.audit(t(d0 + 21))
            .await
            .flags
            .overdue_unsealings
            .is_empty()
    );
    assert_eq!(
        net.audit(t(d0 + 21) + 1)
            .await
            .flags
            .overdue_unsealings
            .len(),
        1
    );

    // The JSON shape round-trips.
    let json = serde_json::to_string(&f).unwrap();
    let back: AuditFigures = serde_json::from_str(&json).unwrap();
    assert_eq!(back, f);
}
