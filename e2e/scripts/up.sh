#!/usr/bin/env bash
# `make up`: Tidecache for real on this machine. Starts the embedded control
# plane, installs the CRDs (kubectl apply --server-side) and the operator
# (helm install), applies examples/cachecluster.yaml and prints how to connect.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
# shellcheck source=tools.sh
source e2e/scripts/tools.sh
cargo build --locked --release -p cache-node -p tidecache-operator -p tidecache-kubelet
export TIDECACHE_KUBELET_BIN="$REPO/target/release/tidecache-kubelet"
export TIDECACHE_IMAGES="tidecache/cache-node=$REPO/target/release/cache-node tidecache/operator=$REPO/target/release/tidecache-operator"
c() { e2e/scripts/cluster.sh "$@"; }
c up
c kubectl apply --server-side -f crds/
c kubectl wait --for=condition=Established --timeout=60s crd/cacheclusters.tidecache.io
c exec helm upgrade --install tidecache charts/tidecache --namespace tidecache-system --create-namespace --wait --timeout 180s
c kubectl apply --server-side -f examples/cachecluster.yaml -f examples/serverless.yaml
c kubectl wait --for=jsonpath='{.status.phase}'=Ready --timeout=180s cachecluster/sessions cachecluster/elastic
c kubectl get cacheclusters,pods -o wide
ip=$(c kubectl get pod sessions-0-0 -o jsonpath='{.status.podIP}')
cat <<MSG

Tidecache is up. The cluster runs inside the network namespace '${TIDECACHE_NETNS:-tidecache}'.

Connect with redis-cli (cluster mode follows MOVED redirects):

  e2e/scripts/cluster.sh exec sh -c 'redis-cli -c -h $ip -a "\$(kubectl get secret sessions-auth -o jsonpath={.data.password} | base64 -d)"'

kubectl:  e2e/scripts/cluster.sh kubectl get cacheclusters

'elastic' is a Serverless cluster (examples/serverless.yaml): put load on it
with 'make load' and watch it scale with
  e2e/scripts/cluster.sh kubectl get cc elastic -w
  e2e/scripts/cluster.sh kubectl get events --field-selector involvedObject.name=elastic -w

Stop it:  make down
MSG
