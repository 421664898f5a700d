#!/usr/bin/env bash
# Snapshots, Tidecache against redis-server 7.0 in the same run, on the
# same data: KEYS keys of mixed types (70% strings, 10% hashes, 10% lists,
# 5% sets, 5% sorted sets, 5 elements each), under a fixed-rate write load
# that overwrites keys during the snapshot (the fixed_rate example: SET and
# GET alternating over the first 100,000 string keys).
#
# Per run and system:
# - BGSAVE's duration (from the command to `rdb_bgsave_in_progress:0`,
#   polled every 10 ms);
# - the peak extra memory while it runs: the sum of the proportional set
#   sizes (Pss, /proc/<pid>/smaps_rollup) of the server and its children
#   (redis-server's fork), sampled every 10 ms, less the server's before
#   BGSAVE; shared pages count once, so a fork's untouched pages cost
#   nothing and its copied pages count in full. Also as a share of
#   `used_memory`;
# - restore: the server started on the file it wrote, from spawn until it
#   answers DBSIZE with every key (both load before serving).
# Prints medians over RUNS runs and the ratios.
#
#   bench/snapshot.sh                      # RUNS=3 KEYS=1000000
#   NO_BUILD=1 RUNS=5 bench/snapshot.sh
#
# Knobs: RUNS (3), KEYS (1000000), VALUE (64 bytes), RATE (5000 requests/s
# per connection), CONNS (4), NO_BUILD=1, NODE_BIN
# (target/release/cache-node). Ports 7371-7372.
set -euo pipefail

