//! The signals of what crm-sync and the SLA sweep see. Pure functions of typed items.

use serde_json::Value;

use crate::event::Event;
use crate::records::Record;
use crate::templates::TemplateStatus;
use crate::webhook::model::{Item, QualityUpdate, StatusKind, TemplateStatusUpdate};

use super::Signal;

/// The signals of one event, from its typed item and its planned records (read before the
/// records are sent, so the emission can follow the CRM effects).
pub fn of_event(event: &Event, item: &Item, records: &[(&'static str, Record)]) -> Vec<Signal> {
    match item {
        Item::QualityUpdate(q) => vec![number_quality(q, event.item.get())],
        Item::TemplateStatus(t) => template(&event.field, t).into_iter().collect(),
        Item::AccountUpdate(_) => records
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Account(a) => account(a),
                _ => None,
            })
            .collect(),
        // Meta dropped a message it had accepted: the send was counted as attempted already.
        Item::Status(s) if s.status == Some(StatusKind::Failed) => vec![Signal::SendOutcome {
            attempted: false,
            failed: true,
            code: s
                .errors
                .first()
                .and_then(|e| e.code)
                .map(|c| format!("meta_{c}")),
        }],
        _ => Vec::new(),
    }
}

/// The SLA sweep's figures (`SweepReport { breaches, backlog, oldest_wait_ms, .. }`) as signals:
/// breaches only when there are some, the backlog always (zero resets the local state and
/// keeps the CloudWatch series alive for its alarm).
pub fn of_sweep(breaches: u64, backlog: u64, oldest_wait_ms: i64) -> Vec<Signal> {
    let mut out = Vec::with_capacity(2);
    if breaches > 0 {
        out.push(Signal::SlaBreach { count: breaches });
    }
    out.push(Signal::Backlog {
        count: backlog,
        oldest_wait_ms: if backlog == 0 { 0 } else { oldest_wait_ms },
    });
    out
}

/// Messaging limit tiers, lowest first (Meta's names; TIER_1K is the older docs' tier).
const TIERS: &[&str] = &[
    "TIER_50",
    "TIER_250",
    "TIER_1K",
    "TIER_2K",
    "TIER_10K",
    "TIER_100K",
    "TIER_UNLIMITED",
];

fn tier(limit: Option<&str>) -> Option<usize> {
    let limit = limit?.trim().to_ascii_uppercase();
    TIERS.iter().position(|t| *t == limit)
}

/// A quality update's state. The webhook names an event and limits, not the rating itself:
/// FLAGGED is Meta's word for a number whose rating went low (RED); a `quality_rating` member,
/// if Meta ever sends one, is read as given (GREEN, YELLOW, RED).
pub fn number_quality(q: &QualityUpdate, raw: &str) -> Signal {
    let event = q.event.as_ref().map(|e| e.trim().to_ascii_uppercase());
    let explicit = serde_json::from_str::<Value>(raw).ok().and_then(|v| {
        v.get("quality_rating")
            .and_then(Value::as_str)
            .map(|s| s.trim().to_ascii_uppercase())
    });
    let rating = explicit.or_else(|| (event.as_deref() == Some("FLAGGED")).then(|| "RED".into()));
    let lower_limit = matches!(
        (tier(q.old_limit.as_deref()), tier(q.current_limit.as_deref())),
        (Some(old), Some(now)) if now < old
    );
    let red = rating.as_deref() == Some("RED");
    let drop = red
        || rating.as_deref() == Some("YELLOW")
        || event.as_deref() == Some("DOWNGRADE")
        || lower_limit;
    Signal::NumberQuality {
        number: q.display_phone_number.clone().unwrap_or_default(),
        event,
        rating,
        limit: q.current_limit.clone(),
        old_limit: q.old_limit.clone(),
        drop,
        red,
    }
}

/// A template status or category update that operations must hear about.
pub fn template(field: &str, t: &TemplateStatusUpdate) -> Option<Signal> {
    let name = t.message_template_name.clone()?;
    let language = t.message_template_language.clone().unwrap_or_default();
    match field {
        "message_template_status_update" => {
            let status = TemplateStatus::new(t.event.as_deref()?);
            status.refuses_sends().then(|| Signal::TemplateBlocked {
                name,
                language,
                status: status.0,
                reason: t.reason.clone().filter(|r| !r.eq_ignore_ascii_case("NONE")),
            })
        }
        // The 24-hour notice (`correct_category`) is not the change yet.
        "template_category_update" if t.correct_category.is_none() => {
            let upper = |v: &Option<String>| v.as_deref().map(str::to_ascii_uppercase);
            Some(Signal::TemplateCategory {
                name,
                language,
                from: upper(&t.previous_category).or(upper(&t.old_category)),
                to: upper(&t.new_category)?,
            })
        }
        _ => None,
    }
}

