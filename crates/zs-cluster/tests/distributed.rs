//! A database split across three nodes: queries fan out and merge in id order with filters,
//! reverse order and limits, and aggregations merge to what one database holding every
//! record computes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use serde_json::json;
use zs_cluster::DistributedDb;
use zs_db::service::{DbClient, DbService};
use zs_db::{Aggregate, Query, Record};

async fn db_server() -> (tempfile::TempDir, zs::ServerHandle, Arc<zs::Client>) {
    let dir = tempfile::tempdir().unwrap();
    let mut server = zs::Server::bind("127.0.0.1:0").await.unwrap();
    server.install(DbService::new(zs_db::Store::open(dir.path()).unwrap()));
    let server = server.spawn();
    let client = Arc::new(zs::Client::connect(server.local_addr()).await.unwrap());
    (dir, server, client)
}

fn person(n: u64) -> Record {
    Record::Json(json!({ "n": n, "team": format!("t{}", n % 4), "score": (n * 37) % 101 }))
}

fn n_of(record: &Record) -> u64 {
    let Record::Json(json) = record else {
        panic!("a JSON record")
    };
    json["n"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_aggregations_over_three_parts_match_one_database() {
    let mut parts = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..3 {
        let (dir, server, client) = db_server().await;
        keep.push((dir, server));
        parts.push(client);
    }
    let (_dir, _server, whole) = db_server().await;
    let whole = DbClient::new(whole.peer());
    let db = DistributedDb::new(parts);
    db.create("people").await.unwrap();
    whole.create("people").await.unwrap();
    let records: Vec<Record> = (0..3000).map(person).collect();
    let ids = db.post("people", records.clone()).await.unwrap();
    whole.post("people", records).await.unwrap();
    assert_eq!(ids.len(), 3000);
    let one = db.insert("people", person(3000)).await.unwrap();
    assert_eq!(n_of(&db.get("people", one).await.unwrap().unwrap()), 3000);
    assert!(db.delete("people", one).await.unwrap());
    assert!(db.get("people", one).await.unwrap().is_none());

    // A filter over every part, merged in id order, in small fragments.
    let mut query = Query::filter("n >= 1000 and n < 1100 and score > 50");
    query.fragment = Some(7);
    let mut running = db.query("people", &query).await.unwrap();
    let mut merged = Vec::new();
    while let Some(fragment) = running.next().await.unwrap() {
        assert!(fragment.len() <= 7);
        merged.extend(fragment);
    }
    assert!(
        merged.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "in id order"
    );
    let mut found: Vec<u64> = merged.iter().map(|(_, record)| n_of(record)).collect();
    found.sort_unstable();
    let expected: Vec<u64> = (1000..1100).filter(|n| (n * 37) % 101 > 50).collect();
    assert_eq!(found, expected);

    // Reverse with a limit: the highest ids of all parts.
    let mut newest = Query::all().reverse();
    newest.limit = Some(5);
    let top = db
        .query("people", &newest)
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(top.len(), 5);
    assert!(top.windows(2).all(|pair| pair[0].0 > pair[1].0));
    let max_id = *ids.iter().max().unwrap();
    assert_eq!(top[0].0, max_id);

    // Aggregations, grouped and not, equal the single database's.
    for aggregate in [
        Aggregate::count(),
        Aggregate::of("score"),
        Aggregate::of("score").group_by("team"),
        Aggregate::of("n").filter("score < 30").group_by("team"),
    ] {
        let split = db.aggregate("people", &aggregate).await.unwrap();
        let mut single = whole.aggregate("people", &aggregate).await.unwrap();
        single.sort_by_key(|group| group.key.to_string());
        assert_eq!(split.len(), single.len(), "{aggregate:?}");
        for (a, b) in split.iter().zip(&single) {
            assert_eq!((&a.key, a.count, a.values), (&b.key, b.count, b.values));
            assert!((a.sum - b.sum).abs() < 1e-6);
            assert_eq!((a.min, a.max), (b.min, b.max));
            assert!((a.average.unwrap_or(0.0) - b.average.unwrap_or(0.0)).abs() < 1e-9);
        }
    }
}
