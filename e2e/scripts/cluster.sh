#!/usr/bin/env bash
# cluster.sh — a real Kubernetes control plane inside a private network
# namespace, for the Tidecache e2e tests. No containers, no cloud, no traffic
# outside the namespace.
#
# Usage:
#   e2e/scripts/cluster.sh up              start etcd, kube-apiserver,
#                                          kube-controller-manager,
#                                          kube-scheduler and the node agent
#   e2e/scripts/cluster.sh down            stop everything, delete the netns
#                                          and the state directory
#   e2e/scripts/cluster.sh status          show what runs; exit 0 iff healthy
#   e2e/scripts/cluster.sh exec CMD...     run CMD inside the netns with
#                                          KUBECONFIG and the tools on PATH
#   e2e/scripts/cluster.sh kubectl ARGS... shortcut for `exec kubectl ARGS...`
#
# Environment:
#   TIDECACHE_STATE        state dir (default /tmp/tidecache-e2e)
#   TIDECACHE_NETNS        network namespace name (default tidecache)
#   TIDECACHE_NODES        nodes the agent registers (default 3)
#   TIDECACHE_KUBELET_BIN  node agent binary (default
#                          <repo>/target/release/tidecache-kubelet, built with
#                          cargo if missing; an explicitly given path is never
#                          built)
#   TIDECACHE_KUBELET=0    do not start the node agent (control plane only)
#   TIDECACHE_IMAGES       "NAME=PATH NAME=PATH ..." image -> binary map for
#                          the agent (one --image flag each)
#   TIDECACHE_UP_TIMEOUT   seconds for each readiness wait (default 120)
#   TIDECACHE_CACHE        tool cache root (see tools.sh)
#
# Addresses inside the netns (all on its `lo`):
#   10.200.0.1/32  apiserver advertise address (https://10.200.0.1:443)
#   10.200.0.3/32  Garage (S3 :3900, admin :3903), where snapshots go
#   10.96.0.1/32   ClusterIP of Service default/kubernetes (port 443)
#   10.244.0.0/16  pod range; every address in it is local, pods bind their own
#   127.0.0.1      etcd :2379/:2380, controller-manager :10257, scheduler :10259
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SCRIPTS="$REPO/e2e/scripts"
STATE="${TIDECACHE_STATE:-/tmp/tidecache-e2e}"
NS="${TIDECACHE_NETNS:-tidecache}"
NODES="${TIDECACHE_NODES:-3}"
UP_TIMEOUT="${TIDECACHE_UP_TIMEOUT:-120}"
T0=$SECONDS

APISERVER_IP=10.200.0.1
# Garage, the S3-compatible server snapshots go to (e2e/src/lib.rs has the
# same address, bucket and credentials).
GARAGE_IP=10.200.0.3
GARAGE_BUCKET=tidecache-e2e
GARAGE_ACCESS_KEY=GK00000000000000000000e2e0
GARAGE_SECRET_KEY=e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0e2e0
SERVICE_IP=10.96.0.1
SERVICE_CIDR=10.96.0.0/16
POD_CIDR=10.244.0.0/16
APISERVER_URL="https://$APISERVER_IP:443"
SA_ISSUER=https://kubernetes.default.svc.cluster.local

PKI="$STATE/pki"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
MARKER="$STATE/.tidecache-e2e" # only a dir with this marker is ever deleted
UP_OK="$STATE/.up-complete"     # written when `up` finished successfully
ADMIN_KUBECONFIG="$STATE/admin.kubeconfig"

# Start order; `down` stops in reverse order.
COMPONENTS=(etcd garage kube-apiserver kube-controller-manager kube-scheduler tidecache-kubelet)

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
warn() { printf '[cluster %s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
	printf '[cluster %s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
	exit 1
}

