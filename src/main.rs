//! `c123-live`: the command line. Everything it runs lives in the library.

use anyhow::Context;
use clap::Parser;

use c123_live::config::{
    resolve_store, Cli, Command, FileConfig, LogFormat, ReplayArgs, StoreArgs,
};
use c123_live::merge::{MergeSettings, Outcome, XmlTarget};
use c123_live::store::Store;

fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into journald or a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
    };
    // The operator console's warnings, whatever RUST_LOG says about the rest.
    let ring = c123_live::http::log_ring::WarnRing::global()
        .layer()
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    tracing_subscriber::registry().with(fmt).with(ring).init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = FileConfig::load(cli.config.as_deref())?;
    init_logging(cli.log_format.or(file.log_format).unwrap_or_default());
    match cli.command {
        Command::Serve(args) => {
            let settings = c123_live::config::resolve(&args, &file)?;
            c123_live::app::serve(settings).await?;
        }
        Command::Import {
            file: path,
            common,
            event,
        } => import(&path, &common, event, &file).await?,
        Command::Demo(args) => {
            c123_live::app::demo(c123_live::app::DemoSettings {
                listen: args.listen,
                speed: args.speed,
                db: args.db,
            })
            .await?;
        }
        Command::Replay(args) => replay(args).await?,
        Command::Replica(args) => {
            let settings = c123_live::config::resolve_replica(&args, &file)?;
            c123_live::app::serve(settings).await?;
        }
    }
    Ok(())
}

/// `import FILE`: one export into the database, through the merge loop as the daemon does.
async fn import(
    path: &std::path::Path,
    store_args: &StoreArgs,
    event: Option<String>,
    file: &FileConfig,
) -> anyhow::Result<()> {
    let (db, sync) = resolve_store(store_args, file)?;
    let store =
        Store::open(&db, sync).with_context(|| format!("opening database {}", db.display()))?;
    let (merge, join) = c123_live::merge::start(store, MergeSettings::default())?;
    let outcome =
        c123_live::ingest::import_file(&merge, path, XmlTarget::ByExport { event_id: event }).await;
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
    Ok(())
}

/// `replay RECORDING`: plays a recording as a Canoe123 server, or pushes it to a listener.
async fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    use c123_live::ingest::replay::{self, ReplaySettings};
    let text = std::fs::read_to_string(&args.recording)
        .with_context(|| format!("reading {}", args.recording.display()))?;
    let recording = c123_live::c123::recording::Recording::parse(&text)?;
    let settings = ReplaySettings {
        speed: args.speed,
        looped: args.looped,
    };
    let shutdown = c123_live::shutdown::Shutdown::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        c123_live::shutdown::signal().await;
        stop.cancel();
    });
    if let Some(addr) = args.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        eprintln!(
            "replaying {} frames as Canoe123 on {}",
            recording.frames.len(),
            listener.local_addr()?
        );
        replay::serve(listener, recording, settings, shutdown).await;
    } else if let Some(addr) = args.to {
        replay::push_to(addr, &recording, settings, &shutdown)
            .await
            .with_context(|| format!("pushing to {addr}"))?;
    }
    Ok(())
}
