//! `wabridge`: the local gateway. Every function in one process over an embedded SQLite store,
//! with no AWS account and no configuration needed.

mod attribution;
mod audit;
mod cli;
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
mod numbers_discover;
mod numbers_table;
mod replay;
mod secrets;
mod sends;
mod serve;
mod template_files;
mod templates;
mod tools;
mod wabas;
mod wiring;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::*;
use crate::error::CliError;

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
                    waba,
                    data,
                },
        } => health::report(&data.data, &window, &format, waba.as_deref()).await,
        Command::Numbers { action } => match action {
            NumbersAction::List {
                json,
                table: Some(table),
                ..
            } => numbers_table::list(&table, json).await,
            NumbersAction::List { json, data, .. } => numbers::list(&data.data, json),
            NumbersAction::Add(args) => numbers_table::add(args).await,
            NumbersAction::Remove(args) => numbers_table::remove(args).await,
            NumbersAction::Discover(args) => numbers_discover::discover(args).await,
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
            action: TemplatesAction::Status { json, waba, data },
        } => templates::list(&data.data, waba.as_deref(), json).await,
        Command::Templates {
            action: TemplatesAction::Check { dir, json },
        } => template_files::check(&template_files::folder(dir.dir), json),
        Command::Templates {
            action:
                TemplatesAction::Plan {
                    dir,
                    waba,
                    json,
                    table,
                    data,
                },
        } => {
            let dir = template_files::folder(dir.dir);
            let at = template_files::At::new(&data.data, table.as_deref(), waba.as_deref());
            template_files::plan(&dir, &at, json).await
        }
        Command::Templates {
            action:
                TemplatesAction::Apply {
                    dir,
                    waba,
                    allow_delete,
                    by,
                    table,
                    data,
                },
        } => {
            let dir = template_files::folder(dir.dir);
            let at = template_files::At::new(&data.data, table.as_deref(), waba.as_deref());
            template_files::apply(&dir, &at, allow_delete, by).await
        }
        Command::Templates {
            action:
                TemplatesAction::History {
                    name,
                    waba,
                    json,
                    table,
                    data,
                },
        } => {
            let at = template_files::At::new(&data.data, table.as_deref(), waba.as_deref());
            template_files::show_history(&at, &name, json).await
        }
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
            action: CrmAction::Check { data },
        } => crm_sync::check(&data.data).await,
        Command::Replay {
            destination,
            since,
            until,
            table,
            queue_url,
            data,
        } => {
            let period = replay::Period::parse(&since, until.as_deref())?;
            match table.filter(|t| !t.trim().is_empty()) {
                Some(table) => {
                    replay::replay_aws(&table, queue_url.as_deref(), &destination, period).await
                }
                None if queue_url.is_some() => Err(CliError::argument(
                    "--queue-url",
                    "--queue-url replays a deployment's destination: give its --table too",
                )),
                None => replay::replay(&data.data, &destination, period).await,
            }
        }
        Command::Stats { data } => tools::stats(&data.data).await,
        Command::Loadgen {
            count,
            out,
            numbers,
            data,
        } => loadgen::loadgen(count, numbers, &out, &data.data),
    }
}
