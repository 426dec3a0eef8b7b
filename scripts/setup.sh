#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for kg: the system tools the agent and its tests drive
# (WireGuard userspace, iproute2, iptables legacy+nft, CNI plugins, kubectl, promtool, graphviz),
# then the npm dependencies and the build. Idempotent; needs root (or sudo) for apt.
set -euo pipefail

case "${1:-}" in
  "") ;;
  -h|--help)
    printf 'Usage: scripts/setup.sh\n\nInstalls the system tools kg and its tests drive (apt), the npm dependencies, and builds.\nIdempotent; needs root (or sudo).\n\nFlags:\n  -h, --help   Print this help.\n'
    exit 0 ;;
  *) echo "Error: unknown flag: $1" >&2; echo "Run with --help for usage." >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PKGS=(wireguard-go wireguard-tools iptables nftables ipset iproute2 iputils-ping tcpdump
      containernetworking-plugins graphviz prometheus openssl util-linux procps curl strace)
# kubectl: Debian's kubernetes-client, unless a kubectl is already installed (some images ship
# one from another package, and the two conflict on /usr/bin/kubectl).
command -v kubectl >/dev/null 2>&1 || PKGS+=(kubernetes-client)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
echo "setup: done (node $(node --version), kubectl: $(command -v kubectl), wireguard-go: $(command -v wireguard-go))"
