//! The template registry learns templates from Meta: `GET /{version}/{waba-id}/message_templates`
//! read page by page (a local Graph server in the test answering realistic template JSON, and
//! Prism serving Meta's own spec), the BODY's distinct placeholders counted (POSITIONAL `{{1}}`
//! and NAMED `{{first_name}}`; header and button placeholders are not body parameters), and
//! then `POST /sends` (through `Sends::submit`) checked for real: wrong parameter count refused,
//! PAUSED refused, Meta's MARKETING category wins over the caller's. A webhook status newer
//! than the sync keeps its status. `wabridge templates sync` / `templates list --json` and the
//! sync `wabridge serve` runs at start go through the binary.

mod binary;
mod errors;
mod graph;
mod lambda;
mod meta_spec;
mod reading;
mod sends;
mod webhooks;

use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::templates::TemplateRegistry;
use wabridge_sqlite::{Db, SqliteTemplates};

use graph::*;

const WABA: &str = "102290129340398";
const TOKEN: &str = "EAAGtemplateSyncToken";

// ---------------------------------------------------------------- Meta's template JSON

/// Page 1: a POSITIONAL utility template (header and URL button placeholders, `{{1}}` twice in
/// the body), a NAMED marketing template, and an item without a name; `paging.next` says
/// there is more.
fn page_one() -> Value {
    json!({
        "data": [
            {
                "name": "order_confirmation",
                "parameter_format": "POSITIONAL",
                "components": [
                    {"type": "HEADER", "format": "TEXT", "text": "Pedido {{1}}",
                     "example": {"header_text": ["1042"]}},
                    {"type": "BODY",
                     "text": "Hola {{1}}, tu pedido {{2}} por {{3}} está confirmado. ¡Gracias, {{1}}!",
                     "example": {"body_text": [["Ana", "1042", "$1,250.00 MXN"]]}},
                    {"type": "FOOTER", "text": "Tienda Ejemplo"},
                    {"type": "BUTTONS", "buttons": [
                        {"type": "URL", "text": "Ver pedido",
                         "url": "https://tienda.example.mx/pedidos/{{1}}",
                         "example": ["https://tienda.example.mx/pedidos/1042"]}
                    ]}
                ],
                "language": "es_MX",
                "status": "APPROVED",
                "category": "UTILITY",
                "id": "1407680676729941"
            },
            {
                "name": "promo_named",
                "parameter_format": "NAMED",
                "components": [
                    {"type": "HEADER", "format": "TEXT", "text": "Oferta para {{first_name}}",
                     "example": {"header_text_named_params": [
                         {"param_name": "first_name", "example": "Ana"}]}},
                    {"type": "BODY",
                     "text": "Olá {{first_name}}, use o cupom {{coupon_code}} até {{end_date}}. {{first_name}}, não perca!",
                     "example": {"body_text_named_params": [
                         {"param_name": "first_name", "example": "Ana"},
                         {"param_name": "coupon_code", "example": "VERAO25"},
                         {"param_name": "end_date", "example": "31/12"}]}},
                    {"type": "BUTTONS", "buttons": [
                        {"type": "QUICK_REPLY", "text": "Parar promoções"}]}
                ],
                "language": "pt_BR",
                "status": "APPROVED",
                "category": "MARKETING",
                "id": "1407680676729942"
            },
            {"language": "en_US", "status": "APPROVED", "components": [], "id": "3"}
        ],
        "paging": {
            "cursors": {"before": "QVFIUmJlZA", "after": "QVFIUpage1"},
            "next": format!("https://graph.facebook.com/v23.0/{WABA}/message_templates?limit=100&after=QVFIUpage1")
        }
    })
}

/// Page 2 (the last: no `paging.next`): a PAUSED marketing template and one without
/// parameters.
fn page_two() -> Value {
    json!({
        "data": [
            {
                "name": "cart_reminder",
                "components": [
                    {"type": "BODY", "text": "{{1}}, olvidaste algo en tu carrito.",
                     "example": {"body_text": [["Ana"]]}}
                ],
                "language": "es_MX",
                "status": "PAUSED",
                "category": "MARKETING",
                "id": "4"
            },
            {
                "name": "hello_world",
                "parameter_format": "POSITIONAL",
                "components": [
                    {"type": "HEADER", "format": "TEXT", "text": "Hello World"},
                    {"type": "BODY", "text": "Welcome and congratulations!!"}
                ],
                "language": "en_US",
                "status": "APPROVED",
                "category": "UTILITY",
                "id": "5"
            }
        ],
        "paging": {"cursors": {"before": "QVFIUpage1", "after": "QVFIUpage2"}}
    })
}

fn two_pages() -> Answer {
    Arc::new(|after| match after {
        None => (200, page_one().to_string()),
        Some("QVFIUpage1") => (200, page_two().to_string()),
        Some(other) => (
            400,
            json!({"error": {"message": format!("unknown cursor {other}"), "code": 100}})
                .to_string(),
        ),
    })
}

fn temp_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("wabridge.db")).unwrap();
    (dir, db)
}

fn registry(db: &Db) -> TemplateRegistry {
    TemplateRegistry::new(Arc::new(SqliteTemplates::new(db.clone())))
}
