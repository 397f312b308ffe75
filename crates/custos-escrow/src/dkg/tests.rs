use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Barrier};

use rand_core::{OsRng, RngCore};

use super::*;
use crate::{EscrowIdentity, PartialKey, open, seal};

fn keys(n: usize) -> (Vec<[u8; 32]>, Vec<[u8; 32]>) {
    let secrets: Vec<[u8; 32]> = (0..n)
        .map(|_| {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        })
        .collect();
    let publics = secrets.iter().map(|s| public_key_of(s).unwrap()).collect();
    (secrets, publics)
}

/// Replaces the private share at the end of a dealing with a valid but
/// wrong scalar: the dealer "sends a bad share".
fn corrupt_share(bytes: &mut [u8]) {
    let len = bytes.len();
    let tail = &mut bytes[len - 32..];
    tail.fill(0);
    tail[31] = 7;
}

/// Runs all custodians in lockstep in memory. `bad(dealer, player)` says
/// whether the dealing from `dealer` to `player` is corrupted in transit.
fn lockstep(
    secrets: &[[u8; 32]],
    cfg: &DkgConfig,
    bad: impl Fn(u32, u32) -> bool,
) -> BTreeMap<u32, Result<DkgOutput, DkgError>> {
    lockstep_with_logs(secrets, cfg, bad, |_| true)
}

/// As [`lockstep`]; `log_delivered(dealer)` says whether that dealer's log
/// reaches the others (a dealer that never publishes its log).
fn lockstep_with_logs(
    secrets: &[[u8; 32]],
    cfg: &DkgConfig,
    bad: impl Fn(u32, u32) -> bool,
    log_delivered: impl Fn(u32) -> bool,
) -> BTreeMap<u32, Result<DkgOutput, DkgError>> {
    let n = secrets.len() as u32;
    let mut inbox: BTreeMap<u32, Vec<(u32, Vec<u8>)>> = (1..=n).map(|i| (i, Vec::new())).collect();
    let route = |from: u32, out: Vec<Outgoing>, inbox: &mut BTreeMap<u32, Vec<(u32, Vec<u8>)>>| {
        for m in out {
            match m.to {
                Recipient::Custodian(to) => {
                    let mut bytes = m.bytes;
                    if bytes[1] == Message::Dealing as u8 && bad(from, to) {
                        corrupt_share(&mut bytes);
                    }
                    inbox.get_mut(&to).unwrap().push((from, bytes));
                }
                Recipient::All => {
                    for to in 1..=n {
                        inbox.get_mut(&to).unwrap().push((from, m.bytes.clone()));
                    }
                }
            }
        }
    };
    let mut dealing: BTreeMap<u32, Dealing> = BTreeMap::new();
    for s in secrets {
        let (d, out) = Dealing::start(cfg, s, &mut OsRng).unwrap();
        route(d.index(), out, &mut inbox);
        dealing.insert(d.index(), d);
    }
    // Deal phase, then ack phase.
    for _ in 0..2 {
        for (i, d) in dealing.iter_mut() {
            for (from, bytes) in std::mem::take(inbox.get_mut(i).unwrap()) {
                match d.handle(from, &bytes) {
                    Ok(out) => route(*i, out, &mut inbox),
                    Err(e) => assert_eq!(e, DkgError::BadDealing { from }),
                }
            }
        }
    }
    let mut fin = BTreeMap::new();
    for (i, d) in dealing {
        let (f, log) = d.finish();
        if log_delivered(i) {
            route(i, vec![log], &mut inbox);
        }
        fin.insert(i, f);
    }
    fin.into_iter()
        .map(|(i, mut f)| {
            for (from, bytes) in std::mem::take(inbox.get_mut(&i).unwrap()) {
                f.handle(from, &bytes).unwrap();
            }
            (i, f.finalize())
        })
        .collect()
}

