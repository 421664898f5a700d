#!/usr/bin/env bash
# Lints and renders the Helm chart with a real helm (built by tools.sh) and
# checks what it renders.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
# shellcheck source=tools.sh
source e2e/scripts/tools.sh
helm lint --strict charts/tidecache
out="$(helm template t charts/tidecache --namespace ops --include-crds --set replicaCount=2 2>/dev/null)"
for want in "kind: CustomResourceDefinition" "kind: Deployment" "kind: ClusterRole" "kind: Role" \
  "kind: ServiceAccount" "replicas: 2" "--leader-elect=true" "resources: [leases]"; do
  grep -qF -- "$want" <<<"$out" || { echo "chart-test: rendered chart lacks: $want" >&2; exit 1; }
done
# Least privilege: no wildcard verbs or resources, no deletecollection, and
# delete only of what a scale-in removes (a drained shard's StatefulSet,
# Service and PodDisruptionBudget), of the node pods a rolling change
# replaces and of the scheduled CacheSnapshots retention prunes — never
# Secrets or CRDs.
if grep -nE "verbs: \[.*(\*|deletecollection)|resources: \[.*\*" <<<"$out"; then
  echo "chart-test: RBAC grants more than the operator needs" >&2
  exit 1
fi
if ! awk '/resources: \[/ {res = $0} /verbs: \[.*delete/ {
    gsub(/.*resources: \[|\].*/, "", res); n = split(res, r, /, */)
    for (i = 1; i <= n; i++) if (r[i] !~ /^(statefulsets|services|poddisruptionbudgets|pods|cachesnapshots)$/) { print "delete on " r[i]; bad = 1 }
  } END { exit bad }' <<<"$out"; then
  echo "chart-test: RBAC may delete more than drained shards' objects, node pods and pruned snapshots" >&2
  exit 1
fi
# The chart ships exactly the generated CRDs.
diff <(helm show crds charts/tidecache 2>/dev/null | sed -e "\${/^$/d}") crds/tidecache.yaml >/dev/null ||
  { echo "chart-test: chart CRDs differ from crds/" >&2; exit 1; }
echo "chart-test: 1 passed, 0 failed"
