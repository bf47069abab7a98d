//! Resumable file transfer ([`zs::services::files`]): an upload is cut off when 40% has
//! gone — the client and its connection are dropped, as if the program died — then a new
//! client reconnects and resumes from the server's `.part`; the same for a download, which
//! resumes from the local `.part`. Both ends check SHA3-256 of the whole file, and the
//! example compares the bytes too. Everything lives in temporary directories.
//!
//! ```sh
//! cargo run -p zs --example file_resume
//! cargo run -p zs --example file_resume -- --size-mib 256
//! ```
//!
//! ZServer4D: `22.RestoreDownloadAndUpload`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;
use zs::services::files::{FileClient, FileService, FileSink, TransferOptions};
use zs::{Client, Server, ServerHandle};
use zs_wire::crypto::hash::{HashAlgorithm, hex};

/// `--size-mib N`: the file's size (default 24 MiB).
fn size_mib() -> Result<usize, Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut size = 24;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size-mib" => size = args.next().ok_or("--size-mib needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other:?} (try --size-mib N)").into()),
        }
    }
    Ok(size)
}

/// Deterministic pseudo-random bytes (xorshift64), so nothing compresses or repeats.
fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
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

/// A client that can receive downloads (the server pushes them to its `FileSink`).
async fn connect(addr: SocketAddr) -> Result<Client, zs::ConnectError> {
    let mut builder = Client::builder();
    builder.install(FileSink::new());
    builder.connect(addr).await
}

/// Options whose progress callback fires `interrupt` once `at` bytes of the file moved.
fn interrupting(at: u64) -> (TransferOptions, oneshot::Receiver<u64>) {
    let (sender, interrupt) = oneshot::channel();
    let mut sender = Some(sender);
    let options = TransferOptions::new().on_progress(move |done, _total| {
        if done >= at
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(done);
        }
    });
    (options, interrupt)
}

/// Waits until the server has noticed the dead client (its handlers then let go of the
/// `.part`).
async fn until_gone(server: &ServerHandle) -> Result<(), Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(5), async {
        while server.connection_count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await?;
    Ok(())
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let size = size_mib()? * 1024 * 1024;
    let served = tempfile::tempdir()?;
    let local = tempfile::tempdir()?;
    let data = pattern(size);
    let sha3 = hex(&HashAlgorithm::Sha3_256.digest(&data));
    let source = local.path().join("big.bin");
    std::fs::write(&source, &data)?;
    println!("a {size}-byte file, SHA3-256 {}…", &sha3[..16]);

    let mut server = Server::bind("127.0.0.1:0").await?;
    server.install(FileService::new(served.path())?);
    let addr = server.local_addr()?;
    let server = server.spawn();
    let cut_at = size as u64 * 2 / 5;

    // Upload, killed at 40%.
    {
        let client = connect(addr).await?;
        let files = FileClient::new(&client);
        let (options, interrupted) = interrupting(cut_at);
        tokio::select! {
            result = files.put(&source, "big.bin", options) => {
                return Err(format!("the upload finished before the cut: {result:?}").into());
            }
            sent = interrupted => println!("upload: {} bytes sent, then the client dies", sent?),
        }
        // Leaving the block drops the transfer, the client and its connection.
    }
    until_gone(&server).await?;
    println!(
        "  the server kept big.bin.part: {} bytes",
        file_len(&served.path().join("big.bin.part"))
    );
    let client = connect(addr).await?;
    let report = FileClient::new(&client)
        .put(&source, "big.bin", TransferOptions::new().resume(true))
        .await?;
    let stored = std::fs::read(served.path().join("big.bin"))?;
    println!(
        "upload resumed at byte {}: {} more bytes sent, SHA3 {}, server's copy identical: {}",
        report.resumed_from,
        report.bytes_sent,
        if report.sha3_hex == sha3 {
            "matches"
        } else {
            "DIFFERS"
        },
        stored == data
    );
    if stored != data || report.resumed_from == 0 {
        return Err("the upload did not resume to an identical file".into());
    }
    drop(client);
    until_gone(&server).await?;

    // Download, killed at 40%.
    let target = local.path().join("copy.bin");
    {
        let client = connect(addr).await?;
        let files = FileClient::new(&client);
        let (options, interrupted) = interrupting(cut_at);
        tokio::select! {
            result = files.get("big.bin", &target, options) => {
                return Err(format!("the download finished before the cut: {result:?}").into());
            }
            got = interrupted => println!("download: {} bytes received, then the client dies", got?),
        }
    }
    until_gone(&server).await?;
    println!(
        "  the client kept copy.bin.part: {} bytes",
        file_len(&local.path().join("copy.bin.part"))
    );
    let client = connect(addr).await?;
    let report = FileClient::new(&client)
        .get("big.bin", &target, TransferOptions::new().resume(true))
        .await?;
    let copy = std::fs::read(&target)?;
    println!(
        "download resumed at byte {}: {} more bytes received, SHA3 {}, local copy identical: {}",
        report.resumed_from,
        report.bytes_sent,
        if report.sha3_hex == sha3 {
            "matches"
        } else {
            "DIFFERS"
        },
        copy == data
    );
    if copy != data || report.resumed_from == 0 {
        return Err("the download did not resume to an identical file".into());
    }

    client.close().await;
    server.shutdown().await;
    Ok(())
}
