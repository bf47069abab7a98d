//! Per-user file areas (`FileService::with_user_areas`) over real loopback connections: a
//! public area, private areas reached only by their user, path tricks and planted symbolic
//! links refused, quotas.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::net::SocketAddr;
use std::path::Path;

use zs::services::files::{FileClient, FileError, FileService, FileSink, TransferOptions};
use zs::{Client, Server, ServerHandle, StatusCode, User};

/// A server whose `test.login` makes the connection the user it names (the accounts
/// service's job in an application), serving `root` divided per user.
async fn serve(root: &Path, quota: Option<u64>) -> (ServerHandle, SocketAddr) {
    let mut server = Server::bind("127.0.0.1:0").await.unwrap();
    server.install(FileService::new(root).unwrap().with_user_areas(quota));
    server.register_console("test.login", |ctx, name: String| async move {
        ctx.peer().set_user(Some(User::new(name, [])));
        Ok(String::new())
    });
    let addr = server.local_addr().unwrap();
    (server.spawn(), addr)
}

async fn client(addr: SocketAddr, user: Option<&str>) -> Client {
    let mut builder = Client::builder();
    builder.install(FileSink::new());
    let client = builder.connect(addr).await.unwrap();
    if let Some(user) = user {
        client.call_console("test.login", user).await.unwrap();
    }
    client
}

