#!/usr/bin/env bash
# Runs cache-node and Debian's redis-server side by side on loopback and
# prints the median of each measurement and the ratio cache-node/redis.
#
#   bench/compare.sh                 # RUNS=5
#   RUNS=3 NO_BUILD=1 bench/compare.sh
#
# Knobs (environment): ONLY (abcde + 2 for a2 + x for the ceiling in a and b:
# the sections to run; x is off by default), RUNS (5), MEM_RUNS (3), GROW_RUNS (3, 0 skips),
# N_PIPE (2000000), N_CPU (300000), MEM_KEYS (1000000),
# GROW_KEYS (3000000), LAT_SECS (10), NODE_PORT (6400), REDIS_PORT (6401),
# NO_BUILD=1 (use the binary as it is), NODE_BIN (target/release/cache-node).
#
# Every measurement runs the two servers alternately (the order flips each
# run), with the same client command, so drift in the machine's load hits
# both alike. Nothing is pinned: redis-benchmark shares the cores with the
# server it measures, for both servers.
set -euo pipefail

RUNS=${RUNS:-5}
MEM_RUNS=${MEM_RUNS:-3}
GROW_RUNS=${GROW_RUNS:-3}
N_PIPE=${N_PIPE:-2000000}
N_CPU=${N_CPU:-300000}
LAT_SECS=${LAT_SECS:-10}
MEM_KEYS=${MEM_KEYS:-1000000}
GROW_KEYS=${GROW_KEYS:-3000000}
NODE_PORT=${NODE_PORT:-6400}
REDIS_PORT=${REDIS_PORT:-6401}

root=$(cd "$(dirname "$0")/.." && pwd)
node_bin=${NODE_BIN:-$root/target/release/cache-node}
tmp=$(mktemp -d /tmp/tidecache-bench.XXXXXX)
declare -A pid=()

# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
want() { [[ ${ONLY:-abcde2} == *"$1"* ]]; } # want <section letter>

servers=(node node1 redis ceil ceilu)
stop_all() { local s; for s in "${servers[@]}"; do stop "$s"; done; }
cleanup() { stop_all; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { # the ceilings have ports of their own: io_uring closes a killed process's sockets late
    case $1 in
    redis) echo "$REDIS_PORT" ;;
    ceil) echo $((NODE_PORT + 2)) ;;
    ceilu) echo $((NODE_PORT + 3)) ;;
    *) echo "$NODE_PORT" ;;
    esac
}

