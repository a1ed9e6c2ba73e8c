#!/usr/bin/env bash
# Installs every program the harness, its tests, benchmarks and diagnostics run
# (harness/src/programs.rs lists program -> package; tests/install_deps.rs checks
# this list covers it): nft and iptables-legacy-restore (the two dataplane
# backends; ipset for the iptables backend's NAT-outgoing sets), iproute2 (`ip`: the `bench lab` baseline, diagnostics), iputils-ping
# (`ping` in root tests, the `ping -f` baseline), tshark (checks that captured
# SCTP/GRE decode cleanly), tcpdump and conntrack (root tests cross-check with
# them), bird (BIRD 1.x and birdc: the bgp module's route distribution), and the
# base tools the tests' shell steps use; bsdutils (`script`: a terminal for the
# test of `run`'s colour and status line); util-linux and mount (`unshare`,
# `nsenter`, `mount`, `runuser`, `setpriv`: ci/test-runner puts a normal user's test
# binaries in a user namespace, tests/cli_rootless.rs runs the harness as a
# non-root user, ci/test-as-user runs the tests as one); passwd (`useradd`, for
# ci/test-as-user); chromium (tests/report_html.rs opens report.html headless)
# and fonts-dejavu-core (the report's fonts, so its screenshot shows text);
# python3 for drivers/nft-driver.py, the external driver the tests run.
#
# Anyone may run it: when every package is there it changes nothing. Missing
# packages are installed with apt-get as root; a normal user is raised with
# sudo when sudo exists, and told what to do when it does not (containers and
# CI images often run as root without sudo, so the README's command does not
# start with `sudo`).
set -euo pipefail
packages=(nftables iptables ipset iproute2 iputils-ping tshark tcpdump conntrack bird dash coreutils util-linux mount passwd bsdutils chromium fonts-dejavu-core python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    echo "install-deps: missing ${missing[*]}; installing them as root with sudo" >&2
    exec sudo -- "$(readlink -f "$0")" "$@"
  fi
  echo "install-deps: missing ${missing[*]}; installing them needs root and sudo is not installed: run \`su -c $0\` (or $0 as root)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing ${missing[*]}; this script installs Debian/Ubuntu packages with apt-get, which is not here: install the same programs with this system's package manager" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
