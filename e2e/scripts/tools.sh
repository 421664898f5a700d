#!/usr/bin/env bash
# tools.sh — build (once) and expose the e2e harness tools.
#
# The Kubernetes control plane, etcd and helm are built from Go modules
# (wrapper modules under e2e/tools/<name>/) into a cache OUTSIDE the repo,
# keyed by version:
#
#   ${TIDECACHE_CACHE:-$HOME/.cache/tidecache}/tools/kubernetes-<v>/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
#   ${TIDECACHE_CACHE:-$HOME/.cache/tidecache}/tools/etcd-<v>/etcd
#   ${TIDECACHE_CACHE:-$HOME/.cache/tidecache}/tools/helm-<v>/helm
#
# A tool is built only when its directory is missing. Each build goes into a
# temporary directory next to the final one and is renamed into place when it
# has fully succeeded, so an interrupted build never leaves a half cache.
#
# Usage:
#   e2e/scripts/tools.sh [build]   build whatever is missing (+ apt packages)
#   e2e/scripts/tools.sh env       build what is missing, then print `export`
#                                  lines:  eval "$(e2e/scripts/tools.sh env)"
#   e2e/scripts/tools.sh check     exit 0 iff every tool is already cached
#   e2e/scripts/tools.sh print-env print the `export` lines, never build
#   e2e/scripts/tools.sh packages  install the Debian packages only (redis-server, redis-tools, ...)
#   e2e/scripts/tools.sh garage    the packages and Garage (S3); prints the garage binary's path
#   source e2e/scripts/tools.sh    build what is missing, export PATH and
#                                  TIDECACHE_TOOLS_* in the current shell
#
# Exported variables: TIDECACHE_TOOLS_DIR, TIDECACHE_TOOLS_KUBERNETES,
# TIDECACHE_TOOLS_ETCD, TIDECACHE_TOOLS_HELM (directories) and
# TIDECACHE_KUBERNETES_VERSION, TIDECACHE_ETCD_VERSION, TIDECACHE_HELM_VERSION.
#
# Environment: TIDECACHE_CACHE (cache root), TIDECACHE_SKIP_APT=1 (do not
# install Debian packages), TIDECACHE_BUILD_TIMEOUT (seconds per build,
# default 5400).

# --- locations ---------------------------------------------------------------

_tc_tools_script="${BASH_SOURCE[0]}"
_tc_repo="$(cd "$(dirname "$_tc_tools_script")/../.." && pwd)"
_tc_modules="$_tc_repo/e2e/tools"

# Print the version a wrapper module requires for <module>, read from go.mod
# (both `require M V` and block form; `replace` lines are skipped).
_tc_modver() { # <go.mod> <module path>
	awk -v m="$2" '
		/=>/ { next }
		$1 == "require" && $2 == m { print $3; exit }
		$1 == m { print $2; exit }
	' "$1"
}

_tc_init_vars() {
	TIDECACHE_TOOLS_DIR="${TIDECACHE_CACHE:-$HOME/.cache/tidecache}/tools"
	TIDECACHE_KUBERNETES_VERSION="$(_tc_modver "$_tc_modules/kubernetes/go.mod" k8s.io/kubernetes)"
	TIDECACHE_ETCD_VERSION="$(_tc_modver "$_tc_modules/etcd/go.mod" go.etcd.io/etcd/server/v3)"
	TIDECACHE_HELM_VERSION="$(_tc_modver "$_tc_modules/helm/go.mod" helm.sh/helm/v3)"
	TIDECACHE_TOOLS_KUBERNETES="$TIDECACHE_TOOLS_DIR/kubernetes-$TIDECACHE_KUBERNETES_VERSION"
	TIDECACHE_TOOLS_ETCD="$TIDECACHE_TOOLS_DIR/etcd-$TIDECACHE_ETCD_VERSION"
	TIDECACHE_TOOLS_HELM="$TIDECACHE_TOOLS_DIR/helm-$TIDECACHE_HELM_VERSION"
	# Garage, the S3-compatible server snapshots are tested against.
	TIDECACHE_GARAGE_VERSION=2.5.0
	TIDECACHE_TOOLS_GARAGE="$TIDECACHE_TOOLS_DIR/garage-$TIDECACHE_GARAGE_VERSION"
	if [[ -z "$TIDECACHE_KUBERNETES_VERSION" || -z "$TIDECACHE_ETCD_VERSION" || -z "$TIDECACHE_HELM_VERSION" ]]; then
		_tc_log "cannot read tool versions from $_tc_modules/*/go.mod"
		return 1
	fi
}

