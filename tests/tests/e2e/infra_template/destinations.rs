//! Fan-out destinations on AWS (docs/destinations.md): the events topic, the CRM's queue
//! subscribed to it when a slot is filled, and per destination slot a queue, DLQ, subscription
//! whose filter policy is what `wabridge_core::numbers::topic::filter_policy` builds from its
//! settings, a relay function and its alarms. The slots are copies of the first (checked, so
//! that a fix in one cannot miss the others). Queues, roles, env and alarms of the slots are
//! also checked by the stack-wide checks (`LAMBDAS`, `QUEUES`).

use serde_json::{json, Value};
use wabridge_core::numbers::destinations::EventClass;
use wabridge_core::numbers::topic;

use super::*;

/// What a slot's (or the events queue's) resource must say, as problems.
pub(super) fn check_destinations(t: &Value) -> Vec<String> {
    let mut p = vec![];
    if t["Resources"]["EventsTopic"]["Type"] != "AWS::SNS::Topic" {
        p.push("EventsTopic: missing AWS::SNS::Topic".into());
    }
    if props(t, "EventsTopic")["KmsMasterKeyId"].is_null() {
        p.push("EventsTopic: not encrypted".into());
    }
    let raw_sqs = |id: &str, queue: &str, p: &mut Vec<String>| {
        let s = props(t, id);
        if t["Resources"][id]["Type"] != "AWS::SNS::Subscription" {
            p.push(format!("{id}: missing AWS::SNS::Subscription"));
        }
        if !is_ref(&s["TopicArn"], "EventsTopic") || !is_get_att(&s["Endpoint"], queue, "Arn") {
            p.push(format!("{id}: must subscribe {queue} to EventsTopic"));
        }
        if s["Protocol"] != "sqs" || s["RawMessageDelivery"] != true {
            p.push(format!(
                "{id}: must deliver raw (the queue's body is the event) over sqs"
            ));
        }
    };
    let sns_may_send = |id: &str, queue: &str, p: &mut Vec<String>| {
        let st = &props(t, id)["PolicyDocument"]["Statement"];
        let ok = props(t, id)["Queues"] == json!([{"Ref": queue}])
            && st
                == &json!([{"Sid": "EventsTopicDelivers", "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": [queue, "Arn"]},
                "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": "EventsTopic"}}}}]);
        if !ok {
            p.push(format!(
                "{id}: only EventsTopic may send to {queue}, and nothing else"
            ));
        }
    };
    // The CRM's queue: every event, once a slot is filled.
    raw_sqs("EventsQueueSubscription", "EventsQueue", &mut p);
    if !props(t, "EventsQueueSubscription")["FilterPolicy"].is_null() {
        p.push("EventsQueueSubscription: the CRM's queue takes every event (no filter)".into());
    }
    sns_may_send("EventsQueuePolicy", "EventsQueue", &mut p);
    for id in ["EventsQueueSubscription", "EventsQueuePolicy"] {
        if t["Resources"][id]["Condition"] != "HasDestinations" {
            p.push(format!("{id}: must exist only with destinations"));
        }
    }
    for id in ["Ingest", "CrmSync"] {
        let env = &props(t, id)["Environment"]["Variables"][config::EVENTS_TOPIC_ARN];
        if *env != json!({"Fn::If": ["HasDestinations", {"Ref": "EventsTopic"}, ""]}) {
            p.push(format!(
                "{id}: EVENTS_TOPIC_ARN must be EventsTopic with destinations, else empty"
            ));
        }
    }
    for slot in DESTINATION_SLOTS {
        let queue = format!("{slot}Queue");
        raw_sqs(&format!("{slot}Subscription"), &queue, &mut p);
        sns_may_send(&format!("{slot}QueuePolicy"), &queue, &mut p);
        let filter = &props(t, &format!("{slot}Subscription"))["FilterPolicy"];
        let classes = json!({"Fn::Split": [",", {"Ref": format!("{slot}Events")}]});
        let numbers = json!({"Fn::Split": [",", {"Ref": format!("{slot}Numbers")}]});
        let want = json!({"Fn::If": [format!("{slot}FiltersNumbers"),
            {"event_class": classes, "number": numbers}, {"event_class": classes}]});
        if *filter != want {
            p.push(format!(
                "{slot}Subscription: FilterPolicy must be its Events and (when set) Numbers"
            ));
        }
        // Every resource of the slot exists only when the slot is filled.
        for (id, r) in resources(t) {
            if id.starts_with(slot) && r["Condition"] != format!("Has{slot}") {
                p.push(format!("{id}: must have Condition Has{slot}"));
            }
        }
    }
    p
}

