//! Entry pools: the addresses a client may reach a server through (ZServer4D's "IP pools and
//! entry networks"), and Happy Eyeballs (RFC 8305) to pick one.
//!
//! The race is written here rather than taken from a crate: the crates that offer it either
//! resolve names themselves or do not race families with a head start, and the whole of it
//! is one `select!` loop over tokio's `TcpStream::connect`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;

/// Default for [`Config::connection_attempt_delay`](crate::Config::connection_attempt_delay):
/// RFC 8305's recommended 250 ms.
pub const DEFAULT_CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Gives the entries of a pool afresh at every connect: a registry's HostQuery, a service
/// catalogue, a file an operator edits.
pub trait EntrySource: Send + Sync + 'static {
    /// The entries now, best first (Happy Eyeballs still interleaves the families).
    fn entries(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>>;
}

/// The entries a client may connect through, asked again before every link so a StableIO
/// session moves to whichever entry is alive ([`ClientBuilder::connect_pool`]).
///
/// [`ClientBuilder::connect_pool`]: crate::ClientBuilder::connect_pool
#[derive(Clone)]
pub enum Entries {
    /// A fixed list.
    Addresses(Vec<SocketAddr>),
    /// `host:port`, resolved again before every link (A and AAAA records, `/etc/hosts`).
    Name(String),
    /// Asked before every link.
    Source(Arc<dyn EntrySource>),
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Addresses(addresses) => f.debug_tuple("Addresses").field(addresses).finish(),
            Self::Name(name) => f.debug_tuple("Name").field(name).finish(),
            Self::Source(_) => f.write_str("Source(..)"),
        }
    }
}

impl From<Vec<SocketAddr>> for Entries {
    fn from(addresses: Vec<SocketAddr>) -> Self {
        Self::Addresses(addresses)
    }
}

impl From<&[SocketAddr]> for Entries {
    fn from(addresses: &[SocketAddr]) -> Self {
        Self::Addresses(addresses.to_vec())
    }
}

impl From<SocketAddr> for Entries {
    fn from(address: SocketAddr) -> Self {
        Self::Addresses(vec![address])
    }
}

impl From<&str> for Entries {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<String> for Entries {
    fn from(name: String) -> Self {
        Self::Name(name)
    }
}

impl<T: EntrySource> From<Arc<T>> for Entries {
    fn from(source: Arc<T>) -> Self {
        Self::Source(source)
    }
}

impl Entries {
    /// The entries now.
    pub async fn resolve(&self) -> io::Result<Vec<SocketAddr>> {
        let addresses = match self {
            Self::Addresses(addresses) => addresses.clone(),
            Self::Name(name) => tokio::net::lookup_host(name.as_str()).await?.collect(),
            Self::Source(source) => source.entries().await?,
        };
        if addresses.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the entry pool {self:?} is empty"),
            ));
        }
        Ok(addresses)
    }
}

/// RFC 8305 §4: alternate the families, starting with the family of the first address, each
/// family in its given order; `avoid` (the entry whose link just died) goes last.
pub fn interleave(addresses: &[SocketAddr], avoid: Option<SocketAddr>) -> Vec<SocketAddr> {
    let mut unique: Vec<SocketAddr> = Vec::with_capacity(addresses.len());
    for address in addresses {
        if !unique.contains(address) && Some(*address) != avoid {
            unique.push(*address);
        }
    }
    let first_is_v6 = unique.first().is_some_and(SocketAddr::is_ipv6);
    let (mut preferred, mut other): (Vec<_>, Vec<_>) = unique
        .into_iter()
        .partition(|address| address.is_ipv6() == first_is_v6);
    preferred.reverse();
    other.reverse();
    let mut ordered = Vec::with_capacity(addresses.len());
    loop {
        match (preferred.pop(), other.pop()) {
            (None, None) => break,
            (a, b) => ordered.extend(a.into_iter().chain(b)),
        }
    }
    if let Some(avoided) = avoid.filter(|avoided| addresses.contains(avoided)) {
        ordered.push(avoided);
    }
    ordered
}

