//! `zs-bench db-net`: ZDB over the network, from a second process. A child `zs serve --db`
//! holds the store; this process posts the dataset with `DbClient::post` (the fast batch post:
//! one CompleteBuffer per batch, one transaction each) and then reads query results back.
//!
//! - **post**: records/s for the whole dataset, records built before the clock starts (their
//!   encoding, the transfer, validation, indexing and the fsynced commits are timed);
//!   `--in-flight` posts at once, so a batch travels while the one before it commits.
//! - **results**: records/s received by a query returning every record, fragments of
//!   `--fragment` records pulled one `next` call at a time.
//! - **filtered**: ms for a query matching about 1 % on a field without an index.
//!
//! Records: `{"name", "age": i % 90, "city": "c0".."c99", "score", "note"}`, about 200 bytes,
//! an index on `city`. Queries run `--rounds` times; medians are reported.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use serde_json::json;
use zs_db::service::DbClient;
use zs_db::{Query, Record};

use crate::process::{bounded, find_zs, quoted};
use crate::serve_child::ServeChild;

/// Arguments of `zs-bench db-net`.
#[derive(Debug, Args)]
pub struct DbNetArgs {
    /// The `zs` binary to serve the store (default: the one next to this executable).
    #[arg(long)]
    pub zs: Option<PathBuf>,
    /// Records in the dataset.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Records per post (one transaction each).
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Posts in flight at once (the next batch travels while the last one commits).
    #[arg(long, default_value_t = 4)]
    pub in_flight: usize,
    /// Records per query fragment.
    #[arg(long, default_value_t = 4096)]
    pub fragment: usize,
    /// Query rounds; medians are reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Stop (with an error) after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub time_limit: u64,
}

/// Runs `zs-bench db-net`.
pub async fn run(args: DbNetArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.records > 0 && args.batch > 0 && args.rounds > 0,
        "counts must be positive"
    );
    let zs = find_zs(args.zs.as_ref())?;
    bounded("db-net", Duration::from_secs(args.time_limit), |work| async move {
        let store = work.join("zdb");
        let extra = format!("db = {}\n", quoted(&store.to_string_lossy()));
        let server = ServeChild::start_with(&zs, &work, 16, &extra).await?;
        let client = zs::Client::connect(&server.addr)
            .await
            .context("cannot connect to zs serve")?;
        let db = DbClient::new(client.peer());
        db.create("bench").await?;
        db.create_index("bench", "city").await?;
        println!(
            "zs-bench db-net: {} records of ~200 bytes, batches of {} ({} in flight), index on city; \
             `zs serve --db` in a child process",
            args.records, args.batch, args.in_flight
        );

        let batches: Vec<Vec<Record>> = (0..args.records)
            .collect::<Vec<u64>>()
            .chunks(args.batch)
            .map(|ids| ids.iter().map(|&i| record(i)).collect())
            .collect();
        let started = Instant::now();
        let mut posts = futures_util::stream::iter(batches)
            .map(|batch| db.post("bench", batch))
            .buffer_unordered(args.in_flight.max(1));
        while let Some(ids) = posts.next().await {
            ids?;
        }
        drop(posts);
        let post = started.elapsed().as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let post_rate = args.records as f64 / post;
        println!("post: {} records in {post:.2} s = {post_rate:.0} records/s", args.records);

        let mut results = Vec::new();
        let mut filtered = Vec::new();
        for round in 1..=args.rounds {
            let started = Instant::now();
            let mut query = db.query("bench", &Query::all().fragment(args.fragment)).await?;
            let mut received = 0u64;
            while let Some(records) = query.next().await? {
                received += records.len() as u64;
            }
            let seconds = started.elapsed().as_secs_f64();
            anyhow::ensure!(received == args.records, "the query returned {received} records");
            #[allow(clippy::cast_precision_loss)]
            let rate = received as f64 / seconds;
            results.push(rate);

            let started = Instant::now();
            let mut query = db.query("bench", &Query::filter("age = 42 and score >= 500")).await?;
            let mut matched = 0u64;
            while let Some(records) = query.next().await? {
                matched += records.len() as u64;
            }
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            let expected = (0..args.records).filter(|i| matches(*i)).count() as u64;
            anyhow::ensure!(matched == expected, "filtered {matched}, expected {expected}");
            filtered.push(ms);
            println!(
                "round {round}: results {rate:.0} records/s ({seconds:.2} s); filtered scan {ms:.1} ms, {matched} matches"
            );
        }
        println!(
            "db-net: post {post_rate:.0} records/s, query results {:.0} records/s, filtered scan {:.1} ms (medians of {} rounds)",
            crate::median(&results),
            crate::median(&filtered),
            args.rounds
        );
        client.close().await;
        drop(server);
        Ok(())
    })
    .await
}

/// Record `i`: the fields of `zs-bench db`'s records, with `city` and `score` taken from `i`
/// directly (not hashed) so the filtered query's matches are easy to count.
fn record(i: u64) -> Record {
    #[allow(clippy::cast_precision_loss)]
    let score = (i % 1000) as f64 + 0.5;
    Record::Json(json!({
        "name": format!("p{i}"),
        "age": i % 90,
        "city": format!("c{}", i % 100),
        "score": score,
        "note": "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua",
    }))
}

/// Whether record `i` matches the filtered query `age = 42 and score >= 500`.
fn matches(i: u64) -> bool {
    i % 90 == 42 && (i % 1000) >= 500
}
