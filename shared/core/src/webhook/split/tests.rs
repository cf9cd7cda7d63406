use super::*;
use crate::event::EventKind;

fn one(body: &str) -> Vec<Event> {
    split(body.as_bytes(), 1_700_000_000_000).expect("splits")
}

const TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"5215550001111","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Ana"},"wa_id":"5215512345678"},{"profile":{"name":"Beto"},"wa_id":"5491123456789"}],"messages":[{"from":"5491123456789","id":"wamid.B","timestamp":"1750000001","type":"text","text":{"body":"Hola \u00a1che!"}},{"from":"5215512345678","id":"wamid.A","timestamp":"1750000000","type":"text","text":{"body":"Hola"}}]},"field":"messages"}]}]}"#;

#[test]
fn messages_get_their_own_contact_and_raw_bytes() {
    let events = one(TEXT);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].key, "m:wamid.B");
    assert_eq!(events[0].kind, EventKind::Message);
    assert!(events[0].contact.as_ref().unwrap().get().contains("Beto"));
    assert!(events[1].contact.as_ref().unwrap().get().contains("Ana"));
    // Raw as received: the \u escape is untouched.
    assert!(events[0].item.get().contains(r"\u00a1che"));
    assert_eq!(events[0].waba_id, "102290129340398");
    assert_eq!(
        events[0].phone_number_id.as_deref(),
        Some("106540352242922")
    );
    assert_eq!(events[0].received_at, 1_700_000_000_000);
}

#[test]
fn statuses_key_on_id_and_status() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"9"},"statuses":[{"id":"wamid.X","status":"delivered","timestamp":"2","recipient_id":"5511987654321"},{"id":"wamid.X","status":"read","timestamp":"3","recipient_id":"5511987654321"}]}}]}]}"#;
    let events = one(body);
    let keys: Vec<_> = events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["s:wamid.X:delivered", "s:wamid.X:read"]);
    assert!(events.iter().all(|e| e.kind == EventKind::Status));
}

#[test]
fn unknown_members_and_types_are_kept() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messages":[{"from":"1","id":"wamid.H","type":"hologram","hologram":{"x":1}}],"message_echoes":[{"id":"e"}]}},{"field":"brand_new_field","value":{"a":[1,2]}}]}]}"#;
    let events = one(body);
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].kind, EventKind::Unknown);
    assert_eq!(events[0].key, "m:wamid.H");
    assert_eq!(events[1].kind, EventKind::Unknown);
    assert!(events[1].item.get().contains("message_echoes"));
    assert_eq!(events[2].kind, EventKind::Unknown);
    assert_eq!(events[2].item.get(), r#"{"a":[1,2]}"#);
    assert!(events[2].key.starts_with("h:brand_new_field:"));
}

#[test]
fn field_level_keys() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"77","time":1751000000,"changes":[
        {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":594425479261596,"message_template_name":"promo","message_template_language":"es_MX","reason":"NONE"}},
        {"field":"phone_number_quality_update","value":{"display_phone_number":"5215550001111","event":"FLAGGED","current_limit":"TIER_1K"}},
        {"field":"account_update","value":{"phone_number":"5215550001111","event":"VERIFIED_ACCOUNT"}},
        {"field":"user_preferences","value":{"contacts":[{"wa_id":"5491123456789"}],"user_preferences":[{"wa_id":"5491123456789","category":"marketing_messages","value":"stop","timestamp":1751000001}]}}]}]}"#;
    let events = one(body);
    let got: Vec<_> = events.iter().map(|e| (e.kind, e.key.as_str())).collect();
    assert_eq!(
        got,
        [
            (
                EventKind::TemplateStatus,
                "t:594425479261596:APPROVED:1751000000"
            ),
            (
                EventKind::QualityUpdate,
                "q:77:5215550001111:FLAGGED:1751000000"
            ),
            (
                EventKind::AccountUpdate,
                "a:77:5215550001111:VERIFIED_ACCOUNT:1751000000"
            ),
            (
                EventKind::UserPreference,
                "p:5491123456789:marketing_messages:stop:1751000001"
            ),
        ]
    );
    assert!(events[3].contact.is_some());
    assert_eq!(events[0].entry_time, Some(1751000000));
}

