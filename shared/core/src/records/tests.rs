//! Every record kind serialises with its `kind` and round-trips, and the documented schema
//! lists every field the records emit.

use super::*;

pub(crate) fn samples() -> Vec<Record> {
    vec![
        Record::Contact(ContactRecord {
            v: Version(1),
            id: "c1".into(),
            phone_e164: Some("+525512345678".into()),
            phone_verified: Some(true),
            wa_id: Some("5215512345678".into()),
            bsuid: Some("MX.123".into()),
            username: Some("ana".into()),
            name: Some("Ana López".into()),
            referral: Some(Referral {
                ctwa_clid: Some("clid".into()),
                ..Default::default()
            }),
            call_permission: None,
            updated_at: 1,
        }),
        Record::Activity(ActivityRecord {
            v: Version(1),
            event_id: "wamid.1".into(),
            contact_id: "c1".into(),
            kind: "image".into(),
            direction: Some(Direction::Inbound),
            message_id: Some("wamid.1".into()),
            at: Some(1000),
            text: Some("mira".into()),
            media: vec![MediaRef {
                id: "m1".into(),
                state: Some(crate::media::record::MediaState::Stored),
                stored: Some(crate::media::record::StoredMedia {
                    size: 3,
                    sha256: "ab".repeat(32),
                    mime_type: "image/jpeg".into(),
                    filename: Some("foto.jpg".into()),
                    link: Some("https://gw.example/media/x.jpg?t=1.a".into()),
                    link_expires_at: Some(2),
                }),
                error: Some(crate::media::record::MediaFailure {
                    code: "media_gone".into(),
                    message: "gone".into(),
                }),
                ..Default::default()
            }],
            context: Some(serde_json::json!({"id":"wamid.0"})),
            ref_code: Some("AB23CD".into()),
            ref_code_status: Some(crate::attribution::CodeStatus::Known),
            ..Default::default()
        }),
        Record::Activity(ActivityRecord {
            v: Version(1),
            event_id: "wamid.2:failed".into(),
            contact_id: "c1".into(),
            kind: "status".into(),
            direction: Some(Direction::Outbound),
            message_id: Some("wamid.2".into()),
            status: Some("failed".into()),
            errors: vec![StatusError {
                code: Some(131026),
                ..Default::default()
            }],
            callback_data: Some("snd_1".into()),
            send_id: Some("snd_1".into()),
            group_id: Some("120363012345678901".into()),
            ..Default::default()
        }),
        Record::Activity(ActivityRecord {
            v: Version(1),
            event_id: "send:snd_2:refused".into(),
            contact_id: "c1".into(),
            kind: "send_result".into(),
            direction: Some(Direction::Outbound),
            at: Some(1000),
            status: Some("refused".into()),
            errors: vec![StatusError {
                title: Some("marketing_opted_out".into()),
                message: Some("opted out".into()),
                ..Default::default()
            }],
            send_id: Some("snd_2".into()),
            ..Default::default()
        }),
        Record::Consent(ConsentRecord {
            v: Version(1),
            event_id: "send:snd_3:opted_out".into(),
            contact_id: "c1".into(),
            status: ConsentStatus::OptOut,
            category: "marketing_messages".into(),
            source: ConsentSource::MetaError,
            evidence: serde_json::json!({"send_id":"snd_3","code":131050}),
            at: Some(1000),
        }),
        Record::Consent(ConsentRecord {
            v: Version(1),
            event_id: "e".into(),
            contact_id: "c1".into(),
            status: ConsentStatus::OptOut,
            category: "all".into(),
            source: ConsentSource::Keyword,
            evidence: serde_json::json!({"keyword":"BAJA"}),
            at: None,
        }),
        Record::TemplateStatus(TemplateStatusRecord {
            event_id: "t".into(),
            ..Default::default()
        }),
        Record::TemplateStatus(TemplateStatusRecord {
            event_id: "t2".into(),
            update: Some("category".into()),
            quality: Some("RED".into()),
            previous_quality: Some("GREEN".into()),
            category: Some("MARKETING".into()),
            previous_category: Some("UTILITY".into()),
            category_from: Some(1),
            components: Some(serde_json::json!({"body": "Hola {{1}}"})),
            ..Default::default()
        }),
        Record::Quality(QualityRecord {
            event_id: "q".into(),
            ..Default::default()
        }),
        Record::Unknown(UnknownRecord {
            v: Version(1),
            event_id: "u".into(),
            field: "account_alerts".into(),
            raw: serde_json::json!({"x":1}),
            contact_id: None,
        }),
        Record::Unknown(UnknownRecord {
            v: Version(1),
            event_id: "p".into(),
            field: "user_preferences".into(),
            raw: serde_json::json!({"value":"signup"}),
            contact_id: Some("c1".into()),
        }),
        Record::Attribution(crate::attribution::AttributionRecord::new(
            "wamid.1",
            "c1",
            crate::attribution::TouchKind::First,
            &crate::attribution::Touch {
                origin: crate::attribution::TouchOrigin::Referral,
                utm: Default::default(),
                ctwa_clid: Some("clid".into()),
                ref_code: None,
                gclid: None,
                fbclid: None,
                landing_page: None,
                referral: Some(serde_json::json!({"source_type":"ad"})),
                at: 1000,
            },
        )),
        Record::Lead(crate::attribution::LeadRecord {
            v: Version(1),
            event_id: "wamid.1".into(),
            contact_id: "c1".into(),
            reason: "first_conversation".into(),
            utm_source: Some("newsletter".into()),
            utm_medium: None,
            utm_campaign: None,
            utm_content: None,
            utm_term: None,
            ctwa_clid: None,
            ref_code: Some("AB23CD".into()),
            touch_in_conversation: true,
            created_at: 1000,
            conversation_id: None,
        }),
        Record::Erasure(crate::erasure::ErasureItem::new(
            "era_1",
            &crate::erasure::Person {
                contact_id: Some("c1".into()),
                keys: vec![crate::identity::IdentityKey::Bsuid("MX.1".into())],
            },
            Some("+525512345678"),
            1,
        )),
        Record::Media(crate::media::record::MediaRecord {
            v: Version(1),
            event_id: "media:wamid.1:m1".into(),
            activity_event_id: "wamid.1".into(),
            contact_id: "c1".into(),
            message_id: Some("wamid.1".into()),
            media_id: "m1".into(),
            kind: "image".into(),
            state: crate::media::record::MediaState::Stored,
            stored: Some(crate::media::record::StoredMedia {
                size: 3,
                sha256: "ab".repeat(32),
                mime_type: "image/jpeg".into(),
                filename: None,
                link: Some("https://gw.example/media/x.jpg?t=1.a".into()),
                link_expires_at: Some(2),
            }),
            error: Some(crate::media::record::MediaFailure {
                code: "media_gone".into(),
                message: "gone".into(),
            }),
            at: 1,
        }),
        Record::Activity(ActivityRecord {
            event_id: "m:wamid.echo".into(),
            contact_id: "c1".into(),
            kind: "unsupported".into(),
            direction: Some(Direction::Outbound),
            agent: Some("whatsapp_business_app".into()),
            unsupported_type: Some("edit".into()),
            edited_at: Some(2),
            edit_id: Some("wamid.e".into()),
            deleted_at: Some(3),
            business_number: Some(Box::new(crate::numbers::BusinessNumber {
                phone_number_id: "106540352242922".into(),
                label: "ventas-mx".into(),
            })),
            ..Default::default()
        }),
        Record::MessageChange(crate::changes::MessageChangeRecord {
            event_id: "m:wamid.e".into(),
            contact_id: "c1".into(),
            message_id: "wamid.1".into(),
            change_id: Some("wamid.e".into()),
            change: Some(crate::changes::ChangeKind::Edited),
            direction: Some(Direction::Outbound),
            agent: Some("whatsapp_business_app".into()),
            at: Some(1),
            kind: Some("image".into()),
            text: Some("nueva".into()),
            media: vec![MediaRef {
                id: "m2".into(),
                ..Default::default()
            }],
            content: Some(crate::changes::RevokedContent::Clear),
            conversation_id: Some("cnv_1".into()),
            ..Default::default()
        }),
        Record::Call(crate::calls::CallRecord {
            event_id: "call:wacid.1".into(),
            contact_id: "c1".into(),
            call_id: "wacid.1".into(),
            direction: Some(Direction::Inbound),
            placed_at: Some(1),
            started_at: Some(2),
            ended_at: Some(3),
            duration_s: Some(1),
            outcome: Some(crate::calls::CallOutcome::Answered),
            ended: true,
            last_event: Some("terminate".into()),
            callback_data: Some("x".into()),
            conversation_id: Some("cnv_1".into()),
            ..Default::default()
        }),
        Record::Account(crate::account::AccountRecord::of_value(
            "a:1",
            "waba",
            Some(1),
            serde_json::json!({"event":"ACCOUNT_RESTRICTION","phone_number":"5215550001111",
                "restriction_info":[{"restriction_type":"RESTRICTED_BIZ_INITIATED_MESSAGING"}],
                "violation_info":{"violation_type":"SCAM"},"ban_info":{"waba_ban_state":"DISABLE"}}),
        )),
        Record::Conversation(crate::conversations::ConversationRecord {
            id: "cnv_1".into(),
            contact_id: "c1".into(),
            number: "106540352242922".into(),
            display_number: Some("525550001111".into()),
            opened_at: 1,
            opened_by: Some(crate::conversations::Party::Customer),
            origin: Some(crate::conversations::Origin::CtwaAd),
            first_inbound_at: Some(1),
            first_response_at: Some(2),
            first_response_ms: Some(1),
            last_inbound_at: Some(1),
            last_outbound_at: Some(2),
            inbound_count: 1,
            outbound_count: 1,
            agent: Some("ana".into()),
            closed_at: Some(3),
            close_reason: Some(crate::conversations::CloseReason::Idle),
            meta_conversation_ids: vec!["c0ffee".into()],
            pricing_categories: vec!["service".into()],
            pricing_types: vec!["regular".into()],
            revision: 3,
            tags: vec!["ventas".into()],
            sla_breached_at: Some(2),
            ..Default::default()
        }),
        Record::SlaBreach(crate::conversations::sla::SlaBreachRecord {
            conversation_id: "cnv_1".into(),
            contact_id: "c1".into(),
            number: "106540352242922".into(),
            first_inbound_at: 1,
            due_at: 900_001,
            breached_at: 900_002,
            agent: Some("ana".into()),
            ..Default::default()
        }),
        Record::Contact(ContactRecord {
            id: "c2".into(),
            call_permission: Some(crate::calls::CallPermission {
                response: "accept".into(),
                permanent: Some(false),
                expires_at: Some(1),
                at: Some(1),
            }),
            ..Default::default()
        }),
    ]
}

