//! `zs db` against `zs serve --db DIR` in a child process: post a JSON-lines file, query,
//! aggregate, and a bad filter's error.

use std::path::Path;

use crate::files_cli::{FileServer, fresh_dir};

#[test]
fn post_query_and_aggregate_through_zs_serve_db() {
    let server = FileServer::start_with(|dir| vec!["--db".into(), dir.join("store").into()]);
    let local = fresh_dir("db-local");
    let file = local.join("people.jsonl");
    let lines: Vec<String> = (0..2000)
        .map(|i| {
            let city = ["Oslo", "Rome"][i % 2];
            format!(r#"{{"name": "p{i}", "age": {}, "city": "{city}"}}"#, i % 90)
        })
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let db = |args: &[&str]| {
        let paths: Vec<&Path> = args.iter().map(Path::new).collect();
        server.run("db", &paths)
    };

    let (ok, _, stderr) = db(&["create", "people", "--index", "city"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = db(&["post", "people", file.to_str().unwrap(), "--batch", "500"]);
    assert!(ok, "{stderr}");
    assert!(
        stderr.starts_with("posted 2000 records to people"),
        "{stderr}"
    );
    assert!(stderr.ends_with("ids 1..2001"), "{stderr}");

    let (ok, stdout, stderr) = db(&["query", "people", "city = 'Rome' and age = 7"]);
    assert!(ok, "{stderr}");
    let ids: Vec<u64> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let expected: Vec<u64> = (0..2000u64)
        .filter(|i| i % 2 == 1 && i % 90 == 7)
        .map(|i| i + 1)
        .collect();
    assert_eq!(ids, expected);

    let (ok, stdout, stderr) = db(&[
        "aggregate",
        "people",
        "--field",
        "age",
        "--group-by",
        "city",
    ]);
    assert!(ok, "{stderr}");
    let groups: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(groups[0]["key"], "Oslo");
    assert_eq!(groups[0]["count"], 1000);
    let oslo_ages: u64 = (0..2000u64).filter(|i| i % 2 == 0).map(|i| i % 90).sum();
    assert_eq!(groups[0]["sum"].as_f64().unwrap(), oslo_ages as f64);

    let (ok, _, stderr) = db(&["query", "people", "age >"]);
    assert!(!ok);
    assert!(stderr.contains("at byte 5"), "{stderr}");
    assert!(server.dir().join("store").join("people.zdb").exists());
    let _ = std::fs::remove_dir_all(local);
}
