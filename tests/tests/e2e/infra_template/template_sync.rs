//! The hourly TemplateSync schedule runs with the one number's WABA id or with a numbers
//! registry in the table (`NumbersRegistry`), and with neither stays off: its `State`, through
//! the template's conditions, evaluated for each combination of the two parameters.

use serde_json::{json, Value};

use super::{load_template, props};

/// A condition or intrinsic of the template, with `params` for `!Ref` (the rest at default).
fn eval(t: &Value, v: &Value, params: &[(&str, &str)]) -> Value {
    let arg = |name: &str| v.get(name);
    if let Some(name) = arg("Ref").and_then(Value::as_str) {
        let given = params.iter().find(|(p, _)| *p == name).map(|(_, v)| *v);
        return match given {
            Some(value) => json!(value),
            None => t["Parameters"][name]["Default"].clone(),
        };
    }
    if let Some(name) = arg("Condition").and_then(Value::as_str) {
        let condition = &t["Conditions"][name];
        assert!(!condition.is_null(), "no condition {name}");
        return eval(t, condition, params);
    }
    let list = |name: &str| -> Option<Vec<Value>> {
        arg(name)?
            .as_array()
            .map(|a| a.iter().map(|x| eval(t, x, params)).collect())
    };
    if let Some(a) = list("Fn::Equals") {
        return json!(a[0] == a[1]);
    }
    if let Some(a) = list("Fn::Not") {
        return json!(a[0] != json!(true));
    }
    if let Some(a) = list("Fn::Or") {
        return json!(a.contains(&json!(true)));
    }
    if let Some(a) = list("Fn::And") {
        return json!(a.iter().all(|x| *x == json!(true)));
    }
    if let Some(a) = arg("Fn::If").and_then(Value::as_array) {
        let name = a[0].as_str().expect("an If names a condition");
        let chosen = eval(t, &json!({ "Condition": name }), params) == json!(true);
        return eval(t, &a[if chosen { 1 } else { 2 }], params);
    }
    v.clone()
}

fn schedule_state(t: &Value, params: &[(&str, &str)]) -> Value {
    let state = &props(t, "Sender")["Events"]["TemplateSync"]["Properties"]["State"];
    eval(t, state, params)
}

#[test]
fn the_template_sync_runs_with_a_waba_id_or_a_numbers_registry() {
    let t = load_template();
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "DISABLED"),
        (
            &[("WhatsAppBusinessAccountId", "102290129340398")],
            "ENABLED",
        ),
        (&[("NumbersRegistry", "true")], "ENABLED"),
        (
            &[
                ("WhatsAppBusinessAccountId", "102290129340398"),
                ("NumbersRegistry", "true"),
            ],
            "ENABLED",
        ),
    ];
    for (params, want) in cases {
        assert_eq!(schedule_state(&t, params), json!(want), "{params:?}");
    }
    let registry = &t["Parameters"]["NumbersRegistry"];
    assert_eq!(
        registry["Default"], "false",
        "off unless the operator says so"
    );
    assert_eq!(registry["AllowedValues"], json!(["false", "true"]));
}

#[test]
fn the_evaluation_sees_a_schedule_tied_to_the_waba_id_alone() {
    // The state before the registry counted: the same evaluation must tell it apart.
    let mut t = load_template();
    t["Resources"]["Sender"]["Properties"]["Events"]["TemplateSync"]["Properties"]["State"] =
        json!({"Fn::If": ["HasBusinessAccountId", "ENABLED", "DISABLED"]});
    assert_eq!(
        schedule_state(&t, &[("NumbersRegistry", "true")]),
        json!("DISABLED")
    );
}
