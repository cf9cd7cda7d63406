use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::sends::template_sync::RemoteTemplate;
use crate::template_files::meta;
use crate::templates::TemplateStatus;

const NOW: i64 = 1_780_000_000_000;

fn file(text: &str) -> TemplateFile {
    TemplateFile::parse("t.toml", text.as_bytes()).unwrap()
}

/// What Meta would list for a file's language, as if created from it.
fn remote_of(t: &TemplateFile, language: &str, id: &str, status: &str) -> RemoteTemplate {
    let body = meta::create_body(t, language, None);
    RemoteTemplate {
        id: Some(id.into()),
        name: t.name.clone(),
        language: language.into(),
        status: Some(TemplateStatus::new(status)),
        category: Some(t.category.clone()),
        parameter_format: t.is_named().then(|| "NAMED".into()),
        body_parameters: 0,
        reason: None,
        quality: None,
        components: body["components"].as_array().unwrap().clone(),
    }
}

fn locals<'a>(files: &'a [(&'a str, TemplateFile)]) -> Vec<Local<'a>> {
    files
        .iter()
        .map(|(f, t)| Local {
            file: f,
            template: t,
            sample_sha256: BTreeMap::new(),
        })
        .collect()
}

fn simple(name: &str, category: &str, langs: &[(&str, &str)]) -> TemplateFile {
    let mut text = format!("name = \"{name}\"\ncategory = \"{category}\"\n");
    for (lang, body) in langs {
        text.push_str(&format!(
            "[languages.{lang}]\nbody.text = \"{body}\"\nbody.examples = [\"Ana\"]\nbuttons = [{{ type = \"QUICK_REPLY\", text = \"Ok\" }}]\n"
        ));
    }
    file(&text)
}

#[test]
fn files_equal_to_meta_plan_nothing() {
    let t = file(include_str!(
        "../../../../docs/templates/pedido_enviado.toml"
    ));
    let a = file(include_str!(
        "../../../../docs/templates/codigo_acceso.toml"
    ));
    let remote: Vec<RemoteTemplate> = ["es_MX", "es_AR", "pt_BR"]
        .iter()
        .map(|l| remote_of(&t, l, &format!("1{l}"), "APPROVED"))
        .chain(["es_MX", "pt_BR"].iter().map(|l| {
            let mut r = remote_of(&a, l, &format!("2{l}"), "APPROVED");
            // Meta writes an authentication template's texts itself.
            r.components = vec![
                json!({"type": "BODY", "text": "*{{1}}* es tu código de verificación. Por tu seguridad, no lo compartas.", "add_security_recommendation": true}),
                json!({"type": "FOOTER", "text": "Este código caduca en 10 minutos.", "code_expiration_minutes": 10}),
                json!({"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE", "text": "Copy code"}]}),
            ];
            r
        }))
        .collect();
    let files = [("pedido_enviado.toml", t), ("codigo_acceso.toml", a)];
    let plan = plan(&locals(&files), &remote, &[], NOW);
    assert!(plan.is_clean(), "{}", plan.render());
    assert!(plan.render().starts_with("No changes."));
}

