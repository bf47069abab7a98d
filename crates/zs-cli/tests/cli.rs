//! The `zs` binary end to end: `zs serve` in a child process, `zs call` against it.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct ServeProcess {
    child: Child,
    addr: String,
}

impl ServeProcess {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zs"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("zs serve starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("zs serve prints its address");
        let addr = line
            .trim()
            .strip_prefix("zs: listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Self { child, addr }
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
    }
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