start() { # start <name>: a fresh, empty server, the only one running
    stop_all
    if [[ $1 == ceil* ]]; then
        # The ceiling (cache-node/examples/ceiling.rs): canned replies, no
        # keyspace; ceil on epoll as Redis, ceilu on io_uring.
        local mode=epoll
        [[ $1 == ceilu ]] && mode=uring
        "$ceiling" "$(port "$1")" "$mode" >"$tmp/$1.log" 2>&1 &
    elif [[ $1 == node* ]]; then
        # node1: the same binary serving connections on one thread.
        local threads=0
        [[ $1 == node1 ]] && threads=1
        TIDECACHE_LOG=warn "$node_bin" --bind 127.0.0.1 --port "$NODE_PORT" --io-threads "$threads" \
            >"$tmp/$1.log" 2>&1 &
    else
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
            --daemonize no --logfile "$tmp/redis.log" &
    fi
    pid[$1]=$!
    for _ in $(seq 100); do
        [[ $(timeout 2 redis-cli -p "$(port "$1")" ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    log "$1 did not answer PING on port $(port "$1")"
    cat "$tmp/$1.log" >&2 || true
    exit 1
}

ticks() { # "utime stime" of every thread of the process, in clock ticks
    # The command name may contain spaces: count fields after its ')'.
    sed 's/.*) //' "/proc/${pid[$1]}/stat" | awk '{print $12, $13}'
}
per_op() { # per_op <ticks before> <ticks after> <commands>: microseconds per command
    awk -v a="$1" -v b="$2" -v hz="$clk" -v n="$3" 'BEGIN {printf "%.3f", (b - a) * 1e6 / hz / n}'
}
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/${pid[$1]}/status"; }



ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "nan"; else printf "%.2f", a / b}'; }

order() { # order <run>: the two servers, flipped on odd runs
    if (( $1 % 2 )); then echo redis node; else echo node redis; fi
}
with_ceiling() { # with_ceiling <run>: order, then the ceilings if section x is wanted
    echo "$(order "$1")" "$(want x && echo ceil ceilu)"
}

# ---- setup -----------------------------------------------------------------
sudo=; [[ $(id -u) == 0 ]] || sudo=sudo
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    timeout 300 $sudo apt-get update
    timeout 600 $sudo apt-get install -y redis-server redis-tools
fi
if [[ ${NO_BUILD:-} != 1 ]]; then
    (cd "$root" && timeout 3600 cargo build --release -p cache-node --bin cache-node --example fixed_rate \
        --example ceiling)
fi
fixed_rate=$root/target/release/examples/fixed_rate
ceiling=$root/target/release/examples/ceiling
if want x && [[ ! -x $ceiling ]]; then log "no $ceiling (build it, or unset NO_BUILD)"; exit 1; fi
[[ -x $node_bin ]] || { log "no $node_bin (build it, or unset NO_BUILD)"; exit 1; }
for p in $(port node) $(port redis) $(want x && port ceil && port ceilu); do
    if timeout 2 redis-cli -p "$p" ping >/dev/null 2>&1; then log "port $p is taken"; exit 1; fi
done

clk=$(getconf CLK_TCK)
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$root" && git --no-optional-locks status --porcelain -- cache-node 2>/dev/null | wc -l)
alloc=system
grep -q '^static ALLOCATOR: tikv_jemallocator::Jemalloc' "$root/cache-node/src/main.rs" && alloc=jemalloc

# memtier_benchmark can hold a fixed request rate; Debian does not ship it,
# so this falls back to our own open-loop generator (cache-node/examples/fixed_rate.rs).
if ! command -v memtier_benchmark >/dev/null &&
    timeout 30 apt-cache policy memtier-benchmark 2>/dev/null | grep -q 'Candidate: [0-9]'; then
    timeout 600 ${sudo:-} apt-get install -y memtier-benchmark || true
fi
have_memtier=0
if command -v memtier_benchmark >/dev/null; then have_memtier=1; fi

# ---- a. pipelined throughput -------------------------------------------------
want a && log "a. redis-benchmark -t set,get -P 16 -n $N_PIPE -q"
want a && for r in $(seq "$RUNS"); do
    for s in $(with_ceiling "$r"); do
        start "$s"
        read -r u0 s0 < <(ticks "$s")
        # The client's own CPU time too (bash's `time`, in seconds): on two
        # cores it bounds what any server can reach here (docs/performance.md).
        out=$( { TIMEFORMAT='client %U %S'; time timeout 300 redis-benchmark -p "$(port "$s")" \
            -t set,get -P 16 -n "$N_PIPE" -q; } 2>&1 |
            tr '\r' '\n' | sed -n -e 's/^ *\([A-Z]*\): \([0-9.]*\) requests per second.*/\1 \2/p' \
            -e 's/^client \(.*\)/CLIENT \1/p')
        read -r u1 s1 < <(ticks "$s")
        record set_rps "$s" "$(awk '$1=="SET" {print $2}' <<<"$out")"
        record get_rps "$s" "$(awk '$1=="GET" {print $2}' <<<"$out")"
        record pipe_server_us "$s" "$(per_op $((u0 + s0)) $((u1 + s1)) $((2 * N_PIPE)))"
        record pipe_client_us "$s" "$(awk -v n=$((2 * N_PIPE)) '$1=="CLIENT" {printf "%.3f", ($2 + $3) * 1e6 / n}' <<<"$out")"
    done
done

# ---- b. server CPU per operation, not pipelined ------------------------------
want b && log "b. redis-benchmark -t set,get -n $N_CPU -c 50 (server CPU from /proc/<pid>/stat)"
want b && for r in $(seq "$RUNS"); do
    for s in $(with_ceiling "$r"); do
        start "$s"
        read -r u0 s0 < <(ticks "$s")
        timeout 300 redis-benchmark -p "$(port "$s")" -t set,get -n "$N_CPU" -c 50 --csv >"$tmp/cpu.csv"
        read -r u1 s1 < <(ticks "$s")
        # microseconds of server CPU per command (SET and GET: 2*N commands),
        # and its split: the kernel's part is loopback TCP, the same for any server
        record cpu_us "$s" "$(per_op $((u0 + s0)) $((u1 + s1)) $((2 * N_CPU)))"
        record cpu_user_us "$s" "$(per_op "$u0" "$u1" $((2 * N_CPU)))"
        record cpu_sys_us "$s" "$(per_op "$s0" "$s1" $((2 * N_CPU)))"
        record cpu_rps_set "$s" "$(awk -F'"' '$2=="SET" {print $4}' "$tmp/cpu.csv")"
        record cpu_rps_get "$s" "$(awk -F'"' '$2=="GET" {print $4}' "$tmp/cpu.csv")"
    done
done

# ---- c. memory per key -------------------------------------------------------
want c && log "c. $MEM_KEYS SETs of 16-byte keys and 16-byte values through redis-cli --pipe (VmRSS)"
awk -v n="$MEM_KEYS" 'BEGIN {
    for (i = 0; i < n; i++) printf "*3\r\n$3\r\nSET\r\n$16\r\nk%015d\r\n$16\r\nv%015d\r\n", i, i }' \
    >"$tmp/load.resp"
want c && for r in $(seq "$MEM_RUNS"); do
    for s in $(order "$r"); do
        start "$s"
        before=$(rss_kb "$s")
        timeout 300 redis-cli -p "$(port "$s")" --pipe <"$tmp/load.resp" >"$tmp/pipe.out"
        keys=$(timeout 10 redis-cli -p "$(port "$s")" dbsize)
        [[ $keys == "$MEM_KEYS" ]] || { log "$s holds $keys keys, not $MEM_KEYS"; cat "$tmp/pipe.out" >&2; exit 1; }
        after=$(rss_kb "$s")
        record mem_b "$s" "$(awk -v a="$after" -v b="$before" -v n="$MEM_KEYS" \
            'BEGIN {printf "%.1f", (a - b) * 1024 / n}')"
    done
done

# ---- d. p99 latency at a light load -----------------------------------------
# 4 connections x 2000 req/s = 8000 req/s (1:1 SET:GET, 16-byte values), far
# below saturation for both servers.
if (( have_memtier )); then
    lat_how="memtier_benchmark --rate-limiting"
else
    lat_how="fixed_rate (open loop, latency from each request's due time)"
    [[ -x $fixed_rate ]] || { log "no $fixed_rate (build it, or unset NO_BUILD)"; exit 1; }
fi
want d && log "d. p99 latency at 8000 req/s: $lat_how"
want d && for r in $(seq "$RUNS"); do
    for s in $(order "$r"); do
        start "$s"
        if (( have_memtier )); then
            timeout 300 memtier_benchmark -s 127.0.0.1 -p "$(port "$s")" -t 1 -c 4 \
                --rate-limiting=2000 --test-time="$LAT_SECS" --ratio=1:1 -d 16 \
                --key-maximum=100000 --hide-histogram --print-percentiles=99 \
                >"$tmp/memtier.out" 2>/dev/null
            record p99_set_ms "$s" "$(awk '$1=="Sets" {print $(NF-1)}' "$tmp/memtier.out")"
            record p99_get_ms "$s" "$(awk '$1=="Gets" {print $(NF-1)}' "$tmp/memtier.out")"
        else
            out=$(timeout 300 "$fixed_rate" "127.0.0.1:$(port "$s")" 4 2000 "$LAT_SECS")
            record p99_set_ms "$s" "$(sed 's/.*set_p99_ms=\([^ ]*\).*/\1/' <<<"$out")"
            record p99_get_ms "$s" "$(sed 's/.*get_p99_ms=\([^ ]*\).*/\1/' <<<"$out")"
            record lat_max_ms "$s" "$(sed 's/.*max_ms=\([^ ]*\).*/\1/' <<<"$out")"
        fi
    done
done

# ---- a2. the node's own design: two tokio workers against one ----------------
want 2 && log "a2. cache-node with --io-threads 1 vs the default (2 on this machine), SET/GET -P 16"
want 2 && for r in $(seq "$RUNS"); do
    for s in node1 node; do
        start "$s"
        out=$(timeout 300 redis-benchmark -p "$NODE_PORT" -t set,get -P 16 -n "$N_PIPE" -q |
            tr '\r' '\n' | sed -n 's/^ *\([A-Z]*\): \([0-9.]*\) requests per second.*/\1 \2/p')
        record "threads_set_rps" "$s" "$(awk '$1=="SET" {print $2}' <<<"$out")"
        record "threads_get_rps" "$s" "$(awk '$1=="GET" {print $2}' <<<"$out")"
    done
done

# ---- e. longest request while the keyspace grows ----------------------------
if want e && (( GROW_RUNS > 0 )); then
    log "e. redis-benchmark -t set -r 1000000000 -n $GROW_KEYS -c 1 -P 16 (max latency)"
    for r in $(seq "$GROW_RUNS"); do
        for s in $(order "$r"); do
            start "$s"
            # The server's own slowlog counts the SETs that took over 1 ms
            # to *execute*: a SET is microseconds of work, so one that took
            # a millisecond is a server that was not running (the host took
            # the CPU: the steal beside it), not one that was busy.
            timeout 10 redis-cli -p "$(port "$s")" config set slowlog-log-slower-than 1000 >/dev/null
            steal0=$(steal_ms)
            timeout 600 redis-benchmark -p "$(port "$s")" -t set -r 1000000000 -n "$GROW_KEYS" \
                -c 1 -P 16 --csv >"$tmp/grow.csv"
            record grow_steal_ms "$s" $(($(steal_ms) - steal0))
            record grow_max_ms "$s" "$(awk -F'"' '$2=="SET" {print $16}' "$tmp/grow.csv")"
            record grow_keys "$s" "$(timeout 10 redis-cli -p "$(port "$s")" dbsize)"
            record grow_slow_sets "$s" "$(timeout 10 redis-cli -p "$(port "$s")" slowlog len)"
        done
    done
fi
stop_all

# ---- report ----------------------------------------------------------------
row() { # row <metric> <label> <unit> <target-op> <target>
    local n rd ratio met
    [[ -s $tmp/$1.node && -s $tmp/$1.redis ]] || return 0 # section not run
    n=$(median <"$tmp/$1.node")
    rd=$(median <"$tmp/$1.redis")
    ratio=$(ratio "$n" "$rd")
    met=-
    if [[ -n $4 ]]; then
        met=$(awk -v r="$ratio" -v t="$5" -v op="$4" \
            'BEGIN {ok = (op == ">=") ? r >= t : r <= t; print ok ? "met" : "NOT met"}')
    fi
    printf '| %-44s | %-9s | %12s | %12s | %6s | %-8s | %-7s |\n' "$2" "$3" "$n" "$rd" "$ratio" \
        "${4:+$4 $5}" "$met"
}

echo
echo "cache-node $commit ($dirty uncommitted files under cache-node/) allocator=$alloc"
echo "vs $(redis-server --version | cut -d" " -f3,5)"
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u +%FT%TZ)"
echo "medians of $RUNS runs ($MEM_RUNS for memory, $GROW_RUNS for growth); servers alternate, order flipped each run"
echo "redis-benchmark runs on the same 2 cores as the server under test (nothing pinned)"
echo "ratio = cache-node / redis for every row; the target column says which way is better"
echo
printf '| %-44s | %-9s | %12s | %12s | %6s | %-8s | %-7s |\n' measurement unit cache-node redis ratio target result
echo "|----------------------------------------------|-----------|--------------|--------------|--------|----------|---------|"
row set_rps "a. SET -P 16 throughput" "req/s" ">=" 1.5
row get_rps "a. GET -P 16 throughput" "req/s" ">=" 1.5
row pipe_server_us "   server CPU per op in a" "us/op" "" ""
row pipe_client_us "   redis-benchmark's CPU per op in a" "us/op" "" ""
row cpu_us "b. server CPU per op (SET+GET, -c 50)" "us/op" "<=" 0.7
row cpu_user_us "   of which user space" "us/op" "" ""
row cpu_sys_us "   of which kernel" "us/op" "" ""
row cpu_rps_set "   SET throughput in b (context)" "req/s" "" ""
row cpu_rps_get "   GET throughput in b (context)" "req/s" "" ""
row mem_b "c. RSS per key (16 B key, 16 B value)" "bytes" "<=" 0.6
row p99_set_ms "d. SET p99 at 8000 req/s" "ms" "<=" 1
row p99_get_ms "d. GET p99 at 8000 req/s" "ms" "<=" 1
if [[ -s $tmp/lat_max_ms.node ]]; then row lat_max_ms "   slowest request in d" "ms" "" ""; fi
if want x; then
    echo
    echo "x. the ceiling: canned replies, no keyspace (ratio = ceiling / redis), on epoll and io_uring:"
    for m in set_rps get_rps pipe_server_us pipe_client_us cpu_us cpu_user_us cpu_sys_us; do
        [[ -s $tmp/$m.ceil && -s $tmp/$m.redis ]] || continue
        rd=$(median <"$tmp/$m.redis")
        line=$(printf '  %-16s redis %12s' "$m" "$rd")
        for c in ceil ceilu; do
            v=$(median <"$tmp/$m.$c")
            line+=$(printf '  %-5s %12s (%s)' "$c" "$v" "$(ratio "$v" "$rd")")
        done
        echo "$line"
    done
fi
want 2 && echo
want 2 && echo "a2. the node on one tokio worker thread against the default (ratio = default / one):"
want 2 && for m in threads_set_rps threads_get_rps; do
    n=$(median <"$tmp/$m.node"); one=$(median <"$tmp/$m.node1")
    printf '  %-16s default %12s  one worker %12s  ratio %s\n' "$m" "$n" "$one" \
        "$(ratio "$n" "$one")"
done
if (( GROW_RUNS > 0 )); then
    row grow_max_ms "e. longest SET while keys grow to ~$GROW_KEYS" "ms" "" ""
    row grow_keys "   keys at the end of e" "keys" "" ""
    row grow_slow_sets "   SETs that ran > 1 ms (own slowlog, max 128)" "count" "" ""
    row grow_steal_ms "   CPU the host stole during e (/proc/stat)" "ms" "" ""
fi
echo
echo "raw values (one a run, in run order):"
for f in "$tmp"/*.node "$tmp"/*.node1 "$tmp"/*.redis "$tmp"/*.ceil "$tmp"/*.ceilu; do
    if [[ -e $f ]]; then printf '  %-18s %s\n' "$(basename "$f")" "$(tr '\n' ' ' <"$f")"; fi
done
