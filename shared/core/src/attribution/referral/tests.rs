//! Referral → UTM: default mapping by host and source type, rules, odd inputs.

use super::*;
use serde_json::json;

fn meta_example() -> Referral {
    // The referral of the official "Text Message from Click to WhatsApp Ad" example.
    parse(json!({
        "source_url": "https://fb.me/3cr4Wqqkv",
        "source_id": "120226305854810726",
        "source_type": "ad",
        "body": "Summer Succulents are here!",
        "headline": "Chat with us",
        "media_type": "image",
        "image_url": "https://scontent.xx.fbcdn.net/v/t45.1...",
        "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e",
        "welcome_message": {"text": "Hi there! Let us know how we can help!"}
    }))
}

fn parse(raw: serde_json::Value) -> Referral {
    serde_json::from_value(raw).expect("the webhook model reads any referral object")
}

#[test]
fn facebook_ad_maps_to_paid_social_with_ad_id_and_headline() {
    let t = ReferralRules::default().touch(&meta_example(), 1_000);
    assert_eq!(t.origin, TouchOrigin::Referral);
    assert_eq!(t.utm.utm_source.as_deref(), Some("facebook"));
    assert_eq!(t.utm.utm_medium.as_deref(), Some("paid_social"));
    assert_eq!(t.utm.utm_campaign.as_deref(), Some("120226305854810726"));
    assert_eq!(t.utm.utm_content.as_deref(), Some("Chat with us"));
    assert_eq!(t.ctwa_clid.as_deref(), Some("Aff-n8ZTODiE79d22KtAwQKj9e"));
    // Raw fields are kept, including ones we do not model.
    let raw = t.referral.unwrap();
    assert_eq!(
        raw["welcome_message"]["text"],
        "Hi there! Let us know how we can help!"
    );
    assert_eq!(raw["body"], "Summer Succulents are here!");
    assert_eq!(t.at, 1_000);
}

#[test]
fn instagram_hosts_map_to_instagram() {
    let rules = ReferralRules::default();
    for url in [
        "https://www.instagram.com/p/C1a2b3/",
        "https://instagram.com/reel/xyz",
        "http://l.instagram.com/?u=x",
        "https://ig.me/abc",
        "instagram.com/p/abc",
    ] {
        let r = Referral {
            source_url: Some(url.into()),
            ..Default::default()
        };
        assert_eq!(
            rules.utm(&r).utm_source.as_deref(),
            Some("instagram"),
            "{url}"
        );
    }
}

#[test]
fn facebook_hosts_map_to_facebook() {
    let rules = ReferralRules::default();
    for url in [
        "https://fb.me/x",
        "https://m.facebook.com/ads/1",
        "https://www.facebook.com/p",
        "https://fb.watch/v",
    ] {
        let r = Referral {
            source_url: Some(url.into()),
            ..Default::default()
        };
        assert_eq!(
            rules.utm(&r).utm_source.as_deref(),
            Some("facebook"),
            "{url}"
        );
    }
}

#[test]
fn lookalike_hosts_are_not_fooled_by_suffixes() {
    let rules = ReferralRules::default();
    let r = Referral {
        source_url: Some("https://notfacebook.com/x".into()),
        ..Default::default()
    };
    assert_eq!(rules.utm(&r).utm_source.as_deref(), Some("meta"));
    let r = Referral {
        source_url: Some("https://facebook.com.evil.example/x".into()),
        ..Default::default()
    };
    assert_eq!(rules.utm(&r).utm_source.as_deref(), Some("meta"));
}

#[test]
fn unknown_or_missing_url_uses_the_default_source() {
    let rules = ReferralRules::default();
    assert_eq!(
        rules.utm(&Referral::default()).utm_source.as_deref(),
        Some("meta")
    );
    let r = Referral {
        source_url: Some("::not a url::".into()),
        ..Default::default()
    };
    assert_eq!(rules.utm(&r).utm_source.as_deref(), Some("meta"));
}

#[test]
fn post_is_organic_social_and_other_types_are_social() {
    let rules = ReferralRules::default();
    let r = Referral {
        source_type: Some("post".into()),
        ..Default::default()
    };
    assert_eq!(rules.utm(&r).utm_medium.as_deref(), Some("organic_social"));
    let r = Referral {
        source_type: Some("AD".into()),
        ..Default::default()
    };
    assert_eq!(rules.utm(&r).utm_medium.as_deref(), Some("paid_social"));
    let r = Referral {
        source_type: Some("story".into()),
        ..Default::default()
    };
    assert_eq!(rules.utm(&r).utm_medium.as_deref(), Some("social"));
    assert_eq!(
        rules.utm(&Referral::default()).utm_medium.as_deref(),
        Some("social")
    );
}