#[test]
fn every_kind_of_difference_prints_once() {
    let edited = simple(
        "edited",
        "UTILITY",
        &[("es_MX", "Hola {{1}}, tu pedido llegó.")],
    );
    let meta_edited = simple(
        "edited",
        "UTILITY",
        &[("es_MX", "Hola {{1}}, tu pedido ya llegó.")],
    );
    let rejected = simple("rejected", "UTILITY", &[("es_MX", "Hola {{1}}, gracias.")]);
    let rejected_fixed = simple(
        "rejected_fixed",
        "UTILITY",
        &[("es_MX", "Hola {{1}}, listo.")],
    );
    let paused = simple(
        "paused",
        "MARKETING",
        &[("es_MX", "Hola {{1}}, mira esto.")],
    );
    let recategorised = simple("recat", "UTILITY", &[("es_MX", "Hola {{1}}, tu cita.")]);
    let added = simple(
        "added",
        "UTILITY",
        &[
            ("es_MX", "Hola {{1}}, hecho."),
            ("pt_BR", "Olá {{1}}, feito."),
        ],
    );
    let created = simple("created", "UTILITY", &[("es_AR", "Hola {{1}}, creado.")]);
    let pending = simple("pending", "UTILITY", &[("es_MX", "Hola {{1}}, espera.")]);
    let gone = simple("gone", "MARKETING", &[("es_MX", "Hola {{1}}, adiós.")]);

    let mut remote = vec![
        remote_of(&meta_edited, "es_MX", "11", "APPROVED"),
        RemoteTemplate {
            reason: Some("INVALID_FORMAT".into()),
            quality: Some("RED".into()),
            ..remote_of(&rejected, "es_MX", "12", "REJECTED")
        },
        RemoteTemplate {
            reason: Some("INVALID_FORMAT".into()),
            ..remote_of(
                &simple("rejected_fixed", "UTILITY", &[("es_MX", "{{1}} listo")]),
                "es_MX",
                "13",
                "REJECTED",
            )
        },
        remote_of(&paused, "es_MX", "14", "PAUSED"),
        RemoteTemplate {
            category: Some("MARKETING".into()),
            ..remote_of(&recategorised, "es_MX", "15", "APPROVED")
        },
        remote_of(&added, "es_MX", "16", "APPROVED"),
        remote_of(&pending, "es_MX", "17", "PENDING"),
        remote_of(&gone, "es_MX", "18", "APPROVED"),
    ];
    // Already being deleted: not a change.
    remote.push(remote_of(
        &simple("leaving", "UTILITY", &[("es_MX", "x {{1}} y")]),
        "es_MX",
        "19",
        "PENDING_DELETION",
    ));
    let files = [
        ("edited.toml", edited),
        ("rejected.toml", rejected),
        ("rejected_fixed.toml", rejected_fixed),
        ("paused.toml", paused),
        ("recat.toml", recategorised),
        ("added.toml", added),
        ("created.toml", created),
        ("pending.toml", pending),
    ];
    let plan = plan(&locals(&files), &remote, &[], NOW);
    let rendered = plan.render();
    let lines: Vec<&str> = rendered.lines().collect();
    let expected = [
        "  + added [pt_BR]",
        "  + created [es_AR]",
        "  ~ edited [es_MX]  id 11  APPROVED",
        "  - gone [es_MX]  id 18  APPROVED",
        "  ~ rejected_fixed [es_MX]  id 13  REJECTED",
        "  ! paused [es_MX]  id 14  PAUSED: paused by Meta for low quality; edit the file to fix it",
        "  ! pending [es_MX]  id 17  PENDING: awaiting Meta's review",
        "  ! recat [es_MX]  id 15  APPROVED: the file says UTILITY, Meta says MARKETING; an approved template's category is fixed: set category = \"MARKETING\" in the file, or appeal in Meta's console",
        "  ! rejected [es_MX]  id 12  REJECTED  quality RED: rejected by Meta (INVALID_FORMAT); edit the file to fix it",
        "  ! rejected_fixed [es_MX]  id 13  REJECTED: rejected by Meta (INVALID_FORMAT); apply submits the edited file",
    ];
    for e in expected {
        assert_eq!(
            lines.iter().filter(|l| **l == e).count(),
            1,
            "{e}\n{rendered}"
        );
    }
    // Each edit lists its field under it.
    for edit in ["  ~ edited [es_MX]", "  ~ rejected_fixed [es_MX]"] {
        let at = lines.iter().position(|l| l.starts_with(edit)).unwrap();
        assert_eq!(lines[at + 1], "      ~ body.text", "{rendered}");
    }
    assert!(
        rendered.ends_with("Plan: 2 to create, 2 to edit, 1 to delete; 5 need attention.\n"),
        "{rendered}"
    );
    assert!(!rendered.contains("leaving"), "{rendered}");
    assert_eq!(plan.changes.len(), 5);
    assert!(!plan.is_clean());
}

