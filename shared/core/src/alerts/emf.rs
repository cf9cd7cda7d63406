//! Signals as CloudWatch Embedded Metric Format lines: one JSON object per line on a Lambda's
//! stdout, from which CloudWatch Logs extracts the metrics (no API call, no extra latency).
//!
//! Every metric is in the namespace [`NAMESPACE`] (that of the log metric filters) and has the
//! empty dimension set, the single series its alarm in `infra/template.yaml` watches; some also
//! have a dimension that tells numbers or statuses apart on the dashboard.

use serde_json::{json, Map, Value};

use crate::redact;

use super::Signal;

/// The CloudWatch namespace of every wabridge metric.
pub const NAMESPACE: &str = "wabridge";

/// A number's quality dropped (YELLOW, RED, FLAGGED, DOWNGRADE, a lower limit).
pub const NUMBER_QUALITY_DROPS: &str = "NumberQualityDrops";
/// A number's quality went RED (or FLAGGED).
pub const NUMBER_QUALITY_RED: &str = "NumberQualityRed";
/// A template PAUSED, DISABLED or REJECTED.
pub const TEMPLATES_BLOCKED: &str = "TemplatesBlocked";
/// A template recategorised.
pub const TEMPLATE_CATEGORY_CHANGES: &str = "TemplateCategoryChanges";
/// An account restriction, violation or ban.
pub const ACCOUNT_RESTRICTIONS: &str = "AccountRestrictions";
/// Conversations past their first-response SLA.
pub const SLA_BREACHES: &str = "SlaBreaches";
/// Open conversations awaiting a response (a gauge: alarm on its Maximum).
pub const BACKLOG: &str = "Backlog";
/// How long the oldest of them has waited, in milliseconds.
pub const BACKLOG_OLDEST_WAIT: &str = "BacklogOldestWaitMs";
/// Sends the sender ended (accepted by Meta or failed).
pub const SENDS_ATTEMPTED: &str = "SendsAttempted";
/// Sends that failed (at the Graph API, or by a `failed` status from Meta).
pub const SENDS_FAILED: &str = "SendsFailed";

/// Every metric the signals produce.
pub const METRICS: &[&str] = &[
    NUMBER_QUALITY_DROPS,
    NUMBER_QUALITY_RED,
    TEMPLATES_BLOCKED,
    TEMPLATE_CATEGORY_CHANGES,
    ACCOUNT_RESTRICTIONS,
    SLA_BREACHES,
    BACKLOG,
    BACKLOG_OLDEST_WAIT,
    SENDS_ATTEMPTED,
    SENDS_FAILED,
];

/// The metrics (name, value, unit) of a signal and the one extra dimension (name, value) they
/// also carry, if any.
#[allow(clippy::type_complexity)]
pub fn metrics(
    signal: &Signal,
) -> (
    Vec<(&'static str, f64, &'static str)>,
    Option<(&'static str, String)>,
) {
    let one = |name| (name, 1.0, "Count");
    match signal {
        Signal::NumberQuality {
            number, drop, red, ..
        } => {
            let mut m = Vec::new();
            if *drop {
                m.push(one(NUMBER_QUALITY_DROPS));
            }
            if *red {
                m.push(one(NUMBER_QUALITY_RED));
            }
            (m, Some(("BusinessNumber", redact::mask(number))))
        }
        Signal::TemplateBlocked { status, .. } => (
            vec![one(TEMPLATES_BLOCKED)],
            Some(("TemplateStatus", status.clone())),
        ),
        Signal::TemplateCategory { to, .. } => (
            vec![one(TEMPLATE_CATEGORY_CHANGES)],
            Some(("Category", to.clone())),
        ),
        Signal::AccountRestriction { event, .. } => (
            vec![one(ACCOUNT_RESTRICTIONS)],
            Some((
                "AccountEvent",
                event.clone().unwrap_or_else(|| "UNKNOWN".into()),
            )),
        ),
        Signal::SlaBreach { count } => (vec![(SLA_BREACHES, *count as f64, "Count")], None),
        Signal::Backlog {
            count,
            oldest_wait_ms,
        } => (
            vec![
                (BACKLOG, *count as f64, "Count"),
                (BACKLOG_OLDEST_WAIT, *oldest_wait_ms as f64, "Milliseconds"),
            ],
            None,
        ),
        Signal::SendOutcome {
            attempted, failed, ..
        } => {
            // Both metrics on every outcome, zeros included: the failure ratio needs both series.
            let mut m = Vec::new();
            if *attempted {
                m.push((SENDS_ATTEMPTED, 1.0, "Count"));
            }
            m.push((SENDS_FAILED, if *failed { 1.0 } else { 0.0 }, "Count"));
            (m, None)
        }
    }
}

/// The EMF line of a signal at `at_ms`, or `None` when it moves no metric (a quality
/// upgrade). The signal's own fields ride along as properties, for Logs Insights.
pub fn line(signal: &Signal, at_ms: i64) -> Option<Value> {
    let (metrics, dimension) = metrics(signal);
    if metrics.is_empty() {
        return None;
    }
    let mut root = Map::new();
    // Properties first, so the metric members below win a name clash.
    if let Ok(Value::Object(props)) = serde_json::to_value(signal) {
        for (k, v) in props {
            let v = match (k.as_str(), v) {
                ("number", Value::String(n)) => Value::String(redact::mask(&n)),
                (_, v) => v,
            };
            root.insert(k, v);
        }
    }
    let mut sets = vec![Value::Array(vec![])];
    if let Some((name, value)) = dimension {
        sets.push(json!([name]));
        root.insert(name.into(), Value::String(value));
    }
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, _, unit)| json!({"Name": name, "Unit": unit}))
        .collect();
    for (name, value, _) in &metrics {
        root.insert((*name).into(), json!(value));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": at_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": definitions,
            }],
        }),
    );
    Some(Value::Object(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_red_number_is_one_line_with_both_dimension_sets_and_a_masked_number() {
        let s = Signal::NumberQuality {
            number: "541150001111".into(),
            event: Some("FLAGGED".into()),
            rating: Some("RED".into()),
            limit: None,
            old_limit: None,
            drop: true,
            red: true,
        };
        let v = line(&s, 1_700_000_000_000).unwrap();
        let d = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], "wabridge");
        assert_eq!(d["Dimensions"], json!([[], ["BusinessNumber"]]));
        assert_eq!(v[NUMBER_QUALITY_RED], 1.0);
        assert_eq!(v[NUMBER_QUALITY_DROPS], 1.0);
        assert_eq!(v["BusinessNumber"], "541*******11");
        assert_eq!(v["number"], "541*******11");
        assert!(!v.to_string().contains("541150001111"), "{v}");
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
    }

    #[test]
    fn an_upgrade_moves_no_metric() {
        let s = Signal::NumberQuality {
            number: "1".into(),
            event: Some("UPGRADE".into()),
            rating: None,
            limit: None,
            old_limit: None,
            drop: false,
            red: false,
        };
        assert_eq!(line(&s, 0), None);
    }
}