#[test]
fn missing_headline_and_id_leave_campaign_and_content_empty() {
    let u = ReferralRules::default().utm(&Referral::default());
    assert_eq!(u.utm_campaign, None);
    assert_eq!(u.utm_content, None);
}

#[test]
fn rules_from_toml_override_defaults_first_match_wins() {
    let rules: ReferralRules = toml::from_str(
        r#"
        default_source = "meta_ads"
        campaign = "ctwa_{source_id}"
        content = "{media_type}:{headline}"

        [[rules]]
        match = { source_id = "120226305854810726" }
        set = { utm_campaign = "summer_succulents" }

        [[rules]]
        match = { source_type = "ad" }
        set = { utm_campaign = "never_reached_for_that_ad", utm_term = "{body}" }

        [[rules]]
        match = { host = "instagram.com", headline_contains = "promo" }
        set = { utm_medium = "Influencer", utm_source = "IG" }
        "#,
    )
    .unwrap();
    // Defaults not named in the file are kept.
    assert_eq!(rules.ad_medium, "paid_social");
    assert_eq!(rules.hosts.len(), ReferralRules::default().hosts.len());

    let t = rules.touch(&meta_example(), 0);
    assert_eq!(t.utm.utm_campaign.as_deref(), Some("summer_succulents"));
    assert_eq!(t.utm.utm_content.as_deref(), Some("image:Chat with us"));
    assert_eq!(t.utm.utm_term, None, "only the first matching rule applies");

    let other_ad = Referral {
        source_type: Some("ad".into()),
        source_id: Some("9".into()),
        body: Some("Hot sale".into()),
        ..Default::default()
    };
    let u = rules.utm(&other_ad);
    assert_eq!(u.utm_campaign.as_deref(), Some("never_reached_for_that_ad"));
    assert_eq!(u.utm_term.as_deref(), Some("Hot sale"));
    assert_eq!(u.utm_source.as_deref(), Some("meta_ads"));

    let ig_post = Referral {
        source_type: Some("post".into()),
        source_id: Some("77".into()),
        source_url: Some("https://www.instagram.com/p/1".into()),
        headline: Some("Big PROMO today".into()),
        ..Default::default()
    };
    let u = rules.utm(&ig_post);
    assert_eq!(u.utm_source.as_deref(), Some("ig"));
    assert_eq!(u.utm_medium.as_deref(), Some("influencer"));
    assert_eq!(u.utm_campaign.as_deref(), Some("ctwa_77"));
}

#[test]
fn unknown_keys_in_rules_are_rejected() {
    let err =
        toml::from_str::<ReferralRules>("[[rules]]\nmatch = { sourceid = \"1\" }\nset = {}\n");
    assert!(err.is_err());
}

#[test]
fn odd_field_types_never_crash() {
    let raw = parse(
        json!({"source_id": 12345, "source_type": "ad", "source_url": "https://fb.me/x", "ctwa_clid": "  "}),
    );
    let t = ReferralRules::default().touch(&raw, 0);
    assert_eq!(t.utm.utm_source.as_deref(), Some("facebook"));
    // The webhook model reads a numeric id as its digits (as ingest does), so the default
    // campaign template `{source_id}` has a value.
    assert_eq!(t.utm.utm_campaign.as_deref(), Some("12345"));
    assert_eq!(t.ctwa_clid, None, "a blank click id is no click id");
    let raw = parse(
        json!({"source_type": "ad", "headline": 7, "welcome_message": "hola",
        "ad_new_member": {"x": 1}}),
    );
    assert_eq!(raw.headline.as_deref(), Some("7"));
    let t = ReferralRules::default().touch(&raw, 0);
    assert_eq!(t.utm.utm_medium.as_deref(), Some("paid_social"));
    // Stored as sent, a member Meta added since included.
    assert_eq!(t.referral.unwrap()["ad_new_member"], json!({"x": 1}));
    // A referral that is not an object is no referral; the message still reads.
    let m: crate::webhook::model::Message =
        serde_json::from_value(json!({"id": "w", "type": "text", "text": {"body": "x"},
            "referral": "referral"}))
        .unwrap();
    assert_eq!(m.referral, None);
}
