//! Entry pools across real separate addresses: `zs serve` runs in a network namespace (a
//! server host) reached over two veth links, one entry on each (IPv6 on the first, IPv4 on
//! the second). A StableIO client keeps calls in flight while a link is cut with `ip link
//! set down`, then the other: each time it resumes through the live entry, and every call
//! is answered exactly once. Needs root and iproute2; skips with a message elsewhere, unless
//! `ZS_REQUIRE_NETNS` is set (as in CI), where it fails instead.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::netns::{self, TestNet};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn net_or_skip(links: usize) -> Option<TestNet> {
    if let Some(why) = netns::unavailable() {
        assert!(
            std::env::var_os("ZS_REQUIRE_NETNS").is_none(),
            "ZS_REQUIRE_NETNS is set but namespaces cannot be made: {why}"
        );
        eprintln!("SKIPPED: network namespaces unavailable here (needs root and iproute2): {why}");
        return None;
    }
    Some(TestNet::create(links).unwrap())
}

/// `zs serve` inside the server host, on every address, port 4920.
fn serve_inside(net: &TestNet, dir: &std::path::Path) -> Killed {
    let key = dir.join("server.key");
    let mut child = net
        .command(env!("CARGO_BIN_EXE_zs"))
        .args(["serve", "--listen", "[::]:4920", "--key"])
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("zs: listening on"), "{line:?}");
    Killed(child)
}

/// Calls `echo` from eight tasks until told to stop; each checks its answers.
fn callers(client: &Arc<zs::Client>, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..8)
        .map(|caller| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                let mut number = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let text = format!("{caller}-{number}");
                    assert_eq!(client.call_console("echo", &text).await.unwrap(), text);
                    assert!(seen.insert(number));
                    number += 1;
                }
                number
            })
        })
        .collect()
}

fn echo_count(stats: &str) -> u64 {
    let stats: serde_json::Value = serde_json::from_str(stats).unwrap();
    stats["commands"]
        .as_array()
        .and_then(|commands| {
            commands
                .iter()
                .find(|command| command["name"] == "echo")
                .and_then(|command| command["calls"].as_u64())
        })
        .unwrap_or_else(|| panic!("no echo count in {stats}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_client_survives_cut_links_with_every_call_answered_once() {
    let Some(net) = net_or_skip(2) else { return };
    let dir = tempfile::tempdir().unwrap();
    let _server = serve_inside(&net, dir.path());
    let entries: Vec<SocketAddr> = vec![
        SocketAddr::new(net.server_v6(0).into(), 4920),
        SocketAddr::new(net.server_v4(1).into(), 4920),
    ];
    let mut builder = zs::Client::builder();
    builder
        .config_mut()
        .keepalive_interval(Some(Duration::from_millis(100)))
        .stable_link_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2));
    let client = Arc::new(builder.connect_pool(entries.clone()).await.unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let running = callers(&client, &stop);

    // Cut the link in use (Happy Eyeballs picked the IPv6 entry first), then bring it back
    // and cut the other: the session moves each time.
    for (cut, restore) in [(0, None), (1, Some(0))] {
        if let Some(link) = restore {
            net.set_link(link, true).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        net.set_link(cut, false).unwrap();
        let cut_at = Instant::now();
        let text = format!("after cutting link {cut}");
        assert_eq!(client.call_console("echo", &text).await.unwrap(), text);
        let took = cut_at.elapsed();
        println!("link {cut} cut: a new call answered after {took:?} (link timeout 500 ms)");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 2; // the two "after cutting" calls
    for caller in running {
        total += caller.await.unwrap();
    }
    let stats = client.call_console("stats", "").await.unwrap();
    assert_eq!(
        echo_count(&stats),
        total,
        "each call ran once on the server"
    );
    assert!(total > 16, "calls ran throughout: {total}");
}
