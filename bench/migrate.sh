#!/usr/bin/env bash
# Live slot migration under load, Tidecache against Redis 7.0: moves SLOTS
# slots (0..SLOTS-1) holding KEYS keys from one local node to another while
# an open-loop load runs, and prints the median of each measurement over RUNS
# runs for both systems and the ratio tidecache/redis.
#
#   bench/migrate.sh                     # RUNS=3, both systems
#   ONLY=redis RUNS=3 bench/migrate.sh   # Redis only
#   ONLY=tidecache NO_BUILD=1 bench/migrate.sh
#
# Knobs (environment): ONLY (redis,tidecache: the systems to run), RUNS (3),
# KEYS (250000, preloaded into the moved slots), SLOTS (4096), RATE (2000
# req/s per connection), CONNS (4), BEFORE (3 s of load before the move),
# AFTER (2 s after it), MOVE_TIMEOUT (120 s), HOGS (0: busy loops at normal
# priority running through each run's load, the other processes of a shared
# Kubernetes node; HOGS=2 takes both cores of these machines), NO_BUILD=1 (use the binaries as
# they are), NODE_BIN (target/release/cache-node), KEEP=1 (keep the logs and
# each run's per-request latencies, <system>-<run>.latency, in the temporary
# directory), REDIS_CONF_DIR (where Redis's nodes.conf files go; default that
# temporary directory under /tmp), REDIS_PORT_A/B (7301/7302; cluster bus ports
# REDIS_BUS_A/B 7351/7352), NODE_PORT_A/B (7311/7312). Every port must lie in
# 7300-7399.
#
# The load and the checks are cache-node/examples/migrate_load.rs: a
# cluster-aware client (MOVED/ASK) sending SET of fresh keys (half of them
# into the moved slots) and GET of preloaded keys at a fixed rate, latency
# measured from each request's due time; after the move it reads back every
# acknowledged write and every preloaded key.
#
# - redis: two `redis-server --cluster-enabled yes` nodes, A with 0-8191 and
#   B with 8192-16383; the move is `redis-cli --cluster reshard` of SLOTS
#   slots from A to B (A's first slots: 0..SLOTS-1).
# - tidecache: two `cache-node --cluster-enabled yes` nodes with the same
#   layout installed as a topology document (epoch 1); the move is
#   `TIDECACHE MIGRATE START m1 127.0.0.1 <B> 2 0-<SLOTS-1>` at A, then
#   `TIDECACHE MIGRATE STATUS m1` every 10 ms until its state is `done`,
#   both sent by migrate_load (`--migrate`) on an admin connection it opened
#   before the load, as the operator drives a move. (Run by redis-cli, the
#   move put two process starts inside the measured window; with no move at
#   all, those alone made p99 "during" 13x p99 before on these machines.)
#
# After each run the script checks that B owns 0..SLOTS-1 in both nodes'
# CLUSTER NODES, that A holds no key in those slots and B at least KEYS, and
# that the two nodes together hold exactly the preloaded keys plus the
# acknowledged writes. The systems alternate, the order flipped each run.
set -euo pipefail

ONLY=${ONLY:-redis,tidecache}
RUNS=${RUNS:-3}
KEYS=${KEYS:-250000}
SLOTS=${SLOTS:-4096}
RATE=${RATE:-2000}
CONNS=${CONNS:-4}
BEFORE=${BEFORE:-3}
AFTER=${AFTER:-2}
MOVE_TIMEOUT=${MOVE_TIMEOUT:-120}
HOGS=${HOGS:-0}
REDIS_PORT_A=${REDIS_PORT_A:-7301}
REDIS_PORT_B=${REDIS_PORT_B:-7302}
REDIS_BUS_A=${REDIS_BUS_A:-7351}
REDIS_BUS_B=${REDIS_BUS_B:-7352}
NODE_PORT_A=${NODE_PORT_A:-7311}
NODE_PORT_B=${NODE_PORT_B:-7312}
PASS=pw
ADMIN_PASS=adm

