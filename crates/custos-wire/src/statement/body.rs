//! The fields of each statement type and their canonical encodings.
//!
//! Payloads that other parts of Custos define (escrow day keys, warrant
//! bytes, court signatures) are carried as bounded opaque byte strings; their
//! own specifications give them meaning.

use sha2::{Digest, Sha256};

use crate::WireError;
use crate::codec::{Reader, Writer};
use crate::manifest::Role;

/// Longest participant, court, authority, custodian or provider name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest public key carried in a [`ParticipantKey`] (room for post-quantum keys).
pub const MAX_PUBLIC_KEY_LEN: usize = 2_048;
/// Longest encoded escrow day key.
pub const MAX_DAY_KEY_LEN: usize = 8_192;
/// Longest court signature.
pub const MAX_COURT_SIGNATURE_LEN: usize = 256;
/// Longest encoded warrant in a [`WarrantUnsealing`].
pub const MAX_WARRANT_LEN: usize = 16_384;
/// Longest [`Interception::recovery`] record: room for the sealed not-after
/// and 16 targets with the AEAD tag.
pub const MAX_RECOVERY_LEN: usize = 512;

/// The type of a statement: its tag on the wire and its key in audit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum StatementKind {
    /// Tag 1: [`ParticipantKey`].
    ParticipantKey,
    /// Tag 2: [`EscrowDayKey`].
    EscrowDayKey,
    /// Tag 3: [`WarrantCommitment`].
    WarrantCommitment,
    /// Tag 4: [`KeyRelease`].
    KeyRelease,
    /// Tag 5: [`Interception`].
    Interception,
    /// Tag 6: [`WarrantUnsealing`].
    WarrantUnsealing,
    /// Tag 7: [`EmbargoExtension`].
    EmbargoExtension,
    /// Tag 8: [`DayKeyErasure`].
    DayKeyErasure,
    /// Tag 9: [`ProviderFrankingKey`].
    ProviderFrankingKey,
    /// Tag 10: [`WarrantRevocation`].
    WarrantRevocation,
    /// Tag 11: [`ManifestPublication`].
    ManifestPublication,
    /// Tag 12: [`KeyDirectoryEpoch`].
    KeyDirectoryEpoch,
    /// Tag 13: [`HashListRoot`].
    HashListRoot,
    /// Tag 14: [`MatchingPolicy`].
    MatchingPolicy,
    /// Tag 15: [`MatchingCases`].
    MatchingCases,
}

impl StatementKind {
    /// Every kind, in tag order.
    pub const ALL: [StatementKind; 15] = [
        Self::ParticipantKey,
        Self::EscrowDayKey,
        Self::WarrantCommitment,
        Self::KeyRelease,
        Self::Interception,
        Self::WarrantUnsealing,
        Self::EmbargoExtension,
        Self::DayKeyErasure,
        Self::ProviderFrankingKey,
        Self::WarrantRevocation,
        Self::ManifestPublication,
        Self::KeyDirectoryEpoch,
        Self::HashListRoot,
        Self::MatchingPolicy,
        Self::MatchingCases,
    ];

    /// The wire tag.
    pub fn tag(self) -> u8 {
        match self {
            Self::ParticipantKey => 1,
            Self::EscrowDayKey => 2,
            Self::WarrantCommitment => 3,
            Self::KeyRelease => 4,
            Self::Interception => 5,
            Self::WarrantUnsealing => 6,
            Self::EmbargoExtension => 7,
            Self::DayKeyErasure => 8,
            Self::ProviderFrankingKey => 9,
            Self::WarrantRevocation => 10,
            Self::ManifestPublication => 11,
            Self::KeyDirectoryEpoch => 12,
            Self::HashListRoot => 13,
            Self::MatchingPolicy => 14,
            Self::MatchingCases => 15,
        }
    }

    /// The kind with wire tag `tag`; an unknown tag is an error.
    pub fn from_tag(tag: u8) -> Result<Self, WireError> {
        Self::ALL
            .into_iter()
            .find(|k| k.tag() == tag)
            .ok_or(WireError::InvalidValue {
                field: "type",
                reason: "unknown statement type",
            })
    }

