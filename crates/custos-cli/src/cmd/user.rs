//! User commands: register, conversation, send, receive.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use custos_client::Device;
use custos_client::pin::ManifestPin;
use custos_wire::ConversationId;

/// Where a user's device state lives.
#[derive(Debug, Clone, Args)]
pub struct HomeArgs {
    /// The device's home directory (identity key, MLS state, history).
    #[arg(long, env = "CUSTOS_HOME", global = true)]
    pub home: Option<PathBuf>,
}

impl HomeArgs {
    fn dir(&self) -> Result<PathBuf> {
        if let Some(h) = &self.home {
            return Ok(h.clone());
        }
        let base = std::env::var_os("HOME").context("set --home or CUSTOS_HOME")?;
        Ok(PathBuf::from(base).join(".custos"))
    }
}

/// `custos register`.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The delivery service's URL, e.g. http://127.0.0.1:7000.
    #[arg(long, env = "CUSTOS_SERVER")]
    pub server: String,
    /// The account name: 1-64 characters of a-z, 0-9, '.', '_' or '-'.
    pub name: String,
    /// The deployment's transparency log. With it, the device pins the
    /// deployment manifest (--manifest or --manifest-hash), follows the log
    /// for escrow day keys, and seals and checks escrow in every chain.
    #[arg(long, env = "CUSTOS_LOG", value_name = "URL")]
    pub log: Option<String>,
    /// The deployment manifest, as the operator gave it. Its hash must be
    /// published in the log.
    #[arg(
        long,
        value_name = "FILE",
        requires = "log",
        conflicts_with = "manifest_hash"
    )]
    pub manifest: Option<PathBuf>,
    /// Take the manifest the log serves, if its SHA-256 is HEX (given by the
    /// operator out of band).
    #[arg(long, value_name = "HEX", requires = "log")]
    pub manifest_hash: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custos conversation ...`.
#[derive(Debug, Subcommand)]
pub enum ConversationCommand {
    /// Create a conversation with these members and print its id.
    Create {
        /// Account names to add.
        members: Vec<String>,
        /// Print `{"conversation":"<hex>"}`.
        #[arg(long)]
        json: bool,
    },
    /// Add members to a conversation.
    Add {
        /// Conversation id (hex).
        conversation: String,
        /// Account names to add.
        #[arg(required = true)]
        members: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove members from a conversation.
    Remove {
        /// Conversation id (hex).
        conversation: String,
        /// Account names to remove.
        #[arg(required = true)]
        members: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Leave a conversation: propose this device's removal, which the next
    /// remaining member to go online commits. From now on this device
    /// neither sends to nor reads the conversation.
    Leave {
        /// Conversation id (hex).
        conversation: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List this device's conversations and their MLS rosters.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `custos send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Conversation id (hex).
    pub conversation: String,
    /// The text (may be empty with --attach); `-` reads standard input.
    #[arg(default_value = "")]
    pub text: String,
    /// Attach a file (repeatable, at most 8): encrypted on this device,
    /// only the ciphertext is uploaded.
    #[arg(long = "attach", value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `custos notices`.
#[derive(Debug, Args)]
pub struct NoticesArgs {
    /// Print one JSON array.
    #[arg(long)]
    pub json: bool,
}

/// `custos receive`.
#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Keep listening for this many seconds after the mailbox is empty.
    #[arg(long)]
    pub wait: Option<u64>,
    /// Print one JSON object per line.
    #[arg(long)]
    pub json: bool,
    /// Keep messages this many days: older ones are purged after receiving
    /// (default: kept forever).
    #[arg(long, env = "CUSTOS_KEEP_DAYS")]
    pub keep_days: Option<u32>,
}

pub(crate) fn conversation_id(s: &str) -> Result<ConversationId> {
    ConversationId::from_hex(s)
        .with_context(|| format!("`{s}` is not a conversation id (32 hex digits)"))
}