root=$(cd "$(dirname "$0")/.." && pwd)
node_bin=${NODE_BIN:-$root/target/release/cache-node}
migrate_load=$root/target/release/examples/migrate_load
tmp=$(mktemp -d /tmp/tidecache-migrate.XXXXXX)
# Redis fsyncs nodes.conf from its event loop at every slot handoff; where
# the file lives (REDIS_CONF_DIR, default the temporary directory on /tmp)
# shows in its pauses: /dev/shm takes the disk out.
conf_dir=$tmp
[[ -n ${REDIS_CONF_DIR:-} ]] && conf_dir=$(mktemp -d "$REDIS_CONF_DIR/tidecache-migrate.XXXXXX")
declare -A pid=()

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
want() { [[ ,$ONLY, == *",$1,"* ]]; } # want <system>

hogs=()
start_hogs() { local i; for ((i = 0; i < HOGS; i++)); do (while :; do :; done) & hogs+=($!); done; }
stop_hogs() {
    if (( ${#hogs[@]} )); then kill "${hogs[@]}" 2>/dev/null || true; wait "${hogs[@]}" 2>/dev/null || true; fi
    hogs=()
}
stop_all() { stop_hogs; stop redis_a; stop redis_b; stop node_a; stop node_b; }
cleanup() {
    stop_all
    [[ $conf_dir == "$tmp" ]] || rm -rf "$conf_dir"
    if [[ ${KEEP:-} == 1 ]]; then log "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "$REDIS_PORT_A" "$REDIS_PORT_B" "$REDIS_BUS_A" "$REDIS_BUS_B" "$NODE_PORT_A" "$NODE_PORT_B"; do
    if ! [[ $p =~ ^[0-9]+$ ]] || (( p < 7300 || p > 7399 )); then
        log "port $p is outside 7300-7399"
        exit 2
    fi
done
[[ $ONLY =~ ^(redis|tidecache)(,(redis|tidecache))*$ ]] || { log "ONLY=$ONLY: expected redis, tidecache or redis,tidecache"; exit 2; }
(( SLOTS >= 1 && SLOTS <= 8192 )) || { log "SLOTS=$SLOTS: expected 1-8192 (A owns 0-8191)"; exit 2; }
last=$((SLOTS - 1))

rcli() { timeout 10 redis-cli -h 127.0.0.1 "$@"; } # redis-cli with a bound
# the clients of each system: rc <system> <A|B> args...
rc() {
    local sys=$1 node=$2
    shift 2
    if [[ $sys == redis ]]; then
        rcli -p "$(port "$sys" "$node")" "$@"
    else
        rcli -p "$(port "$sys" "$node")" -a "$PASS" --no-auth-warning "$@"
    fi
}
admin() { rcli -p "$1" --user tidecache-admin --pass "$ADMIN_PASS" --no-auth-warning "${@:2}"; }
port() { # port <system> <A|B>
    case $1$2 in
        redisA) echo "$REDIS_PORT_A" ;; redisB) echo "$REDIS_PORT_B" ;;
        tidecacheA) echo "$NODE_PORT_A" ;; tidecacheB) echo "$NODE_PORT_B" ;;
    esac
}

# Functions called as `f || ...` run without set -e: they check each step.
expect_ok() { # expect_ok <command...>: the command must print OK
    local out
    out=$("$@" 2>&1) || true
    [[ $out == OK ]] && return 0
    log "$* replied: $out"
    return 1
}
num() { [[ $1 =~ ^[0-9]+$ ]] && echo "$1" || echo -1; } # a count, or -1

