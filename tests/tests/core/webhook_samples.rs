//! Every sample in events/webhooks splits into the events its README row promises, parses with
//! the typed model, and keeps each item's raw JSON; batched POSTs yield every item; keys are
//! stable across two splits of the same bytes and distinct within a delivery.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use wabridge_core::event::{Event, EventKind};
use wabridge_core::webhook::model::{
    self, InteractiveType, Item, MessageContent, MessageType, PreferenceValue, StatusKind,
    SystemType, TemplateEvent,
};
use wabridge_core::webhook::split;

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/webhooks")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(samples_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn split_file(name: &str) -> Vec<Event> {
    split(&read(name), 1_763_700_000_000).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Expected kinds per sample, as listed in events/README.md.
fn expected() -> BTreeMap<&'static str, Vec<EventKind>> {
    use EventKind::*;
    let m = |n| vec![Message; n];
    BTreeMap::from([
        ("text_es_mx.json", m(1)),
        ("text_reply_context_forwarded_pt_br.json", m(1)),
        ("ctwa_referral_es_ar.json", m(1)),
        ("image_pt_br_without_ninth_digit.json", m(1)),
        ("audio_voice_es_mx.json", m(1)),
        ("video_es_ar.json", m(1)),
        ("document_pt_br.json", m(1)),
        ("sticker_animated_es_mx.json", m(1)),
        ("location_without_type_es_ar.json", m(1)),
        ("contacts_share_pt_br.json", m(1)),
        ("interactive_button_reply_es_mx.json", m(1)),
        ("interactive_list_reply_pt_br.json", m(1)),
        ("interactive_nfm_reply_flow_es_ar.json", m(1)),
        ("button_template_quick_reply_es_mx.json", m(1)),
        ("order_pt_br.json", m(1)),
        ("reaction_and_removal_es_ar.json", m(2)),
        ("system_user_changed_number_es_mx.json", m(1)),
        ("system_customer_changed_number_es_ar.json", m(1)),
        ("system_customer_identity_changed_pt_br.json", m(1)),
        ("system_user_changed_user_id_bsuid.json", m(1)),
        ("request_welcome_es_mx.json", m(1)),
        ("unsupported_pt_br.json", m(1)),
        ("bsuid_only_sender_pt_br.json", m(1)),
        ("statuses_sent_delivered_read_es_mx.json", vec![Status; 3]),
        ("status_played_voice_es_ar.json", vec![Status]),
        ("status_failed_pt_br.json", vec![Status]),
        ("status_bsuid_recipient_pt_br.json", vec![Status]),
        ("template_status_update_es_mx.json", vec![TemplateStatus]),
        ("template_status_rejected_pt_br.json", vec![TemplateStatus]),
        (
            "phone_number_quality_update_es_ar.json",
            vec![QualityUpdate],
        ),
        (
            "user_preferences_marketing_stop_es_ar.json",
            vec![UserPreference],
        ),
        ("account_update_es_mx.json", vec![AccountUpdate]),
        ("text_wa_id_unknown_range_es_mx.json", m(1)),
        ("bsuid_in_from_and_wa_id_es_co.json", m(1)),
        ("bsuid_only_in_contacts_es_cl.json", m(1)),
        ("status_group_es_mx.json", vec![Status]),
        ("status_unmodelled_value_es_pe.json", vec![Status]),
        ("user_preferences_signup_es_mx.json", vec![UserPreference]),
        (
            "account_update_unmodelled_event_es_ar.json",
            vec![AccountUpdate],
        ),
        ("edit_text_es_mx.json", m(1)),
        ("edit_image_caption_pt_br.json", m(1)),
        ("revoke_es_ar.json", m(1)),
        ("unsupported_edit_131051_es_mx.json", m(1)),
        ("echoes_text_edit_revoke_pt_br.json", vec![Echo; 3]),
        ("call_user_connect_terminate_es_mx.json", vec![Call; 2]),
        ("call_business_status_terminate_pt_br.json", vec![Call; 3]),
        ("call_permission_reply_es_ar.json", m(1)),
        (
            "template_components_update_es_mx.json",
            vec![TemplateStatus],
        ),
        ("template_category_update_pt_br.json", vec![TemplateStatus]),
        ("account_update_restriction_es_mx.json", vec![AccountUpdate]),
        ("change_level_errors.json", vec![Unknown]),
        ("unknown_field.json", vec![Unknown]),
        ("unknown_message_type_es_mx.json", vec![Unknown]),
        (
            "batched_multi_entry.json",
            vec![
                Message,
                Message,
                Message,
                Status,
                Status,
                Message,
                TemplateStatus,
            ],
        ),
    ])
}