    /// A stable snake_case name, used in audit output and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::ParticipantKey => "participant_key",
            Self::EscrowDayKey => "escrow_day_key",
            Self::WarrantCommitment => "warrant_commitment",
            Self::KeyRelease => "key_release",
            Self::Interception => "interception",
            Self::WarrantUnsealing => "warrant_unsealing",
            Self::EmbargoExtension => "embargo_extension",
            Self::DayKeyErasure => "day_key_erasure",
            Self::ProviderFrankingKey => "provider_franking_key",
            Self::WarrantRevocation => "warrant_revocation",
            Self::ManifestPublication => "manifest_publication",
            Self::KeyDirectoryEpoch => "key_directory_epoch",
            Self::HashListRoot => "hash_list_root",
            Self::MatchingPolicy => "matching_policy",
            Self::MatchingCases => "matching_cases",
        }
    }
}

/// What a published key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyPurpose {
    /// Tag 1: an Ed25519 key that signs statements, warrants or requests.
    Signing,
    /// Tag 2: an HPKE key that key shares are sealed to.
    Hpke,
    /// Tag 3: a user or device identity key.
    Identity,
}

impl KeyPurpose {
    fn tag(self) -> u8 {
        match self {
            Self::Signing => 1,
            Self::Hpke => 2,
            Self::Identity => 3,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, WireError> {
        match tag {
            1 => Ok(Self::Signing),
            2 => Ok(Self::Hpke),
            3 => Ok(Self::Identity),
            _ => Err(WireError::InvalidValue {
                field: "purpose",
                reason: "unknown key purpose",
            }),
        }
    }
}

/// `SHA-256(salt || warrant)`: the commitment a [`WarrantCommitment`] publishes
/// and a [`WarrantUnsealing`] opens. The 32-byte random salt keeps a guessable
/// warrant hidden until it is unsealed.
pub fn warrant_commitment(salt: &[u8; 32], warrant: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(warrant);
    h.finalize().into()
}

/// A participant publishes one of its public keys, so that everyone uses the
/// same key for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantKey {
    /// The participant's name, as in the deployment manifest.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// What the key is for.
    pub purpose: KeyPurpose,
    /// The encoded public key (at most [`MAX_PUBLIC_KEY_LEN`] bytes).
    pub public_key: Vec<u8>,
    /// From when the key is valid, Unix seconds.
    pub valid_from: u64,
}

/// The public part of one UTC day's escrow master key, from the custodians' DKG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscrowDayKey {
    /// The UTC day number (`unix_seconds / 86400`).
    pub day: u32,
    /// Shares needed to open (t).
    pub threshold: u8,
    /// Custodians holding shares (n).
    pub custodians: u8,
    /// Master public key and verification keys, encoded per the escrow spec (opaque here).
    pub day_key: Vec<u8>,
}

/// An authority's public commitment to a court-signed warrant. Every warrant
/// is counted before any key is released, while its content stays sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarrantCommitment {
    /// [`warrant_commitment`] of the salt and the encoded warrant.
    pub commitment: [u8; 32],
    /// Issuing court.
    pub court: String,
    /// Requesting authority.
    pub authority: String,
    /// When the court issued it, Unix seconds.
    pub issued_at: u64,
    /// When it must be unsealed at the latest, Unix seconds.
    pub embargo_until: u64,
    /// Number of target conversations.
    pub targets: u16,
    /// Number of days covered.
    pub days: u16,
    /// The court's signature over the warrant (opaque here; checked by custodians).
    pub court_signature: Vec<u8>,
}

/// A custodian records that it released its key shares under a warrant. It
/// logs this before it returns the shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRelease {
    /// The warrant's commitment.
    pub warrant: [u8; 32],
    /// The releasing custodian.
    pub custodian: String,
    /// Number of conversation-days released.
    pub conversation_days: u16,
    /// SHA-256 of the authority's request, which lists the conversation-days;
    /// the list itself stays sealed with the warrant.
    pub request_hash: [u8; 32],
    /// When the shares were released, Unix seconds.
    pub released_at: u64,
}

