//! File transfer over real loopback connections: put and get of a 20 MiB file, resume of
//! interrupted puts and gets from their `.part`, refused paths, refused commits.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use zs::services::files::{FileClient, FileError, FileService, FileSink, TransferOptions};
use zs::{CallError, Client, Server, ServerHandle, StatusCode};
use zs_wire::crypto::hash::{HashAlgorithm, hex};

const SIZE: usize = 20 * 1024 * 1024;
/// Interrupt transfers once this much has moved.
const INTERRUPT_AT: u64 = 8 * 1024 * 1024;

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "zs-files-{}-{name}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha3_hex(data: &[u8]) -> String {
    hex(&HashAlgorithm::Sha3_256.digest(data))
}

async fn serve(root: &Path) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.install(FileService::new(root).unwrap());
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

async fn connect(addr: SocketAddr) -> Client {
    let mut builder = Client::builder();
    builder.install(FileSink::new());
    builder.connect(addr).await.unwrap()
}

/// Options whose progress callback fires `interrupted` once `INTERRUPT_AT` bytes moved.
fn interrupting() -> (TransferOptions, tokio::sync::oneshot::Receiver<()>) {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let mut sender = Some(sender);
    let options = TransferOptions::new().on_progress(move |done, total| {
        assert_eq!(total, SIZE as u64);
        if done >= INTERRUPT_AT
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(());
        }
    });
    (options, receiver)
}

