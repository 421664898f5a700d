#!/usr/bin/env bash
# `make load`: puts a bounded write load on the local Serverless cluster
# `elastic` (from `make up`): 8 clients SET 1 KiB values over 60,000 keys,
# 300,000 requests or 120 s, through a cluster-aware client that follows
# the cluster as it scales (e2e/src/bin/tidecache-load.rs). Watch it with
#   e2e/scripts/cluster.sh kubectl get cc elastic -w
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
c() { e2e/scripts/cluster.sh "$@"; }
cluster="${1:-elastic}"
cargo build --locked -q -p tidecache-e2e --bin tidecache-load
ip=$(c kubectl get pod "$cluster-0-0" -o jsonpath='{.status.podIP}')
password=$(c kubectl get secret "$cluster-auth" -o jsonpath='{.data.password}' | base64 -d)
TIDECACHE_PASSWORD="$password" c exec target/debug/tidecache-load --seed "$ip:6379" \
	--requests "${REQUESTS:-300000}" --seconds "${SECONDS_MAX:-120}"