/// The provider records that it keeps target envelopes under a warrant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interception {
    /// The warrant's commitment.
    pub warrant: [u8; 32],
    /// The provider.
    pub provider: String,
    /// Number of conversations kept.
    pub conversations: u16,
    /// First UTC day kept.
    pub first_day: u32,
    /// Last UTC day kept.
    pub last_day: u32,
    /// When keeping started, Unix seconds.
    pub started_at: u64,
    /// The provider's sealed recovery record: what it needs to keep again
    /// after losing its database (the warrant's targets and not-after),
    /// encrypted under a key only the provider can derive. Opaque to every
    /// other reader; empty if the provider keeps none
    /// (`docs/spec/interception.md`).
    pub recovery: Vec<u8>,
}

/// The warrant itself, published when its embargo ends so that the people
/// affected can be told. Anyone can check it against the commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarrantUnsealing {
    /// The warrant's commitment.
    pub warrant: [u8; 32],
    /// The commitment salt.
    pub salt: [u8; 32],
    /// The encoded, court-signed warrant (opaque here).
    pub warrant_bytes: Vec<u8>,
    /// When it was unsealed, Unix seconds.
    pub unsealed_at: u64,
}

impl WarrantUnsealing {
    /// Whether the salt and warrant open the commitment.
    pub fn opens_commitment(&self) -> bool {
        warrant_commitment(&self.salt, &self.warrant_bytes) == self.warrant
    }
}

/// A court extends a warrant's embargo. Extensions are public and counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbargoExtension {
    /// The warrant's commitment.
    pub warrant: [u8; 32],
    /// The extending court.
    pub court: String,
    /// The new end of the embargo, Unix seconds.
    pub embargo_until: u64,
    /// When the extension was issued, Unix seconds.
    pub issued_at: u64,
}

/// A custodian records that it erased its share of a day key; from then on it
/// cannot help open that day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayKeyErasure {
    /// The UTC day whose share was erased.
    pub day: u32,
    /// The custodian.
    pub custodian: String,
    /// When it was erased, Unix seconds.
    pub erased_at: u64,
}

/// The Ed25519 key with which the provider signs delivery tags (franking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFrankingKey {
    /// The provider.
    pub provider: String,
    /// The Ed25519 public key.
    pub public_key: [u8; 32],
    /// From when it signs tags, Unix seconds.
    pub valid_from: u64,
}

/// A court revokes a warrant: from its inclusion in the log on, custodians
/// release nothing more under it and the provider stops keeping envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarrantRevocation {
    /// The warrant's commitment.
    pub warrant: [u8; 32],
    /// The revoking court (must be the court that issued the warrant).
    pub court: String,
    /// When the court revoked it, Unix seconds.
    pub revoked_at: u64,
}

/// The log publishes the hash of the deployment manifest it runs under, so
/// that every device, custodian and auditor can check that it holds the same
/// manifest as everyone else, and a changed manifest is public.
///
/// It carries no timestamp on purpose: the same log publishing the same
/// manifest again (after a restart) signs the same bytes, and the log keeps
/// one entry for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPublication {
    /// The log participant (its checkpoint origin), as in the manifest.
    pub log: String,
    /// SHA-256 of the manifest's canonical TOML form
    /// ([`crate::manifest::Manifest::hash`]).
    pub manifest_hash: [u8; 32],
}

/// The provider publishes the root hash of one epoch of its key directory
/// (docs/design/0016-key-transparency.md), so that every device checks
/// lookup proofs against the same root: a directory shown to one device
/// and not another would need two statements for one epoch, in public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDirectoryEpoch {
    /// The provider.
    pub provider: String,
    /// The directory epoch (1, 2, ... without gaps).
    pub epoch: u64,
    /// The epoch's root hash (`akd`, Custos configuration).
    pub root_hash: [u8; 32],
    /// How many keys changed in this epoch.
    pub changes: u32,
    /// When the epoch was published, Unix seconds.
    pub published_at: u64,
}

