//! Moderation vocabulary shared by the service, the device library and the
//! command line: what a moderator can do to a report, and the status a
//! report then has. In JSON (`docs/spec/delivery-api.md`) both are lower
//! case strings.

use serde::{Deserialize, Serialize};

/// A moderator's action on a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// No violation: close the report.
    Dismiss,
    /// Record a warning against the sender.
    Warn,
    /// Suspend the sender: the service refuses what it sends, for a time or
    /// for good.
    Suspend,
    /// Export the report package for a clearinghouse or a court.
    Escalate,
}

impl Action {
    /// Every action, in the order the API documents them.
    pub const ALL: [Action; 4] = [
        Action::Dismiss,
        Action::Warn,
        Action::Suspend,
        Action::Escalate,
    ];

    /// The action's name on the wire, e.g. `suspend`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Dismiss => "dismiss",
            Self::Warn => "warn",
            Self::Suspend => "suspend",
            Self::Escalate => "escalate",
        }
    }

    /// The action named `name` on the wire, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The status a report has after this action.
    pub fn status(self) -> ReportStatus {
        match self {
            Self::Dismiss => ReportStatus::Dismissed,
            Self::Warn => ReportStatus::Warned,
            Self::Suspend => ReportStatus::Suspended,
            Self::Escalate => ReportStatus::Escalated,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a report stands in the moderation queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// Waiting for a moderator.
    Open,
    /// Closed without action.
    Dismissed,
    /// The sender was warned.
    Warned,
    /// The sender was suspended.
    Suspended,
    /// The package was exported.
    Escalated,
}

impl ReportStatus {
    /// The status's name on the wire, e.g. `suspended`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Dismissed => "dismissed",
            Self::Warned => "warned",
            Self::Suspended => "suspended",
            Self::Escalated => "escalated",
        }
    }
}

impl std::fmt::Display for ReportStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::{Action, ReportStatus};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Body {
        action: Action,
        status: ReportStatus,
    }

    #[test]
    fn serde_names_are_the_wire_names() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
            let body = Body {
                action: a,
                status: a.status(),
            };
            let text = toml::to_string(&body).unwrap();
            assert_eq!(
                text,
                format!("action = \"{a}\"\nstatus = \"{}\"\n", a.status())
            );
            assert_eq!(toml::from_str::<Body>(&text).unwrap(), body);
        }
        assert_eq!(Action::from_name("ban"), None);
        assert!(toml::from_str::<Body>("action = \"ban\"\nstatus = \"open\"\n").is_err());
        assert_eq!(Action::Suspend.status(), ReportStatus::Suspended);
    }
}