RUNS=${RUNS:-3}
KEYS=${KEYS:-1000000}
VALUE=${VALUE:-64}
RATE=${RATE:-5000}
CONNS=${CONNS:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
node_bin=${NODE_BIN:-$root/target/release/cache-node}
load_bin=$root/target/release/examples/fixed_rate
tmp=$(mktemp -d /tmp/tidecache-snapshot-bench.XXXXXX)
declare -A pid=()
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"
trap 'stop s; [[ -n ${loadpid:-} ]] && kill "$loadpid" 2>/dev/null; rm -rf "$tmp"' EXIT

if [[ ${NO_BUILD:-} != 1 ]]; then
    (cd "$root" && cargo build --release --locked -q -p cache-node --bin cache-node --example fixed_rate)
fi
command -v redis-server >/dev/null || { log "needs redis-server (e2e/scripts/tools.sh packages)"; exit 1; }

# The data, once, as a RESP stream for redis-cli --pipe.
python3 - "$KEYS" "$VALUE" >"$tmp/data.resp" <<'EOF'
import sys
keys, size = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
value = b"v" * size
for i in range(keys):
    kind = i % 20
    if kind < 14:
        # key:%012d: the names the write load overwrites.
        cmd("SET", "key:%012d" % (i // 20 * 14 + kind), value)
    elif kind < 16:
        cmd("HSET", "h:%d" % i, *[x for f in range(5) for x in ("f%d" % f, value[:16])])
    elif kind < 18:
        cmd("RPUSH", "l:%d" % i, *[value[:16]] * 5)
    elif kind == 18:
        cmd("SADD", "s:%d" % i, *["m%d" % m for m in range(5)])
    else:
        cmd("ZADD", "z:%d" % i, *[x for m in range(5) for x in (m * 1.5, "m%d" % m)])
EOF

wait_ready() { # wait_ready <port> <keys>: until DBSIZE answers <keys>
    for _ in $(seq 6000); do
        [[ $(redis-cli -p "$1" dbsize 2>/dev/null) == "$2" ]] && return
        sleep 0.01
    done
    log "port $1 did not answer DBSIZE $2"; exit 1
}

start() { # start <system> <port> <dir>
    case $1 in
    redis) redis-server --port "$2" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$3" --dbfilename dump.rdb >>"$tmp/$1.log" 2>&1 & ;;
    tidecache) "$node_bin" --port "$2" --bind 127.0.0.1 --dir "$3" --dbfilename dump.rdb \
        >>"$tmp/$1.log" 2>&1 & ;;
    esac
    pid[s]=$!
}

pss_kb() { # the server's Pss plus its children's, in kB
    local total=0 p
    for p in ${pid[s]} $(pgrep -P "${pid[s]}" 2>/dev/null || true); do
        total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

one() { # one <system>
    local sys=$1 port=7371 dir="$tmp/$1"
    [[ $sys == redis ]] && port=7372
    rm -rf "$dir"; mkdir -p "$dir"
    start "$sys" "$port" "$dir"
    wait_ready "$port" 0
    redis-cli -p "$port" --pipe <"$tmp/data.resp" >/dev/null
    local keys used before peak now t0 t1
    keys=$(redis-cli -p "$port" dbsize)
    ((keys == KEYS)) || { log "$sys: $keys keys after the load, not $KEYS"; exit 1; }
    "$load_bin" "127.0.0.1:$port" "$CONNS" "$RATE" 30 >"$tmp/load.out" 2>&1 &
    loadpid=$!
    sleep 2
    used=$(redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}')
    before=$(pss_kb)
    peak=$before
    t0=$(date +%s%N)
    redis-cli -p "$port" bgsave >/dev/null
    while :; do
        now=$(pss_kb)
        ((now > peak)) && peak=$now
        redis-cli -p "$port" info persistence | grep -q 'rdb_bgsave_in_progress:0' && break
        sleep 0.01
    done
    t1=$(date +%s%N)
    kill "$loadpid" 2>/dev/null || true
    wait "$loadpid" 2>/dev/null || true
    loadpid=
    redis-cli -p "$port" info persistence | grep -q 'rdb_last_bgsave_status:ok' ||
        { log "$sys: BGSAVE failed"; exit 1; }
    record bgsave_ms "$sys" $(((t1 - t0) / 1000000))
    record extra_mb "$sys" "$(awk -v p="$peak" -v b="$before" 'BEGIN {printf "%.1f", (p - b) / 1024}')"
    record extra_pct "$sys" "$(awk -v p="$peak" -v b="$before" -v u="$used" 'BEGIN {printf "%.1f", (p - b) * 1024 * 100 / u}')"
    record used_mb "$sys" "$(awk -v u="$used" 'BEGIN {printf "%.0f", u / 1048576}')"
    record file_mb "$sys" "$(du -m "$dir/dump.rdb" | cut -f1)"
    keys=$(redis-cli -p "$port" dbsize)
    stop s
    # Restore: a fresh server on the file.
    t0=$(date +%s%N)
    start "$sys" "$port" "$dir"
    wait_ready "$port" "$keys"
    t1=$(date +%s%N)
    record restore_ms "$sys" $(((t1 - t0) / 1000000))
    stop s
}

for run in $(seq "$RUNS"); do
    log "run $run/$RUNS"
    order=(redis tidecache)
    ((run % 2 == 0)) && order=(tidecache redis)
    for sys in "${order[@]}"; do one "$sys"; done
done

m() { median <"$tmp/$1"; }
ratio() { awk -v a="$(m "$1.tidecache")" -v b="$(m "$1.redis")" 'BEGIN {printf "%.2f", a / b}'; }
commit=$(cd "$root" && git rev-parse --short HEAD)
echo
echo "cache-node $commit vs $(redis-server --version | cut -d' ' -f3): $KEYS keys, $CONNS x $RATE requests/s during BGSAVE; median of $RUNS runs"
printf '%-36s %12s %12s %8s\n' "" tidecache redis ratio
printf '%-36s %12s %12s %8s\n' "used_memory (MB)" "$(m used_mb.tidecache)" "$(m used_mb.redis)" "$(ratio used_mb)"
printf '%-36s %12s %12s %8s\n' "BGSAVE duration (ms)" "$(m bgsave_ms.tidecache)" "$(m bgsave_ms.redis)" "$(ratio bgsave_ms)"
printf '%-36s %12s %12s %8s\n' "peak extra memory (MB, Pss)" "$(m extra_mb.tidecache)" "$(m extra_mb.redis)" "-"
printf '%-36s %12s %12s %8s\n' "peak extra memory (% of used)" "$(m extra_pct.tidecache)" "$(m extra_pct.redis)" "-"
printf '%-36s %12s %12s %8s\n' "RDB file (MB)" "$(m file_mb.tidecache)" "$(m file_mb.redis)" "$(ratio file_mb)"
printf '%-36s %12s %12s %8s\n' "restore at start-up (ms)" "$(m restore_ms.tidecache)" "$(m restore_ms.redis)" "$(ratio restore_ms)"
