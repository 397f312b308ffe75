//! The deployment manifest: every participant, its role, jurisdiction,
//! endpoint and Ed25519 key, plus the quorums and policy limits.
//!
//! # Security meaning
//! The manifest is the trust root of a deployment. The log admits a statement
//! only from a manifest participant whose [`Role`] may publish that
//! [`StatementKind`] ([`Role::may_publish`]); verifiers take the log key, the
//! witness keys and the witness quorum from it. Whoever edits the manifest
//! decides who is trusted, so its hash belongs in the log and operators must
//! compare it out of band.
//!
//! The format is TOML:
//!
//! ```toml
//! version = 1
//! witness_quorum = 2
//! custodian_threshold = 3
//!
//! [policy]
//! max_targets = 16
//! max_days = 31
//! max_embargo_days = 180
//! erasure_grace_days = 1
//! day_grace_secs = 600
//!
//! [[participant]]
//! name = "log.custos.example"
//! role = "log"
//! jurisdiction = "EU"
//! endpoint = "http://127.0.0.1:7000"
//! public_key = "<64 hex digits>"
//! ```

use std::collections::HashSet;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::WireError;
use crate::statement::StatementKind;

/// Version of the manifest format this build reads.
pub const MANIFEST_VERSION: u32 = 1;

/// What a participant does in a deployment; decides which statements it may publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// Runs the transparency log; signs checkpoints.
    Log,
    /// Cosigns checkpoints after checking consistency.
    Witness,
    /// Holds day-key shares; releases them under logged warrants.
    Custodian,
    /// Signs warrants and embargo extensions.
    Court,
    /// Requests access under warrants; commits them to the log.
    Authority,
    /// Runs the delivery service; keeps envelopes under warrants; franks messages.
    Provider,
    /// Reviews reports.
    Moderator,
    /// Reads the log; publishes nothing.
    Auditor,
}

impl Role {
    /// The wire tag used inside statements.
    pub fn tag(self) -> u8 {
        match self {
            Self::Log => 1,
            Self::Witness => 2,
            Self::Custodian => 3,
            Self::Court => 4,
            Self::Authority => 5,
            Self::Provider => 6,
            Self::Moderator => 7,
            Self::Auditor => 8,
        }
    }

    /// The role with wire tag `tag`.
    pub fn from_tag(tag: u8) -> Result<Self, WireError> {
        Ok(match tag {
            1 => Self::Log,
            2 => Self::Witness,
            3 => Self::Custodian,
            4 => Self::Court,
            5 => Self::Authority,
            6 => Self::Provider,
            7 => Self::Moderator,
            8 => Self::Auditor,
            _ => {
                return Err(WireError::InvalidValue {
                    field: "role",
                    reason: "unknown role",
                });
            }
        })
    }

    /// The role rule: whether a participant with this role may publish a
    /// statement of `kind`. Publishing one's own key is open to every role
    /// but auditors; every other type belongs to the one role (or two, for
    /// unsealing) that the design makes accountable for it. The manifest's
    /// hash is published by the log, whose key the manifest names.
    pub fn may_publish(self, kind: StatementKind) -> bool {
        use StatementKind as K;
        match kind {
            K::ParticipantKey => self != Self::Auditor,
            K::EscrowDayKey | K::KeyRelease | K::DayKeyErasure => self == Self::Custodian,
            K::WarrantCommitment => self == Self::Authority,
            K::Interception | K::ProviderFrankingKey | K::KeyDirectoryEpoch => {
                self == Self::Provider
            }
            K::HashListRoot | K::MatchingPolicy | K::MatchingCases => self == Self::Provider,
            K::WarrantUnsealing => matches!(self, Self::Custodian | Self::Court),
            K::EmbargoExtension | K::WarrantRevocation => self == Self::Court,
            K::ManifestPublication => self == Self::Log,
        }
    }
}

/// One participant of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// Unique name; for the log, its checkpoint origin; for a witness, its
    /// cosignature key name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Legal jurisdiction (custodians should be in different ones).
    pub jurisdiction: String,
    /// Base URL of its service, if it runs one.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Ed25519 public key, 64 hex digits.
    pub public_key: String,
}

impl Participant {
    /// The participant's Ed25519 key (validated when the manifest was loaded).
    pub fn verifying_key(&self) -> Result<VerifyingKey, ManifestError> {
        parse_key(&self.public_key).map_err(|reason| ManifestError::BadKey {
            name: self.name.clone(),
            reason,
        })
    }
}

