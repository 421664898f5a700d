#!/usr/bin/env bash
# Prints what helps to understand a failed e2e run: objects, events, and the
# tail of every pod's and component's log.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="${TIDECACHE_STATE:-/tmp/tidecache-e2e}"
k() { "$REPO/e2e/scripts/cluster.sh" kubectl "$@"; }
echo "=== objects"; k get nodes,cacheclusters,statefulsets,pods,services -A -o wide 2>&1 | head -80
echo "=== events"; k get events -A --sort-by=.lastTimestamp 2>&1 | tail -40
for f in "$STATE"/logs/*.log "$STATE"/kubelet/pods/*/*.log; do
  [[ -f "$f" ]] || continue
  echo "=== $f"; tail -n 25 "$f"
done
