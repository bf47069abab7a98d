//! A writer process killed with SIGKILL in the middle of batched writes: reopened, the
//! database holds every batch the writer saw committed, and no part of any other batch.
//!
//! The child is this test binary again, running the ignored test `crash::writer_child` with
//! `ZDB_CRASH_DIR` set: it writes numbered batches and prints each number once its batch is
//! committed. The parent kills it after some batches, mid-write.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use zs_db::{Aggregate, Op, Record, Store};

const BATCH: u64 = 500;

#[test]
fn a_writer_killed_mid_batch_leaves_whole_batches_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash::writer_child", "--ignored", "--nocapture"])
        .env("ZDB_CRASH_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut acknowledged = 0;
    while acknowledged < 20 && started.elapsed() < Duration::from_secs(60) {
        let Some(line) = lines.next() else { break };
        if let Some(number) = line.unwrap().strip_prefix("committed ") {
            acknowledged = number.trim().parse().unwrap();
        }
    }
    assert!(
        acknowledged >= 20,
        "the writer committed only {acknowledged} batches"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let store = Store::open(dir.path()).unwrap();
    let groups = store
        .aggregate("crash", &Aggregate::count().group_by("batch"))
        .unwrap();
    let mut seen = Vec::new();
    for group in &groups {
        let batch = group.key.as_u64().unwrap();
        assert_eq!(group.count, BATCH, "batch {batch} is partly stored");
        seen.push(batch);
    }
    seen.sort_unstable();
    // Every acknowledged batch is there; at most the one in flight follows.
    let expected: Vec<u64> = (1..=acknowledged).collect();
    assert_eq!(&seen[..acknowledged as usize], expected.as_slice());
    assert!(seen.len() as u64 <= acknowledged + 1, "{seen:?}");
}

/// The child: writes batches until killed. Ignored unless run by the test above.
#[test]
#[ignore = "run as a child process by a_writer_killed_mid_batch_leaves_whole_batches_only"]
fn writer_child() {
    let Some(dir) = std::env::var_os("ZDB_CRASH_DIR") else {
        return;
    };
    let store = Store::open(dir).unwrap();
    let db = store.create("crash").unwrap();
    for batch in 1u64.. {
        let ops = (0..BATCH).map(|i| {
            Op::Insert(Record::Json(
                json!({"batch": batch, "i": i, "pad": "x".repeat(100)}),
            ))
        });
        db.write_batch(ops).unwrap();
        println!("committed {batch}");
    }
}