/// Limits custodians enforce on warrants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Most target conversations per warrant.
    pub max_targets: u16,
    /// Most days per warrant.
    pub max_days: u16,
    /// Longest embargo, in days.
    pub max_embargo_days: u16,
    /// Days after a day ends before custodians erase its key share.
    pub erasure_grace_days: u16,
    /// Seconds after midnight (UTC) during which the delivery service still
    /// accepts chains of the day before, and recipients still accept
    /// envelopes of such chains. A day's escrow key covers its day plus
    /// this grace and no more. At most 86,399; default 600.
    #[serde(default = "default_day_grace_secs")]
    pub day_grace_secs: u32,
}

/// Default [`Policy::day_grace_secs`]: 10 minutes.
pub const DEFAULT_DAY_GRACE_SECS: u32 = 600;

fn default_day_grace_secs() -> u32 {
    DEFAULT_DAY_GRACE_SECS
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_targets: 16,
            max_days: 31,
            max_embargo_days: 180,
            erasure_grace_days: 1,
            day_grace_secs: DEFAULT_DAY_GRACE_SECS,
        }
    }
}

/// A validated deployment manifest. Only [`Manifest::from_toml`] and
/// [`Manifest::new`] build one, and both check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version; must be [`MANIFEST_VERSION`].
    pub version: u32,
    /// Witness cosignatures a verifier requires on a checkpoint.
    pub witness_quorum: usize,
    /// Custodian shares needed to open a conversation-day.
    pub custodian_threshold: usize,
    /// Warrant limits.
    #[serde(default)]
    pub policy: Policy,
    /// Known-content detection (issue 15), when the deployment matches
    /// pictures; absent otherwise (and then absent from the TOML form, so
    /// the hash of a manifest without it is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matching: Option<Matching>,
    /// Every participant.
    #[serde(rename = "participant", default)]
    pub participants: Vec<Participant>,
    /// The provider's key directory, if the deployment runs one
    /// ([`KeyDirectorySection`]). Absent from manifests without one, whose
    /// hash is unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_directory: Option<KeyDirectorySection>,
}

// ---- Key directory (docs/design/0016-key-transparency.md) ----

/// The manifest's `[key_directory]` table: devices of a deployment that
/// names one check every member key against the provider's key directory,
/// and refuse keys it does not prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDirectorySection {
    /// The directory's VRF public key (32-byte Ed25519 point, hex). Proofs
    /// are checked with it; a proof under another key is refused.
    pub vrf_public_key: String,
}

impl KeyDirectorySection {
    /// The VRF public key's bytes, checked to be a valid Ed25519 point.
    pub fn vrf_key(&self) -> Result<[u8; 32], ManifestError> {
        parse_key(&self.vrf_public_key)
            .map(|k| k.to_bytes())
            .map_err(|reason| ManifestError::BadKey {
                name: "key_directory".into(),
                reason,
            })
    }
}

