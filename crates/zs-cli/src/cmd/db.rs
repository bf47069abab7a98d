//! `zs db`: the ZDB store of a server run as `zs serve --db DIR`, JSON in and out.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zs_db::service::DbClient;
use zs_db::{Aggregate, Query, Record};

use super::files::ServerArgs;

/// Arguments of `zs db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(subcommand)]
    pub command: DbCommand,
}

/// The `zs db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// List the databases.
    List,
    /// Create a database, with indexes on the given fields.
    Create {
        /// Database name.
        name: String,
        /// A field to index (repeatable).
        #[arg(long = "index")]
        indexes: Vec<String>,
    },
    /// Delete a database.
    Remove {
        /// Database name.
        name: String,
    },
    /// Add an index on a field.
    Index {
        /// Database name.
        name: String,
        /// The field (dotted for nested objects: `address.city`).
        field: String,
    },
    /// Post records from a JSON file (one array, or one value per line; `-` is stdin), in
    /// batches of one transaction each.
    Post {
        /// Database name (created if missing).
        name: String,
        /// The file.
        file: PathBuf,
        /// Records per batch.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
    },
    /// Print one record as JSON.
    Get {
        /// Database name.
        name: String,
        /// Record id.
        id: u64,
    },
    /// Delete one record.
    Delete {
        /// Database name.
        name: String,
        /// Record id.
        id: u64,
    },
    /// Run a query; matches are printed as JSON lines `{"id": .., "record": ..}`.
    Query {
        /// Database name.
        name: String,
        /// A ZExpression over the fields, e.g. "age >= 18 and city = 'Oslo'" (all records
        /// when missing).
        filter: Option<String>,
        /// Highest ids first.
        #[arg(long)]
        reverse: bool,
        /// At most this many matches.
        #[arg(long)]
        limit: Option<u64>,
        /// Stop after this many milliseconds.
        #[arg(long)]
        budget_ms: Option<u64>,
        /// Records per fragment.
        #[arg(long, default_value_t = 1024)]
        fragment: usize,
        /// Write the matches into this database at the server instead of printing them.
        #[arg(long)]
        into: Option<String>,
    },
    /// Count, sum, min, max and average of a field, optionally grouped; printed as JSON.
    Aggregate {
        /// Database name.
        name: String,
        /// Only records matching this ZExpression.
        #[arg(long)]
        filter: Option<String>,
        /// The numeric field to sum and average (count only when missing).
        #[arg(long)]
        field: Option<String>,
        /// One result per value of this field.
        #[arg(long)]
        group_by: Option<String>,
    },
    /// Download every record into a JSON-lines file.
    Download {
        /// Database name.
        name: String,
        /// The file to write.
        file: PathBuf,
    },
    /// Copy a database into a new one, while it is served.
    Copy {
        /// Source database.
        from: String,
        /// New database.
        to: String,
    },
    /// Compact a database (its ids stay).
    Compact {
        /// Database name.
        name: String,
    },
    /// List the queries running at the server.
    Queries,
}

