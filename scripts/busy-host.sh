#!/usr/bin/env bash
# Runs a command on a busy host: while it runs, things the test suite did not make are on the
# machine, as on a shared or loaded one. Then removes them all, whatever the command did.
#   scripts/busy-host.sh node --test --test-concurrency=1 dist/test/linux-*.test.js dist/test/zz-leaks.test.js
# What runs meanwhile (all in a state root, temp dir and process group of this script's own):
#   - two hutch sandboxes in /run/hutch-busy-PID: `run -d busybox -- sleep 3600`, one with --userns private
#   - a loop making and removing a private-id sandbox (`run --rm --userns private`): slots, cgroups,
#     mounts and idmap helpers come and go
#   - a docker-registry on a loopback port, its config and storage in /tmp/hutch-busy-registry-XXXXXX
#   - BUSY_CHURN (default 3) loops of `/bin/true`, niced: pids appear and vanish in /proc all the time
# Exits with the command's status. As root, from the repo (it uses this checkout's built CLI).
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 COMMAND [ARG...]" >&2; exit 2; }
hutch=(node "$PWD/dist/bundle/boot.cjs")
[ -f dist/bundle/boot.cjs ] || { echo "busy-host: build first (npm run build)" >&2; exit 2; }

root=/run/hutch-busy-$$
regdir=$(mktemp -d /tmp/hutch-busy-registry-XXXXXX)
pids=()

cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  local ids
  ids=$("${hutch[@]}" --root "$root" ls -q 2>/dev/null)
  # shellcheck disable=SC2086
  [ -z "$ids" ] || "${hutch[@]}" --root "$root" rm -f $ids >/dev/null || echo "busy-host: could not remove sandboxes $ids" >&2
  rm -rf "$root" "$regdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Each background job is its own process group (set -m), so that cleanup ends it and its children.
set -m
mkdir -p "$root"
"${hutch[@]}" --root "$root" run -d --name busy-shared busybox -- sleep 3600 >/dev/null || exit 1
"${hutch[@]}" --root "$root" run -d --name busy-private --userns private busybox -- sleep 3600 >/dev/null || exit 1

(while :; do "${hutch[@]}" --root "$root" run --rm --userns private busybox -- true >/dev/null 2>&1; sleep 0.5; done) &
pids+=($!)

cat > "$regdir/config.yml" <<EOF
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $regdir/data
http:
  addr: 127.0.0.1:0
  secret: busy-host-only
EOF
/usr/bin/docker-registry serve "$regdir/config.yml" > "$regdir/log.txt" 2>&1 &
pids+=($!)

for _ in $(seq "${BUSY_CHURN:-3}"); do
  nice -n 10 bash -c 'while :; do /bin/true; done' &
  pids+=($!)
done
set +m

for _ in $(seq 100); do grep -q 'listening on' "$regdir/log.txt" && break; sleep 0.1; done
grep -q 'listening on' "$regdir/log.txt" || { echo "busy-host: docker-registry did not start: $(tail -3 "$regdir/log.txt")" >&2; exit 1; }
echo "busy-host: sandboxes in $root, a docker-registry ($(grep -o 'listening on [0-9.:]*' "$regdir/log.txt")), ${BUSY_CHURN:-3} /proc churners" >&2

"$@"
status=$?
exit "$status"
