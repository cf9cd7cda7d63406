//! `wabridge templates check | plan | apply | history`: the template files of a folder
//! (`--dir`, default `templates`, or `WABRIDGE_TEMPLATES`) against Meta, over
//! `wabridge_core::template_files`.
//!
//! - `check` is offline: it parses and validates every file (for CI on every pull request).
//! - `plan` reads Meta's list (`WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_BUSINESS_ACCOUNT_ID`) and the
//!   apply history, prints the plan, and exits 2 when it is not clean (a gate for CI).
//! - `apply` makes the plan's changes and records each in the history; `history NAME` shows it.
//! - With a numbers registry, a folder is one WABA's (`--waba`, required when the registry has
//!   several): its id, the token of one of its numbers and its own history (docs/templates.md,
//!   "Several WABAs").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};
use wabridge_aws::dynamo::template_history::DynamoTemplateHistory;
use wabridge_core::clock::now_ms;
use wabridge_core::config;
use wabridge_core::numbers::wabas::Waba;
use wabridge_core::numbers::Numbers;
use wabridge_core::sends::template_sync::TemplateSyncConfig;
use wabridge_core::template_files::apply::{
    self, ApplyOptions, Sample, TemplateAdmin, TemplateHistory,
};
use wabridge_core::template_files::plan::{self, Local, DAY_MS};
use wabridge_core::template_files::validate::{self, Finding, Severity};
use wabridge_core::template_files::{TemplateFile, MAX_FILE_BYTES};
use wabridge_graph::GraphTemplateAdmin;
use wabridge_sqlite::SqliteTemplateHistory;

use crate::error::CliError;

/// Largest media header sample read (Meta's largest media limit, a document: 100 MB).
const MAX_SAMPLE_BYTES: u64 = 100 * 1024 * 1024;

/// One file of the folder, parsed, with its media samples read.
struct Loaded {
    label: String,
    template: TemplateFile,
    sample_sha256: BTreeMap<String, String>,
    samples: BTreeMap<(String, String), Sample>,
}

/// What the folder holds, and what is wrong with it.
struct Folder {
    files: Vec<Loaded>,
    findings: Vec<Finding>,
    /// Files that did not parse: "file: line L, column C: problem".
    unreadable: Vec<String>,
}

impl Folder {
    fn errors(&self) -> usize {
        self.unreadable.len()
            + self
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Error)
                .count()
    }

    fn print(&self, as_json: bool) {
        for u in &self.unreadable {
            if as_json {
                println!("{}", json!({"severity": "error", "problem": u}));
            } else {
                println!("error: {u}");
            }
        }
        for f in &self.findings {
            if as_json {
                println!("{}", json!(f));
            } else {
                println!("{f}");
            }
        }
    }

    fn locals(&self) -> Vec<Local<'_>> {
        self.files
            .iter()
            .map(|l| Local {
                file: &l.label,
                template: &l.template,
                sample_sha256: l.sample_sha256.clone(),
            })
            .collect()
    }
}