pub(crate) async fn open(home: &HomeArgs) -> Result<Device> {
    let dir = home.dir()?;
    Device::open(&dir, custos_clock::system())
        .await
        .with_context(|| format!("opening the account in {}", dir.display()))
}

/// Runs `custos register`.
pub async fn register(home: &HomeArgs, args: RegisterArgs) -> Result<()> {
    let dir = home.dir()?;
    let pin = match (&args.log, &args.manifest, &args.manifest_hash) {
        (None, _, _) => None,
        (Some(log), Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the manifest {}", file.display()))?;
            Some(ManifestPin::from_toml(log, &text)?)
        }
        (Some(log), None, Some(hash)) => {
            let expected: [u8; 32] = hex::decode(hash)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--manifest-hash must be 64 hex digits (a SHA-256)")?;
            Some(ManifestPin::fetch(log, &expected).await?)
        }
        (Some(_), None, None) => {
            bail!("--log needs --manifest FILE or --manifest-hash HEX from the operator")
        }
    };
    let clock = custos_clock::system();
    let device = match pin {
        Some(pin) => Device::register_pinned(&dir, &args.server, &args.name, clock, pin).await,
        None => Device::register(&dir, &args.server, &args.name, clock).await,
    }
    .with_context(|| format!("registering {} at {}", args.name, args.server))?;
    let manifest = device
        .pinned_manifest()
        .map(|m| m.hash().map(hex::encode))
        .transpose()?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({"name": device.name(), "identity_key": hex::encode(device.identity_key()), "home": dir, "manifest": manifest})
        );
    } else {
        println!(
            "registered {} (identity key {})",
            device.name(),
            hex::encode(device.identity_key())
        );
    }
    Ok(())
}

