//! The streamed upload `POST /media` runs: stored under its content address with what the
//! upload said of it, or refused with nothing left behind.

use wabridge_core::media::upload::UploadError;
use wabridge_core::media::{MediaKind, MediaRefusal, Sha256Digest};

use super::*;

/// Every file under the media folder (committed and pending).
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for sub in ["media", "media/.pending"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for e in entries.flatten() {
                if e.file_type().unwrap().is_file() {
                    out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn an_upload_is_stored_by_its_content_with_its_details() {
    let s = setup().await;
    let pdf = pdf();
    let info = upload(
        &s.library,
        "Application/PDF; name=x",
        Some("factura-1042.pdf"),
        &pdf,
    )
    .await;
    assert_eq!(info.sha256, Sha256Digest::of(&pdf));
    assert_eq!(info.size, pdf.len() as u64);
    assert_eq!(info.mime_type, "application/pdf");
    assert_eq!(info.kind(), MediaKind::Document);
    let stored = std::fs::read(s.dir.path().join("media").join(info.sha256.hex())).unwrap();
    assert!(stored == pdf);
    let found = s.library.locate(&info.sha256).await.unwrap().unwrap();
    assert_eq!(found.mime_type.as_deref(), Some("application/pdf"));
    assert_eq!(found.filename.as_deref(), Some("factura-1042.pdf"));
    // The same bytes again: one file.
    upload(&s.library, "application/pdf", None, &pdf).await;
    assert_eq!(
        files(s.dir.path()),
        [format!("media/{}", info.sha256.hex())]
    );
}

#[tokio::test]
async fn refused_and_broken_uploads_leave_nothing() {
    let s = setup().await;
    let limit = MediaKind::Image.max_bytes(false);

    // Declared over the limit: refused before a byte is written.
    let e = s
        .library
        .begin(Some("image/jpeg"), None, Some(limit + 1))
        .await
        .unwrap_err();
    assert!(
        matches!(e, UploadError::Refused(MediaRefusal::TooLarge { .. })),
        "{e:?}"
    );
    assert_eq!(e.code(), "media_too_large");

    // Not declared (chunked): refused at the first byte past the limit.
    let mut u = s
        .library
        .begin(Some("image/jpeg"), None, None)
        .await
        .unwrap();
    let chunk = vec![0xffu8; 256 * 1024];
    let mut refused = None;
    for _ in 0..40 {
        if let Err(e) = u.write(&chunk).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("refused past 5 MB");
    assert_eq!(e.code(), "media_too_large");
    assert!(e.to_string().contains(&limit.to_string()), "{e}");
    drop(u);

    // Outside Meta's list, or without a type: refused before anything is written.
    for (mime, code) in [
        (Some("image/gif"), "media_type_not_allowed"),
        (Some("application/zip"), "media_type_not_allowed"),
        (Some("image/webp"), "media_type_not_allowed"),
        (None, "missing_content_type"),
    ] {
        let e = s.library.begin(mime, None, Some(10)).await.unwrap_err();
        assert_eq!(e.code(), code, "{mime:?}");
    }
    let e = s
        .library
        .begin(Some("application/pdf"), Some("../../etc/passwd"), None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_filename");

    // Empty, aborted, or dropped half-way (a cancelled request): nothing stays.
    let u = s
        .library
        .begin(Some("application/pdf"), None, None)
        .await
        .unwrap();
    assert_eq!(u.finish().await.unwrap_err().code(), "media_empty");
    let mut u = s
        .library
        .begin(Some("application/pdf"), None, None)
        .await
        .unwrap();
    u.write(b"%PDF-1.4 half").await.unwrap();
    u.abort().await;
    let mut u = s
        .library
        .begin(Some("application/pdf"), None, None)
        .await
        .unwrap();
    u.write(b"%PDF-1.4 other half").await.unwrap();
    drop(u);
    // The drop removes its file in the background.
    wabridge_tests::eventually(
        "the dropped upload's file to go",
        Duration::from_secs(5),
        || async { files(s.dir.path()).is_empty().then_some(()) },
    )
    .await;
}
