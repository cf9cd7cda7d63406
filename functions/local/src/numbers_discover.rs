//! `wabridge numbers discover` (docs/numbers.md, "Discover"): lists the numbers of each WABA
//! from the Graph API and prints a ready-to-paste `[[number]]` entry for each one the registry
//! lacks; warns (stderr) when a callback override sends a WABA's or a number's webhooks to
//! another URL, since they then never reach wabridge, and when a registered number is no longer
//! listed by its WABA. Reads only; tokens are never printed.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use wabridge_core::config;
use wabridge_core::numbers::{Number, Numbers};
use wabridge_graph::phone_numbers::{ListedNumber, ReadError, Subscription};
use wabridge_graph::GraphNumbers;

use crate::cli::DataArg;
use crate::error::CliError;

/// Each Graph API request's timeout.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args)]
pub struct DiscoverArgs {
    /// A WhatsApp Business Account id to list (repeat for several); default: every WABA of
    /// the registry (WABRIDGE_NUMBERS).
    #[arg(long = "waba", value_name = "ID")]
    wabas: Vec<String>,
    /// wabridge's webhook URL: warn only about overrides that send traffic elsewhere.
    #[arg(long, value_name = "URL")]
    callback_url: Option<String>,
    /// One JSON object per listed number.
    #[arg(long)]
    json: bool,
    /// A deployment's DynamoDB table: compare with its registry items (tokens from the stack's
    /// secret, WABRIDGE_SECRETS_ARN) and print the `numbers add --table` commands to run.
    #[arg(long, value_name = "TABLE")]
    table: Option<String>,
    #[command(flatten)]
    data: DataArg,
}

/// A token by its key name.
type Token = dyn Fn(&str) -> Option<String>;

/// A number's own callback override: none, a URL, or why it could not be read.
pub type NumberOverride = Result<Option<String>, String>;

/// What the Graph API said about one WABA.
pub struct Waba {
    pub id: String,
    /// The key of the token that read it (suggested for its new numbers).
    pub token_key: String,
    pub numbers: Vec<(ListedNumber, NumberOverride)>,
    pub subscriptions: Vec<Subscription>,
}

/// What to print: stdout lines (text), JSON objects (`--json`), warnings (stderr).
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub objects: Vec<Value>,
    pub warnings: Vec<String>,
}

/// `wabridge numbers discover`.
pub async fn discover(args: DiscoverArgs) -> Result<(), CliError> {
    // The local registry file and secrets, or a deployment's items and secret.
    let (registry, token): (_, Box<Token>) = match &args.table {
        None => {
            let stored = crate::secrets::read(&args.data.data)?;
            let token = move |key: &str| crate::numbers::secret(stored.as_ref(), key);
            (crate::numbers::registry()?, Box::new(token))
        }
        Some(table) => {
            let registry = wabridge_aws::dynamo::numbers::DynamoNumbers::from_env(table).await;
            let numbers = registry.load().await.map_err(CliError::store(format!(
                "cannot read the numbers registry of {}",
                registry.source()
            )))?;
            let secret = crate::numbers_table::secret().await.map_err(|why| {
                CliError::argument(
                    "--table",
                    format!("the tokens are in the stack's secret: {why}"),
                )
            })?;
            let token = move |key: &str| secret.get(key).map(str::to_string);
            (numbers, Box::new(token))
        }
    };
    let wabas = waba_ids(&args.wabas, registry.as_ref())?;
    let callback = args.callback_url.as_deref().map(check_url).transpose()?;
    let settings = config::Settings::env();
    let (base, version) = settings.graph_api()?;
    let app_id = settings.optional(config::WHATSAPP_APP_ID);
    // Every token first: a missing one stops the command before any request.
    let mut clients = Vec::with_capacity(wabas.len());
    for waba in wabas {
        let key = token_key(&waba, registry.as_ref());
        let Some(token) = token(&key) else {
            return Err(CliError::NoToken { waba, key });
        };
        clients.push((
            waba,
            key,
            GraphNumbers::new(&base, &version, &token, TIMEOUT),
        ));
    }
    let mut found = Vec::with_capacity(clients.len());
    for (id, token_key, graph) in clients {
        let fail = |what: &'static str, id: &str| {
            let waba = id.to_string();
            move |source: ReadError| CliError::Discover { what, waba, source }
        };
        let listed = graph
            .phone_numbers(&id)
            .await
            .map_err(fail("list the numbers", &id))?;
        let subscriptions = graph
            .subscribed_apps(&id)
            .await
            .map_err(fail("read the subscribed apps", &id))?;
        let mut numbers = Vec::with_capacity(listed.len());
        for n in listed {
            let own = graph
                .number_override(&n.id)
                .await
                .map_err(|e| e.to_string());
            numbers.push((n, own));
        }
        found.push(Waba {
            id,
            token_key,
            numbers,
            subscriptions,
        });
    }
    let report = report(
        &found,
        registry.as_ref(),
        callback.as_deref(),
        app_id.as_deref(),
        args.table.as_deref(),
    );
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if args.json {
        crate::numbers::print(&report.objects, true)
    } else {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for line in &report.lines {
            writeln!(out, "{line}").map_err(CliError::Stdout)?;
        }
        Ok(())
    }
}

