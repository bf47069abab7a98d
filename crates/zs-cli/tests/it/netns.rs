//! Test hosts in a network namespace: a "server host" joined to this one by several veth
//! links, each with an IPv4 and an IPv6 address of its own, so one server process has
//! several real entry addresses on separate links; `set_link(i, false)` cuts one like a
//! pulled cable. Needs root and `ip` (iproute2); everything is removed on drop.
//!
//! Blackhole routes cover the test's subnets: with a link down, packets to its addresses
//! vanish (as on a real dead path) instead of following the default route.
//!
//! Also compiled into `zs-bench` (`entry-pool`), by path.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output, Stdio};

/// A namespace with `links` veth links to this one.
pub(crate) struct TestNet {
    ns: String,
    tag: u16,
    links: usize,
}

fn run(program: &str, args: &[&str]) -> Result<Output, String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args).map(drop)
}

/// Why namespaces cannot be made here, if they cannot.
pub(crate) fn unavailable() -> Option<String> {
    let probe = format!("zsprobe{}", std::process::id());
    match ip(&["netns", "add", &probe]) {
        Ok(()) => {
            let _ = ip(&["netns", "del", &probe]);
            None
        }
        Err(error) => Some(error),
    }
}

impl TestNet {
    /// Makes the namespace and its links, or says why it cannot.
    pub(crate) fn create(links: usize) -> Result<Self, String> {
        let pid = std::process::id();
        // One tag per test process: interface names and subnets of concurrent runs differ.
        let tag = u16::try_from(pid % 250).unwrap_or(0) + 1;
        let net = Self {
            ns: format!("zsnet{pid}"),
            tag,
            links: 0,
        };
        ip(&["netns", "add", &net.ns])?;
        let mut net = net;
        ip(&["-n", &net.ns, "link", "set", "lo", "up"])?;
        ip(&["route", "replace", "blackhole", &format!("10.{tag}.0.0/16")])?;
        ip(&[
            "-6",
            "route",
            "replace",
            "blackhole",
            &format!("fd00:5a53:{tag:x}::/48"),
        ])?;
        for link in 0..links {
            net.links = link + 1;
            net.add_link(link)?;
        }
        Ok(net)
    }

    fn add_link(&self, link: usize) -> Result<(), String> {
        let (host, inside) = (self.host_if(link), format!("zsi{}l{link}", self.tag));
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &inside,
        ])?;
        ip(&["link", "set", &inside, "netns", &self.ns])?;
        // Keep the IPv6 address across a cut, so the link comes back as it was.
        std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{host}/keep_addr_on_down"),
            "1",
        )
        .map_err(|error| format!("keep_addr_on_down: {error}"))?;
        let (tag, link_v6) = (self.tag, format!("{link:x}"));
        ip(&[
            "addr",
            "add",
            &format!("10.{tag}.{link}.1/24"),
            "dev",
            &host,
        ])?;
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("fd00:5a53:{tag:x}:{link_v6}::1/64"),
            "dev",
            &host,
            "nodad",
        ])?;
        ip(&["link", "set", &host, "up"])?;
        let ns = self.ns.as_str();
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/24", self.server_v4(link)),
            "dev",
            &inside,
        ])?;
        ip(&[
            "-n",
            ns,
            "-6",
            "addr",
            "add",
            &format!("{}/64", self.server_v6(link)),
            "dev",
            &inside,
            "nodad",
        ])?;
        ip(&["-n", ns, "link", "set", &inside, "up"])
    }

    /// This side's end of `link`.
    pub(crate) fn host_if(&self, link: usize) -> String {
        format!("zsh{}l{link}", self.tag)
    }

    /// The server host's IPv4 address on `link`.
    pub(crate) fn server_v4(&self, link: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, u8::try_from(self.tag).unwrap_or(1), link as u8, 2)
    }

    /// The server host's IPv6 address on `link`.
    pub(crate) fn server_v6(&self, link: usize) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x5a53, self.tag, link as u16, 0, 0, 0, 2)
    }

    /// Cuts (`false`) or restores `link`, as `ip link set ... down|up` on this side.
    pub(crate) fn set_link(&self, link: usize, up: bool) -> Result<(), String> {
        ip(&[
            "link",
            "set",
            &self.host_if(link),
            if up { "up" } else { "down" },
        ])
    }

    /// `program` run inside the server host.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.ns, program]);
        command
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        for link in 0..self.links {
            // Gone with the namespace's end already, unless something held it.
            let _ = ip(&["link", "del", &self.host_if(link)]);
        }
        let tag = self.tag;
        let _ = ip(&["route", "del", "blackhole", &format!("10.{tag}.0.0/16")]);
        let _ = ip(&[
            "-6",
            "route",
            "del",
            "blackhole",
            &format!("fd00:5a53:{tag:x}::/48"),
        ]);
    }
}
