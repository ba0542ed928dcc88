#!/usr/bin/env bash
# Sets up hutch on a fresh Debian 12 machine, as root: Debian packages, npm dependencies,
# the TypeScript build, the `hutch` command on PATH, the busybox rootfs and the agent runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(runc crun busybox-static iproute2 libc-bin util-linux procps)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
# The `hutch` command: a two-line sh launcher rather than a symlink, because node parses
# NODE_EXTRA_CA_CERTS at every start (~40 ms here) and hutch needs no extra CAs for its work.
node_bin=$(command -v node)
cat > /usr/local/bin/hutch.tmp <<LAUNCHER
#!/bin/sh
unset NODE_EXTRA_CA_CERTS
exec "$node_bin" "$PWD/dist/bundle/hutch.cjs" "\$@"
LAUNCHER
chmod 755 /usr/local/bin/hutch.tmp
mv -f /usr/local/bin/hutch.tmp /usr/local/bin/hutch
hutch setup >/dev/null
