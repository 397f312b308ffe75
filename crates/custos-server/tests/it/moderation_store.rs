//! Moderation behind the storage seam (`store::ModerationStore`): one
//! contract run on both backends, and what PostgreSQL must settle between
//! two servers: one stored report for identical reports racing, decisions on
//! one report recorded in one order (status and suspension follow the last),
//! and a suspension committed on one server refusing the sender on the other.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code: a failed step must fail the test"
)]

use custos_server::Suspension;
use custos_server::store::moderation::{Decision, NewReport, Queued};
use custos_server::store::pg_moderation::suspensions_in;
use custos_server::store::sqlite::SqliteStore;
use custos_server::store::{AccountStore, ModerationStore, Registered, Store};
use custos_wire::ConversationId;
use custos_wire::moderation::Action;
use custos_wire::report::{Report, ReportedMessage};

use crate::store::{KEY, two_servers};

const CONV: [u8; 16] = [5; 16];

/// An encoded report by anyone of `sender`'s message with `envelope`.
fn report(sender: &str, envelope: &[u8]) -> Vec<u8> {
    Report {
        reason: "spam".into(),
        message: ReportedMessage {
            conversation: ConversationId(CONV),
            sender: sender.into(),
            server_time: 77,
            franking_key: [1; 32],
            envelope: envelope.to_vec(),
            payload: vec![2; 8],
            tag: vec![3; 8],
        },
        context: Vec::new(),
    }
    .encode()
    .unwrap()
    .to_vec()
}

fn new_report<'a>(
    reporter: (&'a str, i64),
    body: &'a [u8],
    envelope: &'a [u8],
    at: i64,
) -> NewReport<'a> {
    NewReport {
        received_at: at,
        reporter: reporter.0,
        reporter_id: reporter.1,
        conversation: &CONV,
        sender: "mallory",
        server_time: 77,
        reason: "spam",
        report: body,
        envelope,
    }
}

fn decision(report_id: i64, moderator: &str, action: Action, until: Option<i64>) -> Decision<'_> {
    Decision {
        report_id,
        moderator,
        action: action.name(),
        status: action.status().name(),
        note: "note",
        suspend: action == Action::Suspend,
        suspended_until: until,
        taken_at: 1_000,
    }
}

async fn account(store: &dyn Store, name: &str) -> i64 {
    match store.register(name, &KEY, 1, false).await.unwrap() {
        Registered::Created { account_id, .. } => account_id,
        Registered::NameTaken => panic!("{name} is new"),
    }
}