/// Happy Eyeballs over `addresses` in the given order: starts the first attempt, then the
/// next one every `attempt_delay` or as soon as an attempt fails, whichever comes first;
/// the first attempt to succeed wins and the others are dropped. Each attempt is bounded
/// by `timeout`; the error is the last attempt's.
pub async fn race<T, F, Fut>(
    addresses: &[SocketAddr],
    attempt_delay: Duration,
    timeout: Duration,
    connect: F,
) -> io::Result<(T, SocketAddr)>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut pending = addresses.iter().copied();
    let mut attempts = FuturesUnordered::new();
    let mut last_error = None;
    let attempt = |address: SocketAddr| {
        let connecting = connect(address);
        async move {
            let result = match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {address} timed out after {timeout:?}"),
                )),
            };
            (address, result)
        }
    };
    if let Some(first) = pending.next() {
        attempts.push(attempt(first));
    }
    loop {
        let next_due = tokio::time::sleep(attempt_delay);
        tokio::pin!(next_due);
        let more = pending.len() > 0;
        tokio::select! {
            finished = attempts.next(), if !attempts.is_empty() => match finished {
                Some((address, Ok(connection))) => return Ok((connection, address)),
                Some((address, Err(error))) => {
                    tracing::debug!(%address, %error, "connection attempt failed");
                    last_error = Some(error);
                    match pending.next() {
                        Some(next) => attempts.push(attempt(next)),
                        None if attempts.is_empty() => break,
                        None => {}
                    }
                }
                None => break,
            },
            () = &mut next_due, if more => {
                if let Some(next) = pending.next() {
                    attempts.push(attempt(next));
                }
            }
            else => break,
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to connect to")))
}

/// Happy Eyeballs over TCP ([`race`] with [`interleave`]d addresses), with `TCP_NODELAY` on.
pub async fn connect_tcp(
    addresses: &[SocketAddr],
    avoid: Option<SocketAddr>,
    attempt_delay: Duration,
    timeout: Duration,
) -> io::Result<(TcpStream, SocketAddr)> {
    let ordered = interleave(addresses, avoid);
    let (stream, address) = race(&ordered, attempt_delay, timeout, TcpStream::connect).await?;
    stream.set_nodelay(true)?;
    Ok((stream, address))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::Mutex;
    use tokio::time::Instant;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn families_alternate_from_the_first_and_the_dead_entry_goes_last() {
        let list = [
            addr("[fd00::1]:1"),
            addr("[fd00::2]:1"),
            addr("10.0.0.1:1"),
            addr("10.0.0.2:1"),
            addr("10.0.0.3:1"),
            addr("10.0.0.1:1"),
        ];
        assert_eq!(
            interleave(&list, None),
            [list[0], list[2], list[1], list[3], list[4]]
        );
        assert_eq!(
            interleave(&list, Some(list[0])),
            [list[1], list[2], list[3], list[4], list[0]]
        );
        let v4_first = [list[2], list[0], list[3]];
        assert_eq!(interleave(&v4_first, None), [list[2], list[0], list[3]]);
        assert!(interleave(&[], None).is_empty());
    }

    /// A fake network: how long each address takes to answer, and whether it accepts.
    async fn fake(
        plan: &[(&str, u64, bool)],
        delay_ms: u64,
    ) -> (
        io::Result<(SocketAddr, SocketAddr)>,
        Duration,
        Vec<(SocketAddr, Duration)>,
    ) {
        let started = Instant::now();
        let tried = Arc::new(Mutex::new(Vec::new()));
        let plan: Vec<(SocketAddr, u64, bool)> = plan
            .iter()
            .map(|(address, ms, ok)| (addr(address), *ms, *ok))
            .collect();
        let addresses: Vec<SocketAddr> = plan.iter().map(|(address, _, _)| *address).collect();
        let result = race(
            &addresses,
            Duration::from_millis(delay_ms),
            Duration::from_secs(10),
            |address| {
                let tried = tried.clone();
                let (_, ms, ok) = plan
                    .iter()
                    .find(|(a, _, _)| *a == address)
                    .copied()
                    .unwrap();
                async move {
                    tried.lock().unwrap().push((address, started.elapsed()));
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    if ok {
                        Ok(address)
                    } else {
                        Err(io::Error::from(io::ErrorKind::ConnectionRefused))
                    }
                }
            },
        )
        .await;
        let tried = tried.lock().unwrap().clone();
        (result, started.elapsed(), tried)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_first_address_costs_one_attempt_delay() {
        // The IPv6 entry never answers; IPv4 starts 250 ms later and wins.
        let (result, took, tried) = fake(
            &[("[fd00::1]:1", 60_000, true), ("10.0.0.1:1", 20, true)],
            250,
        )
        .await;
        assert_eq!(result.unwrap().1, addr("10.0.0.1:1"));
        assert_eq!(took, Duration::from_millis(270));
        assert_eq!(tried[1].1, Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_starts_the_next_attempt_at_once() {
        let (result, took, tried) = fake(
            &[
                ("[fd00::1]:1", 5, false),
                ("10.0.0.1:1", 5, false),
                ("10.0.0.2:1", 5, true),
            ],
            250,
        )
        .await;
        assert_eq!(result.unwrap().1, addr("10.0.0.2:1"));
        assert_eq!(took, Duration::from_millis(15));
        assert_eq!(tried.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fastest_of_overlapping_attempts_wins_and_all_failing_gives_the_last_error() {
        // The first is slow but not dead: the second, started 100 ms later, answers first.
        let (result, took, _) =
            fake(&[("10.0.0.1:1", 400, true), ("10.0.0.2:1", 50, true)], 100).await;
        assert_eq!(result.unwrap().1, addr("10.0.0.2:1"));
        assert_eq!(took, Duration::from_millis(150));
        let (result, _, tried) =
            fake(&[("10.0.0.1:1", 5, false), ("10.0.0.2:1", 300, false)], 100).await;
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(tried.len(), 2);
    }

    #[tokio::test]
    async fn names_and_sources_resolve_and_an_empty_pool_is_an_error() {
        struct Two;
        impl EntrySource for Two {
            fn entries(&self) -> BoxFuture<'_, io::Result<Vec<SocketAddr>>> {
                Box::pin(async { Ok(vec![addr("127.0.0.1:7"), addr("127.0.0.2:7")]) })
            }
        }
        let resolved = Entries::from("localhost:7").resolve().await.unwrap();
        assert!(resolved.iter().all(|address| address.ip().is_loopback()));
        assert_eq!(
            Entries::from(Arc::new(Two)).resolve().await.unwrap().len(),
            2
        );
        assert_eq!(
            Entries::Addresses(Vec::new())
                .resolve()
                .await
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
    }
}