#[test]
fn every_sample_is_listed_and_splits_into_its_kinds() {
    let expected = expected();
    let mut files: Vec<String> = std::fs::read_dir(samples_dir())
        .expect("events/webhooks exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<String> = expected.keys().map(|s| s.to_string()).collect();
    assert_eq!(files, listed, "events/webhooks and this test's list differ");

    let readme = std::fs::read_to_string(samples_dir().join("../README.md")).unwrap();
    for (name, kinds) in &expected {
        assert!(readme.contains(name), "{name} is not in events/README.md");
        let events = split_file(name);
        let got: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(&got, kinds, "{name}");
        let body = String::from_utf8(read(name)).unwrap();
        for e in &events {
            // Typed parse works for every known kind; unknowns say Unknown.
            let item = model::parse_item(e).unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(
                matches!(item, Item::Unknown),
                e.kind == EventKind::Unknown,
                "{name}"
            );
            if let Some(c) = model::parse_contact(e) {
                c.unwrap_or_else(|err| panic!("{name}: contact {err}"));
            }
            // Unknowns keep their raw JSON: it is valid and names what Meta sent.
            let raw: serde_json::Value = serde_json::from_str(e.item.get()).unwrap();
            assert!(raw.is_object(), "{name}");
            // The item is byte for byte a slice of the body as received (indentation, escapes
            // and key order included), not a re-serialisation.
            assert!(
                body.contains(e.item.get()),
                "{name}: raw item kept as received"
            );
            if let Some(c) = &e.contact {
                assert!(
                    body.contains(c.get()),
                    "{name}: raw contact kept as received"
                );
            }
        }
        let keys: HashSet<&str> = events.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys.len(),
            events.len(),
            "{name}: keys distinct within a delivery"
        );
    }
}

#[test]
fn keys_are_stable_across_splits_and_files() {
    let mut all = HashSet::new();
    for name in expected().keys() {
        let a: Vec<String> = split_file(name).into_iter().map(|e| e.key).collect();
        let b: Vec<String> = split_file(name).into_iter().map(|e| e.key).collect();
        assert_eq!(a, b, "{name}: same bytes, same keys");
        for k in a {
            assert!(
                all.insert(k.clone()),
                "{name}: key {k} also used by another sample"
            );
        }
    }
}

#[test]
fn batched_post_yields_every_item_with_its_own_context() {
    let events = split_file("batched_multi_entry.json");
    assert_eq!(events.len(), 7);
    let waba: Vec<&str> = events.iter().map(|e| e.waba_id.as_str()).collect();
    assert_eq!(
        waba,
        [
            "102290129340398",
            "102290129340398",
            "102290129340398",
            "102290129340398",
            "102290129340398",
            "104455667788990",
            "104455667788990"
        ]
    );
    // Each of the three messages of the first change gets its own sender.
    let senders: Vec<String> = events[..3]
        .iter()
        .map(|e| model::parse_contact(e).unwrap().unwrap().wa_id.unwrap())
        .collect();
    assert_eq!(senders, ["5215512345678", "5213398765432", "5215512345678"]);
    assert_eq!(
        events[0].phone_number_id.as_deref(),
        Some("106540352242922")
    );
    assert_eq!(
        events[5].phone_number_id.as_deref(),
        Some("109871234567890")
    );
    assert_eq!(events[6].entry_time, Some(1763700305));
    assert!(events[6].key.starts_with("t:771234509876544:PAUSED:"));
    // The first entry has no time; the second has one.
    assert_eq!(events[0].entry_time, None);
}

