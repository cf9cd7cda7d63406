//! The command line: what `wabridge` takes (clap), kept apart from what each command does.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use wabridge_core::config;

use crate::error::CliError;
use crate::{attribution, numbers_discover, numbers_table, sends, tools};

#[derive(Parser)]
#[command(
    name = "wabridge",
    version,
    about = "WhatsApp Business Platform → CRM gateway, local edition"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct DataArg {
    /// Data directory (database, dev secrets).
    #[arg(long, env = config::WABRIDGE_DATA, default_value = ".wabridge")]
    pub(crate) data: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum CrmAction {
    /// Verify the credentials and the custom fields the mapping needs against the live CRM,
    /// and name whatever is missing (exit status 1 when something is). Kommo with OAuth keeps
    /// the rotated refresh token in the data directory's database, where `serve` finds it.
    Check {
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Send a destination again, as new deliveries, what it was delivered in a period (a bot
    /// that lost its state; docs/destinations.md#replay). Prints how many were enqueued.
    Replay {
        /// The destination's `name` in the registry file (WABRIDGE_NUMBERS).
        #[arg(long)]
        destination: String,
        /// Start of the period: 2h, 7d, 30m, or a date (2026-11-01).
        #[arg(long)]
        since: String,
        /// End of the period (default now): 1h, 2d, or a date.
        #[arg(long)]
        until: Option<String>,
        /// Replay from a deployment's delivery log in its DynamoDB table (or WABRIDGE_TABLE)
        /// instead of the local store; needs --queue-url.
        #[arg(long, env = "WABRIDGE_TABLE")]
        table: Option<String>,
        /// With --table: the destination's SQS queue (the stack's DestinationNQueueUrl output).
        #[arg(long)]
        queue_url: Option<String>,
        #[command(flatten)]
        data: DataArg,
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
        /// Business numbers the bodies alternate between (1 or 2; bench/load/routing.sh).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        numbers: u8,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConversationsAction {
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
pub(crate) enum NumbersAction {
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
    /// List each WABA's numbers from the Graph API: a `[[number]]` entry for each one the
    /// registry lacks; warnings for callback overrides that send webhooks elsewhere.
    Discover(numbers_discover::DiscoverArgs),
}

#[derive(Subcommand)]
pub(crate) enum LinkAction {
    /// Create a link; prints it as JSON (code, url, text, expires_at, UTMs).
    Create {
        #[command(flatten)]
        link: attribution::LinkArgs,
        #[command(flatten)]
        data: DataArg,
    },
}

#[derive(Subcommand)]
pub(crate) enum TemplatesAction {
    /// Read every template from the Graph API (WHATSAPP_ACCESS_TOKEN,
    /// WHATSAPP_BUSINESS_ACCOUNT_ID; with a numbers registry, every WABA of it) into the local
    /// registries; prints a JSON report.
    Sync {
        #[command(flatten)]
        data: DataArg,
    },
    /// Every known template and language: review status, Meta's reason, category, quality;
    /// with a numbers registry, every WABA's (led by the WABA and its numbers' labels).
    #[command(alias = "list")]
    Status {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only this WABA of the numbers registry: its id or the label of one of its numbers.
        #[arg(long)]
        waba: Option<String>,
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
        /// The WABA of the numbers registry the files are for: its id or the label of one of
        /// its numbers (required when the registry has several WABAs).
        #[arg(long)]
        waba: Option<String>,
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
        /// The WABA of the numbers registry the files are for: its id or the label of one of
        /// its numbers (required when the registry has several WABAs).
        #[arg(long)]
        waba: Option<String>,
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
        /// The WABA of the numbers registry whose history to show: its id or the label of one of
        /// its numbers (required when the registry has several WABAs).
        #[arg(long)]
        waba: Option<String>,
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
pub(crate) struct TemplatesDir {
    /// The template files folder (default: WABRIDGE_TEMPLATES, else `templates`).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum ReportWhat {
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
        /// Only this WABA's templates (its id or a number label of the numbers registry).
        #[arg(long)]
        waba: Option<String>,
        #[command(flatten)]
        data: DataArg,
    },
}

/// Which queues `dead-letters` works on: the local store (default), or SQS when `--dlq-url`
/// is given or `EVENTS_DLQ_URL` / `SENDS_DLQ_URL` are set (AWS credentials, region and
/// `AWS_ENDPOINT_URL` come from the standard AWS environment).
#[derive(clap::Args, Clone)]
pub(crate) struct DeadLetterQueues {
    /// Only this queue: `events` or `sends` (local: any queue name; default all).
    #[arg(long)]
    pub(crate) queue: Option<String>,
    /// SQS: URL of the source queue that redrive sends back to (or EVENTS_QUEUE_URL /
    /// SENDS_QUEUE_URL).
    #[arg(long)]
    pub(crate) queue_url: Option<String>,
    /// SQS: URL of its dead-letter queue (or EVENTS_DLQ_URL / SENDS_DLQ_URL).
    #[arg(long)]
    pub(crate) dlq_url: Option<String>,
    #[command(flatten)]
    pub(crate) data: DataArg,
}

impl DeadLetterQueues {
    pub(crate) fn target(self) -> Result<tools::DeadLetterTarget, CliError> {
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
pub(crate) enum DeadLetterAction {
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
