//! [`LocalEtcd`]: an etcd cluster of child processes on loopback, for tests, benchmarks and
//! trying the etcd backend on one machine (Debian: `apt-get install etcd-server`).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a local etcd cluster did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalEtcdError {
    /// No `etcd` program (set `ZS_ETCD` to its path, or install Debian's `etcd-server`).
    #[error("no etcd program at {0:?} (install etcd-server, or set ZS_ETCD)")]
    NotInstalled(String),
    /// Starting a member or its directory failed.
    #[error("starting etcd: {0}")]
    Io(#[from] std::io::Error),
    /// The members did not elect a leader in time.
    #[error("etcd did not become ready within {0:?}; its logs are in {1}")]
    NotReady(Duration, String),
}

struct Member {
    client: SocketAddr,
    child: Option<Child>,
}

/// Members of an etcd cluster on `127.0.0.1`, each a child process with its own ports and
/// data directory, stopped and deleted on drop.
pub struct LocalEtcd {
    members: Vec<Member>,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalEtcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEtcd")
            .field("endpoints", &self.endpoints())
            .finish_non_exhaustive()
    }
}

/// The etcd program: `ZS_ETCD`, else `etcd` on the path.
pub fn etcd_program() -> String {
    std::env::var("ZS_ETCD").unwrap_or_else(|_| "etcd".to_owned())
}

/// Whether an etcd program runs here.
pub fn etcd_available() -> bool {
    Command::new(etcd_program())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn free_port() -> std::io::Result<SocketAddr> {
    // The port is free when asked; another process could take it before etcd binds it,
    // which shows as a member that does not start.
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

impl LocalEtcd {
    /// Starts `members` members and waits (up to 20 s) until they answer.
    pub async fn start(members: usize) -> Result<Self, LocalEtcdError> {
        if !etcd_available() {
            return Err(LocalEtcdError::NotInstalled(etcd_program()));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let dir = std::env::temp_dir().join(format!("zs-etcd-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut ports = Vec::with_capacity(members);
        for _ in 0..members {
            ports.push((free_port()?, free_port()?));
        }
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(index, (_, peer))| format!("m{index}=http://{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("zs-{}-{nanos}", std::process::id());
        let mut cluster = Self {
            members: Vec::with_capacity(members),
            dir,
        };
        for (index, (client, peer)) in ports.into_iter().enumerate() {
            let child = spawn_member(&cluster.dir, index, client, peer, &initial_cluster, &token)?;
            cluster.members.push(Member {
                client,
                child: Some(child),
            });
        }
        cluster.wait_ready(Duration::from_secs(20)).await?;
        Ok(cluster)
    }

    async fn wait_ready(&self, limit: Duration) -> Result<(), LocalEtcdError> {
        let started = Instant::now();
        for endpoint in self.endpoints() {
            loop {
                let ready = async {
                    let options = etcd_client::ConnectOptions::new()
                        .with_connect_timeout(Duration::from_millis(500))
                        .with_timeout(Duration::from_secs(1));
                    let mut client =
                        etcd_client::Client::connect([endpoint.as_str()], Some(options)).await?;
                    // A linearizable read succeeds only once the member is part of a
                    // cluster with a leader.
                    client.get("/zs/ready", None).await
                }
                .await;
                if ready.is_ok() {
                    break;
                }
                if started.elapsed() > limit {
                    return Err(LocalEtcdError::NotReady(
                        limit,
                        self.dir.display().to_string(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// The client URLs of every member, killed ones included.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|member| format!("http://{}", member.client))
            .collect()
    }

    /// The index of the member that leads the cluster now, if one answers.
    pub async fn leader(&self) -> Option<usize> {
        for (index, endpoint) in self.endpoints().iter().enumerate() {
            if self.members[index].child.is_none() {
                continue;
            }
            let options = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(1));
            let Ok(mut client) =
                etcd_client::Client::connect([endpoint.as_str()], Some(options)).await
            else {
                continue;
            };
            if let Ok(status) = client.status().await
                && status
                    .header()
                    .is_some_and(|header| header.member_id() == status.leader())
            {
                return Some(index);
            }
        }
        None
    }

    /// Kills member `index` (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self, index: usize) -> std::io::Result<()> {
        if let Some(mut child) = self
            .members
            .get_mut(index)
            .and_then(|member| member.child.take())
        {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }
}

fn spawn_member(
    dir: &Path,
    index: usize,
    client: SocketAddr,
    peer: SocketAddr,
    initial_cluster: &str,
    token: &str,
) -> std::io::Result<Child> {
    let log = std::fs::File::create(dir.join(format!("m{index}.log")))?;
    Command::new(etcd_program())
        .args(["--name", &format!("m{index}")])
        .arg("--data-dir")
        .arg(dir.join(format!("m{index}")))
        .args(["--listen-client-urls", &format!("http://{client}")])
        .args(["--advertise-client-urls", &format!("http://{client}")])
        .args(["--listen-peer-urls", &format!("http://{peer}")])
        .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-state", "new"])
        .args(["--initial-cluster-token", token])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        for member in &mut self.members {
            if let Some(mut child) = member.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
