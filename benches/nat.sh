#!/usr/bin/env bash
# XNat against a direct connection and rathole, side by side on loopback (`zs-bench nat`).
#
#   benches/nat.sh [zs-bench nat flags...]      e.g. benches/nat.sh --seconds 5
#
# Installs what is missing, saying so: rathole with `cargo install --root target/peers rathole`
# (into this repository's target/peers/bin), and Debian's iperf3, wrk and apache2-utils (ab)
# with apt-get (through sudo when not root). Then builds `zs` and `zs-bench` in release and
# runs the benchmark with those tools' paths. The benchmark starts and kills every process it uses.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
peers="$root/target/peers"
rathole="$peers/bin/rathole"

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
apt_updated=""
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "nat.sh: apt-get not found; install $* by hand" >&2
        return 1
    fi
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    echo "nat.sh: installing $* (apt-get install -y)"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# rathole: its default features build native-tls, which needs OpenSSL's headers.
if [ ! -x "$rathole" ]; then
    if ! pkg-config --exists openssl 2>/dev/null; then
        apt_install pkg-config libssl-dev || true
    fi
    echo "nat.sh: installing rathole (cargo install --root target/peers rathole)"
    cargo install --root "$peers" rathole
fi
echo "nat.sh: rathole: $rathole"

# Debian tools; the benchmark falls back to ab without wrk and to a built-in sender without
# iperf3, so a failed install is a warning.
missing=()
command -v iperf3 >/dev/null 2>&1 || missing+=(iperf3)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v ab >/dev/null 2>&1 || missing+=(apache2-utils)
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}" || echo "nat.sh: warning: could not install ${missing[*]}" >&2
fi
tool_flags=(--rathole "$rathole")
for tool in iperf3 wrk ab; do
    if path=$(command -v "$tool"); then
        echo "nat.sh: $tool: $path"
        tool_flags+=("--$tool" "$path")
    else
        echo "nat.sh: $tool: not installed"
    fi
done

# 10,000 idle connections need more descriptors than the usual 1,024 (the benchmark raises
# the soft limit itself too, and fits the count to the hard limit).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "nat.sh: building zs and zs-bench (cargo build --release -p zs-cli -p zs-bench)"
cargo build --release -p zs-cli -p zs-bench
release="${CARGO_TARGET_DIR:-$root/target}/release"
tool_flags+=(--zs "$release/zs")
echo "nat.sh: $release/zs-bench nat ${tool_flags[*]} $*"
exec "$release/zs-bench" nat "${tool_flags[@]}" "$@"