impl Manifest {
    /// This manifest with a key directory named (validated).
    pub fn with_key_directory(
        mut self,
        section: KeyDirectorySection,
    ) -> Result<Self, ManifestError> {
        section.vrf_key()?;
        self.key_directory = Some(section);
        Ok(self)
    }
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Not valid TOML or fields missing / unknown.
    #[error("manifest is not valid TOML for this format: {0}")]
    Toml(String),
    /// Unknown version.
    #[error("manifest version {0} is not supported; this build reads version {MANIFEST_VERSION}")]
    Version(u32),
    /// A key is not 32 bytes of hex or not a valid Ed25519 point.
    #[error("participant `{name}` has an invalid public key: {reason}")]
    BadKey {
        /// Participant.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two participants share a name or a key.
    #[error("participant name or key `{0}` appears twice; names and keys must be unique")]
    Duplicate(String),
    /// Not exactly one log.
    #[error("the manifest must name exactly one participant with role \"log\", found {0}")]
    LogCount(usize),
    /// Quorum or threshold impossible to meet.
    #[error("{what} is {value} but must be between 1 and {max} (the number of such participants)")]
    Quorum {
        /// Which number.
        what: &'static str,
        /// Its value.
        value: usize,
        /// How many participants exist for it.
        max: usize,
    },
    /// The day grace is a day or longer.
    #[error("policy.day_grace_secs is {0} but must be below 86400 (one day)")]
    DayGrace(u32),
    /// The `[matching]` section is not usable.
    #[error("manifest [matching] section: {0}")]
    Matching(&'static str),
    /// A name is empty or longer than a statement can carry.
    #[error("participant name `{0}` must be 1 to 128 bytes without spaces or '+'")]
    BadName(String),
}

impl Manifest {
    /// Builds and validates a manifest.
    pub fn new(
        witness_quorum: usize,
        custodian_threshold: usize,
        policy: Policy,
        participants: Vec<Participant>,
    ) -> Result<Self, ManifestError> {
        let m = Self {
            version: MANIFEST_VERSION,
            witness_quorum,
            custodian_threshold,
            policy,
            matching: None,
            participants,
            key_directory: None,
        };
        m.validate()?;
        Ok(m)
    }

    /// The same manifest with its `[matching]` section set, validated.
    pub fn with_matching(mut self, matching: Matching) -> Result<Self, ManifestError> {
        self.matching = Some(matching);
        self.validate()?;
        Ok(self)
    }

    /// Parses and validates TOML.
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        let m: Self = toml::from_str(text).map_err(|e| ManifestError::Toml(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// The TOML form.
    pub fn to_toml(&self) -> Result<String, ManifestError> {
        toml::to_string(self).map_err(|e| ManifestError::Toml(e.to_string()))
    }

    /// SHA-256 of the TOML form, for publishing and comparing out of band.
    pub fn hash(&self) -> Result<[u8; 32], ManifestError> {
        Ok(Sha256::digest(self.to_toml()?.as_bytes()).into())
    }

    /// The participant holding `key`, if any.
    pub fn participant_by_key(&self, key: &[u8; 32]) -> Option<&Participant> {
        let hex_key = hex::encode(key);
        self.participants
            .iter()
            .find(|p| p.public_key.eq_ignore_ascii_case(&hex_key))
    }

    /// The participant named `name`, if any.
    pub fn participant(&self, name: &str) -> Option<&Participant> {
        self.participants.iter().find(|p| p.name == name)
    }

    /// Every participant with `role`.
    pub fn with_role(&self, role: Role) -> impl Iterator<Item = &Participant> {
        self.participants.iter().filter(move |p| p.role == role)
    }

    /// The log participant (validation guarantees exactly one).
    pub fn log(&self) -> Option<&Participant> {
        self.with_role(Role::Log).next()
    }

    fn validate(&self) -> Result<(), ManifestError> {
        if self.version != MANIFEST_VERSION {
            return Err(ManifestError::Version(self.version));
        }
        let mut seen = HashSet::new();
        for p in &self.participants {
            if p.name.is_empty()
                || p.name.len() > 128
                || p.name.chars().any(char::is_whitespace)
                || p.name.contains('+')
            {
                return Err(ManifestError::BadName(p.name.clone()));
            }
            p.verifying_key()?;
            if !seen.insert(p.name.clone()) {
                return Err(ManifestError::Duplicate(p.name.clone()));
            }
            if !seen.insert(p.public_key.to_ascii_lowercase()) {
                return Err(ManifestError::Duplicate(p.public_key.clone()));
            }
        }
        if let Some(kd) = &self.key_directory {
            kd.vrf_key()?;
        }
        let logs = self.with_role(Role::Log).count();
        if logs != 1 {
            return Err(ManifestError::LogCount(logs));
        }
        // A quorum of 0 would let the log alone show anyone any history:
        // every deployment needs at least one independent witness.
        let witnesses = self.with_role(Role::Witness).count();
        if self.witness_quorum == 0 || self.witness_quorum > witnesses {
            return Err(ManifestError::Quorum {
                what: "witness_quorum",
                value: self.witness_quorum,
                max: witnesses,
            });
        }
        if self.policy.day_grace_secs >= 86_400 {
            return Err(ManifestError::DayGrace(self.policy.day_grace_secs));
        }
        if let Some(m) = &self.matching {
            m.validate()?;
        }
        let custodians = self.with_role(Role::Custodian).count();
        if custodians > 0
            && (self.custodian_threshold == 0 || self.custodian_threshold > custodians)
        {
            return Err(ManifestError::Quorum {
                what: "custodian_threshold",
                value: self.custodian_threshold,
                max: custodians,
            });
        }
        Ok(())
    }
}

// ---- Known-content detection (issue 15): the `[matching]` section. ----

/// Default threshold `T`: matching vouchers per account before the service
/// can open any.
pub const DEFAULT_MATCH_THRESHOLD: u16 = 10;
/// Default synthetic-voucher rate: 2% of pictures (20,000 per million).
pub const DEFAULT_SYNTHETIC_RATE_PPM: u32 = 20_000;

/// Whether and how the deployment matches pictures against a list of known
/// abuse material (`docs/design/0017-threshold-matching.md`).
///
/// ```toml
/// [matching]
/// enabled = true
/// threshold = 10
/// synthetic_rate_ppm = 20000
///
/// [[matching.organisation]]
/// name = "hotline-a.example"
/// jurisdiction = "EU"
/// public_key = "<64 hex digits>"
/// ```
///
/// # Security meaning
/// Users see here whether their pictures are matched, the threshold and the
/// synthetic rate; devices follow these numbers and refuse a logged policy
/// that differs. The two organisations are the two-source rule: a list entry
/// must carry both their signatures, so neither they nor the provider alone
/// can put a hash on the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Matching {
    /// Whether devices make vouchers.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Threshold `T` (1 to 1000).
    #[serde(default = "default_match_threshold")]
    pub threshold: u16,
    /// Synthetic vouchers per million pictures.
    #[serde(default = "default_synthetic_rate")]
    pub synthetic_rate_ppm: u32,
    /// Exactly two independent child-protection organisations.
    #[serde(rename = "organisation", default)]
    pub organisations: Vec<Organisation>,
}

/// A child-protection organisation that signs list entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    /// Its name.
    pub name: String,
    /// Its jurisdiction.
    pub jurisdiction: String,
    /// Its Ed25519 entry-signing key, 64 hex digits.
    pub public_key: String,
}

impl Organisation {
    /// The organisation's key bytes (validated with the manifest).
    pub fn key_bytes(&self) -> Result<[u8; 32], ManifestError> {
        parse_key(&self.public_key)
            .map(|k| k.to_bytes())
            .map_err(|reason| ManifestError::BadKey {
                name: self.name.clone(),
                reason,
            })
    }
}

impl Matching {
    /// The two organisations' keys (A, B), in manifest order.
    pub fn organisation_keys(&self) -> Result<([u8; 32], [u8; 32]), ManifestError> {
        match self.organisations.as_slice() {
            [a, b] => Ok((a.key_bytes()?, b.key_bytes()?)),
            _ => Err(ManifestError::Matching(
                "exactly two organisations are required (two-source rule)",
            )),
        }
    }

    fn validate(&self) -> Result<(), ManifestError> {
        let (a, b) = self.organisation_keys()?;
        if a == b
            || self.organisations.first().map(|o| &o.name)
                == self.organisations.get(1).map(|o| &o.name)
        {
            return Err(ManifestError::Matching(
                "the two organisations must have distinct names and keys",
            ));
        }
        if self.threshold == 0 || self.threshold > 1000 {
            return Err(ManifestError::Matching("threshold must be 1 to 1000"));
        }
        if self.synthetic_rate_ppm > 1_000_000 {
            return Err(ManifestError::Matching(
                "synthetic_rate_ppm must be at most 1000000",
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

fn default_match_threshold() -> u16 {
    DEFAULT_MATCH_THRESHOLD
}

fn default_synthetic_rate() -> u32 {
    DEFAULT_SYNTHETIC_RATE_PPM
}

fn parse_key(hex_key: &str) -> Result<VerifyingKey, &'static str> {
    let bytes = hex::decode(hex_key).map_err(|_| "not hex")?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| "not 32 bytes")?;
    VerifyingKey::from_bytes(&arr).map_err(|_| "not an Ed25519 point")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key(seed: u8) -> String {
        hex::encode(
            SigningKey::from_bytes(&[seed; 32])
                .verifying_key()
                .to_bytes(),
        )
    }

    fn participant(name: &str, role: Role, seed: u8) -> Participant {
        Participant {
            name: name.into(),
            role,
            jurisdiction: "EU".into(),
            endpoint: None,
            public_key: key(seed),
        }
    }

    #[test]
    fn round_trips_through_toml_and_validates() {
        let m = Manifest::new(
            1,
            1,
            Policy::default(),
            vec![
                participant("log.example", Role::Log, 1),
                participant("w1.example", Role::Witness, 2),
                participant("c1.example", Role::Custodian, 3),
            ],
        )
        .unwrap();
        let text = m.to_toml().unwrap();
        assert_eq!(Manifest::from_toml(&text).unwrap(), m);
        assert_eq!(m.log().unwrap().name, "log.example");
        let k: [u8; 32] = hex::decode(key(3)).unwrap().try_into().unwrap();
        assert_eq!(m.participant_by_key(&k).unwrap().role, Role::Custodian);
    }

    #[test]
    fn refuses_bad_manifests() {
        let dup = Manifest::new(
            0,
            0,
            Policy::default(),
            vec![
                participant("log", Role::Log, 1),
                participant("x", Role::Court, 1),
            ],
        );
        assert!(matches!(dup, Err(ManifestError::Duplicate(_))));
        let quorum = Manifest::new(
            2,
            0,
            Policy::default(),
            vec![participant("l", Role::Log, 1)],
        );
        assert!(matches!(quorum, Err(ManifestError::Quorum { .. })));
        // A quorum of 0 lets the log alone decide what anyone sees.
        let zero = Manifest::new(
            0,
            0,
            Policy::default(),
            vec![
                participant("l", Role::Log, 1),
                participant("w", Role::Witness, 2),
            ],
        );
        assert!(matches!(
            zero,
            Err(ManifestError::Quorum {
                what: "witness_quorum",
                value: 0,
                ..
            })
        ));
        let grace = Manifest::new(
            1,
            0,
            Policy {
                day_grace_secs: 86_400,
                ..Policy::default()
            },
            vec![
                participant("l", Role::Log, 1),
                participant("w", Role::Witness, 2),
            ],
        );
        assert!(matches!(grace, Err(ManifestError::DayGrace(86_400))));
        let nolog = Manifest::new(0, 0, Policy::default(), vec![]);
        assert!(matches!(nolog, Err(ManifestError::LogCount(0))));
        assert!(matches!(
            Manifest::from_toml("version = 2\nwitness_quorum = 0\ncustodian_threshold = 0\n"),
            Err(ManifestError::Version(2))
        ));
        assert!(matches!(
            Manifest::from_toml("version = 1\nbogus = 1\n"),
            Err(ManifestError::Toml(_))
        ));
    }

    #[test]
    fn matching_section_round_trips_and_needs_two_sources() {
        let base = Manifest::new(
            1,
            0,
            Policy::default(),
            vec![
                participant("l", Role::Log, 1),
                participant("w", Role::Witness, 2),
            ],
        )
        .unwrap();
        let hash_without = base.hash().unwrap();
        let org = |n: &str, seed| Organisation {
            name: n.into(),
            jurisdiction: "EU".into(),
            public_key: key(seed),
        };
        let m = base
            .clone()
            .with_matching(Matching {
                enabled: true,
                threshold: 10,
                synthetic_rate_ppm: 20_000,
                organisations: vec![org("a", 5), org("b", 6)],
            })
            .unwrap();
        assert_ne!(m.hash().unwrap(), hash_without);
        assert_eq!(Manifest::from_toml(&m.to_toml().unwrap()).unwrap(), m);
        let one = base.clone().with_matching(Matching {
            enabled: true,
            threshold: 10,
            synthetic_rate_ppm: 0,
            organisations: vec![org("a", 5)],
        });
        assert!(matches!(one, Err(ManifestError::Matching(_))));
        let same = base.with_matching(Matching {
            enabled: true,
            threshold: 10,
            synthetic_rate_ppm: 0,
            organisations: vec![org("a", 5), org("b", 5)],
        });
        assert!(matches!(same, Err(ManifestError::Matching(_))));
    }

    #[test]
    fn role_rule() {
        use StatementKind as K;
        assert!(Role::Authority.may_publish(K::WarrantCommitment));
        assert!(!Role::Custodian.may_publish(K::WarrantCommitment));
        assert!(Role::Custodian.may_publish(K::KeyRelease));
        assert!(!Role::Provider.may_publish(K::KeyRelease));
        assert!(Role::Provider.may_publish(K::ProviderFrankingKey));
        assert!(Role::Court.may_publish(K::EmbargoExtension));
        assert!(Role::Court.may_publish(K::WarrantRevocation));
        assert!(!Role::Authority.may_publish(K::WarrantRevocation));
        assert!(!Role::Auditor.may_publish(K::ParticipantKey));
        for k in K::ALL {
            assert!(
                !Role::Log.may_publish(k)
                    || matches!(k, K::ParticipantKey | K::ManifestPublication)
            );
            assert!(!Role::Custodian.may_publish(K::ManifestPublication));
        }
    }
}
