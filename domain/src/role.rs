//! The roles of the privacy notice's rights procedure (§9) and the purposes
//! for which the register may be used (§4, R4).
//!
//! Stored names are explicit (`#[serde(rename)]`), so renaming a Rust
//! variant never orphans a stored event.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A role granted to a staff member through the rights procedure (R11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Sees only their own calls (R8).
    #[serde(rename = "agent")]
    Agent,
    /// Sees the calls of the agents they supervise (R9).
    #[serde(rename = "supervisor")]
    Supervisor,
    /// Quality evaluation, service development, induction and training (R9).
    #[serde(rename = "quality_expert")]
    QualityExpert,
    /// Technical maintenance: may listen when needed, with a stated reason (R10).
    #[serde(rename = "maintenance")]
    Maintenance,
    /// The security unit: may listen when needed, with a stated reason (R10).
    #[serde(rename = "security")]
    Security,
    /// Reads history and the audit views, no audio (R6, R12).
    #[serde(rename = "auditor")]
    Auditor,
    /// Handles data-subject requests, rectification, restriction, holds (R15, R17–R19).
    #[serde(rename = "case_worker")]
    CaseWorker,
    /// Statistics and metadata search, no audio (R5).
    #[serde(rename = "analyst")]
    Analyst,
    /// The telephony or chat system: writes call events and uploads audio, reads nothing.
    #[serde(rename = "telephony")]
    Telephony,
    /// Grants and revokes roles (R11).
    #[serde(rename = "administrator")]
    Administrator,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Agent,
        Role::Supervisor,
        Role::QualityExpert,
        Role::Maintenance,
        Role::Security,
        Role::Auditor,
        Role::CaseWorker,
        Role::Analyst,
        Role::Telephony,
        Role::Administrator,
    ];

    /// The stored (and command-line) name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::QualityExpert => "quality_expert",
            Role::Maintenance => "maintenance",
            Role::Security => "security",
            Role::Auditor => "auditor",
            Role::CaseWorker => "case_worker",
            Role::Analyst => "analyst",
            Role::Telephony => "telephony",
            Role::Administrator => "administrator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a {kind}; expected one of: {expected}")]
pub struct UnknownName {
    pub kind: &'static str,
    pub input: String,
    pub expected: String,
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownName {
                kind: "role",
                input: s.chars().take(64).collect(),
                expected: Role::ALL.map(Role::name).join(", "),
            })
    }
}

/// Why the register is being used (R4). Every access states one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// Verifying service events for compensation and benefit decisions.
    #[serde(rename = "verification")]
    Verification,
    #[serde(rename = "training")]
    Training,
    /// Quality evaluation and service-level studies.
    #[serde(rename = "quality")]
    Quality,
    /// Establishing, exercising or defending legal claims (allowed on restricted calls).
    #[serde(rename = "legal_claim")]
    LegalClaim,
    /// Answering a data subject's request (access, rectification, restriction).
    #[serde(rename = "data_subject_request")]
    DataSubjectRequest,
    #[serde(rename = "maintenance")]
    Maintenance,
    #[serde(rename = "security")]
    Security,
}

impl Purpose {
    pub const ALL: [Purpose; 7] = [
        Purpose::Verification,
        Purpose::Training,
        Purpose::Quality,
        Purpose::LegalClaim,
        Purpose::DataSubjectRequest,
        Purpose::Maintenance,
        Purpose::Security,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Purpose::Verification => "verification",
            Purpose::Training => "training",
            Purpose::Quality => "quality",
            Purpose::LegalClaim => "legal_claim",
            Purpose::DataSubjectRequest => "data_subject_request",
            Purpose::Maintenance => "maintenance",
            Purpose::Security => "security",
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Purpose {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Purpose::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownName {
                kind: "purpose",
                input: s.chars().take(64).collect(),
                expected: Purpose::ALL.map(Purpose::name).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>().unwrap(), role);
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::json!(role.name())
            );
        }
        for purpose in Purpose::ALL {
            assert_eq!(purpose.name().parse::<Purpose>().unwrap(), purpose);
            assert_eq!(
                serde_json::to_value(purpose).unwrap(),
                serde_json::json!(purpose.name())
            );
        }
    }

    #[test]
    fn an_unknown_role_lists_the_known_ones() {
        let err = "janitor".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("case_worker"), "{err}");
    }
}