#[test]
fn records_serialise_with_kind_and_round_trip() {
    for record in samples() {
        let json = record.to_value();
        assert_eq!(json["kind"], record.kind());
        assert_eq!(json["v"], RECORDS_VERSION);
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
    let activity = samples()[1].to_value();
    assert_eq!(activity["type"], "image");
    assert_eq!(activity["event_id"], "wamid.1");
    assert_eq!(activity["contact_id"], "c1");
    let contact = samples()[0].to_value();
    for field in ["id", "phone_e164", "wa_id", "bsuid", "name"] {
        assert!(contact.get(field).is_some(), "{field}");
    }
}

/// The documented schema lists every field the records emit, with the same required set.
#[test]
fn documented_schema_matches_the_records() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/records-schema.json"
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(schema["properties"]["v"]["const"], RECORDS_VERSION);
    for record in samples() {
        let def = &schema["$defs"][record.kind()];
        assert!(def.is_object(), "schema lacks {}", record.kind());
        let props = def["properties"].as_object().unwrap();
        let json = record.to_value();
        for key in json.as_object().unwrap().keys() {
            assert!(
                props.contains_key(key),
                "{}.{key} undocumented",
                record.kind()
            );
        }
        for req in def["required"].as_array().unwrap() {
            assert!(
                json.get(req.as_str().unwrap()).is_some(),
                "{}.{req} missing",
                record.kind()
            );
        }
    }
}
