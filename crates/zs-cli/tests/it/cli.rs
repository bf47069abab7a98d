//! The `zs` binary end to end: `zs serve` in a child process, `zs call` against it.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

static NEXT_DIR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct ServeProcess {
    child: Child,
    addr: String,
    fingerprint: String,
    dir: std::path::PathBuf,
}

impl ServeProcess {
    fn start(extra: &[&str]) -> Self {
        // Each server gets its own key file in a fresh directory, never the source tree.
        let dir = std::env::temp_dir().join(format!(
            "zs-serve-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("server.key");
        let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--key",
                key.to_str().unwrap(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zs serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        reader
            .read_line(&mut line)
            .expect("zs serve prints its address");
        let addr = line
            .trim()
            .strip_prefix("zs: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let mut second = String::new();
        reader
            .read_line(&mut second)
            .expect("zs serve prints its fingerprint");
        let fingerprint = second
            .trim()
            .strip_prefix("zs: fingerprint ")
            .unwrap_or_else(|| panic!("unexpected second line {second:?}"))
            .to_owned();
        assert_eq!(
            std::fs::read_to_string(dir.join("server.key"))
                .map(|text| text.contains("private"))
                .ok(),
            Some(true),
            "zs serve created its key file"
        );
        Self {
            child,
            addr,
            fingerprint,
            dir,
        }
    }

    fn call(&self, args: &[&str]) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_zs"))
            .args(["call", "--connect", &self.addr, "--timeout", "10"])
            .args(args)
            .output()
            .expect("zs call runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout)
                .trim_end()
                .to_owned(),
            String::from_utf8_lossy(&output.stderr)
                .trim_end()
                .to_owned(),
        )
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn call_pins_the_printed_fingerprint_and_fails_clearly_on_a_mismatch() {
    let server = ServeProcess::start(&[]);
    assert_eq!(
        server.call(&["--pin", &server.fingerprint, "console", "echo", "pinned"]),
        (true, "pinned".into(), String::new())
    );
    let other = format!("sha3-256:{}", "ab".repeat(32));
    let (ok, stdout, stderr) = server.call(&["--pin", &other, "console", "echo", "x"]);
    assert!(!ok && stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("fingerprint mismatch") && stderr.contains(&server.fingerprint),
        "{stderr}"
    );
    for suite in [
        "aes-256-gcm",
        "chacha20-poly1305",
        "serpent-gcm",
        "mars-gcm",
        "rc6-gcm",
    ] {
        let (ok, stdout, stderr) = server.call(&["--suite", suite, "console", "echo", suite]);
        assert!(ok, "{suite}: {stderr}");
        assert_eq!(stdout, suite);
    }
}

#[test]
fn keygen_writes_a_key_that_serve_uses() {
    let dir = std::env::temp_dir().join(format!("zs-keygen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("k.key");
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let printed = stdout
        .lines()
        .find_map(|line| line.strip_prefix("fingerprint: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_owned();
    // Refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    // `zs serve --key` uses it: the printed fingerprints agree.
    let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--key",
            key.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(line.trim(), format!("zs: fingerprint {printed}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_and_call_round_trip_console_and_stream() {
    let server = ServeProcess::start(&[]);
    assert_eq!(
        server.call(&["console", "echo", "hello zserver"]),
        (true, "hello zserver".into(), String::new())
    );

    let (ok, stdout, _) = server.call(&[
        "stream",
        "echo_df",
        r#"["alice", 42, {"u8": 7}, {"f64_array": [1.5]}]"#,
    ]);
    assert!(ok);
    assert_eq!(
        stdout,
        r#"[{"string":"alice"},{"i64":42},{"u8":7},{"f64_array":[1.5]}]"#
    );

    let (ok, time, _) = server.call(&["console", "time"]);
    assert!(ok);
    let seconds: f64 = time.parse().expect("time is seconds since the epoch");
    assert!(seconds > 1_600_000_000.0);

    let (ok, stats, _) = server.call(&["console", "stats"]);
    assert!(ok);
    let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats is JSON");
    let echo = stats["commands"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "echo")
        .unwrap();
    assert_eq!(echo["calls"], 1);
}

#[test]
fn failures_exit_non_zero_with_one_line_errors() {
    let server = ServeProcess::start(&[]);
    let (ok, stdout, stderr) = server.call(&["console", "no_such_command"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("no command named"),
        "{stderr}"
    );

    let (ok, _, stderr) = server.call(&["stream", "echo_df", "not json"]);
    assert!(!ok);
    assert!(stderr.contains("not a DataFrame in JSON form"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["call", "--connect", "127.0.0.1:1", "console", "echo", "x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

#[test]
fn config_file_is_read_and_validated() {
    let dir = std::env::temp_dir().join(format!("zs-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(&good, "[server]\nmax_frame_size = 4096\n").unwrap();
    let server = ServeProcess::start(&["--config", good.to_str().unwrap()]);
    let (ok, _, stderr) = server.call(&["console", "echo", &"x".repeat(5000)]);
    assert!(
        !ok,
        "a 5000-byte request exceeds the configured 4096-byte frames"
    );
    assert!(stderr.contains("exceeds"), "{stderr}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten_on = 1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["serve", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown field"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn zs(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned(),
        String::from_utf8_lossy(&output.stderr)
            .trim_end()
            .to_owned(),
    )
}

#[test]
fn cipher_command_matches_published_vectors() {
    // FIPS-197 Appendix C.1 (AES-128).
    let key = "000102030405060708090a0b0c0d0e0f";
    let (ok, out, _) = zs(&[
        "cipher",
        "--algo",
        "aes",
        "--key",
        key,
        "--encrypt",
        "00112233445566778899aabbccddeeff",
    ]);
    assert!(ok);
    assert_eq!(out, "69c4e0d86a7b0430d8cdb78070b4c55a");
    let (_, back, _) = zs(&["cipher", "--algo", "aes", "--key", key, "--decrypt", &out]);
    assert_eq!(back, "00112233445566778899aabbccddeeff");
    // RC6 paper: all-zero 128-bit key and plaintext.
    let zero = "00000000000000000000000000000000";
    let (_, out, _) = zs(&["cipher", "--algo", "rc6", "--key", zero, "--encrypt", zero]);
    assert_eq!(out, "8fc3a53656b1f778c129df4e9848a41e");
    // Twofish paper: all-zero 128-bit key and plaintext.
    let (_, out, _) = zs(&[
        "cipher",
        "--algo",
        "twofish",
        "--key",
        zero,
        "--encrypt",
        zero,
    ]);
    assert_eq!(out, "9f589f5cf6122c32b6bfec2f2ae8c35a");
    // Every name round-trips a block.
    for algo in ["serpent", "mars"] {
        let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let (ok, sealed, err) = zs(&["cipher", "--algo", algo, "--key", key, "--encrypt", zero]);
        assert!(ok, "{algo}: {err}");
        assert_ne!(sealed, zero);
        let (_, opened, _) = zs(&["cipher", "--algo", algo, "--key", key, "--decrypt", &sealed]);
        assert_eq!(opened, zero, "{algo}");
    }
    let (ok, _, err) = zs(&["cipher", "--algo", "des", "--key", zero, "--encrypt", zero]);
    assert!(!ok && err.contains("unknown block cipher"), "{err}");
    let (ok, _, err) = zs(&[
        "cipher",
        "--algo",
        "aes",
        "--key",
        "0011",
        "--encrypt",
        zero,
    ]);
    assert!(!ok && err.lines().count() == 1, "{err}");
}

#[test]
fn hash_command_matches_fips_202() {
    let dir = std::env::temp_dir().join(format!("zs-hash-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("abc.txt");
    std::fs::write(&file, b"abc").unwrap();
    let path = file.to_str().unwrap();
    // FIPS 202 examples for "abc".
    assert_eq!(
        zs(&["hash", path]).1,
        "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
    );
    assert_eq!(
        zs(&["hash", "--algo", "sha3-224", path]).1,
        "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf"
    );
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    // SHAKE128("", 256 bits), FIPS 202 example.
    assert_eq!(
        zs(&["hash", "--algo", "shake128", empty.to_str().unwrap()]).1,
        "7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26"
    );
    let (ok, _, err) = zs(&["hash", "--algo", "md5", path]);
    assert!(!ok && err.starts_with("error: "), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loopback proxy that records every byte it forwards (both directions, one connection).
fn recording_proxy(upstream: &str) -> (String, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let wire = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let upstream = upstream.to_owned();
    let recorded = wire.clone();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let server = TcpStream::connect(&upstream).unwrap();
        let pump = |mut from: TcpStream,
                    mut to: TcpStream,
                    wire: std::sync::Arc<std::sync::Mutex<Vec<u8>>>| {
            std::thread::spawn(move || {
                let mut buffer = [0u8; 16 * 1024];
                loop {
                    match from.read(&mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            wire.lock().unwrap().extend_from_slice(&buffer[..read]);
                            if to.write_all(&buffer[..read]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = to.shutdown(std::net::Shutdown::Write);
            })
        };
        let up = pump(
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            recorded.clone(),
        );
        let down = pump(server, client, recorded);
        let _ = up.join();
        let _ = down.join();
    });
    (addr, wire)
}

#[test]
fn marker_sent_through_zs_call_never_appears_on_the_wire() {
    let server = ServeProcess::start(&[]);
    let (proxy, wire) = recording_proxy(&server.addr);
    let marker = "MARKER-0f3c9a51-never-in-clear";
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["call", "--connect", &proxy, "console", "echo", marker])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim_end(), marker);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let wire = wire.lock().unwrap();
    assert!(wire.len() > 100, "the proxy saw the exchange");
    assert!(
        !wire
            .windows(marker.len())
            .any(|window| window == marker.as_bytes()),
        "the marker crossed the wire in clear"
    );
}

/// A loopback proxy that cuts each connection (both ways, mid-stream) after `budget` bytes
/// forwarded; returns its address and the number of cuts so far.
fn cutting_proxy(
    upstream: &str,
    budget: u64,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let cuts = Arc::new(AtomicU64::new(0));
    let counted = cuts.clone();
    let upstream = upstream.to_owned();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&upstream) else {
                return;
            };
            let left = Arc::new(AtomicU64::new(budget));
            let sockets = [client.try_clone().unwrap(), server.try_clone().unwrap()];
            let sockets = Arc::new(sockets);
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                let (left, sockets, counted) = (left.clone(), sockets.clone(), counted.clone());
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16 * 1024];
                    while let Ok(read) = from.read(&mut buffer) {
                        if read == 0 {
                            break;
                        }
                        let before = left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                                Some(left.saturating_sub(read as u64))
                            })
                            .unwrap();
                        let pass = (read as u64).min(before) as usize;
                        if to.write_all(&buffer[..pass]).is_err() {
                            break;
                        }
                        if pass < read || before == read as u64 {
                            counted.fetch_add(1, Ordering::SeqCst);
                            for socket in sockets.iter() {
                                let _ = socket.shutdown(Shutdown::Both);
                            }
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
    (addr, cuts)
}

#[test]
fn stable_repeat_counts_every_call_once_across_cuts() {
    let server = ServeProcess::start(&[]);
    let (proxy, cuts) = cutting_proxy(&server.addr, 48 * 1024);
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args([
            "call",
            "--connect",
            &proxy,
            "--timeout",
            "20",
            "--stable",
            "--repeat",
            "3000",
            "console",
            "echo",
            "ping",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(stdout.trim_end(), "3000 ok, 0 lost, 0 duplicated");
    let cuts = cuts.load(std::sync::atomic::Ordering::SeqCst);
    assert!(cuts >= 3, "the proxy cut only {cuts} times");
}

#[test]
fn repeat_without_stable_reports_the_calls_lost_to_a_cut() {
    let server = ServeProcess::start(&[]);
    let (proxy, _) = cutting_proxy(&server.addr, 48 * 1024);
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args([
            "call",
            "--connect",
            &proxy,
            "--timeout",
            "5",
            "--repeat",
            "3000",
            "console",
            "echo",
            "ping",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "a cut connection must lose calls");
    let (ok, rest) = stdout.trim_end().split_once(" ok, ").unwrap();
    let ok: u64 = ok.parse().unwrap();
    assert!(ok > 0 && ok < 3000, "{stdout}");
    assert!(rest.ends_with("0 duplicated"), "{stdout}");
}

#[test]
fn bench_measures_a_running_zs_serve() {
    let server = ServeProcess::start(&[]);
    let (ok, stdout, stderr) = zs(&[
        "bench",
        "rpc",
        "--connect",
        &server.addr,
        "--connections",
        "2",
        "--in-flight",
        "2",
        "--seconds",
        "0.3",
    ]);
    assert!(ok, "zs bench rpc failed: {stderr}");
    assert!(
        stdout.contains("zs bench rpc: 2 connections x 2 in flight"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rpc: ") && stdout.contains("req/s"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = zs(&[
        "bench",
        "stream",
        "--connect",
        &server.addr,
        "--size",
        "2MiB",
    ]);
    assert!(ok, "zs bench stream failed: {stderr}");
    assert!(
        stdout.contains("stream (BigStream, one connection): 2097152 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("echo during stream:"), "{stdout}");
    // The comparisons moved to `zs-bench`: here a server address is required.
    let (ok, _, stderr) = zs(&["bench", "rpc", "--seconds", "0.3"]);
    assert!(!ok);
    assert!(stderr.contains("--connect"), "{stderr}");
    let (ok, _, _) = zs(&["bench", "mux"]);
    assert!(!ok);
}

/// An operator's `zs serve ... | head -1`, or a shell that went away: the server's stdout is
/// closed before it prints, and it must keep serving. It also raises its open-file soft limit
/// to what `max_connections` needs (within the hard limit).
#[test]
fn serve_survives_a_closed_stdout_and_raises_its_open_file_limit() {
    let dir = std::env::temp_dir().join(format!("zs-serve-closed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // Started as from a shell with the usual soft limit of 1,024 open files.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 1024 && exec "$0" serve --listen "$1" --key "$2""#)
        .arg(env!("CARGO_BIN_EXE_zs"))
        .arg(&addr)
        .arg(dir.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before the server writes its first line
    // Killed however the test ends (a failed assertion must not leave a server running).
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = KillOnDrop(child);
    let mut answered = false;
    for _ in 0..100 {
        let (ok, out, _) = zs(&["call", "--connect", &addr, "console", "echo", "still here"]);
        if ok {
            assert_eq!(out, "still here");
            answered = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(answered, "zs serve died of its closed stdout");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "zs serve is still running"
    );
    #[cfg(target_os = "linux")]
    {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.0.id())).unwrap();
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))
            .unwrap();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        let (soft, hard) = (numbers[0], numbers[1]);
        // The default max_connections (10,000) + 256, or the hard limit if lower.
        assert_eq!(soft, hard.min(10_256), "{line}");
    }
    drop(child);
    let _ = std::fs::remove_dir_all(dir);
}