fn check_agreement_and_use(
    outputs: BTreeMap<u32, Result<DkgOutput, DkgError>>,
    t: usize,
) -> PublicDkgOutput {
    let outputs: Vec<DkgOutput> = outputs.into_values().map(|o| o.unwrap()).collect();
    let public = outputs[0].public.clone();
    for o in &outputs {
        assert_eq!(o.public, public, "custodians disagree on the public output");
        assert_eq!(
            public.day_key.verification_key(o.share.index()),
            Some(&o.share.verification_key())
        );
    }
    assert_eq!(public.day_key.threshold(), t);
    // The shares work: t partial keys open a capsule sealed to the DKG key.
    let conv = [9u8; 16];
    let id = EscrowIdentity::new(&conv, public.day_key.day());
    let capsule = seal(
        &public.day_key,
        &conv,
        public.day_key.day(),
        b"chain",
        &[5u8; 32],
    )
    .unwrap();
    let partials: Vec<PartialKey> = outputs
        .iter()
        .rev()
        .take(t)
        .map(|o| o.share.extract(&id))
        .collect();
    let verified = public
        .day_key
        .verify_partials(&id, &partials, &mut OsRng)
        .unwrap();
    let key = public.day_key.combine(&id, &verified).unwrap();
    assert_eq!(*open(&capsule, &key).unwrap(), [5u8; 32]);
    public
}

#[test]
fn five_custodians_threshold_three_agree_and_shares_open() {
    let (secrets, publics) = keys(5);
    let cfg = DkgConfig::new(20_000, 3, &publics).unwrap();
    let public = check_agreement_and_use(lockstep(&secrets, &cfg, |_, _| false), 3);
    assert_eq!(public.dealers.len(), 3);
    assert!(public.revealed.is_empty());
}

#[test]
fn dealer_sending_bad_shares_is_excluded_and_the_others_agree() {
    let (secrets, publics) = keys(5);
    let cfg = DkgConfig::new(20_001, 3, &publics).unwrap();
    // Dealer 2 sends bad shares to three custodians: three complaints, more
    // than the n - t = 2 reveals allowed, so its log is unusable.
    let outputs = lockstep(&secrets, &cfg, |dealer, player| {
        dealer == 2 && player != 2 && player != 1
    });
    let public = check_agreement_and_use(outputs, 3);
    assert!(
        !public.dealers.contains(&2),
        "bad dealer 2 was selected: {:?}",
        public.dealers
    );
    assert_eq!(public.dealers.len(), 3);
}

#[test]
fn complaint_answered_by_reveal_still_gives_every_custodian_a_share() {
    let (secrets, publics) = keys(5);
    let cfg = DkgConfig::new(20_002, 3, &publics).unwrap();
    // Dealer 1's share to custodian 4 is bad: 4 complains, dealer 1 reveals
    // the correct share in its log, and 4 uses it.
    let public = check_agreement_and_use(
        lockstep(&secrets, &cfg, |dealer, player| dealer == 1 && player == 4),
        3,
    );
    if public.dealers.contains(&1) {
        assert_eq!(public.revealed, vec![4]);
    }
}

#[test]
fn silent_dealers_are_excluded_and_too_few_logs_fail() {
    let (secrets, publics) = keys(5);
    let cfg = DkgConfig::new(20_003, 3, &publics).unwrap();
    // Dealers 1 and 5 never publish their logs: the other three qualify.
    let public = check_agreement_and_use(
        lockstep_with_logs(&secrets, &cfg, |_, _| false, |d| d != 1 && d != 5),
        3,
    );
    assert_eq!(public.dealers, vec![2, 3, 4]);
    // With only two logs published nobody can finish, and nobody pretends to.
    let outputs = lockstep_with_logs(&secrets, &cfg, |_, _| false, |d| d <= 2);
    for (i, o) in outputs {
        if i > 2 {
            assert!(
                matches!(o, Err(DkgError::Failed(_))),
                "custodian {i}: {o:?}"
            );
        }
    }
}

