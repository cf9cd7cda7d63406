//! Meta's spec through Prism: every template-management request wabridge makes (list, create,
//! edit, delete) is one Meta's OpenAPI description accepts; Prism answers an error to one that
//! is not, which the client reports as a terminal error. The Resumable Upload API is not in
//! Meta's spec, so its two requests are checked by the fake of `meta.rs` against Meta's
//! reference.
//!
//! Prism routes by path template alone, and Meta's spec has fifteen one-segment paths
//! (`/{Version}/{Phone-Number-ID}`, `/{Version}/{Business-ID}`, …): `POST /v23.0/<id>` would be
//! checked against whichever comes first. The spec Prism serves here keeps only
//! `/{Version}/{TEMPLATE_ID}` among them, so the edit is checked against the edit operation.

use wabridge_core::template_files::apply::TemplateAdmin;
use wabridge_core::template_files::meta::{create_body, edit_body};
use wabridge_tests::prism::{spec_path, Prism};

use super::*;

/// Meta's spec without the one-segment paths other than the template's.
fn template_spec(dir: &Path) -> Option<PathBuf> {
    let Some(spec) = spec_path() else {
        if wabridge_tests::prism::services_required() {
            panic!("Meta's OpenAPI spec is missing");
        }
        return None;
    };
    let mut doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(spec).unwrap()).unwrap();
    let paths = doc
        .get_mut("paths")
        .and_then(|p| p.as_mapping_mut())
        .unwrap();
    let one_segment = |k: &str| {
        k.strip_prefix("/{Version}/{")
            .is_some_and(|rest| rest.ends_with('}') && !rest.contains('/'))
    };
    let before = paths.len();
    paths.retain(|k, _| {
        let k = k.as_str().unwrap_or("");
        !one_segment(k) || k == "/{Version}/{TEMPLATE_ID}"
    });
    assert!(before - paths.len() >= 10, "Meta's spec changed its paths");
    assert!(paths.contains_key("/{Version}/{TEMPLATE_ID}"));
    let out = dir.join("spec-templates.yaml");
    std::fs::write(&out, serde_yaml_ng::to_string(&doc).unwrap()).unwrap();
    Some(out)
}

#[tokio::test]
async fn every_template_management_request_matches_metas_spec() {
    let spec_dir = tempfile::tempdir().unwrap();
    let Some(spec) = template_spec(spec_dir.path()) else {
        return;
    };
    let Some(prism) = Prism::start_with_spec(&spec) else {
        return;
    };
    let admin = admin(prism.url());
    let dir = example_folder();
    let files = Files::read(dir.path());

    let listed = admin
        .list()
        .await
        .unwrap_or_else(|e| panic!("Prism refused the list request: {e:?}"));
    assert!(!listed.is_empty(), "Meta's example lists templates");

    for (_, t, _) in &files.files {
        for language in t.languages.keys() {
            // The media header's handle as the upload API gives it.
            let handle = t.languages[language]
                .header
                .as_ref()
                .and_then(|h| h.sample.as_ref())
                .map(|_| "4::aW1hZ2UvcG5n:ARaW5uZXIgc2FtcGxl:e:1700000000:256281040558:100089:ARb");
            let body = create_body(t, language, handle);
            let created = admin.create(&body).await.unwrap_or_else(|e| {
                panic!(
                    "Prism refused creating {} [{language}]: {e:?}\n{body:#}",
                    t.name
                )
            });
            assert!(!created.id.is_empty());
            let edit = edit_body(t, language, handle, false);
            admin
                .edit("1689556908129832", &edit)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "Prism refused editing {} [{language}]: {e:?}\n{edit:#}",
                        t.name
                    )
                });
        }
    }
    admin
        .delete("pedido_enviado", "1689556908129832")
        .await
        .unwrap_or_else(|e| panic!("Prism refused the delete: {e:?}"));
}
