#!/usr/bin/env bash
# Runs the e2e suite on the embedded control plane: builds the workspace
# binaries, brings the cluster up (e2e/scripts/cluster.sh), runs the tests
# inside its network namespace, and tears it down.
#
# Against a real cluster instead: TIDECACHE_E2E_EXTERNAL=1 with KUBECONFIG
# set, images pushed (see e2e/HARNESS.md); nothing is started or stopped.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
T0=$SECONDS

# shellcheck source=scripts/tools.sh
source e2e/scripts/tools.sh

if [[ "${TIDECACHE_E2E_EXTERNAL:-0}" == 1 ]]; then
  exec cargo test --locked -p tidecache-e2e -- --test-threads="${TIDECACHE_E2E_THREADS:-2}"
fi

# Debug builds: the unit tests already compiled every dependency that way.
cargo build --locked -p cache-node -p tidecache-operator -p tidecache-kubelet
cargo test --locked -p tidecache-e2e --no-run
export TIDECACHE_KUBELET_BIN="$REPO/target/debug/tidecache-kubelet"
export TIDECACHE_IMAGES="tidecache/cache-node=$REPO/target/debug/cache-node tidecache/operator=$REPO/target/debug/tidecache-operator"

if [[ "${TIDECACHE_E2E_KEEP:-0}" != 1 ]]; then
  trap 'status=$?; if [[ $status -ne 0 ]]; then e2e/scripts/cluster.sh status || true; e2e/scripts/diagnose.sh || true; fi; e2e/scripts/cluster.sh down; exit $status' EXIT
fi
e2e/scripts/cluster.sh down >/dev/null 2>&1 || true
e2e/scripts/cluster.sh up
e2e/scripts/cluster.sh exec cargo test --locked --offline -p tidecache-e2e -- --test-threads="${TIDECACHE_E2E_THREADS:-2}"
echo "e2e: done in $((SECONDS - T0)) s"
