#!/bin/sh
# Container entrypoint: bring the schema up to date, then serve.
# In a container the database is a managed PostgreSQL: LRS_DATABASE_URL is required.
set -eu

: "${LRS_HOST:=0.0.0.0}"
: "${LRS_PORT:=8000}"
: "${LRS_WORKERS:=2}"
export LRS_HOST LRS_PORT LRS_WORKERS

if [ -z "${LRS_DATABASE_URL:-}" ]; then
    echo "entrypoint: set LRS_DATABASE_URL to the PostgreSQL the LRS should use" >&2
    exit 64
fi

lrs migrate
exec lrs serve --host "$LRS_HOST" --port "$LRS_PORT" --workers "$LRS_WORKERS"