/// The account events that restrict or threaten the account (restrictions, a violation, a
/// ban other than a reinstatement). Other account updates (pricing tiers, partner changes)
/// are the CRM's `account` records only.
pub fn account(a: &crate::account::AccountRecord) -> Option<Signal> {
    let event = a.event.as_deref().map(str::to_ascii_uppercase);
    let banned = a
        .ban_state
        .as_deref()
        .is_some_and(|b| !b.eq_ignore_ascii_case("REINSTATE"));
    let named = matches!(
        event.as_deref(),
        Some("ACCOUNT_RESTRICTION" | "ACCOUNT_VIOLATION" | "DISABLED_UPDATE")
    );
    (named || banned || !a.restrictions.is_empty() || a.violation.is_some()).then(|| {
        Signal::AccountRestriction {
            waba_id: a.waba_id.clone(),
            event,
            restrictions: a.restrictions.clone(),
            violation: a.violation.clone(),
            ban_state: a.ban_state.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(json: &str) -> Signal {
        number_quality(&serde_json::from_str(json).unwrap(), json)
    }

    #[test]
    fn quality_drops_and_red() {
        let s = quality(
            r#"{"display_phone_number":"541150001111","event":"DOWNGRADE","current_limit":"TIER_1K","old_limit":"TIER_10K"}"#,
        );
        assert!(
            matches!(
                s,
                Signal::NumberQuality {
                    drop: true,
                    red: false,
                    ..
                }
            ),
            "{s:?}"
        );
        let s =
            quality(r#"{"display_phone_number":"1","event":"FLAGGED","current_limit":"TIER_2K"}"#);
        assert!(
            matches!(&s, Signal::NumberQuality { drop: true, red: true, rating: Some(r), .. } if r == "RED"),
            "{s:?}"
        );
        let s = quality(
            r#"{"display_phone_number":"1","event":"THROUGHPUT_UPGRADE","current_limit":"TIER_10K","old_limit":"TIER_2K"}"#,
        );
        assert!(
            matches!(
                s,
                Signal::NumberQuality {
                    drop: false,
                    red: false,
                    ..
                }
            ),
            "{s:?}"
        );
        // A lower limit is a drop whatever the event says.
        let s = quality(
            r#"{"display_phone_number":"1","event":"ONBOARDING","current_limit":"TIER_250","old_limit":"TIER_2K"}"#,
        );
        assert!(
            matches!(s, Signal::NumberQuality { drop: true, .. }),
            "{s:?}"
        );
        let s =
            quality(r#"{"display_phone_number":"1","event":"UPGRADE","quality_rating":"yellow"}"#);
        assert!(
            matches!(
                s,
                Signal::NumberQuality {
                    drop: true,
                    red: false,
                    ..
                }
            ),
            "{s:?}"
        );
        assert!(!quality(r#"{"event":"UNFLAGGED"}"#).is_alert());
    }

    #[test]
    fn templates_blocked_and_recategorised() {
        let t = |json: &str| serde_json::from_str::<TemplateStatusUpdate>(json).unwrap();
        for status in ["PAUSED", "disabled", "REJECTED"] {
            let s = template(
                "message_template_status_update",
                &t(&format!(
                    r#"{{"event":"{status}","message_template_name":"promo","message_template_language":"es_MX","reason":"NONE"}}"#
                )),
            );
            assert!(
                matches!(&s, Some(Signal::TemplateBlocked { status: st, reason: None, .. }) if *st == status.to_ascii_uppercase()),
                "{s:?}"
            );
        }
        assert_eq!(
            template(
                "message_template_status_update",
                &t(r#"{"event":"APPROVED","message_template_name":"promo"}"#)
            ),
            None
        );
        let s = template(
            "template_category_update",
            &t(
                r#"{"message_template_name":"promo","message_template_language":"pt_BR","previous_category":"UTILITY","new_category":"MARKETING"}"#,
            ),
        );
        assert_eq!(
            s,
            Some(Signal::TemplateCategory {
                name: "promo".into(),
                language: "pt_BR".into(),
                from: Some("UTILITY".into()),
                to: "MARKETING".into()
            })
        );
        let notice = t(
            r#"{"message_template_name":"promo","new_category":"UTILITY","correct_category":"MARKETING","category_update_timestamp":1}"#,
        );
        assert_eq!(template("template_category_update", &notice), None);
    }

    #[test]
    fn account_restrictions_not_tier_changes() {
        let rec = |v: &str| {
            crate::account::AccountRecord::of_value(
                "a:1",
                "w",
                None,
                serde_json::from_str(v).unwrap(),
            )
        };
        assert!(account(&rec(r#"{"event":"ACCOUNT_RESTRICTION","restriction_info":[{"restriction_type":"RESTRICTED_ADD_PHONE_NUMBER_ACTION"}]}"#)).is_some());
        assert!(account(&rec(
            r#"{"event":"ACCOUNT_VIOLATION","violation_info":{"violation_type":"SCAM"}}"#
        ))
        .is_some());
        assert!(account(&rec(
            r#"{"event":"DISABLED_UPDATE","ban_info":{"waba_ban_state":"REINSTATE"}}"#
        ))
        .is_some());
        assert!(account(&rec(r#"{"event":"PARTNER_ADDED"}"#)).is_none());
        assert!(account(&rec(
            r#"{"event":"X","ban_info":{"waba_ban_state":"REINSTATE"}}"#
        ))
        .is_none());
    }

    #[test]
    fn sweep_figures() {
        assert_eq!(
            of_sweep(0, 0, 99),
            vec![Signal::Backlog {
                count: 0,
                oldest_wait_ms: 0
            }]
        );
        assert_eq!(
            of_sweep(2, 5, 60_000),
            vec![
                Signal::SlaBreach { count: 2 },
                Signal::Backlog {
                    count: 5,
                    oldest_wait_ms: 60_000
                }
            ]
        );
    }
}
