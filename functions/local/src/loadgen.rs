//! `wabridge loadgen`: signed webhook bodies for the load test (bench/load), shaped as Meta sends
//! them: unique Meta-like message ids, many customers, and non-ASCII escaped as `\uXXXX`.

use std::io::Write;
use std::path::Path;

use serde_json::json;
use wabridge_core::signature;

use crate::error::CliError;
use crate::tools::secret;

/// Customers the load spreads over: a business hears from many people at once, not 100,000
/// messages from one (a single hot contact measures contention on one identity instead).
const LOAD_CONTACTS: u64 = 10_000;

/// A message id shaped like Meta's: `wamid.` + base64 of the sender's number and a random
/// 20-digit hex id. Real ids fall in random places in key order; sequential ones would flatter
/// the dedupe store (every insert at the end of its B-tree).
fn load_message_id(wa_id: &str) -> String {
    use base64::Engine;
    let hex = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
    let mut raw = vec![0x1C, 0x18, wa_id.len() as u8];
    raw.extend_from_slice(wa_id.as_bytes());
    raw.extend_from_slice(&[0x15, 0x02, 0x00, 0x12, 0x18, 0x14]);
    raw.extend_from_slice(&hex.as_bytes()[..20]);
    raw.push(0x00);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The business numbers of the load (WABA, display number, phone_number_id): the second one
/// is `soporte-co` of bench/load/numbers.toml.
pub const LOAD_NUMBERS: [(&str, &str, &str); 2] = [
    ("102290129340398", "15550783881", "106540352242922"),
    ("202290129340398", "576015002222", "206540352242922"),
];

/// A realistic text-message webhook (about 650 bytes) with a unique message id, from one of
/// [`LOAD_CONTACTS`] Mexico City mobile numbers, to one of the first `numbers` of
/// [`LOAD_NUMBERS`] (customer `c` always writes to the same one, as `LOAD_CONTACTS` is even).
pub fn sample_body(n: u64, numbers: u8) -> String {
    let wa_id = format!("52155{:08}", 10_000_000 + n % LOAD_CONTACTS);
    let (waba, display, id) = LOAD_NUMBERS[(n % u64::from(numbers.clamp(1, 2))) as usize];
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": display, "phone_number_id": id},
                    "contacts": [{"profile": {"name": "María José Hernández"}, "wa_id": wa_id}],
                    "messages": [{
                        "from": wa_id,
                        "id": load_message_id(&wa_id),
                        "timestamp": "1749416383",
                        "type": "text",
                        "text": {"body": "Hola, ¿tienen este modelo en color azul? 😊 Me interesa comprar dos piezas y quisiera saber el costo del envío a Guadalajara."}
                    }]
                }
            }]
        }]
    });
    // Meta escapes non-ASCII (whatsapp-api-js re-escapes before hashing, so raw UTF-8 fails it).
    signature::meta_escaped(&body.to_string())
}

/// N signed bodies with unique message ids, one `signature<TAB>body` line each, for
/// bench/load/load.lua.
pub fn loadgen(count: u64, numbers: u8, out: &Path, data: &Path) -> Result<(), CliError> {
    let secret = secret(data)?;
    let file = std::fs::File::create(out).map_err(CliError::io("create", out))?;
    let mut w = std::io::BufWriter::new(file);
    for n in 0..count {
        let body = sample_body(n, numbers);
        writeln!(w, "{}\t{body}", signature::sign(&secret, body.as_bytes()))
            .map_err(CliError::io("write", out))?;
    }
    w.flush().map_err(CliError::io("write", out))?;
    // The load script checks that each customer became exactly one contact.
    eprintln!(
        "wrote {count} signed bodies from {} customers to {}",
        count.min(LOAD_CONTACTS),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sample_body;

    #[test]
    fn bodies_are_ascii_with_meta_escapes_and_parse_back_to_the_text() {
        let body = sample_body(7, 1);
        assert!(body.is_ascii(), "{body}");
        assert!(body.contains(r"Mar\u00eda Jos\u00e9"), "{body}");
        // Above U+FFFF: a surrogate pair, lowercase.
        assert!(body.contains(r"\ud83d\ude0a"), "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let value = &v["entry"][0]["changes"][0]["value"];
        assert_eq!(
            value["contacts"][0]["profile"]["name"],
            "María José Hernández"
        );
        let text = value["messages"][0]["text"]["body"].as_str().unwrap();
        assert!(
            text.starts_with("Hola, ¿tienen")
                && text.contains("😊")
                && text.ends_with("envío a Guadalajara.")
        );
    }

    #[test]
    fn each_body_has_its_own_message_id() {
        let id = |n| {
            let v: serde_json::Value = serde_json::from_str(&sample_body(n, 1)).unwrap();
            v["entry"][0]["changes"][0]["value"]["messages"][0]["id"].clone()
        };
        assert_ne!(id(1), id(1));
        assert_ne!(id(1), id(2));
    }

    #[test]
    fn two_numbers_alternate_and_each_customer_keeps_one() {
        let number = |n, numbers| {
            let v: serde_json::Value = serde_json::from_str(&sample_body(n, numbers)).unwrap();
            let value = &v["entry"][0]["changes"][0]["value"];
            (
                value["metadata"]["phone_number_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                value["contacts"][0]["wa_id"].as_str().unwrap().to_string(),
            )
        };
        assert_eq!(number(0, 2).0, "106540352242922");
        assert_eq!(number(1, 2).0, "206540352242922");
        assert_eq!(number(1, 1).0, "106540352242922");
        // The same customer (n and n + LOAD_CONTACTS) writes to the same number.
        let (a, b) = (number(3, 2), number(3 + super::LOAD_CONTACTS, 2));
        assert_eq!(a, b);
    }
}
