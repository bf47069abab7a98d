//! `zs-bench db`: the ZDB store (`zs-db`) against SQLite (rusqlite, bundled) and a raw redb
//! table, on the same records in the same run.
//!
//! The dataset: `--records` JSON objects of about 200 bytes, made deterministically from their
//! index — `{"name": "p<i>", "age": i % 90, "city": "c0".."c99", "score": 0..100 (a float),
//! "note": 120 characters of filler}` — the city and score from a hash of the index.
//!
//! - **ZDB**: one database in a [`zs_db::Store`], an index on `city` created before the
//!   records go in; queries through [`zs_db::Store::query`] and
//!   [`zs_db::Store::aggregate`] (parallel on rayon's pool).
//! - **SQLite**: one table with typed columns (`id INTEGER PRIMARY KEY, name, age, city,
//!   score, note`), an index on `city`, WAL with `synchronous=FULL` (every commit fsynced, as
//!   redb's are; SQLite's usual `NORMAL` does not sync the WAL on commit) and a 1 GiB page
//!   cache (redb's default cache size). One thread, one connection.
//! - **raw redb**: a `TableDefinition<u64, &[u8]>` of the same JSON bytes, what a store
//!   written by hand on redb does: serde_json on the way in, full scans decoding every record
//!   with serde_json and testing the fields in Rust, on one thread; no index.
//!
//! Measured: batch insert (the whole dataset in `--batch` records per transaction, batches
//! of the three interleaved; only the store's call is timed, not making the records), point
//! gets by random id (a read transaction or statement each), the records with
//! `city = 'c42'` (about 1 %, through the index where there is one), a filter matching about
//! 1 % on non-indexed fields (`age = 42 and score > 10`), and count and average of `score`
//! grouped by `city`. Queries return the matching records decoded (ZDB and raw redb:
//! JSON values; SQLite: the columns as owned Rust values). Every query measurement runs
//! `--rounds` times, the three systems interleaved and their order rotated per round;
//! medians are reported. The result counts (and id sums, group counts and averages) of the
//! three must agree or the run fails. Files live in a fresh directory under `--dir` (default
//! the OS temp dir), removed at the end.
//!
//! Modules: [`data`] makes the records, [`zdb`], [`sqlite`] and [`redb_raw`] are the three
//! systems, [`report`] prints the table.

mod data;
mod redb_raw;
mod report;
mod sqlite;
mod zdb;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use clap::Args;

use self::data::mix;
pub use self::data::{Groups, Matches, Person};
use self::report::{Row, Unit, print_table};

/// Arguments of `zs-bench db`.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Records in the dataset (about 200 bytes of JSON each).
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Records per write transaction while loading.
    #[arg(long, default_value_t = 10_000)]
    pub batch: u64,
    /// Point gets by random id per round.
    #[arg(long, default_value_t = 100_000)]
    pub gets: u64,
    /// Rounds of every query measurement (the three systems interleaved); medians are
    /// reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Where to make the working directory (removed at the end); default the OS temp dir.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The city the indexed lookup asks for.
pub const CITY: &str = "c42";
/// Distinct cities.
pub const CITIES: u64 = 100;
/// The non-indexed filter: `age = FILTER_AGE and score > FILTER_SCORE` (about 1 %).
pub const FILTER_AGE: i64 = 42;
/// See [`FILTER_AGE`].
pub const FILTER_SCORE: f64 = 10.0;

/// One of the compared stores.
pub trait System {
    /// Its name in the output.
    fn name(&self) -> &'static str;
    /// Stores `batch` as records `first_id..` in one transaction; returns the time the store
    /// took (making its input from `batch` is not counted).
    fn insert(&mut self, first_id: u64, batch: &[Person]) -> anyhow::Result<Duration>;
    /// Records held.
    fn len(&self) -> anyhow::Result<u64>;
    /// Gets each id (each on its own); returns the sum of the records' ages.
    fn get(&self, ids: &[u64]) -> anyhow::Result<u64>;
    /// The records with `city = city`.
    fn city(&self, city: &str) -> anyhow::Result<Matches>;
    /// The records with `age = FILTER_AGE and score > FILTER_SCORE`.
    fn filter(&self) -> anyhow::Result<Matches>;
    /// Count and average of `score` grouped by `city`.
    fn aggregate(&self) -> anyhow::Result<Groups>;
    /// Bytes of its files on disk.
    fn disk_bytes(&self) -> anyhow::Result<u64>;
}

/// Runs `zs-bench db`.
pub fn run(args: &DbArgs) -> anyhow::Result<()> {
    ensure!(args.records > 0, "--records must be at least 1");
    ensure!(args.batch > 0, "--batch must be at least 1");
    ensure!(args.gets > 0, "--gets must be at least 1");
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = WorkDir::new(base.join(format!("zs-bench-db-{}", std::process::id())))?;
    bench(args, &work.0)
}

