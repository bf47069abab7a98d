//! SQLite through rusqlite (bundled): a table with typed columns and an index on `city`, WAL
//! with `synchronous=FULL` (the WAL fsynced at every commit, like redb's commits) and a 1 GiB
//! page cache; one connection on this thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use rusqlite::{Connection, params};

use super::{CITY, FILTER_AGE, FILTER_SCORE, Groups, Matches, Person, System};

/// Every column of a row, for the queries that return records.
const COLUMNS: &str = "id, name, age, city, score, note";
const BY_CITY: &str = "SELECT id, name, age, city, score, note FROM people WHERE city = ?1";
const FILTER: &str =
    "SELECT id, name, age, city, score, note FROM people WHERE age = ?1 AND score > ?2";
const GROUP: &str = "SELECT city, COUNT(*), AVG(score) FROM people GROUP BY city";

pub struct Sqlite {
    path: PathBuf,
    connection: Connection,
}

/// One row as owned Rust values (what the other systems' decoded JSON holds); the fields
/// not checked are read all the same, as a caller would.
#[allow(dead_code)]
struct Columns {
    id: i64,
    name: String,
    age: i64,
    city: String,
    score: f64,
    note: String,
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Columns> {
    Ok(Columns {
        id: row.get(0)?,
        name: row.get(1)?,
        age: row.get(2)?,
        city: row.get(3)?,
        score: row.get(4)?,
        note: row.get(5)?,
    })
}

impl Sqlite {
    /// A new database file at `path` with table `people` and its index on `city`.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let connection = Connection::open(path)
            .with_context(|| format!("cannot open SQLite at {}", path.display()))?;
        let mode: String =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "SQLite journal mode {mode}"
        );
        connection.execute_batch(
            "PRAGMA synchronous = FULL;
             PRAGMA cache_size = -1048576;
             CREATE TABLE people (
                 id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 age INTEGER NOT NULL,
                 city TEXT NOT NULL,
                 score REAL NOT NULL,
                 note TEXT NOT NULL
             );
             CREATE INDEX people_city ON people (city);",
        )?;
        Ok(Self {
            path: path.to_owned(),
            connection,
        })
    }

    /// SQLite's plans for the three queries (`EXPLAIN QUERY PLAN`): which use the index.
    /// Without `ANALYZE` statistics they do not depend on what the table holds.
    pub fn plans(&self) -> anyhow::Result<Vec<String>> {
        let mut plans = Vec::new();
        let queries: [(&str, &str, &[&dyn rusqlite::ToSql]); 3] = [
            ("city", BY_CITY, &[&CITY]),
            ("filter", FILTER, &[&FILTER_AGE, &FILTER_SCORE]),
            ("group by", GROUP, &[]),
        ];
        for (name, sql, params) in queries {
            let mut statement = self
                .connection
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            let steps = statement
                .query_map(params, |row| row.get::<_, String>(3))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            plans.push(format!("{name}: {}", steps.join("; ")));
        }
        Ok(plans)
    }

    /// The rows of `sql` with `params`, every column read.
    fn rows(&self, sql: &str, params: impl rusqlite::Params) -> anyhow::Result<Matches> {
        let mut statement = self.connection.prepare(sql)?;
        let rows = statement
            .query_map(params, read_row)?
            .collect::<rusqlite::Result<Vec<Columns>>>()?;
        let mut matches = Matches::default();
        for row in &rows {
            matches.add(u64::try_from(row.id)?);
        }
        Ok(matches)
    }
}

impl System for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn insert(&mut self, first_id: u64, batch: &[Person]) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let transaction = self.connection.transaction()?;
        {
            let mut statement = transaction.prepare(&format!(
                "INSERT INTO people ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ))?;
            for (id, person) in (first_id..).zip(batch) {
                statement.execute(params![
                    i64::try_from(id)?,
                    person.name,
                    person.age,
                    person.city,
                    person.score,
                    person.note
                ])?;
            }
        }
        transaction.commit()?;
        Ok(started.elapsed())
    }

    fn len(&self) -> anyhow::Result<u64> {
        let count: i64 = self
            .connection
            .query_row("SELECT COUNT(*) FROM people", [], |row| row.get(0))?;
        Ok(u64::try_from(count)?)
    }

    fn get(&self, ids: &[u64]) -> anyhow::Result<u64> {
        let mut statement = self
            .connection
            .prepare(&format!("SELECT {COLUMNS} FROM people WHERE id = ?1"))?;
        let mut ages = 0;
        for &id in ids {
            let row = statement
                .query_row([i64::try_from(id)?], read_row)
                .with_context(|| format!("SQLite: id {id}"))?;
            ages += u64::try_from(row.age)?;
        }
        Ok(ages)
    }

    fn city(&self, city: &str) -> anyhow::Result<Matches> {
        self.rows(BY_CITY, [city])
    }

    fn filter(&self) -> anyhow::Result<Matches> {
        self.rows(FILTER, params![FILTER_AGE, FILTER_SCORE])
    }

    fn aggregate(&self) -> anyhow::Result<Groups> {
        let mut statement = self.connection.prepare(GROUP)?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, f64>(2)?,
            ))
        })?;
        let mut groups = Groups::new();
        for row in rows {
            let (city, count, average) = row?;
            groups.insert(city, (u64::try_from(count)?, average));
        }
        Ok(groups)
    }

    fn disk_bytes(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for suffix in ["", "-wal"] {
            let mut file = self.path.clone().into_os_string();
            file.push(suffix);
            if let Ok(metadata) = std::fs::metadata(&file) {
                total += metadata.len();
            }
        }
        Ok(total)
    }
}
