//! `wabridge`: the local gateway. Every function in one process over an embedded SQLite store,
//! with no AWS account and no configuration needed.

mod attribution;
mod audit;
mod conversation_report;
mod conversations;
mod crm_sync;
mod data;
mod destinations;
mod erase;
mod error;
mod health;
mod loadgen;
mod media;
mod media_direct;
mod media_upload;
mod numbers;
mod numbers_table;
mod secrets;
mod sends;
mod serve;
mod template_files;
mod templates;
mod tools;
mod wiring;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wabridge_core::config;

use crate::error::CliError;

#[derive(Parser)]
#[command(
    name = "wabridge",
    version,
    about = "WhatsApp Business Platform → CRM gateway, local edition"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataArg {
    /// Data directory (database, dev secrets).
    #[arg(long, env = config::WABRIDGE_DATA, default_value = ".wabridge")]
    data: PathBuf,
}

#[derive(Subcommand)]
enum CrmAction {
    /// Verify the credentials and the custom fields the mapping needs against the live CRM,
    /// and name whatever is missing (exit status 1 when something is).
    Check,
}

#[derive(Subcommand)]
enum Command {
    /// Run the webhook endpoint and the queue consumers.
    Serve {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        #[command(flatten)]
        data: DataArg,
    },
    /// Print the X-Hub-Signature-256 header Meta would send for FILE.
    Sign {
        file: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
    /// Sign and POST a payload file, or every .json file of a folder.
    Post {
        target: PathBuf,
        #[arg(long, default_value = "http://127.0.0.1:8080/webhook")]
        url: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Print the local CRM records: kind and id of each, or with --json one JSON object per line.
    Records {
        /// One JSON object per line (each with "kind").
        #[arg(long)]
        json: bool,
        /// Only records of this kind.
        #[arg(long)]
        kind: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// Conversations (a thread between a contact and a business number) in the local store.
    Conversations {
        #[command(subcommand)]
        action: ConversationsAction,
    },
    /// Tracked click-to-chat links (wa.me with a reference code, QR codes).
    Link {
        #[command(subcommand)]
        action: LinkAction,
    },
    /// Reports over the local store (or a deployment's DynamoDB table).
    Report {
        #[command(subcommand)]
        what: ReportWhat,
    },
    /// Send a WhatsApp template through a gateway (POST /sends).
    Send {
        #[command(flatten)]
        send: sends::SendArgs,
        #[command(flatten)]
        data: DataArg,
    },
    /// Record an opt-in or opt-out through a gateway (POST /consents).
    Consent {
        #[command(flatten)]
        consent: sends::ConsentArgs,
        #[command(flatten)]
        data: DataArg,
    },
    /// The template registry: sync it from Meta's template list, or list what it knows.
    Templates {
        #[command(subcommand)]
        action: TemplatesAction,
    },
    /// The audit trail: every write through the API or the CLI (who, what, which record).
    Audit {
        /// Period: 7d, 12h, 2w, or a date (2026-11-01).
        #[arg(long, default_value = "7d")]
        since: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// At most this many lines.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Read a deployment's DynamoDB table (or WABRIDGE_TABLE) instead of the local store.
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// Erase a person: identities, consents, sends, windows, attribution, queued events; keep
    /// a salted-hash opt-out tombstone; tell the CRM with an `erasure` record. Prints JSON.
    Erase {
        /// A phone number (any spelling), a BSUID (CC.…) or a contact id.
        #[arg(long)]
        contact: String,
        /// Erase from a deployment's DynamoDB table (or WABRIDGE_TABLE) instead of the local
        /// store; the CRM's erasure event goes on EVENTS_QUEUE_URL.
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// The CRM named by CRM_KIND (with its settings from the environment).
    Crm {
        #[command(subcommand)]
        action: CrmAction,
    },
    /// The numbers registry (WABRIDGE_NUMBERS; docs/numbers.md).
    Numbers {
        #[command(subcommand)]
        action: NumbersAction,
    },
    /// List or redrive dead letters, of the local store or of SQS.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Queue and store counts as JSON.
    #[command(hide = true)]
    Stats {
        #[command(flatten)]
        data: DataArg,
    },
    /// Write N signed bodies with unique message ids for the load test.
    #[command(hide = true)]
    Loadgen {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum ConversationsAction {
    /// The newest conversations: a table, or with --json one record per line.
    List {
        /// Only this contact's (its contact id).
        #[arg(long)]
        contact: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// One conversation as JSON.
    Show {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Closes a conversation (close_reason explicit); `wabridge serve` sends it to the CRM.
    Close {
        id: String,
        #[command(flatten)]
        data: DataArg,
    },
    /// Adds tags from the mapping's `[tags]` catalogue (or removes them with `--remove`);
    /// `wabridge serve` sends it to the CRM.
    Tag {
        id: String,
        #[arg(required = true)]
        tags: Vec<String>,
        /// Removes these tags instead of adding them.
        #[arg(long)]
        remove: bool,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum NumbersAction {
    /// Every number: label, ids, token key and token (masked), CRM target, send rate.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// A deployment's registry: the items of its DynamoDB table (or WABRIDGE_TABLE).
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// Write a registry file's numbers into a deployment's table, checked first.
    Add(numbers_table::AddArgs),
    /// Remove a number from a deployment's table.
    Remove(numbers_table::RemoveArgs),
}

#[derive(Subcommand)]
enum LinkAction {
    /// Create a link; prints it as JSON (code, url, text, expires_at, UTMs).
    Create {
        #[command(flatten)]
        link: attribution::LinkArgs,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
enum TemplatesAction {
    /// Read every template from the Graph API (WHATSAPP_ACCESS_TOKEN,
    /// WHATSAPP_BUSINESS_ACCOUNT_ID) into the local registry; prints a JSON report.
    Sync {
        #[command(flatten)]
        data: DataArg,
    },
    /// Every known template and language: review status, Meta's reason, category, quality.
    #[command(alias = "list")]
    Status {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArg,
    },
    /// Parse and validate the template files, offline (for CI on every pull request).
    Check {
        #[command(flatten)]
        dir: TemplatesDir,
        /// One JSON object per finding.
        #[arg(long)]
        json: bool,
    },
    /// Compare the template files with Meta's templates; exits 2 when they differ or a
    /// template awaits review, was rejected, paused or recategorised.
    Plan {
        #[command(flatten)]
        dir: TemplatesDir,
        /// The plan as one JSON object.
        #[arg(long)]
        json: bool,
        /// Keep the apply history in a deployment's DynamoDB table (or WABRIDGE_TABLE), the
        /// token from its secret store (WABRIDGE_SECRETS_ARN).
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// Submit the plan's creates and edits to Meta (deletes with --allow-delete).
    Apply {
        #[command(flatten)]
        dir: TemplatesDir,
        /// Also delete templates no file names.
        #[arg(long)]
        allow_delete: bool,
        /// Who applies, for the history (a CI job, a handle); default `cli`.
        #[arg(long)]
        by: Option<String>,
        /// Against a deployment: its DynamoDB table (or WABRIDGE_TABLE) and secret store.
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// What `apply` did to a template: action, id, content hash, who, when.
    History {
        name: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Read a deployment's DynamoDB table (or WABRIDGE_TABLE).
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(clap::Args, Clone)]
struct TemplatesDir {
    /// The template files folder (default: WABRIDGE_TEMPLATES, else `templates`).
    #[arg(long)]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ReportWhat {
    /// Conversations, leads, conversions and value per source / medium / campaign.
    Attribution {
        /// Period: 30d, 12h, 2w, or a date (2026-11-01).
        #[arg(long, default_value = "30d")]
        since: String,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Report over this DynamoDB table (a deployment's `Table`; or WABRIDGE_TABLE) instead
        /// of the local store. AWS credentials, region and `AWS_ENDPOINT_URL` come from the
        /// standard AWS environment.
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// Conversations opened and closed, first-response p50/p90, SLA breach rate, outcome
    /// shares and conversion rate (docs/conversations.md#report).
    Conversations {
        /// Period: 30d, 12h, 2w, or a date (2026-11-01).
        #[arg(long, default_value = "30d")]
        since: String,
        /// Rows per agent, tag, outcome, number or origin (default: one row).
        #[arg(long)]
        by: Option<String>,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Report over this DynamoDB table (or WABRIDGE_TABLE) instead of the local store.
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
    /// Business alerts: quality per number, templates not APPROVED, account restrictions,
    /// the failed-send rate, SLA breaches and backlog (local store).
    Health {
        /// Look-back of the counters (failed sends, SLA breaches): 24h, 7d, ...
        #[arg(long, default_value = "24h")]
        window: String,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        #[command(flatten)]
        data: DataArg,
    },
}

/// Which queues `dead-letters` works on: the local store (default), or SQS when `--dlq-url`
/// is given or `EVENTS_DLQ_URL` / `SENDS_DLQ_URL` are set (AWS credentials, region and
/// `AWS_ENDPOINT_URL` come from the standard AWS environment).
#[derive(clap::Args, Clone)]
struct DeadLetterQueues {
    /// Only this queue: `events` or `sends` (local: any queue name; default all).
    #[arg(long)]
    queue: Option<String>,
    /// SQS: URL of the source queue that redrive sends back to (or EVENTS_QUEUE_URL /
    /// SENDS_QUEUE_URL).
    #[arg(long)]
    queue_url: Option<String>,
    /// SQS: URL of its dead-letter queue (or EVENTS_DLQ_URL / SENDS_DLQ_URL).
    #[arg(long)]
    dlq_url: Option<String>,
    #[command(flatten)]
    data: DataArg,
}

impl DeadLetterQueues {
    fn target(self) -> Result<tools::DeadLetterTarget, CliError> {
        Ok(
            match tools::sqs_pairs(self.queue.as_deref(), self.queue_url, self.dlq_url)? {
                Some(pairs) => tools::DeadLetterTarget::Sqs(pairs),
                None => tools::DeadLetterTarget::Local {
                    data: self.data.data,
                    queue: self.queue,
                },
            },
        )
    }
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Dead letters: queue, id, receive count, reason and a masked preview of the body.
    List {
        /// One JSON object per line (queue, id, receive_count, reason, dead_lettered_at,
        /// preview, body).
        #[arg(long)]
        json: bool,
        /// At most this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        queues: DeadLetterQueues,
    },
    /// Move dead letters back to their source queue: one by id, or all.
    Redrive {
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        queues: DeadLetterQueues,
    },
}

/// Parses the command line and runs the command; on failure prints the error and each of its
/// causes on stderr (see [`error::report`]) and exits with status 1 (2 for a `templates plan`
/// that is not clean).
fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ CliError::PlanNotClean) => {
            // 2, like `terraform plan -detailed-exitcode`: CI tells "differs" from "broke".
            eprintln!("{}", error::report(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{}", error::report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs one command.
async fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve { addr, data } => {
            serve::run(serve::ServeArgs {
                addr,
                data: data.data,
            })
            .await
        }
        Command::Sign { file, data } => tools::sign(&file, &data.data),
        Command::Post { target, url, data } => tools::post(&target, &url, &data.data).await,
        Command::Records { json, kind, data } => {
            tools::records(&data.data, json, kind.as_deref()).await
        }
        Command::Conversations { action } => match action {
            ConversationsAction::List {
                contact,
                limit,
                json,
                data,
            } => conversations::list(&data.data, contact, limit, json).await,
            ConversationsAction::Show { id, data } => conversations::show(&data.data, &id).await,
            ConversationsAction::Close { id, data } => conversations::close(&data.data, &id).await,
            ConversationsAction::Tag {
                id,
                tags,
                remove,
                data,
            } => conversations::tag(&data.data, &id, &tags, remove).await,
        },
        Command::Link {
            action: LinkAction::Create { link, data },
        } => attribution::link_create(&data.data, link).await,
        Command::Report {
            what:
                ReportWhat::Attribution {
                    since,
                    format,
                    table,
                    data,
                },
        } => attribution::report(&data.data, table.as_deref(), &since, &format).await,
        Command::Report {
            what:
                ReportWhat::Conversations {
                    since,
                    by,
                    format,
                    table,
                    data,
                },
        } => {
            let (table, by) = (table.as_deref(), by.as_deref());
            conversation_report::report(&data.data, table, &since, by, &format).await
        }
        Command::Report {
            what:
                ReportWhat::Health {
                    window,
                    format,
                    data,
                },
        } => health::report(&data.data, &window, &format).await,
        Command::Numbers { action } => match action {
            NumbersAction::List {
                json,
                table: Some(table),
                ..
            } => numbers_table::list(&table, json).await,
            NumbersAction::List { json, data, .. } => numbers::list(&data.data, json),
            NumbersAction::Add(args) => numbers_table::add(args).await,
            NumbersAction::Remove(args) => numbers_table::remove(args).await,
        },
        Command::DeadLetters {
            action:
                DeadLetterAction::List {
                    json,
                    limit,
                    queues,
                },
        } => tools::dead_letters_list(&queues.target()?, json, limit).await,
        Command::DeadLetters {
            action: DeadLetterAction::Redrive { id, queues },
        } => tools::dead_letters_redrive(&queues.target()?, id.as_deref()).await,
        Command::Templates {
            action: TemplatesAction::Sync { data },
        } => templates::sync(&data.data).await,
        Command::Templates {
            action: TemplatesAction::Status { json, data },
        } => templates::list(&data.data, json).await,
        Command::Templates {
            action: TemplatesAction::Check { dir, json },
        } => template_files::check(&template_files::folder(dir.dir), json),
        Command::Templates {
            action:
                TemplatesAction::Plan {
                    dir,
                    json,
                    table,
                    data,
                },
        } => {
            let dir = template_files::folder(dir.dir);
            template_files::plan(&dir, &data.data, table.as_deref(), json).await
        }
        Command::Templates {
            action:
                TemplatesAction::Apply {
                    dir,
                    allow_delete,
                    by,
                    table,
                    data,
                },
        } => {
            let dir = template_files::folder(dir.dir);
            template_files::apply(&dir, &data.data, table.as_deref(), allow_delete, by).await
        }
        Command::Templates {
            action:
                TemplatesAction::History {
                    name,
                    json,
                    table,
                    data,
                },
        } => template_files::show_history(&data.data, table.as_deref(), &name, json).await,
        Command::Send { send, data } => sends::send(send, &data.data).await,
        Command::Consent { consent, data } => sends::consent(consent, &data.data).await,
        Command::Audit {
            since,
            json,
            limit,
            table,
            data,
        } => audit::list(&data.data, table.as_deref(), &since, json, limit).await,
        Command::Erase {
            contact,
            table,
            data,
        } => erase::run(&data.data, &contact, table.as_deref()).await,
        Command::Crm {
            action: CrmAction::Check,
        } => crm_sync::check().await,
        Command::Stats { data } => tools::stats(&data.data).await,
        Command::Loadgen { count, out, data } => loadgen::loadgen(count, &out, &data.data),
    }
}
