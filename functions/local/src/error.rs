//! The one error type of the `wabridge` CLI. Each variant says what the command was doing and
//! keeps the error that stopped it as its source; `main` prints the message, then every source
//! on its own `caused by:` line, and exits non-zero.

use std::error::Error;
use std::net::SocketAddr;
use std::path::PathBuf;

use wabridge_attribution::qr::QrError;
use wabridge_core::attribution::link::LinkError;
use wabridge_core::error::StoreError;
use wabridge_core::mapping::MappingFileError;
use wabridge_core::sends::template_sync::SyncError;
use wabridge_core::{attribution, config};

/// Why a `wabridge` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is missing or does not parse (the source names the variable).
    #[error("invalid or missing setting")]
    Config(#[from] config::ConfigError),
    /// The CRM client named by `CRM_KIND` cannot be built.
    #[error("cannot set up the CRM named by {}", config::CRM_KIND)]
    Crm(#[from] wabridge_crm::ConfigError),
    /// `crm check` could not run (settings, or a CRM without a schema).
    #[error("cannot check the CRM named by {}", config::CRM_KIND)]
    CrmCheck(#[from] wabridge_crm::check::CheckError),
    /// `crm check` ran and found things missing (printed above).
    #[error("the CRM lacks {missing} thing(s) wabridge needs (listed above)")]
    CrmIncomplete { missing: usize },
    /// The mapping file (`WABRIDGE_MAPPING`, or the CRM's example) cannot be used.
    #[error("cannot load the CRM mapping ({})", config::WABRIDGE_MAPPING)]
    Mapping(#[from] MappingFileError),
    /// The numbers registry (`WABRIDGE_NUMBERS`) does not parse, repeats a number or names a
    /// secret that is not there (the message names the file, line and field).
    #[error(transparent)]
    Numbers(#[from] wabridge_core::numbers::NumbersError),
    /// A number's CRM target (its kind, settings or mapping) cannot be used; `at` names the
    /// registry file, line and number.
    #[error("{at}: cannot set up its CRM target")]
    NumberTarget {
        at: String,
        #[source]
        source: Box<CliError>,
    },
    /// `numbers discover` has no token for a WABA (`key` names where it looked; never the
    /// token).
    #[error(
        "no token for WABA {waba}: {key} is not set (an environment variable, or an entry of `tokens` in the data dir's secrets.json)"
    )]
    NoToken { waba: String, key: String },
    /// `numbers discover` could not read a WABA; the source carries Meta's message.
    #[error("cannot {what} of WABA {waba}")]
    Discover {
        what: &'static str,
        waba: String,
        #[source]
        source: wabridge_graph::phone_numbers::ReadError,
    },
    /// The attribution settings file (`WABRIDGE_ATTRIBUTION`) cannot be used.
    #[error(
        "cannot load the attribution settings ({})",
        config::WABRIDGE_ATTRIBUTION
    )]
    Attribution(#[from] attribution::ConfigError),

    /// A reading command found no database in the data directory (it never creates one).
    #[error(
        "no database at {} (start `wabridge serve --data {}` first)",
        path.display(),
        data.display()
    )]
    NoDatabase { path: PathBuf, data: PathBuf },
    /// The database file exists (or was to be created) but cannot be opened.
    #[error("cannot open the database {}", path.display())]
    OpenDatabase {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    /// A store (the SQLite database, SQS, DynamoDB) failed; `context` says what was asked of it.
    #[error("{context}")]
    Store {
        context: String,
        #[source]
        source: StoreError,
    },

    /// A file or folder could not be read, written, created or listed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// `read`, `write`, `create` or `list`.
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The command's output could not be written.
    #[error("cannot write to stdout")]
    Stdout(#[source] std::io::Error),
    /// Something could not be encoded as JSON; `what` names it.
    #[error("cannot encode {what} as JSON")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The dev secrets file exists but does not parse. `problem` says where, never what the
    /// file holds (`redact::json_problem`).
    #[error("{} is not a valid secrets file: {problem}", path.display())]
    SecretsFile { path: PathBuf, problem: String },
    /// `sign`, `post` and `loadgen` need the app secret: from the environment or the data dir.
    #[error(
        "no app secret: set {} or run `wabridge serve --data {}` once to generate {}",
        config::WHATSAPP_APP_SECRET,
        data.display(),
        path.display()
    )]
    NoAppSecret { data: PathBuf, path: PathBuf },
    /// The app secret is set but empty.
    #[error("the app secret is empty")]
    EmptyAppSecret,
    /// `send` and `consent` need the gateway's API key.
    #[error("no API key: pass --api-key or set {}", config::WABRIDGE_API_KEY)]
    NoApiKey,

    /// A command-line argument is missing, contradictory or does not parse.
    #[error("{}", argument_message(flag, problem))]
    Argument {
        /// The flag(s) or argument at fault, as typed (`--since`, `TARGET`).
        flag: &'static str,
        problem: String,
    },
    /// `link create` options that do not make a valid link.
    #[error("invalid link ({flag})")]
    Link {
        /// The option that sets the field the source names.
        flag: &'static str,
        #[source]
        source: LinkError,
    },
    /// A dead-letter queue URL is set without the source queue redrive sends back to.
    #[error("{dlq_var} is set but {queue_var} is not: redrive needs both")]
    HalfSqsPair {
        dlq_var: &'static str,
        queue_var: &'static str,
    },
    /// `erase --contact` named nobody the store knows (the contact is not repeated: it may be
    /// a phone number).
    #[error("no contact with this phone number, BSUID or id")]
    NoContact,
    /// `conversations show` named a conversation the store does not have.
    #[error("no conversation with id {id}")]
    NoConversation { id: String },
    /// `conversations tag` was refused (the message names the field, the value and the
    /// catalogue).
    #[error("{0}")]
    ConversationRefused(String),
    /// `dead-letters redrive --id` named a letter that is not there.
    #[error("no dead letter with id {id}")]
    NoDeadLetter { id: String },

    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    /// A gateway (or any URL) could not be reached, or the answer could not be read.
    #[error("request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// A gateway answered, with a status other than 2xx.
    #[error("{url} answered {status}: {}", body.trim())]
    HttpStatus {
        url: String,
        status: reqwest::StatusCode,
        body: String,
    },
    /// One payload file of `post` was not accepted.
    #[error("{} was not accepted", file.display())]
    Payload {
        file: PathBuf,
        #[source]
        source: Box<CliError>,
    },
    /// Several payload files of `post` were not accepted (each was printed as it failed).
    #[error("{failed} of {total} payloads were not accepted")]
    Payloads { failed: usize, total: usize },

    /// A QR code of `link create` could not be drawn.
    #[error("cannot draw the QR code")]
    Qr(#[from] QrError),
    /// `templates sync`, or Meta's side of `plan` and `apply`, stopped.
    #[error("the Graph API's template endpoints failed")]
    TemplateSync(#[from] SyncError),
    /// `templates check | plan | apply` found errors in the files (each was printed).
    #[error("{errors} error(s) in the template files of {}", dir.display())]
    TemplateFiles { dir: PathBuf, errors: usize },
    /// `templates plan` found differences or templates awaiting a person (exit status 2).
    #[error("the template files differ from Meta, or a template needs attention (see the plan)")]
    PlanNotClean,
    /// `templates apply` could not make some changes (each was printed with Meta's reason).
    #[error("{failed} template change(s) failed; run `wabridge templates apply` again once fixed")]
    TemplatesNotApplied { failed: usize },

    /// The async runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] std::io::Error),
    /// `serve` could not bind its address.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// `serve` stopped on a server error.
    #[error("server error")]
    Server(#[source] std::io::Error),
}

/// The message of [`CliError::Argument`]: the problem, prefixed with the flag unless it names it.
fn argument_message(flag: &str, problem: &str) -> String {
    if problem.contains(flag) {
        problem.to_string()
    } else {
        format!("{flag}: {problem}")
    }
}

impl CliError {
    /// `map_err` adapter: a store failure with what was asked of the store.
    pub fn store(context: impl Into<String>) -> impl FnOnce(StoreError) -> CliError {
        let context = context.into();
        move |source| CliError::Store { context, source }
    }

    /// `map_err` adapter: an I/O failure on `path` (`action`: read, write, create, list).
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> CliError {
        let path = path.into();
        move |source| CliError::Io {
            action,
            path,
            source,
        }
    }

    /// A bad command-line argument.
    pub fn argument(flag: &'static str, problem: impl std::fmt::Display) -> CliError {
        CliError::Argument {
            flag,
            problem: problem.to_string(),
        }
    }

    /// The link option behind a [`LinkError`]'s field.
    pub fn link(source: LinkError) -> CliError {
        let flag = match source.field {
            "utm_source" => "--utm-source",
            "utm_medium" => "--utm-medium",
            "utm_campaign" => "--utm-campaign",
            "utm_content" => "--utm-content",
            "utm_term" => "--utm-term",
            "gclid" => "--gclid",
            "fbclid" => "--fbclid",
            "landing_page" => "--landing-page",
            "prefilled_text" => "--text",
            "phone_number" => "--phone",
            "expires_in_days" => "--expires-in-days",
            _ => "link options",
        };
        CliError::Link { flag, source }
    }
}

/// `err` and each of its sources, one per line: `error: …` then `caused by: …`.
pub fn report(err: &dyn Error) -> String {
    let mut out = format!("error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&format!("\ncaused by: {cause}"));
        source = cause.source();
    }
    out
}

/// `err` and its sources on one line, joined by `: ` (for a line among others, as `post`
/// prints per file).
pub fn one_line(err: &dyn Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_path_then_each_cause() {
        let err = CliError::io("read", "/nowhere/payload.json")(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "No such file or directory",
        ));
        assert_eq!(
            report(&err),
            "error: cannot read /nowhere/payload.json\ncaused by: No such file or directory"
        );
    }

    #[test]
    fn nested_causes_are_printed_in_order() {
        let err = CliError::Payload {
            file: "a.json".into(),
            source: Box::new(CliError::Store {
                context: "cannot redrive dlq".into(),
                source: StoreError::Unavailable("throttled".into()),
            }),
        };
        assert_eq!(
            report(&err),
            "error: a.json was not accepted\ncaused by: cannot redrive dlq\n\
             caused by: store unavailable: throttled"
        );
        assert_eq!(
            one_line(&err),
            "a.json was not accepted: cannot redrive dlq: store unavailable: throttled"
        );
    }

    #[test]
    fn a_setting_error_keeps_the_variable_in_its_cause() {
        let err = CliError::from(config::ConfigError::Missing {
            name: config::WHATSAPP_BUSINESS_ACCOUNT_ID,
            consequence: "templates cannot sync",
        });
        let text = report(&err);
        assert!(text.starts_with("error: invalid or missing setting\ncaused by: "));
        assert!(
            text.contains(config::WHATSAPP_BUSINESS_ACCOUNT_ID),
            "{text}"
        );
    }

    #[test]
    fn an_argument_error_names_the_flag_once() {
        let named = CliError::argument("--since", "--since \"soon\": unit must be m, h, d or w");
        assert_eq!(
            named.to_string(),
            "--since \"soon\": unit must be m, h, d or w"
        );
        let unnamed = CliError::argument("--format", "unknown format \"x\"");
        assert_eq!(unnamed.to_string(), "--format: unknown format \"x\"");
    }

    #[test]
    fn a_link_error_names_the_cli_option() {
        let err = CliError::link(LinkError {
            field: "phone_number",
            problem: "is required".into(),
        });
        assert_eq!(
            report(&err),
            "error: invalid link (--phone)\ncaused by: phone_number: is required"
        );
    }
}
