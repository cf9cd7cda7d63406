use super::links::{LinkError, LinkSigner, MIN_KEY_BYTES};
use super::*;

#[test]
fn meta_limits_per_kind() {
    use MediaKind::*;
    // Exactly at the limit passes; one byte over is refused with the limit named.
    for (kind, mime, limit) in [
        (Image, "image/jpeg", 5 * MB),
        (Audio, "audio/ogg; codecs=opus", 16 * MB),
        (Video, "video/mp4", 16 * MB),
        (Document, "application/pdf", 100 * MB),
        (Sticker, "image/webp", 100 * 1024),
    ] {
        assert_eq!(kind.check(mime, limit, false), Ok(()), "{kind} {mime}");
        let e = kind.check(mime, limit + 1, false).unwrap_err();
        assert_eq!(e.code(), "media_too_large");
        assert!(e.to_string().contains(&limit.to_string()), "{e}");
    }
    // An animated sticker may be larger.
    assert_eq!(Sticker.check("image/webp", 400 * 1024, true), Ok(()));
    assert!(Sticker.check("image/webp", 400 * 1024, false).is_err());
}

#[test]
fn types_outside_metas_list_are_refused_naming_the_allowed_ones() {
    use MediaKind::*;
    let e = Image.check("image/gif", 10, false).unwrap_err();
    assert_eq!(e.code(), "media_type_not_allowed");
    assert_eq!(
        e.to_string(),
        "image/gif is not a type WhatsApp accepts for image (allowed: image/jpeg, image/png)"
    );
    // Case and parameters do not matter; a declared Ogg codec other than Opus does.
    assert_eq!(Image.check("IMAGE/PNG", 10, false), Ok(()));
    assert_eq!(Audio.check("audio/ogg", 10, false), Ok(()));
    assert!(Audio.check("audio/ogg; codecs=vorbis", 10, false).is_err());
    assert!(Document
        .check("application/x-msdownload", 10, false)
        .is_err());
    assert!(Video.check("video/quicktime", 10, false).is_err());
    assert_eq!(
        Document.check(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            10,
            false
        ),
        Ok(())
    );
}

#[test]
fn message_types_map_to_kinds() {
    assert_eq!(
        MediaKind::from_message_type("audio"),
        Some(MediaKind::Audio)
    );
    assert_eq!(
        MediaKind::from_message_type("sticker"),
        Some(MediaKind::Sticker)
    );
    assert_eq!(MediaKind::from_message_type("text"), None);
    assert_eq!(MediaKind::from_message_type("location"), None);
}

#[test]
fn sha256_in_hex_or_base64_is_one_digest() {
    let file = b"foto del producto danado";
    let d = Sha256Digest::of(file);
    let b64 = base64::engine::general_purpose::STANDARD.encode(d.0);
    assert_eq!(Sha256Digest::parse(&d.hex()), Some(d));
    assert_eq!(Sha256Digest::parse(&b64), Some(d));
    assert_eq!(Sha256Digest::parse(&d.hex().to_uppercase()), Some(d));
    assert_eq!(d.object_key(), format!("media/{}", d.hex()));
    // Meta's samples: a real base64 digest parses; a truncated one or a placeholder does not.
    assert!(Sha256Digest::parse("ciJuSxU7RLnnFz3cNcasdL7UQKt9e1yj/3u+Rhsabv0=").is_some());
    assert_eq!(Sha256Digest::parse("4654+8g="), None);
    assert_eq!(Sha256Digest::parse("a1b2c3d4e5f6..."), None);
    assert_eq!(Sha256Digest::parse(""), None);
}

#[test]
fn links_open_their_file_until_they_expire() {
    assert!(
        LinkSigner::new(&[7; MIN_KEY_BYTES - 1]).is_none(),
        "short keys fail closed"
    );
    let signer = LinkSigner::new(&[7; MIN_KEY_BYTES]).unwrap();
    let url = signer.url("https://gw.example/", "wamid.HBgN.0", 1_000);
    let token = url.split("?t=").nth(1).unwrap();
    assert!(
        url.starts_with("https://gw.example/media/wamid.HBgN.0?t=1000."),
        "{url}"
    );
    assert_eq!(signer.verify("wamid.HBgN.0", token, 999), Ok(()));
    assert_eq!(
        signer.verify("wamid.HBgN.0", token, 1_000),
        Err(LinkError::Expired)
    );
    // Another file, another key, a changed expiry or a changed tag: refused.
    assert_eq!(
        signer.verify("wamid.OTHER", token, 999),
        Err(LinkError::BadSignature)
    );
    let other = LinkSigner::new(&[8; MIN_KEY_BYTES]).unwrap();
    assert_eq!(
        other.verify("wamid.HBgN.0", token, 999),
        Err(LinkError::BadSignature)
    );
    let (_, tag) = token.split_once('.').unwrap();
    assert_eq!(
        signer.verify("wamid.HBgN.0", &format!("9999.{tag}"), 999),
        Err(LinkError::BadSignature)
    );
    let mut flipped = token.to_string();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'A' { 'B' } else { 'A' });
    assert!(signer.verify("wamid.HBgN.0", &flipped, 999).is_err());
    for bad in ["", "1000", "x.y", "1000.!!", &"1".repeat(200)] {
        assert_eq!(
            signer.verify("wamid.HBgN.0", bad, 999),
            Err(LinkError::Malformed),
            "{bad}"
        );
    }
    // The signer never prints its key.
    assert_eq!(format!("{signer:?}"), "LinkSigner(..)");
}

#[test]
fn every_allowed_type_has_one_extension_and_back() {
    let kinds = [
        MediaKind::Image,
        MediaKind::Audio,
        MediaKind::Video,
        MediaKind::Document,
        MediaKind::Sticker,
    ];
    let mut seen = std::collections::HashSet::new();
    for kind in kinds {
        for mime in kind.allowed_mimes() {
            let ext = extension(mime);
            assert_ne!(ext, "bin", "{mime} has no extension");
            assert!(seen.insert(ext), "{ext} names two types");
            assert_eq!(mime_of_extension(ext), Some(*mime));
        }
    }
    assert_eq!(extension("audio/ogg; codecs=opus"), "ogg");
    assert_eq!(extension("application/x-msdownload"), "bin");
    assert_eq!(mime_of_extension("exe"), None);
}
