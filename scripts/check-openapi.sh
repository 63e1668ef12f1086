#!/usr/bin/env bash
# `make test-api`: checks that HQ answers what its OpenAPI document says, with schemathesis.
#
# Starts a throwaway HQ (temp data dir, its own tokens, a free port) and one runner that may only
# run `true` and `sleep` (schemathesis sends random commands), then runs every schemathesis check
# against GET /api/openapi.json. Builds nothing: the binaries come from the directory given as the
# first argument, else $AGENTRELAY_BIN_DIR, else ${CARGO_TARGET_DIR:-target}/debug.
#
#   scripts/check-openapi.sh [BIN_DIR]        SCHEMATHESIS_EXAMPLES=N for more (or fewer) cases
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-${AGENTRELAY_BIN_DIR:-${CARGO_TARGET_DIR:-target}/debug}}
schemathesis=${SCHEMATHESIS:-.venv/bin/schemathesis}
examples=${SCHEMATHESIS_EXAMPLES:-20}
for program in "$bin/agentrelay-hq" "$bin/agentrelay-runner"; do
  [[ -x $program ]] || { echo "$program is missing: run cargo build --workspace --bins" >&2; exit 1; }
done
[[ -x $schemathesis ]] || { echo "$schemathesis is missing: run make test-deps" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/agentrelay-openapi.XXXXXX")
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $status -ne 0 ]]; then
    echo "--- HQ's log (last 20 lines) ---" >&2
    tail -n 20 "$work/hq.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

random_token() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
admin_token=$(random_token)
runner_token=$(random_token)

# Tokens through the environment, not argv, so `ps` does not show them. Limits are generous so the
# run is not throttled (429 is documented, but would hide every other answer of /api/login).
AGENTRELAY_ADMIN_TOKEN=$admin_token RUNNER_TOKEN=$runner_token "$bin/agentrelay-hq" \
  --listen 127.0.0.1:0 --data-dir "$work/data" --log-format json \
  --login-attempts 100000 --max-sessions-per-runner 1000 >"$work/hq.log" 2>&1 &
pids+=($!)

address=
for _ in $(seq 1 100); do
  address=$(sed -n 's/.*"message":"HQ listening","addr":"\([^"]*\)".*/\1/p' "$work/hq.log")
  [[ -n $address ]] && break
  kill -0 "${pids[0]}" 2>/dev/null || { echo "HQ did not start" >&2; exit 1; }
  sleep 0.1
done
[[ -n $address ]] || { echo "HQ did not say where it listens" >&2; exit 1; }
url="http://$address"

# The runner is named, and offers presets named, as the document's examples (`laptop`, `claude`),
# so requests built from them start sessions. Every preset runs `sleep` or `true`: harmless, and
# sessions end by themselves.
cat >"$work/presets.toml" <<'TOML'
[[preset]]
name = "claude"
description = "Not Claude: sleeps ten minutes (ended when the runner stops)"
command = ["sleep", "600"]

[[preset]]
name = "done"
description = "Exits at once"
command = ["true"]

[[preset]]
name = "asks"
description = "Takes a prompt, and exits at once"
command = ["true"]
prompt_args = ["{prompt}"]
TOML

# One repository for workspaces (`app`, named as in the document's examples), with one commit.
git init --quiet --initial-branch=main "$work/app"
git -C "$work/app" -c user.name=check -c user.email=check@localhost commit --quiet --allow-empty -m first

runner_name=laptop
RUNNER_TOKEN=$runner_token "$bin/agentrelay-runner" --hq "$url" --name "$runner_name" \
  --state-dir "$work/runner" --allow true --allow sleep --presets "$work/presets.toml" \
  --repo "app=$work/app" \
  --kill-grace 1s --log-format json >"$work/runner.log" 2>&1 &
pids+=($!)

runner_id=
for _ in $(seq 1 100); do
  # The online runner's id, and the environment names its policy lets requests set.
  runner=$(curl -fsS -H "Authorization: Bearer $admin_token" "$url/api/runners" 2>/dev/null \
    | python3 -c 'import json, sys
for r in json.load(sys.stdin):
    if r["status"] == "online":
        print(r["id"], ",".join(r.get("policy", {}).get("env") or []))' 2>/dev/null) || true
  read -r runner_id env_allowed <<<"$runner"
  [[ -n $runner_id ]] && break
  kill -0 "${pids[1]}" 2>/dev/null || { echo "the runner did not start:" >&2; cat "$work/runner.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $runner_id ]] || { echo "the runner did not come online" >&2; exit 1; }

# A live session, so the {id} routes also meet a real one outside the stateful phase (which
# follows the document's links from the sessions it starts).
session_id=$(curl -fsS -H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
  -d "{\"runner\": \"$runner_name\", \"preset\": \"claude\"}" "$url/api/sessions" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# What only the live HQ knows (its runner, that runner's presets, repository and allowed
# environment, durations in range) reaches the requests through scripts/check_openapi_hooks.py.
export AGENTRELAY_RUNNER_ID=$runner_id AGENTRELAY_RUNNER_NAME=$runner_name AGENTRELAY_PRESETS=claude,done,asks \
  AGENTRELAY_PROMPT_PRESETS=asks AGENTRELAY_ENV_ALLOWED=$env_allowed AGENTRELAY_REPO=app
cat >"$work/schemathesis.toml" <<TOML
hooks = "$PWD/scripts/check_openapi_hooks.py"

[cache]
enabled = false

[dictionaries]
live_sessions = { values = ["$session_id"] }

# Half the time, a session id is the live session's (else one drawn at random, unknown to HQ).
[[operations]]
include-path-regex = '^/api/sessions/\{id\}'
parameters = { "path.id" = { dictionary = "live_sessions", probability = 0.5 } }

# The event stream never ends: read it for a second (the snapshot arrives at once).
[[operations]]
include-path = "/api/events"
request-timeout = 1

# A WebSocket: schemathesis speaks plain HTTP, and a 101 would leave it a socket it cannot read.
[[operations]]
include-path = "/api/v1/ws/session/{id}"
enabled = false
TOML

echo "HQ at $url, runner $runner_name ($runner_id); schemathesis with $examples examples per operation"
"$schemathesis" --config-file "$work/schemathesis.toml" run "$url/api/openapi.json" \
  --header "Authorization: Bearer $admin_token" \
  --checks all \
  --max-examples "$examples" \
  --workers 1 \
  --output-truncate false
