#!/usr/bin/env bash
# Installs the system packages the tests use: nft and iptables-restore (the two
# dataplane backends), iproute2 (the `ip` baseline of `bench lab` and people's
# debugging), iputils-ping (`ping` in root tests, the `ping -f` baseline), tshark
# (checks that captured SCTP/GRE decode cleanly), tcpdump (root tests), bird
# (BIRD 1.6: bird and bird6 route the labs as Calico's BGP does).
set -euo pipefail
packages=(nftables iptables iproute2 iputils-ping tshark tcpdump bird)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