/// The folder: `--dir`, else `WABRIDGE_TEMPLATES`, else `templates`.
pub fn folder(dir: Option<PathBuf>) -> PathBuf {
    dir.or_else(|| {
        std::env::var(config::WABRIDGE_TEMPLATES)
            .ok()
            .filter(|d| !d.trim().is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from("templates"))
}

/// Reads and checks every `*.toml` file of `dir` (not its subfolders: those hold samples).
fn load(dir: &Path) -> Result<Folder, CliError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(CliError::io("list", dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    let mut folder = Folder {
        files: Vec::new(),
        findings: Vec::new(),
        unreadable: Vec::new(),
    };
    for path in paths {
        let label = path.display().to_string();
        let len = std::fs::metadata(&path)
            .map_err(CliError::io("read", &path))?
            .len();
        if len > MAX_FILE_BYTES as u64 {
            folder
                .unreadable
                .push(format!("{label}: larger than {MAX_FILE_BYTES} bytes"));
            continue;
        }
        let bytes = std::fs::read(&path).map_err(CliError::io("read", &path))?;
        let template = match TemplateFile::parse(&label, &bytes) {
            Ok(t) => t,
            Err(e) => {
                folder.unreadable.push(e.to_string());
                continue;
            }
        };
        let stem = path.file_stem().and_then(|s| s.to_str());
        folder
            .findings
            .extend(validate::validate(&label, stem, &template));
        let mut loaded = Loaded {
            label,
            template,
            sample_sha256: BTreeMap::new(),
            samples: BTreeMap::new(),
        };
        read_samples(&path, &mut loaded, &mut folder.findings);
        folder.files.push(loaded);
    }
    let names: Vec<(&str, &str)> = folder
        .files
        .iter()
        .map(|l| (l.label.as_str(), l.template.name.as_str()))
        .collect();
    let duplicates = validate::validate_names(names);
    folder.findings.extend(duplicates);
    Ok(folder)
}

/// Reads each media header's sample next to the file; a missing or oversized one is a finding.
fn read_samples(path: &Path, loaded: &mut Loaded, findings: &mut Vec<Finding>) {
    let base = path.parent().unwrap_or(Path::new("."));
    let t = &loaded.template;
    for (language, content) in &t.languages {
        let Some(sample) = content.header.as_ref().and_then(|h| h.sample.as_deref()) else {
            continue;
        };
        let Some(mime) = Sample::mime_for(sample) else {
            continue; // validate named the extension already
        };
        let mut problem = |message: String| {
            findings.push(Finding {
                severity: Severity::Error,
                file: loaded.label.clone(),
                template: t.name.clone(),
                language: Some(language.clone()),
                field: "header.sample".into(),
                message,
            })
        };
        let file = base.join(sample);
        match std::fs::metadata(&file) {
            Err(_) => problem(format!("`{sample}` not found next to the template file")),
            Ok(m) if m.len() > MAX_SAMPLE_BYTES => {
                problem(format!("`{sample}` is over {MAX_SAMPLE_BYTES} bytes"))
            }
            Ok(_) => match std::fs::read(&file) {
                Err(e) => problem(format!("`{sample}` cannot be read: {e}")),
                Ok(bytes) => {
                    loaded
                        .sample_sha256
                        .insert(language.clone(), hex::encode(Sha256::digest(&bytes)));
                    let file_name = file
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("sample")
                        .to_string();
                    loaded.samples.insert(
                        (t.name.clone(), language.clone()),
                        Sample {
                            file_name,
                            mime,
                            bytes,
                        },
                    );
                }
            },
        }
    }
}

/// Loads the folder and stops on errors (printing every finding first).
fn load_checked(dir: &Path, as_json: bool) -> Result<Folder, CliError> {
    let folder = load(dir)?;
    let errors = folder.errors();
    if errors > 0 || as_json {
        folder.print(as_json);
    } else {
        // Warnings only: shown, never blocking.
        for f in &folder.findings {
            eprintln!("{f}");
        }
    }
    if errors > 0 {
        return Err(CliError::TemplateFiles {
            dir: dir.to_path_buf(),
            errors,
        });
    }
    Ok(folder)
}

/// `wabridge templates check [--dir D] [--json]`.
pub fn check(dir: &Path, as_json: bool) -> Result<(), CliError> {
    let folder = load(dir)?;
    folder.print(as_json);
    let errors = folder.errors();
    let warnings = folder.findings.len() + folder.unreadable.len() - errors;
    let languages: usize = folder
        .files
        .iter()
        .map(|f| f.template.languages.len())
        .sum();
    if !as_json {
        println!(
            "{} files, {languages} languages: {errors} errors, {warnings} warnings",
            folder.files.len() + folder.unreadable.len()
        );
    }
    if errors > 0 {
        return Err(CliError::TemplateFiles {
            dir: dir.to_path_buf(),
            errors,
        });
    }
    Ok(())
}

/// Where `plan`, `apply` and `history` work: the data directory (the local store), a
/// deployment's table (`--table`), and the WABA of the numbers registry (`--waba`).
pub struct At<'a> {
    data: &'a Path,
    table: Option<&'a str>,
    waba: Option<&'a str>,
}

impl<'a> At<'a> {
    pub fn new(data: &'a Path, table: Option<&'a str>, waba: Option<&'a str>) -> At<'a> {
        At {
            data,
            table: table.filter(|t| !t.trim().is_empty()),
            waba,
        }
    }

    /// The WABA the command works on: `--waba`, else the registry's only one (the registry
    /// of the deployment's table with `--table`, else `WABRIDGE_NUMBERS`); `None` without a
    /// registry (today's one WABA).
    async fn waba(&self) -> Result<(Option<Numbers>, Option<Waba>), CliError> {
        let numbers = crate::wabas::registry(self.table).await?;
        let waba = crate::wabas::one(numbers.as_ref(), self.waba)?;
        Ok((numbers, waba))
    }
}

/// Where `plan` and `apply` read and write: Meta's side (the Graph API client for the WABA)
/// and the WABA's apply history (the local store, or a deployment's table).
struct Target {
    admin: GraphTemplateAdmin,
    history: Arc<dyn TemplateHistory>,
    /// The numbers registry's WABA; `None` for today's one WABA.
    waba: Option<Waba>,
}

/// The settings: from the environment locally; against a deployment (`--table`), the token
/// from its secret store (`WABRIDGE_SECRETS_ARN`) and the rest from the environment. With a
/// numbers registry, the WABA's id and the token of one of its numbers, as the sync reads.
async fn target(at: &At<'_>) -> Result<Target, CliError> {
    let (numbers, waba) = at.waba().await?;
    let env = |n: &str| std::env::var(n).ok();
    let config = match (at.table, numbers.as_ref().zip(waba.as_ref())) {
        (None, None) => TemplateSyncConfig::from_env()?,
        (None, Some((numbers, w))) => {
            let stored = crate::secrets::read(at.data)?;
            let secret = |k: &str| crate::numbers::secret(stored.as_ref(), k);
            TemplateSyncConfig::for_waba(env, numbers, &w.id, secret)?
        }
        (Some(_), registry) => {
            let sdk = wabridge_aws::sdk::chain_config().await;
            let secrets = wabridge_aws::secrets::Secrets::load(sdk)
                .await
                .map_err(CliError::store("cannot read the deployment's secrets"))?;
            match registry {
                None => TemplateSyncConfig::from_lookup(|n| secrets.lookup(n))?,
                Some((numbers, w)) => {
                    let secret = |k: &str| secrets.get(k).map(str::to_string);
                    TemplateSyncConfig::for_waba(env, numbers, &w.id, secret)?
                }
            }
        }
    };
    let app_id = std::env::var(config::WHATSAPP_APP_ID)
        .ok()
        .filter(|a| !a.trim().is_empty());
    if let Some(id) = app_id
        .as_deref()
        .filter(|a| !a.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(config::ConfigError::Invalid {
            name: config::WHATSAPP_APP_ID,
            value: id.to_string(),
            expected: "the numeric Meta app id",
        }
        .into());
    }
    let history = history_store(at, waba.as_ref(), &config.waba_id).await?;
    Ok(Target {
        admin: GraphTemplateAdmin::new(config, app_id),
        history,
        waba,
    })
}

/// The apply history of `waba` (of `table_waba`, the environment's WABA id, on a deployment
/// without a numbers registry; of the implicit number locally).
async fn history_store(
    at: &At<'_>,
    waba: Option<&Waba>,
    table_waba: &str,
) -> Result<Arc<dyn TemplateHistory>, CliError> {
    let retention = wabridge_core::audit::retention(|n| std::env::var(n).ok())?;
    Ok(match at.table {
        Some(table) => {
            let id = waba.map_or(table_waba, |w| w.id.as_str());
            let history = DynamoTemplateHistory::from_env(table, id).await;
            Arc::new(history.with_retention(retention))
        }
        None => {
            let db = crate::data::open_or_create(at.data)?;
            let history = SqliteTemplateHistory::for_waba(db, crate::wabas::key(waba));
            Arc::new(history.with_retention(retention))
        }
    })
}

async fn make_plan(
    folder: &Folder,
    admin: &dyn TemplateAdmin,
    history: &dyn TemplateHistory,
    now: i64,
) -> Result<plan::Plan, CliError> {
    let remote = admin.list().await?;
    let applied = history
        .history(None, now - 30 * DAY_MS)
        .await
        .map_err(CliError::store("cannot read the template apply history"))?;
    Ok(plan::plan(&folder.locals(), &remote, &applied, now))
}

/// `wabridge templates plan [--dir D] [--waba W] [--json] [--table T]`: exits 2 when the
/// plan is not clean.
pub async fn plan(dir: &Path, at: &At<'_>, as_json: bool) -> Result<(), CliError> {
    let folder = load_checked(dir, false)?;
    let t = target(at).await?;
    let plan = make_plan(&folder, &t.admin, t.history.as_ref(), now_ms()).await?;
    if as_json {
        let mut v = json!(plan);
        if let Some(w) = &t.waba {
            v["waba_id"] = json!(w.id);
            v["numbers"] = json!(w.numbers);
        }
        println!("{v}");
    } else {
        print_waba(t.waba.as_ref());
        print!("{}", plan.render());
    }
    if plan.is_clean() {
        Ok(())
    } else {
        Err(CliError::PlanNotClean)
    }
}

/// The WABA a plan is for, above it (with a numbers registry).
fn print_waba(waba: Option<&Waba>) {
    if let Some(w) = waba {
        println!("WABA {w}");
    }
}

/// `wabridge templates apply [--dir D] [--waba W] [--allow-delete] [--by WHO] [--table T]`.
pub async fn apply(
    dir: &Path,
    at: &At<'_>,
    allow_delete: bool,
    by: Option<String>,
) -> Result<(), CliError> {
    let folder = load_checked(dir, false)?;
    let t = target(at).await?;
    let (admin, history) = (&t.admin, t.history.as_ref());
    let now = now_ms();
    let plan = make_plan(&folder, admin, history, now).await?;
    print_waba(t.waba.as_ref());
    print!("{}", plan.render());
    let samples: BTreeMap<(String, String), Sample> = folder
        .files
        .iter()
        .flat_map(|f| f.samples.clone())
        .collect();
    let options = ApplyOptions {
        allow_delete,
        applied_by: by.unwrap_or_else(|| wabridge_core::audit::CLI_ACTOR.to_string()),
        now_ms: now,
    };
    let report = apply::apply(&plan, &folder.locals(), &samples, admin, history, &options)
        .await
        .map_err(CliError::store("cannot record the template apply history"))?;
    println!();
    for a in &report.applied {
        let id = a.template_id.as_deref().unwrap_or("-");
        let done = match a.action.as_str() {
            "create" => "created",
            "edit" => "edited",
            _ => "deleted",
        };
        println!("{done} {} [{}]: id {id}", a.name, a.language);
    }
    for s in &report.skipped {
        println!(
            "skipped {} {} [{}]: {}",
            s.action, s.name, s.language, s.reason
        );
    }
    for f in &report.failed {
        println!(
            "failed {} {} [{}]: {}",
            f.action, f.name, f.language, f.reason
        );
    }
    if !report.applied.is_empty() {
        let mut subject = format!("{} changes", report.applied.len());
        if let Some(w) = &t.waba {
            subject.push_str(&format!(" in WABA {}", w.id));
        }
        let action = wabridge_core::audit::action::TEMPLATE_APPLY;
        match at.table {
            Some(table) => crate::audit::note_in_table(table, action, Some(&subject)).await?,
            None => {
                let db = crate::data::open_or_create(at.data)?;
                crate::audit::note_local(&db, action, Some(&subject)).await?;
            }
        }
    }
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::TemplatesNotApplied {
            failed: report.failed.len(),
        })
    }
}

/// `wabridge templates history NAME [--waba W] [--json] [--table T]`: what `apply` did to it
/// in the WABA, oldest first.
pub async fn show_history(at: &At<'_>, name: &str, as_json: bool) -> Result<(), CliError> {
    let (_, waba) = at.waba().await?;
    let settings = config::Settings::new(|n| std::env::var(n).ok());
    let table_waba = match (at.table, &waba) {
        (Some(_), None) => settings.required(
            config::WHATSAPP_BUSINESS_ACCOUNT_ID,
            "a deployment's template history is kept per WABA",
        )?,
        _ => String::new(),
    };
    let changes = history_store(at, waba.as_ref(), &table_waba)
        .await?
        .history(Some(name), 0)
        .await
        .map_err(CliError::store("cannot read the template apply history"))?;
    for c in &changes {
        if as_json {
            println!("{}", json!(c));
        } else {
            println!(
                "{}  {:<6} {} [{}]  id {}  by {}  content {}",
                wabridge_core::clock::rfc3339(c.applied_at_ms),
                c.action,
                c.name,
                c.language,
                c.template_id.as_deref().unwrap_or("-"),
                c.applied_by,
                &c.content_hash.get(..12).unwrap_or("-"),
            );
        }
    }
    if changes.is_empty() {
        eprintln!("no change applied to {name} is on record");
    }
    Ok(())
}