/// The contract every backend keeps; `alice` is a member of `CONV`.
async fn contract(store: &dyn Store, alice: i64) {
    let mallory = store.account_id("mallory").await.unwrap().unwrap();
    let mut keys = store
        .identity_keys(&["mallory".into(), "nobody".into(), "alice".into()])
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("alice".to_owned(), KEY.to_vec()),
            ("mallory".to_owned(), KEY.to_vec())
        ]
    );
    assert_eq!(
        store.identity_key_of(alice).await.unwrap(),
        Some(KEY.to_vec())
    );
    assert_eq!(store.identity_key_of(i64::MAX).await.unwrap(), None);
    assert!(store.is_member(&CONV, alice).await.unwrap());
    assert!(!store.is_member(&CONV, mallory).await.unwrap());
    assert!(!store.is_member(&[6; 16], alice).await.unwrap());

    // One report per reporter and message.
    let body1 = report("mallory", b"env-1");
    let r1 = new_report(("alice", alice), &body1, b"env-1", 100);
    assert_eq!(store.earlier_report(&r1).await.unwrap(), None);
    let Queued::New(id1) = store.queue_report(&r1).await.unwrap() else {
        panic!("a first report is queued");
    };
    assert_eq!(
        store.earlier_report(&r1).await.unwrap(),
        Some((id1, "open".to_owned()))
    );
    assert_eq!(
        store.queue_report(&r1).await.unwrap(),
        Queued::Earlier {
            id: id1,
            status: "open".into()
        },
        "a repeat is not stored again"
    );
    let body2 = report("mallory", b"env-2");
    let r2 = new_report(("alice", alice), &body2, b"env-2", 200);
    let Queued::New(id2) = store.queue_report(&r2).await.unwrap() else {
        panic!("another message of the same time is another report");
    };
    assert!(id2 > id1);
    store
        .record_report_refusal(300, "alice", "bad_tag")
        .await
        .unwrap();
    store
        .record_report_refusal(301, "bob", "bad_tag")
        .await
        .unwrap();
    let listed = store.list_reports(false).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), [id1, id2]);
    assert!(listed.iter().all(|r| r.report.is_empty()));
    let stored = store.report(id1).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.received_at,
            stored.reporter.as_str(),
            stored.conversation.as_slice(),
            stored.sender.as_str(),
            stored.server_time,
            stored.reason.as_str(),
            stored.status.as_str(),
            stored.report.as_slice(),
        ),
        (
            100,
            "alice",
            CONV.as_slice(),
            "mallory",
            77,
            "spam",
            "open",
            body1.as_slice()
        )
    );
    assert_eq!(store.report(i64::MAX).await.unwrap(), None);

    // Decisions: recorded in order; the status is the last one's.
    store
        .record_decision(&decision(id1, "mod", Action::Warn, None), "mallory")
        .await
        .unwrap();
    assert_eq!(store.suspension("mallory", 0).await.unwrap(), None);
    store
        .record_decision(&decision(id2, "mod", Action::Suspend, Some(500)), "mallory")
        .await
        .unwrap();
    assert_eq!(
        store.suspension("mallory", 499).await.unwrap(),
        Some(Suspension::Until(500))
    );
    assert_eq!(store.suspension("mallory", 500).await.unwrap(), None);
    store
        .record_decision(&decision(id2, "mod2", Action::Suspend, None), "mallory")
        .await
        .unwrap();
    assert_eq!(
        store.suspension("mallory", i64::MAX).await.unwrap(),
        Some(Suspension::Permanent)
    );
    assert_eq!(
        store.suspensions().await.unwrap(),
        [("mallory".to_owned(), None)]
    );
    let actions = store.actions(id2).await.unwrap();
    assert_eq!(
        actions
            .iter()
            .map(|a| (a.action.as_str(), a.moderator.as_str(), a.suspended_until))
            .collect::<Vec<_>>(),
        [("suspend", "mod", Some(500)), ("suspend", "mod2", None)]
    );
    assert!(store.list_reports(false).await.unwrap().is_empty());
    assert_eq!(store.list_reports(true).await.unwrap().len(), 2);
    assert_eq!(
        store.report(id1).await.unwrap().unwrap().status,
        Action::Warn.status().name()
    );

    let stats = store.moderation_stats().await.unwrap();
    assert_eq!((stats.verified, stats.refused, stats.open), (2, 2, 0));
    assert_eq!(stats.refused_by_reason, [("bad_tag".to_owned(), 2)]);
    assert_eq!(
        stats.by_action,
        [("suspend".to_owned(), 2), ("warn".to_owned(), 1)]
    );
    let mut delays = stats.time_to_action;
    delays.sort_unstable();
    assert_eq!(delays, [800, 900], "receipt to first action, per report");
}

#[tokio::test]
async fn the_sqlite_moderation_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let db = custos_server::db::open(dir.path()).await.unwrap();
    let store = SqliteStore::new(db.pool.clone());
    let alice = account(&store, "alice").await;
    account(&store, "mallory").await;
    sqlx::query("INSERT INTO members (conversation, account_id) VALUES (?, ?)")
        .bind(CONV.as_slice())
        .bind(alice)
        .execute(&db.pool)
        .await
        .unwrap();
    contract(&store, alice).await;
}

#[tokio::test]
async fn the_postgres_moderation_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, _b)) = two_servers(dir.path()).await else {
        return;
    };
    let alice = account(a.as_ref(), "alice").await;
    account(a.as_ref(), "mallory").await;
    assert!(
        a.create_conversation(&ConversationId(CONV), &[alice], b"state", 1)
            .await
            .unwrap()
    );
    contract(a.as_ref(), alice).await;
}

