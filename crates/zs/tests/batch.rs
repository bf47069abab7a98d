//! BatchStream over real sockets: items come back in post order, a batch over the memory cap
//! spills to disk and still reads back intact, the disk cap refuses posts, clear and state,
//! and a disconnect removes the connection's batches and spill files.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use zs::{
    BatchLimits, BatchService, CallError, Client, DataFrame, Server, ServerHandle, batch_clear,
    batch_clear_all, batch_new, batch_post, batch_state,
};
use zs_wire::crypto::hash::HashAlgorithm;

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;

/// A server with `service` registered and `sum_batch`, which takes the named batch and
/// replies [items, bytes, spilled bytes, then each item's SHA3-256 in the order read].
async fn server(service: &BatchService) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    service.register(server.commands_mut());
    let store = service.clone();
    server.register_stream("sum_batch", move |ctx, input: DataFrame| {
        let store = store.clone();
        async move {
            let name = input.reader().read_string()?;
            let mut batch = store
                .take(ctx.peer(), &name)
                .await
                .ok_or_else(|| format!("no batch named {name:?}"))?;
            assert_eq!(batch.name(), name);
            let mut reply = DataFrame::new()
                .with(batch.len() as u64)
                .with(batch.bytes())
                .with(batch.spilled_bytes());
            while let Some(item) = batch.next_item().await? {
                reply.push(HashAlgorithm::Sha3_256.digest(&item));
            }
            assert!(batch.is_empty());
            assert_eq!(batch.bytes(), 0);
            Ok(reply)
        }
    });
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

/// Item `index` of `len` bytes: incompressible and different for every index.
fn item(index: u64, len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ index.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    data
}

/// Runs `sum_batch` on `name` and checks that it yielded exactly `items`, in order.
async fn check_consumed(client: &Client, name: &str, items: &[Vec<u8>], spilled: u64) {
    let reply = client
        .call_stream("sum_batch", &DataFrame::new().with(name))
        .await
        .unwrap();
    let mut reader = reply.reader();
    assert_eq!(reader.read_u64().unwrap(), items.len() as u64);
    let bytes: usize = items.iter().map(Vec::len).sum();
    assert_eq!(reader.read_u64().unwrap(), bytes as u64);
    assert_eq!(reader.read_u64().unwrap(), spilled);
    for (index, item) in items.iter().enumerate() {
        assert_eq!(
            reader.read_bytes().unwrap(),
            HashAlgorithm::Sha3_256.digest(item),
            "item {index}"
        );
    }
    assert_eq!(reader.remaining(), 0);
}

/// This service's spill files in `dir`.
fn spill_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("zs-batch-"))
        .collect()
}

fn is_remote_error(error: &CallError, needle: &str) -> bool {
    matches!(error, CallError::Remote { message, .. } if message.contains(needle))
}

