#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use custos_wire::ConversationId;
use custos_wire::manifest::{Manifest, Participant, Policy, Role};
use custos_wire::statement::{WarrantCommitment, WarrantUnsealing, warrant_commitment};
use custos_wire::warrant::{Warrant, WarrantFields};
use ed25519_dalek::SigningKey;

use super::{UnsealingError, verify_unsealing};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn manifest() -> Manifest {
    let p = |name: &str, role, seed: u8| Participant {
        name: name.into(),
        role,
        jurisdiction: "EU".into(),
        endpoint: None,
        public_key: hex::encode(key(seed).verifying_key().to_bytes()),
    };
    Manifest::new(
        1,
        0,
        Policy::default(),
        vec![
            p("log.test", Role::Log, 1),
            p("witness.test", Role::Witness, 2),
            p("court.test", Role::Court, 3),
            p("police.test", Role::Authority, 4),
            p("other-court.test", Role::Court, 5),
        ],
    )
    .unwrap()
}

fn warrant(court: &str, signer: u8) -> Warrant {
    Warrant::sign(
        WarrantFields {
            id: [7; 16],
            court: court.into(),
            authority: "police.test".into(),
            legal_basis: "s. 100a StPO".into(),
            targets: vec![ConversationId([1; 16]), ConversationId([2; 16])],
            first_day: 20_000,
            last_day: 20_002,
            issued_at: 1_728_000_000,
            not_after: 1_728_000_000 + 10 * 86_400,
            embargo_until: 1_728_000_000 + 30 * 86_400,
            authority_hpke_key: [9; 32],
        },
        &key(signer),
    )
    .unwrap()
}

fn commit(w: &Warrant, salt: &[u8; 32]) -> WarrantCommitment {
    let f = w.fields();
    WarrantCommitment {
        commitment: warrant_commitment(salt, &w.encode().unwrap()),
        court: f.court.clone(),
        authority: f.authority.clone(),
        issued_at: f.issued_at,
        embargo_until: f.embargo_until,
        targets: f.targets.len() as u16,
        days: f.days() as u16,
        court_signature: w.signature().to_vec(),
    }
}

fn unseal(w: &Warrant, salt: [u8; 32]) -> WarrantUnsealing {
    let bytes = w.encode().unwrap();
    WarrantUnsealing {
        warrant: warrant_commitment(&salt, &bytes),
        salt,
        warrant_bytes: bytes,
        unsealed_at: 1_728_000_000 + 31 * 86_400,
    }
}

#[test]
fn a_genuine_unsealing_verifies_and_every_alteration_is_refused() {
    let m = manifest();
    let w = warrant("court.test", 3);
    let c = commit(&w, &[5; 32]);
    let u = unseal(&w, [5; 32]);
    let ok = verify_unsealing(&m, &c, &u).unwrap();
    assert_eq!(ok.fields().court, "court.test");
    assert_eq!(ok.commitment(), &c.commitment);
    assert_eq!(ok.unsealed_at(), u.unsealed_at);

    // Another commitment.
    let other = commit(&w, &[6; 32]);
    assert_eq!(
        verify_unsealing(&m, &other, &u),
        Err(UnsealingError::OtherCommitment)
    );
    // A wrong salt.
    let mut bad = u.clone();
    bad.salt[0] ^= 1;
    assert_eq!(
        verify_unsealing(&m, &c, &bad),
        Err(UnsealingError::DoesNotOpen)
    );
    // Any changed warrant byte no longer opens the commitment; re-committed
    // to the changed bytes, the court signature or the format refuses it.
    let bytes = w.encode().unwrap();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 1;
        let mut u2 = u.clone();
        u2.warrant_bytes = b.clone();
        assert!(verify_unsealing(&m, &c, &u2).is_err(), "byte {i}");
        let mut c2 = c.clone();
        c2.commitment = warrant_commitment(&u.salt, &b);
        u2.warrant = c2.commitment;
        assert!(verify_unsealing(&m, &c2, &u2).is_err(), "byte {i}");
    }
    // Signed by a key that is not the named court's.
    let forged = warrant("court.test", 5);
    assert_eq!(
        verify_unsealing(&m, &commit(&forged, &[5; 32]), &unseal(&forged, [5; 32])),
        Err(UnsealingError::BadCourtSignature("court.test".into()))
    );
    // A court the manifest does not know.
    let stranger = warrant("nowhere.test", 3);
    assert_eq!(
        verify_unsealing(
            &m,
            &commit(&stranger, &[5; 32]),
            &unseal(&stranger, [5; 32])
        ),
        Err(UnsealingError::UnknownCourt("nowhere.test".into()))
    );
    // Public fields that lie about the warrant.
    let mut lying = c.clone();
    lying.targets = 1;
    assert_eq!(
        verify_unsealing(&m, &lying, &u),
        Err(UnsealingError::FieldMismatch("number of targets"))
    );
    let mut lying = c;
    lying.authority = "spies.test".into();
    assert_eq!(
        verify_unsealing(&m, &lying, &u),
        Err(UnsealingError::FieldMismatch("authority"))
    );
}
