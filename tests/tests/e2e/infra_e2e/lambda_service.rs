//! This test's part as the Lambda service: Function URL requests handed to ingest's handler, and
//! an SQS event source mapping polling for crm-sync's handler.

use super::*;

/// A lambda_http request as a Function URL delivers it.
pub(crate) fn lambda_request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder
        .body(if body.is_empty() {
            lambda_http::Body::Empty
        } else {
            lambda_http::Body::Binary(body.to_vec())
        })
        .unwrap()
}

pub(crate) async fn call_ingest(
    api: &wabridge_core::api::Api,
    req: lambda_http::Request,
) -> (u16, String) {
    let resp = ingest::handle(api, req).await.unwrap();
    let status = resp.status().as_u16();
    let body = match resp.into_body() {
        lambda_http::Body::Text(t) => t,
        lambda_http::Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    (status, body)
}

/// One message the Lambda service handed to the function.
pub(super) struct Polled {
    pub(super) receive_count: u32,
    pub(super) failed: bool,
    pub(super) receipt: String,
    pub(super) body: String,
}

/// What the Lambda service does for an SQS event source mapping: receive a batch (with the
/// queue's visibility timeout and the receive count attribute), invoke the function with it as
/// an `SqsEvent`, delete the messages not reported in `batchItemFailures`. Only the message
/// containing `needle` is handed over (others on the queue are released untouched); `None`
/// when it is not (or no longer) on the queue.
pub(super) async fn lambda_poll(
    aws: &Aws,
    queue_url: &str,
    needle: &str,
    app: &crm_sync::App,
) -> Option<Polled> {
    use aws_lambda_events::event::sqs::SqsEvent;
    use aws_sdk_sqs::types::MessageSystemAttributeName;
    for _ in 0..20 {
        let out = aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return None;
        }
        let mut ours = None;
        for m in messages {
            if ours.is_none() && m.body().unwrap_or_default().contains(needle) {
                ours = Some(m);
            } else if let Some(receipt) = m.receipt_handle() {
                let _ = aws
                    .sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
        let Some(m) = ours else { continue };
        let record = wabridge_tests::lambda_record(m.clone());
        let receive_count = record.attributes["ApproximateReceiveCount"]
            .parse()
            .unwrap();
        let mut event = SqsEvent::default();
        event.records = vec![record];
        let response = crm_sync::handle(app, event, None).await;
        let id = m.message_id.clone().unwrap_or_default();
        let failed = response
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == id);
        let receipt = m.receipt_handle.clone().unwrap_or_default();
        if !failed {
            aws.sqs
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(&receipt)
                .send()
                .await
                .expect("the Lambda service deletes what succeeded");
        }
        return Some(Polled {
            receive_count,
            failed,
            receipt,
            body: m.body.unwrap_or_default(),
        });
    }
    None
}
