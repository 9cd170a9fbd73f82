//! `c123-live`: the command line. Everything it runs lives in the library.

use anyhow::Context;
use clap::Parser;

use c123_live::config::{resolve_store, Cli, Command, FileConfig, LogFormat, ServeConfig};
use c123_live::merge::{MergeSettings, Outcome, XmlTarget};
use c123_live::store::Store;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = FileConfig::load(cli.config.as_deref())?;
    init_logging(cli.log_format.or(file.log_format).unwrap_or_default());
    match cli.command {
        Command::Serve(args) => {
            let config = ServeConfig::resolve(&args, &file)?;
            c123_live::daemon::serve(config).await?;
        }
        Command::Import {
            file: path,
            common,
            event,
        } => {
            let (db, sync) = resolve_store(&common, &file)?;
            let store = Store::open(&db, sync)
                .with_context(|| format!("opening database {}", db.display()))?;
            let (merge, join) = c123_live::merge::start(store, MergeSettings::default())?;
            let outcome = c123_live::ingest::import_file(
                &merge,
                &path,
                XmlTarget::ByExport { event_id: event },
            )
            .await;
            merge.shutdown().await;
            join.await.context("merge loop")?;
            match outcome? {
                Outcome::XmlImported {
                    event_id,
                    created_event,
                    counts,
                    rows_changed,
                } => {
                    println!(
                        "imported {} into event '{event_id}'{} ({}):",
                        path.display(),
                        if created_event { " (created)" } else { "" },
                        db.display()
                    );
                    println!(
                        "  {} participants, {} classes, {} categories, {} races, {} results, {} courses",
                        counts.participants,
                        counts.classes,
                        counts.categories,
                        counts.races,
                        counts.results,
                        counts.courses
                    );
                    println!("  {rows_changed} rows written");
                }
                other => println!("{other:?}"),
            }
        }
        Command::Demo(args) => {
            c123_live::daemon::demo(args).await?;
        }
    }
    Ok(())
}
