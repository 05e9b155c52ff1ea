#!/usr/bin/env bash
# The seed workload over every configuration docs/performance.md reports: SQLite (one process),
# PostgreSQL and PostgreSQL + Redis with one and two `omniman serve` instances, each at the given
# user counts; after every cell, pgbench's single-row UPDATE at the same concurrency (capped at
# 64 clients) as the physical reference of that moment. Prints one Markdown table row per cell.
#
#   benches/load/matrix.sh [OMNIMAN_BIN] [SECONDS] [USERS...]
#
# Defaults: release/omniman under CARGO_TARGET_DIR, 15 s, users 10 100 1000. Needs psql and
# pgbench, PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379 (each Redis cell uses a key
# prefix of its own). The release loadgen must be built: `cargo build --release -p omniman-benches`.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="${1:-$target/release/omniman}"
seconds="${2:-15}"
users_list=(10 100 1000)
if (($# > 2)); then users_list=("${@:3}"); fi
redis="redis://127.0.0.1:6379"
loadgen="$target/release/omniman-loadgen"
# shellcheck source=reference.sh
source "$root/benches/load/reference.sh"

echo "| backend | instances | users | req/s | p50 ms | p99 ms | failures | server CPU ms/req | pgbench tps | ratio |"
echo "|---|---|---|---|---|---|---|---|---|---|"

cell() {
    local backend=$1 instances=$2 users=$3 args=()
    case $backend in
        sqlite) ;;
        postgres) args=(--database-url "$server/postgres") ;;
        postgres+redis)
            args=(--database-url "$server/postgres" "--server-arg=--redis-url=$redis"
                "--server-arg=--redis-prefix=omniman-matrix-$$-$RANDOM:")
            ;;
    esac
    local out="$work/cell.json"
    if ! "$loadgen" --spawn --server-bin "$bin" --instances "$instances" "${args[@]}" --users "$users" \
        --duration "$seconds" --warmup 3 --json >"$out" 2>"$work/cell.err"; then
        echo "| $backend | $instances | $users | run failed: $(tail -n 1 "$work/cell.err") |"
        return
    fi
    local tps
    tps=$(reference_tps "$users")
    python3 - "$out" "$backend" "$instances" "$users" "$tps" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
backend, instances, users, tps = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5] or "nan")
lat, rps, n = r["latency_ms"] or {}, r["throughput_rps"], r["requests"]
cpu = r["server_cpu"]
per_req = cpu["total_s"] * 1000 / max(n, 1) if cpu else float("nan")
print(f'| {backend} | {instances} | {users} | {rps:,.0f} | {lat.get("p50", float("nan")):.1f} | '
      f'{lat.get("p99", float("nan")):.1f} | {r["failures"]["total"]} | {per_req:.3f} | {tps:,.0f} | {rps / tps:.2f} |')
PY
}

for users in "${users_list[@]}"; do
    cell sqlite 1 "$users"
    for backend in postgres postgres+redis; do
        for instances in 1 2; do
            cell "$backend" "$instances" "$users"
        done
    done
done
