//! The original's "dataset query" demo: a zserver serving a ZDB store, and a client that
//! posts a dataset, runs a filtered query streamed in fragments, and a group-by.
//!
//! ```text
//! cargo run --release -p zs-db --example dataset_query            # 100,000 records
//! cargo run --release -p zs-db --example dataset_query -- 1000000
//! ```
//!
//! Everything runs in this process over loopback, in a temporary directory removed at the end.

use std::time::Instant;

use serde_json::json;
use zs_db::service::{DbClient, DbService};
use zs_db::{Aggregate, Query, Record, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records: u64 = match std::env::args().nth(1) {
        Some(count) => count.parse()?,
        None => 100_000,
    };
    let dir = tempfile::tempdir()?;

    // The server: a zs Server with the ZDB service installed.
    let mut server = zs::Server::bind("127.0.0.1:0").await?;
    server.install(DbService::new(Store::open(dir.path())?));
    let server = server.spawn();

    // The client: typed calls through DbClient.
    let client = zs::Client::connect(server.local_addr()).await?;
    let db = DbClient::new(client.peer());
    db.create("sensors").await?;
    db.create_index("sensors", "site").await?;

    let started = Instant::now();
    let batch = 10_000;
    for first in (0..records).step_by(batch) {
        let last = (first + batch as u64).min(records);
        db.post("sensors", (first..last).map(reading)).await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "posted {records} records in {seconds:.2} s ({:.0} records/s)",
        records as f64 / seconds
    );

    // A filtered query, its results streamed in fragments as they are found.
    let started = Instant::now();
    let filter = "site = 'site-7' and temperature > 30.0 and not alarm";
    let mut query = db
        .query("sensors", &Query::filter(filter).fragment(500))
        .await?;
    let mut found = 0;
    let mut fragments = 0;
    while let Some(fragment) = query.next().await? {
        found += fragment.len();
        fragments += 1;
    }
    let (scanned, _) = query.progress();
    println!(
        "query {filter:?}: {found} records in {fragments} fragments, {scanned} scanned, {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );

    // A group-by over every record, computed in parallel at the server.
    let started = Instant::now();
    let groups = db
        .aggregate("sensors", &Aggregate::of("temperature").group_by("site"))
        .await?;
    println!(
        "average temperature by site ({:.1} ms):",
        started.elapsed().as_secs_f64() * 1000.0
    );
    for group in groups.iter().take(5) {
        println!(
            "  {}: {} readings, average {:.2}",
            group.key,
            group.count,
            group.average.unwrap_or(f64::NAN)
        );
    }
    println!("  ... {} sites in all", groups.len());

    client.close().await;
    server.shutdown().await;
    Ok(())
}

/// Reading `i`: one of 20 sites, a temperature, an alarm flag.
fn reading(i: u64) -> Record {
    let temperature = 15.0 + ((i * 7919) % 2000) as f64 / 100.0;
    Record::Json(json!({
        "site": format!("site-{}", i % 20),
        "sensor": i % 1000,
        "temperature": temperature,
        "alarm": i.is_multiple_of(97),
    }))
}