/// A directory removed (with everything in it) when dropped, also after an error.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(path: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("zs-bench db: cannot remove {}: {error}", self.0.display());
        }
    }
}

fn bench(args: &DbArgs, work: &Path) -> anyhow::Result<()> {
    let sqlite = sqlite::Sqlite::create(&work.join("people.sqlite"))?;
    let plans = sqlite.plans()?;
    let mut systems: Vec<Box<dyn System>> = vec![
        Box::new(zdb::Zdb::create(&work.join("zdb"))?),
        Box::new(sqlite),
        Box::new(redb_raw::RawRedb::create(&work.join("people.redb"))?),
    ];
    println!(
        "zs-bench db: {} records (about 200 B of JSON each), batches of {}, {} gets and {} \
         round(s) per query measurement; ZDB {} on redb 4.6, SQLite {} (rusqlite, bundled; \
         WAL, synchronous=FULL, 1 GiB cache), raw redb 4.6 (serde_json, one thread); {} \
         cores available; files in {}",
        args.records,
        args.batch,
        args.gets,
        args.rounds,
        env!("CARGO_PKG_VERSION"),
        rusqlite::version(),
        cores(),
        work.display(),
    );
    for plan in plans {
        println!("SQLite plan, {plan}");
    }

    let insert = load(&mut systems, args)?;
    let sizes = systems
        .iter()
        .map(|system| system.disk_bytes())
        .collect::<anyhow::Result<Vec<u64>>>()?;

    let ids: Vec<u64> = (0..args.gets)
        .map(|k| mix(k ^ 0x6765_7473) % args.records + 1)
        .collect();
    let expected_ages: u64 = ids.iter().map(|id| (id - 1) % 90).sum();
    let count = systems.len();
    let mut gets = vec![Vec::new(); count];
    let mut city = vec![Vec::new(); count];
    let mut filter = vec![Vec::new(); count];
    let mut aggregate = vec![Vec::new(); count];
    let mut city_found = vec![Matches::default(); count];
    let mut filter_found = vec![Matches::default(); count];
    let mut groups = vec![Groups::new(); count];
    for round in 0..args.rounds {
        let order: Vec<usize> = (0..count).map(|k| (round + k) % count).collect();
        for &at in &order {
            let (ages, took) = timed(|| systems[at].get(&ids))?;
            ensure!(
                ages == expected_ages,
                "{}: the gets' ages sum to {ages}, expected {expected_ages}",
                systems[at].name()
            );
            gets[at].push(took);
        }
        for &at in &order {
            let (found, took) = timed(|| systems[at].city(CITY))?;
            city_found[at] = found;
            city[at].push(took);
        }
        for &at in &order {
            let (found, took) = timed(|| systems[at].filter())?;
            filter_found[at] = found;
            filter[at].push(took);
        }
        for &at in &order {
            let (found, took) = timed(|| systems[at].aggregate())?;
            groups[at] = found;
            aggregate[at].push(took);
        }
        agree(&systems, "city = 'c42'", &city_found)?;
        agree(&systems, "the filter", &filter_found)?;
        agree_groups(&systems, &groups, args.records)?;
        println!(
            "round {}: gets {} | city {} | filter {} | aggregate {}",
            round + 1,
            seconds_list(&systems, &gets, round),
            seconds_list(&systems, &city, round),
            seconds_list(&systems, &filter, round),
            seconds_list(&systems, &aggregate, round),
        );
    }
    let records = args.records as f64;
    let found = city_found[0].count;
    let matched = filter_found[0].count;
    println!(
        "results (equal in all three): city = '{CITY}' {found} records ({:.2} %), \
         age = {FILTER_AGE} and score > {FILTER_SCORE} {matched} records ({:.2} %), {} groups",
        100.0 * found as f64 / records,
        100.0 * matched as f64 / records,
        groups[0].len(),
    );
    let per_second = |runs: &[Vec<f64>], work: f64| -> Vec<f64> {
        runs.iter().map(|runs| work / crate::median(runs)).collect()
    };
    let ms = |runs: &[Vec<f64>]| -> Vec<f64> {
        runs.iter().map(|runs| crate::median(runs) * 1e3).collect()
    };
    let rows = [
        Row::new("batch insert", Unit::Rate("records/s"), insert),
        Row::new("point get by id", Unit::Rate("gets/s"), {
            per_second(&gets, args.gets as f64)
        }),
        Row::new(
            format!("city = '{CITY}' (indexed; raw redb scans)"),
            Unit::Millis,
            ms(&city),
        ),
        Row::new(
            format!("age = {FILTER_AGE} and score > {FILTER_SCORE} (not indexed)"),
            Unit::Millis,
            ms(&filter),
        ),
        Row::new("  the same, records scanned/s", Unit::Rate("records/s"), {
            per_second(&filter, records)
        }),
        Row::new(
            "count, avg(score) group by city",
            Unit::Millis,
            ms(&aggregate),
        ),
        Row::new(
            "files on disk (lower is smaller)",
            Unit::Mib,
            sizes
                .iter()
                .map(|&bytes| bytes as f64 / 1048576.0)
                .collect(),
        ),
    ];
    let names: Vec<&str> = systems.iter().map(|system| system.name()).collect();
    print_table(&names, &rows, args.rounds);
    Ok(())
}