port_free() { ! timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_ping() { # wait_ping <system> <A|B> <log file>: until the node answers PONG (10 s)
    for _ in $(seq 100); do
        [[ $(rc "$1" "$2" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    log "$1 node $2 did not answer PING on port $(port "$1" "$2")"
    tail -20 "$3" >&2 || true
    return 1
}

wait_cluster_ok() { # wait_cluster_ok <system>: both nodes report cluster_state:ok (20 s)
    for _ in $(seq 200); do
        if rc "$1" A cluster info 2>/dev/null | grep -q '^cluster_state:ok' &&
            rc "$1" B cluster info 2>/dev/null | grep -q '^cluster_state:ok'; then
            return 0
        fi
        sleep 0.1
    done
    log "$1: the cluster did not reach cluster_state:ok within 20 s"
    rc "$1" A cluster info >&2 || true
    rc "$1" B cluster info >&2 || true
    return 1
}

start_redis() {
    local n p bus
    for n in A B; do
        p=$(port redis $n)
        bus=$REDIS_BUS_A; [[ $n == B ]] && bus=$REDIS_BUS_B
        rm -f "$conf_dir/nodes-$p.conf"
        redis-server --port "$p" --cluster-enabled yes --cluster-port "$bus" \
            --cluster-config-file "$conf_dir/nodes-$p.conf" --save '' --appendonly no \
            --bind 127.0.0.1 --daemonize no --dir "$tmp" --logfile "$tmp/redis-$p.log" &
        pid[redis_${n,,}]=$!
    done
    wait_ping redis A "$tmp/redis-$REDIS_PORT_A.log" || return 1
    wait_ping redis B "$tmp/redis-$REDIS_PORT_B.log" || return 1
    expect_ok rc redis A cluster addslotsrange 0 8191 || return 1
    expect_ok rc redis B cluster addslotsrange 8192 16383 || return 1
    expect_ok rc redis A cluster meet 127.0.0.1 "$REDIS_PORT_B" "$REDIS_BUS_B" || return 1
    wait_cluster_ok redis || return 1
    # redis-cli --cluster refuses to reshard until every node agrees.
    for _ in $(seq 100); do
        if timeout 10 redis-cli --cluster check "127.0.0.1:$REDIS_PORT_A" >"$tmp/check.out" 2>&1 &&
            grep -q 'All nodes agree about slots configuration' "$tmp/check.out"; then
            return 0
        fi
        sleep 0.2
    done
    log "redis: redis-cli --cluster check did not pass within 20 s"
    cat "$tmp/check.out" >&2
    return 1
}

start_tidecache() {
    local n p id_a id_b doc
    for n in A B; do
        p=$(port tidecache $n)
        TIDECACHE_LOG=warn "$node_bin" --bind 127.0.0.1 --port "$p" --cluster-enabled yes \
            --requirepass "$PASS" --admin-password "$ADMIN_PASS" --node-name "bench-${n,,}" \
            ${NODE_FLAGS:-} >"$tmp/node-$p.log" 2>&1 &
        pid[node_${n,,}]=$!
    done
    wait_ping tidecache A "$tmp/node-$NODE_PORT_A.log" || return 1
    wait_ping tidecache B "$tmp/node-$NODE_PORT_B.log" || return 1
    id_a=$("$migrate_load" node-id bench-a)
    id_b=$("$migrate_load" node-id bench-b)
    for n in A B; do
        local want_id=$id_a got
        [[ $n == B ]] && want_id=$id_b
        got=$(rc tidecache $n cluster myid) || true
        [[ $got == "$want_id" ]] || { log "tidecache node $n has id $got, expected $want_id"; return 1; }
    done
    doc='{"epoch":1,"shards":['
    doc+='{"name":"a","slots":["0-8191"],"primary":{"id":"'$id_a'","host":"127.0.0.1","port":'$NODE_PORT_A'},"replicas":[]},'
    doc+='{"name":"b","slots":["8192-16383"],"primary":{"id":"'$id_b'","host":"127.0.0.1","port":'$NODE_PORT_B'},"replicas":[]}]}'
    expect_ok admin "$NODE_PORT_A" TIDECACHE TOPOLOGY SET "$doc" || return 1
    expect_ok admin "$NODE_PORT_B" TIDECACHE TOPOLOGY SET "$doc" || return 1
    wait_cluster_ok tidecache || return 1
}



field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" <<<"$2"; } # field <name> <line>

order() { # order <run>: the systems wanted, flipped on odd runs
    local s=(redis tidecache)
    (( $1 % 2 )) && s=(tidecache redis)
    for x in "${s[@]}"; do want "$x" && echo "$x"; done
    return 0
}

slots_of() { # slots_of <system> <asking node A|B> <node id>: how many of 0..last that id owns, "-" if a slot is still open
    rc "$1" "$2" cluster nodes | awk -v id="$3" -v last="$last" '
        $1 == id {
            for (i = 9; i <= NF; i++) {
                if ($i ~ /^\[/) { open = 1; continue }
                n = split($i, r, "-"); a = r[1]; b = (n == 2) ? r[2] : r[1]
                if (a > last) continue
                if (b > last) b = last
                c += b - a + 1
            }
        }
        END { if (open) print "-"; else print c + 0 }'
}
keys_in_moved() { # keys_in_moved <system> <A|B>: keys held in slots 0..last
    seq 0 "$last" | sed 's/^/cluster countkeysinslot /' | rc "$1" "$2" | awk '{s += $1} END {print s + 0}'
}

failures=()
run_one() { # run_one <system> <run>
    local sys=$1 r=$2 id_a id_b move_cmd line n rc_load=0 runlog=$tmp/$1-$2.log
    log "run $r: $sys"
    if [[ $sys == redis ]]; then
        start_redis || return 1
        id_a=$(rc redis A cluster myid) || return 1
        id_b=$(rc redis B cluster myid) || return 1
        move_cmd="timeout $MOVE_TIMEOUT redis-cli --cluster reshard 127.0.0.1:$REDIS_PORT_A"
        move_cmd+=" --cluster-from $id_a --cluster-to $id_b --cluster-slots $SLOTS --cluster-yes"
        set -- --seed "127.0.0.1:$REDIS_PORT_A" --move-cmd "$move_cmd"
    else
        start_tidecache || return 1
        id_a=$("$migrate_load" node-id bench-a)
        id_b=$("$migrate_load" node-id bench-b)
        rm -f "$tmp/status"
        # Driven by migrate_load itself over a connection opened before the
        # load, as the operator drives a move (see migrate_load's docs).
        set -- --seed "127.0.0.1:$NODE_PORT_A" --password "$PASS" --admin-password "$ADMIN_PASS" \
            --migrate "m1 127.0.0.1 $NODE_PORT_B 2 0-$last" --status-file "$tmp/status"
    fi
    local steal0
    steal0=$(steal_ms)
    start_hogs
    line=$(timeout $((MOVE_TIMEOUT + 300)) "$migrate_load" "$@" --conns "$CONNS" --rate "$RATE" \
        --before "$BEFORE" --after "$AFTER" --keys "$KEYS" --key-slots "0-$last" \
        --move-timeout $((MOVE_TIMEOUT + 10)) --dump "$tmp/$sys-$r.latency" \
        2>"$runlog") || rc_load=$?
    stop_hogs
    log "  $line"
    if [[ -z $line ]]; then
        log "  migrate_load printed nothing (exit $rc_load); the end of its log:"
        tail -20 "$runlog" >&2
        return 1
    fi
    local move_exit
    move_exit=$(field move_exit "$line")
    record lost_writes "$sys" "$(field lost_writes "$line")"
    record client_errors "$sys" "$(field client_errors "$line")"
    if [[ $move_exit != 0 ]]; then
        log "  the move command failed (exit $move_exit); the end of migrate_load's log:"
        grep -v '^ *Moving slot' "$runlog" | tail -20 >&2
        [[ $sys == tidecache ]] && grep -q "unknown subcommand 'MIGRATE'\|MIGRATE START replied" "$runlog" &&
            log "  (the node does not implement TIDECACHE MIGRATE yet?)"
        return 1
    fi
    record move_ms "$sys" "$(field move_ms "$line")"
    record max_write_during_ms "$sys" "$(field max_write_during_ms "$line")"
    record max_during_ms "$sys" "$(field max_during_ms "$line")"
    record p99_before_ms "$sys" "$(field p99_before_ms "$line")"
    record p99_during_ms "$sys" "$(field p99_during_ms "$line")"
    record p99_ratio "$sys" "$(field p99_ratio "$line")"
    record p99_after_ms "$sys" "$(field p99_after_ms "$line")"
    record during_requests "$sys" "$(field during_requests "$line")"
    record steal_ms "$sys" $(($(steal_ms) - steal0))
    record asks "$sys" "$(field ask "$line")"
    if [[ $sys == tidecache && -s $tmp/status ]]; then
        record tc_elapsed_ms tidecache "$(awk 'NR % 2 == 1 && $0 == "elapsed_ms" {getline; print; exit}' "$tmp/status")"
        record tc_pause_us tidecache "$(awk 'NR % 2 == 1 && $0 == "pause_us" {getline; print; exit}' "$tmp/status")"
    fi
    # The slowest commands the nodes saw (Redis and Tidecache both keep a
    # SLOWLOG, 10 ms threshold by default), kept with KEEP=1.
    for n in A B; do rc "$sys" $n slowlog get 10 >"$tmp/$sys-$r.slowlog-$n" 2>&1 || true; done
    # Where the slots and the keys ended up.
    local own_a own_b on_a on_b total expect ok=1
    own_a=$(slots_of "$sys" A "$id_b")
    own_b=$(slots_of "$sys" B "$id_b")
    # (a node may drop the moved keys in the background: give it 5 s)
    for _ in $(seq 50); do
        on_a=$(num "$(keys_in_moved "$sys" A)")
        (( on_a == 0 )) && break
        sleep 0.1
    done
    on_b=$(num "$(keys_in_moved "$sys" B)")
    total=$(( $(num "$(rc "$sys" A dbsize)") + $(num "$(rc "$sys" B dbsize)") ))
    expect=$((KEYS + $(num "$(field acked_writes "$line")")))
    log "  B owns $own_a (A's view) / $own_b (B's view) of slots 0-$last; keys in them: A $on_a, B $on_b; keys in all: $total (preloaded + acked writes: $expect)"
    [[ $own_a == "$SLOTS" && $own_b == "$SLOTS" ]] || { log "  FAIL: B does not own all of slots 0-$last"; ok=0; }
    (( on_a == 0 )) || { log "  FAIL: A still holds $on_a keys in slots 0-$last"; ok=0; }
    (( on_b >= KEYS )) || { log "  FAIL: B holds only $on_b keys in slots 0-$last, fewer than the $KEYS preloaded"; ok=0; }
    (( total == expect )) || { log "  FAIL: the nodes hold $total keys, not $expect"; ok=0; }
    record keys_moved "$sys" "$on_b"
    if [[ $sys == tidecache ]]; then
        log "  topology epochs after the move: A $(admin "$NODE_PORT_A" TIDECACHE TOPOLOGY EPOCH 2>&1)," \
            "B $(admin "$NODE_PORT_B" TIDECACHE TOPOLOGY EPOCH 2>&1)"
    fi
    if (( rc_load != 0 )); then
        log "  migrate_load exited $rc_load (lost writes, bad reads or client errors); the end of its log:"
        grep -v '^ *Moving slot' "$runlog" | tail -20 >&2
        ok=0
    fi
    (( ok ))
}

# ---- setup -----------------------------------------------------------------
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { log "redis-server and redis-cli are needed (apt-get install redis-server redis-tools)"; exit 1; }
if [[ ${NO_BUILD:-} != 1 ]]; then
    what=(--example migrate_load)
    want tidecache && what+=(--bin cache-node)
    (cd "$root" && timeout 3600 nice -n 10 cargo build --release -p cache-node "${what[@]}")
fi
[[ -x $migrate_load ]] || { log "no $migrate_load (build it, or unset NO_BUILD)"; exit 1; }
if want tidecache && [[ ! -x $node_bin ]]; then log "no $node_bin (build it, or unset NO_BUILD)"; exit 1; fi
for p in "$REDIS_PORT_A" "$REDIS_PORT_B" "$REDIS_BUS_A" "$REDIS_BUS_B" "$NODE_PORT_A" "$NODE_PORT_B"; do
    port_free "$p" || { log "port $p is taken"; exit 1; }
done
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$root" && git --no-optional-locks status --porcelain -- cache-node 2>/dev/null | wc -l)

# ---- runs ------------------------------------------------------------------
log "moving slots 0-$last ($KEYS keys) from A to B under $CONNS x $RATE req/s, $RUNS runs: ${ONLY}"
for r in $(seq "$RUNS"); do
    for s in $(order "$r"); do
        if ! run_one "$s" "$r"; then
            failures+=("run $r $s")
            log "  run $r of $s FAILED"
        fi
        stop_all
    done
done

# ---- report ----------------------------------------------------------------
med() { if [[ -s $tmp/$1.$2 ]]; then median <"$tmp/$1.$2"; else echo -; fi; }
sum() { if [[ -s $tmp/$1.$2 ]]; then awk '{s += $1} END {print s}' "$tmp/$1.$2"; else echo -; fi; }
row() { # row <metric> <label> <unit> <goal-op> <goal> [sum]: medians (or sums), ratio, goal check on tidecache
    local t rd ratio met=-
    if [[ ${6:-} == sum ]]; then t=$(sum "$1" tidecache); rd=$(sum "$1" redis)
    else t=$(med "$1" tidecache); rd=$(med "$1" redis); fi
    ratio=$(awk -v a="$t" -v b="$rd" 'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.3f", a / b}')
    if [[ -n $4 && $t != - ]]; then
        met=$(awk -v v="$t" -v g="$5" -v op="$4" \
            'BEGIN {ok = (op == ">=") ? v >= g : (op == "==") ? v == g : v <= g; print ok ? "met" : "NOT met"}')
    fi
    printf '| %-40s | %-5s | %10s | %10s | %7s | %-8s | %-7s |\n' "$2" "$3" "$t" "$rd" "$ratio" \
        "${4:+$4 $5}" "$met"
}

echo
echo "cache-node $commit ($dirty uncommitted files under cache-node/) vs $(redis-server --version | cut -d" " -f3)"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%FT%TZ)"
echo "move slots 0-$last holding $KEYS preloaded keys from node A to node B (two local nodes)"
echo "load: $CONNS connections x $RATE req/s open loop (SET new key / GET preloaded key), ${BEFORE}s before, ${AFTER}s after"
echo "medians of successful runs (of $RUNS); systems alternate, order flipped each run; ratio = tidecache / redis"
echo "redis: redis-cli --cluster reshard, nodes.conf in ${REDIS_CONF_DIR:-/tmp}; tidecache: TIDECACHE MIGRATE START + STATUS every 10 ms, from migrate_load"
echo
printf '| %-40s | %-5s | %10s | %10s | %7s | %-8s | %-7s |\n' measurement unit tidecache redis ratio goal result
echo "|------------------------------------------|-------|------------|------------|---------|----------|---------|"
row move_ms "move duration" ms "<=" 1000
row max_write_during_ms "longest write during the move" ms "<=" 5
row p99_ratio "p99 during / p99 before" x "<=" 2
row p99_before_ms "   p99 before the move" ms "" ""
row p99_during_ms "   p99 during the move" ms "" ""
row max_during_ms "   longest request during the move" ms "" ""
row p99_after_ms "   p99 after the move" ms "" ""
row during_requests "   requests due during the move" n "" ""
row asks "   ASK redirects followed" n "" ""
row steal_ms "   CPU stolen by the host during the run" ms "" ""
row keys_moved "   keys in the moved slots at the end" keys "" ""
row lost_writes "lost writes (sum of all runs)" n "==" 0 sum
row client_errors "client errors (sum of all runs)" n "==" 0 sum
if [[ -s $tmp/tc_elapsed_ms.tidecache ]]; then
    echo
    echo "tidecache's own TIDECACHE MIGRATE STATUS: elapsed_ms median $(med tc_elapsed_ms tidecache)," \
        "pause_us median $(med tc_pause_us tidecache)"
fi
echo
if (( ${#failures[@]} )); then
    echo "FAILED runs: ${failures[*]}"
else
    echo "all runs passed their checks"
fi
echo
echo "raw values (one a run, in run order):"
for f in "$tmp"/*.tidecache "$tmp"/*.redis; do
    if [[ -e $f ]]; then printf '  %-30s %s\n' "$(basename "$f")" "$(tr '\n' ' ' <"$f")"; fi
done
(( ${#failures[@]} == 0 ))
