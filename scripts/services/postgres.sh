#!/usr/bin/env bash
# Start a private PostgreSQL cluster for the tests of `vault-audit ingest --from-postgres`
# (tests/test_postgres.py). Installs Debian's postgresql when no server is on the machine,
# keeps the cluster under /tmp/vault-audit-pg on 127.0.0.1:54329, and writes the URL to
# use to /tmp/vault-audit-pg/url, where the tests read it. Idempotent: a running cluster
# is left alone. Where no server can be had, the tests skip themselves, so this script
# only says so and succeeds; where CI is set, those tests fail instead, saying so.
set -euo pipefail

root_dir="${VAULT_AUDIT_PG_DIR:-/tmp/vault-audit-pg}"
port="${VAULT_AUDIT_PG_PORT:-54329}"
data_dir="$root_dir/data"
url_file="$root_dir/url"

say() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local candidate
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/initdb" ] && [ -x "$candidate/postgres" ]; then
            echo "$candidate"
            return
        fi
    done
}

bindir="$(find_bindir)"
if [ -z "$bindir" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        say "no PostgreSQL server and no way to install one; the Postgres tests will be skipped (failed where CI is set)"
        exit 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get update -qq >/dev/null \
        || ! apt-get install -y -qq --no-install-recommends postgresql >/dev/null; then
        say "could not install postgresql; the Postgres tests will be skipped (failed where CI is set)"
        exit 0
    fi
    bindir="$(find_bindir)"
fi

# The server refuses to run as root: run it as the postgres user Debian's package makes.
as_owner=()
owner="$(id -un)"
if [ "$(id -u)" -eq 0 ]; then
    owner=postgres
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir "$root_dir" --shell /usr/sbin/nologin postgres
    fi
    as_owner=(runuser -u postgres --)
fi

mkdir -p "$root_dir"
chown "$owner" "$root_dir"
chmod 0755 "$root_dir"
password_file="$root_dir/password"

if [ ! -s "$data_dir/PG_VERSION" ] || [ ! -s "$password_file" ]; then
    rm -rf "$data_dir"
    (umask 077 && head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$password_file")
    chown "$owner" "$password_file"
    "${as_owner[@]}" "$bindir/initdb" --pgdata="$data_dir" --username=postgres \
        --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C.UTF-8 >"$root_dir/initdb.log" 2>&1 \
        || { say "initdb failed; see $root_dir/initdb.log"; exit 1; }
    # A test cluster: durability buys nothing and costs seconds.
    cat >>"$data_dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root_dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
EOF
fi

# The tests read the URL here; it holds this throwaway cluster's password.
(umask 022 && printf 'postgresql://postgres:%s@127.0.0.1:%s/postgres\n' \
    "$(cat "$password_file")" "$port" >"$url_file.new")
mv "$url_file.new" "$url_file"

if ! "${as_owner[@]}" "$bindir/pg_ctl" status -D "$data_dir" >/dev/null 2>&1; then
    "${as_owner[@]}" "$bindir/pg_ctl" start -D "$data_dir" -w -t 60 -l "$root_dir/server.log" \
        >/dev/null || { say "the server did not start; see $root_dir/server.log"; exit 1; }
fi
say "ready on 127.0.0.1:$port; the tests read the URL (with its password) from $url_file"