/// Two servers: identical reports racing store one; moderators deciding
/// one report at once on both servers leave the status and the suspension
/// of the last decision recorded; a suspension committed on A is in force
/// for B's reads and inside B's open transaction.
#[tokio::test]
async fn two_postgres_servers_moderate_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    let servers = [a.clone(), b.clone()];
    let alice = account(a.as_ref(), "alice").await;
    account(a.as_ref(), "mallory").await;

    // Eight identical reports at once, through both servers.
    let body = report("mallory", b"env-race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = servers[i % 2].clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            s.queue_report(&new_report(("alice", alice), &body, b"env-race", 100))
                .await
                .unwrap()
        }));
    }
    let mut new = Vec::new();
    let mut earlier = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Queued::New(id) => new.push(id),
            Queued::Earlier { id, .. } => earlier.push(id),
        }
    }
    assert_eq!(new.len(), 1, "identical reports racing store one");
    assert!(earlier.iter().all(|id| *id == new[0]));
    assert_eq!(a.list_reports(true).await.unwrap().len(), 1);

    // Moderators decide one report at once, on both servers, in rounds.
    for round in 0..6i64 {
        let envelope = format!("env-{round}").into_bytes();
        let body = report("mallory", &envelope);
        let Queued::New(id) = a
            .queue_report(&new_report(("alice", alice), &body, &envelope, 100))
            .await
            .unwrap()
        else {
            panic!("a new message");
        };
        let mut tasks = Vec::new();
        for i in 0..8i64 {
            let s = servers[usize::try_from(i).unwrap() % 2].clone();
            tasks.push(tokio::spawn(async move {
                let (action, until) = if i % 3 == 2 {
                    (Action::Warn, None)
                } else {
                    (Action::Suspend, Some(10_000 + round * 100 + i))
                };
                s.record_decision(&decision(id, &format!("mod{i}"), action, until), "mallory")
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let actions = b.actions(id).await.unwrap();
        assert_eq!(actions.len(), 8, "every decision is recorded");
        let last = actions.last().unwrap();
        let report = a.report(id).await.unwrap().unwrap();
        let last_status = Action::from_name(&last.action).unwrap().status().name();
        assert_eq!(
            report.status, last_status,
            "round {round}: the status is the last decision's"
        );
        let last_suspend = actions
            .iter()
            .rev()
            .find(|x| x.action == "suspend")
            .unwrap();
        assert_eq!(
            a.suspensions().await.unwrap(),
            [("mallory".to_owned(), last_suspend.suspended_until)],
            "round {round}: the suspension is the last suspending decision's"
        );
    }

    // A permanent suspension on A: B refuses at once, in its reads and in
    // a batch transaction it had already begun.
    let envelope = b"env-final".to_vec();
    let body = report("mallory", &envelope);
    let Queued::New(id) = a
        .queue_report(&new_report(("alice", alice), &body, &envelope, 100))
        .await
        .unwrap()
    else {
        panic!("a new message");
    };
    let mut batch = b.pool().begin().await.unwrap();
    let senders = ["mallory".to_owned(), "alice".to_owned()];
    let before = suspensions_in(&mut batch, &senders, 20_000).await.unwrap();
    assert!(before.is_empty(), "the timed suspensions have ended");
    a.record_decision(&decision(id, "mod", Action::Suspend, None), "mallory")
        .await
        .unwrap();
    let after = suspensions_in(&mut batch, &senders, 20_000).await.unwrap();
    assert_eq!(
        after.into_iter().collect::<Vec<_>>(),
        [("mallory".to_owned(), Suspension::Permanent)],
        "the batch's next read sees the suspension committed on the other server"
    );
    batch.rollback().await.unwrap();
    assert_eq!(
        b.suspension("mallory", i64::MAX).await.unwrap(),
        Some(Suspension::Permanent)
    );
    assert_eq!(b.suspension("alice", 0).await.unwrap(), None);
}

/// Moderators on PostgreSQL are one list for every server, bound to the
/// account's identity key when it was added: an unknown account is not
/// added, an added one is a moderator on both servers, and once its key
/// changes (the name registered again by someone else) it is none.
#[tokio::test]
async fn postgres_moderators_are_shared_and_bound_to_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let Some((pg, a, b)) = two_servers(dir.path()).await else {
        return;
    };
    account(a.as_ref(), "mod").await;
    assert!(!a.add_moderator("nobody", 5).await.unwrap());
    assert!(!b.is_moderator("mod", &KEY).await.unwrap());
    assert!(a.add_moderator("mod", 5).await.unwrap());
    for s in [&a, &b] {
        assert!(s.is_moderator("mod", &KEY).await.unwrap());
        assert!(!s.is_moderator("mod", &[9; 32]).await.unwrap());
        assert!(!s.is_moderator("nobody", &KEY).await.unwrap());
    }
    // The operator's path (`custos moderate add-moderator --database`).
    account(a.as_ref(), "second").await;
    custos_server::moderation::add_moderator_on_postgres(&pg.url(), "second")
        .await
        .unwrap();
    assert!(b.is_moderator("second", &KEY).await.unwrap());
    assert!(matches!(
        custos_server::moderation::add_moderator_on_postgres(&pg.url(), "nobody").await,
        Err(custos_server::moderation::AddModeratorError::NoAccount(_))
    ));
    // The account's key changes: the listing, bound to the old key, no
    // longer makes it a moderator.
    sqlx::query("UPDATE accounts SET identity_key = $1 WHERE name = 'mod'")
        .bind(vec![9u8; 32])
        .execute(a.pool())
        .await
        .unwrap();
    let id = AccountStore::account_id(b.as_ref(), "mod")
        .await
        .unwrap()
        .unwrap();
    let now = b.identity_key_of(id).await.unwrap().unwrap();
    assert!(!b.is_moderator("mod", &now).await.unwrap());
}
