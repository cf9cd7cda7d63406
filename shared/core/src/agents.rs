//! Agents: who on the business's side writes a message. `POST /sends` takes an optional
//! `agent`; the mapping's `[agents] ids = [...]` is the catalogue it must come from. Without a
//! catalogue any id of up to [`MAX_AGENT_CHARS`] letters, digits and `. _ @ + -` is taken
//! (an email address or a CRM user id), so a typo cannot carry text or markup into the CRM.

use serde::Deserialize;

/// Longest agent id taken without a catalogue.
pub const MAX_AGENT_CHARS: usize = 64;

/// `[agents]` of the mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentCatalogue {
    /// The agent ids `POST /sends` takes; empty: any well-formed id.
    #[serde(default)]
    pub ids: Vec<String>,
}

/// Why an `agent` was refused: a stable code and a sentence naming the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    pub code: &'static str,
    pub message: String,
}

impl AgentCatalogue {
    /// Whether `agent` may be named on a send.
    pub fn check(&self, agent: &str) -> Result<(), AgentError> {
        if !self.ids.is_empty() {
            if self.ids.iter().any(|id| id == agent) {
                return Ok(());
            }
            return Err(AgentError {
                code: "unknown_agent",
                message: format!(
                    "agent {agent:?} is not in the mapping's agent catalogue ([agents] ids: {})",
                    self.ids.join(", ")
                ),
            });
        }
        let well_formed = agent.chars().count() <= MAX_AGENT_CHARS
            && agent
                .chars()
                .all(|c| c.is_alphanumeric() || ".-_@+".contains(c));
        if well_formed {
            return Ok(());
        }
        Err(AgentError {
            code: "invalid_agent",
            message: format!(
                "agent {:?} is not an agent id: at most {MAX_AGENT_CHARS} letters, digits and . _ @ + - \
                 (the mapping has no [agents] catalogue)",
                agent.chars().take(MAX_AGENT_CHARS + 1).collect::<String>()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_names_the_agents_and_without_one_ids_are_bounded() {
        let catalogue = AgentCatalogue {
            ids: vec!["ana".into(), "bruno".into()],
        };
        assert_eq!(catalogue.check("ana"), Ok(()));
        let e = catalogue.check("carla").unwrap_err();
        assert_eq!(e.code, "unknown_agent");
        assert!(
            e.message.contains("\"carla\"") && e.message.contains("ana, bruno"),
            "{e}"
        );

        let open = AgentCatalogue::default();
        assert_eq!(open.check("ana.lima@tienda.mx"), Ok(()));
        for bad in ["<b>ana</b>", "ana lima", &"a".repeat(65)] {
            let e = open.check(bad).unwrap_err();
            assert_eq!(e.code, "invalid_agent", "{bad}");
        }
    }
}
