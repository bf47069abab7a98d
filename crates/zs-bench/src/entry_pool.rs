//! `zs-bench entry-pool`: StableIO switch-over from a dead entry to a live one. `zs serve`
//! runs in a network namespace reached over two veth links (an IPv6 entry on one, an IPv4
//! entry on the other); while eight callers keep calls in flight, the link in use is cut
//! with `ip link set down` (and the other restored), `--cuts` times. Switch-over: from the
//! cut until a call made right after it is answered (detection by link silence, Happy
//! Eyeballs to the other entry, handshake, resume). Every call is checked to have run once.
//! Needs root and iproute2.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use tokio::io::AsyncBufReadExt;

#[path = "../../zs-cli/tests/it/netns.rs"]
mod netns;

/// Arguments of `zs-bench entry-pool`.
#[derive(Debug, Args)]
pub struct EntryPoolArgs {
    /// Cuts timed.
    #[arg(long, default_value_t = 20)]
    pub cuts: usize,
    /// Silence after which the client counts a link as lost (`stable_link_timeout`).
    #[arg(long, default_value_t = 500)]
    pub link_timeout_ms: u64,
    /// The client's keep-alive interval (keeps a healthy link from falling silent).
    #[arg(long, default_value_t = 100)]
    pub keepalive_ms: u64,
    /// The `zs` binary run inside the namespace (default: next to zs-bench, then PATH).
    #[arg(long)]
    pub zs: Option<PathBuf>,
}

/// Runs `zs-bench entry-pool`.
pub async fn run(args: EntryPoolArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.cuts > 0, "at least one cut");
    if let Some(why) = netns::unavailable() {
        anyhow::bail!("network namespaces are unavailable (run as root with iproute2): {why}");
    }
    let zs = crate::process::find_zs(args.zs.as_ref())?;
    let net = netns::TestNet::create(2).map_err(anyhow::Error::msg)?;
    let dir = tempfile::tempdir()?;
    let mut server = tokio::process::Command::from(
        net.command(zs.to_str().context("the zs path is not UTF-8")?),
    );
    let mut server = server
        .args(["serve", "--listen", "[::]:4920", "--key"])
        .arg(dir.path().join("server.key"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(server.stdout.take().context("stdout")?).lines();
    let first = lines.next_line().await?.unwrap_or_default();
    anyhow::ensure!(
        first.starts_with("zs: listening"),
        "zs serve said {first:?}"
    );

    let entries = vec![
        SocketAddr::new(net.server_v6(0).into(), 4920),
        SocketAddr::new(net.server_v4(1).into(), 4920),
    ];
    let mut builder = zs::Client::builder();
    builder
        .config_mut()
        .keepalive_interval(Some(Duration::from_millis(args.keepalive_ms)))
        .stable_link_timeout(Duration::from_millis(args.link_timeout_ms))
        .connect_timeout(Duration::from_secs(2));
    let client = Arc::new(builder.connect_pool(entries.clone()).await?);
    println!(
        "zs-bench entry-pool: entries {entries:?} on two veth links, link timeout {} ms, keep-alive {} ms, {} cuts, 8 callers",
        args.link_timeout_ms, args.keepalive_ms, args.cuts
    );
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..8)
        .map(|caller| {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut seen = HashSet::new();
                let mut number = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let text = format!("{caller}-{number}");
                    let answer = client.call_console("echo", &text).await?;
                    anyhow::ensure!(answer == text && seen.insert(number), "wrong answer");
                    number += 1;
                }
                anyhow::Ok(number)
            })
        })
        .collect();

    let mut switches = Vec::with_capacity(args.cuts);
    let mut in_use = 0; // Happy Eyeballs starts with the first (IPv6) entry.
    for cut in 0..args.cuts {
        tokio::time::sleep(Duration::from_millis(300)).await;
        net.set_link(in_use, false).map_err(anyhow::Error::msg)?;
        let cut_at = Instant::now();
        let text = format!("after cut {cut}");
        let answer = client.call_console("echo", &text).await?;
        anyhow::ensure!(answer == text, "wrong answer after cut {cut}");
        switches.push(cut_at.elapsed().as_secs_f64() * 1000.0);
        net.set_link(in_use, true).map_err(anyhow::Error::msg)?;
        in_use = 1 - in_use;
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = args.cuts as u64;
    for caller in callers {
        total += caller.await??;
    }
    let stats: serde_json::Value = serde_json::from_str(&client.call_console("stats", "").await?)?;
    let ran = stats["commands"]
        .as_array()
        .and_then(|commands| commands.iter().find(|command| command["name"] == "echo"))
        .and_then(|command| command["calls"].as_u64())
        .context("no echo count in the server's stats")?;
    anyhow::ensure!(
        ran == total,
        "the server ran {ran} echo calls for {total} sent"
    );
    let max = switches.iter().copied().fold(0.0, f64::max);
    println!(
        "switch-over from a cut entry to the live one: median {:.0} ms, max {max:.0} ms over {} cuts",
        crate::median(&switches),
        switches.len()
    );
    println!("{total} calls, each answered once (the server counted {ran})");
    Ok(())
}
