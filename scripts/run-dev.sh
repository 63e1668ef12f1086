#!/usr/bin/env bash
# `make run`: start HQ and a local runner for development, with tokens kept in .dev/ (mode 0600,
# outside the data dir, ignored by git) and printed at every start.
set -euo pipefail
cd "$(dirname "$0")/.."

# The release binaries: where `make run` says (it asks cargo), else where cargo puts them, which
# honours CARGO_TARGET_DIR and .cargo/config's build.target-dir.
target_dir() {
  local dir
  dir=$(${CARGO:-cargo} metadata --no-deps --format-version 1 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || true
  echo "${dir:-${CARGO_TARGET_DIR:-target}}"
}
bin=${AGENTRELAY_BIN_DIR:-$(target_dir)/release}
for name in agentrelay-hq agentrelay-runner; do
  [[ -x $bin/$name ]] || { echo "$bin/$name is missing: run make build" >&2; exit 1; }
done
dev=.dev
listen=${AGENTRELAY_LISTEN:-127.0.0.1:8080}
url="http://$listen"
mkdir -p "$dev"
chmod 700 "$dev"

token_file() { # name → path of a 0600 file holding a random token, created once
  local path="$dev/$1"
  if [[ ! -s $path ]]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$path")
  fi
  echo "$path"
}
admin_token=$(cat "$(token_file admin-token)")
runner_token=$(cat "$(token_file runner-token)")

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

AGENTRELAY_ADMIN_TOKEN=$admin_token RUNNER_TOKEN=$runner_token \
  "$bin/agentrelay-hq" --listen "$listen" --data-dir agentrelay-data &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "$url/healthz" >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "HQ did not start (is $listen in use?)" >&2; exit 1; }
  sleep 0.1
done

RUNNER_TOKEN=$runner_token "$bin/agentrelay-runner" --hq "$url" --state-dir "$dev/runner-state" &
pids+=($!)

cat <<MSG

  AgentRelay HQ is running at $url
  Open it in a browser and paste this admin token into "Access token" (also in $dev/admin-token):
    $admin_token

  Or the CLI (in another terminal; Ctrl-] then d detaches):
    export AGENTRELAY_HQ=$url AGENTRELAY_TOKEN=\$(cat $dev/admin-token)
    $bin/agentrelay runners
    $bin/agentrelay run --runner $(hostname) -- bash -l

  Or the API:
    curl -s -H "Authorization: Bearer \$AGENTRELAY_TOKEN" $url/api/runners
    curl -s -H "Authorization: Bearer \$AGENTRELAY_TOKEN" -H 'content-type: application/json' \\
      -d '{"runner":"$(hostname)","command":["bash","-l"]}' $url/api/sessions
    curl -s -H "Authorization: Bearer \$AGENTRELAY_TOKEN" $url/api/sessions

  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
