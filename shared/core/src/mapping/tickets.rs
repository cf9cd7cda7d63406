//! `[hubspot]` of a mapping: how conversations become HubSpot Tickets. Owner and stage ids are
//! the portal's own, so they live with the portal's other names (the mapping file), not in the
//! environment.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::MappingFileError;

/// `[hubspot]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSpotTickets {
    /// `[hubspot.owners]`: agent id → HubSpot owner id (`hubspot_owner_id`, digits). An agent
    /// not listed leaves the ticket's owner unset.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// `[hubspot.ticket_stages]`: outcome → pipeline stage id. An outcome not listed leaves the
    /// stage to the conversation's state (open or closed stage).
    #[serde(default)]
    pub ticket_stages: BTreeMap<String, String>,
}

impl HubSpotTickets {
    /// Refuses owner ids that are not HubSpot's (digits), blank stage ids, and stages of
    /// outcomes outside the catalogue (they could never apply).
    pub(super) fn check(&self, outcomes: &[String]) -> Result<(), MappingFileError> {
        for (agent, owner) in &self.owners {
            if owner.is_empty() || !owner.bytes().all(|b| b.is_ascii_digit()) {
                return Err(MappingFileError::Invalid(format!(
                    "[hubspot.owners] `{agent}`: owner id `{owner}` is not a HubSpot owner id (digits)"
                )));
            }
        }
        for (outcome, stage) in &self.ticket_stages {
            if !outcomes.contains(outcome) {
                return Err(MappingFileError::Invalid(format!(
                    "[hubspot.ticket_stages] `{outcome}` is not in the outcome catalogue ({})",
                    outcomes.join(", ")
                )));
            }
            if stage.trim().is_empty() {
                return Err(MappingFileError::Invalid(format!(
                    "[hubspot.ticket_stages] `{outcome}`: blank stage id"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::mapping::Mapping;

    const HEAD: &str = "version = 1\n";

    #[test]
    fn owners_and_outcome_stages_load_from_the_mapping() {
        let m = Mapping::from_toml(&format!(
            "{HEAD}[hubspot.owners]\nana = \"71234567\"\n[hubspot.ticket_stages]\nconverted = \"closedwon\"\n"
        ))
        .unwrap();
        assert_eq!(m.hubspot.owners["ana"], "71234567");
        assert_eq!(m.hubspot.ticket_stages["converted"], "closedwon");
        assert!(Mapping::from_toml(HEAD).unwrap().hubspot.owners.is_empty());
    }

    #[test]
    fn bad_owners_and_stages_stop_the_load_naming_the_entry() {
        for (toml, named) in [
            (
                "[hubspot.owners]\nana = \"ana@acme.mx\"\n",
                "[hubspot.owners] `ana`",
            ),
            (
                "[hubspot.ticket_stages]\nwon = \"4\"\n",
                "[hubspot.ticket_stages] `won` is not in the outcome catalogue",
            ),
            (
                "[hubspot.ticket_stages]\nspam = \" \"\n",
                "`spam`: blank stage id",
            ),
            ("[hubspot]\nowner = {}\n", "unknown field"),
        ] {
            let e = Mapping::from_toml(&format!("{HEAD}{toml}"))
                .expect_err("refused")
                .to_string();
            assert!(e.contains(named), "{toml}: {e}");
        }
    }
}