#[test]
fn config_rejects_wrong_threshold_duplicates_and_outsiders() {
    let (secrets, publics) = keys(5);
    assert!(matches!(
        DkgConfig::new(1, 4, &publics),
        Err(DkgError::Config(_))
    ));
    let mut dup = publics.clone();
    dup[1] = dup[0];
    assert!(matches!(
        DkgConfig::new(1, 3, &dup),
        Err(DkgError::Config(_))
    ));
    assert!(matches!(
        DkgConfig::new(1, 2, &publics[..4]),
        Err(DkgError::Config(_))
    ));
    assert!(matches!(
        DkgConfig::new(1, 1, &publics[..1]),
        Err(DkgError::Config(_))
    ));
    let cfg = DkgConfig::new(1, 3, &publics[..5]).unwrap();
    let mut outsider = [0u8; 32];
    OsRng.fill_bytes(&mut outsider);
    assert!(matches!(
        Dealing::start(&cfg, &outsider, &mut OsRng),
        Err(DkgError::NotACustodian)
    ));
    assert!(cfg.index_of(&public_key_of(&secrets[0]).unwrap()).is_some());
}

#[test]
fn malformed_messages_are_typed_errors() {
    let (secrets, publics) = keys(3);
    let cfg = DkgConfig::new(7, 2, &publics).unwrap();
    let (mut d, _) = Dealing::start(&cfg, &secrets[0], &mut OsRng).unwrap();
    let other = if d.index() == 1 { 2 } else { 1 };
    assert!(matches!(
        d.handle(other, &[]),
        Err(DkgError::Malformed { .. })
    ));
    assert!(matches!(
        d.handle(other, &[9, 1]),
        Err(DkgError::Malformed { .. })
    ));
    assert!(matches!(
        d.handle(other, &[1, 1, 0]),
        Err(DkgError::Malformed { .. })
    ));
    assert!(matches!(
        d.handle(9, &[1, 2]),
        Err(DkgError::UnknownCustodian(9))
    ));
    let (mut f, _) = d.finish();
    assert!(matches!(
        f.handle(other, &[1, 3, 1, 2, 3]),
        Err(DkgError::Malformed { .. })
    ));
}

/// An in-memory transport: one thread per custodian, channels, and a
/// barrier that ends each phase once everyone has sent.
struct ChannelTransport {
    me: u32,
    peers: BTreeMap<u32, Sender<(u32, Vec<u8>)>>,
    inbox: Receiver<(u32, Vec<u8>)>,
    barrier: Arc<Barrier>,
}

impl Transport for ChannelTransport {
    type Error = String;
    fn send(&mut self, to: u32, bytes: Vec<u8>) -> Result<(), String> {
        self.peers
            .get(&to)
            .ok_or("unknown peer")?
            .send((self.me, bytes))
            .map_err(|e| e.to_string())
    }
    fn broadcast(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        for p in self.peers.values() {
            p.send((self.me, bytes.clone()))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    fn collect(&mut self, _phase: Phase) -> Result<Vec<(u32, Vec<u8>)>, String> {
        self.barrier.wait();
        let msgs = self.inbox.try_iter().collect();
        self.barrier.wait();
        Ok(msgs)
    }
}

#[test]
fn run_over_an_abstract_transport_with_threads() {
    let (secrets, publics) = keys(5);
    let cfg = DkgConfig::new(30_000, 3, &publics).unwrap();
    let barrier = Arc::new(Barrier::new(5));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..5).map(|_| channel()).unzip();
    let peers: BTreeMap<u32, Sender<(u32, Vec<u8>)>> = publics
        .iter()
        .zip(senders)
        .map(|(pk, s)| (cfg.index_of(pk).unwrap(), s))
        .collect();
    let handles: Vec<_> = secrets
        .into_iter()
        .zip(receivers)
        .map(|(secret, inbox)| {
            let me = cfg.index_of(&public_key_of(&secret).unwrap()).unwrap();
            let mut transport = ChannelTransport {
                me,
                peers: peers.clone(),
                inbox,
                barrier: Arc::clone(&barrier),
            };
            let cfg = cfg.clone();
            std::thread::spawn(move || run(&cfg, &secret, &mut transport, &mut OsRng))
        })
        .collect();
    let outputs: BTreeMap<u32, Result<DkgOutput, DkgError>> = handles
        .into_iter()
        .map(|h| {
            let o = h.join().unwrap();
            (o.as_ref().map(|o| o.share.index()).unwrap_or(0), o)
        })
        .collect();
    assert_eq!(outputs.len(), 5);
    check_agreement_and_use(outputs, 3);
}