# --- building ----------------------------------------------------------------

_tc_log() { printf 'tools: %s\n' "$*" >&2; }

# A tool's cache entry is complete when every expected binary is there.
_tc_complete() { # <dir> <binary>...
	local dir="$1" b
	shift
	for b in "$@"; do
		[[ -x "$dir/$b" ]] || return 1
	done
}

# Build one wrapper module into its cache directory (atomically).
#   _tc_build <module dir> <final dir> <ldflags> <go-build -o target> <pkg>...
# The -o target is "DIR/" for several packages or "DIR/name" for one; "DIR" is
# replaced by the temporary directory.
_tc_build() {
	local moddir="$1" final="$2" ldflags="$3" out="$4"
	shift 4
	local name tmp start secs rc=0
	name="$(basename "$final")"
	mkdir -p "$(dirname "$final")" || return 1
	tmp="$(mktemp -d "$final.tmp.XXXXXX")" || return 1
	_tc_cur_tmp="$tmp" # removed by the INT/TERM trap in _tc_ensure
	_tc_log "building $name (go $(go env GOVERSION)); this can take a while on a cold cache..."
	start=$(date +%s)
	(
		cd "$moddir" &&
			GOTOOLCHAIN=local GOFLAGS=-mod=mod timeout --foreground "${TIDECACHE_BUILD_TIMEOUT:-5400}" \
				go build -o "${out/DIR/$tmp}" -ldflags "$ldflags" "$@"
	) || rc=$?
	secs=$(($(date +%s) - start))
	if ((rc != 0)); then
		rm -rf "$tmp"
		_tc_log "FAILED to build $name after ${secs}s (exit $rc)"
		return "$rc"
	fi
	{
		echo "name=$name"
		echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
		echo "build_seconds=$secs"
		echo "go=$(go env GOVERSION)"
		echo "ldflags=$ldflags"
		echo "packages=$*"
		echo "go_sum_sha256=$(sha256sum "$moddir/go.sum" | cut -d' ' -f1)"
	} >"$tmp/BUILDINFO" || return 1
	chmod 0755 "$tmp" || return 1
	# Another builder may have won the race; keep its result.
	if [[ -e "$final" ]]; then
		rm -rf "$tmp"
	else
		mv -T "$tmp" "$final" || return 1
	fi
	_tc_cur_tmp=""
	_tc_log "built $name in ${secs}s"
}

_tc_build_kubernetes() {
	local v="$TIDECACHE_KUBERNETES_VERSION" minor
	minor="${v#v1.}"
	minor="${minor%%.*}"
	_tc_complete "$TIDECACHE_TOOLS_KUBERNETES" kube-apiserver kube-controller-manager kube-scheduler kubectl && return 0
	_tc_build "$_tc_modules/kubernetes" "$TIDECACHE_TOOLS_KUBERNETES" \
		"-s -w -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
		DIR/ \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
}

_tc_build_etcd() {
	_tc_complete "$TIDECACHE_TOOLS_ETCD" etcd && return 0
	CGO_ENABLED=0 _tc_build "$_tc_modules/etcd" "$TIDECACHE_TOOLS_ETCD" "-s -w" \
		DIR/etcd go.etcd.io/etcd/server/v3
}

_tc_build_helm() {
	local v="$TIDECACHE_HELM_VERSION" kmajor kminor
	_tc_complete "$TIDECACHE_TOOLS_HELM" helm && return 0
	# Like helm's Makefile: the default .Capabilities.KubeVersion follows the
	# k8s.io/client-go version helm is built with (v0.34 -> 1.34).
	kminor="$(_tc_modver "$_tc_modules/helm/go.mod" k8s.io/client-go)"
	kminor="${kminor#v0.}"
	kminor="${kminor%%.*}"
	kmajor=1
	CGO_ENABLED=0 _tc_build "$_tc_modules/helm" "$TIDECACHE_TOOLS_HELM" \
		"-s -w -X helm.sh/helm/v3/internal/version.version=$v -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$kmajor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$kmajor -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor" \
		DIR/helm helm.sh/helm/v3/cmd/helm
}