/// Runs `custos conversation ...`.
pub async fn conversation(home: &HomeArgs, cmd: ConversationCommand) -> Result<()> {
    let mut device = open(home).await?;
    device
        .sync()
        .await
        .context("catching up with the mailbox")?;
    match cmd {
        ConversationCommand::Create { members, json } => {
            let conv = device.create_conversation(&members).await?;
            if json {
                println!("{}", serde_json::json!({"conversation": conv.to_hex()}));
            } else {
                println!("{conv}");
            }
        }
        ConversationCommand::Add {
            conversation,
            members,
            json,
        } => {
            let conv = conversation_id(&conversation)?;
            device.add_members(&conv, &members).await?;
            print_done(json, &conv, "added", &members);
        }
        ConversationCommand::Remove {
            conversation,
            members,
            json,
        } => {
            let conv = conversation_id(&conversation)?;
            device.remove_members(&conv, &members).await?;
            print_done(json, &conv, "removed", &members);
        }
        ConversationCommand::Leave { conversation, json } => {
            let conv = conversation_id(&conversation)?;
            device.leave_conversation(&conv).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"conversation": conv.to_hex(), "left": true})
                );
            } else {
                println!("left {conv}; a remaining member commits the removal when next online");
            }
        }
        ConversationCommand::List { json } => {
            let list = device.conversations()?;
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                for c in list {
                    println!(
                        "{}  epoch {}  {}{}",
                        c.conversation,
                        c.epoch,
                        c.members.join(", "),
                        if c.leaving {
                            "  (left; removal pending)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
    }
    Ok(())
}

fn print_done(json: bool, conv: &ConversationId, what: &str, members: &[String]) {
    if json {
        println!(
            "{}",
            serde_json::json!({"conversation": conv.to_hex(), what: members})
        );
    } else {
        println!("{what} {} in {conv}", members.join(", "));
    }
}

/// Runs `custos send`.
pub async fn send(home: &HomeArgs, args: SendArgs) -> Result<()> {
    let conv = conversation_id(&args.conversation)?;
    let text = if args.text == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the message from standard input")?;
        s
    } else {
        args.text
    };
    if text.len() > custos_wire::payload::MAX_BODY_LEN {
        bail!(
            "the message is longer than {} bytes",
            custos_wire::payload::MAX_BODY_LEN
        );
    }
    if text.is_empty() && args.attach.is_empty() {
        bail!("nothing to send: give a text, or --attach FILE");
    }
    let files = args
        .attach
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let mut device = open(home).await?;
    device
        .sync()
        .await
        .context("catching up with the mailbox")?;
    let sent = if files.is_empty() {
        device.send_text(&conv, &text).await?
    } else {
        device.send_with_attachments(&conv, &text, &files).await?
    };
    if args.json {
        println!("{}", serde_json::to_string(&sent)?);
    } else {
        println!("sent {}", sent.id);
    }
    Ok(())
}

/// Runs `custos receive`.
pub async fn receive(home: &HomeArgs, args: ReceiveArgs) -> Result<()> {
    let mut device = open(home).await?;
    let messages = device.receive(args.wait.map(Duration::from_secs)).await?;
    if let Some(days) = args.keep_days {
        device.purge_history_older_than(days)?;
    }
    // Self-monitoring: keys for this account that this device did not make.
    for a in device.key_alerts()? {
        if args.json {
            println!("{}", serde_json::json!({"event": "key_alert", "alert": a}));
        } else {
            eprintln!("{a}");
        }
    }
    // Refusals first: an escrow violation names the sender, who broke the
    // deployment's rules (or runs a modified client).
    for r in device.take_refusals() {
        if args.json {
            let event = if r.escrow_violator.is_some() {
                "escrow_violation"
            } else {
                "refused"
            };
            println!(
                "{}",
                serde_json::json!({"event": event, "refused": r, "sender": r.escrow_violator})
            );
        } else if let Some(sender) = &r.escrow_violator {
            eprintln!(
                "escrow violation by {sender} in conversation {}: {} (their messages in that chain are refused)",
                r.conversation, r.reason
            );
        } else {
            eprintln!("refused item {} ({}): {}", r.seq, r.code, r.reason);
        }
    }
    // Notices of unsealed warrants that covered this device's
    // conversations: each is printed once, on the first receive that sees it.
    for n in device.take_new_notices()? {
        if args.json {
            println!("{}", serde_json::json!({"event": "notice", "notice": n}));
        } else {
            println!("{}", n.line());
        }
    }
    for m in messages {
        if args.json {
            println!("{}", serde_json::to_string(&m)?);
        } else {
            println!(
                "[{}] {}: {}",
                &m.conversation[..8.min(m.conversation.len())],
                m.sender,
                m.text
            );
            for path in &m.attachments {
                println!("    attachment saved: {path}");
            }
            for error in &m.attachment_errors {
                eprintln!("    {error}");
            }
        }
    }
    Ok(())
}

/// Runs `custos notices`: follows the log, then lists every unsealed
/// warrant that covered one of this device's conversations.
pub async fn notices(home: &HomeArgs, args: NoticesArgs) -> Result<()> {
    let mut device = open(home).await?;
    if device.pinned_manifest().is_none() {
        bail!(
            "this device pins no manifest and follows no log; register with --log to get notices"
        );
    }
    device
        .follow_log()
        .await
        .context("following the transparency log")?;
    let notices = device.notices()?;
    if args.json {
        println!("{}", serde_json::to_string(&notices)?);
    } else if notices.is_empty() {
        println!("no unsealed warrant covered your conversations");
    } else {
        for n in &notices {
            println!(
                "warrant {} of {} for {}: conversations {}, days {} to {}, legal basis: {}, unsealed at {} (log entry {})",
                n.warrant,
                n.court,
                n.authority,
                n.conversations.join(", "),
                n.first_date,
                n.last_date,
                n.legal_basis,
                n.unsealed_at,
                n.log_index
            );
        }
    }
    Ok(())
}