/// `--waba` ids (digits, each once, in order), else the registry's WABAs in file order.
fn waba_ids(given: &[String], registry: Option<&Numbers>) -> Result<Vec<String>, CliError> {
    let mut ids: Vec<String> = Vec::new();
    for id in given.iter().map(|s| s.trim()) {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CliError::argument(
                "--waba",
                format!("{id:?} is not a WABA id (digits only)"),
            ));
        }
        if !ids.iter().any(|i| i == id) {
            ids.push(id.to_string());
        }
    }
    if ids.is_empty() {
        for n in registry.map(Numbers::all).unwrap_or_default() {
            if !ids.contains(&n.waba_id) {
                ids.push(n.waba_id.clone());
            }
        }
    }
    if ids.is_empty() {
        return Err(CliError::argument(
            "--waba",
            format!(
                "no WABA to discover: pass --waba ID, or set {} to a registry that lists numbers",
                config::WABRIDGE_NUMBERS
            ),
        ));
    }
    Ok(ids)
}

/// The token of a WABA: its first registered number's key, else `WHATSAPP_ACCESS_TOKEN`.
fn token_key(waba: &str, registry: Option<&Numbers>) -> String {
    registry
        .and_then(|r| r.all().iter().find(|n| n.waba_id == waba))
        .map_or(config::WHATSAPP_ACCESS_TOKEN.to_string(), |n| {
            n.token_key.clone()
        })
}

fn check_url(url: &str) -> Result<String, CliError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(url.to_string())
        }
        _ => Err(CliError::argument(
            "--callback-url",
            format!("{url:?} is not an http(s) URL"),
        )),
    }
}

/// Whether two callback URLs are the same (scheme and host case, a trailing slash aside).
fn same_url(a: &str, b: &str) -> bool {
    let norm = |u: &str| {
        reqwest::Url::parse(u).map_or(u.to_string(), |p| p.as_str().trim_end_matches('/').into())
    };
    norm(a) == norm(b)
}

/// The warning for an override at `whose` (a WABA's app, a number) pointing at `uri`, or
/// `None` when it is `callback`.
fn override_warning(whose: &str, what: &str, uri: &str, callback: Option<&str>) -> Option<String> {
    match callback {
        Some(c) if same_url(c, uri) => None,
        Some(c) => Some(format!(
            "{whose} overrides the callback URL: Meta sends {what} to {uri}, not to --callback-url {c}, so they never reach wabridge"
        )),
        None => Some(format!(
            "{whose} overrides the callback URL: Meta sends {what} to {uri}, not to the app's callback URL"
        )),
    }
}

