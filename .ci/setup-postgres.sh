#!/usr/bin/env bash
# PostgreSQL server binaries for the CDS Hooks feedback tests (tests/hooks start a throwaway cluster with
# initdb/pg_ctl in a temp directory). Installs Debian's `postgresql` package when initdb is not found; the
# tests fail (never skip) without it.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
ls /usr/lib/postgresql/*/bin/initdb >/dev/null
