# Shared by bench/compare.sh and bench/migrate.sh (sourced, not run).
# They keep the pids of the servers they start in the associative array
# `pid` and their results under $tmp.

log() { printf '%s\n' "$*" >&2; }

stop() { # stop <name>: kill one server we started, by its pid
    local p=${pid[$1]:-}
    [[ -n $p ]] || return 0
    kill "$p" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    pid[$1]=
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# results go to $tmp/<metric>.<server>, one number a line
record() { echo "$3" >>"$tmp/$1.$2"; log "  $1 $2 = $3"; }

# CPU time the hypervisor gave to others (steal, all CPUs), in ms since boot:
# a run that saw a lot of it measured the host, not the server.
steal_ms() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {print int($9 * 1000 / hz)}' /proc/stat; }