# Refuse to touch anything outside a private namespace or with odd paths.
[[ "$STATE" == /* && "$STATE" != / ]] || die "TIDECACHE_STATE must be an absolute path, not '$STATE'"
[[ "$NS" =~ ^[A-Za-z0-9_.-]+$ ]] || die "bad TIDECACHE_NETNS '$NS'"

# --- tools -------------------------------------------------------------------

# Build missing tools (no-op when cached) and put them on PATH.
load_tools() {
	# shellcheck source-path=SCRIPTDIR source=tools.sh
	source "$SCRIPTS/tools.sh" || die "tools.sh failed"
}

# PATH for commands inside the netns, without building anything (exec/status
# must stay fast and must not build).
tools_path() {
	if "$SCRIPTS/tools.sh" check; then
		eval "$("$SCRIPTS/tools.sh" print-env)"
	else
		warn "tools are not built yet (run e2e/scripts/tools.sh)"
	fi
}

# --- processes ---------------------------------------------------------------

netns_exists() { [[ -e "/run/netns/$NS" ]]; }

# Start time of a process (field 22 of /proc/PID/stat, in clock ticks since
# boot); pid files record "PID STARTTIME" so a reused pid is never mistaken
# for ours.
starttime() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }

# True while <pid> exists and is not a zombie (exited processes are reparented
# to pid 1, which may reap them late).
running() {
	local st
	st="$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)"
	[[ -n "$st" && "$st" != Z && "$st" != X ]]
}

pid_of() { cut -d' ' -f1 "$PIDS/$1.pid" 2>/dev/null || true; }

# True when the process recorded for <component> still runs.
alive() {
	local pid st
	[[ -f "$PIDS/$1.pid" ]] || return 1
	read -r pid st <"$PIDS/$1.pid" || return 1
	[[ -n "$pid" && -n "$st" && "$(starttime "$pid")" == "$st" ]] && running "$pid"
}

# Start <component> detached (own session, logs appended) inside the netns:
#   start <component> <binary> <args>...
# `ip netns exec` execs the command (and setsid does not fork: we are not a
# process-group leader), so $! is the component's own pid.
start() {
	local name="$1" pid i
	shift
	log "starting $name"
	# 9>&-: do not pass on the up/down lock (see main), or it is held forever.
	setsid ip netns exec "$NS" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
	pid=$!
	echo "$pid $(starttime "$pid")" >"$PIDS/$name.pid"
	# Wait until it has entered the namespace (or died).
	local want
	want="$(stat -L -c %i "/run/netns/$NS")"
	for ((i = 0; i < 50; i++)); do
		running "$pid" || break
		[[ "$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)" == "$want" ]] && return 0
		sleep 0.1
	done
	alive "$name" || {
		tail_log "$name"
		die "$name exited at start (log: $LOGS/$name.log)"
	}
}

# SIGTERM, wait up to <grace> seconds, then SIGKILL.
stop_pid() { # <pid> <grace seconds>
	local pid="$1" grace="$2" i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < grace * 10; i++)); do
		running "$pid" || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		running "$pid" || return 0
		sleep 0.1
	done
}

stop_component() {
	local name="$1" grace=10
	[[ "$name" == tidecache-kubelet ]] && grace=30 # it stops its pods first
	if alive "$name"; then
		log "stopping $name (pid $(pid_of "$name"))"
		stop_pid "$(pid_of "$name")" "$grace"
	fi
	rm -f "$PIDS/$name.pid"
}

tail_log() {
	local f="$LOGS/$1.log"
	[[ -f "$f" ]] || return 0
	echo "----- last lines of $f -----" >&2
	tail -n "${2:-30}" "$f" >&2
	echo "-----" >&2
}

# Environment for commands run inside the netns: the admin kubeconfig, and
# kubectl/helm caches kept in the state dir (not in $HOME).
ns_env() {
	NS_ENV=(
		KUBECONFIG="$ADMIN_KUBECONFIG"
		KUBECACHEDIR="${KUBECACHEDIR:-$STATE/cache/kube}"
		HELM_CACHE_HOME="${HELM_CACHE_HOME:-$STATE/cache/helm}"
		HELM_CONFIG_HOME="${HELM_CONFIG_HOME:-$STATE/config/helm}"
		HELM_DATA_HOME="${HELM_DATA_HOME:-$STATE/data/helm}"
		TIDECACHE_STATE="$STATE"
		TIDECACHE_NETNS="$NS"
	)
}

# Run a command inside the netns with that environment.
in_ns() {
	ns_env
	ip netns exec "$NS" env "${NS_ENV[@]}" "$@"
}

# wait_for <what> <timeout s> <component whose death aborts the wait|-> <cmd>...
wait_for() {
	local what="$1" timeout="$2" comp="$3" deadline
	shift 3
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if [[ "$comp" != - ]] && ! alive "$comp"; then
			tail_log "$comp" 40
			die "$comp exited while waiting for $what (log: $LOGS/$comp.log)"
		fi
		if ((SECONDS >= deadline)); then
			[[ "$comp" != - ]] && tail_log "$comp" 40
			die "timed out after ${timeout}s waiting for $what"
		fi
		sleep 0.5
	done
	log "ready: $what ($((SECONDS - T0))s)"
}

# --- PKI -----------------------------------------------------------------------

# A 2048-bit RSA key (PKCS#8): accepted by Go, rustls and OpenSSL alike.
newkey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# sign <name> <subject> <extensions>: key + CSR, certificate signed by the CA
# ($CA names another CA in $PKI).
sign() {
	local name="$1" subj="$2" ext="$3" ca="${CA:-ca}"
	newkey "$PKI/$name.key"
	openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
	printf '%b\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$ext" >"$PKI/$name.ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" \
		-CAcreateserial -days 365 -sha256 -extfile "$PKI/$name.ext" \
		-out "$PKI/$name.crt" 2>/dev/null
	rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_pki() {
	log "generating PKI in $PKI"
	mkdir -p "$PKI"
	chmod 0700 "$PKI"
	local client="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"

	# Cluster CA: signs every certificate, verifies client certificates, and
	# signs kubelet/CSR certificates in the controller-manager.
	newkey "$PKI/ca.key"
	openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=tidecache-e2e-ca" -days 3650 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/ca.crt" 2>/dev/null

	# apiserver serving certificate.
	sign apiserver "/CN=kube-apiserver" \
		"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$SERVICE_IP,IP:$APISERVER_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"

	# Client certificates (CN = user, O = group).
	sign admin "/O=system:masters/CN=admin" "$client"
	sign kube-controller-manager "/CN=system:kube-controller-manager" "$client"
	sign kube-scheduler "/CN=system:kube-scheduler" "$client"
	# The node agent plays several nodes with one identity, which the Node
	# authorizer (one identity per node) cannot express: it is a cluster admin.
	sign tidecache-kubelet "/O=system:masters/CN=tidecache-kubelet" "$client"

	# Front proxy (aggregation layer): its own CA and the apiserver's client
	# certificate. Also lets the controller-manager and scheduler find the
	# request-header CA they look up in kube-system/extension-apiserver-authentication.
	newkey "$PKI/front-proxy-ca.key"
	openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=tidecache-e2e-front-proxy-ca" -days 3650 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-out "$PKI/front-proxy-ca.crt" 2>/dev/null
	CA=front-proxy-ca sign front-proxy-client "/CN=front-proxy-client" "$client"

	# Service-account token signing key pair.
	newkey "$PKI/sa.key"
	openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
	rm -f "$PKI"/*.srl
}

# kubeconfig <file> <user> <cert name>: certificates embedded, server is the
# apiserver's advertise address.
kubeconfig() {
	local file="$1" user="$2" cert="$3"
	cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tidecache-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$cert.crt")
    client-key-data: $(base64 -w0 <"$PKI/$cert.key")
contexts:
- name: tidecache-e2e
  context:
    cluster: tidecache-e2e
    user: $user
current-context: tidecache-e2e
EOF
	chmod 0600 "$file"
}

# --- network namespace ---------------------------------------------------------

make_netns() {
	log "creating network namespace $NS"
	ip netns add "$NS"
	ip -n "$NS" link set lo up
	ip -n "$NS" addr add "$APISERVER_IP/32" dev lo
	ip -n "$NS" addr add "$SERVICE_IP/32" dev lo
	ip -n "$NS" addr add "$GARAGE_IP/32" dev lo
	# On `lo` a prefix makes the whole range local: pods bind their own IPs.
	ip -n "$NS" addr add "$POD_CIDR" dev lo
}

# --- node agent ----------------------------------------------------------------

# Print the agent binary path, building the default one if needed; print
# nothing when it is unavailable.
kubelet_bin() {
	if [[ "${TIDECACHE_KUBELET:-1}" == 0 ]]; then
		warn "TIDECACHE_KUBELET=0: not starting the node agent"
		return 0
	fi
	if [[ -n "${TIDECACHE_KUBELET_BIN:-}" ]]; then
		if [[ -x "$TIDECACHE_KUBELET_BIN" ]]; then
			echo "$TIDECACHE_KUBELET_BIN"
		else
			warn "TIDECACHE_KUBELET_BIN=$TIDECACHE_KUBELET_BIN is not an executable: control plane only, NO NODES"
		fi
		return 0
	fi
	local bin="$REPO/target/release/tidecache-kubelet"
	if [[ ! -x "$bin" && -f "$REPO/e2e/kubelet/Cargo.toml" ]] && command -v cargo >/dev/null; then
		log "building the node agent: cargo build --release -p tidecache-kubelet"
		(cd "$REPO" && timeout --foreground 1800 cargo build --release -p tidecache-kubelet >&2) ||
			warn "cargo build -p tidecache-kubelet failed"
	fi
	if [[ -x "$bin" ]]; then
		echo "$bin"
	else
		warn "node agent $bin not found: control plane only, NO NODES (set TIDECACHE_KUBELET_BIN)"
	fi
}

# --- status --------------------------------------------------------------------

# Healthy = a completed `up`, netns present, every started component alive,
# apiserver ready.
healthy() {
	netns_exists && [[ -f "$MARKER" && -f "$UP_OK" ]] || return 1
	local c any=0
	for c in "${COMPONENTS[@]}"; do
		[[ -f "$PIDS/$c.pid" ]] || continue
		any=1
		alive "$c" || return 1
	done
	((any)) && readyz
}

readyz() {
	in_ns curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
		--key "$PKI/admin.key" "$APISERVER_URL/readyz" >/dev/null 2>&1
}

cmd_status() {
	local c rc=0
	echo "state dir: $STATE$([[ -f "$MARKER" ]] || echo ' (absent)')"
	echo "netns:     $NS$(netns_exists || echo ' (absent)')"
	if [[ -f "$MARKER" && ! -f "$UP_OK" ]]; then
		echo "up:        INCOMPLETE (failed or still running)"
		rc=1
	fi
	for c in "${COMPONENTS[@]}"; do
		if [[ ! -f "$PIDS/$c.pid" ]]; then
			printf '  %-24s not started\n' "$c"
		elif alive "$c"; then
			printf '  %-24s running (pid %s)\n' "$c" "$(pid_of "$c")"
		else
			printf '  %-24s DEAD (log %s)\n' "$c" "$LOGS/$c.log"
			rc=1
		fi
	done
	if netns_exists && [[ -f "$MARKER" ]] && readyz; then
		echo "apiserver: ready at $APISERVER_URL (KUBECONFIG=$ADMIN_KUBECONFIG)"
		tools_path
		in_ns timeout --foreground 10 kubectl get nodes -o wide 2>&1 | sed 's/^/  /' || true
	else
		echo "apiserver: not ready"
		rc=1
	fi
	return "$rc"
}

# --- down ----------------------------------------------------------------------

cmd_down() {
	local i pid
	if [[ -d "$STATE" && ! -f "$MARKER" ]] && [[ -n "$(ls -A "$STATE" 2>/dev/null)" ]]; then
		die "$STATE exists but is not a tidecache e2e state dir (no $MARKER); not touching it"
	fi
	# Graceful, in reverse start order: the agent first, so it stops its pods.
	for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
		stop_component "${COMPONENTS[i]}"
	done
	if netns_exists; then
		# Whatever else still runs in our namespace (pods the agent left behind)
		# was started by this harness: stop it by pid.
		for pid in $(ip netns pids "$NS" 2>/dev/null); do
			log "stopping leftover pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-80))"
			stop_pid "$pid" 5
		done
		log "deleting network namespace $NS"
		ip netns del "$NS" || warn "could not delete netns $NS"
	fi
	if [[ -d "$STATE" ]]; then
		# The agent may have left bind mounts under the state dir: unmount them
		# (deepest first) so rm cannot reach into what they point at.
		awk -v s="$STATE" '$5 == s || index($5, s "/") == 1 { print $5 }' /proc/self/mountinfo |
			sort -r | while read -r m; do
			log "unmounting leftover $m"
			umount -l "$m" || true
		done
		rm -rf --one-file-system "$STATE"
	fi
	log "down"
}

# --- up ------------------------------------------------------------------------

cmd_up() {
	T0=$SECONDS
	if healthy; then
		log "cluster already running (state $STATE, netns $NS); nothing to do"
		return 0
	fi
	if [[ -e "$STATE" ]] || netns_exists; then
		log "tearing down leftovers of a previous run"
		cmd_down
	fi
	load_tools
	local bin
	bin="$(kubelet_bin)"
	T0=$SECONDS # do not count tool/agent builds in the start-up time
	# On failure, leave everything as it is for inspection.
	trap 'echo "[cluster] up FAILED: state left in $STATE for inspection (logs: $LOGS); run: $0 down" >&2' EXIT

	mkdir -p "$LOGS" "$PIDS" "$STATE/etcd" "$STATE/kubelet"
	chmod 0700 "$STATE/etcd"
	touch "$MARKER"
	make_netns
	make_pki
	kubeconfig "$ADMIN_KUBECONFIG" admin admin
	kubeconfig "$STATE/kube-controller-manager.kubeconfig" system:kube-controller-manager kube-controller-manager
	kubeconfig "$STATE/kube-scheduler.kubeconfig" system:kube-scheduler kube-scheduler
	kubeconfig "$STATE/kubelet.kubeconfig" tidecache-kubelet tidecache-kubelet

	# etcd: loopback of the netns only; no fsync (throw-away data).
	start etcd etcd \
		--name=e2e --data-dir="$STATE/etcd" \
		--listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
		--listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
		--initial-cluster=e2e=http://127.0.0.1:2380 --initial-cluster-state=new \
		--unsafe-no-fsync --log-level=warn
	wait_for "etcd /health" "$UP_TIMEOUT" etcd in_ns curl -fsS --max-time 2 http://127.0.0.1:2379/health

	# Garage: a single-node S3 endpoint with one bucket and one fixed key,
	# which it sets up itself (--single-node --default-bucket).
	mkdir -p "$STATE/garage"
	cat >"$STATE/garage/garage.toml" <<GARAGE
metadata_dir = "$STATE/garage/meta"
data_dir = "$STATE/garage/data"
db_engine = "lmdb"
lmdb_map_size = "1G"
replication_factor = 1
rpc_bind_addr = "$GARAGE_IP:3901"
rpc_public_addr = "$GARAGE_IP:3901"
rpc_secret = "$GARAGE_SECRET_KEY"

[s3_api]
api_bind_addr = "$GARAGE_IP:3900"
s3_region = "garage"

[admin]
api_bind_addr = "$GARAGE_IP:3903"
GARAGE
	start garage env GARAGE_DEFAULT_ACCESS_KEY="$GARAGE_ACCESS_KEY" \
		GARAGE_DEFAULT_SECRET_KEY="$GARAGE_SECRET_KEY" GARAGE_DEFAULT_BUCKET="$GARAGE_BUCKET" \
		RUST_LOG=warn garage -c "$STATE/garage/garage.toml" server --single-node --default-bucket
	wait_for "garage /health" "$UP_TIMEOUT" garage in_ns curl -fsS --max-time 2 "http://$GARAGE_IP:3903/health"

	# kube-apiserver. It reaches nodes (logs, exec) by their InternalIP, never
	# by name: name lookups would go to the host's DNS server, which the
	# namespace has no route to. The default admission plugins (NamespaceLifecycle,
	# LimitRanger, ServiceAccount, DefaultTolerationSeconds, ResourceQuota,
	# PodSecurity, ...) stay on; ServiceAccount is named for clarity: it gives
	# pods the projected kube-api-access-* volume.
	start kube-apiserver kube-apiserver \
		--bind-address=0.0.0.0 --secure-port=443 --advertise-address="$APISERVER_IP" \
		--etcd-servers=http://127.0.0.1:2379 \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" \
		--authorization-mode=Node,RBAC \
		--service-account-issuer="$SA_ISSUER" \
		--service-account-key-file="$PKI/sa.pub" \
		--service-account-signing-key-file="$PKI/sa.key" \
		--enable-admission-plugins=ServiceAccount \
		--requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--proxy-client-cert-file="$PKI/front-proxy-client.crt" \
		--proxy-client-key-file="$PKI/front-proxy-client.key" \
		--kubelet-preferred-address-types=InternalIP \
		--allow-privileged=true \
		--profiling=false
	wait_for "kube-apiserver /readyz" "$UP_TIMEOUT" kube-apiserver readyz

	# kube-controller-manager: publishes kube-root-ca.crt, creates the default
	# ServiceAccounts, runs Deployments/StatefulSets/EndpointSlices/GC/...
	start kube-controller-manager kube-controller-manager \
		--kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--authentication-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--authorization-kubeconfig="$STATE/kube-controller-manager.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10257 \
		--root-ca-file="$PKI/ca.crt" \
		--service-account-private-key-file="$PKI/sa.key" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--allocate-node-cidrs=false --controllers='*,-nodeipam' \
		--flex-volume-plugin-dir="$STATE/flexvolume" \
		--leader-elect=false --profiling=false

	start kube-scheduler kube-scheduler \
		--kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--authentication-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--authorization-kubeconfig="$STATE/kube-scheduler.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 \
		--leader-elect=false --profiling=false

	wait_for "ServiceAccount default/default" "$UP_TIMEOUT" kube-controller-manager \
		in_ns kubectl -n default get serviceaccount default
	wait_for "ConfigMap default/kube-root-ca.crt" "$UP_TIMEOUT" kube-controller-manager \
		in_ns kubectl -n default get configmap kube-root-ca.crt
	alive kube-scheduler || {
		tail_log kube-scheduler
		die "kube-scheduler exited"
	}

	if [[ -n "$bin" ]]; then
		local -a images=() list=()
		local img
			read -r -a list <<<"${TIDECACHE_IMAGES:-}"
		for img in "${list[@]}"; do
			[[ "$img" == *=* ]] || die "TIDECACHE_IMAGES entry '$img' is not NAME=PATH"
			images+=(--image "$img")
		done
		start tidecache-kubelet "$bin" \
			--kubeconfig "$STATE/kubelet.kubeconfig" --nodes "$NODES" \
			--state-dir "$STATE/kubelet" \
			--apiserver-host "$SERVICE_IP" --apiserver-port 443 \
			--ca-file "$PKI/ca.crt" "${images[@]}"
		wait_for "$NODES node(s) registered" "$UP_TIMEOUT" tidecache-kubelet nodes_registered
		wait_for "nodes Ready" "$UP_TIMEOUT" tidecache-kubelet \
			in_ns kubectl wait --for=condition=Ready node --all --timeout=5s
	else
		warn "no node agent: pods will stay Pending"
	fi

	trap - EXIT
	touch "$UP_OK"
	log "cluster up in $((SECONDS - T0))s (netns $NS, apiserver $APISERVER_URL)"
	log "use: $0 kubectl get nodes   |   $0 exec <cmd>   (KUBECONFIG=$ADMIN_KUBECONFIG inside netns $NS)"
}

nodes_registered() {
	local n
	n="$(in_ns kubectl get nodes -o name 2>/dev/null | wc -l)"
	((n >= NODES))
}

# --- exec ----------------------------------------------------------------------

cmd_exec() {
	(($# > 0)) || die "usage: $0 exec CMD [ARGS...]"
	netns_exists || die "netns $NS does not exist: run '$0 up' first"
	[[ -f "$ADMIN_KUBECONFIG" ]] || die "$ADMIN_KUBECONFIG missing: run '$0 up' first"
	tools_path
	ns_env
	exec ip netns exec "$NS" env "${NS_ENV[@]}" PATH="$PATH" "$@"
}

# --- main ----------------------------------------------------------------------

((EUID == 0)) || die "needs root (network namespaces)"
cmd="${1:-}"
shift || true
case "$cmd" in
up | down)
	# Serialise up/down on the same namespace.
	exec 9>"/run/lock/tidecache-e2e-$NS.lock"
	flock -w 300 9 || die "another up/down holds /run/lock/tidecache-e2e-$NS.lock"
	"cmd_$cmd"
	;;
status) cmd_status ;;
exec) cmd_exec "$@" ;;
kubectl) cmd_exec kubectl "$@" ;;
*)
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
	;;
esac
