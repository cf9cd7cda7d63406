//! The numbers registry of the local gateway (`WABRIDGE_NUMBERS`, docs/numbers.md): read and
//! checked when `serve` starts (a file that does not parse, a repeated label or id, a CRM kind
//! this build lacks or a token that is not in the secrets stops the start, naming the line and
//! field), and shown by `wabridge numbers list` with its tokens masked.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use wabridge_core::config;
use wabridge_core::numbers::{mask_token, Number, Numbers};

use crate::error::CliError;
use crate::secrets::Secrets;

/// The file `WABRIDGE_NUMBERS` names, if set.
pub fn path() -> Option<String> {
    config::Settings::env().optional(config::WABRIDGE_NUMBERS)
}

/// The registry `WABRIDGE_NUMBERS` names, checked against `secrets`; `None` when unset (the
/// gateway then runs today's single number).
pub fn load(secrets: &Secrets) -> Result<Option<Arc<Numbers>>, CliError> {
    let Some(file) = path().filter(|f| !destinations_only(f)) else {
        return Ok(None);
    };
    let numbers = read(&file)?;
    numbers.check_secrets(&file, |key| secrets.named(key).is_some())?;
    for n in numbers.all() {
        wabridge_crm::check_kind(&n.crm.kind).map_err(|e| target_error(&file, n, e.into()))?;
    }
    Ok(Some(Arc::new(numbers)))
}

/// A file of destinations and no numbers: today's one number, plus destinations.
fn destinations_only(file: &str) -> bool {
    std::fs::read(file).is_ok_and(|b| wabridge_core::numbers::destinations::destinations_only(&b))
}

/// The registry `WABRIDGE_NUMBERS` names, parsed but not checked against the secrets; `None`
/// when unset or when the file lists destinations only.
pub fn registry() -> Result<Option<Numbers>, CliError> {
    path()
        .filter(|f| !destinations_only(f))
        .map(|f| read(&f))
        .transpose()
}

/// A registry secret by key name: the environment, else the `tokens` of `DATA/secrets.json`
/// (`stored`, when the file exists).
pub fn secret(stored: Option<&Secrets>, key: &str) -> Option<String> {
    match stored {
        Some(s) => s.named(key),
        None => std::env::var(key).ok().filter(|v| !v.is_empty()),
    }
}

fn read(file: &str) -> Result<Numbers, CliError> {
    let bytes = std::fs::read(file).map_err(CliError::io("read", file))?;
    Ok(Numbers::parse(file, &bytes)?)
}

/// `source` about number `n`'s CRM target, named by file, line and label.
pub fn target_error(file: &str, n: &Number, source: CliError) -> CliError {
    CliError::NumberTarget {
        at: format!(
            "{} {file}: line {}: number `{}`",
            config::WABRIDGE_NUMBERS,
            n.line,
            n.label
        ),
        source: Box::new(source),
    }
}

/// `wabridge numbers list`: every number with its WABA, token (masked: its last 4 characters,
/// or `missing`), CRM target and send rate; without a registry, the one implicit number of
/// `WHATSAPP_PHONE_NUMBER_ID`. `--json`: one object per line.
pub fn list(data: &Path, as_json: bool) -> Result<(), CliError> {
    let stored = crate::secrets::read(data)?;
    let token =
        |key: &str| secret(stored.as_ref(), key).map_or("missing".to_string(), |t| mask_token(&t));
    let rows: Vec<Value> = match registry()? {
        Some(numbers) => numbers
            .all()
            .iter()
            .map(|n| row(n, token(&n.token_key)))
            .collect(),
        None => {
            let env = |name: &str| std::env::var(name).ok();
            vec![json!({
                "label": "default",
                "implicit": true,
                "phone_number_id": config::Settings::env().optional(config::WHATSAPP_PHONE_NUMBER_ID),
                "waba_id": config::Settings::env().optional(config::WHATSAPP_BUSINESS_ACCOUNT_ID),
                "token_key": config::WHATSAPP_ACCESS_TOKEN,
                "token": token(config::WHATSAPP_ACCESS_TOKEN),
                "crm": {"kind": config::crm_kind(env), "mapping": env(config::WABRIDGE_MAPPING)},
                "sends_per_second": config::send_rate(env)?.0,
            })]
        }
    };
    print(&rows, as_json)
}

/// One number of a listing; `token` is the masked token (or why there is none).
pub fn row(n: &Number, token: String) -> Value {
    json!({
        "label": n.label,
        "phone_number_id": n.phone_number_id,
        "waba_id": n.waba_id,
        "display_number": n.display_number,
        "token_key": n.token_key,
        "token": token,
        "crm": {
            "kind": n.crm.kind,
            "mapping": n.crm.mapping,
            "settings": n.crm.settings,
            // Key names only: the values are secrets.
            "secrets": n.crm.secrets,
        },
        "sends_per_second": n.sends_per_second,
        "language": n.language,
        "default_country": n.default_country,
    })
}

/// Prints a listing: one line per number, or with `as_json` one JSON object per line.
pub fn print(rows: &[Value], as_json: bool) -> Result<(), CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for row in rows {
        let line = if as_json {
            row.to_string()
        } else {
            let text = |k: &str| row[k].as_str().unwrap_or("-").to_string();
            format!(
                "{:<16} {:<18} waba {:<18} {:<18} token {} ({}) crm {} {}/s",
                text("label"),
                text("phone_number_id"),
                text("waba_id"),
                row["display_number"].as_str().unwrap_or(""),
                text("token_key"),
                text("token"),
                row["crm"]["kind"].as_str().unwrap_or("-"),
                row["sends_per_second"],
            )
        };
        writeln!(out, "{line}").map_err(CliError::Stdout)?;
    }
    Ok(())
}