#[test]
fn the_events_topic_feeds_the_crm_queue_and_each_destination_through_its_filter() {
    let t = load_template();
    assert_clean(check_destinations(&t));
    let mut broken = t.clone();
    broken["Resources"]["Destination2Subscription"]["Properties"]
        .as_object_mut()
        .unwrap()
        .remove("FilterPolicy");
    broken["Resources"]["EventsQueueSubscription"]["Properties"]["RawMessageDelivery"] =
        json!(false);
    broken["Resources"]["Destination3Role"]
        .as_object_mut()
        .unwrap()
        .remove("Condition");
    let problems = check_destinations(&broken);
    for needle in [
        "Destination2Subscription: FilterPolicy",
        "EventsQueueSubscription: must deliver raw",
        "Destination3Role: must have Condition",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(needle)),
            "{needle} not in {problems:?}"
        );
    }
}

/// The filter policy the template gives slot 1 for these parameter values (its `Fn::If`,
/// `Fn::Split` and `Ref`s resolved as CloudFormation does).
fn resolved_filter(t: &Value, events: &str, numbers: &str) -> Value {
    fn resolve(v: &Value, params: &[(&str, &str)], filters_numbers: bool) -> Value {
        match v {
            Value::Object(m) if m.contains_key("Fn::If") => {
                let arms = &m["Fn::If"];
                resolve(
                    &arms[if filters_numbers { 1 } else { 2 }],
                    params,
                    filters_numbers,
                )
            }
            Value::Object(m) if m.contains_key("Fn::Split") => {
                let args = &m["Fn::Split"];
                let name = args[1]["Ref"].as_str().unwrap();
                let value = params.iter().find(|(k, _)| *k == name).unwrap().1;
                value
                    .split(args[0].as_str().unwrap())
                    .map(Value::from)
                    .collect()
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), resolve(v, params, filters_numbers)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    let filter = &props(t, "Destination1Subscription")["FilterPolicy"];
    let params = [
        ("Destination1Events", events),
        ("Destination1Numbers", numbers),
    ];
    resolve(filter, &params, !numbers.is_empty())
}

#[test]
fn the_templates_filter_policy_is_the_one_the_code_builds_for_the_same_settings() {
    let t = load_template();
    let default = t["Parameters"]["Destination1Events"]["Default"]
        .as_str()
        .unwrap();
    assert_eq!(
        resolved_filter(&t, default, ""),
        topic::filter_policy(&EventClass::ALL, None),
        "the default is every class, for every number"
    );
    let labels = ["ventas-mx".to_string(), "soporte-co".to_string()];
    assert_eq!(
        resolved_filter(&t, "messages,templates", "ventas-mx,soporte-co"),
        topic::filter_policy(
            &[EventClass::Messages, EventClass::Templates],
            Some(&labels)
        )
    );
}

/// Slot `n`'s resources and parameters, renamed to slot 1's.
fn as_slot_one(t: &Value, n: usize) -> (Map<String, Value>, Map<String, Value>) {
    let slot = format!("Destination{n}");
    let rename = |v: &Value| -> Value {
        let text = v
            .to_string()
            .replace(&slot, "Destination1")
            .replace(&format!("slot {n}"), "slot 1")
            .replace(&format!("relay-{n}"), "relay-1");
        serde_json::from_str(&text).unwrap()
    };
    let pick = |section: &str| -> Map<String, Value> {
        t[section]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(id, _)| id.starts_with(&slot))
            .map(|(id, v)| (id.replacen(&slot, "Destination1", 1), rename(v)))
            .collect()
    };
    (pick("Resources"), pick("Parameters"))
}

pub(super) fn check_slots_are_copies(t: &Value) -> Vec<String> {
    let mut p = vec![];
    let one = as_slot_one(t, 1);
    if one.0.is_empty() {
        return vec!["Destination1: no resources".into()];
    }
    for n in 2..=DESTINATION_SLOTS.len() {
        let other = as_slot_one(t, n);
        for (what, mine, theirs) in [
            ("resource", &one.0, &other.0),
            ("parameter", &one.1, &other.1),
        ] {
            for (id, v) in mine {
                match theirs.get(id) {
                    None => p.push(format!(
                        "Destination{n}: no {what} {}",
                        id.replacen("Destination1", &format!("Destination{n}"), 1)
                    )),
                    Some(w) if w != v => p.push(format!(
                        "Destination{n}: {what} {} differs from slot 1's",
                        id.replacen("Destination1", &format!("Destination{n}"), 1)
                    )),
                    _ => {}
                }
            }
        }
    }
    p
}

#[test]
fn the_destination_slots_are_copies_of_the_first() {
    let t = load_template();
    assert_clean(check_slots_are_copies(&t));
    let mut broken = t.clone();
    broken["Resources"]["Destination3Queue"]["Properties"]["VisibilityTimeout"] = json!(30);
    broken["Resources"]
        .as_object_mut()
        .unwrap()
        .remove("Destination2DlqAlarm");
    let problems = check_slots_are_copies(&broken);
    assert!(
        problems.contains(&"Destination3: resource Destination3Queue differs from slot 1's".into()),
        "{problems:?}"
    );
    assert!(
        problems.contains(&"Destination2: no resource Destination2DlqAlarm".into()),
        "{problems:?}"
    );
}

#[test]
fn each_destination_has_its_dead_letter_and_backlog_alarms() {
    let t = load_template();
    for (alarm, want) in [
        (
            "Destination2DlqAlarm",
            "no alarm on AWS/SQS ApproximateNumberOfMessagesVisible of Destination2Dlq",
        ),
        (
            "Destination3AgeAlarm",
            "no alarm on AWS/SQS ApproximateAgeOfOldestMessage of Destination3Queue",
        ),
        (
            "Destination1ErrorsAlarm",
            "no alarm on AWS/Lambda Errors of Destination1",
        ),
    ] {
        let mut broken = t.clone();
        broken["Resources"].as_object_mut().unwrap().remove(alarm);
        let problems = super::alarms::check_alarms(&broken);
        assert!(
            problems.iter().any(|p| p == want),
            "{want} not in {problems:?}"
        );
    }
}

/// Each slot's role reaches the table only through its own destination's delivery log
/// partitions (`delivery#<name>` and its key items), and only to put and read items.
pub(super) fn check_delivery_log_grants(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for slot in DESTINATION_SLOTS {
        let role = format!("{slot}Role");
        let statements: Vec<Value> = props(t, &role)["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|policy| {
                policy["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| {
                strings(&s["Action"])
                    .iter()
                    .any(|a| a.starts_with("dynamodb:"))
            })
            .collect();
        let partitions = json!([
            {"Fn::Sub": format!("delivery#${{{slot}Name}}")},
            {"Fn::Sub": format!("delivery#${{{slot}Name}}#*")},
        ]);
        let ok = statements.len() == 1
            && strings(&statements[0]["Action"]) == ["dynamodb:PutItem", "dynamodb:GetItem"]
            && statements[0]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
                == partitions;
        if !ok {
            p.push(format!(
                "{role}: dynamodb:PutItem and GetItem only, on its delivery log's partitions"
            ));
        }
        let env = &props(t, slot)["Environment"]["Variables"];
        if !is_ref(&env["WABRIDGE_TABLE"], "Table")
            || !is_ref(
                &env["WABRIDGE_CONTENT_RETENTION_DAYS"],
                "ContentRetentionDays",
            )
        {
            p.push(format!(
                "{slot}: logs its deliveries in the Table for the content retention"
            ));
        }
    }
    p
}

#[test]
fn each_relay_logs_its_deliveries_in_its_own_partitions_only() {
    let t = load_template();
    assert_clean(check_delivery_log_grants(&t));
    let mut broken = t.clone();
    broken["Resources"]["Destination2Role"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .filter(|s| s["Sid"] == "DeliveryLog")
        .for_each(|s| {
            s["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] =
                json!(["delivery#*"]);
        });
    assert_eq!(
        check_delivery_log_grants(&broken),
        ["Destination2Role: dynamodb:PutItem and GetItem only, on its delivery log's partitions"]
    );
}

/// A slot's kind is its `DestinationNKind` parameter (relay by default), passed as
/// `DESTINATION_KIND`; only a records slot's role gets, besides the delivery log, its own
/// ledger items (ids scoped to `destination:<name>|`), identity reads and the numbers registry.
pub(super) fn check_records_grants(t: &Value) -> Vec<String> {
    let mut p = vec![];
    for slot in DESTINATION_SLOTS {
        let kind = &t["Parameters"][format!("{slot}Kind")];
        if kind["Default"] != "relay" || kind["AllowedValues"] != json!(["relay", "records"]) {
            p.push(format!("{slot}Kind: relay (default) or records"));
        }
        let env = &props(t, slot)["Environment"]["Variables"];
        if !is_ref(&env[config::DESTINATION_KIND], &format!("{slot}Kind")) {
            p.push(format!("{slot}: DESTINATION_KIND must be {slot}Kind"));
        }
        let records = format!("{slot}Records");
        let condition = json!({"Fn::And": [{"Condition": format!("Has{slot}")},
            {"Fn::Equals": [{"Ref": format!("{slot}Kind")}, "records"]}]});
        if t["Conditions"][&records] != condition {
            p.push(format!(
                "{records}: must be Has{slot} and {slot}Kind records"
            ));
        }
        let only_records = |sid: &str, actions: Value, keys: Value| {
            json!({"Fn::If": [records, {"Sid": sid, "Effect": "Allow", "Action": actions,
                "Resource": {"Fn::GetAtt": ["Table", "Arn"]},
                "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": keys}}},
                {"Ref": "AWS::NoValue"}]})
        };
        let want = [
            only_records(
                "RecordsLedger",
                json!(["dynamodb:UpdateItem", "dynamodb:GetItem"]),
                json!([{"Fn::Sub": format!("ledger#destination:${{{slot}Name}}|*")},
                    {"Fn::Sub": format!("msgstatus#destination:${{{slot}Name}}|*")}]),
            ),
            only_records(
                "RecordsReadIdentities",
                json!("dynamodb:GetItem"),
                json!(["identity#*", "erasure#*", "tombstone#*"]),
            ),
            only_records(
                "RecordsNumbersRegistry",
                json!("dynamodb:Query"),
                json!(["numbers#*"]),
            ),
        ];
        let conditional: Vec<Value> = props(t, &format!("{slot}Role"))["Policies"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|policy| {
                policy["PolicyDocument"]["Statement"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter(|s| s.get("Fn::If").is_some())
            .collect();
        if conditional != want {
            p.push(format!(
                "{slot}Role: records grants only its ledger items, identity reads and the registry, only as records"
            ));
        }
    }
    p
}

#[test]
fn only_a_records_slot_reads_identities_and_keeps_its_own_ledger_items() {
    let t = load_template();
    assert_clean(check_records_grants(&t));
    let mut broken = t.clone();
    for s in broken["Resources"]["Destination3Role"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_array_mut()
        .unwrap()
    {
        if s["Fn::If"][1]["Sid"] == "RecordsLedger" {
            // Every ledger item, the CRM's too: the destination could skip or mark the CRM's.
            s["Fn::If"][1]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] =
                json!(["ledger#*"]);
        }
    }
    broken["Resources"]["Destination2"]["Properties"]["Environment"]["Variables"]
        ["DESTINATION_KIND"] = json!("records");
    assert_eq!(
        check_records_grants(&broken),
        [
            "Destination2: DESTINATION_KIND must be Destination2Kind",
            "Destination3Role: records grants only its ledger items, identity reads and the registry, only as records"
        ]
    );
}