/// The report of `wabas` against the registry (pure: printed by [`discover`]); `table`: the
/// registry is that deployment's, and each new entry comes with its `numbers add` command.
pub fn report(
    wabas: &[Waba],
    registry: Option<&Numbers>,
    callback: Option<&str>,
    app_id: Option<&str>,
    table: Option<&str>,
) -> Report {
    let registered: &[Number] = registry.map(Numbers::all).unwrap_or_default();
    let mut taken: HashSet<String> = registered.iter().map(|n| n.label.clone()).collect();
    let mut r = Report::default();
    for waba in wabas {
        let w = &waba.id;
        r.lines.push(format!(
            "# WABA {w}: {} number(s) listed (token {})",
            waba.numbers.len(),
            waba.token_key
        ));
        subscription_warnings(waba, callback, app_id, &mut r.warnings);
        for (n, own) in &waba.numbers {
            let known = registered.iter().find(|k| k.phone_number_id == n.id);
            let name = known.map_or(n.id.clone(), |k| format!("{} ({})", k.label, n.id));
            match own {
                Ok(Some(uri)) => r.warnings.extend(override_warning(
                    &format!("number {name} of WABA {w}"),
                    "its messages, calls and echoes",
                    uri,
                    callback,
                )),
                Ok(None) => {}
                Err(e) => r.warnings.push(format!(
                    "number {name} of WABA {w}: its own callback override could not be read (unconfirmed in Meta's spec): {e}"
                )),
            }
            let mut object = json!({
                "waba_id": w, "phone_number_id": n.id, "display_phone_number": n.display_phone_number,
                "verified_name": n.verified_name, "status": n.status, "quality_rating": n.quality_rating,
                "country_code": n.country_code, "override_callback_uri": own.as_ref().ok().cloned().flatten(),
                "registered": known.map(|k| k.label.clone()),
            });
            match known {
                Some(k) => {
                    r.lines.push(format!(
                        "# {} ({}) is already in the registry",
                        k.label, n.id
                    ));
                    if k.waba_id != *w {
                        r.warnings.push(format!(
                            "number {name}: the registry says WABA {}, but WABA {w} lists it",
                            k.waba_id
                        ));
                    }
                }
                None => {
                    let label = suggest_label(n, &mut taken);
                    let crm = crm_line(table.is_some(), registered, w);
                    let entry = entry(n, &label, w, &waba.token_key, &crm);
                    r.lines.push(String::new());
                    r.lines.extend(entry.lines().map(str::to_string));
                    object["suggested_label"] = json!(label);
                    object["entry"] = json!(entry);
                    if let Some(t) = table {
                        let add = format!("wabridge numbers add --table {t} --from {label}.toml");
                        r.lines.push(format!(
                            "# to register it: save the entry as {label}.toml, then: {add}"
                        ));
                        object["add_command"] = json!(add);
                    }
                }
            }
            r.objects.push(object);
        }
        for k in registered.iter().filter(|k| k.waba_id == *w) {
            if !waba.numbers.iter().any(|(n, _)| n.id == k.phone_number_id) {
                r.warnings.push(format!(
                    "number {} ({}) is in the registry under WABA {w}, which no longer lists it",
                    k.label, k.phone_number_id
                ));
            }
        }
        r.lines.push(String::new());
    }
    r
}

/// The WABA-level overrides of the apps that matter (`app_id`'s, else every app's).
fn subscription_warnings(
    waba: &Waba,
    callback: Option<&str>,
    app_id: Option<&str>,
    warnings: &mut Vec<String>,
) {
    let w = &waba.id;
    if waba.subscriptions.is_empty() {
        warnings.push(format!(
            "no app is subscribed to WABA {w}'s webhooks: Meta sends none of them (POST /{w}/subscribed_apps)"
        ));
        return;
    }
    let ours = |s: &&Subscription| app_id.is_none_or(|a| s.app_id.as_deref() == Some(a));
    if let Some(a) = app_id {
        if !waba.subscriptions.iter().any(|s| ours(&s)) {
            warnings.push(format!(
                "the app {} {a} is not subscribed to WABA {w}'s webhooks: Meta sends none of them to it",
                config::WHATSAPP_APP_ID
            ));
        }
    }
    for s in waba.subscriptions.iter().filter(ours) {
        let Some(uri) = &s.override_callback_uri else {
            continue;
        };
        let app = match (&s.app_name, &s.app_id) {
            (Some(n), Some(i)) => format!("{n} ({i})"),
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (None, None) => "an app".into(),
        };
        warnings.extend(override_warning(
            &format!("WABA {w}'s subscription of app {app}"),
            "this WABA's messages, calls and echoes",
            uri,
            callback,
        ));
    }
}

