//! `zs nat` end to end, as the README shows it: `zs nat server` and `zs nat agent` in child
//! processes with two small config files, and an HTTP GET through the public port.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zs-nat-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A one-page HTTP server on a thread; answers every request and closes.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { continue };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && socket.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let body = "hello through XNat";
            let _ = write!(
                socket,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn start_server(dir: &Path, agent_port: u16, public_port: u16) -> (Running, String) {
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[nat.server]\nlisten = \"127.0.0.1:{agent_port}\"\n\
             [nat.server.mappings.web]\npublic = \"127.0.0.1:{public_port}\"\ntoken = \"change-me\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["nat", "server", "--config"])
        .arg(&config)
        .arg("--key")
        .arg(dir.join("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        format!("zs nat: agents connect to 127.0.0.1:{agent_port}")
    );
    line.clear();
    stdout.read_line(&mut line).unwrap();
    let fingerprint = line
        .trim()
        .strip_prefix("zs nat: fingerprint ")
        .unwrap()
        .to_owned();
    (Running(child), fingerprint)
}

fn write_agent_config(
    dir: &Path,
    agent_port: u16,
    local_port: u16,
    token: &str,
    pin: &str,
) -> PathBuf {
    let config = dir.join(format!("agent-{token}.toml"));
    std::fs::write(
        &config,
        format!(
            "[nat.agent]\nserver = \"127.0.0.1:{agent_port}\"\npin = \"{pin}\"\n\
             [nat.agent.mappings.web]\nlocal = \"127.0.0.1:{local_port}\"\ntoken = \"{token}\"\n"
        ),
    )
    .unwrap();
    config
}

fn get(port: u16) -> std::io::Result<String> {
    let mut socket = TcpStream::connect(("127.0.0.1", port))?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    socket.read_to_string(&mut response)?;
    Ok(response)
}

#[test]
fn curl_through_the_public_port_returns_the_page() {
    let dir = temp_dir("page");
    let (agent_port, public_port, local_port) = (free_port(), free_port(), http_server());
    let (_server, fingerprint) = start_server(&dir, agent_port, public_port);
    // The public port opens only once an agent serves the mapping.
    assert!(TcpStream::connect(("127.0.0.1", public_port)).is_err());
    let config = write_agent_config(&dir, agent_port, local_port, "change-me", &fingerprint);
    let _agent = Running(
        Command::new(env!("CARGO_BIN_EXE_zs"))
            .args(["nat", "agent", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let response = loop {
        match get(public_port) {
            Ok(response) if !response.is_empty() => break response,
            _ if started.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("no page through the public port: {other:?}"),
        }
    };
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with("hello through XNat"), "{response}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_agent_with_a_wrong_token_exits_with_a_clear_error() {
    let dir = temp_dir("token");
    let (agent_port, public_port) = (free_port(), free_port());
    let (_server, fingerprint) = start_server(&dir, agent_port, public_port);
    let config = write_agent_config(&dir, agent_port, 1, "guess", &fingerprint);
    let output = Command::new(env!("CARGO_BIN_EXE_zs"))
        .args(["nat", "agent", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: the server refused every mapping: web: wrong token"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
