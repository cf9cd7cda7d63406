//! Whether a marketing opt-out on one business number holds for the business's other numbers
//! (`WABRIDGE_CONSENT_SCOPE`, docs/numbers.md "Consent across numbers").
//!
//! Marketing consent is the person's word to the business, not to one line, so by default
//! (`portfolio`) an opt-out written to `ventas-mx` also stops marketing from `soporte-co`: the
//! safe reading of WhatsApp's opt-out rules and of LGPD/GDPR. `number` keeps each number's
//! opt-outs to that number, for a registry whose numbers are separate brands: an entry
//! recorded on a number (a STOP keyword, a `user_preferences` webhook, Meta's 131050 on a
//! send) counts for that number only; one recorded on no number (`POST /consents` without
//! `number`, the erasure tombstone) counts for all.

use super::{ConsentCategory, ConsentEntry, ConsentState};
use crate::config::{ConfigError, Settings, WABRIDGE_CONSENT_SCOPE};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsentScope {
    /// Every entry counts for every number of the business (the default).
    #[default]
    Portfolio,
    /// An entry recorded on a number counts for that number only.
    Number,
}

impl ConsentScope {
    /// From `WABRIDGE_CONSENT_SCOPE` (`portfolio`, the default, or `number`).
    pub fn from_settings(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        match Settings::new(lookup)
            .optional(WABRIDGE_CONSENT_SCOPE)
            .as_deref()
        {
            None | Some("portfolio") => Ok(ConsentScope::Portfolio),
            Some("number") => Ok(ConsentScope::Number),
            Some(other) => Err(ConfigError::Invalid {
                name: WABRIDGE_CONSENT_SCOPE,
                value: other.to_string(),
                expected: "`portfolio` or `number`",
            }),
        }
    }

    /// Whether `entry` counts for a send from `number` (`None`: the implicit single number,
    /// for which everything counts).
    pub fn applies(self, entry: &ConsentEntry, number: Option<&str>) -> bool {
        match (self, number, entry.number.as_deref()) {
            (ConsentScope::Portfolio, _, _) | (_, None, _) | (_, _, None) => true,
            (ConsentScope::Number, Some(send), Some(recorded)) => send == recorded,
        }
    }

    /// The latest entry of `category` that counts for a send from `number`, in a history
    /// sorted oldest first, and the state it gives.
    pub fn latest<'h>(
        self,
        history: &'h [ConsentEntry],
        category: ConsentCategory,
        number: Option<&str>,
    ) -> (ConsentState, Option<&'h ConsentEntry>) {
        let latest = history
            .iter()
            .rev()
            .find(|e| e.category == category && self.applies(e, number));
        let state = match latest {
            Some(e) if e.action == super::ConsentAction::OptIn => ConsentState::OptedIn,
            Some(_) => ConsentState::OptedOut,
            None => ConsentState::Unknown,
        };
        (state, latest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::{ConsentAction, ConsentSource};

    fn entry(id: &str, action: ConsentAction, number: Option<&str>) -> ConsentEntry {
        ConsentEntry {
            id: id.into(),
            contact: "phone:525512345678".into(),
            to: "+525512345678".into(),
            category: ConsentCategory::Marketing,
            action,
            source: ConsentSource::Keyword,
            evidence: None,
            at: 1,
            recorded_at: 1,
            number: number.map(str::to_string),
        }
    }

    const MX: Option<&str> = Some("106540352242922");
    const CO: Option<&str> = Some("206540352242922");

    #[test]
    fn an_opt_out_on_one_number_holds_for_every_number_unless_scoped_to_numbers() {
        let history = [
            entry("in", ConsentAction::OptIn, None),
            entry("stop-mx", ConsentAction::OptOut, MX),
        ];
        let m = ConsentCategory::Marketing;
        let state = |scope: ConsentScope, number| scope.latest(&history, m, number).0;
        assert_eq!(state(ConsentScope::Portfolio, CO), ConsentState::OptedOut);
        assert_eq!(state(ConsentScope::Portfolio, MX), ConsentState::OptedOut);
        assert_eq!(state(ConsentScope::Number, MX), ConsentState::OptedOut);
        // The opt-in given to the business (no number) still holds on the other line.
        assert_eq!(state(ConsentScope::Number, CO), ConsentState::OptedIn);
        // A send naming no number (no registry) reads everything.
        assert_eq!(state(ConsentScope::Number, None), ConsentState::OptedOut);
    }

    #[test]
    fn the_setting_takes_two_values_and_names_itself_otherwise() {
        let of = |v: Option<&str>| {
            ConsentScope::from_settings(|n| {
                (n == WABRIDGE_CONSENT_SCOPE)
                    .then_some(v)
                    .flatten()
                    .map(str::to_string)
            })
        };
        assert_eq!(of(None).unwrap(), ConsentScope::Portfolio);
        assert_eq!(of(Some("portfolio")).unwrap(), ConsentScope::Portfolio);
        assert_eq!(of(Some("number")).unwrap(), ConsentScope::Number);
        let err = of(Some("per-number")).unwrap_err().to_string();
        assert!(
            err.contains(WABRIDGE_CONSENT_SCOPE) && err.contains("per-number"),
            "{err}"
        );
    }
}