/// A label from the verified name and country (`Jasper's Market`, US → `jaspers-market-us`),
/// made unique against `taken` (which it joins).
fn suggest_label(n: &ListedNumber, taken: &mut HashSet<String>) -> String {
    let mut slug = String::new();
    for c in n.verified_name.as_deref().unwrap_or("").chars() {
        // Apostrophes join words (Jasper's → jaspers).
        if matches!(c, '\'' | '’') {
            continue;
        }
        match fold(c.to_lowercase().next().unwrap_or(c)) {
            Some(c) if c.is_ascii_alphanumeric() => slug.push(c),
            _ if !slug.ends_with('-') && !slug.is_empty() => slug.push('-'),
            _ => {}
        }
    }
    let mut base = slug.trim_end_matches('-').to_string();
    if base.is_empty() {
        let digits: String = n.id.chars().filter(char::is_ascii_digit).collect();
        base = format!("number-{}", &digits[digits.len().saturating_sub(4)..]);
    }
    if let Some(cc) = n
        .country_code
        .as_deref()
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        base = format!("{base}-{}", cc.to_ascii_lowercase());
    }
    let cut = |s: &str, max: usize| s[..s.len().min(max)].trim_end_matches('-').to_string();
    let mut label = cut(&base, 32);
    let mut i = 2;
    while taken.contains(&label) {
        let suffix = format!("-{i}");
        label = format!("{}{suffix}", cut(&base, 32 - suffix.len()));
        i += 1;
    }
    taken.insert(label.clone());
    label
}

/// `c` as ASCII: Latin letters lose their accents; anything else that is not ASCII is `None`.
fn fold(c: char) -> Option<char> {
    Some(match c {
        'á' | 'à' | 'â' | 'ã' | 'ä' | 'å' => 'a',
        'é' | 'è' | 'ê' | 'ë' => 'e',
        'í' | 'ì' | 'î' | 'ï' => 'i',
        'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
        'ú' | 'ù' | 'û' | 'ü' => 'u',
        'ñ' => 'n',
        'ç' => 'c',
        c if c.is_ascii() => c,
        _ => return None,
    })
}

/// The `crm = …` line of a new number's entry. Locally: the local store. For a deployment
/// (which has none): the target of the WABA's first registered number, to check; with none, an
/// empty kind that `numbers add` refuses (naming the line) until it is filled in.
fn crm_line(deployment: bool, registered: &[Number], waba: &str) -> String {
    if !deployment {
        return "crm = { kind = \"local\" }  # its CRM target (docs/numbers.md)".into();
    }
    let Some(k) = registered.iter().find(|k| k.waba_id == waba) else {
        return "crm = { kind = \"\" }  # its CRM target (webhook, hubspot, …): docs/numbers.md"
            .into();
    };
    let mut target = toml::Table::new();
    target.insert("kind".into(), k.crm.kind.clone().into());
    if let Some(mapping) = &k.crm.mapping {
        target.insert("mapping".into(), mapping.clone().into());
    }
    let map = |m: &std::collections::BTreeMap<String, String>| {
        toml::Value::Table(
            m.iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect(),
        )
    };
    if !k.crm.settings.is_empty() {
        target.insert("settings".into(), map(&k.crm.settings));
    }
    if !k.crm.secrets.is_empty() {
        target.insert("secrets".into(), map(&k.crm.secrets));
    }
    format!(
        "crm = {}  # {}'s target, of the same WABA: check it",
        toml::Value::Table(target),
        k.label
    )
}

/// The `[[number]]` entry of a number the registry lacks, in the registry's format.
fn entry(n: &ListedNumber, label: &str, waba: &str, token_key: &str, crm: &str) -> String {
    // JSON strings are valid TOML basic strings (same escapes).
    let quote = |s: &str| Value::from(s).to_string();
    let comment: String = format!(
        "{}{}: quality {}, status {}",
        n.verified_name.as_deref().unwrap_or("(no verified name)"),
        n.country_code
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        n.quality_rating.as_deref().unwrap_or("unknown"),
        n.status.as_deref().unwrap_or("unknown"),
    )
    .chars()
    .map(|c| if c.is_control() { ' ' } else { c })
    .collect();
    format!(
        "# {comment}\n[[number]]\nlabel = {}\nphone_number_id = {}\nwaba_id = {}\ndisplay_number = {}\n\
         token_key = {}  # the token that listed this WABA; name the number's own if it has one\n\
         {crm}\n",
        quote(label),
        quote(&n.id),
        quote(waba),
        quote(&n.display_phone_number),
        quote(token_key),
    )
}

#[cfg(test)]
#[path = "numbers_discover_tests.rs"]
mod tests;
