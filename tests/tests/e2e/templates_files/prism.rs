//! Meta's spec through Prism: every template-management request wabridge makes (list, create,
//! edit, delete) is one Meta's OpenAPI description accepts; Prism answers an error to one that
//! is not, which the client reports as a terminal error. The Resumable Upload API is not in
//! Meta's spec, so its two requests are checked by the fake of `meta.rs` against Meta's
//! reference.
//!
//! Prism routes by path template alone, and Meta's spec has fifteen one-segment paths
//! (`/{Version}/{Phone-Number-ID}`, `/{Version}/{Business-ID}`, …): `POST /v23.0/<id>` would be
//! checked against whichever comes first. The spec Prism serves here keeps only
//! `/{Version}/{TEMPLATE_ID}` among them (`prism::spec_keeping`), so the edit is checked
//! against the edit operation.

use wabridge_core::template_files::apply::TemplateAdmin;
use wabridge_core::template_files::meta::{create_body, edit_body};
use wabridge_tests::prism::{spec_keeping, Prism};

use super::*;

#[tokio::test]
async fn every_template_management_request_matches_metas_spec() {
    let spec_dir = tempfile::tempdir().unwrap();
    let Some(spec) = spec_keeping(spec_dir.path(), "/{Version}/{TEMPLATE_ID}") else {
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
