#!/bin/sh
# The official image's first-start contract, in short: an empty PGDATA gets a cluster whose
# superuser is POSTGRES_USER (password POSTGRES_PASSWORD, required), local connections
# trusted, every other one by scram-sha-256, listening on every address, and the database
# POSTGRES_DB (default: the user's name). Then `postgres ...` runs as the postgres user.
set -e
if [ "$1" = "postgres" ] && [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        if [ -z "$POSTGRES_PASSWORD" ]; then
            echo "error: POSTGRES_PASSWORD is not set" >&2
            exit 1
        fi
        user="${POSTGRES_USER:-postgres}"
        db="${POSTGRES_DB:-$user}"
        pwfile="$(mktemp)"
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        chown postgres "$pwfile"
        gosu postgres initdb --username="$user" --pwfile="$pwfile" \
            --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
        rm -f "$pwfile"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
        if [ "$db" != "postgres" ]; then
            gosu postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
            gosu postgres psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
                -q -c "CREATE DATABASE \"$db\""
            gosu postgres pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
        fi
        echo "database $db of $user initialised in $PGDATA"
    fi
    exec gosu postgres "$@"
fi
exec "$@"
