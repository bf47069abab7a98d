//! Queries (filters, order, limits, fragments, indexes), their controls, aggregations and
//! bad filters.

use std::time::Duration;

use zs_db::{Aggregate, DbError, Fragment, Query, QueryEnd, QueryState, Record};

use crate::{people, store};

fn names(records: &[(u64, Record)]) -> Vec<u64> {
    records.iter().map(|(id, _)| *id).collect()
}

#[test]
fn filters_order_limits_and_fragments() {
    let (_dir, store) = store();
    people(&store, "people", 20_000);
    let (all, end) = store
        .query("people", Query::all())
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(end, QueryEnd::Complete);
    assert_eq!(all.len(), 20_000);
    assert!(names(&all).windows(2).all(|w| w[0] < w[1]), "id order");

    // ages 0..90 repeat: age = 7 matches every 90th record.
    let run = store
        .query("people", Query::filter("age = 7 and city <> 'x'"))
        .unwrap();
    assert!(!run.uses_index());
    let (sevens, _) = run.collect_all().unwrap();
    let expected: Vec<u64> = (0..20_000u64)
        .filter(|i| i % 90 == 7)
        .map(|i| i + 1)
        .collect();
    assert_eq!(names(&sevens), expected);

    let (newest, _) = store
        .query("people", Query::filter("age = 7").reverse().limit(5))
        .unwrap()
        .collect_all()
        .unwrap();
    let mut last_five: Vec<u64> = expected.iter().rev().take(5).copied().collect();
    assert_eq!(names(&newest), last_five);
    last_five.reverse();

    // Fragments hold at most the asked number of records.
    let mut sizes = Vec::new();
    for fragment in store
        .query("people", Query::filter("age < 10").fragment(100))
        .unwrap()
    {
        match fragment.unwrap() {
            Fragment::Records(records) => sizes.push(records.len()),
            Fragment::End(end) => assert_eq!(end, QueryEnd::Complete),
        }
    }
    assert!(sizes.iter().all(|&n| n <= 100));
    assert_eq!(
        sizes.iter().sum::<usize>(),
        (0..20_000).filter(|i| i % 90 < 10).count()
    );
}

#[test]
fn an_indexed_field_narrows_the_scan_to_the_same_results() {
    let (_dir, store) = store();
    people(&store, "people", 10_000);
    let filter = "city = 'Lima' and age > 50";
    let (scanned, _) = store
        .query("people", Query::filter(filter))
        .unwrap()
        .collect_all()
        .unwrap();
    store
        .database("people")
        .unwrap()
        .create_index("city")
        .unwrap();
    let run = store.query("people", Query::filter(filter)).unwrap();
    assert!(run.uses_index());
    let (indexed, _) = run.collect_all().unwrap();
    assert_eq!(names(&indexed), names(&scanned));
    assert!(!indexed.is_empty());
}

#[test]
fn a_query_is_listed_paused_resumed_and_stopped_and_waits_for_its_reader() {
    let (_dir, store) = store();
    people(&store, "people", 200_000);
    let mut run = store.query("people", Query::all().fragment(64)).unwrap();
    // Nobody reads: the scan stops after a few windows of fragments.
    std::thread::sleep(Duration::from_millis(300));
    let (scanned, _) = run.progress();
    assert!(
        scanned < 200_000,
        "the scan ran ahead of its reader: {scanned}"
    );
    let listed = store.queries();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, run.id());
    assert_eq!(listed[0].database, "people");

    store.pause_query(run.id()).unwrap();
    assert_eq!(store.queries()[0].state, QueryState::Paused);
    // Paused: reading drains what was found, then no more is scanned.
    let mut read = 0;
    for _ in 0..200 {
        if let Some(Ok(Fragment::Records(records))) = run.next() {
            read += records.len();
        }
    }
    let paused_at = run.progress().0;
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(run.progress().0, paused_at, "a paused query scans nothing");
    store.resume_query(run.id()).unwrap();
    assert_eq!(store.queries()[0].state, QueryState::Running);
    store.stop_query(run.id()).unwrap();
    let mut end = None;
    for fragment in run.by_ref() {
        match fragment.unwrap() {
            Fragment::Records(records) => read += records.len(),
            Fragment::End(how) => end = Some(how),
        }
    }
    assert_eq!(end, Some(QueryEnd::Stopped));
    assert!(read < 200_000);
    // Over: no longer listed.
    for _ in 0..100 {
        if store.queries().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(store.queries().is_empty());
    assert!(matches!(
        store.stop_query(run.id()),
        Err(DbError::NoSuchQuery(_))
    ));
}

