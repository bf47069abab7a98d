//! BatchStream over real sockets: items come back in post order, a batch over the memory cap
//! spills to disk and still reads back intact, the disk cap refuses posts, clear and state,
//! and a disconnect removes the connection's batches and spill files.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use zs::services::batch::{BATCH_POST_COMMAND, BatchClient, BatchLimits, BatchService};
use zs::{CallError, Client, DataFrame, Server, ServerHandle, Status, StatusCode};
use zs_wire::crypto::hash::HashAlgorithm;

const KIB: usize = 1024;
const MIB: u64 = 1024 * 1024;

/// A server with `service` installed and `sum_batch`, which takes the named batch and
/// replies [items, bytes, spilled bytes, then each item's SHA3-256 in the order read].
async fn server(service: &BatchService) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.install(service.clone());
    let store = service.clone();
    server.register_stream("sum_batch", move |ctx, input: DataFrame| {
        let store = store.clone();
        async move {
            let name = input.reader().read_string()?;
            let mut batch = store
                .take(ctx.peer(), &name)
                .await
                .ok_or_else(|| Status::not_found(format!("no batch named {name:?}")))?;
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
    matches!(error, CallError::Remote(status) if status.message().contains(needle))
}

#[tokio::test]
async fn ten_items_come_back_in_post_order() {
    let service = BatchService::default();
    let (server, addr) = server(&service).await;
    let client = Client::connect(addr).await.unwrap();
    let peer = client.peer();

    BatchClient::new(peer).new_batch("small").await.unwrap();
    let mut items = Vec::new();
    for index in 0..10u64 {
        let data = item(index, 10 + 37 * index as usize);
        let info = BatchClient::new(peer).post("small", &data).await.unwrap();
        assert_eq!(info.items, index + 1);
        assert_eq!(info.spilled, 0);
        items.push(data);
    }
    // An empty item is an item too.
    BatchClient::new(peer).post("small", b"").await.unwrap();
    items.push(Vec::new());

    let state = BatchClient::new(peer).state().await.unwrap();
    assert_eq!(state.batches.len(), 1);
    assert_eq!(state.batches[0].name, "small");
    assert_eq!(state.batches[0].items, 11);
    let bytes: usize = items.iter().map(Vec::len).sum();
    assert_eq!(state.batches[0].bytes, bytes as u64);
    assert_eq!(state.memory, bytes as u64);
    assert_eq!(state.disk, 0);

    check_consumed(&client, "small", &items, 0).await;

    // Taken: gone from the store, its memory released.
    let state = BatchClient::new(peer).state().await.unwrap();
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

    BatchClient::new(peer).new_batch("big").await.unwrap();
    let items: Vec<Vec<u8>> = (0..8).map(|index| item(index, 512 * KIB)).collect();
    for data in &items {
        BatchClient::new(peer).post("big", data).await.unwrap();
    }

    // Two items fill the 1 MiB cap; the other six are on disk.
    let state = BatchClient::new(peer).state().await.unwrap();
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
    let state = BatchClient::new(peer).state().await.unwrap();
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

    BatchClient::new(peer).new_batch("capped").await.unwrap();
    let items: Vec<Vec<u8>> = (0..6).map(|index| item(index, 512 * KIB)).collect();
    for data in &items {
        BatchClient::new(peer).post("capped", data).await.unwrap();
    }
    // 1 MiB in memory and 2 MiB on disk: the seventh item fits nowhere.
    let error = BatchClient::new(peer)
        .post("capped", &item(6, 512 * KIB))
        .await
        .unwrap_err();
    assert!(is_remote_error(&error, "refused"), "{error}");
    // Smaller items are refused too once both are full, and nothing was stored.
    let error = BatchClient::new(peer)
        .post("capped", &[0u8; 2 * KIB])
        .await
        .unwrap_err();
    assert!(is_remote_error(&error, "refused"), "{error}");
    let state = BatchClient::new(peer).state().await.unwrap();
    assert_eq!(state.batches[0].items, 6);
    assert_eq!(state.batches[0].spilled, 2 * MIB);
    assert_eq!(state.disk, 2 * MIB);

    // The connection is still fine, and the batch holds exactly what was accepted.
    check_consumed(&client, "capped", &items, 2 * MIB).await;

    // Consuming freed the caps: posting works again.
    BatchClient::new(peer).new_batch("again").await.unwrap();
    BatchClient::new(peer)
        .post("again", &item(7, 512 * KIB))
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
    let state = BatchClient::new(peer).state().await.unwrap();
    assert!(state.batches.is_empty());

    for name in ["c", "a", "b"] {
        BatchClient::new(peer).new_batch(name).await.unwrap();
    }
    let error = BatchClient::new(peer).new_batch("a").await.unwrap_err();
    assert!(is_remote_error(&error, "already exists"), "{error}");
    let error = BatchClient::new(peer).new_batch("d").await.unwrap_err();
    assert!(is_remote_error(&error, "at most 3 batches"), "{error}");
    let error = BatchClient::new(peer).new_batch("").await.unwrap_err();
    assert!(is_remote_error(&error, "batch name"), "{error}");
    let error = BatchClient::new(peer).post("nope", b"x").await.unwrap_err();
    assert!(is_remote_error(&error, "no batch named"), "{error}");
    // A bad name fails locally: an INVALID_ARGUMENT status, and the server sees no post.
    let posts = || {
        server
            .stats()
            .into_iter()
            .find(|stats| stats.name == BATCH_POST_COMMAND)
            .unwrap()
            .calls
    };
    let posts_before = posts();
    let error = BatchClient::new(peer).post("", b"x").await.unwrap_err();
    assert!(
        matches!(&error, CallError::Remote(status) if status.code() == StatusCode::INVALID_ARGUMENT),
        "{error:?}"
    );
    assert!(is_remote_error(&error, "batch name"), "{error}");
    assert_eq!(posts(), posts_before, "the bad post was not sent");

    BatchClient::new(peer).post("a", b"one").await.unwrap();
    BatchClient::new(peer).post("a", b"two").await.unwrap();
    BatchClient::new(peer).post("b", b"three").await.unwrap();
    BatchClient::new(peer).post("c", b"four").await.unwrap();
    BatchClient::new(peer).post("c", b"five").await.unwrap();
    let error = BatchClient::new(peer).post("c", b"six").await.unwrap_err();
    assert!(is_remote_error(&error, "at most 5 batch items"), "{error}");

    let state = BatchClient::new(peer).state().await.unwrap();
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

    assert!(BatchClient::new(peer).clear("b").await.unwrap());
    assert!(!BatchClient::new(peer).clear("b").await.unwrap());
    let state = BatchClient::new(peer).state().await.unwrap();
    let names: Vec<&str> = state
        .batches
        .iter()
        .map(|info| info.name.as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(state.memory, 14);

    // Clearing freed a batch slot and an item slot.
    BatchClient::new(peer).new_batch("d").await.unwrap();
    BatchClient::new(peer).post("d", b"six").await.unwrap();
    check_consumed(&client, "d", &[b"six".to_vec()], 0).await;

    assert_eq!(BatchClient::new(peer).clear_all().await.unwrap(), 2);
    let state = BatchClient::new(peer).state().await.unwrap();
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
    BatchClient::new(other.peer())
        .new_batch("kept")
        .await
        .unwrap();
    BatchClient::new(other.peer())
        .post("kept", b"stays")
        .await
        .unwrap();

    let client = Client::connect(addr).await.unwrap();
    for name in ["one", "two"] {
        BatchClient::new(client.peer())
            .new_batch(name)
            .await
            .unwrap();
        for index in 0..3 {
            BatchClient::new(client.peer())
                .post(name, &item(index, 512 * KIB))
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

    let state = BatchClient::new(other.peer()).state().await.unwrap();
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

/// The typed client works from the server's side too: a handler posts to a batch service
/// the client installed, through `ctx.peer()`.
#[tokio::test]
async fn server_posts_to_a_client_side_service() {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.register_console("fill", |ctx, name: String| async move {
        let batches = BatchClient::new(ctx.peer());
        batches.new_batch(&name).await?;
        batches.post(&name, b"from the server").await?;
        let state = batches.state().await?;
        Ok(state.batches.len().to_string())
    });
    let addr = server.local_addr().unwrap();
    let server = server.spawn();
    let service = BatchService::default();
    let mut builder = Client::builder();
    builder.install(service.clone());
    let client = builder.connect(addr).await.unwrap();
    assert_eq!(client.call_console("fill", "pushed").await.unwrap(), "1");
    let mut batch = service.take(client.peer(), "pushed").await.unwrap();
    assert_eq!(
        batch.next_item().await.unwrap().unwrap().as_ref(),
        b"from the server"
    );
    server.shutdown().await;
}
