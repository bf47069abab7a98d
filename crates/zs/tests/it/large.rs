//! Large data over real sockets: BigStream in both directions with flow control, resume
//! offsets and cancellation; CompleteBuffer at and over its limit, compressed or not.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use zs::transfer::StreamError;
use zs::{
    BigStream, CallError, Client, Compression, DataFrame, Server, ServerHandle, Status, StatusCode,
};
use zs_wire::crypto::hash::HashAlgorithm;

use crate::common;
use common::pattern::{hashing_handler, pattern, sha3_of_pattern};

async fn server(configure: impl FnOnce(&mut Server)) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server
        .register_console("echo", |_ctx, text: String| async move { Ok(text) })
        .register_big_stream("store", |_ctx, stream| hashing_handler(stream))
        .register_complete_buffer("buffer", |_ctx, data: Bytes| async move {
            let digest = HashAlgorithm::Sha3_256.digest(&data);
            Ok(DataFrame::new().with(digest).with(data.len() as u64))
        });
    configure(&mut server);
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

#[tokio::test]
async fn big_stream_of_256_mib_arrives_intact() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let (server, addr) = server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    let progress_calls = Arc::new(Mutex::new(0u64));
    let counter = progress_calls.clone();
    let reply = client
        .peer()
        .send_big_stream("store", pattern(SIZE), Some(SIZE))
        .on_progress(move |sent, total| {
            assert_eq!(total, Some(SIZE));
            *counter.lock().unwrap() = sent;
        })
        .await
        .unwrap();
    let mut reader = reply.reader();
    assert_eq!(reader.read_bytes().unwrap(), sha3_of_pattern(SIZE).await);
    assert_eq!(reader.read_u64().unwrap(), SIZE);
    assert_eq!(*progress_calls.lock().unwrap(), SIZE);
    server.shutdown().await;
}