#[test]
fn a_time_budget_ends_a_query_early() {
    let (_dir, store) = store();
    people(&store, "people", 100_000);
    let (found, end) = store
        .query("people", Query::all().time_budget(Duration::ZERO))
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(end, QueryEnd::OutOfTime);
    assert!(found.is_empty());
}

#[test]
fn aggregations_with_and_without_groups() {
    let (_dir, store) = store();
    people(&store, "people", 1000);
    let all = store.aggregate("people", &Aggregate::of("age")).unwrap();
    assert_eq!(all.len(), 1);
    let ages: Vec<f64> = (0..1000).map(|i| (i % 90) as f64).collect();
    assert_eq!(all[0].count, 1000);
    assert_eq!(all[0].sum, ages.iter().sum::<f64>());
    assert_eq!(all[0].min, Some(0.0));
    assert_eq!(all[0].max, Some(89.0));
    let by_city = store
        .aggregate(
            "people",
            &Aggregate::of("score").group_by("city").filter("age >= 45"),
        )
        .unwrap();
    assert_eq!(by_city.len(), 4);
    for group in &by_city {
        let city = group.key.as_str().unwrap();
        let index = ["Oslo", "Rome", "Lima", "Pune"]
            .iter()
            .position(|c| *c == city)
            .unwrap();
        let members: Vec<f64> = (0..1000u64)
            .filter(|i| (i % 4) as usize == index && i % 90 >= 45)
            .map(|i| i as f64 / 2.0)
            .collect();
        assert_eq!(group.count, members.len() as u64, "{city}");
        assert_eq!(group.sum, members.iter().sum::<f64>(), "{city}");
        let average = group.average.unwrap();
        assert!((average - group.sum / group.count as f64).abs() < 1e-9);
    }
    let none = store
        .aggregate("people", &Aggregate::count().filter("age > 1000"))
        .unwrap();
    assert_eq!(none[0].count, 0);
    assert_eq!(none[0].average, None);
}

#[test]
fn bad_filters_are_typed_errors_with_positions() {
    let (_dir, store) = store();
    people(&store, "people", 10);
    let Err(DbError::Expression(error)) = store.query("people", Query::filter("age >= ")) else {
        panic!("a filter that does not parse is an expression error");
    };
    assert!(error.pos().is_some(), "{error}");
    assert!(matches!(
        store.query("people", Query::filter("nosuchfunction(age)")),
        Err(DbError::Expression(_))
    ));
    // A filter that is not a boolean fails on the first record, with its id.
    let run = store.query("people", Query::filter("name")).unwrap();
    assert!(matches!(
        run.collect_all(),
        Err(DbError::Eval { id: 1, .. })
    ));
}

#[test]
fn stored_results_are_the_same_from_either_kind_of_run() {
    let (_dir, store) = store();
    people(&store, "people", 3_000);
    let stored = |mut run: zs_db::QueryRun| {
        let mut records = Vec::new();
        while let Some(fragment) = run.next_stored() {
            match fragment.unwrap() {
                zs_db::StoredFragment::Records(found) => records.extend(found),
                zs_db::StoredFragment::End(end) => {
                    assert_eq!(end, QueryEnd::Complete);
                    break;
                }
            }
        }
        records
    };
    let query = || Query::filter("age < 3");
    let forwarded = stored(store.query_stored("people", query()).unwrap());
    let decoded = stored(store.query("people", query()).unwrap());
    assert_eq!(forwarded.len(), 3_000 / 90 * 3 + 3);
    assert_eq!(
        forwarded, decoded,
        "a decoded run encodes its records back alike"
    );
    let (records, _) = store
        .query("people", query())
        .unwrap()
        .collect_all()
        .unwrap();
    for ((id, bytes), (same_id, record)) in forwarded.iter().zip(&records) {
        assert_eq!(id, same_id);
        assert_eq!(&Record::decode(bytes).unwrap(), record);
    }
}