/// Runs `zs db`.
pub async fn run(args: DbArgs) -> anyhow::Result<()> {
    let client = args.server.connect(args.server.builder()).await?;
    let db = DbClient::new(client.peer());
    match args.command {
        DbCommand::List => {
            for name in db.list().await? {
                println!("{name}");
            }
        }
        DbCommand::Create { name, indexes } => {
            db.create(&name).await?;
            for field in &indexes {
                db.create_index(&name, field).await?;
            }
            eprintln!("created {name}");
        }
        DbCommand::Remove { name } => db.remove(&name).await?,
        DbCommand::Index { name, field } => db.create_index(&name, &field).await?,
        DbCommand::Post { name, file, batch } => post(db, &name, &file, batch).await?,
        DbCommand::Get { name, id } => match db.get(&name, id).await? {
            Some(record) => println!("{}", record_json(id, record)),
            None => anyhow::bail!("no record {id} in {name}"),
        },
        DbCommand::Delete { name, id } => {
            anyhow::ensure!(db.delete(&name, id).await?, "no record {id} in {name}");
        }
        DbCommand::Query {
            name,
            filter,
            reverse,
            limit,
            budget_ms,
            fragment,
            into,
        } => {
            let mut query = Query::all().fragment(fragment);
            query.filter = filter;
            query.reverse = reverse;
            query.limit = limit;
            query.time_budget = budget_ms.map(Duration::from_millis);
            match into {
                Some(output) => {
                    let written = db.query_into(&name, &query, &output).await?;
                    eprintln!("{written} records written into {output}");
                }
                None => {
                    let out = std::io::stdout().lock();
                    stream_query(db, &name, &query, Box::new(BufWriter::new(out))).await?;
                }
            }
        }
        DbCommand::Aggregate {
            name,
            filter,
            field,
            group_by,
        } => {
            let mut aggregate = Aggregate::count();
            aggregate.filter = filter;
            aggregate.field = field;
            aggregate.group_by = group_by;
            let groups: Vec<serde_json::Value> = db
                .aggregate(&name, &aggregate)
                .await?
                .into_iter()
                .map(|group| {
                    serde_json::json!({
                        "key": group.key, "count": group.count, "sum": group.sum,
                        "min": group.min, "max": group.max, "average": group.average,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&groups)?);
        }
        DbCommand::Download { name, file } => {
            let out = std::fs::File::create(&file)
                .with_context(|| format!("cannot create {}", file.display()))?;
            stream_query(
                db,
                &name,
                &Query::all().fragment(4096),
                Box::new(BufWriter::new(out)),
            )
            .await?;
        }
        DbCommand::Copy { from, to } => {
            let copied = db.copy(&from, &to).await?;
            eprintln!("copied {copied} records from {from} to {to}");
        }
        DbCommand::Compact { name } => {
            let compacted = db.compact(&name).await?;
            eprintln!(
                "{name}: {}",
                if compacted {
                    "compacted"
                } else {
                    "nothing to compact"
                }
            );
        }
        DbCommand::Queries => {
            for (id, database, filter, scanned, matched, paused) in db.queries().await? {
                let state = if paused { "paused" } else { "running" };
                println!(
                    "{id}\t{database}\t{state}\tscanned {scanned}\tmatched {matched}\t{filter}"
                );
            }
        }
    }
    client.close().await;
    Ok(())
}

/// A record as printed: JSON records as they are, DataFrames in their JSON form, byte records
/// in base64.
fn record_json(id: u64, record: Record) -> serde_json::Value {
    match record {
        Record::Json(json) => serde_json::json!({"id": id, "record": json}),
        Record::Frame(frame) => serde_json::json!({"id": id, "frame": frame.to_json()}),
        Record::Bytes(bytes) => serde_json::json!({
            "id": id,
            "bytes": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    }
}

fn progress_bar(total: Option<u64>, what: &str) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total),
        None => ProgressBar::new_spinner(),
    };
    if std::io::stderr().is_terminal() {
        let template = match total {
            Some(_) => format!("{{bar:40}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}})"),
            None => format!("{{spinner}} {{pos}} {what} {{msg}} ({{per_sec}})"),
        };
        if let Ok(style) = ProgressStyle::with_template(&template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

/// Streams a query's matches as JSON lines into `out`, with progress on stderr.
async fn stream_query(
    db: DbClient<'_>,
    name: &str,
    query: &Query,
    mut out: Box<dyn Write + '_>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut run = db.query(name, query).await?;
    let bar = progress_bar(None, "matches");
    let mut written = 0u64;
    while let Some(records) = run.next().await? {
        for (id, record) in records {
            serde_json::to_writer(&mut out, &record_json(id, record))?;
            out.write_all(b"\n")?;
            written += 1;
        }
        let (scanned, _) = run.progress();
        bar.set_position(written);
        bar.set_message(format!("of {scanned} scanned"));
    }
    out.flush()?;
    bar.finish_and_clear();
    let (scanned, _) = run.progress();
    let end = match run.end() {
        Some(zs_db::QueryEnd::Stopped) => ", stopped",
        Some(zs_db::QueryEnd::OutOfTime) => ", out of time",
        _ => "",
    };
    eprintln!(
        "{written} records in {:.2} s ({scanned} scanned{end})",
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Reads records from a JSON array or JSON lines, and posts them in batches.
async fn post(db: DbClient<'_>, name: &str, file: &PathBuf, batch: usize) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        for line in std::io::stdin().lock().lines() {
            text.push_str(&line?);
            text.push('\n');
        }
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let records: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).context("the file is not a JSON array")?
    } else {
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .enumerate()
            .map(|(n, line)| {
                serde_json::from_str(line).with_context(|| format!("line {}: not JSON", n + 1))
            })
            .collect::<anyhow::Result<_>>()?
    };
    match db.create(name).await {
        Ok(()) => {}
        Err(error) if error.code() == Some(zs::StatusCode::ALREADY_EXISTS) => {}
        Err(error) => return Err(error.into()),
    }
    let started = Instant::now();
    let bar = progress_bar(Some(records.len() as u64), "records");
    let (mut first, mut last) = (None, 0);
    for chunk in records.chunks(batch.max(1)) {
        let ids = db
            .post(name, chunk.iter().cloned().map(Record::Json))
            .await?;
        first.get_or_insert(ids.start);
        last = ids.end;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let rate = records.len() as f64 / seconds.max(1e-9);
    eprintln!(
        "posted {} records to {name} in {seconds:.2} s ({rate:.0} records/s), ids {}..{}",
        records.len(),
        first.unwrap_or(0),
        last
    );
    Ok(())
}