/// The provider publishes the root of the blinded hash table that devices
/// scan pictures against (known-content detection, DESIGN.md §5), with what a
/// device checks the table against: the public list size, the samples per
/// hash, and the two organisations whose signatures every entry carries.
///
/// # Security meaning
/// Every device refuses a table whose root, size, samples or organisations
/// are not in such a statement, so every device scans against the same list
/// and a list aimed at one user would be public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashListRoot {
    /// The provider.
    pub provider: String,
    /// `custos_psi::BlindedTable::root` of the table.
    pub root: [u8; 32],
    /// Number of listed hashes.
    pub list_size: u32,
    /// Samples (slots) per hash.
    pub slots: u8,
    /// Bits per sample.
    pub sample_bits: u8,
    /// Ed25519 key of organisation A (as in the manifest's `[matching]`).
    pub org_a: [u8; 32],
    /// Ed25519 key of organisation B.
    pub org_b: [u8; 32],
    /// When the table took effect, Unix seconds.
    pub published_at: u64,
}

/// The provider publishes whether it matches pictures, with the threshold
/// and the synthetic-voucher rate devices use.
///
/// # Security meaning
/// Users can see whether and how a deployment matches; a device follows the
/// manifest's numbers and refuses to make vouchers if the logged policy
/// differs from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchingPolicy {
    /// The provider.
    pub provider: String,
    /// Whether devices make vouchers at all.
    pub enabled: bool,
    /// Matches per account before the service can open any (`T`).
    pub threshold: u16,
    /// Synthetic vouchers, parts per million of pictures.
    pub synthetic_rate_ppm: u32,
    /// The table this policy applies to (a [`HashListRoot`] root).
    pub table_root: [u8; 32],
}

/// The provider's public figures of matching (issue 15 item 6): how many
/// accounts passed the threshold and how many review cases were opened,
/// confirmed and dismissed, all counted since the service began, as of
/// `as_of`. Published at most once per period, and only when a figure
/// changed (docs/design/0020-matching-figures-in-the-log.md).
///
/// # Security meaning
/// No account, case number, hash or time of a single case is in it: the
/// public learns the totals and, from the statement times, the period in
/// which they changed. The figures are the provider's claim; what the
/// public can check is that they never go down, that no more cases are
/// decided than opened (refused at decoding), and that every provider's
/// statement is in the log for everyone alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchingCases {
    /// The provider.
    pub provider: String,
    /// The table in force (a [`HashListRoot`] root).
    pub table_root: [u8; 32],
    /// The figures are as of this time, Unix seconds.
    pub as_of: u64,
    /// Accounts that reached the threshold (each counted once).
    pub accounts_matched: u32,
    /// Review cases opened.
    pub cases_opened: u32,
    /// Cases a moderator confirmed (a clearinghouse package was made).
    pub cases_confirmed: u32,
    /// Cases a moderator dismissed.
    pub cases_dismissed: u32,
}

impl MatchingCases {
    fn check(&self) -> Result<(), WireError> {
        if u64::from(self.cases_confirmed) + u64::from(self.cases_dismissed)
            > u64::from(self.cases_opened)
        {
            return Err(WireError::InvalidValue {
                field: "cases_dismissed",
                reason: "more cases decided than opened",
            });
        }
        Ok(())
    }

    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "provider", &self.provider)?;
        self.check()?;
        w.raw(&self.table_root)
            .u64(self.as_of)
            .u32(self.accounts_matched)
            .u32(self.cases_opened)
            .u32(self.cases_confirmed)
            .u32(self.cases_dismissed);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let s = Self {
            provider: name(r, "provider")?,
            table_root: r.field("table_root").array()?,
            as_of: r.field("as_of").u64()?,
            accounts_matched: r.field("accounts_matched").u32()?,
            cases_opened: r.field("cases_opened").u32()?,
            cases_confirmed: r.field("cases_confirmed").u32()?,
            cases_dismissed: r.field("cases_dismissed").u32()?,
        };
        s.check()?;
        Ok(s)
    }
}

