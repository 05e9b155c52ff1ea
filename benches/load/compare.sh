#!/usr/bin/env bash
# Alternating load runs of two `omniman` binaries on the same machine, each followed by pgbench's
# single-row UPDATE at the same concurrency (capped at 64 clients) as the physical reference.
# Prints one line per run: label, backend, users, req/s, p50/p99 ms, failures, server CPU per
# request (ms), pgbench tps and the ratio req/s ÷ tps. See docs/performance.md.
#
#   benches/load/compare.sh BEFORE_BIN AFTER_BIN [USERS] [SECONDS] [ROUNDS] [BACKEND]
#
# BACKEND is `postgres` (default; a fresh database per run on 127.0.0.1:5432) or `sqlite`.
set -euo pipefail

before="$1" after="$2" users="${3:-100}" seconds="${4:-20}" rounds="${5:-2}" backend="${6:-postgres}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
loadgen="${CARGO_TARGET_DIR:-$root/target}/release/omniman-loadgen"
# shellcheck source=reference.sh
source "$root/benches/load/reference.sh"

run() {
    local label=$1 bin=$2 db_args=()
    [[ $backend == postgres ]] && db_args=(--database-url "$server/postgres")
    "$loadgen" --spawn --server-bin "$bin" "${db_args[@]}" --users "$users" --duration "$seconds" \
        --warmup 3 --json >"$work/$label.json"
    local tps
    tps=$(reference_tps "$users")
    python3 - "$work/$label.json" "$label" "$backend" "$users" "$tps" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
label, backend, users, tps = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
lat, rps, n = r["latency_ms"], r["throughput_rps"], r["requests"]
cpu = r["server_cpu"]
per_req = cpu["total_s"] * 1000 / max(n, 1) if cpu else float("nan")
print(f'{label:8} {backend:8} users={users:>4} req/s={rps:8.1f} p50={lat["p50"]:7.2f} '
      f'p99={lat["p99"]:7.2f} failed={r["failures"]["total"]} cpu/req={per_req:.3f}ms pgbench={tps:8.1f} '
      f'ratio={rps / tps:.2f}')
PY
}

for ((i = 1; i <= rounds; i++)); do
    run before "$before"
    run after "$after"
done