/// The template's other updates are template events too, each with its own key (so a
/// redelivery dedupes and two updates never collide), told apart by their field.
#[test]
fn template_updates_are_template_events() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"77","time":1751000000,"changes":[
        {"field":"message_template_quality_update","value":{"previous_quality_score":"GREEN","new_quality_score":"YELLOW","message_template_id":5944,"message_template_name":"promo","message_template_language":"es_MX"}},
        {"field":"template_category_update","value":{"message_template_id":5944,"message_template_name":"promo","message_template_language":"es_MX","previous_category":"UTILITY","new_category":"MARKETING"}},
        {"field":"template_category_update","value":{"message_template_id":5944,"message_template_name":"promo","message_template_language":"es_MX","new_category":"UTILITY","correct_category":"MARKETING","category_update_timestamp":1751086400}},
        {"field":"message_template_components_update","value":{"message_template_id":5944,"message_template_name":"promo","message_template_language":"es_MX","message_template_element":"Hola {{1}}, nuevo texto {{2}}"}}]}]}"#;
    let events = one(body);
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.field.as_str(), e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                EventKind::TemplateStatus,
                "message_template_quality_update",
                "t:5944:q:YELLOW:1751000000"
            ),
            (
                EventKind::TemplateStatus,
                "template_category_update",
                "t:5944:c:MARKETING:-:1751000000"
            ),
            (
                EventKind::TemplateStatus,
                "template_category_update",
                "t:5944:c:UTILITY:MARKETING:1751000000"
            ),
            (
                EventKind::TemplateStatus,
                "message_template_components_update",
                "t:5944:e:1751000000"
            ),
        ]
    );
    for e in &events {
        let crate::webhook::model::Item::TemplateStatus(t) =
            crate::webhook::model::parse_item(e).unwrap()
        else {
            panic!("{e:?}")
        };
        assert_eq!(t.message_template_name.as_deref(), Some("promo"));
    }
}

#[test]
fn keys_are_stable_and_distinct() {
    let a = one(TEXT);
    let b = one(TEXT);
    let ka: Vec<_> = a.iter().map(|e| e.key.clone()).collect();
    let kb: Vec<_> = b.iter().map(|e| e.key.clone()).collect();
    assert_eq!(ka, kb);
    let body1 = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"x","value":{"n":1}}]}]}"#;
    let body2 = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"x","value":{"n":2}}]}]}"#;
    assert_eq!(one(body1)[0].key, one(body1)[0].key);
    assert_ne!(one(body1)[0].key, one(body2)[0].key);
}

#[test]
fn long_ids_are_hashed_into_short_keys() {
    let id = "w".repeat(1000);
    let body = format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messages":[{{"id":"{id}","type":"text","text":{{"body":"x"}}}}]}}}}]}}]}}"#
    );
    let events = one(&body);
    assert!(events[0].key.starts_with("x:") && events[0].key.len() <= MAX_KEY_LEN);
}

#[test]
fn envelope_errors_name_the_problem() {
    let cases: &[(&str, SplitError)] = &[
        ("{", SplitError::NotJson(String::new())),
        ("[1]", SplitError::NotAnObject),
        (r#"{"entry":[]}"#, SplitError::MissingObject),
        (
            r#"{"object":"page","entry":[]}"#,
            SplitError::WrongObject("\"page\"".into()),
        ),
        (
            r#"{"object":"whatsapp_business_account"}"#,
            SplitError::MissingEntry,
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":{}}"#,
            SplitError::EntryNotArray,
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[3]}"#,
            SplitError::EntryNotObject(0),
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[]}]}"#,
            SplitError::EntryWithoutId(0),
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1"}]}"#,
            SplitError::EntryWithoutChanges(0),
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"a","value":{}},{"value":{}}]}]}"#,
            SplitError::ChangeWithoutField(0, 1),
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages"}]}]}"#,
            SplitError::ChangeWithoutValue(0, 0),
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":7,"value":{}}]}]}"#,
            SplitError::ChangeWithoutField(0, 0),
        ),
    ];
    for (body, expected) in cases {
        let got = split(body.as_bytes(), 0).expect_err(body);
        match (expected, &got) {
            (SplitError::NotJson(_), SplitError::NotJson(_)) => {}
            _ => assert_eq!(&got, expected, "{body}"),
        }
    }
}