# Garage from crates.io, with the Cargo.lock it ships (--locked): a debug
# build without debug info (the tests move megabytes, and a release build
# takes several times longer), LMDB only, libsodium from Debian (its
# bundled build runs its own test suite first). Atomic like the Go tools.
_tc_build_garage() {
	_tc_complete "$TIDECACHE_TOOLS_GARAGE" garage && return 0
	command -v cargo >/dev/null || {
		_tc_log "cargo not found in PATH"
		return 1
	}
	local final="$TIDECACHE_TOOLS_GARAGE" tmp start secs rc=0
	mkdir -p "$(dirname "$final")" || return 1
	tmp="$(mktemp -d "$final.tmp.XXXXXX")" || return 1
	_tc_cur_tmp="$tmp"
	_tc_log "building garage $TIDECACHE_GARAGE_VERSION from crates.io; this can take a while on a cold cache..."
	start=$(date +%s)
	SODIUM_USE_PKG_CONFIG=1 CARGO_PROFILE_DEV_DEBUG=0 CARGO_TARGET_DIR="$tmp/target" \
		timeout --foreground "${TIDECACHE_BUILD_TIMEOUT:-5400}" \
		cargo install garage --version "$TIDECACHE_GARAGE_VERSION" --locked --debug \
		--no-default-features --features lmdb,bundled-libs --root "$tmp/install" --quiet || rc=$?
	secs=$(($(date +%s) - start))
	if ((rc != 0)); then
		rm -rf "$tmp"
		_tc_log "FAILED to build garage after ${secs}s (exit $rc)"
		return "$rc"
	fi
	mv "$tmp/install/bin/garage" "$tmp/garage" && rm -rf "$tmp/target" "$tmp/install" || return 1
	printf 'name=garage-%s\nbuilt=%s\nbuild_seconds=%s\n' "$TIDECACHE_GARAGE_VERSION" \
		"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$secs" >"$tmp/BUILDINFO"
	chmod 0755 "$tmp" || return 1
	if [[ -e "$final" ]]; then rm -rf "$tmp"; else mv -T "$tmp" "$final" || return 1; fi
	_tc_cur_tmp=""
	_tc_log "built garage in ${secs}s"
}