/// Loads the dataset into every system, batch by batch, the systems interleaved; returns
/// their insert rates (records/s).
fn load(systems: &mut [Box<dyn System>], args: &DbArgs) -> anyhow::Result<Vec<f64>> {
    let mut spent = vec![Duration::ZERO; systems.len()];
    let started = Instant::now();
    let mut next = 0;
    while next < args.records {
        let end = (next + args.batch).min(args.records);
        let batch: Vec<Person> = (next..end).map(Person::generate).collect();
        for (system, spent) in systems.iter_mut().zip(&mut spent) {
            *spent += system
                .insert(next + 1, &batch)
                .with_context(|| format!("{}: batch insert at {next}", system.name()))?;
        }
        next = end;
    }
    for system in systems.iter() {
        let held = system.len()?;
        ensure!(
            held == args.records,
            "{} holds {held} records after loading {}",
            system.name(),
            args.records
        );
    }
    let rates: Vec<f64> = spent
        .iter()
        .map(|spent| args.records as f64 / spent.as_secs_f64())
        .collect();
    let parts: Vec<String> = systems
        .iter()
        .zip(&spent)
        .map(|(system, spent)| format!("{} {:.2} s", system.name(), spent.as_secs_f64()))
        .collect();
    println!(
        "loaded in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        parts.join(", ")
    );
    Ok(rates)
}

/// Runs `f`; its result and the seconds it took.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let started = Instant::now();
    let value = f()?;
    Ok((value, started.elapsed().as_secs_f64()))
}

fn seconds_list(systems: &[Box<dyn System>], runs: &[Vec<f64>], round: usize) -> String {
    let parts: Vec<String> = systems
        .iter()
        .zip(runs)
        .map(|(system, runs)| format!("{} {:.1} ms", system.name(), runs[round] * 1e3))
        .collect();
    parts.join(", ")
}

/// Cores this process may use (what rayon's pool, and so ZDB's scans, start with).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Fails unless every system found the same records.
fn agree(systems: &[Box<dyn System>], what: &str, found: &[Matches]) -> anyhow::Result<()> {
    if found.iter().all(|matches| *matches == found[0]) {
        return Ok(());
    }
    let parts: Vec<String> = systems
        .iter()
        .zip(found)
        .map(|(system, m)| format!("{} {} (id sum {})", system.name(), m.count, m.id_sum))
        .collect();
    bail!("the systems disagree on {what}: {}", parts.join(", "))
}

/// Fails unless every system found the same groups with the same counts and averages (to
/// 1e-9, relative: the sums are added in different orders), and the counts add up.
fn agree_groups(
    systems: &[Box<dyn System>],
    groups: &[Groups],
    records: u64,
) -> anyhow::Result<()> {
    let reference = &groups[0];
    let total: u64 = reference.values().map(|(count, _)| count).sum();
    ensure!(
        total == records,
        "{}'s groups count {total} records of {records}",
        systems[0].name()
    );
    for (system, found) in systems.iter().zip(groups).skip(1) {
        ensure!(
            found.len() == reference.len(),
            "{} has {} groups, {} has {}",
            system.name(),
            found.len(),
            systems[0].name(),
            reference.len()
        );
        for ((key, (count, average)), (other_key, (other_count, other_average))) in
            reference.iter().zip(found)
        {
            let close = (average - other_average).abs() <= 1e-9 * average.abs().max(1.0);
            if key != other_key || count != other_count || !close {
                bail!(
                    "the groups differ: {} has {key} {count} {average}, {} has {other_key} \
                     {other_count} {other_average}",
                    systems[0].name(),
                    system.name()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_agrees_across_the_three() {
        let args = DbArgs {
            records: 3_000,
            batch: 1_000,
            gets: 500,
            rounds: 1,
            dir: None,
        };
        run(&args).expect("the run");
    }
}