#[test]
fn empty_entry_list_is_valid_and_empty() {
    assert!(one(r#"{"object":"whatsapp_business_account","entry":[]}"#).is_empty());
}

#[test]
fn a_message_naming_no_sender_gets_the_changes_only_contact() {
    let body = |contacts: &str| {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"contacts":[{contacts}],"messages":[{{"id":"wamid.N","timestamp":"1","type":"text","text":{{"body":"hola"}}}}]}}}}]}}]}}"#
        )
    };
    let events = one(&body(r#"{"user_id":"CL.773"}"#));
    assert_eq!(
        events[0].contact.as_ref().unwrap().get(),
        r#"{"user_id":"CL.773"}"#
    );
    // Two people: which one sent it is unknown, so none is attached.
    let events = one(&body(r#"{"user_id":"CL.773"},{"user_id":"CL.774"}"#));
    assert!(events[0].contact.is_none());
    // A sender that names someone else gets no stranger's contact.
    let events = one(&TEXT.replace(r#""from":"5491123456789""#, r#""from":"5491100000000""#));
    assert!(events[0].contact.is_none());
}

#[test]
fn echoes_and_calls_get_the_users_contact_and_their_own_keys() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
        {"field":"smb_message_echoes","value":{"metadata":{"display_phone_number":"551140040000","phone_number_id":"9"},
         "contacts":[{"profile":{"name":"João"},"wa_id":"5511987654321"}],
         "message_echoes":[{"from":"551140040000","to":"5511987654321","id":"wamid.E","timestamp":"1","type":"text","text":{"body":"Oi"}},
                           {"from":"551140040000","to":"5511987654321","id":"wamid.P","timestamp":"1","type":"poll","poll":{}}]}},
        {"field":"calls","value":{"metadata":{"display_phone_number":"551140040000","phone_number_id":"9"},
         "contacts":[{"profile":{"name":"João"},"wa_id":"5511987654321"}],
         "calls":[{"id":"wacid.C","from":"551140040000","to":"5511987654321","event":"connect","direction":"BUSINESS_INITIATED","timestamp":"2"}],
         "statuses":[{"id":"wacid.C","type":"call","status":"ACCEPTED","timestamp":"3","recipient_id":"5511987654321"}],
         "whatever_comes_next":[1]}}]}]}"#;
    let events = one(body);
    let got: Vec<(&str, EventKind)> = events.iter().map(|e| (e.key.as_str(), e.kind)).collect();
    assert_eq!(got[0], ("m:wamid.E", EventKind::Echo));
    assert_eq!(
        got[1],
        ("m:wamid.P", EventKind::Unknown),
        "an echo type we do not model"
    );
    assert_eq!(got[2], ("c:wacid.C:connect", EventKind::Call));
    assert_eq!(got[3], ("c:wacid.C:status:ACCEPTED", EventKind::Call));
    // A member of the calls value we do not know: the whole value is kept too.
    assert_eq!(got[4].1, EventKind::Unknown);
    assert_eq!(events.len(), 5);
    for e in &events[..4] {
        assert!(
            e.contact.as_ref().unwrap().get().contains("João"),
            "{}",
            e.key
        );
        assert_eq!(e.display_phone_number.as_deref(), Some("551140040000"));
    }
}
