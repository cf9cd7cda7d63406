//! Secrets Manager through the real AWS SDK against moto's server.

use wabridge_aws::secrets::{SecretSource, Secrets};
use wabridge_core::config;
use wabridge_core::error::StoreError;
use wabridge_tests::{require_aws, unique_name};

#[tokio::test]
async fn the_json_secret_is_read_by_arn_into_config_names() {
    let aws = require_aws!();
    let name = unique_name("wabridge-secrets");
    let arn = aws
        .secrets
        .create_secret()
        .name(&name)
        .secret_string(
            serde_json::json!({
                config::WHATSAPP_APP_SECRET: "app-secret-0123456789abcdef",
                config::WHATSAPP_VERIFY_TOKEN: "verify-me",
                config::WABRIDGE_API_KEY: "",
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .arn
        .expect("secret arn");

    let secrets = Secrets::from_secrets_manager(&aws.secrets, &arn)
        .await
        .unwrap();
    assert_eq!(
        secrets.get(config::WHATSAPP_APP_SECRET),
        Some("app-secret-0123456789abcdef")
    );
    assert_eq!(
        secrets.get(config::WHATSAPP_VERIFY_TOKEN),
        Some("verify-me")
    );
    assert_eq!(secrets.get(config::WABRIDGE_API_KEY), None);
    assert_eq!(
        secrets.get(config::HUBSPOT_TOKEN),
        None,
        "never from the environment"
    );
    assert_eq!(secrets.source(), &SecretSource::SecretsManager(arn.clone()));
    assert!(!format!("{secrets:?}").contains("verify-me"));

    // Rotation: a new version is what the next cold start reads.
    aws.secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(
            serde_json::json!({config::WHATSAPP_APP_SECRET: "rotated", config::WHATSAPP_VERIFY_TOKEN: "v2"})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let rotated = Secrets::from_secrets_manager(&aws.secrets, &name)
        .await
        .unwrap();
    assert_eq!(rotated.get(config::WHATSAPP_APP_SECRET), Some("rotated"));
}

#[tokio::test]
async fn a_missing_or_malformed_secret_is_an_error_not_an_empty_set() {
    let aws = require_aws!();
    let err = Secrets::from_secrets_manager(&aws.secrets, "no-such-secret")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");

    let name = unique_name("wabridge-bad-secret");
    aws.secrets
        .create_secret()
        .name(&name)
        .secret_string("not json: hunter2")
        .send()
        .await
        .unwrap();
    let err = Secrets::from_secrets_manager(&aws.secrets, &name)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    assert!(
        !err.to_string().contains("hunter2"),
        "values never quoted in errors"
    );
}
