#!/usr/bin/env bash
# Sets up hutch on a fresh Debian 12 machine, as root: Debian packages, npm dependencies,
# the TypeScript build, the `hutch` command on PATH, the busybox rootfs and the agent runtime;
# and the container clients that the e2e tests drive (podman, containerd, a registry; see docs/clients.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

packages=(runc crun busybox-static iproute2 libc-bin util-linux procps
  # zstd-compressed image layers are read through Debian's zstd (Node 20 has no zstd).
  zstd
  # test/image-registry.test.ts makes a self-signed certificate for its https registry front.
  openssl
  # Clients for test/e2e-*.test.ts: podman (conmon, catatonit for pod infra images and for
  # `hutch run --init`, netavark),
  # containerd with ctr and the runc v2 shim, Debian's docker-registry, skopeo to push to it;
  # Debian's Docker 20.10 (dockerd and its CLI at /usr/bin/docker) for test/e2e-docker.test.ts.
  podman conmon catatonit netavark aardvark-dns containerd docker-registry skopeo docker.io
  # bench/pull.ts compares hutch pull with skopeo copy + umoci unpack.
  umoci
  # The gvisor platform (docs/gvisor.md): Debian's gVisor release, driven like runc.
  runsc
  # Sandbox networks (docs/network.md): hutch's own nftables tables for NAT, isolation and egress
  # policy; iperf3 for bench/network.ts.
  nftables iperf3)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  # No daemon may start from an install (dockerd, containerd, docker-registry): for the install only,
  # a policy-rc.d that denies every service start, in place of one that is there (restored after).
  saved_policy=
  if [ -e /usr/sbin/policy-rc.d ]; then saved_policy=$(mktemp) && cp -p /usr/sbin/policy-rc.d "$saved_policy"; fi
  restore_policy() { if [ -n "$saved_policy" ]; then mv -f "$saved_policy" /usr/sbin/policy-rc.d; else rm -f /usr/sbin/policy-rc.d; fi; }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  restore_policy
  trap - EXIT
fi
# runc gives each container a session keyring, charged to the host uid that the sandbox's root maps
# to: every sandbox shares that uid, and the kernel's default quota (200 keys) stops the 200th
# sandbox on the machine. Raise it now and at boot.
printf 'kernel.keys.maxkeys = 20000\nkernel.keys.maxbytes = 2000000\n' > /etc/sysctl.d/90-hutch.conf
sysctl -q -w kernel.keys.maxkeys=20000 kernel.keys.maxbytes=2000000 || echo "setup: could not raise kernel.keys quotas: at most ~200 sandboxes can run at once" >&2
# The host ids hutch maps sandboxes to (the shared range at 10^9 and the private ranges after it, up
# to below 2^31) are recorded as the subordinate ids of `hutch`, so that useradd never hands them to
# a user. The start is hutch's default base, so nothing already made changes owner. Not written when
# hutch has an entry already or another entry overlaps (hutch then keeps its default, unreserved).
subid_start=1000000000
subid_count=1147469824 # 17509 ranges of 65536: the shared one and 17508 private ones, all below 2^31
for f in ${HUTCH_SUBID_FILES:-/etc/subuid /etc/subgid}; do
  touch "$f"
  grep -q '^hutch:' "$f" && continue
  if awk -F: -v s="$subid_start" -v c="$subid_count" 'NF == 3 && $2 + 0 < s + c && $2 + $3 > s { hit = 1 } END { exit !hit }' "$f"; then
    echo "setup: $f gives part of $subid_start..+$subid_count to another user; no hutch entry written" >&2
    continue
  fi
  echo "hutch:$subid_start:$subid_count" >> "$f"
done
# The tests start containerd, dockerd and the registry themselves, privately; none runs as a service
# (the policy-rc.d above kept the install from starting them; this keeps them from starting at boot).
for unit in docker.socket docker.service containerd.service docker-registry.service; do
  if command -v systemctl >/dev/null; then
    if systemctl is-enabled -q "$unit" 2>/dev/null; then systemctl disable -q "$unit" 2>/dev/null || true; fi
    if [ -d /run/systemd/system ] && systemctl is-active -q "$unit" 2>/dev/null; then systemctl stop "$unit" || true; fi
  elif [ -e "/etc/init.d/${unit%.*}" ] && command -v update-rc.d >/dev/null; then
    update-rc.d "${unit%.*}" disable >/dev/null 2>&1 || true
  fi
done
# podman: root here lacks CAP_SYS_RESOURCE, so its default rlimits (nofile=1048576) cannot be set;
# a smaller default in /etc/containers/containers.conf, merged into what is there (a default_ulimits
# already set is left alone).
conf=/etc/containers/containers.conf
ulimits='default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]'
mkdir -p /etc/containers
if ! grep -qs '^[[:space:]]*default_ulimits[[:space:]]*=' "$conf"; then
  if grep -qs '^[[:space:]]*\[containers\][[:space:]]*$' "$conf"; then
    sed -i "/^[[:space:]]*\[containers\][[:space:]]*\$/a $ulimits" "$conf"
  else
    printf '[containers]\n%s\n' "$ulimits" >> "$conf"
  fi
fi

npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
# The `hutch` command: an sh launcher (scripts/launcher.sh) rather than a symlink, because node parses
# NODE_EXTRA_CA_CERTS at every start (~40 ms here), and because it runs the OCI verbs that need
# nothing of hutch's straight through the executor (src/engine/oci/direct.ts); and `hutchd`.
node scripts/install-launchers.mjs /usr/local/bin
hutch setup >/dev/null
# The code caches that `hutch setup` just wrote cover its own path only; the next call (the
# README's `hutch run`) writes them afresh for the common one.
rm -f dist/bundle/*.v8cache dist/bundle/verbs/*.v8cache