fn code(error: &FileError) -> Option<StatusCode> {
    match error {
        FileError::Remote(status) => Some(status.code()),
        FileError::BadPath { .. } => Some(StatusCode::INVALID_ARGUMENT),
        FileError::NotFound(_) => Some(StatusCode::NOT_FOUND),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_reach_their_own_area_and_the_public_one_only() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let (server, addr) = serve(root.path(), None).await;
    let file = local.path().join("f");
    std::fs::write(&file, b"ann's notes").unwrap();
    let options = TransferOptions::new;

    let anonymous = client(addr, None).await;
    let ann = client(addr, Some("ann")).await;
    let bob = client(addr, Some("bob")).await;

    // Without a login: no private files, no writes to the public area.
    for remote in ["notes.txt", "public/notes.txt"] {
        let error = FileClient::new(&anonymous)
            .put(&file, remote, options())
            .await
            .unwrap_err();
        assert_eq!(
            code(&error),
            Some(StatusCode::UNAUTHENTICATED),
            "{remote}: {error}"
        );
    }

    FileClient::new(&ann)
        .put(&file, "notes.txt", options())
        .await
        .unwrap();
    FileClient::new(&ann)
        .put(&file, "public/shared.txt", options())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(root.path().join("users/ann/notes.txt")).unwrap(),
        b"ann's notes"
    );
    assert!(root.path().join("public/shared.txt").exists());

    // Everybody reads the public area.
    let copy = local.path().join("copy");
    FileClient::new(&anonymous)
        .get("public/shared.txt", &copy, options())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"ann's notes");

    // Bob's "notes.txt" is his own (there is none); he cannot name Ann's.
    let error = FileClient::new(&bob)
        .get("notes.txt", &copy, options())
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(StatusCode::NOT_FOUND), "{error}");
    for remote in [
        "../ann/notes.txt",
        "/users/ann/notes.txt",
        "users/../../ann/notes.txt",
    ] {
        let error = FileClient::new(&bob)
            .get(remote, &copy, options())
            .await
            .unwrap_err();
        assert_eq!(
            code(&error),
            Some(StatusCode::INVALID_ARGUMENT),
            "{remote}: {error}"
        );
    }
    // The server refuses the same when a client skips its own checks.
    let raw = bob
        .call_console("__zs.files.stat", r#"{"path": "../ann/notes.txt"}"#)
        .await
        .unwrap_err();
    assert_eq!(raw.status().unwrap().code(), StatusCode::INVALID_ARGUMENT);

    // A symbolic link planted in Bob's area that points into Ann's is refused.
    #[cfg(unix)]
    {
        std::fs::create_dir_all(root.path().join("users/bob")).unwrap();
        std::os::unix::fs::symlink(
            root.path().join("users/ann/notes.txt"),
            root.path().join("users/bob/planted"),
        )
        .unwrap();
        std::os::unix::fs::symlink(
            root.path().join("users/ann"),
            root.path().join("users/bob/dir"),
        )
        .unwrap();
        for remote in ["planted", "dir/notes.txt"] {
            let error = FileClient::new(&bob)
                .get(remote, &copy, options())
                .await
                .unwrap_err();
            assert_eq!(
                code(&error),
                Some(StatusCode::INVALID_ARGUMENT),
                "{remote}: {error}"
            );
        }
        let error = FileClient::new(&bob)
            .put(&file, "dir/overwrite.txt", options())
            .await
            .unwrap_err();
        assert_eq!(code(&error), Some(StatusCode::INVALID_ARGUMENT), "{error}");
        assert!(!root.path().join("users/ann/overwrite.txt").exists());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_bound_each_area_and_odd_user_names_get_none() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let (server, addr) = serve(root.path(), Some(1000)).await;
    let write = |name: &str, len: usize| {
        let path = local.path().join(name);
        std::fs::write(&path, vec![7u8; len]).unwrap();
        path
    };
    let ann = client(addr, Some("ann")).await;
    let files = FileClient::new(&ann);
    files
        .put(&write("a", 600), "a.bin", TransferOptions::new())
        .await
        .unwrap();
    let error = files
        .put(&write("b", 600), "b.bin", TransferOptions::new())
        .await
        .unwrap_err();
    assert_eq!(
        code(&error),
        Some(StatusCode::RESOURCE_EXHAUSTED),
        "{error}"
    );
    // Replacing a file counts its new size only.
    files
        .put(&write("c", 900), "a.bin", TransferOptions::new())
        .await
        .unwrap();
    // Another user has a quota of their own.
    let bob = client(addr, Some("bob")).await;
    FileClient::new(&bob)
        .put(&write("d", 900), "d.bin", TransferOptions::new())
        .await
        .unwrap();

    // A user name from elsewhere (virtual auth) that is not a plain name gets no area.
    for name in ["../escape", "a/b", ".."] {
        let odd = client(addr, Some(name)).await;
        let error = FileClient::new(&odd)
            .put(&write("e", 10), "x.bin", TransferOptions::new())
            .await
            .unwrap_err();
        assert_eq!(
            code(&error),
            Some(StatusCode::INVALID_ARGUMENT),
            "{name}: {error}"
        );
    }
    assert!(!root.path().join("escape").exists());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cannot_send_more_than_it_announced() {
    let root = tempfile::tempdir().unwrap();
    let (server, addr) = serve(root.path(), Some(1000)).await;
    let ann = client(addr, Some("ann")).await;
    // Announces 10 bytes (within the quota), then sends 100,000.
    let json = r#"{"path": "big.bin", "size": 10}"#;
    let mut stream = (json.len() as u32).to_le_bytes().to_vec();
    stream.extend_from_slice(json.as_bytes());
    stream.extend_from_slice(&vec![1u8; 100_000]);
    let error = ann
        .peer()
        .send_big_stream("__zs.files.put", std::io::Cursor::new(stream), None)
        .await
        .unwrap_err();
    let status = error.status().unwrap();
    assert_eq!(status.code(), StatusCode::FAILED_PRECONDITION);
    assert!(
        status
            .message()
            .contains("more bytes sent than the 10 announced"),
        "{status}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn areas_are_listed_and_read_in_ranges() {
    let root = tempfile::tempdir().unwrap();
    let local = tempfile::tempdir().unwrap();
    let (server, addr) = serve(root.path(), None).await;
    let ann = client(addr, Some("ann")).await;
    let files = FileClient::new(&ann);
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let path = local.path().join("data");
    std::fs::write(&path, &data).unwrap();
    files
        .put(&path, "docs/data.bin", TransferOptions::new())
        .await
        .unwrap();
    files
        .put(&path, "public/p.bin", TransferOptions::new())
        .await
        .unwrap();

    let top = files.list("").await.unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!((top[0].name.as_str(), top[0].dir), ("docs", true));
    let docs = files.list("docs").await.unwrap();
    assert_eq!((docs[0].name.as_str(), docs[0].size), ("data.bin", 10_000));
    let public = files.list("public/").await.unwrap();
    assert_eq!(public[0].name, "p.bin");
    assert_eq!(
        code(&files.list("nothing").await.unwrap_err()),
        Some(StatusCode::NOT_FOUND)
    );

    assert_eq!(
        files.read("docs/data.bin", 300, 100).await.unwrap(),
        &data[300..400]
    );
    assert_eq!(
        files.read("docs/data.bin", 9_990, 100).await.unwrap(),
        &data[9_990..]
    );
    assert!(
        files
            .read("docs/data.bin", 20_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let error = files
        .read("docs/data.bin", 0, zs::services::files::MAX_READ + 1)
        .await
        .unwrap_err();
    assert_eq!(
        code(&error),
        Some(StatusCode::FAILED_PRECONDITION),
        "{error}"
    );
    // Another user reads the public file, not Ann's.
    let bob = client(addr, Some("bob")).await;
    assert_eq!(
        FileClient::new(&bob)
            .read("public/p.bin", 0, 4)
            .await
            .unwrap(),
        &data[..4]
    );
    let error = FileClient::new(&bob)
        .read("docs/data.bin", 0, 4)
        .await
        .unwrap_err();
    assert_eq!(code(&error), Some(StatusCode::NOT_FOUND), "{error}");
    let raw = bob
        .call_stream("__zs.files.list", &zs::DataFrame::new().with("../ann"))
        .await
        .unwrap_err();
    assert_eq!(raw.status().unwrap().code(), StatusCode::INVALID_ARGUMENT);
    server.shutdown().await;
}
