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
        // From the breakers' log lines (see `circuit_metrics_…` below); no dimension.
        ("wabridge", "CrmUnavailable", ""),
        ("wabridge", "CrmUnauthorized", ""),
        ("wabridge", "GraphUnavailable", ""),
        ("wabridge", "AuditWriteFailed", ""),
        ("wabridge", "UnknownNumber", ""),
    ];
    // Every queue: a dead letter and a backlog that waits too long both page someone.
    for (queue, dlq) in QUEUES {
        want.push(("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq));
        want.push(("AWS/SQS", "ApproximateAgeOfOldestMessage", queue));
    }
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

/// An audit line that cannot be stored is counted from the line `Audit::note` writes, on the
/// log groups of the functions that write audit lines.
#[tokio::test]
async fn audit_write_failures_are_read_from_the_line_the_audit_writes() {
    use std::sync::Arc;
    use wabridge_core::audit::{Audit, AuditEntry, AuditLog};
    use wabridge_core::error::StoreError;

    struct Broken;
    #[async_trait::async_trait]
    impl AuditLog for Broken {
        async fn append(&self, _: &AuditEntry) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("table throttled".into()))
        }
        async fn since(&self, _: i64, _: usize) -> Result<Vec<AuditEntry>, StoreError> {
            Ok(vec![])
        }
    }
    let buffer = wabridge_tests::LogBuffer::default();
    let subscriber = wabridge_core::telemetry::lambda_subscriber(buffer.clone(), None);
    let _guard = tracing::subscriber::set_default(subscriber);
    Audit::new(Arc::new(Broken))
        .note("key:crm", "send", Some("snd_1"))
        .await;
    let text = buffer.text();
    assert!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["fields"]["metric"] == "audit_write_failed" && v["level"] == "ERROR"),
        "{text}"
    );
    let t = load_template();
    for (filter, group) in [
        ("IngestAuditWriteFailedMetric", "IngestLogGroup"),
        ("AttributionAuditWriteFailedMetric", "AttributionLogGroup"),
    ] {
        let pr = &t["Resources"][filter]["Properties"];
        assert!(is_ref(&pr["LogGroupName"], group), "{filter}: {pr}");
        assert_eq!(
            pr["FilterPattern"],
            "{ $.fields.metric = \"audit_write_failed\" }"
        );
        assert_eq!(
            pr["MetricTransformations"][0]["MetricName"],
            "AuditWriteFailed"
        );
    }
}

#[test]
fn alarms_cover_dead_letters_backlog_errors_and_throttles() {
    assert_clean(check_alarms(&load_template()));
}

#[test]
fn the_alarm_check_catches_a_media_queue_without_its_alarms() {
    let template = load_template();
    for (alarm, problem) in [
        (
            "MediaDlqAlarm",
            "no alarm on AWS/SQS ApproximateNumberOfMessagesVisible of MediaDeadLetterQueue",
        ),
        (
            "MediaAgeAlarm",
            "no alarm on AWS/SQS ApproximateAgeOfOldestMessage of MediaQueue",
        ),
    ] {
        let mut t = template.clone();
        t["Resources"].as_object_mut().unwrap().remove(alarm);
        let p = check_alarms(&t);
        assert!(p.iter().any(|p| p == problem), "{alarm}: {p:?}");
    }
    let mut silent = template;
    silent["Resources"]["MediaAgeAlarm"]["Properties"]["AlarmActions"] = serde_json::json!([]);
    let p = check_alarms(&silent);
    assert!(
        p.iter()
            .any(|p| p == "alarm on ApproximateAgeOfOldestMessage of MediaQueue notifies no one"),
        "{p:?}"
    );
}

/// The circuit alarms count what the breakers really log: a metric filter on each consumer's
/// log group matches the JSON line the breaker writes through the Lambdas' subscriber when a
/// circuit opens (checked here on the line itself, not on a copy of its shape).
#[test]
fn circuit_metrics_are_read_from_the_lines_the_breaker_writes() {
    use wabridge_core::breaker::{CircuitBreaker, OPEN_AFTER};

    let buffer = wabridge_tests::LogBuffer::default();
    let subscriber = wabridge_core::telemetry::lambda_subscriber(buffer.clone(), None);
    tracing::subscriber::with_default(subscriber, || {
        let breaker = CircuitBreaker::new("crm");
        for _ in 0..OPEN_AFTER {
            breaker.failure(false);
        }
    });
    let text = buffer.text();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["metric"] == "circuit_open")
        .unwrap_or_else(|| panic!("no circuit_open line in {text}"));
    assert_eq!(line["level"], "ERROR", "{line}");

    let t = load_template();
    for (filter, group, metric) in [
        ("CrmUnavailableMetric", "CrmSyncLogGroup", "CrmUnavailable"),
        (
            "GraphUnavailableMetric",
            "SenderLogGroup",
            "GraphUnavailable",
        ),
    ] {
        let pr = &t["Resources"][filter]["Properties"];
        assert!(is_ref(&pr["LogGroupName"], group), "{filter}: {pr}");
        assert_eq!(
            pr["FilterPattern"], "{ $.fields.metric = \"circuit_open\" }",
            "{filter}: the pattern must select the line above"
        );
        assert_eq!(pr["MetricTransformations"][0]["MetricName"], metric);
        assert_eq!(
            pr["MetricTransformations"][0]["MetricNamespace"],
            "wabridge"
        );
    }
}

