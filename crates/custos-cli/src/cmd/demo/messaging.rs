//! The messaging steps: accounts, a one-to-one conversation, a group of
//! three, a member removed, and a look at the server's files.

use anyhow::{Context as _, Result};
use custos_client::{Device, Outcome};
use custos_wire::ConversationId;
use custos_wire::frames::ItemKind;

use super::Demo;

/// The demo's three users.
pub(super) struct Users {
    pub(super) alice: Device,
    pub(super) bob: Device,
    pub(super) carol: Device,
}

impl Demo<'_> {
    /// Step "accounts": alice, bob and carol register.
    pub(super) async fn accounts(&mut self) -> Result<Users> {
        let mut register = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let d = self
                .d
                .register(name)
                .await
                .with_context(|| format!("registering {name}"))?;
            register.push(d);
        }
        let [mut alice, bob, carol]: [Device; 3] = register
            .try_into()
            .map_err(|_| anyhow::anyhow!("three users"))?;
        self.n.step(
            "accounts",
            true,
            "alice, bob and carol registered with Ed25519 identity keys, uploaded MLS KeyPackages, \
             and pinned the manifest; their devices follow the log for day keys, and each saw \
             its own key in the provider's key directory",
        )?;
        // Key transparency: alice proves bob's key before she adds him.
        let check = alice.verify_contact("bob", false).await?;
        self.n.step(
            "key transparency",
            check.key == hex::encode(bob.identity_key()),
            format!(
                "alice's device verified bob's key {}... in the key directory at epoch {}, \
                 against a root the provider logged and the witnesses cosigned; safety code \
                 {}",
                &check.key[..16],
                check.epoch,
                check.safety_code
            ),
        )?;
        Ok(Users { alice, bob, carol })
    }

    /// Step "one-to-one": alice writes to bob; returns the conversation.
    pub(super) async fn one_to_one(&mut self, u: &mut Users) -> Result<ConversationId> {
        let dm = u.alice.create_conversation(&["bob".into()]).await?;
        u.alice.send_text(&dm, "Hi Bob, lunch tomorrow?").await?;
        let got = u.bob.receive(None).await?;
        self.n.step(
            "one-to-one",
            got.len() == 1 && got.iter().all(|m| m.sender == "alice"),
            format!(
                "conversation {} (an MLS group of two); bob decrypted {:?}",
                &dm.to_hex()[..8],
                got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>()
            ),
        )?;
        Ok(dm)
    }

    /// Step "group of three": alice, bob and carol; returns the conversation.
    pub(super) async fn group_of_three(&mut self, u: &mut Users) -> Result<ConversationId> {
        let group = u
            .alice
            .create_conversation(&["bob".into(), "carol".into()])
            .await?;
        u.bob.sync().await?;
        u.carol.sync().await?;
        u.alice.send_text(&group, "Welcome to the group!").await?;
        u.bob.send_text(&group, "Thanks, Alice.").await?;
        let c = u.carol.receive(None).await?;
        self.n.step(
            "group of three",
            c.len() == 2,
            format!(
                "carol read {:?}; each sender's chain root went over MLS, content under sender chains",
                c.iter()
                    .map(|m| format!("{}: {}", m.sender, m.text))
                    .collect::<Vec<_>>()
            ),
        )?;
        Ok(group)
    }

    /// Step "removal": carol is removed from the group and cannot open what
    /// is sent afterwards, even when handed the items.
    pub(super) async fn removal(&mut self, u: &mut Users, group: &ConversationId) -> Result<()> {
        u.alice.remove_members(group, &["carol".into()]).await?;
        let outcomes = u.carol.sync().await?;
        u.alice
            .send_text(group, "Carol has left; this is for Bob only.")
            .await?;
        let raw = u.bob.api().fetch(0, 1000).await?;
        let mut refused = 0;
        for (i, mut d) in raw
            .into_iter()
            .filter(|d| d.kind != ItemKind::Commit)
            .enumerate()
        {
            d.seq = 1_000_000 + i as u64;
            if u.carol.process_delivery(d).await? != Outcome::Message {
                refused += 1;
            }
        }
        let carol_new = u.carol.receive(None).await?;
        let bob_new = u.bob.receive(None).await?;
        self.n.step(
            "removal",
            outcomes.contains(&Outcome::Removed)
                && carol_new.is_empty()
                && refused > 0
                && bob_new.len() == 2,
            format!(
                "carol was removed; handed the {refused} items sent afterwards, she could open none; bob read {} messages",
                bob_new.len()
            ),
        )
    }

    /// Step "server sees ciphertext only": no message text in the
    /// server's files.
    pub(super) fn ciphertext_only(&mut self) -> Result<()> {
        let mut leaked = false;
        for entry in std::fs::read_dir(&self.server()?.data)? {
            let bytes = std::fs::read(entry?.path()).unwrap_or_default();
            leaked |= bytes.windows(5).any(|w| w == b"Lunch" || w == b"lunch");
        }
        self.n.step(
            "server sees ciphertext only",
            !leaked,
            "no message text in the server's files",
        )
    }
}
