//! Records, batches, ids, indexes, copies and bad input.

use serde_json::json;
use zs_db::{DbError, Op, Query, Record, Store};

use crate::{people, store};

#[test]
fn insert_get_modify_delete_with_stable_ids() {
    let (dir, store) = store();
    let db = store.create("things").unwrap();
    let a = db.insert(Record::Json(json!({"n": 1}))).unwrap();
    let b = db.insert(Record::Bytes(vec![1, 2, 3])).unwrap();
    assert_eq!((a, b), (1, 2));
    assert_eq!(db.get(a).unwrap(), Some(Record::Json(json!({"n": 1}))));
    db.modify(a, Record::Json(json!({"n": 2}))).unwrap();
    assert_eq!(db.get(a).unwrap(), Some(Record::Json(json!({"n": 2}))));
    assert!(db.delete(a).unwrap());
    assert!(!db.delete(a).unwrap());
    assert!(matches!(
        db.modify(a, Record::Json(json!({}))),
        Err(DbError::NoSuchRecord { id: 1, .. })
    ));
    // A deleted id is never given out again, across a reopen and a compaction.
    let c = db.insert(Record::Json(json!({"n": 3}))).unwrap();
    assert_eq!(c, 3);
    drop(db);
    store.compact("things").unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    let db = store.database("things").unwrap();
    assert_eq!(db.len().unwrap(), 2);
    assert_eq!(db.get(b).unwrap(), Some(Record::Bytes(vec![1, 2, 3])));
    assert_eq!(db.insert(Record::Json(json!({}))).unwrap(), 4);
}

#[test]
fn a_batch_is_one_transaction() {
    let (_dir, store) = store();
    let db = store.create("batch").unwrap();
    let ids = db
        .write_batch([
            Op::Insert(Record::Json(json!({"k": "a"}))),
            Op::Insert(Record::Json(json!({"k": "b"}))),
        ])
        .unwrap();
    assert_eq!(ids, vec![1, 2]);
    // A batch with a failing op stores none of its ops.
    let failed = db.write_batch([
        Op::Insert(Record::Json(json!({"k": "c"}))),
        Op::Modify(99, Record::Json(json!({}))),
    ]);
    assert!(matches!(failed, Err(DbError::NoSuchRecord { id: 99, .. })));
    assert_eq!(db.len().unwrap(), 2);
    let too_big = Record::Bytes(vec![0; zs_db::MAX_RECORD_LEN]);
    assert!(matches!(
        db.insert(too_big),
        Err(DbError::RecordTooLarge { .. })
    ));
}

#[test]
fn indexes_follow_writes_and_serve_lookups() {
    let (_dir, store) = store();
    people(&store, "people", 1000);
    let db = store.database("people").unwrap();
    db.create_index("city").unwrap();
    let oslo = db
        .lookup("city", &zs_db::zs_expr::Value::Str("Oslo".into()))
        .unwrap()
        .unwrap();
    assert_eq!(oslo.len(), 250);
    // Moving a record to another city moves it in the index.
    let first = oslo[0];
    db.modify(first, Record::Json(json!({"city": "Rome"})))
        .unwrap();
    db.delete(oslo[1]).unwrap();
    let oslo_now = db
        .lookup("city", &zs_db::zs_expr::Value::Str("Oslo".into()))
        .unwrap()
        .unwrap();
    assert_eq!(oslo_now.len(), 248);
    assert!(!oslo_now.contains(&first));
    assert_eq!(
        db.lookup("age", &zs_db::zs_expr::Value::Int(1)).unwrap(),
        None
    );
    // Indexes survive a reopen.
    drop(db);
    let (records, _) = store
        .query("people", Query::filter("city = 'Oslo'"))
        .unwrap()
        .collect_all()
        .unwrap();
    assert_eq!(records.len(), 248);
}

#[test]
fn databases_are_listed_copied_backed_up_and_removed() {
    let (dir, store) = store();
    people(&store, "a", 100);
    store.create("b").unwrap();
    assert_eq!(store.list().unwrap(), vec!["a", "b"]);
    // Copy while a writer goes on.
    let db = store.database("a").unwrap();
    assert_eq!(store.copy("a", "c").unwrap(), 100);
    db.insert(Record::Json(json!({"late": true}))).unwrap();
    assert_eq!(store.database("c").unwrap().len().unwrap(), 100);
    let backup = dir.path().join("backup.redb");
    assert_eq!(store.backup("a", &backup).unwrap(), 101);
    assert!(backup.exists());
    store.remove("b").unwrap();
    assert_eq!(store.list().unwrap(), vec!["a", "c"]);
    assert!(matches!(store.remove("b"), Err(DbError::NoSuchDatabase(_))));
    assert!(matches!(store.create("a"), Err(DbError::Exists(_))));
    assert!(matches!(store.copy("a", "c"), Err(DbError::Exists(_))));
}

#[test]
fn bad_names_and_unknown_databases_are_typed_errors() {
    let (_dir, store) = store();
    for name in ["", "../etc", ".hidden", "a/b", "a b", &"x".repeat(65)] {
        assert!(
            matches!(store.create(name), Err(DbError::BadName { .. })),
            "{name:?}"
        );
    }
    assert!(matches!(
        store.database("nothing"),
        Err(DbError::NoSuchDatabase(_))
    ));
    assert!(matches!(
        store.query("nothing", Query::all()),
        Err(DbError::NoSuchDatabase(_))
    ));
}

#[test]
fn encoded_inserts_are_checked_with_and_without_indexes() {
    let (_dir, store) = store();
    for indexed in [false, true] {
        let name = format!("enc{indexed}");
        let db = store.create(&name).unwrap();
        if indexed {
            db.create_index("k").unwrap();
        }
        let good = Record::Json(json!({"k": "a"})).encode().unwrap();
        // Broken JSON text; and objects whose indexed field comes first and is fine, but
        // something after it is not (bytes past the end, a string that is not UTF-8): the
        // whole record is checked, not only as far as the indexed field.
        let mut trailing = Record::Json(json!({"k": "a", "z": 1})).encode().unwrap();
        trailing.push(0);
        let mut bad_text = Record::Json(json!({"k": "a", "z": "é"})).encode().unwrap();
        let last = bad_text.len() - 1;
        bad_text[last] = 0xff;
        for broken in [vec![1, b'{', b'"'], trailing, bad_text] {
            let refused = db.insert_encoded(vec![good.clone(), broken]);
            assert!(
                matches!(refused, Err(DbError::BadRecord(_))),
                "{indexed}: {refused:?}"
            );
        }
        assert_eq!(db.len().unwrap(), 0, "no part of a refused batch is stored");
        assert_eq!(db.insert_encoded(vec![good.clone(), good]).unwrap(), 1..3);
        let (found, _) = store
            .query(&name, Query::filter("k = 'a'"))
            .unwrap()
            .collect_all()
            .unwrap();
        assert_eq!(found.len(), 2);
    }
}
