//! Alarms on dead letters, backlog age, function errors and throttles, all notifying the alarm
//! topic; and the dashboard.

use serde_json::Value;

use super::*;

/// (namespace, metric, resource the dimension names) of each alarm.
fn alarms(t: &Value) -> Vec<(String, String, String, bool)> {
    resources(t)
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| {
            let pr = &r["Properties"];
            let target = pr["Dimensions"]
                .as_array()
                .and_then(|d| d.first())
                .map(|d| refs(&d["Value"]).into_iter().next().unwrap_or_default())
                .unwrap_or_default();
            let notifies = pr["AlarmActions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| is_ref(x, "AlarmTopic")));
            (
                pr["Namespace"].as_str().unwrap_or("").to_string(),
                pr["MetricName"].as_str().unwrap_or("").to_string(),
                target,
                notifies,
            )
        })
        .collect()
}

pub(super) fn check_alarms(t: &Value) -> Vec<String> {
    let mut p = vec![];
    if t["Resources"]["AlarmTopic"]["Type"] != "AWS::SNS::Topic" {
        p.push("AlarmTopic: missing AWS::SNS::Topic".into());
    }
    let have = alarms(t);
    let mut want = vec![
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "EventsDlq"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "SendsDlq"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "EventsQueue"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "SendsQueue"),
    ];
    for l in LAMBDAS {
        want.push(("AWS/Lambda", "Errors", l.id));
        want.push(("AWS/Lambda", "Throttles", l.id));
    }
    for (ns, metric, target) in want {
        match have
            .iter()
            .find(|a| a.0 == ns && a.1 == metric && a.2 == target)
        {
            None => p.push(format!("no alarm on {ns} {metric} of {target}")),
            Some(a) if !a.3 => p.push(format!("alarm on {metric} of {target} notifies no one")),
            _ => {}
        }
    }
    if t["Resources"]["Dashboard"]["Type"] != "AWS::CloudWatch::Dashboard" {
        p.push("Dashboard: missing AWS::CloudWatch::Dashboard".into());
    }
    p
}

#[test]
fn alarms_cover_dead_letters_backlog_errors_and_throttles() {
    assert_clean(check_alarms(&load_template()));
}