#[tokio::test]
async fn small_calls_keep_flowing_during_a_big_stream() {
    const SIZE: u64 = 64 * 1024 * 1024;
    let (server, addr) = server(|_| {}).await;
    let client = Arc::new(Client::connect(addr).await.unwrap());
    let uploader = client.clone();
    let transfer_started = std::time::Instant::now();
    let upload = tokio::spawn(async move {
        uploader
            .peer()
            .send_big_stream("store", pattern(SIZE), Some(SIZE))
            .await
    });
    let mut worst = Duration::ZERO;
    let mut calls = 0;
    while !upload.is_finished() {
        let started = std::time::Instant::now();
        assert_eq!(client.call_console("echo", "ping").await.unwrap(), "ping");
        worst = worst.max(started.elapsed());
        calls += 1;
    }
    upload.await.unwrap().unwrap();
    let transfer = transfer_started.elapsed();
    assert!(
        calls > 5,
        "only {calls} small calls completed during the transfer"
    );
    // Latency figures come from `zs bench stream` (release); here the point is structural:
    // a small call never waits for the transfer, only for the chunks queued before it.
    assert!(
        worst < transfer / 4,
        "a small call waited {worst:?} of a {transfer:?} transfer"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn server_streams_to_its_client() {
    let (server, addr) = server(|server| {
        server.register_console("send_me", |ctx, size: String| async move {
            let size: u64 = size.parse()?;
            let reply = ctx
                .peer()
                .send_big_stream("sink", pattern(size), Some(size))
                .await?;
            Ok(format!("client got {}", reply.reader().read_u64()?))
        });
    })
    .await;
    let received: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sink = received.clone();
    let mut builder = Client::builder();
    builder.register_big_stream("sink", move |_ctx, mut stream: BigStream| {
        let sink = sink.clone();
        async move {
            while let Some(chunk) = stream.next_chunk().await? {
                sink.lock().unwrap().extend_from_slice(&chunk);
            }
            Ok(DataFrame::new().with(stream.completed()))
        }
    });
    let client = builder.connect(addr).await.unwrap();
    let size = 5 * 1024 * 1024 + 17;
    assert_eq!(
        client
            .call_console("send_me", &size.to_string())
            .await
            .unwrap(),
        format!("client got {size}")
    );
    let got = received.lock().unwrap().clone();
    assert_eq!(
        HashAlgorithm::Sha3_256.digest(&got),
        sha3_of_pattern(size).await
    );
    server.shutdown().await;
}

#[tokio::test]
async fn resumed_transfer_tells_the_receiver_its_offset() {
    let (server, addr) = server(|_| {}).await;
    let client = Client::connect(addr).await.unwrap();
    let reply = client
        .peer()
        .send_big_stream("store", pattern(1000), Some(1000))
        .offset(4096)
        .await
        .unwrap();
    let mut reader = reply.reader();
    reader.read_bytes().unwrap();
    assert_eq!(
        (reader.read_u64().unwrap(), reader.read_u64().unwrap()),
        (1000, 4096)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn complete_buffer_at_the_limit_passes_and_just_over_is_refused_unbuffered() {
    const LIMIT: u64 = 1024 * 1024;
    let (server, addr) = server(|server| {
        server.config_mut().max_complete_buffer(LIMIT);
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    let at_limit = Bytes::from(vec![3u8; LIMIT as usize]);
    let reply = client
        .peer()
        .send_complete_buffer("buffer", at_limit.clone())
        .await
        .unwrap();
    let mut reader = reply.reader();
    assert_eq!(
        reader.read_bytes().unwrap(),
        HashAlgorithm::Sha3_256.digest(&at_limit)
    );
    assert_eq!(reader.read_u64().unwrap(), LIMIT);

    let over = Bytes::from(vec![3u8; LIMIT as usize + 1]);
    let error = client
        .peer()
        .send_complete_buffer("buffer", over)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        CallError::Remote(Status::new(
            StatusCode::RESOURCE_EXHAUSTED,
            format!(
                "complete buffer of {} bytes exceeds the limit of {LIMIT} bytes",
                LIMIT + 1
            ),
        ))
    );
    // The connection is fine afterwards.
    assert_eq!(client.call_console("echo", "after").await.unwrap(), "after");
    server.shutdown().await;
}

#[tokio::test]
async fn complete_buffer_compression_round_trips() {
    let (server, addr) = server(|_| {}).await;
    let text: Vec<u8> = b"zserver compresses repetitive buffers "
        .iter()
        .copied()
        .cycle()
        .take(300_000)
        .collect();
    let random: Vec<u8> = {
        use tokio::io::AsyncReadExt;
        let mut bytes = Vec::new();
        pattern(100_000).read_to_end(&mut bytes).await.unwrap();
        bytes
    };
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let mut builder = Client::builder();
        builder
            .config_mut()
            .complete_buffer_compression(compression);
        let client = builder.connect(addr).await.unwrap();
        for data in [&text, &random] {
            let reply = client
                .peer()
                .send_complete_buffer("buffer", Bytes::from(data.clone()))
                .await
                .unwrap();
            assert_eq!(
                reply.reader().read_bytes().unwrap(),
                HashAlgorithm::Sha3_256.digest(data),
                "{compression:?}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn sender_cancelling_is_seen_by_the_receiver() {
    let outcome: Arc<Mutex<Option<StreamError>>> = Arc::default();
    let seen = outcome.clone();
    let (server, addr) = server(move |server| {
        server.register_big_stream("slow", move |_ctx, mut stream: BigStream| {
            let seen = seen.clone();
            async move {
                loop {
                    match stream.next_chunk().await {
                        Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(5)).await,
                        Ok(None) => break,
                        Err(error) => {
                            *seen.lock().unwrap() = Some(error.clone());
                            return Err(error.into());
                        }
                    }
                }
                Ok(DataFrame::new())
            }
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    let upload = client
        .peer()
        .send_big_stream("slow", pattern(1 << 30), None)
        .into_future();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), upload)
            .await
            .is_err()
    );
    for _ in 0..200 {
        if outcome.lock().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*outcome.lock().unwrap(), Some(StreamError::Cancelled));
    assert_eq!(client.call_console("echo", "still").await.unwrap(), "still");
    server.shutdown().await;
}

#[tokio::test]
async fn receiver_refusing_midway_stops_the_sender() {
    let (server, addr) = server(|server| {
        server.register_big_stream("picky", |_ctx, mut stream: BigStream| async move {
            stream.next_chunk().await?;
            Err(Status::unknown("seen enough"))
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    let started = std::time::Instant::now();
    let error = client
        .peer()
        .send_big_stream("picky", pattern(1 << 34), None)
        .await
        .unwrap_err();
    assert_eq!(error, CallError::Remote(Status::unknown("seen enough")));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the sender stopped early"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn peer_leaving_mid_stream_frees_everything() {
    let (server, addr) = server(|_| {}).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    for _ in 0..5 {
        let client = Client::connect(addr).await.unwrap();
        let upload = client
            .peer()
            .send_big_stream("store", pattern(1 << 30), None)
            .into_future();
        let _ = tokio::time::timeout(Duration::from_millis(100), upload).await;
        drop(client);
    }
    for _ in 0..500 {
        if server.connection_count() == 0
            && tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks()
                <= tasks_before
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.connection_count(), 0);
    assert!(
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
            <= tasks_before
    );
    server.shutdown().await;
}

#[tokio::test]
async fn transfers_work_over_every_cipher_suite() {
    const SIZE: u64 = 3 * 1024 * 1024 + 5;
    let (server, addr) = server(|server| {
        server
            .config_mut()
            .security()
            .suites(zs::Suite::ALL.to_vec())
            .allow_plain(true);
    })
    .await;
    let expected = sha3_of_pattern(SIZE).await;
    for suite in zs::Suite::ALL {
        let mut builder = Client::builder();
        builder
            .config_mut()
            .security()
            .suites(vec![suite])
            .allow_plain(suite.is_plain());
        let client = builder.connect(addr).await.unwrap();
        assert_eq!(client.peer().suite(), suite);
        let reply = client
            .peer()
            .send_big_stream("store", pattern(SIZE), Some(SIZE))
            .await
            .unwrap();
        assert_eq!(reply.reader().read_bytes().unwrap(), expected, "{suite}");
        let buffer = Bytes::from(vec![suite.id(); 200_000]);
        let reply = client
            .peer()
            .send_complete_buffer("buffer", buffer.clone())
            .await
            .unwrap();
        assert_eq!(
            reply.reader().read_bytes().unwrap(),
            HashAlgorithm::Sha3_256.digest(&buffer),
            "{suite}"
        );
    }
    server.shutdown().await;
}

/// A receiving handler that stops reading holds up the sender at exactly the receiver's
/// `stream_window`: the protocol's initial 1 MiB plus the credit granted on its first read,
/// and nothing more until it reads on.
#[tokio::test]
async fn a_stalled_receiver_lets_the_sender_fill_exactly_its_window() {
    const WINDOW: u32 = 3 * 1024 * 1024;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let released = Arc::new(Mutex::new(Some(released)));
    let (server, addr) = server(move |server| {
        server.config_mut().stream_window(WINDOW);
        server.register_big_stream("stalled", move |_ctx, mut stream: BigStream| {
            let released = released.lock().unwrap().take();
            async move {
                // One read widens the window; then the handler stalls.
                let mut total = stream
                    .next_chunk()
                    .await?
                    .map_or(0, |chunk| chunk.len() as u64);
                if let Some(released) = released {
                    let _ = released.await;
                }
                while let Some(chunk) = stream.next_chunk().await? {
                    total += chunk.len() as u64;
                }
                Ok(DataFrame::new().with(total))
            }
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    let sent = Arc::new(Mutex::new(0u64));
    let counter = sent.clone();
    const SIZE: u64 = 16 * 1024 * 1024;
    let transfer = tokio::spawn(async move {
        client
            .peer()
            .send_big_stream("stalled", pattern(SIZE), Some(SIZE))
            .on_progress(move |bytes, _| *counter.lock().unwrap() = bytes)
            .await
    });
    // Wait until the sender stops making progress.
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = *sent.lock().unwrap();
        if now == last && now > 0 {
            break;
        }
        last = now;
    }
    assert_eq!(last, u64::from(WINDOW), "the sender stalled at the window");
    release.send(()).unwrap();
    let reply = transfer.await.unwrap().unwrap();
    assert_eq!(reply.reader().read_u64().unwrap(), SIZE);
    server.shutdown().await;
}

#[tokio::test]
async fn chunks_from_memory_arrive_intact_cut_to_the_chunk_size() {
    // Pieces of awkward sizes, empty ones included; each byte tells where it came from.
    let sizes = [0usize, 1, 65_535, 65_536, 65_537, 300_000, 0, 7];
    let pieces: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(index, &size)| {
            let bytes: Vec<u8> = (0..size).map(|at| (at * 31 + index) as u8).collect();
            Bytes::from(bytes)
        })
        .collect();
    let all: Vec<u8> = pieces.iter().flat_map(|piece| piece.to_vec()).collect();
    let (server, addr) = server(|server| {
        server.register_big_stream("sizes", |_ctx, mut stream: BigStream| async move {
            let mut received = Vec::new();
            let mut largest = 0usize;
            while let Some(chunk) = stream.next_chunk().await? {
                largest = largest.max(chunk.len());
                received.extend_from_slice(&chunk);
            }
            Ok(DataFrame::new().with(received).with(largest as u64))
        });
    })
    .await;
    let client = Client::connect(addr).await.unwrap();
    let total = all.len() as u64;
    let stream = futures_util::stream::iter(pieces.into_iter().map(Ok));
    let reply = client
        .peer()
        .send_big_stream_chunks("sizes", stream, Some(total))
        .await
        .unwrap();
    let mut reader = reply.reader();
    assert_eq!(reader.read_bytes().unwrap(), all);
    assert_eq!(reader.read_u64().unwrap(), zs::transfer::CHUNK_SIZE as u64);

    // A failing source ends the transfer with its error; the connection carries on.
    let failing = futures_util::stream::iter([
        Ok(Bytes::from_static(b"first")),
        Err(std::io::Error::other("disk gone")),
    ]);
    let error = client
        .peer()
        .send_big_stream_chunks("sizes", failing, None)
        .await
        .unwrap_err();
    assert!(matches!(error, CallError::Source(_)), "{error:?}");
    assert_eq!(client.call_console("echo", "still").await.unwrap(), "still");
    server.shutdown().await;
}