#[tokio::test]
async fn ten_items_come_back_in_post_order() {
    let service = BatchService::default();
    let (server, addr) = server(&service).await;
    let client = Client::connect(addr).await.unwrap();
    let peer = client.peer();

    batch_new(peer, "small").await.unwrap();
    let mut items = Vec::new();
    for index in 0..10u64 {
        let data = item(index, 10 + 37 * index as usize);
        let info = batch_post(peer, "small", &data).await.unwrap();
        assert_eq!(info.items, index + 1);
        assert_eq!(info.spilled, 0);
        items.push(data);
    }
    // An empty item is an item too.
    batch_post(peer, "small", b"").await.unwrap();
    items.push(Vec::new());

    let state = batch_state(peer).await.unwrap();
    assert_eq!(state.batches.len(), 1);
    assert_eq!(state.batches[0].name, "small");
    assert_eq!(state.batches[0].items, 11);
    let bytes: usize = items.iter().map(Vec::len).sum();
    assert_eq!(state.batches[0].bytes, bytes as u64);
    assert_eq!(state.memory, bytes as u64);
    assert_eq!(state.disk, 0);

    check_consumed(&client, "small", &items, 0).await;

    // Taken: gone from the store, its memory released.
    let state = batch_state(peer).await.unwrap();
    assert!(state.batches.is_empty());
    assert_eq!((state.memory, state.disk), (0, 0));
    let error = client
        .call_stream("sum_batch", &DataFrame::new().with("small"))
        .await
        .unwrap_err();
    assert!(is_remote_error(&error, "no batch named"), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn batch_over_the_memory_cap_spills_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let service = BatchService::new(MIB, Some(dir.path().to_owned()));
    let (server, addr) = server(&service).await;
    let client = Client::connect(addr).await.unwrap();
    let peer = client.peer();

    batch_new(peer, "big").await.unwrap();
    let items: Vec<Vec<u8>> = (0..8).map(|index| item(index, 512 * KIB)).collect();
    for data in &items {
        batch_post(peer, "big", data).await.unwrap();
    }

    // Two items fill the 1 MiB cap; the other six are on disk.
    let state = batch_state(peer).await.unwrap();
    let info = &state.batches[0];
    assert_eq!(info.items, 8);
    assert_eq!(info.bytes, 4 * MIB);
    assert!(info.spilled > 0);
    assert_eq!(info.spilled, 3 * MIB);
    assert_eq!(state.memory, MIB);
    assert_eq!(state.disk, 3 * MIB);
    let files = spill_files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");

    check_consumed(&client, "big", &items, 3 * MIB).await;

    // The consumed batch's file is gone and both caps are free again.
    assert!(spill_files(dir.path()).is_empty());
    let state = batch_state(peer).await.unwrap();
    assert_eq!((state.memory, state.disk), (0, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn posts_past_the_disk_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut limits = BatchLimits::default();
    limits.memory_per_connection = MIB;
    limits.disk_per_connection = 2 * MIB;
    limits.spill_dir = Some(dir.path().to_owned());
    let service = BatchService::with_limits(limits);
    let (server, addr) = server(&service).await;
    let client = Client::connect(addr).await.unwrap();
    let peer = client.peer();

    batch_new(peer, "capped").await.unwrap();
    let items: Vec<Vec<u8>> = (0..6).map(|index| item(index, 512 * KIB)).collect();
    for data in &items {
        batch_post(peer, "capped", data).await.unwrap();
    }
    // 1 MiB in memory and 2 MiB on disk: the seventh item fits nowhere.
    let error = batch_post(peer, "capped", &item(6, 512 * KIB))
        .await
        .unwrap_err();
    assert!(is_remote_error(&error, "refused"), "{error}");
    // Smaller items are refused too once both are full, and nothing was stored.
    let error = batch_post(peer, "capped", &[0u8; 2 * KIB])
        .await
        .unwrap_err();
    assert!(is_remote_error(&error, "refused"), "{error}");
    let state = batch_state(peer).await.unwrap();
    assert_eq!(state.batches[0].items, 6);
    assert_eq!(state.batches[0].spilled, 2 * MIB);
    assert_eq!(state.disk, 2 * MIB);

    // The connection is still fine, and the batch holds exactly what was accepted.
    check_consumed(&client, "capped", &items, 2 * MIB).await;

    // Consuming freed the caps: posting works again.
    batch_new(peer, "again").await.unwrap();
    batch_post(peer, "again", &item(7, 512 * KIB))
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn clear_state_and_count_limits() {
    let mut limits = BatchLimits::default();
    limits.batches_per_connection = 3;
    limits.items_per_connection = 5;
    let service = BatchService::with_limits(limits);
    let (server, addr) = server(&service).await;
    let client = Client::connect(addr).await.unwrap();
    let peer = client.peer();

    // Nothing yet.
    let state = batch_state(peer).await.unwrap();
    assert!(state.batches.is_empty());

    for name in ["c", "a", "b"] {
        batch_new(peer, name).await.unwrap();
    }
    let error = batch_new(peer, "a").await.unwrap_err();
    assert!(is_remote_error(&error, "already exists"), "{error}");
    let error = batch_new(peer, "d").await.unwrap_err();
    assert!(is_remote_error(&error, "at most 3 batches"), "{error}");
    let error = batch_new(peer, "").await.unwrap_err();
    assert!(is_remote_error(&error, "batch name"), "{error}");
    let error = batch_post(peer, "nope", b"x").await.unwrap_err();
    assert!(is_remote_error(&error, "no batch named"), "{error}");
    assert!(matches!(
        batch_post(peer, "", b"x").await,
        Err(CallError::Source(_))
    ));

    batch_post(peer, "a", b"one").await.unwrap();
    batch_post(peer, "a", b"two").await.unwrap();
    batch_post(peer, "b", b"three").await.unwrap();
    batch_post(peer, "c", b"four").await.unwrap();
    batch_post(peer, "c", b"five").await.unwrap();
    let error = batch_post(peer, "c", b"six").await.unwrap_err();
    assert!(is_remote_error(&error, "at most 5 batch items"), "{error}");

    let state = batch_state(peer).await.unwrap();
    let summary: Vec<(&str, u64, u64, u64)> = state
        .batches
        .iter()
        .map(|info| (info.name.as_str(), info.items, info.bytes, info.spilled))
        .collect();
    assert_eq!(
        summary,
        [("a", 2, 6, 0), ("b", 1, 5, 0), ("c", 2, 8, 0)],
        "sorted by name"
    );
    assert_eq!(state.memory, 19);

    assert!(batch_clear(peer, "b").await.unwrap());
    assert!(!batch_clear(peer, "b").await.unwrap());
    let state = batch_state(peer).await.unwrap();
    let names: Vec<&str> = state
        .batches
        .iter()
        .map(|info| info.name.as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(state.memory, 14);

    // Clearing freed a batch slot and an item slot.
    batch_new(peer, "d").await.unwrap();
    batch_post(peer, "d", b"six").await.unwrap();
    check_consumed(&client, "d", &[b"six".to_vec()], 0).await;

    assert_eq!(batch_clear_all(peer).await.unwrap(), 2);
    let state = batch_state(peer).await.unwrap();
    assert!(state.batches.is_empty());
    assert_eq!((state.memory, state.disk), (0, 0));
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_removes_batches_and_spill_files() {
    let dir = tempfile::tempdir().unwrap();
    let service = BatchService::new(MIB, Some(dir.path().to_owned()));
    let (server, addr) = server(&service).await;

    // A second connection whose batches must not be touched by the first one's end.
    let other = Client::connect(addr).await.unwrap();
    batch_new(other.peer(), "kept").await.unwrap();
    batch_post(other.peer(), "kept", b"stays").await.unwrap();

    let client = Client::connect(addr).await.unwrap();
    for name in ["one", "two"] {
        batch_new(client.peer(), name).await.unwrap();
        for index in 0..3 {
            batch_post(client.peer(), name, &item(index, 512 * KIB))
                .await
                .unwrap();
        }
    }
    assert_eq!(spill_files(dir.path()).len(), 2);
    client.close().await;

    tokio::time::timeout(Duration::from_secs(10), async {
        while server.connection_count() != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while !spill_files(dir.path()).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("spill files removed after the disconnect");

    let state = batch_state(other.peer()).await.unwrap();
    assert_eq!(state.batches.len(), 1);
    assert_eq!(state.batches[0].name, "kept");
    other.close().await;

    tokio::time::timeout(Duration::from_secs(10), async {
        while server.connection_count() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while !format!("{service:?}").contains("connections: 0") {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every connection's store removed");
    assert!(spill_files(dir.path()).is_empty());
    server.shutdown().await;
}
