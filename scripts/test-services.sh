#!/usr/bin/env bash
# Starts the services the cluster tests use when nothing answers at their default addresses:
# PostgreSQL on 127.0.0.1:5432 (Debian's cluster, through pg_ctlcluster) and nats-server with
# JetStream on 127.0.0.1:4222. Tests that cannot use them (say, PostgreSQL asks for a password)
# start private instances of their own from the same binaries (crates/e2e/src/deps.rs).
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! answers 5432; then
  cluster=$(pg_lsclusters --no-header 2>/dev/null | awk 'NR == 1 { print $1, $2 }')
  if [ -n "$cluster" ]; then
    echo "Starting PostgreSQL ($cluster) for the cluster tests"
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start || echo "WARNING: could not start PostgreSQL; the tests start their own" >&2
  fi
fi

if ! answers 4222 && command -v nats-server >/dev/null; then
  echo "Starting nats-server (JetStream) on 127.0.0.1:4222 for the cluster tests"
  dir=${TMPDIR:-/tmp}/agentrelay-nats
  mkdir -p "$dir"
  nohup nats-server -js -a 127.0.0.1 -p 4222 -sd "$dir" >"$dir/nats.log" 2>&1 &
  for _ in $(seq 1 50); do answers 4222 && break; sleep 0.1; done
fi