#[test]
fn edits_meta_would_refuse_are_reported_not_planned() {
    let t = simple("aviso", "UTILITY", &[("es_MX", "Hola {{1}}, nuevo texto.")]);
    let old = simple("aviso", "UTILITY", &[("es_MX", "Hola {{1}}, texto.")]);
    let remote = [remote_of(&old, "es_MX", "77", "APPROVED")];
    let files = [("aviso.toml", t)];
    let edit = |ago_ms: i64| AppliedChange {
        name: "aviso".into(),
        language: "es_MX".into(),
        action: "edit".into(),
        template_id: Some("77".into()),
        content_hash: "h".into(),
        applied_by: "cli".into(),
        applied_at_ms: NOW - ago_ms,
    };
    // Edited 3 hours ago: the next edit waits for the 24 hours to pass.
    let p = plan(&locals(&files), &remote, &[edit(3 * 3600 * 1000)], NOW);
    assert!(p.changes.is_empty(), "{}", p.render());
    assert_eq!(p.attention[0].concern, Concern::EditRefused);
    assert!(
        p.attention[0]
            .message
            .contains("body.text differs, but an approved template may be edited once in 24 hours"),
        "{}",
        p.attention[0].message
    );
    // 25 hours ago: allowed.
    let p = plan(&locals(&files), &remote, &[edit(25 * 3600 * 1000)], NOW);
    assert!(
        matches!(p.changes[0].action, Action::Edit { .. }),
        "{}",
        p.render()
    );
    // Ten edits in 30 days: refused until the oldest is 30 days old.
    let ten: Vec<AppliedChange> = (2..12).map(|d| edit(d * DAY_MS)).collect();
    let p = plan(&locals(&files), &remote, &ten, NOW);
    assert!(
        p.attention[0].message.contains("10 times in 30 days"),
        "{}",
        p.render()
    );
    // A template in review cannot be edited at all; a category change of an approved one is
    // never attempted.
    let p = plan(
        &locals(&files),
        &[remote_of(&old, "es_MX", "77", "IN_APPEAL")],
        &[],
        NOW,
    );
    assert!(p.changes.is_empty());
    assert!(
        p.render().contains(
            "Meta edits only APPROVED, REJECTED or PAUSED templates, and this one is IN_APPEAL"
        ),
        "{}",
        p.render()
    );
    // A rejected one is edited whatever the history.
    let p = plan(
        &locals(&files),
        &[remote_of(&old, "es_MX", "77", "REJECTED")],
        &[edit(3600 * 1000)],
        NOW,
    );
    assert!(
        matches!(p.changes[0].action, Action::Edit { .. }),
        "{}",
        p.render()
    );
}

#[test]
fn a_changed_media_sample_shows_through_the_last_hash() {
    let t = file(include_str!(
        "../../../../docs/templates/oferta_fin_de_ano.toml"
    ));
    let mut remote = remote_of(&t, "es_MX", "5", "APPROVED");
    // Meta lists the sample as a CDN address, never the upload handle.
    remote.components[0]["example"] =
        json!({"header_handle": ["https://scontent.whatsapp.net/x.png"]});
    let files = [("oferta_fin_de_ano.toml", t.clone())];
    let mut local = locals(&files);
    local[0].sample_sha256.insert("es_MX".into(), "aa".into());
    let applied = AppliedChange {
        name: t.name.clone(),
        language: "es_MX".into(),
        action: "create".into(),
        template_id: Some("5".into()),
        content_hash: meta::content_hash(&t, "es_MX", Some("aa")),
        applied_by: "cli".into(),
        applied_at_ms: NOW - 2 * DAY_MS,
    };
    assert!(plan(
        &local,
        std::slice::from_ref(&remote),
        std::slice::from_ref(&applied),
        NOW
    )
    .is_clean());
    local[0].sample_sha256.insert("es_MX".into(), "bb".into());
    let p = plan(&local, &[remote], &[applied], NOW);
    assert_eq!(
        p.changes[0].action,
        Action::Edit {
            fields: vec!["header.sample".into()]
        }
    );
}

#[test]
fn projection_reads_metas_named_examples() {
    let t = file(include_str!(
        "../../../../docs/templates/pedido_enviado.toml"
    ));
    let body = meta::create_body(&t, "pt_BR", None);
    assert_eq!(body["parameter_format"], "NAMED");
    let comps = body["components"].as_array().unwrap();
    let header: &Value = &comps[0];
    assert_eq!(
        header["example"]["header_text_named_params"][0]["param_name"],
        "order_id"
    );
    assert_eq!(
        comps[1]["example"]["body_text_named_params"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        comps[3]["buttons"][0]["example"],
        json!(["https://tienda.example/rastreio/BR-88410"])
    );
    let p = meta::project(comps, false);
    assert_eq!(p["body.examples"]["first_name"], "João");
    assert_eq!(
        p["buttons[0].example"],
        "https://tienda.example/rastreio/BR-88410"
    );
}
