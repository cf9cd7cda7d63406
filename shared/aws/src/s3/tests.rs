//! Unit tests of the signed S3 client: error bodies, escaping, presigned URLs (the SDK's own).
use super::*;

#[test]
fn error_bodies_name_their_code() {
    let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>x</Message></Error>";
    assert_eq!(error_code(body), "NoSuchKey");
    assert_eq!(error_code(b"upstream gone"), "upstream gone");
    assert!(refused("GetObject", "k", 403, b"<Code>AccessDenied</Code>").is_retryable());
    assert!(refused("GetObject", "k", 404, b"<Code>NoSuchBucket</Code>").is_retryable());
    assert!(!refused("PutObject", "k", 400, b"<Code>BadDigest</Code>").is_retryable());
}

#[test]
fn query_values_are_escaped_as_s3_reads_them() {
    assert_eq!(query_escape("image/jpeg"), "image%2Fjpeg");
    assert_eq!(
        query_escape("application/vnd.ms-excel+x y"),
        "application%2Fvnd.ms-excel%2Bx%20y"
    );
}

#[tokio::test]
async fn a_presigned_url_names_the_key_its_overrides_and_its_lifetime() {
    let sdk = crate::sdk::sdk_config_for_endpoint("http://127.0.0.1:5000", "sa-east-1");
    let url = S3Blobs::new(&sdk, "b")
        .presign_get(
            "media/ab",
            &[("response-content-type", "image/jpeg")],
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    assert!(
        url.starts_with("http://127.0.0.1:5000/b/media/ab?response-content-type=image%2Fjpeg&"),
        "{url}"
    );
    for part in [
        "X-Amz-Algorithm=AWS4-HMAC-SHA256",
        "X-Amz-Expires=300",
        "X-Amz-SignedHeaders=host",
        "X-Amz-Signature=",
        "%2Fsa-east-1%2Fs3%2Faws4_request",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
}

/// The same GET presigned by aws-sdk-s3 (which the media function links) at the same time
/// with the same credentials is the same URL, signature included: with an emulator's
/// endpoint and on AWS's virtual hosts, and with a Lambda role's session token.
#[cfg(feature = "media")]
#[tokio::test]
async fn presigned_urls_are_the_sdks_own() {
    use aws_credential_types::provider::SharedCredentialsProvider;
    use aws_credential_types::Credentials;
    use aws_sdk_s3::presigning::PresigningConfig;

    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let ttl = Duration::from_secs(300);
    let key = format!("media/{}", "ab".repeat(32));
    let session = Credentials::new("AKIDEXAMPLE", "secret", Some("token/+=".into()), None, "t");
    let configs = [
        crate::sdk::sdk_config_for_endpoint("http://127.0.0.1:5000", "us-east-1"),
        SdkConfig::builder()
            .region(aws_types::region::Region::new("sa-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(session))
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build(),
    ];
    for sdk in configs {
        let ours = S3Blobs::new(&sdk, "wabridge-media")
            .presign_at(
                Method::GET,
                &key,
                &[
                    ("x-id", "GetObject"),
                    ("response-content-type", "image/jpeg"),
                ],
                &[],
                ttl,
                at,
            )
            .await
            .unwrap();
        let client = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(sdk.endpoint_url().is_some())
                .build(),
        );
        let theirs = client
            .get_object()
            .bucket("wabridge-media")
            .key(&key)
            .response_content_type("image/jpeg")
            .presigned(
                PresigningConfig::builder()
                    .start_time(at)
                    .expires_in(ttl)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(ours, theirs.uri());
    }
}

#[test]
fn addressing_follows_the_endpoint() {
    let sdk = crate::sdk::sdk_config_for_endpoint("http://127.0.0.1:5000/", "sa-east-1");
    assert_eq!(S3Blobs::new(&sdk, "b").base, "http://127.0.0.1:5000/b");
    let aws = SdkConfig::builder()
        .region(aws_types::region::Region::new("sa-east-1"))
        .build();
    assert_eq!(
        S3Blobs::new(&aws, "wabridge-claim").base,
        "https://wabridge-claim.s3.sa-east-1.amazonaws.com"
    );
    assert_eq!(
        S3Blobs::new(&aws, "with.dots").base,
        "https://s3.sa-east-1.amazonaws.com/with.dots"
    );
}
