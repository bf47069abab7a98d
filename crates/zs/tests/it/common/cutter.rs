//! A loopback TCP proxy that cuts every connection after a random number of forwarded bytes
//! (anywhere: inside a record, inside a frame), for StableIO chaos tests. It can also be
//! told to cut everything now or to refuse new connections (a network outage).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Cutter {
    pub addr: SocketAddr,
    /// Connections cut by the proxy (not ended by either side).
    pub cuts: Arc<AtomicU64>,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    outage: Arc<AtomicBool>,
    /// Bumped by `cut_all`; every connection watches it (a watch, so a bump while a
    /// connection is busy writing is not missed).
    cut_generation: watch::Sender<u64>,
    /// Set by `freeze`: open connections stop forwarding without closing.
    frozen: watch::Sender<bool>,
}

impl Cutter {
    /// Refuses (accepts and drops at once) new connections while `down`.
    pub fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::SeqCst);
    }

    /// Open connections go silent without closing (a cut cable: no reset reaches either
    /// side); new ones are refused.
    pub fn freeze(&self) {
        self.set_outage(true);
        self.frozen.send_replace(true);
    }

    /// Cuts every open connection.
    pub fn cut_all(&self) {
        self.cut_generation
            .send_modify(|generation| *generation += 1);
    }
}

/// xorshift64*: enough randomness for cut points, reproducible from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn from_time() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64)
            | 1;
        println!("cutter seed {seed}");
        Self(seed)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

/// Starts a proxy to `upstream` that cuts each connection after a byte budget drawn from
/// `min_bytes..max_bytes` (both directions together).
pub async fn start(upstream: SocketAddr, min_bytes: u64, max_bytes: u64) -> Cutter {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cuts = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let outage = Arc::new(AtomicBool::new(false));
    let (cut_generation, cut_watch) = watch::channel(0);
    let (frozen, frozen_watch) = watch::channel(false);
    let cutter = Cutter {
        addr,
        cuts: cuts.clone(),
        connections: connections.clone(),
        outage: outage.clone(),
        cut_generation,
        frozen,
    };
    tokio::spawn(async move {
        let mut rng = Rng::from_time();
        while let Ok((client, _)) = listener.accept().await {
            if outage.load(Ordering::SeqCst) {
                drop(client);
                continue;
            }
            connections.fetch_add(1, Ordering::SeqCst);
            let budget = min_bytes + rng.below(max_bytes.saturating_sub(min_bytes));
            let cuts = cuts.clone();
            let mut cut_now = cut_watch.clone();
            cut_now.mark_unchanged();
            let mut freeze = frozen_watch.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                forward(client, server, budget, &mut cut_now, &mut freeze, &cuts).await;
            });
        }
    });
    cutter
}

/// Forwards both ways until the budget is spent or the test cuts (counted in `cuts`
/// *before* the sockets close, so whoever sees the cut also sees the count), or a side ends.
async fn forward(
    client: TcpStream,
    server: TcpStream,
    budget: u64,
    cut_now: &mut watch::Receiver<u64>,
    freeze: &mut watch::Receiver<bool>,
    cuts: &AtomicU64,
) {
    let cut = || {
        cuts.fetch_add(1, Ordering::SeqCst);
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut left = budget;
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        let (read, to_server) = tokio::select! {
            // A cut or a freeze the test asked for comes before any byte read after it: the
            // test's next call must not slip through on the old connection.
            biased;
            _ = cut_now.changed() => return cut(),
            // Frozen: the sockets stay open and silent until the test ends.
            () = async { drop(freeze.wait_for(|frozen| *frozen).await) } => {
                std::future::pending().await
            }
            read = client_read.read(&mut up) => (read, true),
            read = server_read.read(&mut down) => (read, false),
        };
        let Ok(read) = read else { return };
        if read == 0 {
            return;
        }
        // Forward only up to the budget: the cut lands at an arbitrary byte.
        let pass = (read as u64).min(left) as usize;
        left -= pass as u64;
        let written = if to_server {
            server_write.write_all(&up[..pass]).await
        } else {
            client_write.write_all(&down[..pass]).await
        };
        if written.is_err() {
            return;
        }
        if left == 0 {
            return cut(); // dropping the halves resets both connections
        }
    }
}