# Debian packages the harness uses: redis-cli, ip/netns, nft, setsid/flock/nsenter,
# openssl, curl, a TrueType font for the timeline charts. `apt-get update` runs only when something is missing.
_tc_apt() {
	[[ "${TIDECACHE_SKIP_APT:-0}" == 1 ]] && return 0
	local -a missing=()
	command -v redis-cli >/dev/null || missing+=(redis-tools)
	# redis-server and redis-check-rdb: the RDB interoperability tests and the benchmarks' peer.
	{ command -v redis-server && command -v redis-check-rdb; } >/dev/null || missing+=(redis-server)
	command -v ip >/dev/null || missing+=(iproute2)
	# nft: the partition scenario drops a pod's packets inside the netns.
	command -v nft >/dev/null || missing+=(nftables)
	{ command -v setsid && command -v flock && command -v nsenter; } >/dev/null || missing+=(util-linux)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v curl >/dev/null || missing+=(curl)
	# Garage's build links Debian's libsodium (see _tc_build_garage).
	command -v pkg-config >/dev/null || missing+=(pkg-config)
	[[ -f /usr/include/sodium.h ]] || missing+=(libsodium-dev)
	# The font the e2e timelines' PNG charts are labelled with.
	[[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || missing+=(fonts-dejavu-core)
	((${#missing[@]} == 0)) && return 0
	_tc_log "installing Debian packages: ${missing[*]}"
	if ((EUID != 0)); then
		_tc_log "not root: install them yourself (apt-get install ${missing[*]})"
		return 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	timeout --foreground 600 apt-get update -qq || return 1
	timeout --foreground 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Build everything that is missing. Serialised with a lock so two concurrent
# callers do not both build (2 cores...).
_tc_ensure() {
	_tc_init_vars || return 1
	command -v go >/dev/null || {
		_tc_log "go not found in PATH"
		return 1
	}
	mkdir -p "$TIDECACHE_TOOLS_DIR" || return 1
	(
		flock -w "${TIDECACHE_BUILD_TIMEOUT:-5400}" 9 || {
			_tc_log "timed out waiting for $TIDECACHE_TOOLS_DIR/.lock"
			exit 1
		}
		# Interrupted: drop the half-built directory. (`timeout --foreground`
		# keeps go in our process group, so Ctrl-C stops it too.)
		_tc_cur_tmp=""
		trap '[[ -n "$_tc_cur_tmp" ]] && rm -rf "$_tc_cur_tmp"; exit 130' INT TERM
		# Leftovers of builds killed harder than that.
		rm -rf "$TIDECACHE_TOOLS_DIR"/*.tmp.*
		_tc_build_kubernetes && _tc_build_etcd && _tc_build_helm
	) 9>"$TIDECACHE_TOOLS_DIR/.lock" || return 1
	_tc_apt && _tc_ensure_garage
}

# The Debian packages, then Garage (serialised like the other builds).
_tc_ensure_garage() {
	_tc_init_vars || return 1
	_tc_apt || return 1
	mkdir -p "$TIDECACHE_TOOLS_DIR" || return 1
	(
		flock -w "${TIDECACHE_BUILD_TIMEOUT:-5400}" 9 || exit 1
		_tc_cur_tmp=""
		trap '[[ -n "$_tc_cur_tmp" ]] && rm -rf "$_tc_cur_tmp"; exit 130' INT TERM
		_tc_build_garage
	) 9>"$TIDECACHE_TOOLS_DIR/.lock"
}

_tc_check() {
	_tc_init_vars
	_tc_complete "$TIDECACHE_TOOLS_KUBERNETES" kube-apiserver kube-controller-manager kube-scheduler kubectl &&
		_tc_complete "$TIDECACHE_TOOLS_ETCD" etcd &&
		_tc_complete "$TIDECACHE_TOOLS_HELM" helm &&
		_tc_complete "$TIDECACHE_TOOLS_GARAGE" garage
}

_tc_print_env() {
	local v
	for v in TIDECACHE_TOOLS_DIR TIDECACHE_TOOLS_KUBERNETES TIDECACHE_TOOLS_ETCD TIDECACHE_TOOLS_HELM \
		TIDECACHE_TOOLS_GARAGE TIDECACHE_KUBERNETES_VERSION TIDECACHE_ETCD_VERSION TIDECACHE_HELM_VERSION; do
		printf 'export %s=%q\n' "$v" "${!v}"
	done
	# Tool dirs first; drop earlier copies of them so re-sourcing is harmless.
	local p="" d
	local -a dirs
	IFS=: read -r -a dirs <<<"$PATH"
	for d in "${dirs[@]}"; do
		case "$d" in "$TIDECACHE_TOOLS_DIR"/*) continue ;; esac
		p="${p:+$p:}$d"
	done
	printf 'export PATH=%q\n' "$TIDECACHE_TOOLS_KUBERNETES:$TIDECACHE_TOOLS_ETCD:$TIDECACHE_TOOLS_HELM:$TIDECACHE_TOOLS_GARAGE${p:+:$p}"
}

# --- entry points ------------------------------------------------------------

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
	# Sourced: do not change the caller's shell options; build in a subshell.
	if (set -euo pipefail && _tc_ensure); then
		_tc_init_vars
		eval "$(_tc_print_env)"
	else
		_tc_log "tool setup failed"
		return 1
	fi
	return 0
fi

set -euo pipefail
case "${1:-build}" in
build) _tc_ensure ;;
env)
	_tc_ensure
	_tc_print_env
	;;
check) _tc_check ;;
packages) _tc_apt ;;
garage)
	# Debian packages and Garage; prints the garage binary's path.
	_tc_ensure_garage >&2
	echo "$TIDECACHE_TOOLS_GARAGE/garage"
	;;
print-env)
	_tc_init_vars
	_tc_print_env
	;;
-h | --help | help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" ;;
*)
	echo "usage: $0 [build|env|check|packages|garage]" >&2
	exit 2
	;;
esac