#[test]
fn typed_details_of_samples() {
    let one = |name: &str| -> Item {
        let events = split_file(name);
        model::parse_item(&events[0]).unwrap()
    };
    let msg = |name: &str| match one(name) {
        Item::Message(m) => m,
        other => panic!("{name}: {other:?}"),
    };

    let m = msg("location_without_type_es_ar.json");
    assert_eq!(m.message_type, None);
    assert_eq!(m.kind(), MessageType::Location);

    let m = msg("ctwa_referral_es_ar.json");
    assert!(m.referral.unwrap().ctwa_clid.unwrap().starts_with("ARAk"));

    let m = msg("text_reply_context_forwarded_pt_br.json");
    let ctx = m.context.unwrap();
    assert_eq!(ctx.forwarded, Some(true));
    assert_eq!(ctx.frequently_forwarded, Some(false));

    let m = msg("audio_voice_es_mx.json");
    let MessageContent::Audio(a) = m.content() else {
        panic!()
    };
    assert_eq!(a.voice, Some(true));

    let m = msg("document_pt_br.json");
    let MessageContent::Document(d) = m.content() else {
        panic!()
    };
    assert_eq!(d.filename.as_deref(), Some("comprovante-pix-novembro.pdf"));

    let m = msg("sticker_animated_es_mx.json");
    let MessageContent::Sticker(s) = m.content() else {
        panic!()
    };
    assert_eq!(s.animated, Some(true));

    let m = msg("interactive_nfm_reply_flow_es_ar.json");
    let MessageContent::Interactive(i) = m.content() else {
        panic!()
    };
    assert_eq!(i.interactive_type, Some(InteractiveType::NfmReply));
    let flow: serde_json::Value = serde_json::from_str(
        i.nfm_reply
            .as_ref()
            .unwrap()
            .response_json
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(flow["provincia"], "Córdoba");

    let events = split_file("reaction_and_removal_es_ar.json");
    let removal = match model::parse_item(&events[1]).unwrap() {
        Item::Message(m) => m,
        _ => panic!(),
    };
    let MessageContent::Reaction(r) = removal.content() else {
        panic!()
    };
    assert!(r.is_removal());

    for (name, t) in [
        (
            "system_user_changed_number_es_mx.json",
            SystemType::UserChangedNumber,
        ),
        (
            "system_customer_changed_number_es_ar.json",
            SystemType::CustomerChangedNumber,
        ),
        (
            "system_customer_identity_changed_pt_br.json",
            SystemType::CustomerIdentityChanged,
        ),
        (
            "system_user_changed_user_id_bsuid.json",
            SystemType::UserChangedUserId,
        ),
    ] {
        let m = msg(name);
        let MessageContent::System(s) = m.content() else {
            panic!("{name}")
        };
        assert_eq!(s.system_type, Some(t), "{name}");
    }

    assert_eq!(
        msg("request_welcome_es_mx.json").kind(),
        MessageType::RequestWelcome
    );
    assert_eq!(msg("unsupported_pt_br.json").errors[0].code, Some(131051));

    // BSUID-only sender: no from, no wa_id; the contact is matched by user_id.
    let events = split_file("bsuid_only_sender_pt_br.json");
    let m = match model::parse_item(&events[0]).unwrap() {
        Item::Message(m) => m,
        _ => panic!(),
    };
    assert_eq!(m.from, None);
    assert_eq!(m.from_user_id.as_deref(), Some("BR.13491208655302741918"));
    let c = model::parse_contact(&events[0])
        .expect("contact matched by user_id")
        .unwrap();
    assert_eq!(c.wa_id, None);
    assert_eq!(c.profile.unwrap().username.as_deref(), Some("ana.souza"));

    // Statuses.
    let events = split_file("statuses_sent_delivered_read_es_mx.json");
    let kinds: Vec<StatusKind> = events
        .iter()
        .map(|e| match model::parse_item(e).unwrap() {
            Item::Status(s) => s.status.unwrap(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        kinds,
        [StatusKind::Sent, StatusKind::Delivered, StatusKind::Read]
    );
    let Item::Status(sent) = model::parse_item(&events[0]).unwrap() else {
        panic!()
    };
    assert_eq!(
        sent.biz_opaque_callback_data.as_deref(),
        Some("crm:deal:84213")
    );
    assert_eq!(sent.pricing.unwrap().category.as_deref(), Some("marketing"));
    assert!(sent.conversation.unwrap().expiration_timestamp.is_some());

    let Item::Status(failed) = one("status_failed_pt_br.json") else {
        panic!()
    };
    assert_eq!(failed.status, Some(StatusKind::Failed));
    assert_eq!(failed.errors[0].code, Some(131047));

    let events = split_file("status_bsuid_recipient_pt_br.json");
    let Item::Status(s) = model::parse_item(&events[0]).unwrap() else {
        panic!()
    };
    assert_eq!(s.recipient_id, None);
    assert!(s.recipient_user_id.is_some());
    assert!(
        events[0].contact.is_some(),
        "status recipient matched by user_id"
    );

    let Item::Status(played) = one("status_played_voice_es_ar.json") else {
        panic!()
    };
    assert_eq!(played.status, Some(StatusKind::Played));

    // Other fields.
    let Item::TemplateStatus(t) = one("template_status_update_es_mx.json") else {
        panic!()
    };
    assert_eq!(t.event_kind(), Some(TemplateEvent::Approved));
    assert_eq!(t.message_template_id.as_deref(), Some("594425479261596"));
    let Item::UserPreference(p) = one("user_preferences_marketing_stop_es_ar.json") else {
        panic!()
    };
    assert_eq!(p.value_kind(), Some(PreferenceValue::Stop));
    let Item::UserPreference(p) = one("user_preferences_signup_es_mx.json") else {
        panic!()
    };
    assert_eq!(p.value.as_deref(), Some("signup"), "kept by name");
    assert_eq!(p.value_kind(), Some(PreferenceValue::Other));

    // A status of a message sent to a group names the group, and its participant apart.
    let Item::Status(g) = one("status_group_es_mx.json") else {
        panic!()
    };
    assert!(g.is_group());
    assert_eq!(g.recipient_id.as_deref(), Some("120363045678901234"));
    assert_eq!(g.recipient_participant_id.as_deref(), Some("5213312345678"));

    // No sender in the message: the change's only contact is attached.
    let events = split_file("bsuid_only_in_contacts_es_cl.json");
    let c = model::parse_contact(&events[0])
        .expect("the single contacts[] entry")
        .unwrap();
    assert_eq!(c.user_id.as_deref(), Some("CL.77301928374655019283"));
    let Item::QualityUpdate(q) = one("phone_number_quality_update_es_ar.json") else {
        panic!()
    };
    assert_eq!(q.event.as_deref(), Some("DOWNGRADE"));
    let Item::AccountUpdate(a) = one("account_update_es_mx.json") else {
        panic!()
    };
    assert_eq!(a.event.as_deref(), Some("ACCOUNT_VIOLATION"));
}

#[test]
fn unknowns_keep_what_meta_sent() {
    let e = &split_file("unknown_message_type_es_mx.json")[0];
    assert_eq!(e.kind, EventKind::Unknown);
    assert!(e.item.get().contains("\"poll_vote\""));
    assert!(
        e.key.starts_with("m:wamid."),
        "unknown types still dedupe on the message id"
    );
    assert!(e.contact.is_some());

    let e = &split_file("unknown_field.json")[0];
    assert_eq!(e.field, "business_capability_update");
    assert!(e.item.get().contains("max_phone_numbers_per_waba"));

    let e = &split_file("change_level_errors.json")[0];
    assert!(e.item.get().contains("131000"));
    // The queue body says "unknown".
    let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
    assert_eq!(json["kind"], "unknown");
}
