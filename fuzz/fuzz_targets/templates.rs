//! Template files: any bytes parse or name their problem (never a panic); what parses validates
//! without panicking; and a file without errors, held by Meta exactly as `apply` would send it,
//! plans no change (the create body and the comparison agree on every field).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wabridge_core::sends::template_sync::RemoteTemplate;
use wabridge_core::template_files::plan::{plan, Local};
use wabridge_core::template_files::validate::{validate, Severity};
use wabridge_core::template_files::{meta, TemplateFile};
use wabridge_core::templates::TemplateStatus;

fuzz_target!(|data: &[u8]| {
    let t = match TemplateFile::parse("f.toml", data) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.to_string().starts_with("f.toml: "), "{e}");
            return;
        }
    };
    let findings = validate("f.toml", None, &t);
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return;
    }
    let remote: Vec<RemoteTemplate> = t
        .languages
        .keys()
        .enumerate()
        .map(|(i, language)| {
            let body = meta::create_body(&t, language, None);
            RemoteTemplate {
                id: Some(i.to_string()),
                name: t.name.clone(),
                language: language.clone(),
                status: Some(TemplateStatus::new("APPROVED")),
                category: Some(t.category.clone()),
                parameter_format: body["parameter_format"].as_str().map(str::to_string),
                body_parameters: 0,
                reason: None,
                quality: None,
                components: body["components"].as_array().cloned().unwrap_or_default(),
            }
        })
        .collect();
    let local = [Local {
        file: "f.toml",
        template: &t,
        sample_sha256: Default::default(),
    }];
    let p = plan(&local, &remote, &[], 0);
    assert!(p.is_clean(), "{}", p.render());
});
