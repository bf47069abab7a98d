//! ZDB over a real loopback zserver connection: DbService and DbClient.

use std::time::Duration;

use serde_json::json;
use zs::{Client, Server, StatusCode};
use zs_db::service::{DbClient, DbClientError, DbService};
use zs_db::{Aggregate, Query, QueryEnd, Record, Store};

async fn serve() -> (tempfile::TempDir, zs::ServerHandle, DbService) {
    let dir = tempfile::tempdir().unwrap();
    let service = DbService::new(Store::open(dir.path()).unwrap());
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.install(service.clone());
    (dir, server.spawn(), service)
}

fn code(error: &DbClientError) -> Option<StatusCode> {
    error.code()
}

fn person(i: u64) -> Record {
    let city = ["Oslo", "Rome"][(i % 2) as usize];
    Record::Json(json!({"name": format!("p{i}"), "age": i % 90, "city": city}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_posts_queries_and_aggregations_over_the_network() {
    let (_dir, server, _service) = serve().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let db = DbClient::new(client.peer());
    db.create("people").await.unwrap();
    db.create_index("people", "city").await.unwrap();
    assert_eq!(db.list().await.unwrap(), vec!["people"]);

    let ids = db.post("people", (0..10_000).map(person)).await.unwrap();
    assert_eq!(ids, 1..10_001);
    let id = db.insert("people", person(10_000)).await.unwrap();
    assert_eq!(id, 10_001);
    assert_eq!(db.get("people", 5).await.unwrap(), Some(person(4)));
    db.modify("people", 5, Record::Bytes(vec![7; 3]))
        .await
        .unwrap();
    assert_eq!(
        db.get("people", 5).await.unwrap(),
        Some(Record::Bytes(vec![7; 3]))
    );
    assert!(db.delete("people", 5).await.unwrap());
    assert_eq!(db.get("people", 5).await.unwrap(), None);

    let mut query = db
        .query("people", &Query::filter("age = 7").fragment(10))
        .await
        .unwrap();
    let mut fragments = 0;
    let mut found = Vec::new();
    while let Some(records) = query.next().await.unwrap() {
        assert!(records.len() <= 10);
        fragments += 1;
        found.extend(records.into_iter().map(|(id, _)| id));
    }
    assert_eq!(query.end(), Some(QueryEnd::Complete));
    let expected: Vec<u64> = (0..10_001u64)
        .filter(|i| i % 90 == 7)
        .map(|i| i + 1)
        .collect();
    assert_eq!(found, expected);
    assert!(fragments > 1);
    assert_eq!(query.progress().1, expected.len() as u64);

    let groups = db
        .aggregate("people", &Aggregate::of("age").group_by("city"))
        .await
        .unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups.iter().map(|group| group.count).sum::<u64>(), 10_000);
    assert_eq!(db.copy("people", "copy").await.unwrap(), 10_000);
    let written = db
        .query_into("people", &Query::filter("age = 7"), "sevens")
        .await
        .unwrap();
    assert_eq!(written, expected.len() as u64);
    let sevens = db
        .query("sevens", &Query::all())
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    assert_eq!(sevens.len(), expected.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_statuses_and_the_connection_stays() {
    let (_dir, server, _service) = serve().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let db = DbClient::new(client.peer());
    let missing = db.insert("nothing", person(1)).await.unwrap_err();
    assert_eq!(code(&missing), Some(StatusCode::NOT_FOUND));
    db.create("people").await.unwrap();
    let exists = db.create("people").await.unwrap_err();
    assert_eq!(code(&exists), Some(StatusCode::ALREADY_EXISTS));
    let bad_name = db.create("../x").await.unwrap_err();
    assert_eq!(code(&bad_name), Some(StatusCode::INVALID_ARGUMENT));
    let bad_filter = db
        .query("people", &Query::filter("age >"))
        .await
        .unwrap_err();
    assert_eq!(code(&bad_filter), Some(StatusCode::INVALID_ARGUMENT));
    // The position travels in the status message: "filter: at byte 5: ...".
    assert!(bad_filter.to_string().contains("at byte 5"), "{bad_filter}");
    // A post that is not a DataFrame, and one whose values are not records.
    let raw = client
        .peer()
        .send_complete_buffer("__zs.db.post", bytes::Bytes::from_static(b"\xff\xff junk"))
        .await
        .unwrap_err();
    assert_eq!(
        raw.status().map(zs::Status::code),
        Some(StatusCode::INVALID_ARGUMENT)
    );
    let frame = zs::DataFrame::new().with("people").with(42u32);
    let wrong = client
        .peer()
        .send_complete_buffer("__zs.db.post", bytes::Bytes::from(frame.encode()))
        .await
        .unwrap_err();
    assert_eq!(
        wrong.status().map(zs::Status::code),
        Some(StatusCode::INVALID_ARGUMENT)
    );
    // A stored form that is not a record: the whole post is refused.
    let frame = zs::DataFrame::new()
        .with("people")
        .with(Record::Json(json!({"ok": 1})).encode().unwrap())
        .with(vec![1u8, b'{']);
    let broken = client
        .peer()
        .send_complete_buffer("__zs.db.post", bytes::Bytes::from(frame.encode()))
        .await
        .unwrap_err();
    assert_eq!(
        broken.status().map(zs::Status::code),
        Some(StatusCode::INVALID_ARGUMENT)
    );
    // Nothing was stored, and the connection still works.
    db.post("people", [person(1)]).await.unwrap();
    assert_eq!(db.get("people", 1).await.unwrap(), Some(person(1)));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_query_is_paused_stopped_and_ends_with_its_connection() {
    let (_dir, server, service) = serve().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let db = DbClient::new(client.peer());
    db.create("big").await.unwrap();
    for batch in 0..10u64 {
        db.post("big", (batch * 10_000..(batch + 1) * 10_000).map(person))
            .await
            .unwrap();
    }
    let mut query = db.query("big", &Query::all().fragment(50)).await.unwrap();
    let first = query.next().await.unwrap().unwrap();
    assert_eq!(first.len(), 50);
    // The scan does not run ahead of the reader.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let listed = db.queries().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].3 < 100_000,
        "scanned {} of 100,000 unread",
        listed[0].3
    );
    query.pause().await.unwrap();
    assert!(db.queries().await.unwrap()[0].5, "listed as paused");
    query.resume().await.unwrap();
    query.stop().await.unwrap();
    let rest = query.collect_all().await.unwrap();
    assert!(rest.len() < 100_000);
    assert_eq!(query.end(), Some(QueryEnd::Stopped));

    // A query left running is stopped when its connection ends.
    let other = Client::connect(server.local_addr()).await.unwrap();
    let mut left = DbClient::new(other.peer())
        .query("big", &Query::all().fragment(10))
        .await
        .unwrap();
    left.next().await.unwrap();
    assert_eq!(service.store().queries().len(), 1);
    let _ = left.id();
    other.close().await;
    for _ in 0..200 {
        if service.store().queries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(service.store().queries().is_empty());
    server.shutdown().await;
}

/// The original's registered queriers: the server registers a function, clients call it in
/// their filters with their own parameters. And DataFrame records, whose values are fields
/// `_0`, `_1`, ... by position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_functions_and_dataframe_records() {
    use zs_db::zs_expr::{Arity, EvalError, Functions, Value};
    let dir = tempfile::tempdir().unwrap();
    let mut functions = Functions::new();
    // near(x, y, cx, cy, r): within distance r of (cx, cy).
    functions.register_pure("near", Arity::Exact(5), |args| {
        let mut numbers = [0.0; 5];
        for (slot, arg) in numbers.iter_mut().zip(args) {
            *slot = match arg {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Null => return Ok(Value::Null),
                other => {
                    return Err(EvalError::argument(
                        "near",
                        format!("{other:?} is not a number"),
                    ));
                }
            };
        }
        let [x, y, cx, cy, r] = numbers;
        Ok(Value::Bool((x - cx).hypot(y - cy) <= r))
    });
    let service = DbService::new(Store::with_functions(dir.path(), functions).unwrap());
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.install(service);
    let server = server.spawn();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let db = DbClient::new(client.peer());
    db.create("points").await.unwrap();
    let points = (0..100i64).map(|i| {
        Record::Frame(
            zs::DataFrame::new()
                .with(format!("pt{i}"))
                .with(i % 10)
                .with(i / 10),
        )
    });
    db.post("points", points).await.unwrap();
    let found = db
        .query("points", &Query::filter("near(_1, _2, 0, 0, 1.5)"))
        .await
        .unwrap()
        .collect_all()
        .await
        .unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|(_, record)| match record {
            Record::Frame(frame) => frame.reader().read_string().unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    // (0,0) (1,0) (0,1) (1,1): x = i % 10, y = i / 10.
    assert_eq!(names, vec!["pt0", "pt1", "pt10", "pt11"]);
    server.shutdown().await;
}