/// A CRM refusing the credentials (401/403) is an alarm of its own: crm-sync's handler, on a
/// real SQLite ledger, logs the line the `CrmUnauthorized` metric filter selects, and the event
/// waits (a retry, not a dead letter).
#[tokio::test]
async fn crm_credential_refusals_are_read_from_the_line_crm_sync_writes() {
    use std::sync::Arc;
    use wabridge_core::consumer::{Handler, Outcome};
    use wabridge_core::crm::{Crm, CrmError, Effect};
    use wabridge_core::queue::Delivery;

    struct Refusing;
    #[async_trait::async_trait]
    impl Crm for Refusing {
        fn kind(&self) -> &'static str {
            "hubspot"
        }
        async fn apply(&self, _: &Effect) -> Result<(), CrmError> {
            Err(CrmError::Unauthorized(
                "HTTP 401: INVALID_AUTHENTICATION".into(),
            ))
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let db = wabridge_sqlite::Db::open(dir.path().join("a.db")).unwrap();
    let sync = wabridge_core::sync::CrmSync::new(
        Arc::new(wabridge_sqlite::identity::SqliteIdentityStore::new(
            db.clone(),
        )),
        Arc::new(wabridge_sqlite::ledger::SqliteLedger::new(db)),
        Arc::new(Refusing),
        Arc::new(wabridge_core::mapping::Mapping::example("hubspot").unwrap()),
    );
    let event = serde_json::json!({"v": 1, "key": "wamid.AUTH1", "kind": "message",
        "field": "messages", "waba_id": "W1",
        "contact": {"profile": {"name": "Ana"}, "wa_id": "5215512345678"},
        "item": {"id": "wamid.AUTH1", "from": "5215512345678", "timestamp": "1763780000",
                 "type": "text", "text": {"body": "Hola"}},
        "received_at": 1763780000123i64});
    let buffer = wabridge_tests::LogBuffer::default();
    let subscriber = wabridge_core::telemetry::lambda_subscriber(buffer.clone(), None);
    let outcome = {
        let _guard = tracing::subscriber::set_default(subscriber);
        sync.handle(&Delivery {
            message_id: "m".into(),
            receipt: "r".into(),
            body: event.to_string(),
            receive_count: 1,
            enqueued_at: None,
        })
        .await
    };
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    let text = buffer.text();
    let line: Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["metric"] == "crm_unauthorized")
        .unwrap_or_else(|| panic!("no crm_unauthorized line in {text}"));
    assert_eq!(line["level"], "ERROR", "{line}");
    assert_eq!(line["fields"]["crm"], "hubspot", "{line}");
    assert!(
        !text.contains("5215512345678"),
        "no phone number in the logs: {text}"
    );

    let t = load_template();
    let pr = &t["Resources"]["CrmUnauthorizedMetric"]["Properties"];
    assert!(is_ref(&pr["LogGroupName"], "CrmSyncLogGroup"), "{pr}");
    assert_eq!(
        pr["FilterPattern"], "{ $.fields.metric = \"crm_unauthorized\" }",
        "the pattern must select the line above"
    );
    assert_eq!(
        pr["MetricTransformations"][0]["MetricName"],
        "CrmUnauthorized"
    );
}

/// Events of numbers the registry does not know are counted from crm-sync's `unknown_number`
/// line (its shape is checked on the line itself in `numbers_aws_registry`).
#[test]
fn unknown_numbers_are_counted_from_crm_syncs_line() {
    let t = load_template();
    let pr = &t["Resources"]["UnknownNumberMetric"]["Properties"];
    assert!(is_ref(&pr["LogGroupName"], "CrmSyncLogGroup"), "{pr}");
    assert_eq!(
        pr["FilterPattern"],
        format!(
            "{{ $.fields.metric = \"{}\" }}",
            wabridge_core::numbers::UNKNOWN_NUMBER
        )
    );
    assert_eq!(
        pr["MetricTransformations"][0]["MetricName"],
        "UnknownNumber"
    );
    // Per unrouted id: the same line and metric, with the dimension crm-sync's line carries
    // (`unrouted`, checked on the line in `numbers_aws_registry`) and no default (CloudWatch
    // refuses one with dimensions).
    let by_id = &t["Resources"]["UnknownNumberByIdMetric"]["Properties"];
    assert!(is_ref(&by_id["LogGroupName"], "CrmSyncLogGroup"), "{by_id}");
    assert_eq!(by_id["FilterPattern"], pr["FilterPattern"]);
    let transform = &by_id["MetricTransformations"][0];
    assert_eq!(transform["MetricName"], "UnknownNumber");
    assert_eq!(transform["MetricNamespace"], "wabridge");
    assert_eq!(
        transform["Dimensions"],
        serde_json::json!([{"Key": "Unrouted", "Value": "$.fields.unrouted"}])
    );
    assert!(transform.get("DefaultValue").is_none(), "{transform}");
}
