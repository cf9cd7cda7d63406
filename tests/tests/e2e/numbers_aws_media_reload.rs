//! The media function fetches the files of a number added after its cold start with that
//! number's token (issue 21), over moto and a stand-in for Meta that accepts one token: the
//! function starts with one number whose token Meta refuses; the second number's token goes into
//! the stack's secret and the number into the table; a job of the new number re-reads both and
//! its file is stored, while an instance that may not re-read yet still asks with the old token
//! (refused, the job stays on the queue).

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::json;
use sha2::Digest;
use wabridge_aws::dynamo::numbers::DynamoNumbers;
use wabridge_aws::secrets::Secrets;
use wabridge_core::clock::now_ms;
use wabridge_core::media::job::{MediaJob, MEDIA_JOB_VERSION};
use wabridge_core::media::MediaKind;
use wabridge_core::queue::Queue;
use wabridge_tests::{object_keys, receive_lambda_records, require_aws, unique_name};

use crate::media_fetch::{File, TOKEN};
use crate::media_lambda::{setup, Setup, LINK_KEY};

const MX: &str = "106540352242922";
const CO: &str = "206540352242922";

fn entry(label: &str, id: &str, display: &str, key: &str) -> String {
    format!(
        "[[number]]\nlabel = \"{label}\"\nphone_number_id = \"{id}\"\nwaba_id = \"102290129340398\"\n\
         display_number = \"{display}\"\ntoken_key = \"WHATSAPP_ACCESS_TOKEN_{key}\"\n\
         crm = {{ kind = \"webhook\", settings = {{ CRM_WEBHOOK_URL = \"https://crm.example/{key}\" }} }}\n"
    )
}

fn job(media_id: &str, activity: &str, number: &str) -> MediaJob {
    MediaJob {
        v: MEDIA_JOB_VERSION,
        activity_event_id: format!("msg:wamid.{activity}"),
        message_id: Some(format!("wamid.{activity}")),
        contact: "phone:573001234567".into(),
        phone: None,
        phone_number_id: Some(number.to_string()),
        media_id: media_id.to_string(),
        kind: MediaKind::Image,
        mime_type: Some("image/jpeg".to_string()),
        sha256: None,
        filename: None,
        animated: false,
        url: None,
        received_at: now_ms(),
    }
}

/// The media function as its cold start builds it over the table's registry and the secret.
async fn app(s: &Setup, secret: &str, every: Duration) -> media::App {
    let read = {
        let (client, name) = (s.aws.secrets.clone(), secret.to_string());
        move || {
            let (client, name) = (client.clone(), name.clone());
            Box::pin(async move {
                Secrets::from_secrets_manager(&client, &name)
                    .await
                    .map_err(|e| e.to_string())
            })
                as std::pin::Pin<
                    Box<dyn std::future::Future<Output = Result<Secrets, String>> + Send>,
                >
        }
    };
    let registry = DynamoNumbers::new(s.aws.dynamo.clone(), &s.table);
    let numbers = registry.load().await.unwrap();
    let tokens = media::reload::tokens(numbers.as_ref(), &read().await.unwrap()).unwrap();
    // As the cold start: the first number's token is the default.
    let default = tokens[0].1.clone();
    let settings = media::Settings::from_lookup(|name| {
        Some(match name {
            "WABRIDGE_TABLE" => s.table.clone(),
            "MEDIA_QUEUE_URL" => s.media.url.clone(),
            "MEDIA_DLQ_URL" => s.media.dlq_url.clone(),
            "EVENTS_QUEUE_URL" => s.events.url.clone(),
            "MEDIA_BUCKET" => s.bucket.clone(),
            "WHATSAPP_API_URL" => s.meta_url.clone(),
            "WHATSAPP_ACCESS_TOKEN" => default.clone(),
            "WABRIDGE_MEDIA_LINK_KEY" => LINK_KEY.to_string(),
            _ => return None,
        })
    })
    .unwrap();
    let registry = media::reload::Registry {
        table: registry,
        read_secret: std::sync::Arc::new(read),
        sdk: s.aws.config.clone(),
        settings,
    };
    media::build_reloading(registry, tokens, every)
}

async fn run(s: &Setup, app: &media::App, job: &MediaJob) -> usize {
    let producer = s.aws.engine(&s.table).producer(&s.media.url);
    producer.send_batch(&[job.to_message()]).await.unwrap();
    let mut event = SqsEvent::default();
    while event.records.is_empty() {
        event.records = receive_lambda_records(&s.aws.sqs, &s.media.url).await;
    }
    media::handle(app, event, None)
        .await
        .batch_item_failures
        .len()
}

#[tokio::test]
async fn the_media_function_fetches_a_new_numbers_files_with_its_token_after_a_reread() {
    let s = setup(require_aws!()).await;
    let secret = unique_name("media-reload-secret");
    s.aws
        .secrets
        .create_secret()
        .name(&secret)
        .secret_string(json!({"WHATSAPP_ACCESS_TOKEN_MX": "EAAG-refused-by-meta"}).to_string())
        .send()
        .await
        .unwrap();
    let registry = DynamoNumbers::new(s.aws.dynamo.clone(), &s.table);
    let put = |text: String| {
        let registry = registry.clone();
        async move {
            let split =
                wabridge_core::numbers::items::split("numbers.toml", text.as_bytes()).unwrap();
            registry.put(None, &split.entries).await.unwrap();
        }
    };
    put(entry("ventas-mx", MX, "+52 55 5000 1111", "MX")).await;
    let eager = app(&s, &secret, Duration::ZERO).await;
    let bounded = app(&s, &secret, Duration::from_secs(60)).await;

    // CO's token (the one Meta accepts) into the secret, then CO into the table.
    s.aws
        .secrets
        .put_secret_value()
        .secret_id(&secret)
        .secret_string(
            json!({"WHATSAPP_ACCESS_TOKEN_MX": "EAAG-refused-by-meta", "WHATSAPP_ACCESS_TOKEN_CO": TOKEN})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    put(entry("soporte-co", CO, "+57 601 500 2222", "CO")).await;
    let bytes = crate::media_fetch::photo();
    for id in ["3003", "3004"] {
        s.meta.files.lock().unwrap().insert(
            id.into(),
            File {
                bytes: bytes.clone(),
                mime: "image/jpeg".into(),
                ..File::default()
            },
        );
    }

    assert_eq!(run(&s, &eager, &job("3003", "CO1", CO)).await, 0, "stored");
    let key = format!("media/{}", hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(object_keys(&s.aws.s3, &s.bucket, "").await, vec![key]);
    // No re-read yet on the other instance: the default token, refused, and the job waits.
    assert_eq!(run(&s, &bounded, &job("3004", "CO2", CO)).await, 1);
}
