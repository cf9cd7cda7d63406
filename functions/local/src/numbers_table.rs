//! `wabridge numbers add/list/remove --table T`: the numbers registry of a deployment, as items
//! of its DynamoDB table (docs/numbers.md, "On AWS"). The same TOML file as the local gateway's
//! is the input; every write is checked first with the same parser, the stored items and the
//! file together, so the functions never read a registry that does not check. Tokens stay in
//! the stack's secret (`WABRIDGE_SECRETS_ARN`): when the CLI can read it, each `token_key` and
//! `crm.secrets` key must be there; when it cannot, it says so and writes unchecked.

use std::path::PathBuf;

use serde_json::json;
use wabridge_aws::dynamo::numbers::{DynamoNumbers, Stored};
use wabridge_aws::secrets::Secrets;
use wabridge_core::config;
use wabridge_core::numbers::{items, mask_token, Numbers, NumbersError};

use crate::error::CliError;

#[derive(clap::Args)]
pub struct AddArgs {
    /// The registry file whose numbers to write (a number already in the table is replaced).
    #[arg(long)]
    from: PathBuf,
    /// The deployment's DynamoDB table (or WABRIDGE_TABLE).
    #[arg(long, env = "WABRIDGE_TABLE")]
    table: String,
}

#[derive(clap::Args)]
pub struct RemoveArgs {
    /// The label of the number to remove.
    label: String,
    /// The deployment's DynamoDB table (or WABRIDGE_TABLE).
    #[arg(long, env = "WABRIDGE_TABLE")]
    table: String,
}

/// The deployment's secret, or why the CLI cannot read it.
pub(crate) async fn secret() -> Result<Secrets, String> {
    if config::Settings::env()
        .optional(config::WABRIDGE_SECRETS_ARN)
        .is_none()
    {
        return Err(format!(
            "{} is not set (the stack's secret)",
            config::WABRIDGE_SECRETS_ARN
        ));
    }
    Secrets::load(wabridge_aws::sdk::chain_config().await)
        .await
        .map_err(|e| e.to_string())
}

async fn stored(registry: &DynamoNumbers) -> Result<Stored, CliError> {
    registry.stored().await.map_err(CliError::store(format!(
        "cannot read the numbers registry of {}",
        registry.source()
    )))
}

/// The local gateway's own store is no CRM target for a deployment.
fn check_deployable(file: &str, numbers: &Numbers) -> Result<(), CliError> {
    for n in numbers.all() {
        let problem = match wabridge_crm::check_kind(&n.crm.kind) {
            _ if n.crm.kind == "local" => {
                "`crm.kind` local is the local gateway's store: a deployment needs a CRM".into()
            }
            Err(e) => format!("`crm.kind`: {e}"),
            Ok(()) => continue,
        };
        return Err(NumbersError {
            file: file.to_string(),
            line: Some(n.line),
            problem: format!("number `{}`: {problem}", n.label),
        }
        .into());
    }
    Ok(())
}

/// `wabridge numbers add --table T --from FILE`.
pub async fn add(args: AddArgs) -> Result<(), CliError> {
    let bytes = std::fs::read(&args.from).map_err(CliError::io("read", &args.from))?;
    let file = args.from.display().to_string();
    let split = items::split(&file, &bytes)?;
    check_deployable(&file, &split.numbers)?;
    match secret().await {
        Ok(secret) => split
            .numbers
            .check_secrets(&file, |key| secret.get(key).is_some())?,
        Err(why) => eprintln!("warning: token and secret keys not checked: {why}"),
    }
    let registry = DynamoNumbers::from_env(&args.table).await;
    // The registry once written: what the table holds, with the file's numbers replacing
    // those of the same label.
    let mut next = stored(&registry).await?;
    for e in &split.entries {
        next.entries.retain(|kept| kept.label != e.label);
        next.entries.push(e.clone());
    }
    next.entries.sort_by(|a, b| a.label.cmp(&b.label));
    if split.settings.is_some() {
        next.settings = split.settings.clone();
    }
    let numbers = next
        .numbers(&registry.source())?
        .expect("at least one entry");
    registry
        .put(split.settings.as_deref(), &split.entries)
        .await
        .map_err(CliError::store("cannot write the numbers registry"))?;
    let added: Vec<&str> = split.entries.iter().map(|e| e.label.as_str()).collect();
    println!(
        "{}",
        json!({"table": args.table, "written": added, "numbers": numbers.all().len()})
    );
    Ok(())
}

/// `wabridge numbers remove --table T LABEL`: refused when the registry left would not check
/// (its `unknown_numbers` routes to this number).
pub async fn remove(args: RemoveArgs) -> Result<(), CliError> {
    let registry = DynamoNumbers::from_env(&args.table).await;
    let mut next = stored(&registry).await?;
    let labels: Vec<String> = next.entries.iter().map(|e| e.label.clone()).collect();
    if !labels.contains(&args.label) {
        return Err(CliError::argument(
            "LABEL",
            format!(
                "no number `{}` in {} (labels: {})",
                args.label,
                registry.source(),
                labels.join(", ")
            ),
        ));
    }
    next.entries.retain(|e| e.label != args.label);
    next.numbers(&registry.source())?;
    registry
        .remove(&args.label)
        .await
        .map_err(CliError::store("cannot write the numbers registry"))?;
    println!(
        "{}",
        json!({"table": args.table, "removed": args.label, "numbers": next.entries.len()})
    );
    Ok(())
}

/// `wabridge numbers list --table T`: the table's numbers, tokens masked (read from the stack's
/// secret: `missing` when it lacks the key, `unchecked` when the CLI cannot read it).
pub async fn list(table: &str, as_json: bool) -> Result<(), CliError> {
    let registry = DynamoNumbers::from_env(table).await;
    let Some(numbers) = stored(&registry).await?.numbers(&registry.source())? else {
        eprintln!(
            "no numbers in {}: the functions run the one number of their settings",
            registry.source()
        );
        return Ok(());
    };
    let secret = secret().await;
    if let Err(why) = &secret {
        eprintln!("warning: tokens not shown: {why}");
    }
    let token = |key: &str| match &secret {
        Ok(s) => s.get(key).map_or("missing".to_string(), mask_token),
        Err(_) => "unchecked".to_string(),
    };
    let rows: Vec<_> = numbers
        .all()
        .iter()
        .map(|n| crate::numbers::row(n, token(&n.token_key)))
        .collect();
    crate::numbers::print(&rows, as_json)
}