/// A put stream's header: u32 little-endian length, then JSON.
fn header(json: &str) -> Vec<u8> {
    let mut bytes = (json.len() as u32).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

/// The message of a handler error with `code`.
fn remote_message(error: CallError, code: StatusCode) -> String {
    match error {
        CallError::Remote(status) if status.code() == code => status.message().to_owned(),
        other => panic!("expected a handler error with {code}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_then_get_of_20_mib_round_trips_with_matching_hashes() {
    let root = TempDir::new("root");
    let local = TempDir::new("local");
    let data = pattern(SIZE, 1);
    let expected = sha3_hex(&data);
    std::fs::write(local.join("big.bin"), &data).unwrap();
    let (server, addr) = serve(root.path()).await;
    let client = connect(addr).await;

    let progress = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let seen = progress.clone();
    let put = FileClient::new(&client)
        .put(
            &local.join("big.bin"),
            "sub/dir/big.bin",
            TransferOptions::new().on_progress(move |done, total| {
                *seen.lock().unwrap() = (done, total);
            }),
        )
        .await
        .unwrap();
    assert_eq!(put.total, SIZE as u64);
    assert_eq!(put.bytes_sent, SIZE as u64);
    assert_eq!(put.resumed_from, 0);
    assert_eq!(put.sha3_hex, expected);
    assert_eq!(*progress.lock().unwrap(), (SIZE as u64, SIZE as u64));
    assert_eq!(std::fs::read(root.join("sub/dir/big.bin")).unwrap(), data);
    assert!(!root.join("sub/dir/big.bin.part").exists());

    let got = FileClient::new(&client)
        .get(
            "sub/dir/big.bin",
            &local.join("copy.bin"),
            TransferOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(got.total, SIZE as u64);
    assert_eq!(got.bytes_sent, SIZE as u64);
    assert_eq!(got.resumed_from, 0);
    assert_eq!(got.sha3_hex, expected);
    assert_eq!(std::fs::read(local.join("copy.bin")).unwrap(), data);
    assert!(!local.join("copy.bin.part").exists());

    // Resuming with nothing to resume is an ordinary transfer.
    let again = FileClient::new(&client)
        .put(
            &local.join("big.bin"),
            "sub/dir/big.bin",
            TransferOptions::new().resume(true),
        )
        .await
        .unwrap();
    assert_eq!(again.resumed_from, 0);
    assert_eq!(again.sha3_hex, expected);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_put_resumes_from_the_servers_part() {
    let root = TempDir::new("root");
    let local = TempDir::new("local");
    let data = pattern(SIZE, 2);
    std::fs::write(local.join("big.bin"), &data).unwrap();
    let (server, addr) = serve(root.path()).await;
    let client = connect(addr).await;

    let (options, interrupted) = interrupting();
    let source = local.join("big.bin");
    let files = FileClient::new(&client);
    tokio::select! {
        result = files.put(&source, "big.bin", options) => {
            panic!("the put finished before it was interrupted: {result:?}")
        }
        _ = interrupted => {}
    }
    // Dropping the put cancelled it; the server keeps what arrived.
    assert!(root.join("big.bin.part").exists());
    assert!(!root.join("big.bin").exists());

    let report = FileClient::new(&client)
        .put(&source, "big.bin", TransferOptions::new().resume(true))
        .await
        .unwrap();
    assert!(report.resumed_from > 0, "{report:?}");
    assert!(report.resumed_from < SIZE as u64, "{report:?}");
    assert_eq!(report.bytes_sent, SIZE as u64 - report.resumed_from);
    assert_eq!(report.sha3_hex, sha3_hex(&data));
    assert_eq!(std::fs::read(root.join("big.bin")).unwrap(), data);
    assert!(!root.join("big.bin.part").exists());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_get_resumes_from_the_local_part() {
    let root = TempDir::new("root");
    let local = TempDir::new("local");
    let data = pattern(SIZE, 3);
    std::fs::write(root.join("big.bin"), &data).unwrap();
    let (server, addr) = serve(root.path()).await;
    let client = connect(addr).await;
    let target = local.join("big.bin");

    let (options, interrupted) = interrupting();
    let files = FileClient::new(&client);
    tokio::select! {
        result = files.get("big.bin", &target, options) => {
            panic!("the get finished before it was interrupted: {result:?}")
        }
        _ = interrupted => {}
    }
    assert!(local.join("big.bin.part").exists());
    assert!(!target.exists());

    let report = FileClient::new(&client)
        .get("big.bin", &target, TransferOptions::new().resume(true))
        .await
        .unwrap();
    assert!(report.resumed_from > 0, "{report:?}");
    assert!(report.resumed_from < SIZE as u64, "{report:?}");
    assert_eq!(report.bytes_sent, SIZE as u64 - report.resumed_from);
    assert_eq!(report.sha3_hex, sha3_hex(&data));
    assert_eq!(std::fs::read(&target).unwrap(), data);
    assert!(!local.join("big.bin.part").exists());
    server.shutdown().await;
}

#[tokio::test]
async fn a_part_that_is_not_a_prefix_is_not_resumed() {
    let root = TempDir::new("root");
    let local = TempDir::new("local");
    let data = pattern(3 * 1024 * 1024, 4);
    std::fs::write(local.join("f.bin"), &data).unwrap();
    // Stale leftovers of some other file, on both sides.
    std::fs::write(root.join("f.bin.part"), pattern(1024 * 1024, 99)).unwrap();
    std::fs::write(local.join("g.bin.part"), pattern(1024 * 1024, 98)).unwrap();
    let (server, addr) = serve(root.path()).await;
    let client = connect(addr).await;

    let put = FileClient::new(&client)
        .put(
            &local.join("f.bin"),
            "f.bin",
            TransferOptions::new().resume(true),
        )
        .await
        .unwrap();
    assert_eq!(put.resumed_from, 0);
    assert_eq!(std::fs::read(root.join("f.bin")).unwrap(), data);

    let get = FileClient::new(&client)
        .get(
            "f.bin",
            &local.join("g.bin"),
            TransferOptions::new().resume(true),
        )
        .await
        .unwrap();
    assert_eq!(get.resumed_from, 0);
    assert_eq!(std::fs::read(local.join("g.bin")).unwrap(), data);
    server.shutdown().await;
}

#[tokio::test]
async fn paths_outside_the_root_are_refused() {
    let outside = TempDir::new("outside");
    let root_dir = TempDir::new("root");
    let local = TempDir::new("local");
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::write(local.join("x"), b"payload").unwrap();
    let (server, addr) = serve(root_dir.path()).await;
    let client = connect(addr).await;

    // The client refuses before sending anything.
    for remote in ["../x", "/etc/passwd", "a/../../x", "..", "", "a\\..\\x"] {
        let error = FileClient::new(&client)
            .put(&local.join("x"), remote, TransferOptions::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, FileError::BadPath { .. }),
            "{remote}: {error}"
        );
        let error = FileClient::new(&client)
            .get(remote, &local.join("y"), TransferOptions::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, FileError::BadPath { .. }),
            "{remote}: {error}"
        );
    }

    // The server refuses the same on its own, whatever a client sends.
    for (request, reason) in [
        (r#"{"path": "../x"}"#, "\"..\" components are not allowed"),
        (
            r#"{"path": "/etc/passwd"}"#,
            "absolute paths are not allowed",
        ),
        (r#"{"path": "a/../../etc/passwd"}"#, "\"..\""),
    ] {
        let message = remote_message(
            client
                .call_console("__zs.files.stat", request)
                .await
                .unwrap_err(),
            StatusCode::INVALID_ARGUMENT,
        );
        assert!(
            message.starts_with("bad path") && message.contains(reason),
            "{message}"
        );
    }
    let message = remote_message(
        client
            .call_console(
                "__zs.files.get",
                r#"{"path": "../../etc/passwd", "offset": 0, "transfer": 1}"#,
            )
            .await
            .unwrap_err(),
        StatusCode::INVALID_ARGUMENT,
    );
    assert!(message.starts_with("bad path"), "{message}");
    let escape = root_dir
        .path()
        .parent()
        .unwrap()
        .join(format!("zs-escape-{}.bin", std::process::id()));
    let name = escape.file_name().unwrap().to_str().unwrap();
    let mut stream = header(&format!(r#"{{"path": "../{name}", "size": 4}}"#));
    stream.extend_from_slice(b"evil");
    let message = remote_message(
        client
            .peer()
            .send_big_stream("__zs.files.put", std::io::Cursor::new(stream), None)
            .await
            .unwrap_err(),
        StatusCode::INVALID_ARGUMENT,
    );
    assert!(message.starts_with("bad path"), "{message}");
    assert!(!escape.exists());
    assert!(!part(&escape).exists());

    // A symbolic link inside the root leads nowhere outside it.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path(), root_dir.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root_dir.join("secret-link")).unwrap();
        for remote in ["link/secret", "secret-link"] {
            let message = remote_message(
                client
                    .call_console("__zs.files.stat", &format!(r#"{{"path": "{remote}"}}"#))
                    .await
                    .unwrap_err(),
                StatusCode::INVALID_ARGUMENT,
            );
            assert!(
                message.contains("outside the served directory"),
                "{message}"
            );
            let error = FileClient::new(&client)
                .get(remote, &local.join("y"), TransferOptions::new())
                .await
                .unwrap_err();
            assert!(
                matches!(&error, FileError::Remote(status) if status.message().contains("outside")),
                "{error}"
            );
        }
        let error = FileClient::new(&client)
            .put(&local.join("x"), "link/new.bin", TransferOptions::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&error, FileError::Remote(status) if status.message().contains("outside")),
            "{error}"
        );
        assert!(!outside.join("new.bin").exists());
        assert!(!outside.join("new.bin.part").exists());
        let error = FileClient::new(&client)
            .put(
                &local.join("x"),
                "link/deeper/new.bin",
                TransferOptions::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(&error, FileError::Remote(_)), "{error}");
        assert!(!outside.join("deeper").exists());
    }

    // A missing file is "not found", not an error of the path.
    assert_eq!(
        client
            .call_console("__zs.files.stat", r#"{"path": "no/such/file"}"#)
            .await
            .unwrap(),
        r#"{"found":false,"size":0}"#
    );
    let error = FileClient::new(&client)
        .get("no/such/file", &local.join("z"), TransferOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FileError::NotFound(path) if path == "no/such/file"),
        "{error}"
    );
    assert!(
        !local.join("z.part").exists(),
        "a failed get leaves no empty .part"
    );
    server.shutdown().await;
}

fn part(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

#[tokio::test]
async fn a_commit_with_a_wrong_hash_is_refused_and_keeps_the_part() {
    let root = TempDir::new("root");
    let (server, addr) = serve(root.path()).await;
    let client = connect(addr).await;
    let mut stream = header(r#"{"path": "c.bin", "size": 11}"#);
    stream.extend_from_slice(b"hello world");
    let reply = client
        .peer()
        .send_big_stream("__zs.files.put", std::io::Cursor::new(stream), None)
        .await
        .unwrap();
    assert_eq!(reply.reader().read_u64().unwrap(), 11);
    assert_eq!(
        std::fs::read(root.join("c.bin.part")).unwrap(),
        b"hello world"
    );

    let wrong = "00".repeat(32);
    let message = remote_message(
        client
            .call_console(
                "__zs.files.commit",
                &format!(r#"{{"path": "c.bin", "sha3": "{wrong}"}}"#),
            )
            .await
            .unwrap_err(),
        StatusCode::FAILED_PRECONDITION,
    );
    assert!(
        message.contains("mismatch") && message.contains(&sha3_hex(b"hello world")),
        "{message}"
    );
    assert!(root.join("c.bin.part").exists());
    assert!(!root.join("c.bin").exists());

    // A resume must continue exactly at the end of the .part.
    let message = remote_message(
        client
            .peer()
            .send_big_stream(
                "__zs.files.put",
                std::io::Cursor::new(header(r#"{"path": "c.bin", "size": 11}"#)),
                None,
            )
            .offset(5)
            .await
            .unwrap_err(),
        StatusCode::FAILED_PRECONDITION,
    );
    assert!(message.contains("holds 11 bytes"), "{message}");

    let reply = client
        .call_console(
            "__zs.files.commit",
            &format!(
                r#"{{"path": "c.bin", "sha3": "{}"}}"#,
                sha3_hex(b"hello world")
            ),
        )
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["size"], 11);
    assert_eq!(std::fs::read(root.join("c.bin")).unwrap(), b"hello world");
    assert!(!root.join("c.bin.part").exists());
    server.shutdown().await;
}

#[tokio::test]
async fn missing_pieces_fail_clearly() {
    let root = TempDir::new("root");
    std::fs::write(root.join("f"), b"f").unwrap();
    let local = TempDir::new("local");
    let (server, addr) = serve(root.path()).await;

    // A client built without the sink cannot receive.
    let plain = Client::connect(addr).await.unwrap();
    let error = FileClient::new(&plain)
        .get("f", &local.join("f"), TransferOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, FileError::NoSink), "{error}");
    // Asked on the wire anyway, the server's push finds no sink and says so.
    let error = plain
        .call_console(
            "__zs.files.get",
            r#"{"path": "f", "offset": 0, "transfer": 1}"#,
        )
        .await
        .unwrap_err();
    let message = remote_message(error, StatusCode::FAILED_PRECONDITION);
    assert!(message.contains("no file sink"), "{message}");

    // A server without a FileService does not serve files.
    let mut bare = Server::bind("127.0.0.1:0").await.unwrap();
    bare.register_console("echo", |_ctx, text: String| async move { Ok(text) });
    let bare_addr = bare.local_addr().unwrap();
    let bare = bare.spawn();
    let client = connect(bare_addr).await;
    let error = FileClient::new(&client)
        .put(&root.join("f"), "f", TransferOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(error, FileError::NotServed), "{error}");

    // A missing local file names itself.
    let client = connect(addr).await;
    let error = FileClient::new(&client)
        .put(&local.join("nope"), "f", TransferOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, FileError::Io { path, .. } if path.ends_with("nope")),
        "{error}"
    );
    bare.shutdown().await;
    server.shutdown().await;
}

/// Two clients in one process, each with its own sink, download at the same time without
/// seeing each other's transfers: the sink's state belongs to the sink, not the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_their_own_sinks_download_concurrently() {
    let root = TempDir::new("root");
    let local = TempDir::new("local");
    let first = pattern(4 * 1024 * 1024, 11);
    let second = pattern(3 * 1024 * 1024 + 17, 12);
    std::fs::write(root.join("first.bin"), &first).unwrap();
    std::fs::write(root.join("second.bin"), &second).unwrap();
    let (server, addr) = serve(root.path()).await;
    let one = connect(addr).await;
    let two = connect(addr).await;

    // Both downloads run at once, and both carry transfer id 1, each in its own sink: a
    // shared table would have one download take the other's slot (or find none).
    let (files_one, files_two) = (FileClient::new(&one), FileClient::new(&two));
    let (to_one, to_two) = (local.join("first.bin"), local.join("second.bin"));
    let (a, b) = tokio::join!(
        files_one.get("first.bin", &to_one, TransferOptions::new()),
        files_two.get("second.bin", &to_two, TransferOptions::new()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sha3_hex, sha3_hex(&first));
    assert_eq!(b.sha3_hex, sha3_hex(&second));
    assert_eq!(std::fs::read(&to_one).unwrap(), first);
    assert_eq!(std::fs::read(&to_two).unwrap(), second);

    // Crossed over, with transfer id 2 on both sides.
    let (x, y) = (local.join("x.bin"), local.join("y.bin"));
    let (again_one, again_two) = tokio::join!(
        files_one.get("second.bin", &x, TransferOptions::new()),
        files_two.get("first.bin", &y, TransferOptions::new()),
    );
    assert_eq!(again_one.unwrap().sha3_hex, sha3_hex(&second));
    assert_eq!(again_two.unwrap().sha3_hex, sha3_hex(&first));
    assert_eq!(std::fs::read(&x).unwrap(), second);
    assert_eq!(std::fs::read(&y).unwrap(), first);
    server.shutdown().await;
}
