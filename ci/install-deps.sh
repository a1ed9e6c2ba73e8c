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
# `nsenter`, `mount`: ci/test-runner puts a normal user's test binaries in a
# user namespace, tests/cli_rootless.rs runs the harness as a non-root user);
# sudo, for the README's first command; chromium (tests/report_html.rs opens
# report.html headless) and fonts-dejavu-core (the report's fonts, so its
# screenshot shows text); python3 for drivers/nft-driver.py, the external driver
# the tests run.
set -euo pipefail
packages=(nftables iptables ipset iproute2 iputils-ping tshark tcpdump conntrack bird dash coreutils util-linux mount bsdutils sudo chromium fonts-dejavu-core python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing ${missing[*]}; run as root (sudo ci/install-deps.sh)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
