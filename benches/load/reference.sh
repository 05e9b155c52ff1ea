# Sourced by compare.sh and matrix.sh: the physical reference they print beside each load run,
# pgbench's single-row UPDATE on a database of its own, dropped on exit. Sets `server`, `work`
# (a temporary directory, removed on exit) and defines `reference_tps USERS`.
server="postgres://postgres@127.0.0.1:5432"
pgb="omniman_pgbench_update_$$"
work="$(mktemp -d)"
trap 'psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $pgb WITH (FORCE)" >/dev/null; rm -rf "$work"' EXIT

psql -q "$server/postgres" -c "CREATE DATABASE $pgb" >/dev/null
pgbench -q -i -s 1 "$server/$pgb" >/dev/null 2>&1
printf '\\set aid random(1, 100000)\nUPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;\n' >"$work/update.sql"

# Transactions per second of 10 s of single-row UPDATEs by USERS clients, capped at 64
# (`max_connections` is 100 on the machines this runs on).
reference_tps() {
    local clients=$(($1 < 64 ? $1 : 64))
    pgbench -n -c "$clients" -j 2 -T 10 -f "$work/update.sql" "$server/$pgb" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
