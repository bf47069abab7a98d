//! ZDB: one database in a [`Store`], an index on `city`; queries through the store (a
//! thread of their own, scans in parallel on rayon's pool).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use zs_db::{Aggregate, Database, Op, Query, QueryEnd, Record, Store};

use super::{FILTER_AGE, FILTER_SCORE, Groups, Matches, Person, System};

const NAME: &str = "people";

pub struct Zdb {
    store: Store,
    db: Arc<Database>,
}

impl Zdb {
    /// A new store in `dir` with database `people` and its index on `city`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let store = Store::open(dir)?;
        let db = store.create(NAME)?;
        db.create_index("city")?;
        Ok(Self { store, db })
    }

    /// Runs `filter`, checking whether it goes through an index as `indexed` says; every
    /// match decoded.
    fn query(&self, filter: &str, indexed: bool) -> anyhow::Result<Matches> {
        let run = self.store.query(NAME, Query::filter(filter))?;
        ensure!(
            run.uses_index() == indexed,
            "ZDB: {filter:?} uses an index: {}, expected {indexed}",
            run.uses_index()
        );
        let (found, end) = run.collect_all()?;
        ensure!(end == QueryEnd::Complete, "ZDB: {filter:?} ended {end:?}");
        let mut matches = Matches::default();
        for (id, _) in &found {
            matches.add(*id);
        }
        Ok(matches)
    }
}

impl System for Zdb {
    fn name(&self) -> &'static str {
        "ZDB"
    }

    fn insert(&mut self, first_id: u64, batch: &[Person]) -> anyhow::Result<Duration> {
        let ops: Vec<Op> = batch
            .iter()
            .map(|person| Op::Insert(Record::Json(person.json())))
            .collect();
        let started = Instant::now();
        let ids = self.db.write_batch(ops)?;
        let took = started.elapsed();
        let expected = first_id..first_id + batch.len() as u64;
        ensure!(
            ids.len() == batch.len() && ids.iter().copied().eq(expected.clone()),
            "ZDB gave ids {:?}..{:?}, expected {expected:?}",
            ids.first(),
            ids.last()
        );
        Ok(took)
    }

    fn len(&self) -> anyhow::Result<u64> {
        Ok(self.db.len()?)
    }

    fn get(&self, ids: &[u64]) -> anyhow::Result<u64> {
        let mut ages = 0;
        for &id in ids {
            let record = self
                .db
                .get(id)?
                .with_context(|| format!("ZDB: no id {id}"))?;
            let Record::Json(json) = record else {
                anyhow::bail!("ZDB: id {id} is not JSON");
            };
            ages += json["age"]
                .as_u64()
                .with_context(|| format!("ZDB: id {id} has no age"))?;
        }
        Ok(ages)
    }

    fn city(&self, city: &str) -> anyhow::Result<Matches> {
        self.query(&format!("city = '{city}'"), true)
    }

    fn filter(&self) -> anyhow::Result<Matches> {
        self.query(
            &format!("age = {FILTER_AGE} and score > {FILTER_SCORE}"),
            false,
        )
    }

    fn aggregate(&self) -> anyhow::Result<Groups> {
        let groups = self
            .store
            .aggregate(NAME, &Aggregate::of("score").group_by("city"))?;
        let mut out = Groups::new();
        for group in groups {
            let city = group
                .key
                .as_str()
                .with_context(|| format!("ZDB: a group's key is {}", group.key))?;
            let average = group
                .average
                .with_context(|| format!("ZDB: group {city} has no average"))?;
            out.insert(city.to_owned(), (group.count, average));
        }
        Ok(out)
    }

    fn disk_bytes(&self) -> anyhow::Result<u64> {
        let path = self.db.path();
        Ok(std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len())
    }
}
