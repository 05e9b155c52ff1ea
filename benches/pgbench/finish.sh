#!/usr/bin/env bash
# The directive queue's claim + finish cycle replayed in SQL with pgbench, in two shapes:
#
#   per_row        the claim as omniman-storage sends it, then `finish` as it is today: one
#                  conditional UPDATE per directive inside BEGIN ... COMMIT;
#   one_statement  the same claim, then the whole batch's outcomes in one
#                  UPDATE ... FROM unnest(...) (no explicit transaction).
#
# each with synchronous_commit on (as shipped) and off, for 1, 2 and 4 clients. One cycle claims
# and finishes 100 directives; every run drains 10,000 from a table of 12,000 queued rows.
# Prints a Markdown table of directives/s. See docs/benchmarks.md, "Storage and directive queue".
#
#   benches/pgbench/finish.sh [postgres://postgres@127.0.0.1:5432]
set -euo pipefail

server="${1:-postgres://postgres@127.0.0.1:5432}"
db="omniman_pgbench_finish_$$"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT

psql -q "$server/postgres" -c "CREATE DATABASE $db" >/dev/null
for up in "$root"/migrations/postgres/*/up.sql; do
    psql -q -v ON_ERROR_STOP=1 "$server/$db" -f "$up" >/dev/null
done

batch=100
claim="WITH c AS (UPDATE directives SET status = 'running', attempts = attempts + 1, started_at = now(), \
updated_at = now() WHERE id IN (SELECT id FROM directives WHERE status = 'queued' AND available_at <= now() \
AND (false OR topic = ANY('{bench.noop}')) ORDER BY available_at, id LIMIT $batch FOR UPDATE SKIP LOCKED) \
RETURNING *) SELECT array_agg(id ORDER BY id) AS ids, array_agg(attempts ORDER BY id) AS atts, \
array_agg(available_at ORDER BY id) AS avs, json_agg(c) AS claimed FROM c"

{
    echo "$claim"
    echo '\gset'
    echo 'BEGIN;'
    for k in $(seq 1 $batch); do
        echo "UPDATE directives SET status = 'done', attempts = (:atts::int[])[$k], \
available_at = (:avs::timestamptz[])[$k], last_error = '', updated_at = now() \
WHERE id = (:ids::bigint[])[$k] AND status = 'running' AND attempts = (:atts::int[])[$k];"
    done
    echo 'COMMIT;'
} >"$work/per_row.sql"

{
    echo "$claim"
    echo '\gset'
    echo "UPDATE directives AS d SET status = u.status, attempts = u.attempts, available_at = u.available_at, \
last_error = u.last_error, updated_at = now() \
FROM unnest(:ids::bigint[], :atts::int[], array_fill('done'::text, ARRAY[$batch]), :atts::int[], \
:avs::timestamptz[], array_fill(''::text, ARRAY[$batch])) \
AS u(id, claimed_attempts, status, attempts, available_at, last_error) \
WHERE d.id = u.id AND d.status = 'running' AND d.attempts = u.claimed_attempts;"
} >"$work/one_statement.sql"

reload() {
    psql -q "$server/$db" \
        -c "TRUNCATE directives RESTART IDENTITY" \
        -c "INSERT INTO directives (topic, available_at) SELECT 'bench.noop', now() - interval '1 s' FROM generate_series(1, 12000)" \
        -c "VACUUM ANALYZE directives" >/dev/null
}

echo "| finish | synchronous_commit | 1 client | 2 clients | 4 clients |"
echo "| --- | --- | ---: | ---: | ---: |"
for shape in per_row one_statement; do
    for sync in on off; do
        row="| $shape | $sync |"
        for clients in 1 2 4; do
            reload
            out="$(PGOPTIONS="-c synchronous_commit=$sync" pgbench -n -M prepared -c "$clients" -j "$clients" \
                -t $((100 / clients)) -f "$work/$shape.sql" "$server/$db" 2>&1)"
            tps="$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1)"
            done_rows="$(psql -tA "$server/$db" -c "SELECT count(*) FROM directives WHERE status = 'done'")"
            [[ "$done_rows" == 10000 ]] || { echo "expected 10000 done, found $done_rows" >&2; echo "$out" >&2; exit 1; }
            row="$row $(awk -v t="$tps" -v b=$batch 'BEGIN { printf "%.0f", t * b }') |"
        done
        echo "$row"
    done
done
