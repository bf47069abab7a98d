//! The `zs-bench` binary end to end on short runs: each comparison prints its figures and
//! its ratio; `churn` and `idle` against a `zs serve` child when the `zs` binary is built.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use std::process::Command;

fn zs_bench(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_zs-bench"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "zs-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn rpc_runs_against_the_raw_tcp_baseline() {
    let stdout = zs_bench(&[
        "rpc",
        "--connections",
        "2",
        "--in-flight",
        "2",
        "--seconds",
        "0.3",
        "--rounds",
        "2",
    ]);
    assert!(
        stdout.contains("round 2: baseline (raw TCP echo)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ratio ") && stdout.contains("(medians)"),
        "{stdout}"
    );
}

#[test]
fn stream_runs_against_the_raw_tcp_baseline() {
    let stdout = zs_bench(&["stream", "--size", "4MiB"]);
    assert!(
        stdout.contains("baseline (raw TCP loopback): 4194304 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("ratio "), "{stdout}");
}

#[test]
fn handshake_compares_zserver_with_rustls() {
    let stdout = zs_bench(&[
        "handshake",
        "--concurrency",
        "2",
        "--seconds",
        "0.3",
        "--rounds",
        "1",
    ]);
    assert!(stdout.contains("round 1: zserver: "), "{stdout}");
    assert!(stdout.contains("round 1: rustls: "), "{stdout}");
    assert!(stdout.contains("ratio zs/rustls"), "{stdout}");
}

#[test]
fn crypto_measures_the_named_suite() {
    let stdout = zs_bench(&["crypto", "--seconds", "0.05", "--suite", "aes-128-gcm"]);
    assert!(stdout.contains("crypto: aes-128-gcm"), "{stdout}");
}

/// The `zs` binary beside `zs-bench`: `cargo test --workspace` builds both; with
/// `cargo test -p zs-bench` alone it may be missing, and the test says so and does nothing.
fn zs_beside() -> Option<std::path::PathBuf> {
    let zs = std::path::Path::new(env!("CARGO_BIN_EXE_zs-bench")).with_file_name("zs");
    if zs.is_file() {
        Some(zs)
    } else {
        eprintln!("skipped: no {} (build zs-cli too)", zs.display());
        None
    }
}

#[test]
fn churn_and_idle_measure_a_zs_serve_child() {
    let Some(zs) = zs_beside() else {
        return;
    };
    let zs = zs.to_str().unwrap();
    let stdout = zs_bench(&[
        "churn",
        "--zs",
        zs,
        "--rounds",
        "2",
        "--connections",
        "20",
        "--seconds",
        "0.2",
        "--workers",
        "2",
    ]);
    assert!(stdout.contains("round 2: opened in"), "{stdout}");
    assert!(stdout.contains("0 left open on the server"), "{stdout}");
    assert!(stdout.contains("server: RSS before"), "{stdout}");
    let stdout = zs_bench(&[
        "churn",
        "--zs",
        zs,
        "--nat",
        "--rounds",
        "1",
        "--connections",
        "20",
        "--seconds",
        "0.2",
    ]);
    assert!(stdout.contains("agent: RSS before"), "{stdout}");
    let stdout = zs_bench(&[
        "idle",
        "--zs",
        zs,
        "--connections",
        "30",
        "--seconds",
        "0.2",
    ]);
    assert!(stdout.contains("the server holds 30"), "{stdout}");
    assert!(stdout.contains("KiB per idle connection"), "{stdout}");
    let stdout = zs_bench(&[
        "soak",
        "--zs",
        zs,
        "--connections",
        "20",
        "--churn",
        "5",
        "--seconds",
        "0.6",
        "--sample-seconds",
        "0.3",
    ]);
    assert!(stdout.contains("largest drift"), "{stdout}");
    assert!(stdout.contains("0 not closed"), "{stdout}");
}
