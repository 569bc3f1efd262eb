#!/usr/bin/env bash
# Java runtime for `cds screen --engine spark` (PySpark 4 needs Java 17+) and its tests: installs Debian's
# default-jre-headless (OpenJDK 17 on bookworm) when no `java` is on PATH. Safe to run repeatedly.
set -euo pipefail
if ! command -v java >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends default-jre-headless >/dev/null
fi
java -version 2>&1 | head -1
