#!/usr/bin/env bash
# What a replica costs its primary, Tidecache against Redis 7.0: pipelined
# SET throughput on a lone primary and on a primary with one replica
# attached, and how long `WAIT 1` takes once the load stops (how far behind
# the replica was), checking that both hold the same number of keys. Prints
# the median over RUNS runs and, for each system, with/without.
#
#   bench/replication.sh                 # RUNS=3
#   NO_BUILD=1 RUNS=5 bench/replication.sh
#
# Knobs: RUNS (3), REQUESTS (500000 SETs per run), CLIENTS (50), PIPELINE
# (16), KEYSPACE (100000 random keys), NO_BUILD=1, NODE_BIN
# (target/release/cache-node). Ports 7361-7364. Each run starts fresh
# servers; the systems and the two shapes alternate.
set -euo pipefail

RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-500000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
KEYSPACE=${KEYSPACE:-100000}
root=$(cd "$(dirname "$0")/.." && pwd)
node_bin=${NODE_BIN:-$root/target/release/cache-node}
tmp=$(mktemp -d /tmp/tidecache-repl-bench.XXXXXX)
declare -A pid=()
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
trap 'stop p; stop r; rm -rf "$tmp"' EXIT

if [[ ${NO_BUILD:-} != 1 ]]; then
    (cd "$root" && cargo build --release --locked -q -p cache-node --bin cache-node)
fi
command -v redis-server >/dev/null || { log "needs redis-server (apt-get install redis-server)"; exit 1; }

wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.05; done; log "port $1 did not open"; exit 1; }

start() { # start <system> <name> <port>
    case $1 in
    redis) redis-server --port "$3" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$tmp" --dbfilename "$2.rdb" >"$tmp/$2.log" 2>&1 &
        ;;
    tidecache) "$node_bin" --port "$3" --bind 127.0.0.1 --admin-password adm \
        >"$tmp/$2.log" 2>&1 &
        ;;
    esac
    pid[$2]=$!
    wait_port "$3"
}

attach() { # attach <system> <replica port> <primary port>
    case $1 in
    redis) redis-cli -p "$2" replicaof 127.0.0.1 "$3" >/dev/null ;;
    tidecache) redis-cli -p "$2" --user tidecache-admin --pass adm --no-auth-warning \
        replicaof 127.0.0.1 "$3" >/dev/null ;;
    esac
    for _ in $(seq 200); do
        redis-cli -p "$2" info replication | grep -q 'master_link_status:up' && return
        sleep 0.05
    done
    log "the replica on $2 did not come up"
    exit 1
}

one() { # one <system> <shape: alone|replica>
    local sys=$1 shape=$2 pp=7361 rp=7362
    [[ $sys == redis ]] && { pp=7363; rp=7364; }
    start "$sys" p "$pp"
    if [[ $shape == replica ]]; then start "$sys" r "$rp"; attach "$sys" "$rp" "$pp"; fi
    local rps
    rps=$(redis-benchmark -p "$pp" -t set -n "$REQUESTS" -c "$CLIENTS" -P "$PIPELINE" \
        -r "$KEYSPACE" -q 2>/dev/null | tr '\r' '\n' | awk '/SET:/ {print $2}' | tail -1)
    record set "$sys-$shape" "$rps"
    if [[ $shape == replica ]]; then
        # How long after the load the replica has everything: WAIT 1.
        local start_ns end_ns acked
        start_ns=$(date +%s%N)
        acked=$(redis-cli -p "$pp" wait 1 10000)
        end_ns=$(date +%s%N)
        [[ $acked == 1 ]] || { log "WAIT 1 returned $acked"; exit 1; }
        record catchup_ms "$sys" $(( (end_ns - start_ns) / 1000000 ))
        [[ $(redis-cli -p "$rp" dbsize) == "$(redis-cli -p "$pp" dbsize)" ]] ||
            { log "replica and primary differ in size"; exit 1; }
        stop r
    fi
    stop p
}

for run in $(seq "$RUNS"); do
    log "run $run/$RUNS"
    order=(redis tidecache)
    (( run % 2 == 0 )) && order=(tidecache redis)
    for sys in "${order[@]}"; do
        one "$sys" alone
        one "$sys" replica
    done
done

m() { median <"$tmp/$1"; }
printf '\n%-34s %14s %14s\n' "median of $RUNS runs" tidecache redis
printf '%-34s %14s %14s\n' "SET/s, lone primary" "$(m set.tidecache-alone)" "$(m set.redis-alone)"
printf '%-34s %14s %14s\n' "SET/s, primary with a replica" "$(m set.tidecache-replica)" "$(m set.redis-replica)"
printf '%-34s %14s %14s\n' "with/without" \
    "$(awk -v a="$(m set.tidecache-replica)" -v b="$(m set.tidecache-alone)" 'BEGIN {printf "%.2f", a/b}')" \
    "$(awk -v a="$(m set.redis-replica)" -v b="$(m set.redis-alone)" 'BEGIN {printf "%.2f", a/b}')"
printf '%-34s %14s %14s\n' "WAIT 1 after the load (ms)" "$(m catchup_ms.tidecache)" "$(m catchup_ms.redis)"