impl HashListRoot {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "provider", &self.provider)?;
        w.raw(&self.root)
            .u32(self.list_size)
            .u8(self.slots)
            .u8(self.sample_bits)
            .raw(&self.org_a)
            .raw(&self.org_b)
            .u64(self.published_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            provider: name(r, "provider")?,
            root: r.field("root").array()?,
            list_size: r.field("list_size").u32()?,
            slots: r.field("slots").u8()?,
            sample_bits: r.field("sample_bits").u8()?,
            org_a: r.field("org_a").array()?,
            org_b: r.field("org_b").array()?,
            published_at: r.field("published_at").u64()?,
        })
    }
}

impl MatchingPolicy {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "provider", &self.provider)?;
        if self.synthetic_rate_ppm > 1_000_000 {
            return Err(WireError::InvalidValue {
                field: "synthetic_rate_ppm",
                reason: "at most 1,000,000",
            });
        }
        w.u8(u8::from(self.enabled))
            .u16(self.threshold)
            .u32(self.synthetic_rate_ppm)
            .raw(&self.table_root);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let provider = name(r, "provider")?;
        let enabled = match r.field("enabled").u8()? {
            0 => false,
            1 => true,
            _ => {
                return Err(WireError::InvalidValue {
                    field: "enabled",
                    reason: "must be 0 or 1",
                });
            }
        };
        let threshold = r.field("threshold").u16()?;
        let synthetic_rate_ppm = r.field("synthetic_rate_ppm").u32()?;
        if synthetic_rate_ppm > 1_000_000 {
            return Err(WireError::InvalidValue {
                field: "synthetic_rate_ppm",
                reason: "at most 1,000,000",
            });
        }
        Ok(Self {
            provider,
            enabled,
            threshold,
            synthetic_rate_ppm,
            table_root: r.field("table_root").array()?,
        })
    }
}

fn name(r: &mut Reader<'_>, field: &'static str) -> Result<String, WireError> {
    let s = r.field(field).str8(MAX_NAME_LEN)?;
    if s.is_empty() {
        return Err(WireError::InvalidValue {
            field,
            reason: "must not be empty",
        });
    }
    Ok(s.to_owned())
}

fn put_name(w: &mut Writer, field: &'static str, s: &str) -> Result<(), WireError> {
    if s.is_empty() {
        return Err(WireError::InvalidValue {
            field,
            reason: "must not be empty",
        });
    }
    w.bytes8(field, s.as_bytes(), MAX_NAME_LEN)?;
    Ok(())
}

impl ParticipantKey {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "name", &self.name)?;
        w.u8(self.role.tag()).u8(self.purpose.tag());
        w.bytes16("public_key", &self.public_key, MAX_PUBLIC_KEY_LEN)?;
        w.u64(self.valid_from);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            name: name(r, "name")?,
            role: Role::from_tag(r.field("role").u8()?)?,
            purpose: KeyPurpose::from_tag(r.field("purpose").u8()?)?,
            public_key: r.field("public_key").bytes16(MAX_PUBLIC_KEY_LEN)?.to_vec(),
            valid_from: r.field("valid_from").u64()?,
        })
    }
}

impl EscrowDayKey {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.u32(self.day).u8(self.threshold).u8(self.custodians);
        w.bytes16("day_key", &self.day_key, MAX_DAY_KEY_LEN)?;
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            day: r.field("day").u32()?,
            threshold: r.field("threshold").u8()?,
            custodians: r.field("custodians").u8()?,
            day_key: r.field("day_key").bytes16(MAX_DAY_KEY_LEN)?.to_vec(),
        })
    }
}

impl WarrantCommitment {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.commitment);
        put_name(w, "court", &self.court)?;
        put_name(w, "authority", &self.authority)?;
        w.u64(self.issued_at)
            .u64(self.embargo_until)
            .u16(self.targets)
            .u16(self.days);
        w.bytes16(
            "court_signature",
            &self.court_signature,
            MAX_COURT_SIGNATURE_LEN,
        )?;
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            commitment: r.field("commitment").array()?,
            court: name(r, "court")?,
            authority: name(r, "authority")?,
            issued_at: r.field("issued_at").u64()?,
            embargo_until: r.field("embargo_until").u64()?,
            targets: r.field("targets").u16()?,
            days: r.field("days").u16()?,
            court_signature: r
                .field("court_signature")
                .bytes16(MAX_COURT_SIGNATURE_LEN)?
                .to_vec(),
        })
    }
}

