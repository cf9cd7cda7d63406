//! `[conversations]` of a mapping: who owns a conversation's record in the CRM and what an
//! outcome does to it, for the CRMs that keep conversations as a native record of their own (a
//! Pipedrive deal, a Zoho case, a Kommo lead, a Salesforce case). User and status ids are the
//! CRM account's own names, so they live with its other names here, not in the environment.
//! HubSpot keeps its ticket owners and stages under `[hubspot]` ([`super::tickets`]).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::MappingFileError;

/// `[conversations]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationSettings {
    /// `[conversations.owners]`: agent id → the CRM's user id. An agent not listed leaves the
    /// record's owner to the CRM (the token's user).
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// `[conversations.outcome_stages]`: outcome → the CRM's status or stage for the record
    /// (each adapter's docs say which field). An outcome not listed leaves it to the
    /// conversation's state (open or closed).
    #[serde(default)]
    pub outcome_stages: BTreeMap<String, String>,
}

impl ConversationSettings {
    /// Refuses blank ids and stages of outcomes outside the catalogue (they could never apply).
    pub(super) fn check(&self, outcomes: &[String]) -> Result<(), MappingFileError> {
        for (agent, owner) in &self.owners {
            if owner.trim().is_empty() {
                return Err(MappingFileError::Invalid(format!(
                    "[conversations.owners] `{agent}`: blank user id"
                )));
            }
        }
        for (outcome, stage) in &self.outcome_stages {
            if !outcomes.contains(outcome) {
                return Err(MappingFileError::Invalid(format!(
                    "[conversations.outcome_stages] `{outcome}` is not in the outcome catalogue ({})",
                    outcomes.join(", ")
                )));
            }
            if stage.trim().is_empty() {
                return Err(MappingFileError::Invalid(format!(
                    "[conversations.outcome_stages] `{outcome}`: blank stage"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::mapping::Mapping;

    const HEAD: &str = "version = 1\n[outcomes]\nids = [\"converted\", \"lost\"]\n";

    #[test]
    fn owners_and_outcome_stages_load_from_the_mapping() {
        let m = Mapping::from_toml(&format!(
            "{HEAD}[conversations.owners]\nana = \"0055e000001AbCd\"\n[conversations.outcome_stages]\nconverted = \"won\"\n"
        ))
        .unwrap();
        assert_eq!(m.conversations.owners["ana"], "0055e000001AbCd");
        assert_eq!(m.conversations.outcome_stages["converted"], "won");
        assert!(Mapping::from_toml(HEAD)
            .unwrap()
            .conversations
            .owners
            .is_empty());
    }

    #[test]
    fn blank_owners_and_unknown_outcomes_stop_the_load_naming_the_entry() {
        for (toml, named) in [
            (
                "[conversations.owners]\nana = \" \"\n",
                "[conversations.owners] `ana`: blank user id",
            ),
            (
                "[conversations.outcome_stages]\nwon = \"won\"\n",
                "[conversations.outcome_stages] `won` is not in the outcome catalogue",
            ),
            (
                "[conversations.outcome_stages]\nlost = \"\"\n",
                "[conversations.outcome_stages] `lost`: blank stage",
            ),
        ] {
            let err = Mapping::from_toml(&format!("{HEAD}{toml}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{toml}: {err}");
        }
    }
}
