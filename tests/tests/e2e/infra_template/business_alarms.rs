//! The business alarms (docs/alerts.md) against the code: the Embedded Metric Format lines the
//! AWS engine writes for every kind of signal are parsed, and each metric they carry must be in
//! the `wabridge` namespace with a dimensionless series, and watched by an alarm that notifies
//! the alarm topic (directly, or inside a metric-math alarm). Removing an alarm or renaming a
//! metric on either side fails the check.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use wabridge_aws::emf::EmfAlerts;
use wabridge_core::alerts::{detect, emf, AlertSink, Signal};

use super::*;

/// Metrics shown on the dashboard only (the backlog count has the alarm).
const DASHBOARD_ONLY: &[&str] = &[emf::BACKLOG_OLDEST_WAIT];

/// One signal of every kind, through the AWS engine's sink; the lines it wrote.
async fn lines_of_every_signal() -> Vec<Value> {
    let quality = |json: &str| detect::number_quality(&serde_json::from_str(json).unwrap(), json);
    let template = |field: &str, json: &str| {
        detect::template(field, &serde_json::from_str(json).unwrap()).unwrap()
    };
    let account = wabridge_core::account::AccountRecord::of_value(
        "a:1",
        "102290129340398",
        None,
        serde_json::json!({"event": "ACCOUNT_RESTRICTION",
                           "restriction_info": [{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING"}]}),
    );
    let mut signals = vec![
        quality(r#"{"display_phone_number":"15550783881","event":"FLAGGED"}"#),
        template(
            "message_template_status_update",
            r#"{"event":"PAUSED","message_template_name":"promo","message_template_language":"es_MX"}"#,
        ),
        template(
            "template_category_update",
            r#"{"message_template_name":"promo","previous_category":"UTILITY","new_category":"MARKETING"}"#,
        ),
        detect::account(&account).unwrap(),
        Signal::SendOutcome {
            attempted: true,
            failed: true,
            code: Some("meta_131026".into()),
        },
    ];
    signals.extend(detect::of_sweep(1, 30, 3_600_000));
    let written = Arc::new(Mutex::new(Vec::new()));
    let out = written.clone();
    let sink = EmfAlerts::with_writer(move |l| out.lock().unwrap().push(l.to_string()));
    for s in &signals {
        sink.record(s, 1_763_700_000_000).await.unwrap();
    }
    let lines = written.lock().unwrap().clone();
    assert_eq!(lines.len(), signals.len(), "{lines:#?}");
    lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("an EMF line is one JSON object"))
        .collect()
}

/// (namespace, metric) of every series an alarm notifying the topic watches.
fn watched(t: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in resources(t).values() {
        let pr = &r["Properties"];
        let notifies = pr["AlarmActions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| is_ref(x, "AlarmTopic")));
        if r["Type"] != "AWS::CloudWatch::Alarm" || !notifies {
            continue;
        }
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        if pr["MetricName"].is_string() {
            out.push((s(&pr["Namespace"]), s(&pr["MetricName"])));
        }
        for q in pr["Metrics"].as_array().into_iter().flatten() {
            let m = &q["MetricStat"]["Metric"];
            out.push((s(&m["Namespace"]), s(&m["MetricName"])));
        }
    }
    out
}

fn check_business_alarms(t: &Value, lines: &[Value]) -> Vec<String> {
    let mut p = vec![];
    let watched = watched(t);
    let mut seen = BTreeSet::new();
    for line in lines {
        for d in line["_aws"]["CloudWatchMetrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let ns = d["Namespace"].as_str().unwrap_or("");
            let dimensionless = d["Dimensions"]
                .as_array()
                .is_some_and(|sets| sets.iter().any(|s| s == &json!([])));
            for m in d["Metrics"].as_array().into_iter().flatten() {
                let name = m["Name"].as_str().unwrap_or("").to_string();
                if !line[&name].is_number() {
                    p.push(format!("EMF metric {name} has no value in its line"));
                }
                if !dimensionless {
                    p.push(format!(
                        "EMF metric {name} has no series without dimensions"
                    ));
                }
                seen.insert(name.clone());
                if DASHBOARD_ONLY.contains(&name.as_str()) {
                    continue;
                }
                if !watched.iter().any(|(n, m)| n == ns && *m == name) {
                    p.push(format!("no alarm on {ns} {name}"));
                }
            }
        }
    }
    for m in emf::METRICS {
        if !seen.contains(*m) {
            p.push(format!("no EMF line carries {m}"));
        }
    }
    p
}

#[tokio::test]
async fn every_metric_the_code_writes_has_its_alarm() {
    let lines = lines_of_every_signal().await;
    assert_clean(check_business_alarms(&load_template(), &lines));
}

#[tokio::test]
async fn the_business_alarm_check_catches_a_removed_alarm_and_a_renamed_metric() {
    let lines = lines_of_every_signal().await;
    let template = load_template();
    for (alarm, problem) in [
        (
            "NumberQualityRedAlarm",
            "no alarm on wabridge NumberQualityRed",
        ),
        (
            "TemplatesBlockedAlarm",
            "no alarm on wabridge TemplatesBlocked",
        ),
        (
            "TemplateCategoryChangeAlarm",
            "no alarm on wabridge TemplateCategoryChanges",
        ),
        (
            "AccountRestrictionAlarm",
            "no alarm on wabridge AccountRestrictions",
        ),
        ("SlaBreachAlarm", "no alarm on wabridge SlaBreaches"),
        ("BacklogAlarm", "no alarm on wabridge Backlog"),
        ("SendFailureRateAlarm", "no alarm on wabridge SendsFailed"),
    ] {
        let mut t = template.clone();
        t["Resources"].as_object_mut().unwrap().remove(alarm);
        let p = check_business_alarms(&t, &lines);
        assert!(p.iter().any(|p| p == problem), "{alarm}: {p:?}");
    }
    let mut renamed = template.clone();
    renamed["Resources"]["SendFailureRateAlarm"]["Properties"]["Metrics"][1]["MetricStat"]
        ["Metric"]["MetricName"] = json!("SendsTried");
    let p = check_business_alarms(&renamed, &lines);
    assert_eq!(p, ["no alarm on wabridge SendsAttempted"], "{p:?}");
    let mut silent = template;
    silent["Resources"]["NumberQualityRedAlarm"]["Properties"]["AlarmActions"] = json!([]);
    let p = check_business_alarms(&silent, &lines);
    assert!(
        p.iter()
            .any(|p| p == "no alarm on wabridge NumberQualityRed"),
        "{p:?}"
    );
    // A metric renamed in the code: its line names a series no alarm watches.
    let mut lines = lines;
    lines[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"] = json!("NumberQualityLow");
    lines[0]["NumberQualityLow"] = json!(1);
    let p = check_business_alarms(&load_template(), &lines);
    assert!(
        p.iter()
            .any(|p| p == "no alarm on wabridge NumberQualityLow"),
        "{p:?}"
    );
    assert!(
        p.iter()
            .any(|p| p == "no EMF line carries NumberQualityRed"),
        "{p:?}"
    );
}