impl KeyRelease {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.warrant);
        put_name(w, "custodian", &self.custodian)?;
        w.u16(self.conversation_days)
            .raw(&self.request_hash)
            .u64(self.released_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            warrant: r.field("warrant").array()?,
            custodian: name(r, "custodian")?,
            conversation_days: r.field("conversation_days").u16()?,
            request_hash: r.field("request_hash").array()?,
            released_at: r.field("released_at").u64()?,
        })
    }
}

impl Interception {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.warrant);
        put_name(w, "provider", &self.provider)?;
        w.u16(self.conversations)
            .u32(self.first_day)
            .u32(self.last_day)
            .u64(self.started_at);
        w.bytes16("recovery", &self.recovery, MAX_RECOVERY_LEN)?;
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            warrant: r.field("warrant").array()?,
            provider: name(r, "provider")?,
            conversations: r.field("conversations").u16()?,
            first_day: r.field("first_day").u32()?,
            last_day: r.field("last_day").u32()?,
            started_at: r.field("started_at").u64()?,
            recovery: r.field("recovery").bytes16(MAX_RECOVERY_LEN)?.to_vec(),
        })
    }
}

impl WarrantUnsealing {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.warrant).raw(&self.salt);
        w.bytes16("warrant_bytes", &self.warrant_bytes, MAX_WARRANT_LEN)?;
        w.u64(self.unsealed_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            warrant: r.field("warrant").array()?,
            salt: r.field("salt").array()?,
            warrant_bytes: r.field("warrant_bytes").bytes16(MAX_WARRANT_LEN)?.to_vec(),
            unsealed_at: r.field("unsealed_at").u64()?,
        })
    }
}

impl EmbargoExtension {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.warrant);
        put_name(w, "court", &self.court)?;
        w.u64(self.embargo_until).u64(self.issued_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            warrant: r.field("warrant").array()?,
            court: name(r, "court")?,
            embargo_until: r.field("embargo_until").u64()?,
            issued_at: r.field("issued_at").u64()?,
        })
    }
}

impl DayKeyErasure {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.u32(self.day);
        put_name(w, "custodian", &self.custodian)?;
        w.u64(self.erased_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            day: r.field("day").u32()?,
            custodian: name(r, "custodian")?,
            erased_at: r.field("erased_at").u64()?,
        })
    }
}

impl ProviderFrankingKey {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "provider", &self.provider)?;
        w.raw(&self.public_key).u64(self.valid_from);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            provider: name(r, "provider")?,
            public_key: r.field("public_key").array()?,
            valid_from: r.field("valid_from").u64()?,
        })
    }
}

impl WarrantRevocation {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        w.raw(&self.warrant);
        put_name(w, "court", &self.court)?;
        w.u64(self.revoked_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            warrant: r.field("warrant").array()?,
            court: name(r, "court")?,
            revoked_at: r.field("revoked_at").u64()?,
        })
    }
}

impl ManifestPublication {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "log", &self.log)?;
        w.raw(&self.manifest_hash);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            log: name(r, "log")?,
            manifest_hash: r.field("manifest_hash").array()?,
        })
    }
}

impl KeyDirectoryEpoch {
    pub(super) fn write(&self, w: &mut Writer) -> Result<(), WireError> {
        put_name(w, "provider", &self.provider)?;
        w.u64(self.epoch)
            .raw(&self.root_hash)
            .u32(self.changes)
            .u64(self.published_at);
        Ok(())
    }

    pub(super) fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let provider = name(r, "provider")?;
        let epoch = r.field("epoch").u64()?;
        if epoch == 0 {
            return Err(WireError::InvalidValue {
                field: "epoch",
                reason: "the first published epoch is 1",
            });
        }
        Ok(Self {
            provider,
            epoch,
            root_hash: r.field("root_hash").array()?,
            changes: r.field("changes").u32()?,
            published_at: r.field("published_at").u64()?,
        })
    }
}
